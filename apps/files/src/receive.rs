//! `trama-files receive`: many senders at once, each file verified, written
//! to a temporary name and renamed only when complete.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::progress::format_summary;
use trama_backend::files::{self, human_bytes, Answer, DiskFacts, Done, Offer, RateFloor, Verdict};
use trama_protocol::{Codec, FrameConfig, FrameReader, FrameWriter};
use trama_transport::{PoolConfig, PoolHandle, PoolServer, Stream};

use crate::{AppResult, ReceiveArgs};

/// Buffer for the verified path, which must see every byte.
const CHUNK: usize = 256 * 1024;

struct Ctx {
    args: ReceiveArgs,
    handle: PoolHandle,
    /// Names being received right now, so two senders of one name cannot
    /// write the same temporary file.
    busy: Mutex<HashSet<String>>,
}

/// Run the receiver until Ctrl-C (or the first file, with `--once`).
pub fn run(args: &ReceiveArgs) -> AppResult {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot use {} as the directory: {e}", args.dir.display()))?;
    let server = PoolServer::bind(pool_config(args)?)?;
    let handle = server.handle();
    let stopper = handle.clone();
    if let Err(e) = ctrlc::set_handler(move || stopper.shutdown()) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    eprintln!("listening on {}", server.local_addr());
    let ctx = Arc::new(Ctx {
        args: args.clone(),
        handle,
        busy: Mutex::new(HashSet::new()),
    });
    server.run(move |stream, peer| {
        if let Err(e) = serve(&ctx, &stream, peer) {
            log::warn!("{peer}: {e}");
        }
    })?;
    Ok(())
}

/// The pool settings both receivers use (fails on an unusable key file or
/// TLS identity).
pub fn pool_config(args: &ReceiveArgs) -> Result<PoolConfig, String> {
    Ok(PoolConfig {
        addr: args.addr.clone(),
        threads: args.max_senders.max(1),
        queue: args.max_senders.max(1) * 4,
        read_timeout: Some(args.stall_timeout),
        write_timeout: Some(args.stall_timeout),
        auth: args.auth.config()?,
        tls: args.tls.config()?,
        ..PoolConfig::default()
    })
}

/// The frames of control messages, limited to [`files::MAX_CONTROL_FRAME`]:
/// a peer that announces more is not speaking the protocol, and is refused
/// at the header instead of making this side wait for (and hold) up to the
/// default 16 MiB frame limit.
pub fn control_frames() -> FrameConfig {
    FrameConfig::builder()
        .max_frame_len(files::MAX_CONTROL_FRAME)
        .build()
        .unwrap_or_default()
}

/// One sender's connection: offers, one after the other.
fn serve(ctx: &Ctx, stream: &Stream, peer: SocketAddr) -> AppResult {
    let metered = Metered::new(stream, &ctx.args);
    let mut reader = FrameReader::new(&metered, control_frames());
    let mut writer = FrameWriter::new(stream, FrameConfig::default());
    loop {
        let offer: Offer = match reader.recv(Codec::MsgPack) {
            Ok(Some(offer)) => offer,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("bad offer: {e}").into()),
        };
        let answer = decide(ctx, &offer);
        if let Err(e) = writer.send(Codec::MsgPack, &answer) {
            // decide() holds the name for a Ready; give it back.
            if matches!(answer, Answer::Ready { .. }) {
                if let Ok(mut busy) = ctx.busy.lock() {
                    busy.remove(&offer.name);
                }
            }
            return Err(e.into());
        }
        let offset = match answer {
            Answer::Ready { offset } => offset,
            Answer::Refused { reason } => {
                log::warn!("{peer}: refused {:?}: {reason}", offer.name);
                continue;
            }
            Answer::Busy { reason } => {
                log::info!("{peer}: not now {:?}: {reason}", offer.name);
                continue;
            }
        };
        let outcome = receive_file(ctx, &metered, &mut reader, &offer, offset, peer);
        if let Ok(mut busy) = ctx.busy.lock() {
            busy.remove(&offer.name);
        }
        let verdict = match outcome {
            Ok(verdict) => verdict,
            Err(Lost(e)) => return Err(e),
            Err(Failed(verdict)) => {
                // Nothing of a failed file is kept: a retry starts afresh.
                let part = files::partial_name(&offer.name, offer.size);
                let _ = std::fs::remove_file(ctx.args.dir.join(part));
                // Tell the sender why, then stop reading what it still sends.
                let _ = writer.send(Codec::MsgPack, &verdict);
                let _ = stream.shutdown(Shutdown::Write);
                drain(stream);
                return Err(verdict.message.into());
            }
        };
        writer.send(Codec::MsgPack, &verdict)?;
        if verdict.ok && ctx.args.once {
            ctx.handle.shutdown();
            return Ok(());
        }
    }
}

/// Plan the answer to an offer from what is on disk.
fn decide(ctx: &Ctx, offer: &Offer) -> Answer {
    let Ok(name) = files::check_name(&offer.name) else {
        // plan_receive gives the precise reason.
        return files::plan_receive_with_limit(
            offer,
            &DiskFacts::default(),
            ctx.args.overwrite,
            ctx.args.max_size,
        );
    };
    let dir = &ctx.args.dir;
    let facts = DiskFacts {
        final_exists: dir.join(name).exists(),
        partial_len: std::fs::metadata(dir.join(files::partial_name(name, offer.size)))
            .ok()
            .map(|m| m.len()),
    };
    let answer =
        files::plan_receive_with_limit(offer, &facts, ctx.args.overwrite, ctx.args.max_size);
    if matches!(answer, Answer::Ready { .. }) {
        let Ok(mut busy) = ctx.busy.lock() else {
            return Answer::Refused {
                reason: "receiver error".into(),
            };
        };
        if !busy.insert(offer.name.clone()) {
            return Answer::Busy {
                reason: format!("{} is being received from another sender", offer.name),
            };
        }
    }
    answer
}

/// Why a file did not arrive.
enum Failure {
    /// The connection broke: the partial file stays for a resume.
    Lost(Box<dyn std::error::Error + Send + Sync>),
    /// A verdict to send back (bad digest, disk full): nothing is kept.
    Failed(Verdict),
}
use Failure::{Failed, Lost};

fn receive_file(
    ctx: &Ctx,
    stream: &Metered<'_>,
    reader: &mut FrameReader<&Metered<'_>>,
    offer: &Offer,
    offset: u64,
    peer: SocketAddr,
) -> Result<Verdict, Failure> {
    let dir = &ctx.args.dir;
    let part = dir.join(files::partial_name(&offer.name, offer.size));
    // What arrived is discarded by `serve` once this returns (and the file
    // is closed: Windows does not delete an open file).
    let fail = |message: String| Failed(Verdict::failure(message));
    let mut file = open_partial(&part, offset)
        .map_err(|e| fail(format!("cannot write {}: {e}", offer.name)))?;
    if offset > 0 {
        log::info!(
            "{peer}: receiving {} ({}), resuming at {}",
            offer.name,
            human_bytes(offer.size),
            human_bytes(offset)
        );
    } else {
        log::info!(
            "{peer}: receiving {} ({})",
            offer.name,
            human_bytes(offer.size)
        );
    }
    let start = Instant::now();
    let mut hasher = offer.verify.then(blake3::Hasher::new);
    if let Some(h) = hasher.as_mut() {
        // The digest covers the whole file: fold in what a previous try left.
        hash_prefix(&mut file, offset, h)
            .map_err(|e| fail(format!("cannot read back {}: {e}", offer.name)))?;
    }
    let remaining = offer.size - offset;
    let copied = copy_in(stream, &mut file, remaining, hasher.as_mut());
    let got = match copied {
        Ok(n) => n,
        Err(CopyError::Write(e, n)) => {
            return Err(fail(format!(
                "cannot write {} after {} of {} bytes: {e}",
                offer.name,
                offset + n,
                offer.size
            )))
        }
        Err(CopyError::Read(e, n)) => {
            let _ = file.sync_data();
            return Err(Lost(
                format!(
                    "{}: connection lost after {} of {} bytes ({e}); kept for a resume",
                    offer.name,
                    offset + n,
                    offer.size
                )
                .into(),
            ));
        }
    };
    let done: Done = match reader.recv(Codec::MsgPack) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Err(Lost(
                format!("{}: sender left before its digest", offer.name).into(),
            ))
        }
        Err(e) => {
            return Err(Lost(
                format!("{}: bad end of file message: {e}", offer.name).into(),
            ))
        }
    };
    let actual = hasher.map(|h| h.finalize().to_hex().to_string());
    let verdict = files::judge(
        offer,
        offset + got,
        done.digest.as_deref(),
        actual.as_deref(),
    );
    if !verdict.ok {
        // A short transfer or a digest mismatch (damage on the way, a stale
        // or planted partial file): the verdict keeps its `retry`, so the
        // sender tries again, from byte 0 since the partial is discarded.
        return Err(Failed(verdict));
    }
    let finished = file.sync_data().and_then(|()| {
        drop(file);
        finish(&part, &dir.join(&offer.name), ctx.args.overwrite)
    });
    if let Err(e) = finished {
        return Err(fail(format!("cannot store {}: {e}", offer.name)));
    }
    log::info!(
        "{peer}: {}",
        format_summary(&offer.name, got, start.elapsed().as_secs_f64())
    );
    Ok(verdict)
}

fn open_partial(part: &Path, offset: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(part)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}

fn hash_prefix(file: &mut File, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(0))?;
    let n = io::copy(&mut (&mut *file).take(len), hasher)?;
    if n != len {
        return Err(io::Error::other(format!(
            "partial file has {n} bytes, expected {len}"
        )));
    }
    file.seek(SeekFrom::Start(len))?;
    Ok(())
}

/// A copy that stopped: which side failed, and how many bytes got through.
pub enum CopyError {
    /// Reading the socket failed or it ended early.
    Read(io::Error, u64),
    /// Writing the file failed (e.g. the disk is full).
    Write(io::Error, u64),
}

/// Copy exactly `len` bytes from the connection into the file, through one
/// buffer of [`CHUNK`] (std's own socket-to-file copy is a buffer loop too:
/// `splice` needs a pipe on one side), hashing on the way when asked. Every
/// read goes through the stream's gate (so shutdown wakes it on every
/// platform) and under the sender's rate floor.
/// Copy exactly `len` bytes from the connection into the file, through one
/// buffer of [`CHUNK`] (std's own socket-to-file copy is a buffer loop too:
/// `splice` needs a pipe on one side), hashing on the way when asked. Every
/// read goes through the stream's gate (so shutdown wakes it on every
/// platform) and under the sender's rate floor. Never asks for more than
/// what is left of the file, so the end-of-file message that follows stays
/// in the connection (or in rustls) for the frame reader.
fn copy_in(
    mut stream: &Metered<'_>,
    file: &mut File,
    len: u64,
    mut hasher: Option<&mut blake3::Hasher>,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => return Err(CopyError::Read(io::ErrorKind::UnexpectedEof.into(), done)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e, done)),
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        file.write_all(&buf[..n])
            .map_err(|e| CopyError::Write(e, done))?;
        done += n as u64;
    }
    Ok(done)
}

/// A sender's connection read under `--min-rate`: each read waits at most
/// until the floor's window of waiting closes (and never past the stall
/// timeout), and a window under the floor ends the connection with the
/// numbers, as a timeout. Without a floor, reads are the stream's own.
struct Metered<'a> {
    stream: &'a Stream,
    stall: Duration,
    floor: Option<RefCell<RateFloor>>,
}

impl<'a> Metered<'a> {
    fn new(stream: &'a Stream, args: &ReceiveArgs) -> Metered<'a> {
        let floor = (args.min_rate > 0)
            .then(|| RefCell::new(RateFloor::new(args.min_rate, args.rate_window)));
        Metered {
            stream,
            stall: args.stall_timeout,
            floor,
        }
    }
}

impl Read for &Metered<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(floor) = &self.floor else {
            return (&*self.stream).read(buf);
        };
        let too_slow = |e: files::TooSlow| {
            io::Error::new(io::ErrorKind::TimedOut, format!("{e} (--min-rate)"))
        };
        let mut silent = Duration::ZERO;
        loop {
            let limit = floor
                .borrow()
                .wait_limit()
                .min(self.stall.saturating_sub(silent))
                .max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(limit))?;
            let start = Instant::now();
            let got = (&*self.stream).read(buf);
            let waited = start.elapsed();
            match got {
                Ok(n) => {
                    floor
                        .borrow_mut()
                        .record(n as u64, waited)
                        .map_err(too_slow)?;
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // The window closed, or the stall timeout ran out.
                    floor.borrow_mut().record(0, waited).map_err(too_slow)?;
                    silent += waited;
                    if silent >= self.stall {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("nothing sent for {:?} (--stall-timeout)", self.stall),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Move the complete file into place.
fn finish(part: &Path, target: &Path, overwrite: bool) -> io::Result<()> {
    if target.exists() && !overwrite {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "appeared while receiving",
        ));
    }
    // Windows' rename does not replace; Unix's does, atomically.
    #[cfg(windows)]
    if target.exists() {
        std::fs::remove_file(target)?;
    }
    std::fs::rename(part, target)
}

/// After refusing mid-stream, read and drop what the sender still has in
/// flight (bounded), so closing does not reset the connection before it
/// reads our verdict.
pub fn drain(mut stream: &Stream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
