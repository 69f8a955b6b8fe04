//! What `trama-tap` prints for each proxy event: a line for people, or one
//! JSON object per line for scripts. Every line is flushed as soon as it is
//! written, so a frame shows up while the connection is still open.
//!
//! A line that cannot be written (the reader of a pipe went away, as in
//! `trama-tap ... | head -1`, or a full disk) is returned as an error, not
//! printed about nor panicked on: the session stops and ends with a
//! [`StdoutError`], which the app turns into its exit status.

use std::io::Write;

use crate::{render, DecodeAs, Direction, Note, ProxyEvent};
use serde_json::{json, Value};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
    /// Nothing.
    Off,
}

/// What a session or a replay ends with when a line could not be written
/// to stdout. The session stopped first (and flushed its recording); a
/// closed pipe among these is the reader having read enough, not a failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Write `line` and a newline to stdout, flushed at once: stdout may be a
/// pipe to `jq` or a file, where Rust would otherwise buffer until exit.
pub(crate) fn write_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush())
}

/// Prints events on stdout.
pub struct Printer {
    format: Format,
    decode: DecodeAs,
    /// What one message is called: "frame", or "chunk" for the unframed
    /// dialect, where a message is only what one read returned.
    unit: &'static str,
}

impl Printer {
    /// A printer in `format`, showing payloads as `decode` says.
    pub fn new(format: Format, decode: DecodeAs) -> Printer {
        Printer {
            format,
            decode,
            unit: "frame",
        }
    }

    /// Call each message a "chunk" (the unframed dialect: no boundaries,
    /// only what each read returned) instead of a "frame".
    pub fn unframed(mut self, unframed: bool) -> Printer {
        self.unit = if unframed { "chunk" } else { "frame" };
        self
    }

    /// Print one event that happened `t` seconds after the tap started;
    /// `Err` when stdout cannot take the line.
    pub fn event(&self, t: f64, event: &ProxyEvent<'_>) -> std::io::Result<()> {
        let line = match self.format {
            Format::Off => {
                // Nothing per frame, but what fires or fails still goes to the log.
                if let ProxyEvent::Fault { .. } | ProxyEvent::Refused { .. } = event {
                    if let Some(line) = text_line(t, event, self.decode, self.unit) {
                        log::warn!("{}", line.trim_start());
                    }
                }
                return Ok(());
            }
            Format::Text => text_line(t, event, self.decode, self.unit),
            Format::Json => json_line(t, event, self.decode).map(|v| v.to_string()),
        };
        match line {
            Some(line) => write_line(&line),
            None => Ok(()),
        }
    }
}

fn dir_label(dir: Direction) -> String {
    format!("{} {}", dir.as_str(), dir.arrow())
}

fn text_line(t: f64, event: &ProxyEvent<'_>, decode: DecodeAs, unit: &str) -> Option<String> {
    let body = match event {
        ProxyEvent::Opened {
            conn,
            client,
            server,
            ..
        } => format!("#{conn} open {client} -> {server}"),
        ProxyEvent::Refused { client, reason } => format!("refused {client}: {reason}"),
        ProxyEvent::Note { conn, dir, note } => {
            let d = dir_label(*dir);
            match note {
                Note::Frame(f) => {
                    let r = render(decode, &f.head, !f.is_cut());
                    let cut = if f.is_cut() {
                        format!(" (first {} shown)", f.head.len())
                    } else {
                        String::new()
                    };
                    format!(
                        "#{conn} {d} {unit} {} {} bytes{cut} {}: {}",
                        f.index, f.len, r.kind, r.text
                    )
                }
                Note::Oversize {
                    index,
                    len,
                    limit,
                    header,
                    ..
                } => format!(
                    "#{conn} {d} frame {index} OVERSIZE: header {} announces {len} bytes, over the \
                     limit of {limit}; no longer decoding {} (the bytes still pass)",
                    crate::hex_pairs(header),
                    dir.as_str()
                ),
                Note::Truncated {
                    index,
                    in_header,
                    got,
                    expected,
                    ..
                } => {
                    let part = if *in_header { "header" } else { "payload" };
                    format!(
                        "#{conn} {d} frame {index} TRUNCATED: stream ended after {got} of \
                         {expected} {part} bytes"
                    )
                }
            }
        }
        ProxyEvent::Fault { conn, dir, what } => {
            format!("#{conn} {} FAULT {what}", dir_label(*dir))
        }
        ProxyEvent::Ended {
            conn,
            dir,
            bytes,
            end,
            ..
        } => format!("#{conn} {} end after {bytes} bytes: {end}", dir_label(*dir)),
        ProxyEvent::Closed { conn } => format!("#{conn} closed"),
        ProxyEvent::Data { .. } | ProxyEvent::Sent { .. } => return None,
    };
    Some(format!("{t:10.6} {body}"))
}

fn json_line(t: f64, event: &ProxyEvent<'_>, decode: DecodeAs) -> Option<Value> {
    let t = (t * 1e6).round() / 1e6;
    Some(match event {
        ProxyEvent::Opened {
            conn,
            client,
            server,
            ..
        } => json!({"t": t, "event": "open", "conn": conn,
                    "client": client.to_string(), "server": server.to_string()}),
        ProxyEvent::Refused { client, reason } => {
            json!({"t": t, "event": "refused", "client": client.to_string(), "reason": reason})
        }
        ProxyEvent::Note { conn, dir, note } => match note {
            Note::Frame(f) => {
                let r = render(decode, &f.head, !f.is_cut());
                let mut v = json!({"t": t, "event": "frame", "conn": conn, "dir": dir.as_str(),
                    "frame": f.index, "offset": f.offset, "len": f.len,
                    "shown": f.head.len(), "kind": r.kind, "payload": r.text});
                if matches!(r.kind, "json" | "msgpack") {
                    if let (Ok(value), Some(obj)) =
                        (serde_json::from_str::<Value>(&r.text), v.as_object_mut())
                    {
                        obj.insert("value".into(), value);
                    }
                }
                v
            }
            Note::Oversize {
                index,
                offset,
                len,
                limit,
                header,
            } => json!({"t": t, "event": "oversize", "conn": conn, "dir": dir.as_str(),
                "frame": index, "offset": offset, "len": len, "limit": limit,
                "header": crate::hex_pairs(header)}),
            Note::Truncated {
                index,
                offset,
                in_header,
                got,
                expected,
            } => json!({"t": t, "event": "truncated", "conn": conn, "dir": dir.as_str(),
                "frame": index, "offset": offset, "in_header": in_header,
                "got": got, "expected": expected}),
        },
        ProxyEvent::Fault { conn, dir, what } => {
            json!({"t": t, "event": "fault", "conn": conn, "dir": dir.as_str(), "what": what})
        }
        ProxyEvent::Ended {
            conn,
            dir,
            bytes,
            end,
            ..
        } => json!({"t": t, "event": "end", "conn": conn, "dir": dir.as_str(),
                    "bytes": bytes, "how": end.to_string()}),
        ProxyEvent::Closed { conn } => json!({"t": t, "event": "close", "conn": conn}),
        ProxyEvent::Data { .. } | ProxyEvent::Sent { .. } => return None,
    })
}
