//! `--program chat-client` (the notes' `Client`) and `--program
//! echo-client` (the notes' JSON and pickle clients), with trama-check as
//! their server. Each check listens (`--addr`, or a free port), starts the
//! client (`{addr}`, `{host}`, `{port}` in the command), types lines on its
//! stdin and reads its stdout. The chat server answers each message with
//! `trama-check answers LINE`; the echo server sends the message back.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    accept, ends_or_idles, frame, last_words, listener, printed, read_upto, shown, start, stop,
    substitute, write_bytewise, Context, Found, Program, ProgramCheck, Step,
};
use crate::plan::Dialect;
use crate::spawn::Server;

/// The largest message a client may send in these checks.
const MAX_MESSAGE: usize = 1 << 20;
/// The long line: more than a dozen recv(4096), less than a pipe's buffer
/// (so typing it never blocks).
const LONG: usize = 60_000;
/// How many bytes of the byte-at-a-time answer (header included) go one
/// per segment; the rest follows in one write.
const BYTEWISE: usize = 20;
/// The filler of the byte-at-a-time line (its answer is over 255 bytes).
const BYTEWISE_LINE: usize = 280;
/// How many pieces the long answer is written in.
const PIECES: usize = 4;

/// Run one check.
pub(crate) fn run(program: Program, check: ProgramCheck, ctx: &Context<'_>) -> Step<Found> {
    let Some(cmd) = ctx.spawn.as_deref() else {
        return Err("needs --spawn CMD".into());
    };
    let (l, at) = listener(ctx)?;
    let mut client = start(ctx, substitute(cmd, Some(at), None), None, false)?;
    let result = accept(&l, &mut client, ctx.start_timeout).and_then(|conn| {
        Session {
            ctx,
            program,
            client: &mut client,
            conn,
        }
        .check(check)
    });
    stop(client);
    result
}

struct Session<'s, 'c> {
    ctx: &'s Context<'c>,
    program: Program,
    client: &'s mut Server,
    conn: TcpStream,
}

impl Session<'_, '_> {
    fn check(mut self, check: ProgramCheck) -> Step<Found> {
        match check {
            ProgramCheck::LineSent => {
                let line = "hola desde trama-check";
                let got = self.typed(line)?;
                let how = if self.framed() {
                    format!("one frame of {} bytes", got.len())
                } else {
                    format!("{} bytes", got.len())
                };
                Ok(Found::pass(format!(
                    "the {}-byte line typed arrived as {how}",
                    line.len()
                )))
            }
            ProgramCheck::MessageShown => {
                let line = "un mensaje para el servidor";
                let got = self.typed(line)?;
                let (wire, needle) = self.answer(line, &got);
                self.write(&wire)?;
                self.expect_shown(&needle, "the answer")?;
                Ok(Found::pass(format!(
                    "the {}-byte answer was shown",
                    needle.len()
                )))
            }
            ProgramCheck::ShownByteAtATime => {
                // Over 255 bytes, so no header byte alone reads as its length.
                let line = format!("una respuesta byte a byte {}", "x".repeat(BYTEWISE_LINE));
                let got = self.typed(&line)?;
                let (wire, needle) = self.answer(&line, &got);
                let (slow, rest) = wire.split_at(wire.len().min(BYTEWISE));
                write_bytewise(&mut self.conn, slow, self.ctx.opts.byte_gap)
                    .map_err(|e| format!("the client closed the connection: {e}"))?;
                self.write(rest)?;
                self.expect_shown(&needle, "the answer sent one byte per segment")?;
                Ok(Found::pass(format!(
                    "an answer of {} bytes, its header and first {} body bytes one per segment {} ms apart, was shown",
                    wire.len(),
                    slow.len().saturating_sub(4),
                    self.ctx.opts.byte_gap.as_millis()
                )))
            }
            ProgramCheck::TwoInOneSegment => {
                let (first, second) = ("primera linea", "segunda linea");
                self.client
                    .type_line(first)
                    .and_then(|()| self.client.type_line(second))
                    .map_err(|e| format!("cannot type on the client's stdin: {e}"))?;
                let got = self.message(first)?;
                // The second line's answer goes with the first's, before the
                // client may even have sent it.
                let (mut wire, one) = self.answer(first, &got);
                let echo = self.sent_form(second, first, &got);
                let (more, two) = self.answer(second, &echo);
                wire.extend_from_slice(&more);
                self.write(&wire)?;
                self.expect_shown(&one, "the first of two answers in one segment")?;
                self.expect_shown(&two, "the second of two answers in one segment")?;
                Ok(Found::pass(format!(
                    "two answers in one {}-byte segment were both shown",
                    wire.len()
                )))
            }
            ProgramCheck::LongMessage => {
                let line = long_line();
                let got = self.typed(&line)?;
                let (wire, needle) = self.answer(&line, &got);
                let piece = wire.len().div_ceil(PIECES);
                for chunk in wire.chunks(piece) {
                    self.write(chunk)?;
                    thread::sleep(self.ctx.opts.byte_gap * 5);
                }
                self.expect_shown(&needle, "the long answer")?;
                Ok(Found::pass(format!(
                    "an answer of {} bytes written in {PIECES} pieces was shown whole",
                    wire.len()
                )))
            }
            ProgramCheck::ServerCloses => {
                let _ = self.typed("adios")?;
                let _ = self.conn.shutdown(Shutdown::Both);
                let how = ends_or_idles(self.client, self.ctx, false)?;
                Ok(Found::pass(format!(
                    "the server closed the connection: {how}"
                )))
            }
            _ => Ok(Found::skip("not a client check")),
        }
    }

    fn framed(&self) -> bool {
        self.ctx.opts.dialect == Dialect::Framed
    }

    /// Type `line`; the message it became.
    fn typed(&mut self, line: &str) -> Step<Vec<u8>> {
        self.client
            .type_line(line)
            .map_err(|e| format!("cannot type on the client's stdin: {e}"))?;
        self.message(line)
    }

    /// The client's next message, which must carry `line`: one frame, or
    /// (raw) the bytes that came until they did.
    fn message(&mut self, line: &str) -> Step<Vec<u8>> {
        let deadline = Instant::now() + self.ctx.opts.timeout;
        let payload = if self.framed() {
            let (head, _) = read_upto(&mut self.conn, 4, deadline);
            if head.len() < 4 {
                return Err(format!(
                    "a line was typed, and {} header bytes of 4 arrived{}",
                    head.len(),
                    last_words(self.client)
                ));
            }
            let n = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if n > MAX_MESSAGE {
                return Err(format!(
                    "a {}-byte line was typed, and the header announces {n} bytes",
                    line.len()
                ));
            }
            let (body, _) = read_upto(&mut self.conn, n, deadline);
            if body.len() < n {
                return Err(format!(
                    "the header announces {n} bytes, and {} came",
                    body.len()
                ));
            }
            body
        } else {
            let mut got = Vec::new();
            while !super::contains(&got, line.as_bytes()) {
                let (more, closed) =
                    read_upto(&mut self.conn, 64 * 1024, Instant::now() + super::POLL * 4);
                got.extend_from_slice(&more);
                if closed || Instant::now() >= deadline {
                    break;
                }
            }
            got
        };
        if !super::contains(&payload, line.as_bytes()) {
            let shown = String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned();
            return Err(format!(
                "a {}-byte line was typed, and the message that came ({} bytes: {shown:?}) does not carry it",
                line.len(),
                payload.len()
            ));
        }
        Ok(payload)
    }

    /// What `line` would look like sent, given that `typed` sent `got`
    /// (the echo client's own encoding, JSON quotes and all).
    fn sent_form(&self, line: &str, typed: &str, got: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(got).replacen(typed, line, 1);
        text.into_bytes()
    }

    /// The server's answer to `got` (the message `line` became), on the
    /// wire, and the text the client must then show.
    fn answer(&self, line: &str, got: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let dialect = self.ctx.opts.dialect;
        match self.program {
            Program::EchoClient => (frame(dialect, got), line.as_bytes().to_vec()),
            _ => {
                let text = format!("trama-check answers {line}").into_bytes();
                (frame(dialect, &text), text)
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Step<()> {
        let _ = self
            .conn
            .set_write_timeout(Some(self.ctx.opts.timeout.max(Duration::from_secs(1))));
        self.conn
            .write_all(bytes)
            .map_err(|e| format!("the client closed the connection: {e}"))
    }

    fn expect_shown(&mut self, needle: &[u8], what: &str) -> Step<()> {
        if shown(self.client, needle, Instant::now() + self.ctx.opts.timeout) {
            return Ok(());
        }
        let ended = match self.client.exited() {
            Some(status) => format!("; the client exited ({status}){}", last_words(self.client)),
            None => String::new(),
        };
        Err(format!(
            "{what} ({} bytes) was not shown within {} ms; its stdout ends {}{ended}",
            needle.len(),
            self.ctx.opts.timeout.as_millis(),
            printed(self.client)
        ))
    }
}

/// A [`LONG`]-byte line of text that does not repeat every 4096 bytes.
fn long_line() -> String {
    let mut s = String::with_capacity(LONG + 16);
    let mut i = 0u32;
    while s.len() < LONG {
        s.push_str(&format!("{i} "));
        i += 1;
    }
    s.truncate(LONG);
    s
}
