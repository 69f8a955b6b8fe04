//! `trama-chat`: the notes' "servidor con manejo de múltiples clientes" and
//! its console client.
//!
//! `serve` runs the chat room of `trama-backend` on the transport's
//! readiness loop. `join` is the notes' client: it prints what arrives while
//! you type, and sends each line you type as one frame.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use trama_backend::Chat;
use trama_cli::{
    parse_duration, AuthArgs, FrameArgs, QuietExit, ServerArgs, TlsClientArgs, TlsServerArgs,
};
use trama_transport::{Client, ClientConfig, Error};

#[derive(Parser)]
#[command(
    name = "trama-chat",
    version,
    about = "A chat server and client in the course notes' framed format"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the chat server.
    Serve(Serve),
    /// Join a chat server: print what arrives, send each line typed.
    Join(Join),
}

#[derive(Args)]
struct Serve {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(short, long, default_value = trama_cli::ports::CHAT)]
    addr: String,
    /// Announce joins and leaves only while the room has at most this many people.
    #[arg(long, default_value_t = trama_backend::chat::DEFAULT_NOTICE_LIMIT)]
    notice_limit: usize,
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
struct Join {
    /// Server address.
    #[arg(short, long, default_value = trama_cli::ports::CHAT)]
    addr: String,
    /// Send `/nick NAME` first. Without it nothing is sent on our own, so the
    /// client also works against servers that do not know the chat commands.
    #[arg(short, long)]
    name: Option<String>,
    /// After the input ends, keep printing replies until none came for this long.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    wait: Duration,
    /// How long to wait for the connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    #[command(flatten)]
    frame: FrameArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    tls: TlsClientArgs,
    #[command(flatten)]
    keepalive: trama_cli::KeepaliveArgs,
}

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-chat");
    let result = match cli.command {
        Command::Serve(args) => {
            trama_cli::init_logging("info");
            serve(args)
        }
        Command::Join(args) => {
            trama_cli::init_logging("warn");
            join(args)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => trama_cli::exit::fail("trama-chat", e),
    }
}

type AppResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn serve(args: Serve) -> AppResult {
    // Chat lines are small: without --max-frame, frames past the chat's own
    // limit are refused at their header, not held while they arrive.
    let mut frame = args.frame.clone();
    frame
        .max_frame
        .get_or_insert(trama_backend::chat::MAX_FRAME);
    let config = args
        .server
        .config(&args.addr, frame.frame_config(true)?)
        .with_auth(args.auth.config()?)
        .with_tls(args.tls.config()?);
    trama_cli::serve(
        config,
        Chat::new().with_notice_limit(args.notice_limit),
        |_| {},
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What ended the session.
enum End {
    /// The input ended (or /quit was answered): a normal exit.
    Done,
    /// The server closed the connection or it broke.
    Lost(String),
}

fn join(args: Join) -> AppResult {
    let config = ClientConfig::default()
        .with_frame(args.frame.frame_config(true)?)
        .with_connect_timeout(args.connect_timeout)
        .with_auth(args.auth.config()?)
        .with_tls(args.tls.config()?)
        .with_keepalive(args.keepalive.keepalive.0);
    let client = Arc::new(Client::connect(&args.addr, config)?);
    eprintln!("connected to {}", client.peer_addr());

    // Ctrl-C: leave; the OS closes the socket with a normal FIN.
    if let Err(e) = ctrlc::set_handler(|| {
        // A signal from outside (SIGTERM, SIGHUP) may come while the editor
        // has the terminal raw: give it back as it was found.
        trama_cli::console::restore_terminal();
        std::process::exit(0)
    }) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }

    if let Some(name) = &args.name {
        client.send(format!("/nick {name}").as_bytes())?;
        // Said, so the first frame on the wire is no surprise (in trama-tap, say).
        eprintln!("sent /nick {name}");
    }

    // The console: this thread sends typed lines while the printer thread
    // shows what arrives, as in the notes' client.
    let (quiet, input_done) = QuietExit::new(args.wait);
    let printer = {
        let (client, input_done) = (client.clone(), input_done.clone());
        std::thread::spawn(move || {
            let end = print_messages(&client, quiet);
            if !input_done.load(Ordering::SeqCst) {
                // The session ended from the server's side (the connection
                // closed, or /quit was answered) while the main thread may be
                // blocked reading stdin, which cannot be interrupted: end the
                // process here, or it would hang until the next line is typed.
                finish(end);
            }
            end
        })
    };
    // Typed lines; what arrives meanwhile prints above the one being typed.
    let mut console = trama_cli::console::Console::new();
    while let Some(line) = console.next_line() {
        if printer.is_finished() {
            break;
        }
        let line = line?;
        if let Err(e) = client.send(line.as_bytes()) {
            eprintln!("trama-chat: cannot send: {e}");
            break;
        }
    }
    input_done.store(true, Ordering::SeqCst);
    let end = printer
        .join()
        .unwrap_or_else(|_| End::Lost("the printer thread failed".into()));
    match end {
        End::Done => Ok(ExitCode::SUCCESS),
        End::Lost(why) => Ok(trama_cli::exit::fail("trama-chat", why)),
    }
}

/// End the process from the printer thread: 0 after `* bye`, 1 (with the
/// reason on stderr) when the connection was lost.
fn finish(end: End) -> ! {
    use std::io::Write;
    // The main thread may be inside the line editor, with the terminal raw.
    trama_cli::console::restore_terminal();
    let _ = std::io::stdout().flush();
    match end {
        End::Done => std::process::exit(i32::from(trama_cli::exit::OK)),
        End::Lost(why) => {
            eprintln!("trama-chat: {why}");
            std::process::exit(i32::from(trama_cli::exit::FAILURE))
        }
    }
}

/// Print messages as they arrive. Once the input has ended, stop when the
/// server has been quiet for `wait` (the notes' server never closes the
/// connection, so waiting for it to would hang a script).
fn print_messages(client: &Client, mut quiet: QuietExit) -> End {
    let tick = Duration::from_millis(50);
    loop {
        if quiet.should_exit() {
            return End::Done;
        }
        match client.recv_timeout(tick) {
            Ok(message) => {
                quiet.activity();
                trama_cli::say!("{}", String::from_utf8_lossy(&message));
                if message == b"* bye" {
                    return End::Done;
                }
            }
            Err(Error::Timeout(_)) => {}
            Err(Error::Closed(why)) => {
                return End::Lost(format!("the server closed the connection: {why}"))
            }
            Err(e) => return End::Lost(e.to_string()),
        }
    }
}
