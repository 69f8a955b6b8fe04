//! A `--record` recording turned into a capture (`trama-tap pcap`).
//!
//! A recording holds the chunks as each sender's bytes were read, before
//! any fault, and not what the tap wrote: so each connection becomes one
//! conversation, client to server, as if the tap had not been there. The
//! addresses are the recorded ones (the client's made up as 10.0.0.1 and a
//! port from the connection number when the recording predates them);
//! the times are the recorded ones, from the recording's start.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read};
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::Capture;
use crate::record::{unhex, MAX_LINE, VERSION};
use crate::{Direction, End, TapResult};

#[derive(Deserialize)]
struct Header {
    trama_tap_record: u64,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    started: f64,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    t: f64,
    conn: u64,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    server: Option<String>,
}

/// What a conversion wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Converted {
    /// Connections in the capture.
    pub connections: u64,
    /// Chunks of data carried.
    pub chunks: u64,
}

/// Write the recording at `recording` as a pcapng capture at `out`, one
/// line at a time (a recording of any length takes little memory).
pub fn pcap_from_recording(recording: &Path, out: &Path) -> TapResult<Converted> {
    let file = File::open(recording)
        .map_err(|e| format!("cannot open the recording {}: {e}", recording.display()))?;
    let mut reader = BufReader::new(file);
    let mut text = String::new();
    let mut n = 0;
    let mut next = |text: &mut String| -> TapResult<bool> {
        text.clear();
        n += 1;
        let read = (&mut reader).take(MAX_LINE).read_line(text)?;
        if !text.ends_with('\n') && read as u64 == MAX_LINE {
            return Err(format!("line {n} is longer than {MAX_LINE} bytes").into());
        }
        Ok(read > 0)
    };
    if !next(&mut text)? {
        return Err("the recording is empty".into());
    }
    let header: Header = serde_json::from_str(text.trim_end())
        .map_err(|e| format!("line 1 is not a trama-tap recording header: {e}"))?;
    if header.trama_tap_record != VERSION {
        return Err(format!(
            "recording version {} (this trama-tap reads version {VERSION})",
            header.trama_tap_record
        )
        .into());
    }
    let upstream: Option<SocketAddr> = header.upstream.parse().ok();
    let started = (header.started.max(0.0) * 1e6) as u64;

    let file = File::create(out)
        .map_err(|e| format!("cannot create the capture {}: {e}", out.display()))?;
    let mut capture = Capture::new(BufWriter::new(file))?;
    let mut done = Converted::default();
    let mut line_no = 1;
    while next(&mut text)? {
        line_no += 1;
        let body = text.trim_end();
        if body.is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(body)
            .map_err(|e| format!("line {line_no} does not parse: {e}"))?;
        let micros = started + (line.t.max(0.0) * 1e6) as u64;
        let dir = match line.dir.as_deref() {
            Some(d) => Some(
                d.parse::<Direction>()
                    .map_err(|e| format!("line {line_no}: {e}"))?,
            ),
            None => None,
        };
        match (dir, line.data, line.event.as_deref()) {
            (None, None, Some("open")) => {
                let client = line
                    .client
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| made_up_client(line.conn));
                let server = line
                    .server
                    .and_then(|s| s.parse().ok())
                    .or(upstream)
                    .unwrap_or_else(|| SocketAddr::from(([10, 0, 0, 2], 8080)));
                capture.open(micros, line.conn, (client, server), None)?;
                done.connections += 1;
            }
            (Some(d), Some(data), _) => {
                let bytes = unhex(&data).map_err(|e| format!("line {line_no}: data is {e}"))?;
                capture.read(micros, line.conn, d, &bytes)?;
                done.chunks += 1;
            }
            (Some(d), None, Some("end")) => {
                capture.ended(micros, line.conn, d, &End::Eof, false)?
            }
            (None, None, Some("close")) => capture.closed(micros, line.conn)?,
            // Faults are for people reading the file.
            _ => {}
        }
    }
    capture.flush()?;
    Ok(done)
}

/// A client address for a recording that did not keep it.
fn made_up_client(conn: u64) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 40_000 + (conn % 20_000) as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_becomes_one_conversation_per_connection() {
        let dir = std::env::temp_dir().join(format!("trama-pcap-convert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rec = dir.join("session.jsonl");
        std::fs::write(
            &rec,
            concat!(
                r#"{"trama_tap_record":1,"framing":"framed","header_bytes":4,"byte_order":"big","max_frame":16777216,"upstream":"127.0.0.1:8080","started":1000.5}"#, "\n",
                r#"{"t":0.1,"conn":1,"event":"open","client":"127.0.0.1:5555","server":"127.0.0.1:8080"}"#, "\n",
                r#"{"t":0.2,"conn":1,"dir":"c2s","data":"00000002686f"}"#, "\n",
                r#"{"t":0.3,"conn":1,"dir":"s2c","data":"00000002686f"}"#, "\n",
                r#"{"t":0.4,"conn":1,"dir":"c2s","event":"fault","what":"x"}"#, "\n",
                r#"{"t":0.5,"conn":1,"dir":"c2s","event":"end"}"#, "\n",
                r#"{"t":0.6,"conn":1,"event":"close"}"#, "\n",
                r#"{"t":0.7,"conn":2,"event":"open"}"#, "\n",
            ),
        )
        .unwrap();
        let out = dir.join("session.pcapng");
        let done = pcap_from_recording(&rec, &out).unwrap();
        assert_eq!(
            done,
            Converted {
                connections: 2,
                chunks: 2
            }
        );
        let file = std::fs::read(&out).unwrap();
        // Section, interface, then 3 + 2 + 2 + 2 packets and the second
        // connection's handshake.
        let mut blocks = 0;
        let mut first_packet_time = None;
        let mut b = &file[..];
        while !b.is_empty() {
            let kind = u32::from_le_bytes(b[0..4].try_into().unwrap());
            let total = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
            if kind == 6 && first_packet_time.is_none() {
                let hi = u64::from(u32::from_le_bytes(b[12..16].try_into().unwrap()));
                let lo = u64::from(u32::from_le_bytes(b[16..20].try_into().unwrap()));
                first_packet_time = Some(hi << 32 | lo);
            }
            blocks += 1;
            b = &b[total..];
        }
        assert_eq!(blocks, 2 + 9 + 3);
        assert_eq!(first_packet_time, Some(1_000_600_000));
        let err = pcap_from_recording(&dir.join("missing"), &out).unwrap_err();
        assert!(
            err.to_string().contains("cannot open the recording"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
