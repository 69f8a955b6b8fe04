//! Chapter 5 (several servers): one question to every server, the answers
//! labelled with who gave them.

use std::time::{Duration, Instant};

use trama_protocol::FrameConfig;
use trama_transport::{MultiClient, MultiConfig, MultiEvent, ServerSpec};

/// Sends `question` to every server in `addrs` and returns each answer with
/// the index of its server, in the order they came; gives up after `timeout`.
pub fn ask_all(
    addrs: &[String],
    question: &[u8],
    timeout: Duration,
) -> trama_transport::Result<Vec<(usize, Vec<u8>)>> {
    let servers = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            ServerSpec::new((i + 1).to_string(), addr.clone()).with_frame(FrameConfig::default())
        })
        .collect();
    let multi = MultiClient::start(servers, MultiConfig::default())?;
    for server in 0..addrs.len() {
        // Sent now, or held until that server is up.
        multi.send(server, question)?;
    }
    let deadline = Instant::now() + timeout;
    let mut answers = Vec::new();
    while answers.len() < addrs.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match multi.events().recv_timeout(left) {
            Ok(MultiEvent::Message { server, payload }) => answers.push((server, payload)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    multi.close();
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::{Actions, Event};
    use trama_transport::{RunningServer, Server, ServerConfig};

    fn server(tag: &'static str) -> RunningServer {
        let service = move |event: Event<'_>, out: &mut Actions| {
            if let Event::Message { id, payload } = event {
                let text = String::from_utf8_lossy(payload);
                out.send(id, format!("{tag}: {text}").as_bytes());
            }
        };
        Server::bind(ServerConfig::default(), service)
            .unwrap()
            .spawn()
            .unwrap()
    }

    #[test]
    fn both_servers_answer_and_say_who_they_are() {
        let (one, two) = (server("uno"), server("dos"));
        let addrs = [one.local_addr().to_string(), two.local_addr().to_string()];
        let mut got = ask_all(&addrs, b"hola", Duration::from_secs(10)).unwrap();
        got.sort();
        assert_eq!(
            got,
            [(0, b"uno: hola".to_vec()), (1, b"dos: hola".to_vec())]
        );
        one.stop();
        two.stop();
    }
}
