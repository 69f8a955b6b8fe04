//! Recording a session (`trama-tap --record FILE`) and replaying it
//! (`trama-tap replay FILE`).
//!
//! A recording is JSON lines (docs/TAP.md describes them): a first line with
//! the wire format, then one line per event in the order the tap saw them:
//!
//! ```text
//! {"trama_tap_record":1,"framing":"framed","header_bytes":4,"byte_order":"big","max_frame":16777216,"upstream":"127.0.0.1:8080","started":1796420000.123456}
//! {"t":0.000812,"conn":1,"event":"open","client":"127.0.0.1:51234","server":"127.0.0.1:8080"}
//! {"t":0.001204,"conn":1,"dir":"c2s","data":"00000004686f6c61"}
//! {"t":0.001530,"conn":1,"dir":"s2c","data":"00000004686f6c61"}
//! {"t":0.002101,"conn":1,"dir":"c2s","event":"end"}
//! {"t":0.002290,"conn":1,"dir":"s2c","event":"end"}
//! {"t":0.002301,"conn":1,"event":"close"}
//! ```
//!
//! `data` is the hex of one chunk exactly as it was read from the sender.
//! `started` (Unix time of the start, in seconds) and the addresses of an
//! open line came later: a reader takes a recording without them
//! (`trama-tap pcap` makes addresses up then).
//! Replaying sends each recorded client chunk to the server in order; before
//! each one it waits (up to `--timeout`) until the server has answered as
//! much as it had at that point of the recording, so a request-reply
//! conversation is replayed in step. Then the answers are compared frame by
//! frame (byte by byte for a raw recording).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use trama_protocol::{ByteOrder, Decoder, FrameConfig, HeaderWidth};
use trama_transport::Gate;

use crate::{render, DecodeAs, Direction, ProxyEvent, TapResult};

/// What to replay, where, and how to show what differs.
#[derive(Debug, Clone)]
pub struct Replay {
    /// A file written by a [`Recorder`].
    pub file: PathBuf,
    /// The server to play it against.
    pub to: String,
    /// Replay only this connection of the recording (`None`: all, one after another).
    pub conn: Option<u64>,
    /// How long to wait for each expected answer, and for connecting.
    pub timeout: Duration,
    /// How differing payloads are shown.
    pub decode: DecodeAs,
    /// Show at most this many bytes of a differing payload.
    pub show: usize,
}

/// Version written in (and required of) the first line.
pub(crate) const VERSION: u64 = 1;
/// Longest line accepted when reading a recording (a 64 KiB chunk in hex is 128 KiB).
pub(crate) const MAX_LINE: u64 = 4 << 20;
/// Most answer bytes held per connection while replaying.
const MAX_ANSWER: usize = 256 << 20;

/// Writes the session as it happens.
pub struct Recorder {
    out: BufWriter<File>,
    failed: bool,
}

impl Recorder {
    /// Create `path` and write the header line.
    pub fn create(path: &Path, frame: FrameConfig, upstream: &str) -> TapResult<Recorder> {
        let file = File::create(path)
            .map_err(|e| format!("cannot create the recording {}: {e}", path.display()))?;
        let mut r = Recorder {
            out: BufWriter::new(file),
            failed: false,
        };
        let header = json!({
            "trama_tap_record": VERSION,
            "framing": if frame.is_unframed() { "raw" } else { "framed" },
            "header_bytes": frame.width().bytes(),
            "byte_order": if frame.order() == ByteOrder::Little { "little" } else { "big" },
            "max_frame": frame.max_frame_len(),
            "upstream": upstream,
            "started": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| (d.as_secs_f64() * 1e6).round() / 1e6),
        });
        r.line(&header);
        Ok(r)
    }

    /// Record one proxy event that happened `t` seconds after the start.
    pub fn event(&mut self, t: f64, event: &ProxyEvent<'_>) {
        let t = (t * 1e6).round() / 1e6;
        let v = match event {
            ProxyEvent::Opened {
                conn,
                client,
                server,
                ..
            } => json!({"t": t, "conn": conn, "event": "open",
                "client": client.to_string(), "server": server.to_string()}),
            ProxyEvent::Data { conn, dir, bytes } => {
                json!({"t": t, "conn": conn, "dir": dir.as_str(), "data": hex(bytes)})
            }
            ProxyEvent::Ended { conn, dir, .. } => {
                json!({"t": t, "conn": conn, "dir": dir.as_str(), "event": "end"})
            }
            ProxyEvent::Fault { conn, dir, what } => {
                json!({"t": t, "conn": conn, "dir": dir.as_str(), "event": "fault", "what": what})
            }
            ProxyEvent::Closed { conn } => json!({"t": t, "conn": conn, "event": "close"}),
            _ => return,
        };
        self.line(&v);
    }

    fn line(&mut self, v: &serde_json::Value) {
        if self.failed {
            return;
        }
        // Flushed per line: the recording is complete up to the last event
        // even if the tap is killed.
        let written = serde_json::to_writer(&mut self.out, v)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(e) = written {
            log::error!("cannot write the recording: {e}; recording stops here");
            self.failed = true;
        }
    }

    /// Flush what is buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(crate) fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("not hex at digit {i}"))
        })
        .collect()
}

#[derive(Deserialize)]
struct Header {
    trama_tap_record: u64,
    framing: String,
    header_bytes: usize,
    byte_order: String,
    max_frame: usize,
}

#[derive(Deserialize)]
struct Line {
    conn: u64,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

/// What one connection of a recording did, in order.
enum Entry {
    Send(Vec<u8>),
    Answer(Vec<u8>),
    ClientEnd,
    ServerEnd,
}

struct Recording {
    frame: FrameConfig,
    conns: Vec<(u64, Vec<Entry>)>,
}

fn read_recording(path: &Path) -> TapResult<Recording> {
    let file = File::open(path)
        .map_err(|e| format!("cannot open the recording {}: {e}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut buf = String::new();
    let mut next_line = |n: usize| -> TapResult<Option<String>> {
        buf.clear();
        let read = (&mut reader).take(MAX_LINE).read_line(&mut buf)?;
        if read == 0 {
            return Ok(None);
        }
        if !buf.ends_with('\n') && read as u64 == MAX_LINE {
            return Err(format!("line {n} is longer than {MAX_LINE} bytes").into());
        }
        Ok(Some(buf.trim_end().to_string()))
    };
    let first = next_line(1)?.ok_or("the recording is empty")?;
    let header: Header = serde_json::from_str(&first)
        .map_err(|e| format!("line 1 is not a trama-tap recording header: {e}"))?;
    if header.trama_tap_record != VERSION {
        return Err(format!(
            "recording version {} (this trama-tap reads version {VERSION})",
            header.trama_tap_record
        )
        .into());
    }
    let frame = if header.framing == "raw" {
        FrameConfig::builder()
            .framing(trama_protocol::Framing::Unframed)
            .max_frame_len(header.max_frame.max(1))
            .build()?
    } else {
        let width = HeaderWidth::from_bytes(header.header_bytes)
            .ok_or_else(|| format!("header_bytes {} is not 1, 2, 4 or 8", header.header_bytes))?;
        let order = if header.byte_order == "little" {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        };
        FrameConfig::builder()
            .width(width)
            .order(order)
            .max_frame_len(header.max_frame)
            .build()?
    };
    let mut conns: Vec<(u64, Vec<Entry>)> = Vec::new();
    let mut n = 1;
    while let Some(text) = next_line(n + 1)? {
        n += 1;
        if text.is_empty() {
            continue;
        }
        let line: Line =
            serde_json::from_str(&text).map_err(|e| format!("line {n} does not parse: {e}"))?;
        let dir = match line.dir.as_deref() {
            Some(d) => Some(
                d.parse::<Direction>()
                    .map_err(|e| format!("line {n}: {e}"))?,
            ),
            None => None,
        };
        let entry = match (dir, line.data, line.event.as_deref()) {
            (Some(d), Some(data), _) => {
                let bytes = unhex(&data).map_err(|e| format!("line {n}: data is {e}"))?;
                match d {
                    Direction::ClientToServer => Entry::Send(bytes),
                    Direction::ServerToClient => Entry::Answer(bytes),
                }
            }
            (Some(Direction::ClientToServer), None, Some("end")) => Entry::ClientEnd,
            (Some(Direction::ServerToClient), None, Some("end")) => Entry::ServerEnd,
            // Opens, closes and faults are for people reading the file.
            _ => continue,
        };
        match conns.iter_mut().find(|(c, _)| *c == line.conn) {
            Some((_, entries)) => entries.push(entry),
            None => conns.push((line.conn, vec![entry])),
        }
    }
    Ok(Recording { frame, conns })
}

/// Replay the recording; true when every answer matched. The report goes
/// to stdout; when stdout cannot take a line (its reader left, as in
/// `| head -1`) the replay stops there with a [`StdoutError`](crate::StdoutError).
pub fn replay(args: &Replay) -> TapResult<bool> {
    let rec = read_recording(&args.file)?;
    let chosen: Vec<&(u64, Vec<Entry>)> = rec
        .conns
        .iter()
        .filter(|(c, _)| args.conn.is_none_or(|want| want == *c))
        .collect();
    if chosen.is_empty() {
        return Err(match args.conn {
            Some(c) => format!("the recording has no connection {c}"),
            None => "the recording has no connection".to_string(),
        }
        .into());
    }
    let mut differing = 0;
    for (conn, entries) in &chosen {
        let lines = replay_conn(*conn, entries, rec.frame, args)?;
        if lines.iter().any(|l| l.differs) {
            differing += 1;
        }
        for l in lines {
            say(&format!("connection {conn}: {}", l.text))?;
        }
    }
    say(&format!(
        "replayed {} connection(s) against {}: {}",
        chosen.len(),
        args.to,
        if differing == 0 {
            "all answers match".to_string()
        } else {
            format!("{differing} with differences")
        }
    ))?;
    Ok(differing == 0)
}

/// Print one line of the report, or say why stdout would not take it.
fn say(line: &str) -> Result<(), crate::StdoutError> {
    crate::show::write_line(line).map_err(crate::StdoutError)
}

/// One line of the report.
struct Finding {
    differs: bool,
    text: String,
}

/// What the server has sent so far.
#[derive(Default)]
struct Answers {
    bytes: Vec<u8>,
    /// Bytes that arrived past [`MAX_ANSWER`] and were not kept.
    overflow: u64,
    eof: bool,
    error: Option<String>,
}

fn replay_conn(
    conn: u64,
    entries: &[Entry],
    frame: FrameConfig,
    args: &Replay,
) -> TapResult<Vec<Finding>> {
    let mut stream = trama_transport::connect(&args.to, args.timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(args.timeout))?;
    let shared = Arc::new((Mutex::new(Answers::default()), Condvar::new()));
    // The reader waits at a gate, which ends its wait on every platform
    // (a shutdown does not wake a blocked read on Windows).
    let gate = Arc::new(Gate::new(&stream)?);
    let thread = {
        let (shared, gate) = (shared.clone(), gate.clone());
        std::thread::Builder::new()
            .name(format!("replay-{conn}"))
            .spawn(move || read_answers(&gate, &shared))?
    };
    // However this function returns, the reader is woken and joined.
    let reader = Reader {
        gate,
        thread: Some(thread),
    };
    let mut expected = Vec::new();
    let mut expect_eof = false;
    let mut sent = 0usize;
    let mut findings = Vec::new();
    for e in entries {
        match e {
            Entry::Send(bytes) => {
                wait_for(&shared, &expected, Wait::Step, args.timeout);
                if let Err(e) = stream.write_all(bytes) {
                    findings.push(Finding {
                        differs: true,
                        text: format!("the server stopped taking requests after {sent} bytes: {e}"),
                    });
                    break;
                }
                sent += bytes.len();
            }
            Entry::Answer(bytes) => {
                if expected.len() + bytes.len() > MAX_ANSWER {
                    return Err(format!(
                        "connection {conn} recorded more than {MAX_ANSWER} answer bytes"
                    )
                    .into());
                }
                expected.extend_from_slice(bytes);
            }
            Entry::ClientEnd => {
                wait_for(&shared, &expected, Wait::Step, args.timeout);
                let _ = stream.shutdown(Shutdown::Write);
            }
            Entry::ServerEnd => expect_eof = true,
        }
    }
    wait_for(
        &shared,
        &expected,
        Wait::End { eof: expect_eof },
        args.timeout,
    );
    drop(reader);
    let got = match shared.0.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(_) => return Err("the reader thread failed".into()),
    };
    findings.extend(compare(&expected, &got, frame, args));
    if expect_eof && !got.eof && got.error.is_none() {
        findings.push(Finding {
            differs: true,
            text: format!(
                "the recorded server closed the connection; this one had not within {:?}",
                args.timeout
            ),
        });
    }
    Ok(findings)
}

/// A connection's answer reader: dropping it closes the gate (which ends
/// the reader's wait and shuts the socket) and waits for the thread.
struct Reader {
    gate: Arc<Gate>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.gate.close(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_answers(gate: &Gate, shared: &(Mutex<Answers>, Condvar)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let r = gate.read(gate.socket(), &mut buf);
        // Closed by the replay: what the read saw (the gate's refusal, or
        // the end our own shutdown made) is not the server's doing.
        if gate.is_closed() {
            return;
        }
        let Ok(mut g) = shared.0.lock() else { return };
        match r {
            Ok(0) => g.eof = true,
            Ok(n) => {
                let room = MAX_ANSWER.saturating_sub(g.bytes.len()).min(n);
                g.bytes.extend_from_slice(&buf[..room]);
                g.overflow += (n - room) as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => g.error = Some(e.to_string()),
        }
        let done = g.eof || g.error.is_some();
        shared.1.notify_all();
        if done {
            return;
        }
    }
}

/// What [`wait_for`] waits for.
#[derive(Clone, Copy)]
enum Wait {
    /// Before the next client chunk: the server has caught up with the
    /// recording, or has already answered differently (the conversation
    /// is no longer in step, so there is nothing to wait for).
    Step,
    /// After the last chunk: the server has sent all the recording had
    /// (and, with `eof`, closed). Not cut short by a difference, so the
    /// report shows what the server answered (a `#FAILURE#` after a
    /// challenge that differs) rather than whatever had arrived first.
    End {
        /// Wait for the server to close too.
        eof: bool,
    },
}

/// Wait as `wait` says, or until the server ended, or `timeout`.
fn wait_for(shared: &(Mutex<Answers>, Condvar), expected: &[u8], wait: Wait, timeout: Duration) {
    let (eof, stop_at_difference) = match wait {
        Wait::Step => (false, true),
        Wait::End { eof } => (eof, false),
    };
    let deadline = Instant::now() + timeout;
    let Ok(mut g) = shared.0.lock() else { return };
    loop {
        let n = g.bytes.len().min(expected.len());
        let diverged = g.bytes[..n] != expected[..n];
        let enough = g.bytes.len() >= expected.len() && (!eof || g.eof);
        if enough || (diverged && stop_at_difference) || g.eof || g.error.is_some() {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        g = match shared.1.wait_timeout(g, deadline - now) {
            Ok((g, _)) => g,
            Err(_) => return,
        };
    }
}

fn show(payload: &[u8], args: &Replay) -> String {
    let head = &payload[..payload.len().min(args.show)];
    let r = render(args.decode, head, head.len() == payload.len());
    format!("{} bytes, {} `{}`", payload.len(), r.kind, r.text)
}

fn compare(expected: &[u8], got: &Answers, frame: FrameConfig, args: &Replay) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(e) = &got.error {
        out.push(Finding {
            differs: false,
            text: format!("reading the answers ended with: {e}"),
        });
    }
    if got.overflow > 0 {
        out.push(Finding {
            differs: true,
            text: format!(
                "{} answer bytes beyond {MAX_ANSWER} were not kept",
                got.overflow
            ),
        });
    }
    if frame.is_unframed() {
        out.extend(compare_bytes(expected, &got.bytes));
        return out;
    }
    let want = split_frames(expected, frame);
    let have = split_frames(&got.bytes, frame);
    let mut differs = false;
    for i in 0..want.frames.len().max(have.frames.len()) {
        let text = match (want.frames.get(i), have.frames.get(i)) {
            (Some(w), Some(h)) if w == h => continue,
            (Some(w), Some(h)) => format!(
                "answer frame {} differs: expected {}; got {}",
                i + 1,
                show(w, args),
                show(h, args)
            ),
            (Some(w), None) => {
                format!("answer frame {} missing: expected {}", i + 1, show(w, args))
            }
            (None, Some(h)) => format!(
                "answer frame {} was not expected: got {}",
                i + 1,
                show(h, args)
            ),
            (None, None) => continue,
        };
        differs = true;
        out.push(Finding {
            differs: true,
            text,
        });
        // The first few differences tell the story; the rest is noise.
        if out.len() >= 5 {
            break;
        }
    }
    if let Some(e) = &have.error {
        differs = true;
        out.push(Finding {
            differs: true,
            text: format!(
                "the answers break the framing after frame {}: {e}",
                have.frames.len()
            ),
        });
    }
    if !differs {
        out.push(Finding {
            differs: false,
            text: format!("{} answer frame(s), all as recorded", have.frames.len()),
        });
    }
    out
}

struct Split {
    frames: Vec<Vec<u8>>,
    error: Option<String>,
}

fn split_frames(bytes: &[u8], frame: FrameConfig) -> Split {
    let mut dec = Decoder::new(frame);
    match dec.decode_vec(bytes) {
        Ok(frames) => Split {
            frames,
            error: dec.finish().err().map(|e| e.to_string()),
        },
        Err(e) => {
            // Keep the frames before the bad header.
            let mut frames = Vec::new();
            let mut dec = Decoder::new(frame);
            let _ = dec.decode(bytes, |f| frames.push(f.to_vec()));
            Split {
                frames,
                error: Some(e.to_string()),
            }
        }
    }
}

fn compare_bytes(expected: &[u8], got: &[u8]) -> Vec<Finding> {
    let same = expected.iter().zip(got).take_while(|(a, b)| a == b).count();
    if same == expected.len() && same == got.len() {
        return vec![Finding {
            differs: false,
            text: format!("{} answer bytes, all as recorded", got.len()),
        }];
    }
    let around = |b: &[u8]| {
        let end = (same + 16).min(b.len());
        crate::hex_pairs(&b[same.min(end)..end])
    };
    vec![Finding {
        differs: true,
        text: format!(
            "answers differ at byte {same} (expected {} bytes, got {}): expected [{}], got [{}]",
            expected.len(),
            got.len(),
            around(expected),
            around(got)
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn byte_comparison_names_the_first_difference() {
        let f = compare_bytes(b"hola mundo", b"hola MUNDO");
        assert!(f[0].differs);
        assert!(
            f[0].text.starts_with("answers differ at byte 5"),
            "{}",
            f[0].text
        );
        assert!(!compare_bytes(b"same", b"same")[0].differs);
    }

    #[test]
    fn frames_split_and_a_bad_header_is_named() {
        let c = FrameConfig::default();
        let s = split_frames(b"\x00\x00\x00\x01a\xff\xff\xff\xff", c);
        assert_eq!(s.frames, [b"a".to_vec()]);
        assert!(s.error.unwrap().contains("4294967295"));
        let s = split_frames(b"\x00\x00\x00\x02a", c);
        assert!(s.frames.is_empty());
        assert!(s.error.unwrap().contains("1 of 2 payload bytes"));
    }

    /// A server that echoes one frame of 4 bytes, then closes or not.
    fn answer_once(close: bool) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut frame = [0u8; 8];
            s.read_exact(&mut frame).unwrap();
            s.write_all(&frame).unwrap();
            if !close {
                // Held open until the replay shuts its side.
                let _ = s.read(&mut [0u8; 1]);
            }
        });
        (addr, t)
    }

    fn replay_against(addr: std::net::SocketAddr) -> Vec<Finding> {
        let frame = b"\x00\x00\x00\x04hola".to_vec();
        let entries = [
            Entry::Send(frame.clone()),
            Entry::Answer(frame),
            Entry::ServerEnd,
        ];
        let args = Replay {
            file: PathBuf::new(),
            to: addr.to_string(),
            conn: None,
            timeout: Duration::from_millis(300),
            decode: DecodeAs::Auto,
            show: 64,
        };
        replay_conn(1, &entries, FrameConfig::default(), &args).unwrap()
    }

    #[test]
    fn a_server_that_does_not_close_as_recorded_is_named() {
        // Our own shutdown at the end of the replay must not count as the
        // server's close.
        let (addr, t) = answer_once(false);
        let findings = replay_against(addr);
        t.join().unwrap();
        let texts: Vec<&str> = findings.iter().map(|f| f.text.as_str()).collect();
        assert!(
            findings
                .iter()
                .any(|f| f.differs && f.text.contains("this one had not")),
            "{texts:?}"
        );
    }

    #[test]
    fn a_server_that_closes_as_recorded_matches() {
        let (addr, t) = answer_once(true);
        let findings = replay_against(addr);
        t.join().unwrap();
        let texts: Vec<&str> = findings.iter().map(|f| f.text.as_str()).collect();
        assert!(findings.iter().all(|f| !f.differs), "{texts:?}");
    }
}
