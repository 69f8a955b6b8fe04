//! `trama-multi`: the notes' "cliente conectado a más de un servidor", for
//! any number of servers.
//!
//! Type `@1 hola` to send to the first `--server`, `@NAME hola` to the one
//! labelled NAME, `@all hola` to every one. What arrives is printed with its
//! server's label. A server that goes away is reconnected in the background
//! while the others keep working; a line for it waits until it is back.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use trama_cli::{parse_duration, QuietExit};
use trama_protocol::FrameConfig;
use trama_transport::{MultiClient, MultiConfig, MultiEvent, Sent, ServerSpec};

#[derive(Parser)]
#[command(
    name = "trama-multi",
    version,
    about = "A console connected to several servers at once",
    after_help = "Console: '@1 text' sends to the first server, '@NAME text' to the server labelled NAME, \
                  '@all text' to every server. A server is given as [NAME=][raw:]HOST:PORT; \
                  'raw:' speaks the notes' unframed dialect (text without newline, each chunk received is one message)."
)]
struct Cli {
    /// A server, as `[NAME=][raw:]HOST:PORT`. Repeat for each server; they are numbered from 1.
    #[arg(short, long = "server", required = true)]
    servers: Vec<String>,
    /// After the input ends, keep printing until nothing arrived for this long.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    wait: Duration,
    /// Time each connection attempt may take.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Longest wait between reconnection attempts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    max_backoff: Duration,
    /// Lines held for a server that is down.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// The key handshake, with every framed server (not the `raw:` ones).
    #[command(flatten)]
    auth: trama_cli::AuthArgs,
    /// TLS with every framed server (not the `raw:` ones).
    #[command(flatten)]
    tls: trama_cli::TlsClientArgs,
    #[command(flatten)]
    keepalive: trama_cli::KeepaliveArgs,
}

/// Parse `[NAME=][raw:]HOST:PORT`; the default label is the 1-based position.
fn parse_server(index: usize, text: &str) -> Result<ServerSpec, String> {
    let (name, rest) = match text.split_once('=') {
        Some((name, rest)) if !name.is_empty() => (name.to_string(), rest),
        _ => ((index + 1).to_string(), text),
    };
    if name == "all" || name.contains(char::is_whitespace) {
        return Err(format!("{name:?} cannot label a server"));
    }
    let (frame, addr) = match rest.strip_prefix("raw:") {
        Some(addr) => (FrameConfig::unframed(), addr),
        None => (FrameConfig::default(), rest),
    };
    if !addr.contains(':') {
        return Err(format!("{text:?}: expected HOST:PORT"));
    }
    Ok(ServerSpec::new(name, addr.to_string()).with_frame(frame))
}

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-multi");
    trama_cli::init_logging("warn");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => trama_cli::exit::fail("trama-multi", e),
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let servers = cli
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| parse_server(i, s))
        .collect::<Result<Vec<_>, _>>()?;
    let labels: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    let config = MultiConfig::default()
        .with_connect_timeout(cli.connect_timeout)
        .with_queue(cli.queue)
        .with_auth(cli.auth.config()?)
        .with_keepalive(cli.keepalive.keepalive.0)
        .with_tls(cli.tls.config()?)
        .with_backoff(trama_protocol::Backoff::default().with_max(cli.max_backoff));
    let multi = Arc::new(MultiClient::start(servers, config)?);
    if let Err(e) = ctrlc::set_handler(|| {
        // A signal from outside (SIGTERM, SIGHUP) may come while the editor
        // has the terminal raw: give it back as it was found.
        trama_cli::console::restore_terminal();
        std::process::exit(0)
    }) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }

    let (quiet, input_done) = QuietExit::new(cli.wait);
    let printer = {
        let (multi, labels) = (multi.clone(), labels.clone());
        std::thread::spawn(move || print_events(&multi, &labels, quiet))
    };
    // Typed lines; what arrives meanwhile prints above the one being typed.
    let mut console = trama_cli::console::Console::new();
    while let Some(line) = console.next_line() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        route(&multi, &labels, &line);
    }
    input_done.store(true, Ordering::SeqCst);
    let _ = printer.join();
    // Lines still held for a server that never came (back) are lost when the
    // console ends: say so, and exit non-zero.
    let lost: Vec<String> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, label)| match multi.held(i) {
            0 => None,
            n => Some(format!("{n} for {label}")),
        })
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "lines never sent, their server not connected: {}",
            lost.join(", ")
        )
        .into());
    }
    Ok(())
}

/// Send a typed line where its `@` prefix says.
fn route(multi: &MultiClient, labels: &[String], line: &str) {
    let Some(rest) = line.strip_prefix('@') else {
        trama_cli::say!(
            "* start the line with @1, @NAME or @all (servers: {})",
            labels.join(", ")
        );
        return;
    };
    let (target, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let targets: Vec<usize> = if target == "all" {
        (0..labels.len()).collect()
    } else if let Some(i) = labels.iter().position(|l| l == target) {
        vec![i]
    } else if let Some(i) = target
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=labels.len()).contains(n))
    {
        vec![i - 1]
    } else {
        trama_cli::say!("* no server {target:?} (servers: {})", labels.join(", "));
        return;
    };
    for i in targets {
        match multi.send(i, text.as_bytes()) {
            Ok(Sent::Now) => {}
            Ok(Sent::Held { waiting }) => trama_cli::say!(
                "* {} is not connected; the line is held and goes out when it is back ({waiting} waiting)",
                labels[i]
            ),
            Err(e) => trama_cli::say!("* not sent to {}: {e}", labels[i]),
        }
    }
}

/// Print what arrives, labelled; after the input ends, stop once quiet for `wait`.
fn print_events(multi: &MultiClient, labels: &[String], mut quiet: QuietExit) {
    loop {
        if quiet.should_exit() {
            return;
        }
        let Ok(event) = multi.events().recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        quiet.activity();
        let label = |i: usize| labels.get(i).map_or("?", String::as_str);
        match event {
            MultiEvent::Message { server, payload } => {
                trama_cli::say!("[{}] {}", label(server), String::from_utf8_lossy(&payload))
            }
            MultiEvent::Up {
                server,
                addr,
                flushed,
            } => {
                if flushed > 0 {
                    let lines = if flushed == 1 { "line" } else { "lines" };
                    trama_cli::say!(
                        "* {} connected ({addr}); sent {flushed} held {lines}",
                        label(server)
                    );
                } else {
                    trama_cli::say!("* {} connected ({addr})", label(server));
                }
            }
            MultiEvent::Down {
                server,
                reason,
                retry_in,
            } => trama_cli::say!(
                "* {} is down ({reason}); retrying in {} ms",
                label(server),
                retry_in.as_millis()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_specs() {
        let s = parse_server(0, "127.0.0.1:8080").unwrap();
        assert_eq!((s.name.as_str(), s.addr.as_str()), ("1", "127.0.0.1:8080"));
        assert!(!s.frame.is_unframed());
        let s = parse_server(1, "notas=raw:127.0.0.1:8081").unwrap();
        assert_eq!(
            (s.name.as_str(), s.addr.as_str()),
            ("notas", "127.0.0.1:8081")
        );
        assert!(s.frame.is_unframed());
        assert!(parse_server(0, "all=127.0.0.1:1").is_err());
        assert!(parse_server(0, "nohost").is_err());
    }
}
