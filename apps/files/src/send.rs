//! `trama-files send`: offers each file, streams it, and waits for the
//! receiver's verdict; reconnects and resumes after a dropped connection.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::Shutdown;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::progress::format_summary;
use trama_backend::files::{self, Answer, Done, Offer, Verdict, PROTOCOL_VERSION};
use trama_protocol::auth::Role;
use trama_protocol::{Backoff, Codec, FrameConfig, FrameReader, FrameWriter};
use trama_transport::{Error, Stream};

use crate::progress::Progress;
use crate::{AppResult, SendArgs};

const CHUNK: usize = 256 * 1024;
/// Bytes per `sendfile` call on the unverified path, between progress updates.
const SENDFILE_STEP: u64 = 16 << 20;

/// Send every file; fail if any was not confirmed.
pub fn run(args: &SendArgs) -> AppResult {
    let mut conn: Option<Stream> = None;
    let mut failed = 0;
    for path in &args.paths {
        match send_with_retries(args, &mut conn, path) {
            Ok(summary) => trama_cli::say!("{summary}"),
            Err(e) => {
                eprintln!("trama-files: {}: {e}", path.display());
                failed += 1;
                conn = None;
            }
        }
    }
    // Say goodbye: under TLS this is the close_notify that lets the
    // receiver read a clean end instead of a cut connection.
    if let Some(stream) = conn {
        let _ = stream.shutdown(Shutdown::Both);
    }
    if failed > 0 {
        return Err(format!("{failed} of {} files not delivered", args.paths.len()).into());
    }
    Ok(())
}

/// What a try ended with, when it did not deliver the file.
enum Failure {
    /// Worth another try on a new connection (connection lost, receiver restarting).
    Retry(String),
    /// Final (refused, unreadable file).
    Fatal(String),
}

fn send_with_retries(
    args: &SendArgs,
    conn: &mut Option<Stream>,
    path: &Path,
) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the file name is not valid UTF-8")?
        .to_string();
    files::check_name(&name).map_err(|e| e.to_string())?;
    let offer = Offer {
        version: PROTOCOL_VERSION,
        name,
        size: meta.len(),
        verify: !args.no_verify,
    };
    let mut retries =
        Backoff::new(Duration::from_millis(250), Duration::from_secs(5)).retries(fastrand::u64(..));
    let mut attempt = 0;
    loop {
        match try_send(args, conn, &mut file, &offer) {
            Ok(summary) => return Ok(summary),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) => {
                *conn = None;
                attempt += 1;
                if attempt > args.retries {
                    return Err(format!("{e}; gave up after {} tries", attempt));
                }
                let delay = retries.next_delay();
                log::warn!(
                    "{}: {e}; trying again in {} ms ({attempt} of {})",
                    offer.name,
                    delay.as_millis(),
                    args.retries
                );
                std::thread::sleep(delay);
            }
        }
    }
}

/// Connect, then TLS (with `--tls-ca`), then the key (with `--key-file`)
/// inside it: the order the receiver expects.
fn connect(args: &SendArgs) -> Result<Stream, Failure> {
    let tls = args.tls.config().map_err(Failure::Fatal)?;
    let auth = args.auth.config().map_err(Failure::Fatal)?;
    let stream = Stream::connect(&args.addr, args.timeout, tls.as_ref()).map_err(|e| match e {
        // An untrusted certificate, or a receiver that refused our hello,
        // stays so: no point retrying.
        Error::TlsRejected(_) => Failure::Fatal(e.to_string()),
        e => Failure::Retry(e.to_string()),
    })?;
    if let Some(auth) = auth {
        match stream.authenticate(Role::Dialer, &auth) {
            Ok(()) => {}
            // A wrong key stays wrong: no point retrying.
            Err(e @ Error::Auth(_)) => return Err(Failure::Fatal(e.to_string())),
            Err(e) => return Err(Failure::Retry(e.to_string())),
        }
    }
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(args.timeout)))
        .and_then(|()| stream.set_write_timeout(Some(args.timeout)));
    setup.map_err(|e| Failure::Retry(e.to_string()))?;
    Ok(stream)
}

fn try_send(
    args: &SendArgs,
    conn: &mut Option<Stream>,
    file: &mut File,
    offer: &Offer,
) -> Result<String, Failure> {
    if conn.is_none() {
        *conn = Some(connect(args)?);
    }
    let Some(stream) = conn.as_ref() else {
        return Err(Failure::Retry("no connection".into()));
    };
    let lost = |e: &dyn std::fmt::Display| Failure::Retry(format!("connection lost: {e}"));
    let mut writer = FrameWriter::new(stream, FrameConfig::default());
    let mut reader = FrameReader::new(stream, crate::receive::control_frames());
    writer.send(Codec::MsgPack, offer).map_err(|e| lost(&e))?;
    let answer: Answer = match reader.recv(Codec::MsgPack) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(Failure::Retry("the receiver closed the connection".into())),
        // Usually a receiver whose every slot is taken: we wait in its queue.
        Err(trama_protocol::Error::Io(e))
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
        {
            return Err(Failure::Retry(format!(
                "no answer to the offer within {:?} (--timeout; is every slot of the receiver taken?)",
                args.timeout
            )))
        }
        Err(e) if stream.is_tls() => return Err(lost(&e)),
        Err(e) => return Err(plain_at_tls(&e).unwrap_or_else(|| lost(&e))),
    };
    let offset = match answer {
        Answer::Ready { offset } if offset <= offer.size => offset,
        Answer::Ready { offset } => {
            return Err(Failure::Fatal(format!(
                "the receiver asked to resume at {offset}, past the end ({})",
                offer.size
            )))
        }
        Answer::Refused { reason } => return Err(Failure::Fatal(format!("refused: {reason}"))),
        // Usually our own previous connection, still held by the receiver
        // until its stall timeout: worth another try after a pause.
        Answer::Busy { reason } => return Err(Failure::Retry(format!("busy: {reason}"))),
    };
    let start = Instant::now();
    let mut progress = Progress::new(&offer.name, offer.size, offset, args.quiet);
    let sent = copy_out(stream, file, offer, offset, &mut progress);
    progress.finish();
    let digest = match sent {
        Ok(digest) => digest,
        Err(e) => {
            // The receiver may have said why it stopped (a full disk).
            if let Some(v) = pending_verdict(&mut reader) {
                return Err(Failure::Fatal(format!(
                    "the receiver failed: {}",
                    v.message
                )));
            }
            return Err(e);
        }
    };
    writer
        .send(Codec::MsgPack, &Done { digest })
        .map_err(|e| lost(&e))?;
    let verdict: Verdict = match reader.recv(Codec::MsgPack) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(Failure::Retry(
                "the receiver closed before its verdict".into(),
            ))
        }
        Err(e) => return Err(lost(&e)),
    };
    if !verdict.ok {
        let message = format!("the receiver says: {}", verdict.message);
        // Damage on the way (a digest mismatch) discards the receiver's copy
        // and another try resends it all; a full disk will not get better.
        return Err(if verdict.retry {
            Failure::Retry(message)
        } else {
            Failure::Fatal(message)
        });
    }
    let secs = start.elapsed().as_secs_f64();
    let mut summary = format_summary(&offer.name, offer.size - offset, secs);
    if offset > 0 {
        summary.push_str(&format!(", resumed at byte {offset}"));
    }
    summary.push_str(if offer.verify {
        ", verified"
    } else {
        ", not verified"
    });
    summary.push_str(&format!("; the receiver says: {}", verdict.message));
    Ok(summary)
}

/// Stream bytes [offset, size) of the file; return the digest of the whole
/// file when the offer promised one. Unverified on a plain connection, the
/// kernel copies (`sendfile`); verified, or under TLS (where every byte
/// must go through rustls), the bytes pass through one buffer.
fn copy_out(
    stream: &Stream,
    file: &mut File,
    offer: &Offer,
    offset: u64,
    progress: &mut Progress,
) -> Result<Option<String>, Failure> {
    let unreadable = |e: io::Error| Failure::Fatal(format!("cannot read the file: {e}"));
    let lost = |e: io::Error| Failure::Retry(format!("connection lost: {e}"));
    let len = offer.size - offset;
    if let (false, Some(mut socket)) = (offer.verify, stream.as_tcp()) {
        file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
        let mut done = 0;
        while done < len {
            // std::io::copy from a File into a TcpStream is sendfile on Linux.
            let step = (len - done).min(SENDFILE_STEP);
            let n = io::copy(&mut (&mut *file).take(step), &mut socket).map_err(lost)?;
            if n == 0 {
                return Err(Failure::Fatal(format!(
                    "the file shrank to {} bytes while being sent",
                    offset + done
                )));
            }
            done += n;
            progress.update(offset + done);
        }
        return Ok(None);
    }
    let mut hasher = offer.verify.then(blake3::Hasher::new);
    if let Some(h) = hasher.as_mut() {
        // The digest covers the whole file: fold in what the receiver has.
        file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
        if offset > 0 {
            let n = io::copy(&mut (&mut *file).take(offset), h).map_err(unreadable)?;
            if n < offset {
                return Err(Failure::Fatal("the file shrank while being sent".into()));
            }
        }
    } else {
        file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
    }
    let mut out = stream;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = file.read(&mut buf[..want]).map_err(unreadable)?;
        if n == 0 {
            return Err(Failure::Fatal(format!(
                "the file shrank to {} bytes while being sent",
                offset + done
            )));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        out.write_all(&buf[..n]).map_err(lost)?;
        done += n as u64;
        progress.update(offset + done);
    }
    Ok(hasher.map(|h| h.finalize().to_hex().to_string()))
}

/// A plain sender's first answer that reads as a TLS record header where
/// a frame's length belongs (content type 20 to 23, version 3.x): the
/// receiver speaks TLS, and says so with an alert. Final, with the fix.
fn plain_at_tls(e: &trama_protocol::Error) -> Option<Failure> {
    let trama_protocol::Error::FrameTooLarge { len, .. } = e else {
        return None;
    };
    let [content_type, major, ..] = u32::try_from(*len).ok()?.to_be_bytes();
    ((20..=23).contains(&content_type) && major == 3).then(|| {
        Failure::Fatal(format!(
            "the receiver answered with a TLS record (header {len:#010x} where a length \
             belongs): it speaks TLS; give --tls-ca"
        ))
    })
}

/// A verdict the receiver sent before closing, if one is waiting.
fn pending_verdict(reader: &mut FrameReader<&Stream>) -> Option<Verdict> {
    let _ = reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)));
    match reader.recv::<Verdict>(Codec::MsgPack) {
        Ok(Some(v)) if !v.ok => Some(v),
        _ => None,
    }
}
