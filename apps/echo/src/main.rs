//! `trama-echo`: the notes' echo server ("Envío de datos") and its clients.
//!
//! `serve` echoes bytes back; by default in the notes' unframed dialect, so
//! their JSON and pickle clients work unchanged, or frame by frame with
//! `--framed`. `send` is the notes' JSON client and object client in one.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use trama_backend::Echo;
use trama_cli::{parse_duration, AuthArgs, FrameArgs, ServerArgs, TlsClientArgs, TlsServerArgs};
use trama_protocol::Codec;
use trama_transport::{Client, ClientConfig};

#[derive(Parser)]
#[command(
    name = "trama-echo",
    version,
    about = "An echo server and client that speak the course notes' formats"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo back whatever arrives, to any number of clients at once.
    Serve(Serve),
    /// Send one message and print the reply.
    Send(Send),
}

#[derive(Args)]
struct Serve {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(short, long, default_value = trama_cli::ports::ECHO)]
    addr: String,
    /// Echo whole frames (4-byte big-endian length + payload) instead of raw bytes.
    #[arg(long, conflicts_with = "raw")]
    framed: bool,
    /// The notes' unframed dialect: echo the bytes of each read as they are
    /// (what `serve` does without --framed; the spelling every app shares).
    #[arg(short, long)]
    raw: bool,
    #[command(flatten)]
    frame: FrameArgs,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    tls: TlsServerArgs,
}

#[derive(Args)]
struct Send {
    /// Server address.
    #[arg(short, long, default_value = trama_cli::ports::ECHO)]
    addr: String,
    /// The notes' unframed dialect: send the bytes exactly as given (no
    /// header, no newline) and print what the first read returns.
    #[arg(short, long)]
    raw: bool,
    /// Send this JSON document (e.g. '{"1": "Hola", "2": "Chao"}').
    #[arg(long, group = "message")]
    json: Option<String>,
    /// Send this text.
    #[arg(long, group = "message")]
    text: Option<String>,
    /// Send the notes' Persona (nombre, correo) as a MessagePack map.
    #[arg(long, group = "message", num_args = 2, value_names = ["NOMBRE", "CORREO"])]
    persona: Option<Vec<String>>,
    /// How long to wait for the connection and for the reply.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    frame: FrameArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    tls: TlsClientArgs,
}

/// The notes' `Persona`, sent as a MessagePack map so any language reads it.
#[derive(Serialize, Deserialize, Debug)]
struct Persona {
    nombre: String,
    correo: String,
}

/// How a person reads a Persona: as the notes' `__str__` would print it.
impl std::fmt::Display for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.nombre, self.correo)
    }
}

/// What `send` sends, and how it reads the answer.
enum Message {
    Json(serde_json::Value),
    Text(String),
    Persona(Persona),
}

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-echo");
    let result = match cli.command {
        Command::Serve(args) => {
            trama_cli::init_logging("info");
            serve(args)
        }
        Command::Send(args) => {
            trama_cli::init_logging("warn");
            send(args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => trama_cli::exit::fail("trama-echo", e),
    }
}

type AppResult = Result<(), Box<dyn std::error::Error>>;

fn serve(args: Serve) -> AppResult {
    let frame = args.frame.frame_config(args.framed)?;
    let config = args
        .server
        .config(&args.addr, frame)
        .with_auth(args.auth.config()?)
        .with_tls(args.tls.config()?);
    trama_cli::serve(config, Echo, |_| {})?;
    Ok(())
}

fn send(args: Send) -> AppResult {
    let message = if let Some(json) = &args.json {
        Message::Json(
            serde_json::from_str(json).map_err(|e| format!("--json is not valid JSON: {e}"))?,
        )
    } else if let Some(text) = &args.text {
        Message::Text(text.clone())
    } else if let Some(p) = &args.persona {
        let [nombre, correo] = p.as_slice() else {
            return Err("--persona takes NOMBRE CORREO".into());
        };
        Message::Persona(Persona {
            nombre: nombre.clone(),
            correo: correo.clone(),
        })
    } else {
        return Err("say what to send: --json, --text or --persona".into());
    };
    let bytes = match &message {
        Message::Json(v) => serde_json::to_vec(v)?,
        Message::Text(t) => t.as_bytes().to_vec(),
        Message::Persona(p) => Codec::MsgPack.to_vec(p)?,
    };
    let auth = args.auth.config()?;
    let tls = args.tls.config()?;
    let reply = if args.raw {
        if auth.is_some() || tls.is_some() {
            return Err(
                "--raw speaks the notes' plain unframed dialect: no key handshake, no TLS".into(),
            );
        }
        send_raw(&args.addr, &bytes, args.timeout)?
    } else {
        let config = ClientConfig::default()
            .with_frame(args.frame.frame_config(true)?)
            .with_connect_timeout(args.timeout)
            .with_auth(auth)
            .with_tls(tls);
        let client = Client::connect(&args.addr, config)?;
        let reply = client.request(&bytes, args.timeout)?;
        client.close();
        reply
    };
    match message {
        Message::Json(_) => {
            let v: serde_json::Value = Codec::Json.decode(&reply)?;
            trama_cli::say!("{v}");
        }
        Message::Text(_) => trama_cli::say!("{}", trama_protocol::text(&reply)?),
        Message::Persona(_) => {
            let p: Persona = Codec::MsgPack.decode(&reply)?;
            trama_cli::say!("{p}");
        }
    }
    Ok(())
}

/// The notes' dialect: write the bytes, print what one read returns. The
/// notes' echo server never closes, so we do not wait for it to.
fn send_raw(
    addr: &str,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut stream = trama_transport::connect(addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(bytes)?;
    let mut buf = vec![0u8; 4096];
    let n = match stream.read(&mut buf) {
        Ok(0) => {
            return Err(format!(
                "{addr} closed the connection without replying (a framed server does that \
                 when the first bytes are not a length it accepts: if it is one, leave out \
                 --raw and send a framed message)"
            )
            .into())
        }
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(format!("no reply from {addr} within {timeout:?}").into())
        }
        Err(e) => return Err(e.into()),
    };
    buf.truncate(n);
    Ok(buf)
}
