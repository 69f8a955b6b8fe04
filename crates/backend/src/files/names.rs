//! Which names a receiver may create, and the names it gives its
//! temporary and renumbered files.

use std::fmt;

use super::{MAX_NAME_BYTES, PARTIAL_SUFFIX, QUOTED_CHARS, TEMP_PREFIX};

/// Why a name is not one the receiver may create. Each message quotes the
/// name (control characters escaped, long names cut) and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is `.` or `..`, which are directories.
    Dots {
        /// The name.
        name: String,
    },
    /// The name contains `/` or `\`: it is a path, not a name.
    PathSeparator {
        /// The name.
        name: String,
        /// The separator found first.
        separator: char,
    },
    /// The name starts with a drive such as `C:`.
    DrivePrefix {
        /// The name.
        name: String,
    },
    /// The name contains `:`, which Windows reads as a drive or as an
    /// alternate data stream of another file (`a.txt:hidden`).
    Colon {
        /// The name.
        name: String,
    },
    /// The name contains NUL or another control character.
    ControlCharacter {
        /// The name.
        name: String,
        /// The first control character.
        character: char,
    },
    /// The name is longer than [`MAX_NAME_BYTES`].
    TooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name is a Windows device name such as `NUL` or `com1.txt`.
    ReservedDevice {
        /// The name.
        name: String,
        /// The device, in capitals.
        device: String,
    },
    /// The name ends with a dot or a space, which Windows silently strips.
    TrailingDotOrSpace {
        /// The name.
        name: String,
        /// `'.'` or `' '`.
        character: char,
    },
    /// The name starts with [`TEMP_PREFIX`], reserved for temporary files.
    TempPrefix {
        /// The name.
        name: String,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::Dots { name } => {
                write!(f, "name {} means a directory, not a file", quoted(name))
            }
            NameError::PathSeparator { name, separator } => write!(
                f,
                "name {} contains a path separator ('{separator}'); send a bare file name",
                quoted(name)
            ),
            NameError::DrivePrefix { name } => write!(
                f,
                "name {} starts with a drive prefix ({:?}); send a bare file name",
                quoted(name),
                name.get(..2).unwrap_or(name)
            ),
            NameError::Colon { name } => write!(
                f,
                "name {} contains ':', which Windows reads as a drive or a hidden data stream",
                quoted(name)
            ),
            NameError::ControlCharacter { name, character } => write!(
                f,
                "name {} contains the control character U+{:04X}",
                quoted(name),
                u32::from(*character)
            ),
            NameError::TooLong { name, len } => write!(
                f,
                "name {} is {len} bytes long; the limit is {MAX_NAME_BYTES} bytes",
                quoted(name)
            ),
            NameError::ReservedDevice { name, device } => write!(
                f,
                "name {} is the Windows device name {device}, not a file",
                quoted(name)
            ),
            NameError::TrailingDotOrSpace { name, character } => write!(
                f,
                "name {} ends with {}, which Windows strips",
                quoted(name),
                if *character == '.' {
                    "a dot"
                } else {
                    "a space"
                }
            ),
            NameError::TempPrefix { name } => write!(
                f,
                "name {} starts with {TEMP_PREFIX:?}, which is reserved for the receiver's \
                 temporary files",
                quoted(name)
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// `name` in double quotes for a message: control characters and quotes
/// escaped (a name must not move a terminal's cursor), backslashes shown as
/// they are, and at most [`QUOTED_CHARS`] characters.
pub(super) fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(4 * QUOTED_CHARS) + 5);
    out.push('"');
    for (i, c) in name.chars().enumerate() {
        if i == QUOTED_CHARS {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Windows device names: a file with one of these as its stem (any case,
/// any extension) opens the device instead.
pub(super) const RESERVED_DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Check that `name` is a file name the receiver may create inside its
/// directory, on any operating system, and return it.
///
/// Refused: the empty name; `.` and `..`; `/` and `\` anywhere; a drive
/// prefix (`C:`) and any other `:`; NUL and every other control character;
/// more than [`MAX_NAME_BYTES`] bytes; the Windows device names (`CON`,
/// `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, ...) in any case and
/// with any extension (`nul.txt`); a trailing dot or space; and names
/// starting with [`TEMP_PREFIX`].
///
/// ```
/// use trama_backend::files::check_name;
///
/// assert_eq!(check_name("informe.pdf"), Ok("informe.pdf"));
/// assert_eq!(
///     check_name("..\\x").unwrap_err().to_string(),
///     "name \"..\\x\" contains a path separator ('\\'); send a bare file name"
/// );
/// ```
pub fn check_name(name: &str) -> Result<&str, NameError> {
    let owned = || name.to_string();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong {
            name: owned(),
            len: name.len(),
        });
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots { name: owned() });
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(NameError::DrivePrefix { name: owned() });
    }
    for c in name.chars() {
        match c {
            '/' | '\\' => {
                return Err(NameError::PathSeparator {
                    name: owned(),
                    separator: c,
                })
            }
            ':' => return Err(NameError::Colon { name: owned() }),
            c if c.is_control() => {
                return Err(NameError::ControlCharacter {
                    name: owned(),
                    character: c,
                })
            }
            _ => {}
        }
    }
    if let Some(c @ ('.' | ' ')) = name.chars().last() {
        return Err(NameError::TrailingDotOrSpace {
            name: owned(),
            character: c,
        });
    }
    // Windows ignores everything from the first dot, and spaces before it.
    let stem = name
        .split('.')
        .next()
        .unwrap_or(name)
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    if let Some(device) = RESERVED_DEVICES.iter().find(|d| **d == stem) {
        return Err(NameError::ReservedDevice {
            name: owned(),
            device: (*device).to_string(),
        });
    }
    let starts_with_prefix = name
        .get(..TEMP_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(TEMP_PREFIX));
    if starts_with_prefix {
        return Err(NameError::TempPrefix { name: owned() });
    }
    Ok(name)
}

/// Names up to this many bytes appear whole in [`partial_name`].
pub(super) const PARTIAL_PLAIN_MAX: usize = 200;

/// 64-bit FNV-1a: a small, stable hash (not a cryptographic one).
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(super) fn prefix_at_most(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The temporary file the receiver writes `name` (of `size` bytes) into:
/// `.trama-NAME.SIZE.part`.
///
/// The result is at most 250 bytes for any input. A name longer than 200
/// bytes is shortened to `.trama-PREFIX~HASH.SIZE.part`, where PREFIX is its
/// first 200 bytes at most and HASH the 16 hex digits of the 64-bit FNV-1a
/// hash of the whole name. A shortened middle part is always longer than
/// 200 bytes, so it never equals a whole name's; two long names meet only
/// if they share the prefix and the hash. (FNV is not collision resistant:
/// a sender can craft two long names that meet. With `verify`, the digest
/// still catches the mixed-up result.)
///
/// ```
/// use trama_backend::files::partial_name;
/// assert_eq!(partial_name("enviar.bin", 1000), ".trama-enviar.bin.1000.part");
/// assert!(partial_name(&"x".repeat(255), u64::MAX).len() <= 255);
/// ```
pub fn partial_name(name: &str, size: u64) -> String {
    if name.len() <= PARTIAL_PLAIN_MAX {
        return format!("{TEMP_PREFIX}{name}.{size}{PARTIAL_SUFFIX}");
    }
    let prefix = prefix_at_most(name, PARTIAL_PLAIN_MAX);
    let hash = fnv1a64(name.as_bytes());
    format!("{TEMP_PREFIX}{prefix}~{hash:016x}.{size}{PARTIAL_SUFFIX}")
}

/// True for the names [`partial_name`] makes (what a cleanup may delete).
pub fn is_partial_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(PARTIAL_SUFFIX)
}

/// `name` if `exists(name)` is false, else the first of `stem-1.ext`,
/// `stem-2.ext`, ... that does not exist: the number goes before the
/// extension (the last dot, or `.tar.*` taken whole), or at the end of a
/// name without one (`notas` → `notas-1`; a leading dot as in `.bashrc`
/// starts no extension). The stem is shortened if needed so the result
/// stays within [`MAX_NAME_BYTES`]; an extension so long that no number fits
/// beside it counts as part of the stem.
///
/// `exists` must become false for some number; a receiver that never
/// overwrites uses it to pick a free name.
///
/// ```
/// use trama_backend::files::numbered_name;
/// let taken = ["recibido.bin", "recibido-1.bin"];
/// assert_eq!(numbered_name("recibido.bin", |n| taken.contains(&n)), "recibido-2.bin");
/// ```
pub fn numbered_name(name: &str, exists: impl Fn(&str) -> bool) -> String {
    if !exists(name) {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    // An extension too long to keep beside a number (up to 20 digits and a
    // dash) is not kept apart: the number then ends the shortened name.
    let (stem, ext) = if ext.len() + NUMBER_ROOM > MAX_NAME_BYTES {
        (name, "")
    } else {
        (stem, ext)
    };
    let mut n: u64 = 1;
    loop {
        let suffix = format!("-{n}{ext}");
        let room = MAX_NAME_BYTES.saturating_sub(suffix.len());
        let candidate = format!("{}{suffix}", prefix_at_most(stem, room));
        if !exists(&candidate) {
            return candidate;
        }
        n = n.saturating_add(1);
    }
}

/// Bytes `-N` takes at most in [`numbered_name`]: a dash and a `u64`.
pub(super) const NUMBER_ROOM: usize = 21;

/// `("archive", ".tar.gz")`, `("notas", "")`, `(".bashrc", "")`.
pub(super) fn split_extension(name: &str) -> (&str, &str) {
    let Some(dot) = name.rfind('.').filter(|&i| i > 0) else {
        return (name, "");
    };
    let (stem, ext) = name.split_at(dot);
    if let Some(tar) = stem.len().checked_sub(4).filter(|&i| i > 0) {
        let is_tar = stem
            .get(tar..)
            .is_some_and(|inner| inner.eq_ignore_ascii_case(".tar"));
        if is_tar {
            return name.split_at(tar);
        }
    }
    (stem, ext)
}
