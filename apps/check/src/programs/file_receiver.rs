//! `--program file-receiver`: the notes' improved receiver ("Envío de
//! muchos datos"), with trama-check as the sender. Each check starts the
//! receiver afresh (it serves one connection and exits), sends a file in the
//! notes' format (a 4-byte big-endian size, then the bytes), and compares
//! the file the program saved (`--saved`) with what was sent.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    differ, ends_or_idles, header, memory, pattern, read_upto, size, start, stop, write_bytewise,
    Context, Found, Pattern, ProgramCheck, Step, POLL,
};
use crate::sample::Sampler;
use crate::spawn::{self, Server};

/// The small file: more than one recv(4096), less than a socket buffer.
const SMALL: usize = 20_000;
/// The large file.
const LARGE: usize = 64 << 20;
/// Most memory growth allowed while the large file is received: half of it
/// (a receiver that writes as it reads needs a chunk).
const LARGE_LIMIT: u64 = 32 << 20;
/// How the large file is written and compared.
const BLOCK: usize = 64 * 1024;
/// The size the short file's header promises, and what is sent of it.
const PROMISED: usize = 1000;
const DELIVERED: usize = 300;

/// Run one check.
pub(crate) fn run(check: ProgramCheck, ctx: &Context<'_>) -> Step<Found> {
    let Some(saved) = ctx.saved.as_deref() else {
        return Err("needs --saved PATH, the file the program writes".into());
    };
    let process = matches!(
        check,
        ProgramCheck::LargeFile | ProgramCheck::ShortFile | ProgramCheck::HugeFileHeader
    );
    if process && ctx.spawn.is_none() {
        return Ok(Found::skip(
            "measures the program's process: run with --spawn",
        ));
    }
    // A file left by an earlier check (or run) must not pass this one.
    match std::fs::remove_file(saved) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {} first: {e}", saved.display())),
    }
    let mut program = match &ctx.spawn {
        Some(cmd) => Some(start(ctx, cmd.clone(), ctx.addr.clone(), true)?),
        None => None,
    };
    let result = session(check, ctx, saved, program.as_mut());
    if let Some(p) = program {
        stop(p);
    }
    result
}

fn session(
    check: ProgramCheck,
    ctx: &Context<'_>,
    saved: &Path,
    mut program: Option<&mut Server>,
) -> Step<Found> {
    let addr = match &program {
        Some(p) => p.addr(),
        None => {
            let a = ctx
                .addr
                .as_deref()
                .ok_or("give the receiver's --addr, or --spawn CMD")?;
            spawn::resolve(a).map_err(|e| e.to_string())?
        }
    };
    let mut conn = TcpStream::connect_timeout(&addr, ctx.opts.timeout)
        .map_err(|e| format!("cannot connect to the receiver at {addr}: {e}"))?;
    let _ = conn.set_write_timeout(Some(ctx.opts.timeout.max(Duration::from_secs(1))));
    let sending = |e: io::Error| {
        // It may have closed on a file it thought complete.
        thread::sleep(POLL * 4);
        let held = match std::fs::metadata(saved) {
            Ok(m) => format!("{} holds {} bytes", saved.display(), m.len()),
            Err(_) => format!("{} was not saved", saved.display()),
        };
        format!("the receiver closed the connection before the file was sent ({e}); {held}")
    };
    match check {
        ProgramCheck::SmallFile => {
            let data = pattern(1, SMALL);
            let mut wire = header(SMALL).to_vec();
            wire.extend_from_slice(&data);
            conn.write_all(&wire).map_err(sending)?;
            let reply = saved_as(ctx, saved, &mut conn, program, 1, SMALL)?;
            Ok(Found::pass(format!(
                "a {SMALL}-byte file sent in one write was saved intact{reply}"
            )))
        }
        ProgramCheck::FileByteAtATime => {
            let n = 50;
            let mut wire = header(n).to_vec();
            wire.extend_from_slice(&pattern(2, n));
            write_bytewise(&mut conn, &wire, ctx.opts.byte_gap).map_err(sending)?;
            let reply = saved_as(ctx, saved, &mut conn, program, 2, n)?;
            Ok(Found::pass(format!(
                "a {n}-byte file and its header sent one byte per segment, {} ms apart, was saved intact{reply}",
                ctx.opts.byte_gap.as_millis()
            )))
        }
        ProgramCheck::EmptyFile => {
            conn.write_all(&header(0)).map_err(sending)?;
            let reply = saved_as(ctx, saved, &mut conn, program, 3, 0)?;
            Ok(Found::pass(format!(
                "a 0-byte file was saved, empty{reply}"
            )))
        }
        ProgramCheck::LargeFile => {
            let p = program.as_deref_mut().ok_or("needs --spawn")?;
            let mut sampler = Sampler::new();
            let base = memory(p, &mut sampler)?;
            let mut most = base;
            conn.write_all(&header(LARGE)).map_err(sending)?;
            let mut gen = Pattern::new(4);
            let mut block = vec![0u8; BLOCK];
            for i in 0..LARGE / BLOCK {
                gen.fill(&mut block);
                conn.write_all(&block).map_err(sending)?;
                if i % 64 == 63 {
                    most = most.max(memory(p, &mut sampler)?);
                }
            }
            let reply = saved_as(ctx, saved, &mut conn, Some(&mut *p), 4, LARGE)?;
            most = most.max(memory(p, &mut sampler).unwrap_or(most));
            let grew = most.saturating_sub(base);
            let limit = ctx.opts.memory_limit.min(LARGE_LIMIT);
            if grew > limit {
                return Err(format!(
                    "a {} file was saved intact, but memory grew by {} while it came (limit {}): the file is held whole before it is written",
                    size(LARGE as u64),
                    size(grew),
                    size(limit)
                ));
            }
            Ok(Found::pass(format!(
                "a {} file was saved intact; memory grew by {} (limit {}){reply}",
                size(LARGE as u64),
                size(grew),
                size(limit)
            )))
        }
        ProgramCheck::ShortFile => {
            let p = program.ok_or("needs --spawn")?;
            let mut wire = header(PROMISED).to_vec();
            wire.extend_from_slice(&pattern(5, DELIVERED));
            conn.write_all(&wire).map_err(sending)?;
            thread::sleep(ctx.opts.settle);
            let _ = conn.shutdown(Shutdown::Both);
            drop(conn);
            let how = ends_or_idles(p, ctx, true)?;
            Ok(Found::pass(format!(
                "after a header promising {PROMISED} bytes and {DELIVERED} of them, the sender left: {how}"
            )))
        }
        ProgramCheck::HugeFileHeader => {
            let p = program.ok_or("needs --spawn")?;
            let mut sampler = Sampler::new();
            let base = memory(p, &mut sampler)?;
            let mut wire = vec![0xFF; 4];
            wire.extend_from_slice(&pattern(6, 1000));
            // The receiver may refuse the header and close: that is fine.
            let _ = conn.write_all(&wire);
            thread::sleep(ctx.opts.settle);
            let grew = memory(p, &mut sampler).unwrap_or(base).saturating_sub(base);
            let _ = conn.shutdown(Shutdown::Both);
            if grew > ctx.opts.memory_limit {
                return Err(format!(
                    "memory grew by {} after a 0xFFFFFFFF header and 1000 bytes (limit {}): memory committed on the header's word",
                    size(grew),
                    size(ctx.opts.memory_limit)
                ));
            }
            Ok(Found::pass(format!(
                "after a 0xFFFFFFFF header and 1000 bytes, memory grew by {} (limit {})",
                size(grew),
                size(ctx.opts.memory_limit)
            )))
        }
        _ => Ok(Found::skip("not a file-receiver check")),
    }
}

/// Wait until `saved` holds the `len` bytes of pattern `seed`; then read
/// what the receiver answers. `Ok` with `, and it replied "..."` (or
/// nothing), `Err` with what the file holds when it never matched.
fn saved_as(
    ctx: &Context<'_>,
    saved: &Path,
    conn: &mut TcpStream,
    mut program: Option<&mut Server>,
    seed: u64,
    len: usize,
) -> Step<String> {
    let deadline = Instant::now() + ctx.opts.timeout;
    let mut exited_at: Option<Instant> = None;
    loop {
        let on_disk = std::fs::metadata(saved).ok().map(|m| m.len());
        if on_disk == Some(len as u64) {
            match compare(saved, seed, len) {
                Ok(()) => break,
                // Still being written, or wrong: judged at the deadline.
                Err(why)
                    if Instant::now() >= deadline
                        || exited_at.is_some_and(|t| t.elapsed() > POLL * 8) =>
                {
                    return Err(format!("{} was saved with {why}", saved.display()))
                }
                Err(_) => {}
            }
        }
        if exited_at.is_none() && program.as_deref_mut().and_then(Server::exited).is_some() {
            exited_at = Some(Instant::now());
        }
        let late = exited_at.is_some_and(|t| t.elapsed() > POLL * 8);
        if Instant::now() >= deadline || late {
            let how = match on_disk {
                None => format!("{} was not saved", saved.display()),
                Some(n) => format!("{} holds {n} bytes where {len} were sent", saved.display()),
            };
            let when = match exited_at {
                Some(_) => "once the program had ended".to_string(),
                None => format!("after {} ms", ctx.opts.timeout.as_millis()),
            };
            return Err(format!("{how} {when}"));
        }
        thread::sleep(POLL);
    }
    let (reply, _) = read_upto(
        conn,
        4096,
        Instant::now() + ctx.opts.timeout.min(Duration::from_millis(500)),
    );
    Ok(if reply.is_empty() {
        String::new()
    } else {
        format!(
            ", and it replied {:?}",
            String::from_utf8_lossy(&reply)
                .chars()
                .take(80)
                .collect::<String>()
        )
    })
}

/// Whether `path` holds exactly the `len` bytes of pattern `seed`.
fn compare(path: &Path, seed: u64, len: usize) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("an unreadable file ({e})"))?;
    let mut gen = Pattern::new(seed);
    let mut want = vec![0u8; BLOCK];
    let mut got = vec![0u8; BLOCK];
    let mut at = 0usize;
    loop {
        let n = read_full(&mut f, &mut got).map_err(|e| format!("an unreadable file ({e})"))?;
        let expect = (len - at.min(len)).min(BLOCK);
        gen.fill(&mut want[..expect]);
        if let Some(d) = differ(&want[..expect], &got[..n]) {
            return Err(format!("a block at byte {at} of {d}"));
        }
        at += n;
        if n < BLOCK {
            break;
        }
    }
    if at == len {
        Ok(())
    } else {
        Err(format!("{at} bytes where {len} were sent"))
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
