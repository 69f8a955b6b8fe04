//! The caller reads its own replies: a client used only for requests has
//! no thread of its own. In a test binary of its own, so no other test's
//! client threads are counted. Linux only: it counts threads by name in /proc.

// Test code: it panics on failure like the tests.
#![allow(clippy::unwrap_used)]

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
#[test]
fn requests_start_no_listener_thread() {
    use common::DEADLINE;
    use std::net::TcpListener;
    use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
    use trama_transport::{Client, ClientConfig};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut r = FrameReader::new(s.try_clone().unwrap(), FrameConfig::default());
        let mut w = FrameWriter::new(s, FrameConfig::default());
        while let Ok(Some(f)) = r.read_frame() {
            w.write_frame(&f).unwrap();
        }
    });
    let client = Client::connect(&addr, ClientConfig::default()).unwrap();
    let local = client.local_addr().unwrap();
    let listeners = || {
        let name = format!("trama-client-{}", client.peer_addr());
        // Thread names are cut at 15 bytes by the kernel.
        let name = &name[..name.len().min(15)];
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    };
    for i in 0..100u32 {
        let body = i.to_be_bytes();
        assert_eq!(client.request(&body, DEADLINE).unwrap(), body);
    }
    assert_eq!(listeners(), 0, "a listener thread for {local}");
    // The channel starts the listener (which names itself once running).
    let _ = client.events();
    common::wait_until("the listener thread", || listeners() == 1);
}
