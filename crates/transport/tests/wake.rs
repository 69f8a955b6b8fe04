//! Every blocking part of the transport stops while its peer says nothing.
//!
//! The peer here accepts and then stays silent, so a reader thread is
//! blocked with no byte, end or reset on the way: only the part's own close
//! can wake it. On Windows a `shutdown` of the socket would not (see
//! docs/ARCHITECTURE.md, "Waking a blocked thread"); these tests are what
//! proves the gate does, on each platform CI runs them on.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{within, DEADLINE};
use trama_protocol::FrameConfig;
use trama_transport::{
    Client, ClientConfig, LinkEvent, MultiClient, MultiConfig, MultiEvent, PeerConfig, PeerNode,
    ServerSpec,
};

/// A server that accepts every connection and never sends or closes
/// (the sockets it keeps are dropped with the returned holder).
fn silent_server() -> (SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    (addr, held)
}

#[test]
fn a_client_closes_while_its_listener_waits_on_a_silent_server() {
    let (addr, _held) = silent_server();
    let client = Client::connect(&addr.to_string(), ClientConfig::default()).unwrap();
    // Nothing will arrive: the listener thread is waiting for bytes.
    assert!(client.recv_timeout(Duration::from_millis(50)).is_err());
    within("Client::close", move || client.close());
}

#[test]
fn a_multi_client_closes_while_its_links_wait_on_silent_servers() {
    let (addr, _held) = silent_server();
    let spec = |name: &str, frame| ServerSpec::new(name, addr.to_string()).with_frame(frame);
    let servers = vec![
        spec("framed", FrameConfig::default()),
        spec("raw", FrameConfig::unframed()),
    ];
    let multi = MultiClient::start(servers, MultiConfig::default()).unwrap();
    let mut up = 0;
    while up < 2 {
        match multi.events().recv_timeout(DEADLINE).unwrap() {
            MultiEvent::Up { .. } => up += 1,
            other => panic!("expected both links up, got {other:?}"),
        }
    }
    within("MultiClient::close", move || multi.close());
}

#[test]
fn a_peer_node_closes_one_link_then_drops_while_its_readers_wait() {
    let (addr, _held) = silent_server();
    let node = PeerNode::start(PeerConfig::default()).unwrap();
    node.dial(&addr.to_string(), false).unwrap();
    node.dial(&addr.to_string(), false).unwrap();
    let mut links = Vec::new();
    while links.len() < 2 {
        if let LinkEvent::Up { link, .. } = node.events().recv_timeout(DEADLINE).unwrap() {
            links.push(link);
        }
    }
    // One link closed by hand: its reader wakes and reports it down.
    node.close(links[0]);
    loop {
        match node.events().recv_timeout(DEADLINE).unwrap() {
            LinkEvent::Down { link, .. } if link == links[0] => break,
            LinkEvent::Down { link, reason } => panic!("{link} went down: {reason}"),
            _ => {}
        }
    }
    assert_eq!(node.links(), [links[1]]);
    // The other is still waiting when the node is dropped.
    within("dropping the PeerNode", move || drop(node));
}

#[test]
fn a_peer_node_listening_on_every_address_drops_while_an_accepted_link_waits() {
    // The accept thread must be woken without connecting to the node's own
    // address: `0.0.0.0` cannot be dialed on Windows.
    let node =
        PeerNode::start(PeerConfig::default().with_listen(Some("0.0.0.0:0".into()))).unwrap();
    let port = node.local_addr().unwrap().port();
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    match node.events().recv_timeout(DEADLINE).unwrap() {
        LinkEvent::Up { dialed: false, .. } => {}
        other => panic!("expected the accepted link up, got {other:?}"),
    }
    within("dropping the PeerNode", move || drop(node));
}
