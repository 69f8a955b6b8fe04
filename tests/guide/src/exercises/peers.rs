//! Chapter 6 (peers): one program that accepts and dials.
//!
//! Both ends run the same code: a `PeerNode` listens, and dials whoever it
//! is told about; accepted and dialed links arrive as the same events.

use std::time::{Duration, Instant};

use trama_transport::{LinkEvent, PeerNode};

/// Dials `addr` from `node`, waits for the link, and sends `text` on it.
pub fn dial_and_say(
    node: &PeerNode,
    addr: &str,
    text: &str,
    timeout: Duration,
) -> Result<(), String> {
    node.dial(addr, false).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.events().recv_timeout(left) {
            Ok(LinkEvent::Up {
                link, dialed: true, ..
            }) => {
                return node.send(link, text.as_bytes()).map_err(|e| e.to_string());
            }
            Ok(LinkEvent::DialFailed { addr, reason, .. }) => {
                return Err(format!("cannot dial {addr}: {reason}"));
            }
            Ok(_) => {}
            Err(_) => return Err(format!("no link to {addr} within {timeout:?}")),
        }
    }
}

/// The first message `node` receives on any link, within `timeout`.
pub fn first_message(node: &PeerNode, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.events().recv_timeout(left) {
            Ok(LinkEvent::Message { payload, .. }) => return Some(payload),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_transport::PeerConfig;

    #[test]
    fn each_peer_reaches_the_other() {
        let ana = PeerNode::start(PeerConfig::default()).unwrap();
        let bea = PeerNode::start(PeerConfig::default()).unwrap();
        let ana_addr = ana.local_addr().unwrap().to_string();
        let bea_addr = bea.local_addr().unwrap().to_string();
        let wait = Duration::from_secs(10);

        dial_and_say(&bea, &ana_addr, "hola, ana", wait).unwrap();
        assert_eq!(first_message(&ana, wait).unwrap(), b"hola, ana");
        dial_and_say(&ana, &bea_addr, "hola, bea", wait).unwrap();
        assert_eq!(first_message(&bea, wait).unwrap(), b"hola, bea");
    }
}
