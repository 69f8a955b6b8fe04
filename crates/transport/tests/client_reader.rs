//! Loopback tests of who reads a client's socket: the caller itself (no
//! listener thread until the event channel is asked for), requests with ids
//! that find their own replies among pushes and other threads' replies, and
//! a read that times out in the middle of a frame without losing it.

// Test code: it panics on failure like the tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{within, DEADLINE};
use trama_protocol::envelope::{self, Kind};
use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
use trama_transport::{Client, ClientConfig, ClientEvent, Error};

/// A server that runs `serve` on its one connection, and the client's config.
fn one_connection(serve: impl FnOnce(TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        serve(s);
    });
    addr
}

fn enveloped(kind: Kind, id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    envelope::encode(kind, id, body, &mut out);
    out
}

/// Reads `n` enveloped requests, then answers them in the reverse order,
/// with a push before each reply, so no reply is the next frame its asker
/// would see.
fn answer_backwards(n: usize) -> impl FnOnce(TcpStream) + Send + 'static {
    move |s: TcpStream| {
        let mut r = FrameReader::new(s.try_clone().unwrap(), FrameConfig::default());
        let mut w = FrameWriter::new(s, FrameConfig::default());
        let mut asked = Vec::new();
        for _ in 0..n {
            let frame = r.read_frame().unwrap().unwrap();
            let e = envelope::decode(&frame).unwrap();
            assert_eq!(e.kind, Kind::Request);
            asked.push((e.id, e.body.to_vec()));
        }
        for (id, body) in asked.into_iter().rev() {
            w.write_frame(&enveloped(Kind::Push, 0, b"aviso")).unwrap();
            let mut answer = b"re: ".to_vec();
            answer.extend_from_slice(&body);
            w.write_frame(&enveloped(Kind::Reply, id, &answer)).unwrap();
        }
        // Hold the connection until the client leaves.
        while r.read_frame().ok().flatten().is_some() {}
    }
}

#[test]
fn concurrent_requests_each_get_their_own_reply() {
    const THREADS: usize = 8;
    let addr = one_connection(answer_backwards(THREADS));
    let config = ClientConfig::default().with_envelope(true);
    let client = Arc::new(Client::connect(&addr, config).unwrap());
    let askers: Vec<_> = (0..THREADS)
        .map(|i| {
            let client = client.clone();
            std::thread::spawn(move || {
                let question = format!("pregunta {i}");
                let reply = client.request(question.as_bytes(), DEADLINE).unwrap();
                assert_eq!(reply, format!("re: {question}").into_bytes());
            })
        })
        .collect();
    for a in askers {
        a.join().unwrap();
    }
    // The pushes were kept, in order, for recv.
    for _ in 0..THREADS {
        assert_eq!(client.recv_timeout(DEADLINE).unwrap(), b"aviso");
    }
}

#[test]
fn replies_find_their_callers_through_the_event_channel_too() {
    let addr = one_connection(answer_backwards(2));
    let config = ClientConfig::default().with_envelope(true);
    let client = Arc::new(Client::connect(&addr, config).unwrap());
    // The listener thread reads from now on; pushes come down the channel.
    let events = client.events().clone();
    let other = {
        let client = client.clone();
        std::thread::spawn(move || client.request(b"uno", DEADLINE).unwrap())
    };
    let mine = client.request(b"dos", DEADLINE).unwrap();
    assert_eq!(mine, b"re: dos");
    assert_eq!(other.join().unwrap(), b"re: uno");
    for _ in 0..2 {
        let e = events.recv_timeout(DEADLINE).unwrap();
        assert_eq!(e, ClientEvent::Message(b"aviso".to_vec()));
    }
}

#[test]
fn a_late_reply_is_not_taken_for_the_next_one() {
    // Answers the second request first, then the first (whose caller gave up).
    let (first_gone_tx, first_gone_rx) = crossbeam_channel::bounded::<()>(1);
    let addr = one_connection(move |s| {
        let mut r = FrameReader::new(s.try_clone().unwrap(), FrameConfig::default());
        let mut w = FrameWriter::new(s, FrameConfig::default());
        let first = r.read_frame().unwrap().unwrap();
        let first = envelope::decode(&first).unwrap().id;
        // Only after the client timed out on the first does the second come.
        first_gone_rx.recv().unwrap();
        let second = r.read_frame().unwrap().unwrap();
        let second = envelope::decode(&second).unwrap().id;
        w.write_frame(&enveloped(Kind::Reply, first, b"tarde"))
            .unwrap();
        w.write_frame(&enveloped(Kind::Reply, second, b"a tiempo"))
            .unwrap();
        while r.read_frame().ok().flatten().is_some() {}
    });
    let config = ClientConfig::default().with_envelope(true);
    let client = Client::connect(&addr, config).unwrap();
    let e = client
        .request(b"primera", Duration::from_millis(20))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    first_gone_tx.send(()).unwrap();
    assert_eq!(client.request(b"segunda", DEADLINE).unwrap(), b"a tiempo");
}

#[test]
fn a_request_from_the_server_ends_the_connection_with_the_reason() {
    let addr = one_connection(|s| {
        let mut w = FrameWriter::new(s.try_clone().unwrap(), FrameConfig::default());
        w.write_frame(&enveloped(Kind::Request, 5, b"?")).unwrap();
        let mut r = FrameReader::new(s, FrameConfig::default());
        while r.read_frame().ok().flatten().is_some() {}
    });
    let config = ClientConfig::default().with_envelope(true);
    let client = Client::connect(&addr, config).unwrap();
    let e = client.recv_timeout(DEADLINE).unwrap_err();
    let Error::Closed(why) = e else {
        panic!("expected Closed, got {e:?}")
    };
    assert!(why.contains("request (id 5)"), "{why}");
}

#[test]
fn a_timeout_in_the_middle_of_a_frame_loses_nothing() {
    let (more_tx, more_rx) = crossbeam_channel::bounded::<()>(1);
    let addr = one_connection(move |mut s| {
        s.write_all(b"\x00\x00\x00\x0bmes").unwrap();
        more_rx.recv().unwrap();
        s.write_all(b"sage one\x00\x00\x00\x03two").unwrap();
        let mut r = FrameReader::new(s, FrameConfig::default());
        while r.read_frame().ok().flatten().is_some() {}
    });
    let client = Client::connect(&addr, ClientConfig::default()).unwrap();
    // Half a frame is there; the rest only comes after this times out.
    let e = client.recv_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    more_tx.send(()).unwrap();
    assert_eq!(client.recv_timeout(DEADLINE).unwrap(), b"message one");
    assert_eq!(client.recv_timeout(DEADLINE).unwrap(), b"two");
}

#[test]
fn messages_read_before_the_channel_starts_come_through_it_in_order() {
    let addr = one_connection(|mut s| {
        let mut wire = Vec::new();
        for m in [&b"uno"[..], b"dos", b"tres"] {
            FrameConfig::default().encode(m, &mut wire).unwrap();
        }
        s.write_all(&wire).unwrap();
        let mut r = FrameReader::new(s, FrameConfig::default());
        while r.read_frame().ok().flatten().is_some() {}
    });
    let client = Client::connect(&addr, ClientConfig::default()).unwrap();
    // One read brings all three; the caller takes the first.
    assert_eq!(client.recv_timeout(DEADLINE).unwrap(), b"uno");
    let events = client.events();
    for want in [&b"dos"[..], b"tres"] {
        let got = events.recv_timeout(DEADLINE).unwrap();
        assert_eq!(got, ClientEvent::Message(want.to_vec()));
    }
}

#[test]
fn a_client_that_reads_for_itself_closes_at_once() {
    let addr = one_connection(|s| {
        let mut r = FrameReader::new(s, FrameConfig::default());
        while r.read_frame().ok().flatten().is_some() {}
    });
    let client = Client::connect(&addr, ClientConfig::default()).unwrap();
    assert!(client.recv_timeout(Duration::from_millis(10)).is_err());
    within("Client::close with no listener", move || client.close());
}
