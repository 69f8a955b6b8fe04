//! The shared-key handshake on real sockets: the readiness-loop server, the
//! client, the pool server, the peer and the multi-server client, with the
//! right key, a wrong one, none, a replayed recording and a stalled peer.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{echo, expect_closed, frame, raw, read_frame, spawn, wait_until, write_frame, Log};
use trama_protocol::auth::{AuthError, AuthKey, AuthPolicy, CHALLENGE, FAILURE};
use trama_transport::{
    AuthConfig, Client, ClientConfig, Error, LinkEvent, MultiClient, MultiConfig, MultiEvent,
    PeerConfig, PeerNode, PoolConfig, PoolServer, RunningServer, ServerConfig, ServerSpec,
};

fn auth(key: &[u8]) -> AuthConfig {
    AuthConfig::new(AuthKey::new(key.to_vec()).unwrap())
}

fn server(key: Option<&[u8]>, log: &Log) -> RunningServer {
    let config = ServerConfig::default().with_auth(key.map(auth));
    spawn(config, log.service(echo))
}

fn connect(addr: SocketAddr, key: Option<&[u8]>) -> Result<Client, Error> {
    let config = ClientConfig::default().with_auth(key.map(auth));
    Client::connect(&addr.to_string(), config)
}

#[test]
fn the_right_key_gets_in_and_echoes() {
    let log = Log::new();
    let s = server(Some(b"secret"), &log);
    let c = connect(s.local_addr(), Some(b"secret")).unwrap();
    // Pipelined right behind the handshake: none of it may be lost.
    c.send(b"hola").unwrap();
    c.send(b"chao").unwrap();
    assert_eq!(c.recv_timeout(common::DEADLINE).unwrap(), b"hola");
    assert_eq!(c.recv_timeout(common::DEADLINE).unwrap(), b"chao");
    assert_eq!(log.connects(), 1);
    s.stop();
}

#[test]
fn a_wrong_key_is_refused_and_the_server_keeps_serving() {
    let log = Log::new();
    let s = server(Some(b"secret"), &log);
    match connect(s.local_addr(), Some(b"not the secret")) {
        Err(Error::Auth(AuthError::Rejected)) => {}
        other => panic!("expected a rejection, got {:?}", other.err()),
    }
    // The service never heard of that connection.
    assert_eq!(log.connects(), 0);
    let c = connect(s.local_addr(), Some(b"secret")).unwrap();
    assert_eq!(
        c.request(b"still here", common::DEADLINE).unwrap(),
        b"still here"
    );
    assert_eq!(log.connects(), 1);
    assert_eq!(log.disconnects(), 0);
    s.stop();
}

#[test]
fn a_peer_without_the_key_gets_failure_and_never_reaches_the_service() {
    let log = Log::new();
    let s = server(Some(b"secret"), &log);
    let mut sock = raw(s.local_addr());
    let challenge = read_frame(&mut sock);
    assert!(challenge.starts_with(CHALLENGE), "{challenge:?}");
    // What a client without a key does: send its first message.
    write_frame(&mut sock, b"hola");
    assert_eq!(read_frame(&mut sock), FAILURE);
    expect_closed(&mut sock);
    // A trama client without a key sees the challenge as a message, then the end.
    let c = connect(s.local_addr(), None).unwrap();
    c.send(b"hola").unwrap();
    let first = c.recv_timeout(common::DEADLINE).unwrap();
    assert!(first.starts_with(CHALLENGE));
    assert_eq!(c.recv_timeout(common::DEADLINE).unwrap(), FAILURE);
    assert!(matches!(
        c.recv_timeout(common::DEADLINE),
        Err(Error::Closed(_))
    ));
    assert_eq!(log.connects(), 0);
    s.stop();
}

#[test]
fn a_client_with_a_key_against_a_server_without_one_times_out() {
    let log = Log::new();
    let s = server(None, &log);
    let mut a = auth(b"secret");
    a.timeout = Duration::from_millis(300);
    let config = ClientConfig::default().with_auth(Some(a));
    match Client::connect(&s.local_addr().to_string(), config) {
        Err(Error::HandshakeTimeout(d)) => assert_eq!(d, Duration::from_millis(300)),
        other => panic!("expected a handshake timeout, got {:?}", other.err()),
    }
    s.stop();
}

#[test]
fn a_stalled_handshake_is_dropped_at_the_deadline() {
    let log = Log::new();
    let mut a = auth(b"secret");
    a.timeout = Duration::from_secs(1);
    let config = ServerConfig::default().with_auth(Some(a));
    let s = spawn(config, log.service(echo));
    // One says nothing; the other sends half a frame and stops. (The
    // deadline leaves a loaded machine time for the good client below.)
    let mut silent = raw(s.local_addr());
    let mut half = raw(s.local_addr());
    half.write_all(&[0, 0, 0, 40, b'{']).unwrap();
    for sock in [&mut silent, &mut half] {
        assert!(read_frame(sock).starts_with(CHALLENGE));
        expect_closed(sock);
    }
    // Meanwhile others are served.
    let c = connect(s.local_addr(), Some(b"secret")).unwrap();
    assert_eq!(c.request(b"x", common::DEADLINE).unwrap(), b"x");
    assert_eq!(log.connects(), 1);
    s.stop();
}

/// A TCP relay that records each direction's bytes.
struct Recorder {
    addr: SocketAddr,
    to_server: Arc<Mutex<Vec<u8>>>,
    to_client: Arc<Mutex<Vec<u8>>>,
}

fn recorder(target: SocketAddr) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let to_server = Arc::new(Mutex::new(Vec::new()));
    let to_client = Arc::new(Mutex::new(Vec::new()));
    let (ts, tc) = (to_server.clone(), to_client.clone());
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(target).unwrap();
        let pump = |mut from: TcpStream, mut to: TcpStream, tape: Arc<Mutex<Vec<u8>>>| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    tape.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            })
        };
        let a = pump(client.try_clone().unwrap(), server.try_clone().unwrap(), ts);
        let b = pump(server, client, tc);
        let _ = (a.join(), b.join());
    });
    Recorder {
        addr,
        to_server,
        to_client,
    }
}

#[test]
fn a_recorded_handshake_cannot_be_replayed_either_way() {
    let log = Log::new();
    let s = server(Some(b"secret"), &log);
    let rec = recorder(s.local_addr());
    let c = connect(rec.addr, Some(b"secret")).unwrap();
    assert_eq!(
        c.request(b"recorded", common::DEADLINE).unwrap(),
        b"recorded"
    );
    c.close();
    wait_until("the recording to end", || log.disconnects() == 1);
    let client_bytes = rec.to_server.lock().unwrap().clone();
    let server_bytes = rec.to_client.lock().unwrap().clone();

    // The client's side, replayed to the server: the answer is to an old challenge.
    let mut sock = raw(s.local_addr());
    sock.write_all(&client_bytes).unwrap();
    assert!(read_frame(&mut sock).starts_with(CHALLENGE));
    assert_eq!(read_frame(&mut sock), FAILURE);
    expect_closed(&mut sock);
    assert_eq!(log.connects(), 1, "the replay reached the service");

    // The server's side, replayed to a client: its answer is to an old challenge.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut sock, _) = fake.accept().unwrap();
        let _ = sock.write_all(&server_bytes);
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest);
        rest
    });
    match connect(fake_addr, Some(b"secret")) {
        Err(Error::Auth(AuthError::WrongAnswer)) => {}
        other => panic!("a replayed server was believed: {:?}", other.err()),
    }
    // The client told the fake server so.
    let heard = t.join().unwrap();
    assert!(heard.ends_with(&frame(FAILURE)), "{heard:?}");
    s.stop();
}

#[test]
fn the_pool_server_hands_over_only_authenticated_streams() {
    let config = PoolConfig::default().with_auth(Some(auth(b"secret")));
    let pool = PoolServer::bind(config).unwrap();
    let (addr, handle) = (pool.local_addr(), pool.handle());
    let served = Arc::new(Mutex::new(0usize));
    let served2 = served.clone();
    let t = std::thread::spawn(move || {
        pool.run(move |mut s, _| {
            *served2.lock().unwrap() += 1;
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })
        .unwrap()
    });
    assert!(matches!(
        connect(addr, Some(b"wrong")),
        Err(Error::Auth(AuthError::Rejected))
    ));
    // The client API frames; the pool handler echoes raw bytes, which is the same frame.
    let c = connect(addr, Some(b"secret")).unwrap();
    assert_eq!(c.request(b"pool", common::DEADLINE).unwrap(), b"pool");
    assert_eq!(*served.lock().unwrap(), 1);
    c.close();
    handle.shutdown();
    t.join().unwrap();
}

fn peer(key: &[u8]) -> PeerNode {
    PeerNode::start(
        PeerConfig::default()
            .with_auth(Some(auth(key)))
            .with_backoff(trama_protocol::Backoff::new(
                Duration::from_millis(20),
                Duration::from_millis(200),
            )),
    )
    .unwrap()
}

fn next_event(node: &PeerNode) -> LinkEvent {
    node.events().recv_timeout(common::DEADLINE).unwrap()
}

#[test]
fn peers_link_only_with_the_same_key() {
    let a = peer(b"secret");
    let b = peer(b"secret");
    b.dial(&a.local_addr().unwrap().to_string(), false).unwrap();
    assert!(matches!(
        next_event(&a),
        LinkEvent::Up { dialed: false, .. }
    ));
    assert!(matches!(next_event(&b), LinkEvent::Up { dialed: true, .. }));

    let intruder = peer(b"guess");
    intruder
        .dial(&a.local_addr().unwrap().to_string(), false)
        .unwrap();
    match next_event(&intruder) {
        LinkEvent::DialFailed { reason, .. } => assert!(reason.contains("key"), "{reason}"),
        other => panic!("the intruder got {other:?}"),
    }
    // A saw nothing of it: the next thing A hears of is a later peer with
    // the key (an event for the intruder, sent when A refused it, would
    // come first).
    let c = peer(b"secret");
    c.dial(&a.local_addr().unwrap().to_string(), false).unwrap();
    assert!(matches!(next_event(&c), LinkEvent::Up { dialed: true, .. }));
    match next_event(&a) {
        LinkEvent::Up { dialed: false, .. } => {}
        other => panic!("A heard of the intruder: {other:?}"),
    }
}

#[test]
fn the_multi_client_authenticates_framed_servers() {
    let log = Log::new();
    let s = server(Some(b"secret"), &log);
    let spec = |name: &str| ServerSpec::new(name, s.local_addr().to_string());
    let good = MultiClient::start(
        vec![spec("good")],
        MultiConfig::default().with_auth(Some(auth(b"secret"))),
    )
    .unwrap();
    assert!(matches!(
        good.events().recv_timeout(common::DEADLINE).unwrap(),
        MultiEvent::Up { server: 0, .. }
    ));
    let bad = MultiClient::start(
        vec![spec("bad")],
        MultiConfig::default().with_auth(Some(auth(b"nope"))),
    )
    .unwrap();
    match bad.events().recv_timeout(common::DEADLINE).unwrap() {
        MultiEvent::Down { reason, .. } => assert!(reason.contains("key"), "{reason}"),
        other => panic!("{other:?}"),
    }
    good.close();
    bad.close();
    s.stop();
}

#[test]
fn legacy_md5_is_accepted_only_when_allowed() {
    // A trama client told to allow MD5 still answers a SHA-256 challenge with
    // SHA-256, so this drives the legacy path with a hand-made 3.11-style peer.
    let log = Log::new();
    let mut a = auth(b"secret");
    a.policy = AuthPolicy::default().with_legacy_md5(true);
    let strict = server(Some(b"secret"), &log);
    let config = ServerConfig::default().with_auth(Some(a));
    let lenient = spawn(config, log.service(echo));
    let legacy_answer = |sock: &mut TcpStream| {
        let challenge = read_frame(sock);
        let message = &challenge[CHALLENGE.len()..];
        write_frame(sock, &hmac_md5(b"secret", message));
        read_frame(sock)
    };
    let mut sock = raw(strict.local_addr());
    assert_eq!(legacy_answer(&mut sock), FAILURE);
    let mut sock = raw(lenient.local_addr());
    assert_eq!(legacy_answer(&mut sock), trama_protocol::auth::WELCOME);
    strict.stop();
    lenient.stop();
}

/// HMAC-MD5 (RFC 2104), written out so the test does not trust the code it tests.
fn hmac_md5(key: &[u8], message: &[u8]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let inner = Md5::digest(&inner);
    let outer: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner.iter().copied())
        .collect();
    Md5::digest(&outer).to_vec()
}
