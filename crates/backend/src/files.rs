//! File transfer: the rules, with no files and no sockets.
//!
//! The app `trama-files` opens the files and the connections; this module
//! decides everything that can be decided without them: which names a
//! receiver may create, what the temporary file is called, where a transfer
//! resumes, whether what arrived is what was sent, and how to print sizes,
//! rates and summaries. Every rule is a plain function of plain values,
//! tested without I/O. (How long to wait before retrying is
//! `trama_protocol::Backoff`, the rule every part of trama that reconnects
//! uses.)
//!
//! # The wire protocol (version [`PROTOCOL_VERSION`])
//!
//! One TCP connection carries any number of files, one after the other.
//! Control messages are MessagePack maps with named fields ([`CODEC`], i.e.
//! `trama_protocol::Codec::MsgPack`) inside the default frames: a 4-byte
//! big-endian length, then the payload. The file's bytes themselves are
//! **not** framed, so each side can hand them to the kernel (`sendfile`,
//! `splice`) in one piece.
//!
//! 1. sender → receiver, framed: [`Offer`]
//!    `{"version": 1, "name": "a.bin", "size": 1000, "verify": true}`.
//!    `verify` promises a BLAKE3 digest of the whole file after the data.
//!    `name` is a bare file name that must pass [`check_name`].
//! 2. receiver → sender, framed: [`Answer`], a map tagged by `"type"`:
//!    `{"type": "Ready", "offset": 400}` (send bytes `[offset, size)`), or
//!    `{"type": "Refused", "reason": "..."}` (nothing follows for this file;
//!    the sender may offer another one or close). [`plan_receive`] decides.
//! 3. sender → receiver, raw: exactly `size - offset` bytes of the file,
//!    starting at byte `offset`.
//! 4. sender → receiver, framed: [`Done`] `{"digest": "af13..."}`: the
//!    lowercase hex BLAKE3 digest (64 characters) of bytes `0..size` of the
//!    file when the offer said `verify`, else `{"digest": nil}`. The digest
//!    covers the whole file even after a resume, so the receiver hashes the
//!    `offset` bytes it already had before the new ones.
//! 5. receiver → sender, framed: [`Verdict`] `{"ok": true, "message":
//!    "Gracias."}`, or `ok: false` with what went wrong. [`judge`] decides.
//! 6. The sender offers the next file on the same connection, or closes it.
//!
//! A receiver that cannot go on in the middle of step 3 (a full disk) may
//! send its failing [`Verdict`] early and close; a sender whose write fails
//! should look for that verdict before reporting a lost connection.
//!
//! Unknown fields are ignored, so later versions may add some. An offer
//! without a `version` field reads as version 0 and is refused with a reason
//! that says so, like any version other than [`PROTOCOL_VERSION`].
//!
//! # The receiver's files
//!
//! The receiver writes into [`partial_name`]`(name, size)` in its directory
//! and renames that file to `name` only once [`judge`] accepted it. The size
//! is part of the temporary name, so a partial file is resumed only by an
//! offer of the same name and size. On [`Answer::Ready`], the receiver
//! truncates the temporary file to `offset` (creating it if needed) and
//! appends from there: that one rule covers a fresh start, a resume and a
//! stale partial file.
//!
//! ```
//! use trama_backend::files::{judge, plan_receive, Answer, DiskFacts, Offer, THANKS};
//!
//! let offer = Offer::new("enviar.bin", 1000, false);
//! // A previous try left 400 bytes in the temporary file: resume there.
//! let facts = DiskFacts { final_exists: false, partial_len: Some(400) };
//! assert_eq!(plan_receive(&offer, &facts, false), Answer::Ready { offset: 400 });
//! // ... 600 more bytes arrive, then Done { digest: None } ...
//! let verdict = judge(&offer, 400 + 600, None, None);
//! assert!(verdict.ok);
//! assert_eq!(verdict.message, THANKS);
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trama_protocol::Codec;

/// The version of the protocol described in the [module docs](self).
pub const PROTOCOL_VERSION: u32 = 1;

/// The codec of every control message.
pub const CODEC: Codec = Codec::MsgPack;

/// A generous bound for one control message's frame. The longest valid one is
/// an [`Offer`] with a 255-byte name or a refusal that quotes it: a few
/// hundred bytes. A peer that announces more is not speaking this protocol.
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// The receiver's message on success, as in the course notes.
pub const THANKS: &str = "Gracias.";

/// Longest file name accepted, in bytes (the limit of ext4, APFS, NTFS...).
pub const MAX_NAME_BYTES: usize = 255;

/// Prefix of the receiver's temporary files; [`check_name`] refuses names
/// that start with it (in any letter case).
pub const TEMP_PREFIX: &str = ".trama-";

/// Suffix of the receiver's temporary files.
pub const PARTIAL_SUFFIX: &str = ".part";

/// Length of a BLAKE3 digest in hex.
pub const DIGEST_HEX_LEN: usize = 64;

/// Hex digits of a digest shown in messages.
const SHORT_DIGEST: usize = 16;

/// Characters of a name quoted in an error message.
const QUOTED_CHARS: usize = 64;

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// Step 1, sender → receiver: "here is a file".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The sender's protocol version ([`PROTOCOL_VERSION`]); 0 when absent.
    #[serde(default)]
    pub version: u32,
    /// The bare file name (no directories), checked by [`check_name`].
    pub name: String,
    /// The file's size in bytes.
    pub size: u64,
    /// A BLAKE3 digest of the whole file follows the data in [`Done`].
    #[serde(default)]
    pub verify: bool,
}

impl Offer {
    /// An offer in this crate's [`PROTOCOL_VERSION`].
    pub fn new(name: impl Into<String>, size: u64, verify: bool) -> Offer {
        Offer {
            version: PROTOCOL_VERSION,
            name: name.into(),
            size,
            verify,
        }
    }
}

/// Step 2, receiver → sender: go ahead (from which byte) or not (why).
///
/// Encoded as a map with a `"type"` key, e.g. `{"type": "Ready", "offset": 0}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Answer {
    /// Send bytes `[offset, size)` of the file.
    Ready {
        /// The first byte to send; the receiver already holds `0..offset`.
        offset: u64,
    },
    /// The receiver will not take this file.
    Refused {
        /// Why, in words for the person at the sender.
        reason: String,
    },
    /// Not now: the file is being received from another connection (often
    /// the sender's own previous one, which the receiver has not yet seen
    /// die after a cut cable). The sender waits and offers again.
    Busy {
        /// Why, in words for the person at the sender.
        reason: String,
    },
}

impl Answer {
    fn refused(reason: String) -> Answer {
        Answer::Refused { reason }
    }
}

/// Step 4, sender → receiver: all bytes are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Lowercase hex BLAKE3 of bytes `0..size` when the offer said `verify`.
    #[serde(default)]
    pub digest: Option<String>,
}

/// Step 5, receiver → sender: whether the file arrived intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when the file was stored.
    pub ok: bool,
    /// [`THANKS`] on success, else what went wrong.
    pub message: String,
    /// On failure: whether sending the file again may succeed (the bytes were
    /// damaged or cut on the way) or not (the receiver's disk is full, the
    /// file is refused). Absent on the wire means false.
    #[serde(default)]
    pub retry: bool,
}

impl Verdict {
    /// `ok: true` with [`THANKS`].
    pub fn success() -> Verdict {
        Verdict {
            ok: true,
            message: THANKS.to_string(),
            retry: false,
        }
    }

    /// `ok: false` with `message`: sending again will not help.
    pub fn failure(message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            message: message.into(),
            retry: false,
        }
    }

    /// `ok: false` with `message`, for damage on the way: send it again.
    pub fn retry(message: impl Into<String>) -> Verdict {
        Verdict {
            retry: true,
            ..Verdict::failure(message)
        }
    }
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// Why a name is not one the receiver may create. Each message quotes the
/// name (control characters escaped, long names cut) and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
fn quoted(name: &str) -> String {
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
const RESERVED_DEVICES: &[&str] = &[
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
const PARTIAL_PLAIN_MAX: usize = 200;

/// 64-bit FNV-1a: a small, stable hash (not a cryptographic one).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn prefix_at_most(s: &str, max: usize) -> &str {
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
const NUMBER_ROOM: usize = 21;

/// `("archive", ".tar.gz")`, `("notas", "")`, `(".bashrc", "")`.
fn split_extension(name: &str) -> (&str, &str) {
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

// ---------------------------------------------------------------------------
// The receiver's decisions
// ---------------------------------------------------------------------------

/// What the receiver found on disk for an offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFacts {
    /// The final file `name` already exists.
    pub final_exists: bool,
    /// The length of [`partial_name`]`(name, size)`, if that file exists.
    pub partial_len: Option<u64>,
}

/// The receiver's answer to `offer`, given what is on disk; see
/// [`plan_receive_with_limit`], here with no size limit.
pub fn plan_receive(offer: &Offer, facts: &DiskFacts, overwrite: bool) -> Answer {
    plan_receive_with_limit(offer, facts, overwrite, None)
}

/// The receiver's answer to `offer`, given what is on disk, whether it may
/// replace existing files, and the largest file it takes.
///
/// Refused, in this order: another protocol version; a name that
/// [`check_name`] refuses; a file over `max_size`; an existing final file
/// without `overwrite`. Otherwise the transfer resumes at `partial_len` when
/// a temporary file of at most `size` bytes exists, and starts at 0 when
/// there is none or it is longer than the file (stale).
///
/// ```
/// use trama_backend::files::{plan_receive_with_limit, Answer, DiskFacts, Offer};
/// let offer = Offer::new("big.iso", 5_000_000_000, true);
/// let answer = plan_receive_with_limit(&offer, &DiskFacts::default(), false, Some(1 << 30));
/// assert_eq!(answer, Answer::Refused {
///     reason: "big.iso is 5000000000 bytes (4.7 GiB); this receiver takes at most \
///              1073741824 bytes (1.0 GiB)".into(),
/// });
/// ```
pub fn plan_receive_with_limit(
    offer: &Offer,
    facts: &DiskFacts,
    overwrite: bool,
    max_size: Option<u64>,
) -> Answer {
    if offer.version != PROTOCOL_VERSION {
        return Answer::refused(version_mismatch(offer.version));
    }
    let name = match check_name(&offer.name) {
        Ok(name) => name,
        Err(e) => return Answer::refused(e.to_string()),
    };
    if let Some(max) = max_size {
        if offer.size > max {
            return Answer::refused(format!(
                "{name} is {} bytes ({}); this receiver takes at most {max} bytes ({})",
                offer.size,
                human_bytes(offer.size),
                human_bytes(max)
            ));
        }
    }
    if facts.final_exists && !overwrite {
        return Answer::refused(format!(
            "{name} already exists; the receiver was not started with --overwrite"
        ));
    }
    let offset = match facts.partial_len {
        Some(len) if len <= offer.size => len,
        _ => 0,
    };
    Answer::Ready { offset }
}

fn version_mismatch(theirs: u32) -> String {
    if theirs == 0 {
        format!(
            "the offer carries no protocol version; this receiver speaks version {PROTOCOL_VERSION}"
        )
    } else {
        format!(
            "the sender speaks protocol version {theirs}; this receiver speaks version \
             {PROTOCOL_VERSION}"
        )
    }
}

/// The receiver's verdict on a transfer.
///
/// `received` is how many bytes of the file the receiver holds at the end:
/// the resume offset plus the bytes read on this connection. `expected` is
/// the digest in [`Done`]; `actual` the one the receiver computed over bytes
/// `0..size` (`None` when it did not hash).
///
/// Failures, in this order: `received N of M bytes`; a promised digest that
/// did not come; a digest that is not 64 hex digits; no digest computed to
/// compare with; a digest mismatch (both shown, cut to 16 hex digits).
/// Without `verify` in the offer, digests are compared only when both are
/// present. Success is [`Verdict::success`] (`"Gracias."`).
///
/// ```
/// use trama_backend::files::{judge, Offer};
/// let offer = Offer::new("a.bin", 1000, false);
/// assert_eq!(judge(&offer, 999, None, None).message, "received 999 of 1000 bytes");
/// ```
pub fn judge(
    offer: &Offer,
    received: u64,
    expected_digest: Option<&str>,
    actual_digest: Option<&str>,
) -> Verdict {
    if received != offer.size {
        return Verdict::retry(format!("received {received} of {} bytes", offer.size));
    }
    let expected = match expected_digest {
        Some(d) => d,
        None if offer.verify => {
            return Verdict::failure(
                "the sender promised a BLAKE3 digest (verify) but sent none".to_string(),
            )
        }
        None => return Verdict::success(),
    };
    if !offer.verify && actual_digest.is_none() {
        return Verdict::success();
    }
    if !is_digest(expected) {
        return Verdict::failure(format!(
            "the sender's digest {} is not {DIGEST_HEX_LEN} hex digits",
            quoted(&short_digest(expected))
        ));
    }
    let Some(actual) = actual_digest else {
        return Verdict::failure("the receiver computed no digest to compare with".to_string());
    };
    if !expected.eq_ignore_ascii_case(actual) {
        return Verdict::retry(format!(
            "digest mismatch: the sender has {}, the receiver got {}",
            short_digest(expected),
            short_digest(actual)
        ));
    }
    Verdict::success()
}

/// The slowest a sender may be: at least `min_bytes_per_sec` over every
/// `window` of time the receiver spends waiting for it.
///
/// A stall timeout alone lets a sender hold a receiver's slot for ever by
/// sending a byte just before each timeout; with a fixed number of slots,
/// a few such senders lock everyone else out. The floor counts only the time
/// spent waiting for the sender (the caller measures each read), so a
/// receiver slowed by its own disk does not blame the sender.
///
/// ```
/// use std::time::Duration;
/// use trama_backend::files::RateFloor;
///
/// let mut floor = RateFloor::new(1024, Duration::from_secs(10));
/// // 20 KiB in the first 10 s of waiting: fast enough, a new window starts.
/// assert!(floor.record(20 * 1024, Duration::from_secs(10)).is_ok());
/// // Then a byte every 5 s.
/// assert!(floor.record(1, Duration::from_secs(5)).is_ok());
/// let slow = floor.record(1, Duration::from_secs(5)).unwrap_err();
/// assert_eq!(
///     slow.to_string(),
///     "the sender sent 2 bytes in 10.0 s of waiting (0 B/s), under the floor of 1024 B/s"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateFloor {
    min_bytes_per_sec: u64,
    window: Duration,
    /// Waiting time and bytes in the current window.
    waited: Duration,
    bytes: u64,
}

/// A sender under its [`RateFloor`], with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes in the window.
    pub bytes: u64,
    /// Waiting time in the window.
    pub waited: Duration,
    /// The floor, in bytes per second.
    pub min: u64,
}

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the sender sent {} bytes in {:.1} s of waiting ({} B/s), under the floor of {} B/s",
            self.bytes,
            self.waited.as_secs_f64(),
            per_second(self.bytes, self.waited),
            self.min
        )
    }
}

impl std::error::Error for TooSlow {}

fn per_second(bytes: u64, waited: Duration) -> u64 {
    let secs = waited.as_secs_f64();
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        bytes
    }
}

impl RateFloor {
    /// At least `min_bytes_per_sec` over each `window` of waiting (a zero
    /// window is taken as one second).
    pub fn new(min_bytes_per_sec: u64, window: Duration) -> RateFloor {
        RateFloor {
            min_bytes_per_sec,
            window: if window.is_zero() {
                Duration::from_secs(1)
            } else {
                window
            },
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// How long the next wait may last before the window closes: the
    /// caller's read timeout should be no longer, so a silent sender is
    /// judged when its window ends.
    pub fn wait_limit(&self) -> Duration {
        self.window.saturating_sub(self.waited)
    }

    /// `n` bytes arrived (0 for a wait that timed out) after waiting
    /// `waited`. Once a whole window of waiting has gone by, it is judged:
    /// under the floor is an error, else a new window starts.
    pub fn record(&mut self, n: u64, waited: Duration) -> Result<(), TooSlow> {
        self.bytes = self.bytes.saturating_add(n);
        self.waited = self.waited.saturating_add(waited);
        if self.waited < self.window {
            return Ok(());
        }
        let need = u128::from(self.min_bytes_per_sec) * self.waited.as_millis() / 1000;
        let (bytes, waited) = (self.bytes, self.waited);
        self.bytes = 0;
        self.waited = Duration::ZERO;
        if u128::from(bytes) < need {
            return Err(TooSlow {
                bytes,
                waited,
                min: self.min_bytes_per_sec,
            });
        }
        Ok(())
    }
}

/// True for a hex BLAKE3 digest: [`DIGEST_HEX_LEN`] hex digits (any case).
pub fn is_digest(s: &str) -> bool {
    s.len() == DIGEST_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first 16 characters of a digest and `...`, for messages.
fn short_digest(d: &str) -> String {
    let mut chars = d.chars();
    let mut out: String = chars.by_ref().take(SHORT_DIGEST).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

// ---------------------------------------------------------------------------
// The sender's decisions
// ---------------------------------------------------------------------------

/// A [`Answer::Ready`] offset past the end of the offered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOffset {
    /// The offset the receiver asked for.
    pub offset: u64,
    /// The size of the file offered.
    pub size: u64,
}

impl fmt::Display for BadOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the receiver asked to resume at byte {} of a {}-byte file",
            self.offset, self.size
        )
    }
}

impl std::error::Error for BadOffset {}

/// How many bytes the sender sends after [`Answer::Ready`]`{ offset }`:
/// `size - offset`, or an error when the offset is past the end.
///
/// ```
/// use trama_backend::files::{bytes_to_send, Offer};
/// let offer = Offer::new("a.bin", 1000, true);
/// assert_eq!(bytes_to_send(&offer, 400), Ok(600));
/// assert!(bytes_to_send(&offer, 1001).is_err());
/// ```
pub fn bytes_to_send(offer: &Offer, offset: u64) -> Result<u64, BadOffset> {
    offer.size.checked_sub(offset).ok_or(BadOffset {
        offset,
        size: offer.size,
    })
}

// ---------------------------------------------------------------------------
// Progress and summaries
// ---------------------------------------------------------------------------

/// How far one file's transfer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The file's size in bytes.
    pub size: u64,
    /// Bytes of the file through so far, including a resume offset.
    pub done: u64,
}

impl Progress {
    /// A file of `size` bytes with `done` of them through.
    pub fn new(size: u64, done: u64) -> Progress {
        Progress { size, done }
    }

    /// Count `n` more bytes (never past `size`).
    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n).min(self.size);
    }

    /// Bytes still to go.
    pub fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.done)
    }

    /// True when every byte is through.
    pub fn is_complete(&self) -> bool {
        self.done >= self.size
    }

    /// Percent done, 0.0 to 100.0 (an empty file is 100% done).
    pub fn percent(&self) -> f64 {
        if self.size == 0 {
            return 100.0;
        }
        (self.done.min(self.size) as f64 * 100.0) / self.size as f64
    }

    /// The rate of a transfer that moved `moved` bytes in `elapsed_secs`
    /// (count only this connection's bytes, not a resume offset), in bytes
    /// per second, and the seconds left at that rate. The rate is 0 when no
    /// time has passed; the ETA is `None` when the rate is 0 and bytes
    /// remain, and `Some(0.0)` when none do.
    ///
    /// ```
    /// use trama_backend::files::Progress;
    /// let p = Progress::new(1000, 600); // resumed at 400, 200 moved in 2 s
    /// assert_eq!(p.rate_and_eta(200, 2.0), (100.0, Some(4.0)));
    /// ```
    pub fn rate_and_eta(&self, moved: u64, elapsed_secs: f64) -> (f64, Option<f64>) {
        let rate = if elapsed_secs.is_finite() && elapsed_secs > 0.0 {
            moved as f64 / elapsed_secs
        } else {
            0.0
        };
        let remaining = self.remaining();
        let eta = if remaining == 0 {
            Some(0.0)
        } else if rate > 0.0 {
            Some(remaining as f64 / rate)
        } else {
            None
        };
        (rate, eta)
    }
}

/// A byte count in binary units with one decimal: `"512 B"`, `"1.5 KiB"`,
/// `"2.0 GiB"`.
///
/// ```
/// use trama_backend::files::human_bytes;
/// assert_eq!(human_bytes(1023), "1023 B");
/// assert_eq!(human_bytes(3 << 29), "1.5 GiB");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // 1023.95 would print as "1024.0"; move up a unit instead.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// One line about a finished transfer: name, size, time and rate in MB/s
/// (10^6 bytes per second, as network speeds are quoted).
///
/// ```
/// use trama_backend::files::format_summary;
/// assert_eq!(
///     format_summary("enviar.bin", 2 << 30, 1.23),
///     "enviar.bin: 2.0 GiB in 1.23 s (1745.9 MB/s)"
/// );
/// ```
pub fn format_summary(name: &str, bytes: u64, secs: f64) -> String {
    let rate = if secs.is_finite() && secs > 0.0 {
        format!("{:.1} MB/s", bytes as f64 / secs / 1e6)
    } else {
        "rate not measurable".to_string()
    };
    format!("{name}: {} in {secs:.2} s ({rate})", human_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- check_name ------------------------------------------------------

    fn refusal(name: &str) -> String {
        check_name(name).unwrap_err().to_string()
    }

    #[test]
    fn good_names_pass_unchanged() {
        for name in [
            "a",
            "informe final.pdf",
            ".bashrc",
            "..x",
            "x..y",
            "año_2024 (copia).tar.gz",
            "日本語.txt",
            "console.txt",
            "nul-not.txt",
            "com10",
            "lpt",
            ".trama",
            "trama-x.part",
            &"é".repeat(127), // 254 bytes
        ] {
            assert_eq!(check_name(name), Ok(name), "{name:?}");
        }
    }

    #[test]
    fn empty_and_dots() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(refusal(""), "the name is empty");
        assert_eq!(refusal("."), "name \".\" means a directory, not a file");
        assert_eq!(refusal(".."), "name \"..\" means a directory, not a file");
    }

    #[test]
    fn separators() {
        assert_eq!(
            refusal("..\\x"),
            "name \"..\\x\" contains a path separator ('\\'); send a bare file name"
        );
        for name in [
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            "a/",
            "\\\\server\\share",
        ] {
            assert!(
                matches!(check_name(name), Err(NameError::PathSeparator { .. })),
                "{name:?}"
            );
        }
        assert!(refusal("a/b").contains("('/')"));
    }

    #[test]
    fn drives_and_colons() {
        assert_eq!(
            refusal("C:"),
            "name \"C:\" starts with a drive prefix (\"C:\"); send a bare file name"
        );
        assert!(matches!(
            check_name("c:x.txt"),
            Err(NameError::DrivePrefix { .. })
        ));
        // Checked before the separators, the more telling reason.
        assert!(matches!(
            check_name("C:\\Windows"),
            Err(NameError::DrivePrefix { .. })
        ));
        assert_eq!(
            refusal("a.txt:hidden"),
            "name \"a.txt:hidden\" contains ':', which Windows reads as a drive or a hidden \
             data stream"
        );
    }

    #[test]
    fn control_characters_are_named_and_escaped() {
        assert_eq!(
            refusal("a\0b"),
            "name \"a\\u{0}b\" contains the control character U+0000"
        );
        assert_eq!(
            refusal("x\x1b[2J"),
            "name \"x\\u{1b}[2J\" contains the control character U+001B"
        );
        for name in ["tab\there", "new\nline", "del\x7f", "c1\u{85}"] {
            assert!(
                matches!(check_name(name), Err(NameError::ControlCharacter { .. })),
                "{name:?}"
            );
        }
    }

    #[test]
    fn too_long_says_how_long() {
        let long = "a".repeat(256);
        let e = refusal(&long);
        assert!(
            e.ends_with("\" is 256 bytes long; the limit is 255 bytes"),
            "{e}"
        );
        assert!(e.contains("..."), "the quote is cut: {e}");
        assert!(e.len() < 150, "{e}");
        assert!(check_name(&"a".repeat(255)).is_ok());
        // Bytes, not characters: 128 × 'é' is 256 bytes.
        assert_eq!(
            check_name(&"é".repeat(128)),
            Err(NameError::TooLong {
                name: "é".repeat(128),
                len: 256
            })
        );
    }

    #[test]
    fn windows_devices_in_any_case_and_with_extensions() {
        for (name, device) in [
            ("CON", "CON"),
            ("prn", "PRN"),
            ("Aux", "AUX"),
            ("nul.txt", "NUL"),
            ("NUL.tar.gz", "NUL"),
            ("nul .txt", "NUL"),
            ("com1", "COM1"),
            ("COM9.log", "COM9"),
            ("lpt1", "LPT1"),
            ("LPT9.bin", "LPT9"),
            ("com¹", "COM¹"),
            ("conout$", "CONOUT$"),
        ] {
            assert_eq!(
                check_name(name),
                Err(NameError::ReservedDevice {
                    name: name.to_string(),
                    device: device.to_string()
                }),
                "{name:?}"
            );
        }
        assert_eq!(
            refusal("nul.txt"),
            "name \"nul.txt\" is the Windows device name NUL, not a file"
        );
    }

    #[test]
    fn trailing_dot_or_space() {
        assert_eq!(
            refusal("informe."),
            "name \"informe.\" ends with a dot, which Windows strips"
        );
        assert_eq!(
            refusal("informe "),
            "name \"informe \" ends with a space, which Windows strips"
        );
        assert!(check_name("...").is_err());
    }

    #[test]
    fn temp_prefix_is_reserved_in_any_case() {
        assert_eq!(
            refusal(".trama-x.10.part"),
            "name \".trama-x.10.part\" starts with \".trama-\", which is reserved for the \
             receiver's temporary files"
        );
        assert!(matches!(
            check_name(".TRAMA-x"),
            Err(NameError::TempPrefix { .. })
        ));
        // Every partial name is refused as a name, so no offer can hit one.
        assert!(check_name(&partial_name("a", 1)).is_err());
        assert!(check_name(&partial_name(&"b".repeat(255), 1)).is_err());
    }

    #[test]
    fn quotes_escape_quotes_and_cut_long_names() {
        assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
        let q = quoted(&"ñ".repeat(100));
        assert_eq!(q.chars().filter(|&c| c == 'ñ').count(), QUOTED_CHARS);
        assert!(q.ends_with("...\""));
    }

    // --- partial_name ----------------------------------------------------

    #[test]
    fn partial_names() {
        assert_eq!(partial_name("a.bin", 0), ".trama-a.bin.0.part");
        assert!(is_partial_name(&partial_name("a.bin", 0)));
        assert!(!is_partial_name("a.bin"));
        assert_ne!(partial_name("a", 1), partial_name("a", 2));
        let exactly = "x".repeat(PARTIAL_PLAIN_MAX);
        assert_eq!(
            partial_name(&exactly, u64::MAX),
            format!(".trama-{exactly}.{}.part", u64::MAX)
        );
    }

    #[test]
    fn partial_names_stay_under_255_bytes() {
        for len in [200, 201, 230, 255, 1000] {
            for c in ["x", "é", "日", "😀"] {
                let name: String = c.repeat(len / c.len() + 1);
                let name = prefix_at_most(&name, len);
                for size in [0, 1000, u64::MAX] {
                    let part = partial_name(name, size);
                    assert!(part.len() <= 250, "{} bytes for {len} × {c}", part.len());
                    assert!(part.ends_with(&format!(".{size}.part")));
                }
            }
        }
    }

    #[test]
    fn shortened_partial_names_stay_unique() {
        let a = format!("{}a", "x".repeat(240));
        let b = format!("{}b", "x".repeat(240));
        assert_ne!(partial_name(&a, 5), partial_name(&b, 5));
        assert_ne!(partial_name(&a, 5), partial_name(&a, 6));
        let short = partial_name(&a, 5);
        assert!(short.contains(&format!("~{:016x}.", fnv1a64(a.as_bytes()))));
        // The shortened middle is longer than any whole name that is kept.
        let middle = &short[TEMP_PREFIX.len()..short.len() - ".5.part".len()];
        assert!(middle.len() > PARTIAL_PLAIN_MAX);
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    // --- plan_receive ----------------------------------------------------

    fn facts(final_exists: bool, partial_len: Option<u64>) -> DiskFacts {
        DiskFacts {
            final_exists,
            partial_len,
        }
    }

    fn ready(offset: u64) -> Answer {
        Answer::Ready { offset }
    }

    fn reason(answer: Answer) -> String {
        match answer {
            Answer::Refused { reason } => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn fresh_resume_and_stale() {
        let offer = Offer::new("a.bin", 1000, true);
        assert_eq!(plan_receive(&offer, &facts(false, None), false), ready(0));
        assert_eq!(
            plan_receive(&offer, &facts(false, Some(400)), false),
            ready(400)
        );
        assert_eq!(
            plan_receive(&offer, &facts(false, Some(0)), false),
            ready(0)
        );
        // A complete partial (the connection broke before the verdict):
        // nothing left to send, but the digest is still checked.
        assert_eq!(
            plan_receive(&offer, &facts(false, Some(1000)), false),
            ready(1000)
        );
        assert_eq!(
            plan_receive(&offer, &facts(false, Some(1001)), false),
            ready(0)
        );
        let empty = Offer::new("empty", 0, false);
        assert_eq!(
            plan_receive(&empty, &facts(false, Some(7)), false),
            ready(0)
        );
    }

    #[test]
    fn existing_files_need_overwrite() {
        let offer = Offer::new("a.bin", 1000, false);
        assert_eq!(
            reason(plan_receive(&offer, &facts(true, None), false)),
            "a.bin already exists; the receiver was not started with --overwrite"
        );
        assert_eq!(plan_receive(&offer, &facts(true, None), true), ready(0));
        assert_eq!(
            plan_receive(&offer, &facts(true, Some(10)), true),
            ready(10)
        );
    }

    #[test]
    fn other_versions_are_refused_naming_both() {
        let mut offer = Offer::new("a.bin", 1, false);
        offer.version = 2;
        assert_eq!(
            reason(plan_receive(&offer, &DiskFacts::default(), true)),
            "the sender speaks protocol version 2; this receiver speaks version 1"
        );
        offer.version = 0;
        assert_eq!(
            reason(plan_receive(&offer, &DiskFacts::default(), true)),
            "the offer carries no protocol version; this receiver speaks version 1"
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        let offer = Offer::new("../../etc/passwd", 1, false);
        let r = reason(plan_receive(&offer, &DiskFacts::default(), true));
        assert_eq!(r, check_name("../../etc/passwd").unwrap_err().to_string());
    }

    #[test]
    fn size_limit() {
        let offer = Offer::new("a.bin", 1001, false);
        let none = DiskFacts::default();
        assert_eq!(
            reason(plan_receive_with_limit(&offer, &none, false, Some(1000))),
            "a.bin is 1001 bytes (1001 B); this receiver takes at most 1000 bytes (1000 B)"
        );
        assert_eq!(
            plan_receive_with_limit(&offer, &none, false, Some(1001)),
            ready(0)
        );
        assert_eq!(
            plan_receive_with_limit(&offer, &none, false, None),
            ready(0)
        );
    }

    // --- judge -----------------------------------------------------------

    const D1: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    const D2: &str = "0000000000000000a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn rate_floor_judges_each_window_of_waiting() {
        let w = Duration::from_secs(10);
        let mut f = RateFloor::new(100, w);
        assert_eq!(f.wait_limit(), w);
        // A fast sender: windows pass and restart.
        for _ in 0..5 {
            assert!(f.record(500, Duration::from_secs(2)).is_ok());
        }
        assert_eq!(f.wait_limit(), w);
        // Silence, one timed-out wait per window: judged at the window's end.
        assert!(f.record(0, Duration::from_secs(4)).is_ok());
        assert_eq!(f.wait_limit(), Duration::from_secs(6));
        let e = f.record(0, Duration::from_secs(6)).unwrap_err();
        assert_eq!((e.bytes, e.waited, e.min), (0, w, 100));
        // Exactly the floor passes; one byte under does not.
        assert!(f.record(1000, w).is_ok());
        assert!(f.record(999, w).is_err());
        // A zero window is one second, not a division by zero.
        let mut z = RateFloor::new(1, Duration::ZERO);
        assert!(z.record(1, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn judge_sizes() {
        let offer = Offer::new("a.bin", 1000, true);
        let v = judge(&offer, 999, Some(D1), Some(D1));
        assert_eq!(v, Verdict::retry("received 999 of 1000 bytes"));
        assert_eq!(
            judge(&offer, 1001, Some(D1), Some(D1)).message,
            "received 1001 of 1000 bytes"
        );
    }

    #[test]
    fn judge_digests() {
        let offer = Offer::new("a.bin", 1000, true);
        assert_eq!(judge(&offer, 1000, Some(D1), Some(D1)), Verdict::success());
        assert_eq!(judge(&offer, 1000, Some(D1), Some(D1)).message, "Gracias.");
        // Case does not matter.
        let upper = D1.to_ascii_uppercase();
        assert!(judge(&offer, 1000, Some(&upper), Some(D1)).ok);
        assert_eq!(
            judge(&offer, 1000, Some(D1), Some(D2)).message,
            "digest mismatch: the sender has af1349b9f5f9a1a6..., the receiver got \
             0000000000000000..."
        );
        assert_eq!(
            judge(&offer, 1000, None, Some(D1)).message,
            "the sender promised a BLAKE3 digest (verify) but sent none"
        );
        assert_eq!(
            judge(&offer, 1000, Some("xyz"), Some(D1)).message,
            "the sender's digest \"xyz\" is not 64 hex digits"
        );
        let long = "g".repeat(10_000);
        let m = judge(&offer, 1000, Some(&long), Some(D1)).message;
        assert!(m.len() < 80, "{m}");
        assert_eq!(
            judge(&offer, 1000, Some(D1), None).message,
            "the receiver computed no digest to compare with"
        );
    }

    #[test]
    fn judge_without_verify() {
        let offer = Offer::new("a.bin", 1000, false);
        assert!(judge(&offer, 1000, None, None).ok);
        // An unasked digest is ignored unless the receiver hashed too.
        assert!(judge(&offer, 1000, Some(D1), None).ok);
        assert!(!judge(&offer, 1000, Some(D1), Some(D2)).ok);
        assert!(judge(&offer, 1000, Some(D1), Some(D1)).ok);
    }

    #[test]
    fn offsets_past_the_end_are_errors() {
        let offer = Offer::new("a.bin", 1000, false);
        assert_eq!(bytes_to_send(&offer, 0), Ok(1000));
        assert_eq!(bytes_to_send(&offer, 1000), Ok(0));
        let e = bytes_to_send(&offer, 2000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the receiver asked to resume at byte 2000 of a 1000-byte file"
        );
    }

    // --- numbered_name ---------------------------------------------------

    #[test]
    fn numbered_names() {
        let taken = |list: &'static [&'static str]| move |n: &str| list.contains(&n);
        assert_eq!(numbered_name("recibido.bin", taken(&[])), "recibido.bin");
        assert_eq!(
            numbered_name("recibido.bin", taken(&["recibido.bin"])),
            "recibido-1.bin"
        );
        assert_eq!(
            numbered_name(
                "recibido.bin",
                taken(&["recibido.bin", "recibido-1.bin", "recibido-3.bin"])
            ),
            "recibido-2.bin"
        );
        assert_eq!(numbered_name("notas", taken(&["notas"])), "notas-1");
        assert_eq!(numbered_name(".bashrc", taken(&[".bashrc"])), ".bashrc-1");
        assert_eq!(
            numbered_name("a.tar.gz", taken(&["a.tar.gz"])),
            "a-1.tar.gz"
        );
        assert_eq!(numbered_name("a.b.c", taken(&["a.b.c"])), "a.b-1.c");
        assert_eq!(numbered_name(".tar.gz", taken(&[".tar.gz"])), ".tar-1.gz");
    }

    #[test]
    fn numbered_names_stay_valid_when_long() {
        let name = format!("{}.bin", "é".repeat(125)); // 254 bytes
        let numbered = numbered_name(&name, |n| n == name);
        assert!(numbered.len() <= MAX_NAME_BYTES, "{}", numbered.len());
        assert!(numbered.ends_with("-1.bin"));
        assert_eq!(check_name(&numbered), Ok(numbered.as_str()));
    }

    /// Found by the `files` fuzz target: an extension of 254 bytes left no
    /// room for the number, and the result had 256 bytes.
    #[test]
    fn numbered_names_fit_when_the_extension_is_most_of_the_name() {
        let name = format!(" . {}", "\u{FFFD}".repeat(84)); // 255 bytes
        assert_eq!(name.len(), MAX_NAME_BYTES);
        let first = numbered_name(&name, |n| n == name);
        let second = numbered_name(&name, |n| n == name || n == first);
        for numbered in [&first, &second] {
            assert!(numbered.len() <= MAX_NAME_BYTES, "{}", numbered.len());
            assert_ne!(numbered, &name);
        }
        assert!(first.ends_with("-1") && second.ends_with("-2"), "{first:?}");
    }

    // --- Progress and formatting -----------------------------------------

    #[test]
    fn progress_math() {
        let mut p = Progress::new(1000, 250);
        assert_eq!(p.percent(), 25.0);
        assert_eq!(p.remaining(), 750);
        p.advance(10_000);
        assert!(p.is_complete());
        assert_eq!(p.percent(), 100.0);
        assert_eq!(p.rate_and_eta(1000, 2.0), (500.0, Some(0.0)));
        assert_eq!(Progress::new(0, 0).percent(), 100.0);
        let p = Progress::new(1000, 0);
        assert_eq!(p.rate_and_eta(0, 0.0), (0.0, None));
        assert_eq!(p.rate_and_eta(0, 5.0), (0.0, None));
        assert_eq!(p.rate_and_eta(10, f64::NAN), (0.0, None));
        assert_eq!(p.rate_and_eta(250, 0.5), (500.0, Some(2.0)));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(5_000_000_000), "4.7 GiB");
        assert_eq!(human_bytes(1 << 40), "1.0 TiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn summaries() {
        assert_eq!(
            format_summary("enviar.bin", 2 << 30, 1.23),
            "enviar.bin: 2.0 GiB in 1.23 s (1745.9 MB/s)"
        );
        assert_eq!(
            format_summary("a", 10, 0.0),
            "a: 10 B in 0.00 s (rate not measurable)"
        );
    }

    // --- The wire --------------------------------------------------------

    /// Just the tag of an encoded [`Answer`].
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        kind: String,
    }

    #[test]
    fn messages_round_trip_in_msgpack() {
        let offer = Offer::new("año.bin", u64::MAX, true);
        let bytes = CODEC.to_vec(&offer).unwrap();
        assert_eq!(bytes[0], 0x84, "a map of four fields");
        assert_eq!(CODEC.decode::<Offer>(&bytes).unwrap(), offer);

        for answer in [
            Answer::Ready { offset: 0 },
            Answer::Ready { offset: u64::MAX },
            Answer::Refused {
                reason: "no".into(),
            },
        ] {
            let bytes = CODEC.to_vec(&answer).unwrap();
            assert_eq!(CODEC.decode::<Answer>(&bytes).unwrap(), answer);
        }

        for done in [
            Done { digest: None },
            Done {
                digest: Some(D1.into()),
            },
        ] {
            let bytes = CODEC.to_vec(&done).unwrap();
            assert_eq!(CODEC.decode::<Done>(&bytes).unwrap(), done);
        }

        for verdict in [
            Verdict::success(),
            Verdict::failure("received 1 of 2 bytes"),
        ] {
            let bytes = CODEC.to_vec(&verdict).unwrap();
            assert_eq!(CODEC.decode::<Verdict>(&bytes).unwrap(), verdict);
        }
    }

    #[test]
    fn answers_are_maps_tagged_by_type() {
        let bytes = CODEC.to_vec(&Answer::Ready { offset: 0 }).unwrap();
        // fixmap of 2: "type" -> "Ready", "offset" -> 0, as Python's msgpack
        // packs {"type": "Ready", "offset": 0}.
        let mut python = vec![0x82, 0xa4];
        python.extend_from_slice(b"type");
        python.push(0xa5);
        python.extend_from_slice(b"Ready");
        python.push(0xa6);
        python.extend_from_slice(b"offset");
        python.push(0x00);
        assert_eq!(bytes, python);
        assert_eq!(CODEC.decode::<Tag>(&bytes).unwrap().kind, "Ready");

        let refused = CODEC
            .to_vec(&Answer::Refused { reason: "x".into() })
            .unwrap();
        assert_eq!(CODEC.decode::<Tag>(&refused).unwrap().kind, "Refused");
        let as_map: std::collections::BTreeMap<String, String> = CODEC.decode(&refused).unwrap();
        assert_eq!(as_map["reason"], "x");
    }

    #[test]
    fn python_shaped_messages_decode() {
        // {"offset": 7, "type": "Ready"}: key order does not matter.
        let mut bytes = vec![0x82, 0xa6];
        bytes.extend_from_slice(b"offset");
        bytes.push(0x07);
        bytes.push(0xa4);
        bytes.extend_from_slice(b"type");
        bytes.push(0xa5);
        bytes.extend_from_slice(b"Ready");
        assert_eq!(
            CODEC.decode::<Answer>(&bytes).unwrap(),
            Answer::Ready { offset: 7 }
        );

        // An offer without version or verify, plus an unknown field.
        #[derive(Serialize)]
        struct Old<'a> {
            name: &'a str,
            size: u64,
            extra: bool,
        }
        let old = CODEC
            .to_vec(&Old {
                name: "a",
                size: 3,
                extra: true,
            })
            .unwrap();
        let offer: Offer = CODEC.decode(&old).unwrap();
        assert_eq!(
            offer,
            Offer {
                version: 0,
                name: "a".into(),
                size: 3,
                verify: false
            }
        );
        assert!(matches!(
            plan_receive(&offer, &DiskFacts::default(), false),
            Answer::Refused { .. }
        ));

        // {"digest": nil} and {} are both "no digest".
        assert_eq!(
            CODEC
                .decode::<Done>(&[0x81, 0xa6, b'd', b'i', b'g', b'e', b's', b't', 0xc0])
                .unwrap(),
            Done { digest: None }
        );
        assert_eq!(
            CODEC.decode::<Done>(&[0x80]).unwrap(),
            Done { digest: None }
        );

        // An unknown answer type is an error, not a guess.
        let mut unknown = vec![0x81, 0xa4];
        unknown.extend_from_slice(b"type");
        unknown.push(0xa5);
        unknown.extend_from_slice(b"Maybe");
        assert!(CODEC.decode::<Answer>(&unknown).is_err());
    }
}
