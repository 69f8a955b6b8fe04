//! TLS on the readiness-loop server, the client, the multi-server client,
//! the peers and the pool server: echoes small and large, a certificate
//! from an authority the client does not trust, a wrong name, a plain
//! client at a TLS server, a stalled TLS handshake, TLS with the shared key,
//! hostile frames inside TLS, and a pool handler blocked in a TLS read
//! woken by shutdown. Certificates are made at
//! test time (rcgen); nothing secret is committed.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{echo, expect_closed, frame, raw, spawn, Log, Seen, DEADLINE};
use trama_protocol::auth::{AuthError, AuthKey, Role};
use trama_protocol::DisconnectReason;
use trama_protocol::FrameConfig;
use trama_test_support::pki::Pki;
use trama_transport::{
    AuthConfig, Client, ClientConfig, Error, LinkEvent, MultiClient, MultiConfig, MultiEvent,
    PeerConfig, PeerNode, PeerTls, PoolConfig, PoolHandle, PoolServer, RunningServer, ServerConfig,
    ServerSpec, Stream, TlsAcceptor, TlsConnector,
};

/// A certificate authority and a server certificate it signed for 127.0.0.1.
fn pki() -> Pki {
    Pki::new().unwrap()
}

fn acceptor(p: &Pki) -> TlsAcceptor {
    TlsAcceptor::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap()
}

fn connector(p: &Pki) -> TlsConnector {
    TlsConnector::from_ca_pem(p.ca_pem.as_bytes()).unwrap()
}

fn server(config: ServerConfig, log: &Log) -> RunningServer {
    spawn(config, log.service(echo))
}

fn tls_server(p: &Pki, log: &Log) -> RunningServer {
    server(ServerConfig::default().with_tls(Some(acceptor(p))), log)
}

fn tls_client(addr: SocketAddr, connector: TlsConnector) -> Result<Client, Error> {
    let config = ClientConfig::default().with_tls(Some(connector));
    Client::connect(&addr.to_string(), config)
}

#[test]
fn echo_over_tls_small_and_large() {
    let p = pki();
    let log = Log::new();
    let s = tls_server(&p, &log);
    let c = tls_client(s.local_addr(), connector(&p)).unwrap();
    for i in 0..50 {
        c.send(format!("mensaje {i}").as_bytes()).unwrap();
    }
    for i in 0..50 {
        assert_eq!(
            c.recv_timeout(DEADLINE).unwrap(),
            format!("mensaje {i}").as_bytes()
        );
    }
    // A burst: many records arrive in each read of the server.
    let burst: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| {
            let mut m = i.to_be_bytes().to_vec();
            m.resize(1000, (i % 256) as u8);
            m
        })
        .collect();
    for m in &burst {
        c.send(m).unwrap();
    }
    for m in &burst {
        assert_eq!(&c.recv_timeout(DEADLINE).unwrap(), m);
    }
    // Larger than a TLS record (16 KiB) and than one read of the server.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    c.send(&big).unwrap();
    assert_eq!(c.recv_timeout(DEADLINE).unwrap(), big);
    c.close();
    let id = log.events().iter().find_map(|e| match e {
        Seen::Connected(id, _) => Some(*id),
        _ => None,
    });
    // close_notify from the client reads as a clean close.
    assert_eq!(log.wait_reason(id.unwrap()), DisconnectReason::PeerClosed);
    s.stop();
}

#[test]
fn a_certificate_from_an_untrusted_authority_is_refused() {
    let p = pki();
    let other = pki();
    let log = Log::new();
    let s = tls_server(&p, &log);
    match tls_client(s.local_addr(), connector(&other)) {
        Err(Error::TlsRejected(e)) => assert!(e.contains("certificate"), "{e}"),
        other => panic!("an untrusted certificate was accepted: {:?}", other.err()),
    }
    // The wrong name, from the right authority.
    let mut named = connector(&p);
    named.server_name = Some("elsewhere.example".into());
    match tls_client(s.local_addr(), named) {
        Err(Error::TlsRejected(e)) => assert!(e.contains("certificate"), "{e}"),
        other => panic!(
            "a certificate for another name was accepted: {:?}",
            other.err()
        ),
    }
    assert_eq!(log.connects(), 0);
    // The server goes on serving.
    let c = tls_client(s.local_addr(), connector(&p)).unwrap();
    assert_eq!(c.request(b"sigo", DEADLINE).unwrap(), b"sigo");
    s.stop();
}

#[test]
fn a_plain_client_at_a_tls_server_is_dropped_and_vice_versa() {
    let p = pki();
    let log = Log::new();
    let s = tls_server(&p, &log);
    let mut sock = raw(s.local_addr());
    sock.write_all(&frame(b"hola en claro")).unwrap();
    // Whatever comes back (an alert) is not an echo, and the server closes.
    let mut back = Vec::new();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = sock.read_to_end(&mut back);
    assert!(!back.windows(13).any(|w| w == b"hola en claro"));
    assert_eq!(log.connects(), 0);
    s.stop();

    // A TLS client at a plain server fails the handshake, within its timeout.
    let plain = server(ServerConfig::default(), &log);
    let config = ClientConfig::default()
        .with_tls(Some(connector(&p)))
        .with_connect_timeout(Duration::from_secs(2));
    match Client::connect(&plain.local_addr().to_string(), config) {
        Err(Error::Tls(_) | Error::TlsRejected(_)) => {}
        other => panic!("expected a TLS error, got {:?}", other.err()),
    }
    plain.stop();
}

#[test]
fn a_stalled_tls_handshake_is_dropped() {
    let p = pki();
    let log = Log::new();
    let mut a = acceptor(&p);
    a.handshake_timeout = Duration::from_millis(300);
    let s = server(ServerConfig::default().with_tls(Some(a)), &log);
    let mut silent = raw(s.local_addr());
    expect_closed(&mut silent);
    assert_eq!(log.connects(), 0);
    s.stop();
}

#[test]
fn tls_and_the_shared_key_combine() {
    let p = pki();
    let log = Log::new();
    let key = |k: &[u8]| AuthConfig::new(AuthKey::new(k.to_vec()).unwrap());
    let s = server(
        ServerConfig::default()
            .with_tls(Some(acceptor(&p)))
            .with_auth(Some(key(b"secret"))),
        &log,
    );
    let dial = |k: &[u8]| {
        let config = ClientConfig::default()
            .with_tls(Some(connector(&p)))
            .with_auth(Some(key(k)));
        Client::connect(&s.local_addr().to_string(), config)
    };
    assert!(matches!(
        dial(b"wrong"),
        Err(Error::Auth(AuthError::Rejected))
    ));
    let c = dial(b"secret").unwrap();
    c.send(b"uno").unwrap();
    c.send(b"dos").unwrap();
    assert_eq!(c.recv_timeout(DEADLINE).unwrap(), b"uno");
    assert_eq!(c.recv_timeout(DEADLINE).unwrap(), b"dos");
    assert_eq!(log.connects(), 1);
    s.stop();
}

/// A TLS session on a raw socket, to send bytes no `Client` would.
fn tls_raw(addr: SocketAddr, p: &Pki) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(p.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Read until the end; true if the server ended the session (cleanly or not).
fn ends(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

#[test]
fn hostile_frames_inside_tls_are_dropped_like_plain_ones() {
    let p = pki();
    let log = Log::new();
    let s = server(
        ServerConfig::default()
            .with_tls(Some(acceptor(&p)))
            .with_partial_frame_timeout(Some(Duration::from_millis(300))),
        &log,
    );
    // A header announcing 4 GiB - 1.
    let mut huge = tls_raw(s.local_addr(), &p);
    huge.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    huge.flush().unwrap();
    assert!(ends(&mut huge));
    // Half a frame, then silence.
    let mut half = tls_raw(s.local_addr(), &p);
    half.write_all(&[0, 0, 0, 10, b'a']).unwrap();
    half.flush().unwrap();
    assert!(ends(&mut half));
    common::wait_until("two disconnects", || log.disconnects() == 2);
    let reasons: Vec<DisconnectReason> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Seen::Disconnected(_, r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, DisconnectReason::Protocol(_))),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, DisconnectReason::PartialFrameTimeout { .. })),
        "{reasons:?}"
    );
    // Garbage where TLS records belong, after the handshake.
    let mut garbage = tls_raw(s.local_addr(), &p);
    garbage.write_all(&frame(b"ok")).unwrap();
    garbage.flush().unwrap();
    let mut got = [0u8; 6];
    garbage.read_exact(&mut got).unwrap();
    assert_eq!(&got, &frame(b"ok")[..]);
    garbage
        .sock
        .write_all(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    assert!(ends(&mut garbage));
    s.stop();
}

/// The next multi-client event that matches, within the deadline.
fn next_multi(multi: &MultiClient, what: &str, f: impl Fn(&MultiEvent) -> bool) -> MultiEvent {
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < deadline {
        if let Ok(e) = multi.events().recv_timeout(Duration::from_millis(100)) {
            if f(&e) {
                return e;
            }
        }
    }
    panic!("no {what} within {DEADLINE:?}");
}

fn spec(name: &str, addr: SocketAddr, frame: FrameConfig) -> ServerSpec {
    ServerSpec::new(name, addr.to_string()).with_frame(frame)
}

#[test]
fn a_multi_client_speaks_tls_and_the_key_to_framed_servers_only() {
    let p = pki();
    let log = Log::new();
    let key = || AuthConfig::new(AuthKey::new(b"secret".to_vec()).unwrap());
    let secure = server(
        ServerConfig::default()
            .with_tls(Some(acceptor(&p)))
            .with_auth(Some(key())),
        &log,
    );
    // The notes' unframed dialect knows neither TLS nor the key: left plain.
    let raw_log = Log::new();
    let plain = server(
        ServerConfig::default().with_frame(FrameConfig::unframed()),
        &raw_log,
    );
    let multi = MultiClient::start(
        vec![
            spec("tls", secure.local_addr(), FrameConfig::default()),
            spec("raw", plain.local_addr(), FrameConfig::unframed()),
        ],
        MultiConfig::default()
            .with_tls(Some(connector(&p)))
            .with_auth(Some(key())),
    )
    .unwrap();
    let mut up = [false; 2];
    while up != [true; 2] {
        if let MultiEvent::Up { server, .. } =
            next_multi(&multi, "up", |e| matches!(e, MultiEvent::Up { .. }))
        {
            up[server] = true;
        }
    }
    multi.send(0, b"cifrado").unwrap();
    next_multi(
        &multi,
        "the TLS echo",
        |e| matches!(e, MultiEvent::Message { server: 0, payload } if payload == b"cifrado"),
    );
    multi.send(1, b"en claro").unwrap();
    next_multi(
        &multi,
        "the plain echo",
        |e| matches!(e, MultiEvent::Message { server: 1, payload } if payload == b"en claro"),
    );
    // Larger than a TLS record.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    multi.send(0, &big).unwrap();
    next_multi(
        &multi,
        "the large TLS echo",
        |e| matches!(e, MultiEvent::Message { server: 0, payload } if *payload == big),
    );
    assert_eq!(log.connects(), 1);
    multi.close();
    let id = log.events().iter().find_map(|e| match e {
        Seen::Connected(id, _) => Some(*id),
        _ => None,
    });
    // close_notify on close reads as a clean close.
    assert_eq!(log.wait_reason(id.unwrap()), DisconnectReason::PeerClosed);
    secure.stop();
    plain.stop();
}

#[test]
fn a_multi_client_reports_an_untrusted_server_down() {
    let p = pki();
    let other = pki();
    let log = Log::new();
    let s = tls_server(&p, &log);
    let multi = MultiClient::start(
        vec![spec("s", s.local_addr(), FrameConfig::default())],
        MultiConfig::default()
            .with_tls(Some(connector(&other)))
            .with_backoff(trama_protocol::Backoff::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
            )),
    )
    .unwrap();
    match next_multi(&multi, "down", |e| matches!(e, MultiEvent::Down { .. })) {
        MultiEvent::Down { server, reason, .. } => {
            assert_eq!(server, 0);
            assert!(reason.contains("certificate"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    assert!(!multi.is_up(0));
    // Held, not sent in the clear.
    assert!(matches!(
        multi.send(0, b"secreto").unwrap(),
        trama_transport::Sent::Held { .. }
    ));
    assert_eq!(log.connects(), 0);
    multi.close();
    s.stop();
}

/// The next peer event that matches, within the deadline; the others
/// are kept in `seen`.
fn next_link(
    node: &PeerNode,
    seen: &mut Vec<LinkEvent>,
    what: &str,
    f: impl Fn(&LinkEvent) -> bool,
) -> LinkEvent {
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < deadline {
        if let Ok(e) = node.events().recv_timeout(Duration::from_millis(100)) {
            if f(&e) {
                return e;
            }
            seen.push(e);
        }
    }
    panic!("no {what} within {DEADLINE:?}; seen {seen:?}");
}

fn peer_tls(p: &Pki) -> PeerTls {
    PeerTls::new(acceptor(p), connector(p))
}

fn peer(tls: Option<PeerTls>, auth: Option<AuthConfig>) -> PeerNode {
    PeerNode::start(
        PeerConfig::default()
            .with_tls(tls)
            .with_auth(auth)
            .with_backoff(trama_protocol::Backoff::new(
                Duration::from_millis(20),
                Duration::from_millis(200),
            )),
    )
    .unwrap()
}

fn up_link(e: &LinkEvent) -> trama_transport::LinkId {
    match e {
        LinkEvent::Up { link, .. } => *link,
        e => panic!("not an Up: {e:?}"),
    }
}

#[test]
fn two_peers_exchange_frames_over_tls_with_the_key_inside() {
    let p = pki();
    let key = || Some(AuthConfig::new(AuthKey::new(b"secret".to_vec()).unwrap()));
    let a = peer(Some(peer_tls(&p)), key());
    let b = peer(Some(peer_tls(&p)), key());
    let mut seen = Vec::new();
    b.dial(&a.local_addr().unwrap().to_string(), false).unwrap();
    let at_a = up_link(&next_link(&a, &mut seen, "accepted link", |e| {
        matches!(e, LinkEvent::Up { dialed: false, .. })
    }));
    let at_b = up_link(&next_link(&b, &mut seen, "dialed link", |e| {
        matches!(e, LinkEvent::Up { dialed: true, .. })
    }));
    for i in 0..20 {
        b.send(at_b, format!("de b {i}").as_bytes()).unwrap();
        a.send(at_a, format!("de a {i}").as_bytes()).unwrap();
    }
    for i in 0..20 {
        let want = format!("de b {i}").into_bytes();
        next_link(
            &a,
            &mut seen,
            "b's frame",
            |e| matches!(e, LinkEvent::Message { link, payload } if *link == at_a && *payload == want),
        );
        let want = format!("de a {i}").into_bytes();
        next_link(
            &b,
            &mut seen,
            "a's frame",
            |e| matches!(e, LinkEvent::Message { link, payload } if *link == at_b && *payload == want),
        );
    }
    // Larger than a TLS record, from the accepting side.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    a.send(at_a, &big).unwrap();
    next_link(
        &b,
        &mut seen,
        "the large frame",
        |e| matches!(e, LinkEvent::Message { payload, .. } if *payload == big),
    );
    assert!(seen.is_empty(), "{seen:?}");
    // Either side closing ends the link on the other.
    b.close(at_b);
    next_link(
        &a,
        &mut seen,
        "down",
        |e| matches!(e, LinkEvent::Down { link, .. } if *link == at_a),
    );
}

#[test]
fn a_peer_without_tls_or_with_another_authority_gets_no_link() {
    let p = pki();
    let other = pki();
    let mut a_tls = peer_tls(&p);
    a_tls.acceptor.handshake_timeout = Duration::from_millis(300);
    let a = peer(Some(a_tls), None);
    let a_addr = a.local_addr().unwrap().to_string();
    let mut seen = Vec::new();

    // A plain peer: its TCP link comes up on its side, its frame never
    // reaches A, and A drops it.
    let plain = peer(None, None);
    plain.dial(&a_addr, false).unwrap();
    let at_plain = up_link(&next_link(&plain, &mut seen, "the plain link", |e| {
        matches!(e, LinkEvent::Up { .. })
    }));
    plain.send(at_plain, b"en claro").unwrap();
    next_link(
        &plain,
        &mut seen,
        "the plain link dropped",
        |e| matches!(e, LinkEvent::Down { link, .. } if *link == at_plain),
    );

    // A TLS peer trusting another authority: its dial fails on the certificate.
    let stranger = peer(Some(peer_tls(&other)), None);
    stranger.dial(&a_addr, false).unwrap();
    match next_link(&stranger, &mut seen, "a failed dial", |e| {
        matches!(e, LinkEvent::DialFailed { .. })
    }) {
        LinkEvent::DialFailed { reason, .. } => assert!(reason.contains("certificate"), "{reason}"),
        e => panic!("{e:?}"),
    }

    // A TLS peer dialing a plain one fails the handshake too.
    a.dial(&plain.local_addr().unwrap().to_string(), false)
        .unwrap();
    let mut at_a_events = Vec::new();
    next_link(
        &a,
        &mut at_a_events,
        "a failed dial to the plain peer",
        |e| matches!(e, LinkEvent::DialFailed { .. }),
    );

    // A silent socket is dropped at the handshake deadline.
    let mut silent = raw(a.local_addr().unwrap());
    expect_closed(&mut silent);

    // A peer with the right authority still gets in, and its link is the
    // only one A ever announced (everything A reported is in `at_a_events`).
    let friend = peer(Some(peer_tls(&p)), None);
    friend.dial(&a_addr, false).unwrap();
    let at_a = up_link(&next_link(&a, &mut at_a_events, "the friend's link", |e| {
        matches!(e, LinkEvent::Up { dialed: false, .. })
    }));
    assert!(
        !at_a_events
            .iter()
            .any(|e| matches!(e, LinkEvent::Up { .. } | LinkEvent::Message { .. })),
        "{at_a_events:?}"
    );
    a.send(at_a, b"bienvenido").unwrap();
    next_link(
        &friend,
        &mut seen,
        "the welcome",
        |e| matches!(e, LinkEvent::Message { payload, .. } if payload == b"bienvenido"),
    );
}

// ---- the pool server -------------------------------------------------------

/// A pool server with `config` (its `tls` and `auth` as given) whose handler
/// counts the streams it got, says whether each was TLS, and echoes raw
/// bytes until the end. Returns the address, the handle, the count and the
/// thread running the pool.
#[allow(clippy::type_complexity)]
fn echo_pool(
    config: PoolConfig,
) -> (
    SocketAddr,
    PoolHandle,
    Arc<Mutex<Vec<bool>>>,
    std::thread::JoinHandle<()>,
) {
    let pool = PoolServer::bind(config).unwrap();
    let (addr, handle) = (pool.local_addr(), pool.handle());
    let served = Arc::new(Mutex::new(Vec::new()));
    let seen = served.clone();
    let t = std::thread::spawn(move || {
        pool.run(move |stream, _| {
            seen.lock().unwrap().push(stream.is_tls());
            let mut buf = vec![0u8; 64 * 1024];
            let mut s = &stream;
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
        })
        .unwrap()
    });
    (addr, handle, served, t)
}

fn tls_pool_config(p: &Pki) -> PoolConfig {
    PoolConfig::default().with_tls(Some(acceptor(p)))
}

/// Dial `addr` with TLS, trusting `connector`.
fn dial(addr: SocketAddr, connector: &TlsConnector) -> Result<Stream, Error> {
    let s = Stream::connect(&addr.to_string(), DEADLINE, Some(connector))?;
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    Ok(s)
}

/// Write `data` from another thread while reading the echo here (a pool
/// handler echoes as it reads, so one thread doing both could fill both
/// directions' buffers and stall), then check what came back.
fn echoes(stream: Stream, data: Vec<u8>) {
    let stream = Arc::new(stream);
    let writer = {
        let (stream, data) = (stream.clone(), data.clone());
        std::thread::spawn(move || (&*stream).write_all(&data).unwrap())
    };
    let mut back = vec![0u8; data.len()];
    (&*stream).read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "the echo differs from what was sent");
}

#[test]
fn a_tls_pool_server_hands_over_tls_streams_and_echoes_many_records() {
    let p = pki();
    let (addr, handle, served, t) = echo_pool(tls_pool_config(&p));
    let s = dial(addr, &connector(&p)).unwrap();
    assert!(s.is_tls() && s.as_tcp().is_none());
    // 3 MB: many TLS records each way.
    echoes(s, (0..3_000_000u32).map(|i| (i % 251) as u8).collect());
    assert_eq!(*served.lock().unwrap(), [true]);
    handle.shutdown();
    common::within("the pool to stop", move || t.join().unwrap());
}

#[test]
fn a_tls_pool_server_refuses_untrusted_and_plain_clients_and_keeps_serving() {
    let p = pki();
    let other = pki();
    let mut config = tls_pool_config(&p);
    config.threads = 1;
    let (addr, handle, served, t) = echo_pool(config);
    // A client that does not trust the server's authority.
    match dial(addr, &connector(&other)) {
        Err(Error::TlsRejected(e)) => assert!(e.contains("certificate"), "{e}"),
        other => panic!("an untrusted certificate was accepted: {:?}", other.err()),
    }
    // A plain client: whatever comes back (an alert) is not an echo.
    let mut plain = raw(addr);
    plain.write_all(&frame(b"hola en claro")).unwrap();
    let mut back = Vec::new();
    let _ = plain.read_to_end(&mut back);
    assert!(!back.windows(13).any(|w| w == b"hola en claro"));
    assert!(served.lock().unwrap().is_empty());
    // The one pool thread is free again, and serves a good client.
    echoes(dial(addr, &connector(&p)).unwrap(), b"sigo".to_vec());
    assert_eq!(*served.lock().unwrap(), [true]);
    handle.shutdown();
    common::within("the pool to stop", move || t.join().unwrap());
}

#[test]
fn a_stalled_tls_handshake_at_the_pool_server_hits_its_deadline() {
    let p = pki();
    let mut config = tls_pool_config(&p);
    config.threads = 1;
    config.link.tls.as_mut().unwrap().handshake_timeout = Duration::from_millis(300);
    let (addr, handle, served, t) = echo_pool(config);
    let mut silent = raw(addr);
    expect_closed(&mut silent);
    assert!(served.lock().unwrap().is_empty());
    // The thread it held serves the next client.
    echoes(dial(addr, &connector(&p)).unwrap(), b"despierto".to_vec());
    handle.shutdown();
    common::within("the pool to stop", move || t.join().unwrap());
}

#[test]
fn tls_and_the_shared_key_combine_at_the_pool_server() {
    let p = pki();
    let key = |k: &[u8]| AuthConfig::new(AuthKey::new(k.to_vec()).unwrap());
    let mut config = tls_pool_config(&p);
    config.link.auth = Some(key(b"secret").with_timeout(Duration::from_secs(1)));
    let (addr, handle, served, t) = echo_pool(config);
    let s = dial(addr, &connector(&p)).unwrap();
    assert!(matches!(
        s.authenticate(Role::Dialer, &key(b"wrong")),
        Err(Error::Auth(AuthError::Rejected))
    ));
    // TLS without the key: the pool's challenge, then the end at the
    // key handshake's deadline.
    let mut keyless = dial(addr, &connector(&p)).unwrap();
    let mut heard = Vec::new();
    let _ = keyless.read_to_end(&mut heard);
    assert!(heard.windows(11).any(|w| w == b"#CHALLENGE#"), "{heard:?}");
    assert!(served.lock().unwrap().is_empty());
    let s = dial(addr, &connector(&p)).unwrap();
    s.authenticate(Role::Dialer, &key(b"secret")).unwrap();
    echoes(s, b"con clave y cifrado".to_vec());
    assert_eq!(*served.lock().unwrap(), [true]);
    handle.shutdown();
    common::within("the pool to stop", move || t.join().unwrap());
}

#[test]
fn shutdown_wakes_a_pool_handler_blocked_in_a_tls_read() {
    let p = pki();
    let config = tls_pool_config(&p).with_read_timeout(None);
    let pool = PoolServer::bind(config).unwrap();
    let (addr, handle) = (pool.local_addr(), pool.handle());
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (ended_tx, ended) = crossbeam_channel::bounded(1);
    let t = std::thread::spawn(move || {
        pool.run(move |mut stream, _| {
            entered_tx.send(()).unwrap();
            // No read timeout: only the shutdown can end this read.
            let mut buf = [0u8; 16];
            ended_tx
                .send(stream.read(&mut buf).map_err(|e| e.kind()))
                .unwrap();
        })
        .unwrap()
    });
    let _client = dial(addr, &connector(&p)).unwrap();
    entered.recv_timeout(DEADLINE).unwrap();
    handle.shutdown();
    // The read ends the same way on every platform: closed from this side.
    let read = ended.recv_timeout(DEADLINE).unwrap();
    assert_eq!(read, Err(std::io::ErrorKind::ConnectionAborted));
    common::within("the pool to stop", move || t.join().unwrap());
}

/// A burst of records read through a `Stream` with a large buffer, while
/// another thread writes: every byte arrives (rustls's plaintext buffer
/// never overflows with wire bytes already taken from the socket).
#[test]
fn a_stream_reads_a_burst_of_records_whole() {
    let p = pki();
    let log = Log::new();
    let s = tls_server(&p, &log);
    let mut stream =
        Stream::connect(&s.local_addr().to_string(), DEADLINE, Some(&connector(&p))).unwrap();
    // Reads wait at a gate, as a proxy's pump does.
    let _gate = stream.gate().unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let stream = Arc::new(stream);
    let sent: Vec<u8> = (0..20u8).flat_map(|i| frame(&[i; 50_000])).collect();
    let writer = {
        let (stream, sent) = (stream.clone(), sent.clone());
        std::thread::spawn(move || (&*stream).write_all(&sent).unwrap())
    };
    let mut got = vec![0u8; sent.len()];
    let mut have = 0;
    while have < got.len() {
        let end = (have + 256 * 1024).min(got.len());
        match (&*stream).read(&mut got[have..end]) {
            Ok(0) => panic!("the end after {have} bytes"),
            Ok(n) => have += n,
            Err(e) => panic!("after {have} bytes: {e}"),
        }
    }
    writer.join().unwrap();
    assert!(got == sent, "the bytes changed on the way");
    s.stop();
}
