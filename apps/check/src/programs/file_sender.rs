//! `--program file-sender`: the notes' improved sender ("Envío de muchos
//! datos"), with trama-check as the receiver. Before each check trama-check
//! writes the file the program reads (`--sent`), listens, starts the
//! program (`{addr}`, `{host}`, `{port}` in the command say where), and
//! checks the 4-byte big-endian header and every byte; then it answers
//! "Gracias." as the notes' receiver does, and expects nothing more.

use std::io::Write;
use std::time::Instant;

use super::{
    accept, differ, last_words, listener, pattern, read_upto, start, stop, substitute, Context,
    Found, ProgramCheck, Step,
};

/// The size of the file of `check`.
fn file_size(check: ProgramCheck) -> Option<usize> {
    match check {
        ProgramCheck::Sent0Bytes => Some(0),
        ProgramCheck::Sent1Byte => Some(1),
        ProgramCheck::Sent4096Bytes => Some(4096),
        ProgramCheck::Sent4097Bytes => Some(4097),
        ProgramCheck::Sent3Mib => Some(3 << 20),
        _ => None,
    }
}

/// Run one check.
pub(crate) fn run(check: ProgramCheck, ctx: &Context<'_>) -> Step<Found> {
    let Some(len) = file_size(check) else {
        return Ok(Found::skip("not a file-sender check"));
    };
    let (Some(cmd), Some(sent)) = (ctx.spawn.as_deref(), ctx.sent.as_deref()) else {
        return Err("needs --spawn CMD and --sent PATH".into());
    };
    let data = pattern(10 + len as u64, len);
    std::fs::write(sent, &data).map_err(|e| format!("cannot write {}: {e}", sent.display()))?;
    let (l, at) = listener(ctx)?;
    let mut program = start(ctx, substitute(cmd, Some(at), None), None, false)?;
    let result = receive(ctx, &l, &mut program, &data);
    stop(program);
    result
}

fn receive(
    ctx: &Context<'_>,
    l: &std::net::TcpListener,
    program: &mut crate::spawn::Server,
    data: &[u8],
) -> Step<Found> {
    let mut conn = accept(l, program, ctx.start_timeout)?;
    let deadline = Instant::now() + ctx.opts.timeout;
    let (head, closed) = read_upto(&mut conn, 4, deadline);
    if head.len() < 4 {
        let how = if closed {
            "it closed the connection"
        } else {
            "nothing more came"
        };
        return Err(format!(
            "{} header bytes of 4 arrived, then {how}, for a {}-byte file{}",
            head.len(),
            data.len(),
            last_words(program)
        ));
    }
    let announced = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if announced != data.len() {
        return Err(format!(
            "the header announces {announced} bytes (bytes {head:02x?}) for a {}-byte file",
            data.len()
        ));
    }
    let (body, _) = read_upto(&mut conn, data.len(), deadline);
    if let Some(d) = differ(data, &body) {
        return Err(format!("the file arrived as {d}"));
    }
    // The notes' receiver answers; the sender then has nothing more to send.
    let _ = conn.write_all("Gracias.".as_bytes());
    let (extra, closed) = read_upto(&mut conn, 64 * 1024, Instant::now() + ctx.opts.timeout);
    if !extra.is_empty() {
        return Err(format!(
            "the file arrived intact, then {} more bytes came",
            extra.len()
        ));
    }
    let end = if closed {
        "and it closed the connection"
    } else {
        "and it kept the connection open"
    };
    Ok(Found::pass(format!(
        "the header announced {} bytes and every byte arrived intact, {end}",
        data.len()
    )))
}
