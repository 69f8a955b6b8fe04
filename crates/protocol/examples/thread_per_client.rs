//! The notes' multi-client server, written plainly: one thread per client.
//!
//! Run: `cargo run -p trama-protocol --example thread_per_client -- 127.0.0.1:8080`
//! (port 0 picks a free port; the address is printed as `listening on ADDR`).
//!
//! It speaks the notes' framed format (a 4-byte big-endian length, then the
//! payload) and answers every frame with the same frame, like
//! `trama-echo serve --framed`, so the two can be compared with the same
//! clients. The framing is `trama-protocol`'s, so unlike the notes' server it
//! never mistakes a short `recv` for a whole header, never allocates what a
//! hostile header announces (16 MiB limit), and its thread ends when its
//! client leaves instead of spinning on empty reads.
//!
//! What it keeps from the notes is the shape: `accept` in a loop, and a
//! thread per accepted client that blocks in `read` until that client
//! speaks. Simple, and fast for a few clients; but every connected client,
//! even a silent one, costs a thread (a stack and a kernel task). The guide's
//! chapter on many clients measures it against `trama-echo serve --framed`,
//! which serves every client from a couple of readiness-loop threads.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use trama_protocol::{FrameConfig, FrameReader, FrameWriter};

/// A client silent for this long is dropped, so a client that vanished
/// without closing (a cable pulled) does not hold its thread forever.
const IDLE_LIMIT: Duration = Duration::from_secs(600);

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("listening on {}", listener.local_addr()?);
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait instead of spinning.
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let open = clients.fetch_add(1, Ordering::Relaxed) + 1;
        let mine = Arc::clone(&clients);
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .spawn(move || {
                if let Err(e) = serve(stream, peer) {
                    eprintln!("{peer}: {e}");
                }
                mine.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            // The thread limit, or out of memory for another stack.
            clients.fetch_sub(1, Ordering::Relaxed);
            eprintln!("no thread for client {open} ({peer}): {e}");
        }
    }
}

/// One client's whole life, on its own thread: read a frame, answer it.
fn serve(stream: TcpStream, peer: SocketAddr) -> Res {
    stream.set_read_timeout(Some(IDLE_LIMIT))?;
    stream.set_nodelay(true)?;
    let config = FrameConfig::default();
    let mut reader = FrameReader::new(stream.try_clone()?, config);
    // One vectored write per frame: header and payload leave together.
    let mut writer = FrameWriter::new(stream, config);
    let mut frame = Vec::new();
    // `false`: the client closed the connection between two frames.
    while reader.read_frame_into(&mut frame)? {
        writer.write_frame(&frame)?;
    }
    eprintln!("{peer} left");
    Ok(())
}
