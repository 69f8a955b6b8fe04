//! The multi-server client against real servers on loopback: labelled
//! events, held messages, and reconnecting while the other server keeps working.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use trama_protocol::{Actions, Event, FrameConfig};
use trama_transport::{
    MultiClient, MultiConfig, MultiEvent, RunningServer, Sent, Server, ServerConfig, ServerSpec,
};

fn echo(addr: &str, frame: FrameConfig) -> RunningServer {
    let service = |event: Event<'_>, out: &mut Actions| {
        if let Event::Message { id, payload } = event {
            out.send(id, payload);
        }
    };
    Server::bind(ServerConfig::new(addr).with_frame(frame), service)
        .unwrap()
        .spawn()
        .unwrap()
}

/// The next event that matches, within 10 s.
fn wait_for(multi: &MultiClient, what: &str, f: impl Fn(&MultiEvent) -> bool) -> MultiEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(e) = multi.events().recv_timeout(Duration::from_millis(100)) {
            if f(&e) {
                return e;
            }
        }
    }
    panic!("no {what} within 10 s");
}

fn message(server: usize, text: &str) -> impl Fn(&MultiEvent) -> bool + '_ {
    move |e| matches!(e, MultiEvent::Message { server: s, payload } if *s == server && payload == text.as_bytes())
}

#[test]
fn two_servers_one_stream_and_a_reconnect() {
    let a = echo("127.0.0.1:0", FrameConfig::default());
    let b = echo("127.0.0.1:0", FrameConfig::unframed());
    let a_addr = a.local_addr();
    let config = MultiConfig::default().with_backoff(trama_protocol::Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
    ));
    let multi = MultiClient::start(
        vec![
            ServerSpec::new("a", a_addr.to_string()),
            ServerSpec::new("b", b.local_addr().to_string()).with_frame(FrameConfig::unframed()),
        ],
        config,
    )
    .unwrap();
    assert_eq!(multi.find("b"), Some(1));
    // Both come up, in either order.
    let mut up = [false, false];
    while !(up[0] && up[1]) {
        if let MultiEvent::Up { server, .. } =
            wait_for(&multi, "both up", |e| matches!(e, MultiEvent::Up { .. }))
        {
            up[server] = true;
        }
    }
    assert_eq!(multi.send(0, b"hola a").unwrap(), Sent::Now);
    wait_for(&multi, "a's echo", message(0, "hola a"));
    multi.send(1, b"hola b").unwrap();
    wait_for(&multi, "b's echo", message(1, "hola b"));

    // Server a goes away: a is reported down, b keeps working, a's messages are held.
    a.stop();
    wait_for(&multi, "a down", |e| {
        matches!(e, MultiEvent::Down { server: 0, .. })
    });
    assert!(!multi.is_up(0));
    assert_eq!(
        multi.send(0, b"while away").unwrap(),
        Sent::Held { waiting: 1 }
    );
    multi.send(1, b"still here").unwrap();
    wait_for(&multi, "b's echo", message(1, "still here"));

    // a comes back on the same address: the held message goes out first.
    let a2 = echo(&a_addr.to_string(), FrameConfig::default());
    let up = wait_for(&multi, "a up again", |e| {
        matches!(e, MultiEvent::Up { server: 0, .. })
    });
    assert!(matches!(up, MultiEvent::Up { flushed: 1, .. }), "{up:?}");
    wait_for(&multi, "the held message's echo", message(0, "while away"));
    multi.close();
    a2.stop();
    b.stop();
}

#[test]
fn the_hold_queue_is_bounded_and_an_unknown_server_is_an_error() {
    // Nothing listens on this address: a server that is bound and then stopped.
    let gone = echo("127.0.0.1:0", FrameConfig::default());
    let addr = gone.local_addr().to_string();
    gone.stop();
    let multi = MultiClient::start(
        vec![ServerSpec::new("x", addr)],
        MultiConfig::default().with_queue(2),
    )
    .unwrap();
    assert_eq!(multi.send(0, b"1").unwrap(), Sent::Held { waiting: 1 });
    assert_eq!(multi.send(0, b"2").unwrap(), Sent::Held { waiting: 2 });
    let e = multi.send(0, b"3").unwrap_err();
    assert!(e.to_string().contains("2 messages already wait"), "{e}");
    assert!(multi.send(5, b"?").is_err());
    wait_for(&multi, "x down", |e| {
        matches!(e, MultiEvent::Down { server: 0, .. })
    });
    multi.close();
}
