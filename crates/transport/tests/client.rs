//! Loopback tests of the blocking client: connect errors, request timeouts,
//! heartbeats against the server's idle timeout, concurrent senders, typed
//! values and the end-of-connection events.

// The helpers below are test code too: they panic on failure like the tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{echo, ignore, spawn, wait_until, Log, DEADLINE};
use trama_protocol::{Actions, Codec, DisconnectReason, Event};
use trama_transport::{connect, Client, ClientConfig, ClientEvent, Error, ServerConfig};

fn client(addr: SocketAddr) -> Client {
    Client::connect(&addr.to_string(), ClientConfig::default()).unwrap()
}

/// An address on which nothing listens (a port just freed by the kernel).
fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

#[test]
fn connect_to_nothing_names_the_address() {
    let addr = dead_addr();
    let e = match Client::connect(&addr, ClientConfig::default()) {
        Err(e) => e,
        Ok(_) => panic!("connected to {addr}, where nothing listens"),
    };
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(&addr), "{e}");
    // The free function says the same.
    let e = connect(&addr, Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(&e, Error::Connect { addr: a, .. } if *a == addr),
        "{e:?}"
    );
    // A name that resolves to nothing is an error too, not a panic.
    assert!(Client::connect("no-port-here", ClientConfig::default()).is_err());
}

#[test]
fn request_without_reply_times_out() {
    let server = spawn(ServerConfig::default(), ignore);
    let c = client(server.local_addr());
    let wait = Duration::from_millis(200);
    match c.request(b"anyone?", wait) {
        Err(Error::Timeout(d)) => assert_eq!(d, wait),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The connection is still fine afterwards.
    wait_until("the request to arrive", || server.stats().frames_in == 1);
    c.send(b"still there").unwrap();
    wait_until("the second message", || server.stats().frames_in == 2);
    server.stop();
}

#[test]
fn heartbeat_keeps_a_quiet_client_alive_past_the_idle_timeout() {
    let log = Log::new();
    // One I/O thread: both connections are checked in the same sweeps.
    let config = ServerConfig::default()
        .with_idle_timeout(Some(Duration::from_millis(500)))
        .with_heartbeat(Some(Duration::from_millis(200)))
        .with_partial_frame_timeout(None)
        .with_io_threads(1);
    let server = spawn(config, log.service(echo));
    let beating = Client::connect(
        &server.local_addr().to_string(),
        ClientConfig::default().with_heartbeat(Some(Duration::from_millis(100))),
    )
    .unwrap();
    let beating_id = log.id_of(beating.local_addr().unwrap());
    let quiet = client(server.local_addr());
    let quiet_id = log.id_of(quiet.local_addr().unwrap());

    // The client without a heartbeat is dropped for idleness; it hears the
    // server's empty heartbeat frames as messages until then. The beating
    // client connected first and has sent no message either, and the server
    // checks every connection's idleness in the same sweep: were its
    // heartbeats not counted, it would have been dropped no later than the
    // quiet one (and the service told first, its slot coming first). So no wait on the clock is
    // needed beyond the server's own idle timeout; the rule itself is
    // unit-tested in crates/transport/src/conn.rs.
    assert_eq!(
        log.wait_reason(quiet_id),
        DisconnectReason::IdleTimeout { millis: 500 }
    );
    while let ClientEvent::Message(m) = quiet.events().recv_timeout(DEADLINE).unwrap() {
        assert!(m.is_empty(), "{m:?}");
    }
    assert_eq!(log.reason(beating_id), None);
    // Heartbeats are swallowed on both sides: the service saw no empty
    // message and the client's next message is the echo.
    assert_eq!(beating.request(b"alive", DEADLINE).unwrap(), b"alive");
    assert_eq!(log.messages_from(beating_id), [b"alive".to_vec()]);
    let stats = server.stats();
    assert_eq!(stats.dropped_timeout, 1, "{stats}");
    assert_eq!(stats.open, 1);
    // "alive" and at least one heartbeat.
    assert!(stats.frames_in > 1, "no heartbeats arrived: {stats}");
    server.stop();
}

#[test]
fn concurrent_sends_produce_intact_frames() {
    const THREADS: usize = 8;
    const FRAMES: usize = 250;

    /// Thread, sequence number, then a length-dependent pattern.
    fn make(t: usize, seq: usize) -> Vec<u8> {
        let len = 5 + (seq * 7919 + t * 104_729) % 20_000;
        let mut p = vec![0u8; len];
        p[0] = t as u8;
        p[1..5].copy_from_slice(&(seq as u32).to_be_bytes());
        for (i, b) in p.iter_mut().enumerate().skip(5) {
            *b = (i as u8) ^ (t as u8);
        }
        p
    }

    #[derive(Default)]
    struct Tally {
        next: [usize; THREADS],
        good: usize,
        bad: Vec<String>,
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let counted = tally.clone();
    let service = move |event: Event<'_>, _: &mut Actions| {
        if let Event::Message { payload, .. } = event {
            let mut tally = counted.lock().unwrap();
            let t = payload.first().map_or(usize::MAX, |&t| t as usize);
            if t >= THREADS || payload.len() < 5 {
                tally
                    .bad
                    .push(format!("bad frame of {} bytes", payload.len()));
                return;
            }
            let seq = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]) as usize;
            let expected = tally.next[t];
            if seq != expected || payload != make(t, seq) {
                tally
                    .bad
                    .push(format!("thread {t}: got {seq}, expected {expected}"));
            } else {
                tally.next[t] += 1;
                tally.good += 1;
            }
        }
    };
    let server = spawn(ServerConfig::default(), service);
    let c = Arc::new(client(server.local_addr()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for seq in 0..FRAMES {
                    c.send(&make(t, seq)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wait_until("every frame to arrive", || {
        let t = tally.lock().unwrap();
        t.good + t.bad.len() >= THREADS * FRAMES || !t.bad.is_empty()
    });
    let t = tally.lock().unwrap();
    assert!(t.bad.is_empty(), "{:?}", t.bad);
    assert_eq!(t.good, THREADS * FRAMES);
    drop(t);
    // Counted after the service saw the read's frames: wait, do not race.
    wait_until("the frame counter", || {
        server.stats().frames_in == (THREADS * FRAMES) as u64
    });
    server.stop();
}

#[test]
fn typed_values_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Saludo {
        de: String,
        texto: String,
        n: u32,
    }
    let server = spawn(ServerConfig::default(), echo);
    let c = client(server.local_addr());
    for codec in [Codec::Json, Codec::MsgPack] {
        let s = Saludo {
            de: "ana".into(),
            texto: "¿qué tal?".into(),
            n: 7,
        };
        c.send_value(codec, &s).unwrap();
        let back: Saludo = c.recv_value(codec, DEADLINE).unwrap();
        assert_eq!(back, s);
    }
    // A payload that is not the expected type is a protocol error, not a panic.
    c.send(b"not json").unwrap();
    assert!(matches!(
        c.recv_value::<Saludo>(Codec::Json, DEADLINE),
        Err(Error::Protocol(_))
    ));
    server.stop();
}

#[test]
fn end_of_connection_is_reported_once_then_recv_fails() {
    let log = Log::new();
    // Closes every connection that says "bye", after answering it.
    let service = log.service(|event: Event<'_>, out: &mut Actions| {
        if let Event::Message { id, payload } = event {
            out.send(id, payload);
            if payload == b"bye" {
                out.close(id, "asked to");
            }
        }
    });
    let server = spawn(ServerConfig::default(), service);

    // Closed by the server: the reply queued before the close still arrives.
    let c = client(server.local_addr());
    let id = log.id_of(c.local_addr().unwrap());
    assert_eq!(c.peer_addr(), server.local_addr());
    assert_eq!(c.request(b"bye", DEADLINE).unwrap(), b"bye");
    assert_eq!(
        c.events().recv_timeout(DEADLINE).unwrap(),
        ClientEvent::Closed(DisconnectReason::PeerClosed)
    );
    assert!(matches!(c.recv(), Err(Error::Closed(_))));
    assert_eq!(
        log.wait_reason(id),
        DisconnectReason::Closed("asked to".into())
    );
    // Sending on a closed connection fails sooner or later, never panics.
    let start = Instant::now();
    while c.send(b"anyone?").is_ok() {
        assert!(start.elapsed() < DEADLINE, "sends never failed");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Closed by the client: the server sees the peer go.
    let c = client(server.local_addr());
    let id = log.id_of(c.local_addr().unwrap());
    c.close();
    assert_eq!(log.wait_reason(id), DisconnectReason::PeerClosed);
    wait_until("the connection to be counted", || {
        server.stats().closed_by_peer == 1
    });
    server.stop();
}

#[test]
fn dropping_a_client_with_a_full_inbox_does_not_hang() {
    let server = spawn(ServerConfig::default(), echo);
    let c = Client::connect(
        &server.local_addr().to_string(),
        ClientConfig::default().with_inbox(2),
    )
    .unwrap();
    for _ in 0..50 {
        c.send(&[9u8; 1000]).unwrap();
    }
    wait_until("the echoes to be sent", || server.stats().frames_out == 50);
    common::within("dropping the client", move || drop(c));
    server.stop();
}
