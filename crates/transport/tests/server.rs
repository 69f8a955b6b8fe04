//! Loopback tests of the server: echoes under many clients, push and
//! broadcast routing across I/O threads, hostile and broken peers, timeouts,
//! slow readers, shutdown, refusal, ordering under a worker pool, idle CPU
//! and the unframed dialect.

// The helpers below are test code too: they panic on failure like the tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{
    echo, expect_closed, frame, ignore, raw, read_frame, spawn, wait_until, within, write_frame,
    Log, DEADLINE,
};
use trama_protocol::{Actions, ConnId, DisconnectReason, Event, FrameConfig};
use trama_transport::{Client, ClientConfig, ClientEvent, Error, Server, ServerConfig};

fn client(addr: std::net::SocketAddr) -> Client {
    Client::connect(&addr.to_string(), ClientConfig::default()).unwrap()
}

/// The next message a client gets, failing after [`DEADLINE`].
fn next(c: &Client) -> Vec<u8> {
    c.recv_timeout(DEADLINE).unwrap()
}

#[test]
fn many_concurrent_clients_get_their_echoes_in_order() {
    const CLIENTS: usize = 120;
    const FRAMES: usize = 5;
    let server = spawn(ServerConfig::default(), echo);
    let addr = server.local_addr();
    let start = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut s = raw(addr);
                start.wait();
                let sent: Vec<Vec<u8>> = (0..FRAMES)
                    .map(|j| {
                        format!("client {i} frame {j} {}", "x".repeat(i * 37 + j)).into_bytes()
                    })
                    .collect();
                // Two frames pipelined in one write, the rest one by one.
                let mut first = frame(&sent[0]);
                first.extend_from_slice(&frame(&sent[1]));
                s.write_all(&first).unwrap();
                for p in &sent[2..] {
                    write_frame(&mut s, p);
                }
                for p in &sent {
                    assert_eq!(&read_frame(&mut s), p, "client {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = server.stats();
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.frames_in, (CLIENTS * FRAMES) as u64);
    wait_until("every connection to close", || {
        server.stats().closed_by_peer == CLIENTS as u64
    });
    assert_eq!(server.stats().open, 0);
    server.stop();
}

/// `echo:x` answers `x` to the sender; `all:x` sends `x` to everybody else.
fn router(event: Event<'_>, out: &mut Actions) {
    if let Event::Message { id, payload } = event {
        if let Some(rest) = payload.strip_prefix(b"echo:") {
            out.send(id, rest);
        } else if let Some(rest) = payload.strip_prefix(b"all:") {
            out.broadcast(rest, Some(id));
        }
    }
}

#[test]
fn push_and_broadcast_reach_the_right_clients_only() {
    let log = Log::new();
    let config = ServerConfig::default().with_io_threads(2);
    let server = spawn(config, log.service(router));
    let clients: Vec<Client> = (0..4).map(|_| client(server.local_addr())).collect();
    let ids: Vec<ConnId> = clients
        .iter()
        .map(|c| log.id_of(c.local_addr().unwrap()))
        .collect();
    // Ids are dealt round-robin to the two I/O threads: both threads own some.
    assert!(ids.iter().any(|id| id.0 % 2 == 0) && ids.iter().any(|id| id.0 % 2 == 1));

    // A marker pushed to every client after a test message: a client that got
    // the message sees it before the marker, one that did not sees the marker.
    let mark = |m: &[u8]| {
        for &id in &ids {
            server.send(id, m).unwrap();
        }
    };

    // Push to each client in turn: only the target gets it.
    for (target, &id) in ids.iter().enumerate() {
        let push = format!("push for {id}");
        server.send(id, push.as_bytes()).unwrap();
        mark(b"m1");
        for (i, c) in clients.iter().enumerate() {
            if i == target {
                assert_eq!(next(c), push.as_bytes());
            }
            assert_eq!(next(c), b"m1", "client {i}, push to {target}");
        }
    }

    // ServerHandle::broadcast, to all and to all but one.
    server.broadcast(b"to all", None).unwrap();
    server.broadcast(b"all but 2", Some(ids[2])).unwrap();
    mark(b"m2");
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(next(c), b"to all");
        if i != 2 {
            assert_eq!(next(c), b"all but 2");
        }
        assert_eq!(next(c), b"m2", "client {i}");
    }

    // Actions::broadcast from the service skips the sender, on both threads.
    for sender in 0..2 {
        let text = format!("hello from {sender}");
        clients[sender]
            .send(format!("all:{text}").as_bytes())
            .unwrap();
        // The service answers the sender's next message directly; had the
        // broadcast reached the sender, it would come first.
        assert_eq!(
            clients[sender].request(b"echo:done", DEADLINE).unwrap(),
            b"done"
        );
        for (i, c) in clients.iter().enumerate() {
            if i != sender {
                assert_eq!(next(c), text.as_bytes(), "client {i}");
            }
        }
    }
    mark(b"m3");
    for c in &clients {
        assert_eq!(next(c), b"m3");
    }

    // Unknown ids are ignored.
    server.send(ConnId(9999), b"nobody").unwrap();

    // The handle closes a connection, with the reason given to the service.
    server.close(ids[3], "enough");
    match clients[3].events().recv_timeout(DEADLINE).unwrap() {
        ClientEvent::Closed(_) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(
        log.wait_reason(ids[3]),
        DisconnectReason::Closed("enough".into())
    );
    assert_eq!(
        clients[0].request(b"echo:still", DEADLINE).unwrap(),
        b"still"
    );
    assert_eq!(server.stats().closed_by_service, 1);
    server.stop();
}

/// A server with a recording echo service and a client that proves the
/// server still serves others.
fn echo_server(config: ServerConfig) -> (trama_transport::RunningServer, Log, Client) {
    let log = Log::new();
    let server = spawn(config, log.service(echo));
    let witness = client(server.local_addr());
    assert_eq!(witness.request(b"before", DEADLINE).unwrap(), b"before");
    (server, log, witness)
}

#[test]
fn disconnect_mid_frame_is_a_protocol_error() {
    let (server, log, witness) = echo_server(ServerConfig::default());
    let mut s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[7u8; 50]);
    s.write_all(&partial).unwrap();
    drop(s);
    match log.wait_reason(id) {
        DisconnectReason::Protocol(text) => assert!(
            text.contains("stream ended after 50 of 100 payload bytes"),
            "{text}"
        ),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(log.messages_from(id).is_empty());
    assert_eq!(server.stats().dropped_protocol, 1);
    assert_eq!(witness.request(b"after", DEADLINE).unwrap(), b"after");

    // The same for a header cut short.
    let mut s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    s.write_all(&[0, 0]).unwrap();
    drop(s);
    match log.wait_reason(id) {
        DisconnectReason::Protocol(text) => {
            assert!(text.contains("2 of 4 header bytes"), "{text}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(witness.request(b"again", DEADLINE).unwrap(), b"again");
    server.stop();
}

#[test]
fn hostile_header_drops_only_that_connection() {
    let (server, log, witness) = echo_server(ServerConfig::default());
    let mut s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    // One good frame first: it is echoed, then the hostile header ends it.
    write_frame(&mut s, b"fine");
    assert_eq!(read_frame(&mut s), b"fine");
    s.write_all(&[0xFF; 4]).unwrap();
    match log.wait_reason(id) {
        DisconnectReason::Protocol(text) => assert!(text.contains("exceeds the limit"), "{text}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    expect_closed(&mut s);
    assert_eq!(server.stats().dropped_protocol, 1);
    assert_eq!(witness.request(b"after", DEADLINE).unwrap(), b"after");
    server.stop();
}

#[test]
fn stalled_partial_frame_is_dropped() {
    let config =
        ServerConfig::default().with_partial_frame_timeout(Some(Duration::from_millis(300)));
    let (server, log, witness) = echo_server(config);
    let witness_id = log.id_of(witness.local_addr().unwrap());

    // A header and part of the payload, then nothing.
    let mut body = raw(server.local_addr());
    let body_id = log.id_of(body.local_addr().unwrap());
    let mut partial = 10u32.to_be_bytes().to_vec();
    partial.extend_from_slice(b"abc");
    body.write_all(&partial).unwrap();
    // Half a header, then nothing.
    let mut head = raw(server.local_addr());
    let head_id = log.id_of(head.local_addr().unwrap());
    head.write_all(&[0, 0]).unwrap();

    for (id, s) in [(body_id, &mut body), (head_id, &mut head)] {
        assert_eq!(
            log.wait_reason(id),
            DisconnectReason::PartialFrameTimeout { millis: 300 }
        );
        expect_closed(s);
    }
    assert_eq!(server.stats().dropped_timeout, 2);
    // The witness sat idle for longer than the deadline, but between frames.
    assert_eq!(
        witness.request(b"still here", DEADLINE).unwrap(),
        b"still here"
    );
    assert_eq!(log.reason(witness_id), None);
    server.stop();
}

/// A peer streaming frames back to back, where every read ends inside the
/// next frame, is making progress: the partial-frame deadline applies to each
/// frame, not to the whole stream.
#[test]
fn partial_frame_deadline_restarts_with_each_frame() {
    let timeout = Duration::from_millis(400);
    let config = ServerConfig::default().with_partial_frame_timeout(Some(timeout));
    let (server, log, witness) = echo_server(config);
    let mut s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    // Frame k's tail and frame k+1's head in each write: the server's decoder
    // is never between frames after a read, for several times the deadline.
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|k| frame(format!("frame {k:05}").as_bytes()))
        .collect();
    let mut wire = frames.concat();
    let cut = frames[0].len() / 2;
    s.write_all(&wire[..cut]).unwrap();
    wire.drain(..cut);
    let started = Instant::now();
    let mut sent = 0;
    let mut write = |bytes: &[u8]| {
        // A failed write means the server dropped us: reported below.
        let _ = s.write_all(bytes);
    };
    for f in &frames[1..] {
        let step = f.len();
        write(&wire[sent..sent + step]);
        sent += step;
        // Pacing only, so that the stream lasts past the deadline.
        std::thread::sleep(Duration::from_millis(10));
        if started.elapsed() > timeout * 3 {
            break;
        }
    }
    write(&wire[sent..]);
    wait_until("every frame to arrive", || {
        log.messages_from(id).len() == frames.len() || log.reason(id).is_some()
    });
    assert_eq!(log.reason(id), None, "a busy peer was dropped");
    assert_eq!(server.stats().dropped_timeout, 0);
    assert_eq!(witness.request(b"ok", DEADLINE).unwrap(), b"ok");
    server.stop();
}

#[test]
fn idle_connection_is_dropped() {
    let config = ServerConfig::default()
        .with_idle_timeout(Some(Duration::from_millis(300)))
        .with_partial_frame_timeout(None);
    let log = Log::new();
    let server = spawn(config, log.service(echo));
    let mut s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    assert_eq!(
        log.wait_reason(id),
        DisconnectReason::IdleTimeout { millis: 300 }
    );
    expect_closed(&mut s);
    assert_eq!(server.stats().dropped_timeout, 1);
    assert_eq!(server.stats().open, 0);
    server.stop();
}

#[test]
fn stop_returns_with_clients_attached() {
    let log = Log::new();
    let config = ServerConfig::default().with_io_threads(2);
    let server = spawn(config, log.service(echo));
    let handle = server.handle();
    let clients: Vec<Client> = (0..5).map(|_| client(server.local_addr())).collect();
    for c in &clients {
        assert_eq!(c.request(b"hi", DEADLINE).unwrap(), b"hi");
    }
    let mut raws: Vec<_> = (0..2).map(|_| raw(server.local_addr())).collect();
    // One raw client is in the middle of a frame.
    let before = handle.stats().bytes_in;
    raws[1].write_all(&[0, 0, 0, 9, 1]).unwrap();
    wait_until("every connection and the half frame", || {
        handle.stats().open == 7 && handle.stats().bytes_in == before + 5
    });

    within("RunningServer::stop", move || server.stop());

    for c in &clients {
        match c.events().recv_timeout(DEADLINE).unwrap() {
            ClientEvent::Closed(_) => {}
            other => panic!("expected Closed, got {other:?}"),
        }
        assert!(matches!(c.recv(), Err(Error::Closed(_))));
        assert!(matches!(c.recv_timeout(DEADLINE), Err(Error::Closed(_))));
    }
    for s in &mut raws {
        expect_closed(s);
    }
    let stats = handle.stats();
    assert_eq!(stats.closed_shutdown, 7, "{stats}");
    assert_eq!(stats.open, 0);
    assert_eq!(log.disconnects(), 7);
    assert!(log.events().iter().all(|s| !matches!(
        s,
        common::Seen::Disconnected(_, r) if *r != DisconnectReason::Shutdown
    )));
    assert!(handle.is_shut_down());
    assert!(matches!(
        handle.send(ConnId(1), b"late"),
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        handle.broadcast(b"late", None),
        Err(Error::ShutDown)
    ));
}

#[test]
fn stop_returns_with_a_worker_pool_and_busy_clients() {
    let config = ServerConfig::default().with_io_threads(2).with_workers(2);
    let server = spawn(config, echo);
    let handle = server.handle();
    let clients: Vec<Client> = (0..4).map(|_| client(server.local_addr())).collect();
    for c in &clients {
        for _ in 0..50 {
            c.send(&[1u8; 1000]).unwrap();
        }
    }
    wait_until("some traffic", || handle.stats().frames_out > 0);
    within("RunningServer::stop", move || server.stop());
    for c in &clients {
        // Echoes still in flight, then the end.
        while let ClientEvent::Message(m) = c.events().recv_timeout(DEADLINE).unwrap() {
            assert_eq!(m, [1u8; 1000]);
        }
    }
    assert_eq!(handle.stats().open, 0);
}

#[test]
fn slow_reader_is_dropped_while_others_keep_receiving() {
    const LIMIT: usize = 64 * 1024;
    let log = Log::new();
    let config = ServerConfig::default()
        .with_io_threads(2)
        .with_max_outbound(LIMIT);
    let server = spawn(config, log.service(ignore));
    let good = client(server.local_addr());
    let good_id = log.id_of(good.local_addr().unwrap());
    // Never reads.
    let slow = raw(server.local_addr());
    let slow_id = log.id_of(slow.local_addr().unwrap());

    // Large messages, pushed and broadcast in turn. The good client receives
    // each before the next is sent, so its queue is always empty; the slow
    // one's fills the socket buffers, then the queue, then it is dropped.
    let mut sent = 0usize;
    let mut after_drop = 0;
    while after_drop < 10 {
        assert!(sent < 2000, "the slow reader was never dropped");
        let mut msg = vec![(sent % 251) as u8; 128 * 1024];
        msg[..8].copy_from_slice(&(sent as u64).to_be_bytes());
        if sent % 2 == 0 {
            server.broadcast(&msg, None).unwrap();
        } else {
            server.send(good_id, &msg).unwrap();
            server.send(slow_id, &msg).unwrap();
        }
        assert!(
            next(&good) == msg,
            "message {sent} corrupted or out of order"
        );
        sent += 1;
        if log.reason(slow_id).is_some() {
            after_drop += 1;
        }
    }
    match log.reason(slow_id) {
        Some(DisconnectReason::SlowReader { queued, limit }) => {
            assert_eq!(limit, LIMIT);
            assert!(queued > LIMIT);
        }
        other => panic!("expected SlowReader, got {other:?}"),
    }
    let stats = server.stats();
    assert_eq!(stats.dropped_slow, 1, "{stats}");
    assert_eq!(log.reason(good_id), None);
    assert_eq!(stats.open, 1);
    drop(slow);
    server.stop();
}

#[test]
fn worker_pool_keeps_each_connection_in_order() {
    const CLIENTS: usize = 6;
    const FRAMES: usize = 1000;
    let config = ServerConfig::default().with_workers(4).with_io_threads(2);
    let server = spawn(config, echo);
    let addr = server.local_addr();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let client = client(addr);
                let msg = |i: usize| format!("client {c} number {i:04} {}", "#".repeat(i % 50));
                // All sent before any is read: the inbox holds them all.
                for i in 0..FRAMES {
                    client.send(msg(i).as_bytes()).unwrap();
                }
                for i in 0..FRAMES {
                    assert_eq!(next(&client), msg(i).as_bytes(), "client {c}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.stats().frames_in, (CLIENTS * FRAMES) as u64);
    server.stop();
}

#[test]
fn connections_past_the_limit_are_refused_with_a_reason() {
    let config = ServerConfig::default()
        .with_max_connections(3)
        .with_io_threads(2);
    let server = spawn(config, echo);
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..3 {
        clients.push(client(server.local_addr()));
        wait_until("the connection to be accepted", || {
            server.stats().accepted == i + 1
        });
    }
    let fourth = client(server.local_addr());
    let refusal = next(&fourth);
    assert!(
        refusal.starts_with(b"server full"),
        "{}",
        String::from_utf8_lossy(&refusal)
    );
    assert!(matches!(
        fourth.recv_timeout(DEADLINE),
        Err(Error::Closed(_))
    ));
    let stats = server.stats();
    assert_eq!((stats.refused, stats.accepted, stats.open), (1, 3, 3));
    for c in &clients {
        assert_eq!(c.request(b"ok", DEADLINE).unwrap(), b"ok");
    }

    // A freed place is given to the next one.
    drop(clients.pop());
    wait_until("a place to free up", || server.stats().open == 2);
    let fifth = client(server.local_addr());
    assert_eq!(fifth.request(b"in", DEADLINE).unwrap(), b"in");
    assert_eq!(server.stats().refused, 1);
    server.stop();
}

/// Wakeups of the server's I/O threads during one second of quiet.
fn wakeups_in_a_quiet_second(server: &trama_transport::ServerHandle) -> u64 {
    let before = server.stats().wakeups;
    std::thread::sleep(Duration::from_secs(1));
    server.stats().wakeups - before
}

/// Connect 20 clients and exchange a few messages with each.
fn busy_clients(addr: std::net::SocketAddr) -> Vec<Client> {
    let clients: Vec<Client> = (0..20).map(|_| client(addr)).collect();
    for (i, c) in clients.iter().enumerate() {
        for j in 0..3 {
            let m = format!("{i}/{j}");
            assert_eq!(c.request(m.as_bytes(), DEADLINE).unwrap(), m.as_bytes());
        }
    }
    clients
}

#[test]
fn idle_server_does_not_spin_after_clients_leave() {
    let server = spawn(ServerConfig::default(), echo);
    drop(busy_clients(server.local_addr()));
    wait_until("every client to leave", || {
        server.stats().closed_by_peer == 20 && server.stats().open == 0
    });
    let woke = wakeups_in_a_quiet_second(&server);
    assert!(woke <= 5, "{woke} wakeups in a quiet second");
    server.stop();
}

#[test]
fn idle_server_does_not_spin_with_idle_clients() {
    for partial_frame_timeout in [None, ServerConfig::default().partial_frame_timeout] {
        let config = ServerConfig::default().with_partial_frame_timeout(partial_frame_timeout);
        let server = spawn(config, echo);
        let clients = busy_clients(server.local_addr());
        // Also leave one connection with a frame pending for a moment, so
        // the partial-frame timer is armed and must disarm itself.
        let mut s = raw(server.local_addr());
        let before = server.stats().bytes_in;
        s.write_all(&[0, 0, 0, 2, b'o']).unwrap();
        wait_until("the half frame", || server.stats().bytes_in == before + 5);
        s.write_all(b"k").unwrap();
        assert_eq!(read_frame(&mut s), b"ok");
        let woke = wakeups_in_a_quiet_second(&server);
        assert!(
            woke <= 5,
            "{woke} wakeups in a quiet second (partial_frame_timeout {partial_frame_timeout:?})"
        );
        assert_eq!(server.stats().open, 21);
        drop(clients);
        server.stop();
    }
}

#[test]
fn unframed_mode_echoes_raw_bytes() {
    let config = ServerConfig::default().with_frame(FrameConfig::unframed());
    let server = spawn(config, echo);

    // With a raw socket: bytes in, the same bytes out, in any pieces.
    let mut s = raw(server.local_addr());
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
    s.write_all(&data).unwrap();
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, data);
    s.write_all(b"hola").unwrap();
    let mut hola = [0u8; 4];
    s.read_exact(&mut hola).unwrap();
    assert_eq!(&hola, b"hola");

    // With the client in the same dialect: each read is one message.
    let c = Client::connect(
        &server.local_addr().to_string(),
        ClientConfig::default().with_frame(FrameConfig::unframed()),
    )
    .unwrap();
    c.send(&data).unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        let m = next(&c);
        assert!(!m.is_empty() && m.len() <= FrameConfig::unframed().max_frame_len());
        got.extend_from_slice(&m);
    }
    assert_eq!(got, data);
    // Pushes are sent as they are, with no header.
    let id_count = server.stats().accepted;
    assert_eq!(id_count, 2);
    server.broadcast(b"plain", None).unwrap();
    let mut plain = [0u8; 5];
    s.read_exact(&mut plain).unwrap();
    assert_eq!(&plain, b"plain");
    let mut got = Vec::new();
    while got.len() < 5 {
        got.extend_from_slice(&next(&c));
    }
    assert_eq!(got, b"plain");
    server.stop();
}

#[test]
fn counters_add_up() {
    let server = spawn(ServerConfig::default(), echo);
    let c = client(server.local_addr());
    for _ in 0..10 {
        assert_eq!(c.request(b"12345", DEADLINE).unwrap(), b"12345");
    }
    // bytes_out is counted just after the write, which the client may beat.
    wait_until("the counters", || server.stats().bytes_out == 90);
    let stats = server.stats();
    assert_eq!(stats.frames_in, 10);
    assert_eq!(stats.frames_out, 10);
    assert_eq!(stats.bytes_in, 90);
    assert!(stats.to_string().contains("1 accepted"));
    let served = Arc::new(AtomicU64::new(0));
    let counted = served.clone();
    // run() on a thread of our own, stopped through a handle.
    let server2 = Server::bind(
        ServerConfig::default(),
        move |e: Event<'_>, out: &mut Actions| {
            if matches!(e, Event::Message { .. }) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            echo(e, out);
        },
    )
    .unwrap();
    let handle = server2.handle();
    let addr = server2.local_addr();
    let runner = std::thread::spawn(move || server2.run());
    let c2 = client(addr);
    assert_eq!(c2.request(b"run", DEADLINE).unwrap(), b"run");
    assert_eq!(served.load(Ordering::Relaxed), 1);
    handle.shutdown();
    within("Server::run to return", move || {
        runner.join().unwrap().unwrap()
    });
    assert!(matches!(c2.recv_timeout(DEADLINE), Err(Error::Closed(_))));
    server.stop();
}

/// A connection that will not read keeps its queue; closing it (by the
/// service or by shutdown) waits at most the linger time for the queue.
#[test]
fn linger_bounds_closing_a_peer_that_does_not_read() {
    let log = Log::new();
    let config = ServerConfig::default()
        .with_linger(Duration::from_millis(200))
        .with_io_threads(2);
    // "flood" gets 8 MiB back, more than the socket buffers hold, then a close.
    let service = log.service(|event: Event<'_>, out: &mut Actions| {
        if let Event::Message { id, payload } = event {
            out.send(id, &vec![5u8; 8 * 1024 * 1024]);
            if payload == b"flood and close" {
                out.close(id, "flooded");
            }
        }
    });
    let server = spawn(config, service);
    let handle = server.handle();

    let mut closed = raw(server.local_addr());
    let closed_id = log.id_of(closed.local_addr().unwrap());
    write_frame(&mut closed, b"flood and close");
    assert_eq!(
        log.wait_reason(closed_id),
        DisconnectReason::Closed("flooded".into())
    );

    let mut stuck = raw(server.local_addr());
    let stuck_id = log.id_of(stuck.local_addr().unwrap());
    write_frame(&mut stuck, b"flood");
    wait_until("the flood to be queued", || handle.stats().frames_out == 2);
    within("RunningServer::stop", move || server.stop());
    assert_eq!(log.wait_reason(stuck_id), DisconnectReason::Shutdown);
    for s in [&mut closed, &mut stuck] {
        expect_closed(s);
    }
    assert_eq!(handle.stats().open, 0);
}

#[test]
fn a_client_that_sends_faster_than_it_reads_is_slowed_not_dropped() {
    // Far more echo than the outbound limit, sent by one thread while
    // another reads it back slowly: the server stops reading the client
    // while its replies back up (as a blocked writer would), so nothing is
    // dropped, nothing is lost, and the order holds.
    const LIMIT: usize = 256 * 1024;
    const FRAMES: usize = 400;
    const SIZE: usize = 32 * 1024;
    let log = Log::new();
    let config = ServerConfig::default().with_max_outbound(LIMIT);
    let server = spawn(config, log.service(echo));
    let s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..FRAMES {
            let mut p = vec![(i % 251) as u8; SIZE];
            p[..8].copy_from_slice(&(i as u64).to_be_bytes());
            write_frame(&mut writer, &p);
        }
    });
    let mut reader = s;
    reader.set_read_timeout(Some(DEADLINE)).unwrap();
    for i in 0..FRAMES {
        if i % 50 == 0 {
            // Let the replies pile up past the limit several times over.
            std::thread::sleep(Duration::from_millis(100));
        }
        let got = read_frame(&mut reader);
        assert_eq!(got.len(), SIZE, "frame {i}");
        assert_eq!(
            &got[..8],
            &(i as u64).to_be_bytes(),
            "frame {i} out of order"
        );
        assert!(
            got[8..].iter().all(|&b| b == (i % 251) as u8),
            "frame {i} corrupted"
        );
    }
    sender.join().unwrap();
    assert_eq!(log.reason(id), None);
    let stats = server.stats();
    assert_eq!(stats.dropped_slow, 0, "{stats}");
    assert_eq!(stats.frames_in, FRAMES as u64, "{stats}");
    server.stop();
}

#[test]
fn a_client_that_sends_and_never_reads_is_dropped_at_the_frame_deadline() {
    let log = Log::new();
    let config = ServerConfig::default()
        .with_max_outbound(256 * 1024)
        .with_partial_frame_timeout(Some(Duration::from_millis(500)));
    let server = spawn(config, log.service(echo));
    let mut s = raw(server.local_addr());
    let id = log.id_of(s.local_addr().unwrap());
    // Writes until the server stops reading and every buffer on the way is
    // full (the write then times out), never reading a byte.
    s.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let chunk = frame(&[7u8; 16 * 1024]);
    let mut sent = 0usize;
    while s.write_all(&chunk).is_ok() {
        sent += 1;
        assert!(sent < 100_000, "the server never stopped reading");
    }
    match log.wait_reason(id) {
        DisconnectReason::Stalled { queued, millis } => {
            assert_eq!(millis, 500);
            assert!(queued > 0);
        }
        other => panic!("expected Stalled, got {other:?}"),
    }
    assert_eq!(server.stats().dropped_slow, 1);
    // Others are still served.
    let c = client(server.local_addr());
    assert_eq!(c.request(b"sigo", DEADLINE).unwrap(), b"sigo");
    server.stop();
}
