//! Checks of what peers and users name (peers, addresses), and the quoting
//! of peer-controlled strings in reasons and notices.

use super::{MAX_ADDR, MAX_NAME};

/// Characters of a peer-controlled string quoted in a reason or a notice.
const QUOTED_CHARS: usize = 64;

/// Characters of a peer's refusal reason shown in a notice.
pub(super) const REASON_CHARS: usize = 200;

/// Check a peer name: 1 to [`MAX_NAME`] characters, no white space, no
/// control characters.
pub fn valid_peer_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name has at least one character".into());
    }
    crate::chat::name_characters(name, MAX_NAME)
}

/// Check a listen address as the mesh stores and gossips it: 1 to
/// [`MAX_ADDR`] bytes, no white space, no control characters. Whether it
/// resolves is the app's business.
pub fn valid_addr(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("an address has at least one character".into());
    }
    if addr.len() > MAX_ADDR {
        return Err(format!(
            "an address has at most {MAX_ADDR} bytes, this one has {}",
            addr.len()
        ));
    }
    if let Some((i, c)) = addr
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "character {} of the address is not allowed (U+{:04X})",
            i + 1,
            c as u32
        ));
    }
    Ok(())
}

/// `s` cut to `max` characters, control characters escaped.
pub(super) fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` in quotes, cut and escaped.
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", printable(s, QUOTED_CHARS))
}
