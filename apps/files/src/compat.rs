//! `--raw`: the notes' own file format, both ways.
//!
//! The sender writes a 4-byte big-endian length and then the bytes; the
//! receiver answers with the unframed text "Gracias.". The notes' Python
//! sender and receiver interoperate with these. Unlike the notes, the body is
//! streamed in constant memory (`read_body` into the file on the receiving side,
//! `sendfile` on the sending side), so a file near 4 GiB never sits in
//! memory, and the receiver never overwrites a file unless told to.
//!
//! No TLS here: the notes' Python programs speak plain TCP, and a
//! `--raw` that spoke TLS would interoperate with nothing it exists for.
//! Both sides refuse the TLS flags with `--raw` and say so; the shared
//! key stays (Python's `multiprocessing.connection` speaks it).

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::progress::format_summary;
use trama_backend::files::{self, human_bytes};
use trama_protocol::auth::Role;
use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
use trama_transport::PoolServer;

use crate::{receive, AppResult, ReceiveArgs, SendArgs};

/// The notes' receiver stores the file under this name.
const NOTES_NAME: &str = "recibido.bin";

/// Why `--raw` and TLS do not mix, for both sides' refusal.
const NO_TLS: &str = "--raw speaks the notes' plain format, which their Python programs read; \
                      it has no TLS (leave out --raw to send over TLS)";

/// Receive files in the notes' format.
pub fn receive(args: &ReceiveArgs) -> AppResult {
    if args.tls.tls_cert.is_some() || args.tls.tls_key.is_some() {
        return Err(NO_TLS.into());
    }
    let wanted = args
        .output
        .clone()
        .unwrap_or_else(|| NOTES_NAME.to_string());
    files::check_name(&wanted).map_err(|e| format!("--output: {e}"))?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot use {} as the directory: {e}", args.dir.display()))?;
    let server = PoolServer::bind(receive::pool_config(args)?)?;
    let handle = server.handle();
    let stopper = handle.clone();
    if let Err(e) = ctrlc::set_handler(move || stopper.shutdown()) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    eprintln!("listening on {}", server.local_addr());
    let args = args.clone();
    let taken = Arc::new(Mutex::new(HashSet::<String>::new()));
    server.run(move |stream, peer| {
        // Never TLS (refused above): the plain socket, for the kernel's copy.
        let Some(stream) = stream.as_tcp() else {
            log::error!("{peer}: a TLS stream in --raw mode; closed");
            return;
        };
        match receive_one(&args, &wanted, &taken, stream, peer) {
            Ok(()) if args.once => handle.shutdown(),
            Ok(()) => {}
            Err(e) => log::warn!("{peer}: {e}"),
        }
    })?;
    Ok(())
}

fn receive_one(
    args: &ReceiveArgs,
    wanted: &str,
    taken: &Mutex<HashSet<String>>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> AppResult {
    let mut reader = FrameReader::new(stream, FrameConfig::default());
    let limit = args.max_size.unwrap_or(u64::from(u32::MAX));
    let Some(mut body) = reader.read_body(limit)? else {
        return Err("closed before sending a length".into());
    };
    let size = body.len();
    // Pick the name now and hold it, so two senders at once get two files
    // (even with --overwrite, which replaces a file on disk, not one that
    // another sender is still writing through the same temporary file).
    let name = {
        let mut taken = taken.lock().map_err(|_| "receiver error")?;
        let name = files::numbered_name(wanted, |n| {
            taken.contains(n) || (!args.overwrite && args.dir.join(n).exists())
        });
        taken.insert(name.clone());
        name
    };
    let result = (|| -> AppResult<u64> {
        let part = args.dir.join(files::partial_name(&name, size));
        let mut file = File::create(&part)?;
        log::info!("{peer}: receiving {} into {name}", human_bytes(size));
        let start = Instant::now();
        let copied = body.copy_to(&mut file);
        let copied = match copied {
            Ok(n) => n,
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(e.into());
            }
        };
        file.sync_data()?;
        drop(file);
        std::fs::rename(&part, args.dir.join(&name))?;
        log::info!(
            "{peer}: {}",
            format_summary(&name, copied, start.elapsed().as_secs_f64())
        );
        Ok(copied)
    })();
    if let Ok(mut taken) = taken.lock() {
        taken.remove(&name);
    }
    result?;
    let mut s = stream;
    s.write_all(files::THANKS.as_bytes())?;
    Ok(())
}

/// Send one file in the notes' format and print the receiver's reply.
pub fn send(args: &SendArgs) -> AppResult {
    if args.tls.tls_ca.is_some() {
        return Err(NO_TLS.into());
    }
    let [path] = args.paths.as_slice() else {
        return Err("--raw sends exactly one file (the notes' format has no names)".into());
    };
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file.metadata()?.len();
    if size > u64::from(u32::MAX) {
        return Err(format!(
            "{} is {size} bytes; the notes' 4-byte header carries at most {} (4 GiB - 1): \
             send it without --raw",
            path.display(),
            u32::MAX
        )
        .into());
    }
    let stream = trama_transport::connect(&args.addr, args.timeout)?;
    if let Some(auth) = args.auth.config()? {
        trama_transport::authenticate(&stream, Role::Dialer, &auth)?;
    }
    stream.set_read_timeout(Some(args.timeout))?;
    stream.set_write_timeout(Some(args.timeout))?;
    let start = Instant::now();
    let mut writer = FrameWriter::new(&stream, FrameConfig::default());
    writer.send_body(size, &mut file)?;
    let mut reply = vec![0u8; 4096];
    let n = (&stream).read(&mut reply)?;
    if n == 0 {
        return Err("the receiver closed without replying".into());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    trama_cli::say!(
        "{}; the receiver says: {}",
        format_summary(&name, size, start.elapsed().as_secs_f64()),
        String::from_utf8_lossy(&reply[..n])
    );
    Ok(())
}
