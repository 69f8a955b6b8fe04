//! `--program peer`: the notes' P2P pair ("Interacción entre clientes Peer 2
//! Peer"), with trama-check as the other peer. Each peer listens and dials
//! the other: the one started first (the notes' `cliente_1`, `{role}` 1)
//! dials back once it is dialed; the one started second (`cliente_2`,
//! `{role}` 2) dials right away. trama-check listens where `{addr}` says,
//! finds the program's own address by `--peer` or by its `listening on
//! ADDR` line, and plays the other role: a line typed on the program must
//! reach trama-check (on either connection), and a line trama-check sends
//! on the connection it dialed must be shown on the program's stdout.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use super::{
    accept, contains, frame, last_words, listener, printed, read_upto, shown, start, stop,
    substitute, Context, Found, ProgramCheck, Step, POLL,
};
use crate::plan::Dialect;
use crate::spawn::{self, Server};

/// Run one check.
pub(crate) fn run(check: ProgramCheck, ctx: &Context<'_>) -> Step<Found> {
    let (role, sends) = match check {
        ProgramCheck::FirstPeerSends => (1, true),
        ProgramCheck::FirstPeerReceives => (1, false),
        ProgramCheck::SecondPeerSends => (2, true),
        ProgramCheck::SecondPeerReceives => (2, false),
        _ => return Ok(Found::skip("not a peer check")),
    };
    let Some(cmd) = ctx.spawn.as_deref() else {
        return Err("needs --spawn CMD".into());
    };
    let (l, at) = listener(ctx)?;
    let command = substitute(cmd, Some(at), Some(role));
    // With --peer the program is dialed until it answers; without, its
    // `listening on ADDR` line says where.
    let mut program = start(ctx, command, None, ctx.peer.is_none())?;
    let result = pair(ctx, role, &l, &mut program).and_then(|mut p| {
        if sends {
            p.sends(ctx, &mut program)
        } else {
            p.receives(ctx, &mut program)
        }
    });
    stop(program);
    result
}

/// The two connections between trama-check and the program.
struct Pair {
    /// trama-check dialed the program.
    dialed: TcpStream,
    /// The program dialed trama-check (if it did).
    accepted: Option<TcpStream>,
    role: u8,
}

fn pair(ctx: &Context<'_>, role: u8, l: &TcpListener, program: &mut Server) -> Step<Pair> {
    if role == 1 {
        // Started first: it waits to be dialed, then dials back.
        let dialed = dial(ctx, program)?;
        let accepted = accept(l, program, ctx.opts.timeout).ok();
        Ok(Pair {
            dialed,
            accepted,
            role,
        })
    } else {
        // Started second: it dials trama-check right away.
        let accepted = accept(l, program, ctx.start_timeout)?;
        let dialed = dial(ctx, program)?;
        Ok(Pair {
            dialed,
            accepted: Some(accepted),
            role,
        })
    }
}

/// Connect to the program's own listener.
fn dial(ctx: &Context<'_>, program: &mut Server) -> Step<TcpStream> {
    let addr: SocketAddr = match &ctx.peer {
        Some(a) => spawn::resolve(a).map_err(|e| e.to_string())?,
        None => program.addr(),
    };
    let deadline = Instant::now() + ctx.start_timeout;
    loop {
        match TcpStream::connect_timeout(&addr, ctx.opts.timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                if let Some(status) = program.exited() {
                    return Err(format!(
                        "the program exited ({status}) before trama-check could dial it at {addr}{}",
                        last_words(program)
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!("cannot dial the program at {addr}: {e}"));
                }
            }
        }
        thread::sleep(POLL);
    }
}

impl Pair {
    fn started(&self) -> &'static str {
        if self.role == 1 {
            "started first"
        } else {
            "started second"
        }
    }

    /// A line typed on the program arrives at trama-check.
    fn sends(&mut self, ctx: &Context<'_>, program: &mut Server) -> Step<Found> {
        let line = format!("hola del peer {}", self.role);
        program
            .type_line(&line)
            .map_err(|e| format!("cannot type on the program's stdin: {e}"))?;
        let framed = ctx.opts.dialect == Dialect::Framed;
        let deadline = Instant::now() + ctx.opts.timeout;
        let mut seen = [Vec::new(), Vec::new()];
        let mut closed = [false, self.accepted.is_none()];
        loop {
            if closed.iter().all(|c| *c) {
                // Nothing more can come; wait out the deadline without spinning.
                thread::sleep(POLL);
            }
            let mut conns: Vec<&mut TcpStream> = vec![&mut self.dialed];
            if let Some(a) = self.accepted.as_mut() {
                conns.push(a);
            }
            for (i, c) in conns.into_iter().enumerate() {
                if closed[i] {
                    continue;
                }
                let (more, gone) = read_upto(c, 64 * 1024, Instant::now() + POLL);
                closed[i] = gone;
                seen[i].extend_from_slice(&more);
                if carries(&seen[i], line.as_bytes(), framed) {
                    let on = if i == 0 {
                        "the connection trama-check dialed"
                    } else {
                        "the connection it dialed"
                    };
                    return Ok(Found::pass(format!(
                        "the program {}: a {}-byte line typed on it arrived on {on}",
                        self.started(),
                        line.len()
                    )));
                }
            }
            if Instant::now() >= deadline {
                let dialed_back = if self.accepted.is_some() {
                    String::new()
                } else {
                    "; it never dialed trama-check".to_string()
                };
                return Err(format!(
                    "the program {}: a {}-byte line typed on it did not arrive within {} ms ({} and {} bytes came on the two connections){dialed_back}",
                    self.started(),
                    line.len(),
                    ctx.opts.timeout.as_millis(),
                    seen[0].len(),
                    seen[1].len()
                ));
            }
        }
    }

    /// A line trama-check sends is shown on the program's stdout.
    fn receives(&mut self, ctx: &Context<'_>, program: &mut Server) -> Step<Found> {
        let line = format!("hola al peer {}", self.role);
        self.dialed
            .write_all(&frame(ctx.opts.dialect, line.as_bytes()))
            .map_err(|e| format!("the program closed the connection: {e}"))?;
        if shown(program, line.as_bytes(), Instant::now() + ctx.opts.timeout) {
            return Ok(Found::pass(format!(
                "the program {}: a {}-byte line sent to it was shown",
                self.started(),
                line.len()
            )));
        }
        Err(format!(
            "the program {}: a {}-byte line sent to it was not shown within {} ms; its stdout ends {}",
            self.started(),
            line.len(),
            ctx.opts.timeout.as_millis(),
            printed(program)
        ))
    }
}

/// Whether `bytes` carry `line`: in a frame of its own, or (raw) anywhere.
fn carries(bytes: &[u8], line: &[u8], framed: bool) -> bool {
    if !framed {
        return contains(bytes, line);
    }
    let mut rest = bytes;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(body) = rest.get(4..4 + n) else {
            return false;
        };
        if contains(body, line) {
            return true;
        }
        rest = &rest[4 + n..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_carried_in_a_frame_of_its_own() {
        let mut wire = frame(Dialect::Framed, b"otro");
        wire.extend_from_slice(&frame(Dialect::Framed, b"hola"));
        assert!(carries(&wire, b"hola", true));
        assert!(!carries(&wire[..wire.len() - 1], b"hola", true));
        assert!(carries(b"xxholaxx", b"hola", false));
        assert!(!carries(b"xxholaxx", b"hola", true));
    }
}
