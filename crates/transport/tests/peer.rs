//! Peer nodes on loopback: a link dialed from either side, frames both ways,
//! and a persistent dial that finds its peer again after a restart.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use trama_transport::{LinkEvent, PeerConfig, PeerNode};

fn next(node: &PeerNode, what: &str, f: impl Fn(&LinkEvent) -> bool) -> LinkEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(e) = node.events().recv_timeout(Duration::from_millis(100)) {
            if f(&e) {
                return e;
            }
        }
    }
    panic!("no {what} within 10 s");
}

fn quick() -> PeerConfig {
    PeerConfig::default().with_backoff(trama_protocol::Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
    ))
}

#[test]
fn dial_before_the_peer_exists_then_talk_then_redial_after_a_restart() {
    // B dials an address where A will appear: reserve it by starting A once.
    let a = PeerNode::start(quick()).unwrap();
    let a_addr = a.local_addr().unwrap().to_string();
    drop(a);
    let b = PeerNode::start(quick().with_listen(None)).unwrap();
    b.dial(&a_addr, true).unwrap();
    next(&b, "a failed dial", |e| {
        matches!(
            e,
            LinkEvent::DialFailed {
                retry_in: Some(_),
                ..
            }
        )
    });

    let a = PeerNode::start(quick().with_listen(Some(a_addr.clone()))).unwrap();
    let LinkEvent::Up {
        link: at_a,
        dialed: false,
        ..
    } = next(&a, "incoming link", |e| matches!(e, LinkEvent::Up { .. }))
    else {
        unreachable!()
    };
    let LinkEvent::Up {
        link: at_b,
        dialed: true,
        ..
    } = next(&b, "dialed link", |e| matches!(e, LinkEvent::Up { .. }))
    else {
        unreachable!()
    };
    b.send(at_b, b"hola").unwrap();
    next(
        &a,
        "hola",
        |e| matches!(e, LinkEvent::Message { payload, .. } if payload == b"hola"),
    );
    a.send(at_a, b"chao").unwrap();
    next(
        &b,
        "chao",
        |e| matches!(e, LinkEvent::Message { payload, .. } if payload == b"chao"),
    );

    // A goes away and comes back on its address: B's persistent dial finds it.
    drop(a);
    next(&b, "link down", |e| matches!(e, LinkEvent::Down { .. }));
    let a = PeerNode::start(quick().with_listen(Some(a_addr))).unwrap();
    next(&a, "incoming link again", |e| {
        matches!(e, LinkEvent::Up { .. })
    });
    next(&b, "dialed link again", |e| {
        matches!(e, LinkEvent::Up { .. })
    });
    assert_eq!(b.links().len(), 1);
}

#[test]
fn close_ends_one_link() {
    let a = PeerNode::start(quick()).unwrap();
    let b = PeerNode::start(quick()).unwrap();
    b.dial(&a.local_addr().unwrap().to_string(), false).unwrap();
    let LinkEvent::Up { link, .. } = next(&a, "up", |e| matches!(e, LinkEvent::Up { .. })) else {
        unreachable!()
    };
    a.close(link);
    next(&a, "down", |e| matches!(e, LinkEvent::Down { .. }));
    next(&b, "down at b", |e| matches!(e, LinkEvent::Down { .. }));
    assert!(a.send(link, b"x").is_err());
}
