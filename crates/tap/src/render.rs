//! Making a payload readable for a person: text, JSON, MessagePack shown as
//! JSON, or hex, whichever the bytes turn out to be.
//!
//! A tap shows frames it did not write and cannot trust, so every function
//! here takes any bytes (a whole payload or only its first bytes) and never
//! fails: what cannot be read one way is shown the next.

/// How [`render`] shows a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeAs {
    /// Printable UTF-8 text (as JSON if it is a JSON document), else
    /// MessagePack shown as JSON, else hex.
    Auto,
    /// UTF-8 text, with anything invalid shown as `\xNN`.
    Text,
    /// JSON, or hex if it is not JSON.
    Json,
    /// MessagePack shown as JSON, or hex if it is not MessagePack.
    MsgPack,
    /// Hex bytes.
    Hex,
}

impl std::str::FromStr for DecodeAs {
    type Err = String;
    fn from_str(s: &str) -> Result<DecodeAs, String> {
        match s {
            "auto" => Ok(DecodeAs::Auto),
            "text" => Ok(DecodeAs::Text),
            "json" => Ok(DecodeAs::Json),
            "msgpack" | "messagepack" => Ok(DecodeAs::MsgPack),
            "hex" => Ok(DecodeAs::Hex),
            other => Err(format!(
                "unknown payload display {other:?} (expected auto, text, json, msgpack or hex)"
            )),
        }
    }
}

/// A payload made readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// What it was read as: `"text"`, `"json"`, `"msgpack"` or `"hex"`.
    pub kind: &'static str,
    /// The readable form: escaped text, JSON as spelled, MessagePack as JSON, or hex pairs.
    pub text: String,
}

/// Show `bytes` (a whole payload, or its first bytes when `whole` is false)
/// the way `display` asks.
///
/// A cut payload is never a whole JSON or MessagePack value, so for one
/// `Auto` shows the text or hex of the part that is there; a multi-byte
/// character cut at the end does not make text count as invalid.
///
/// ```
/// use trama_tap::{render, DecodeAs};
///
/// assert_eq!(render(DecodeAs::Auto, b"hola", true).text, "hola");
/// assert_eq!(render(DecodeAs::Auto, b"\x81\xa1a\x01", true).text, r#"{"a":1}"#);
/// assert_eq!(render(DecodeAs::Auto, b"\xff\x00", true).text, "ff 00");
/// ```
pub fn render(display: DecodeAs, bytes: &[u8], whole: bool) -> Rendered {
    let hex = || Rendered {
        kind: "hex",
        text: hex_pairs(bytes),
    };
    match display {
        DecodeAs::Hex => hex(),
        DecodeAs::Text => Rendered {
            kind: "text",
            text: escape_text(bytes),
        },
        DecodeAs::Json => json(bytes).unwrap_or_else(hex),
        DecodeAs::MsgPack => msgpack(bytes).unwrap_or_else(hex),
        DecodeAs::Auto => {
            if let Some(text) = printable(bytes, whole) {
                let looks_json = matches!(text.trim_start().chars().next(), Some('{' | '['));
                if whole && looks_json {
                    if let Some(j) = json(bytes) {
                        return j;
                    }
                }
                return Rendered {
                    kind: "text",
                    text: escape_text(bytes),
                };
            }
            if whole {
                if let Some(m) = msgpack(bytes) {
                    return m;
                }
            }
            hex()
        }
    }
}

/// JSON is shown as the bytes spell it (key order, spacing, escapes), only
/// checked to be JSON: someone debugging a payload must see what was sent,
/// not a re-encoding of it.
fn json(bytes: &[u8]) -> Option<Rendered> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).ok()?;
    // Valid JSON is UTF-8. On one line it is shown untouched (a backslash
    // stays one backslash); pretty-printed JSON gets its line ends escaped.
    let text = match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => escape_text(bytes),
    };
    Some(Rendered { kind: "json", text })
}

fn msgpack(bytes: &[u8]) -> Option<Rendered> {
    let v: serde_json::Value = trama_protocol::Codec::MsgPack.decode(bytes).ok()?;
    // A lone number or string is too easily random bytes; only containers
    // (what an app sends as a message) count in auto mode and here alike.
    if !(v.is_object() || v.is_array()) {
        return None;
    }
    Some(Rendered {
        kind: "msgpack",
        text: v.to_string(),
    })
}

/// The bytes as UTF-8 if they are printable text (tabs and line ends allowed).
/// For a cut payload, an incomplete character at the very end is allowed.
fn printable(bytes: &[u8], whole: bool) -> Option<&str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) if !whole && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let ok = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'));
    ok.then_some(text)
}

/// UTF-8 text with control characters escaped (`\n`, `\u{1b}`) and invalid
/// bytes shown as `\xNN`, so one payload is always one line.
pub fn escape_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `bytes` as lowercase hex pairs separated by spaces: `00 00 00 04`.
pub fn hex_pairs(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::Codec;

    #[test]
    fn render_auto_picks_a_readable_form() {
        let r = |b: &[u8]| render(DecodeAs::Auto, b, true);
        assert_eq!(r(b"hola \xc3\xa9").kind, "text");
        assert_eq!(r(b"hola \xc3\xa9").text, "hola é");
        assert_eq!(r(b"line\nnext").text, "line\\nnext");
        let j = r(br#"{"1": "Hola", "2": "Chao"}"#);
        assert_eq!(
            (j.kind, j.text.as_str()),
            ("json", r#"{"1": "Hola", "2": "Chao"}"#)
        );
        // As spelled: keys in their order, escapes kept.
        let j = r(br#"{"z": 1, "a": "\u00e9"}"#);
        assert_eq!(j.text, r#"{"z": 1, "a": "\u00e9"}"#);
        #[derive(serde::Serialize)]
        struct Persona {
            nombre: &'static str,
            correo: &'static str,
        }
        let mp = Codec::MsgPack
            .to_vec(&Persona {
                nombre: "Juan",
                correo: "jp@x",
            })
            .unwrap();
        let m = r(&mp);
        assert_eq!(
            (m.kind, m.text.as_str()),
            ("msgpack", r#"{"correo":"jp@x","nombre":"Juan"}"#)
        );
        assert_eq!(r(b"\x00\x01\xfe").text, "00 01 fe");
        assert_eq!(r(b"").kind, "text");
    }

    #[test]
    fn render_of_a_cut_payload_keeps_text_whose_last_character_is_cut() {
        // "olé" cut after the first byte of "é".
        let r = render(DecodeAs::Auto, b"ol\xc3", false);
        assert_eq!(r.kind, "text");
        assert_eq!(r.text, "ol\\xc3");
        // A cut JSON document is shown as the text it starts with.
        assert_eq!(render(DecodeAs::Auto, b"{\"a\":", false).kind, "text");
    }

    #[test]
    fn render_forced_modes() {
        assert_eq!(render(DecodeAs::Hex, b"ab", true).text, "61 62");
        assert_eq!(render(DecodeAs::Text, b"a\xffb", true).text, "a\\xffb");
        assert_eq!(render(DecodeAs::Json, b"nope", true).kind, "hex");
        assert_eq!(render(DecodeAs::Json, b"12", true).text, "12");
        assert_eq!(render(DecodeAs::MsgPack, b"\xc1", true).kind, "hex");
        assert_eq!(
            render(DecodeAs::MsgPack, b"\x92\x01\x02", true).text,
            "[1,2]"
        );
    }

    #[test]
    fn any_bytes_render_without_panicking() {
        let mut x: u32 = 1;
        for n in 0..2000usize {
            let bytes: Vec<u8> = (0..n % 40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for d in [
                DecodeAs::Auto,
                DecodeAs::Text,
                DecodeAs::Json,
                DecodeAs::MsgPack,
                DecodeAs::Hex,
            ] {
                render(d, &bytes, n % 2 == 0);
            }
        }
    }
}
