//! A tap session: the proxy wired to what prints and records its events.
//!
//! The app parses flags into a [`ProxyConfig`] and a [`Session`]; everything
//! from there on (checking the fault plan against the framing, opening the
//! recording, binding, serving, flushing the recording at the end) is here,
//! so it is the same for the binary and for a test that runs a tap in process.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fault::FaultSchedule;
use crate::pcap::LiveCapture;
use crate::record::Recorder;
use crate::show::{Format, Printer};
use crate::{
    DecodeAs, Direction, Proxy, ProxyConfig, ProxyEvent, ProxyHandle, StdoutError, TapResult,
};

/// What a session shows and keeps, beside the proxy's own settings.
#[derive(Debug, Clone)]
pub struct Session {
    /// How events are printed on stdout ([`Format::Off`] also stops the
    /// proxy following frames at all, which costs nothing then).
    pub format: Format,
    /// How payloads are shown.
    pub decode: DecodeAs,
    /// Write every chunk, both ways, to this file (for [`replay`](crate::replay)).
    pub record: Option<PathBuf>,
    /// Write what crossed the tap to this file as a pcapng capture, for
    /// Wireshark: each connection as two TCP conversations, client to tap
    /// and tap to server, with the bytes as they were read and written.
    pub pcap: Option<PathBuf>,
}

/// A bound tap: [`run`](Tap::run) serves until its handle shuts it down.
pub struct Tap {
    proxy: Proxy,
    printer: Printer,
    recorder: Option<Recorder>,
    capture: Option<LiveCapture>,
}

impl Tap {
    /// Refuse a fault plan the framing cannot carry out (a frame fault on an
    /// unframed stream) before listening, create the recording, and bind.
    /// `config.observe` and `config.data` follow from `session`.
    pub fn bind(mut config: ProxyConfig, session: Session) -> TapResult<Tap> {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            FaultSchedule::new(config.faults.faults(dir), config.frame, 0)?;
        }
        let recorder = match &session.record {
            Some(path) => Some(Recorder::create(path, config.frame, &config.upstream)?),
            None => None,
        };
        let capture = match &session.pcap {
            Some(path) => Some(LiveCapture::create(path)?),
            None => None,
        };
        config.observe = session.format != Format::Off;
        config.data = recorder.is_some() || capture.is_some();
        config.sent = capture.is_some();
        let unframed = config.frame.is_unframed();
        let proxy = Proxy::bind(config)?;
        Ok(Tap {
            proxy,
            printer: Printer::new(session.format, session.decode).unframed(unframed),
            recorder,
            capture,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.proxy.local_addr()
    }

    /// A handle to stop it from another thread (a Ctrl-C handler).
    pub fn handle(&self) -> ProxyHandle {
        self.proxy.handle()
    }

    /// Serve until shut down, printing, recording and capturing every event
    /// with its time since now; the recording and the capture are flushed
    /// before this returns.
    ///
    /// When stdout will not take a line (its reader went away, as in
    /// `trama-tap ... | head -1`), the tap shuts itself down, and this
    /// returns a [`StdoutError`] with why once the recording is flushed.
    pub fn run(self) -> TapResult {
        let Tap {
            proxy,
            printer,
            recorder,
            capture,
        } = self;
        let recorder = recorder.map(Mutex::new).map(Arc::new);
        let rec = recorder.clone();
        let capture = capture.map(Mutex::new).map(Arc::new);
        let cap = capture.clone();
        let unwritten: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let stdout_error = unwritten.clone();
        let stopper = proxy.handle();
        let start = Instant::now();
        proxy.run(move |event: &ProxyEvent<'_>| {
            let t = start.elapsed().as_secs_f64();
            if let Some(rec) = &rec {
                if let Ok(mut r) = rec.lock() {
                    r.event(t, event);
                }
            }
            if let Some(cap) = &cap {
                if let Ok(mut c) = cap.lock() {
                    c.event(event);
                }
            }
            // Once a line could not be written nothing more is printed:
            // the connections' threads are being stopped.
            let Ok(mut failed) = stdout_error.lock() else {
                return;
            };
            if failed.is_some() {
                return;
            }
            if let Err(e) = printer.event(t, event) {
                *failed = Some(e);
                drop(failed);
                stopper.shutdown();
            }
        })?;
        if let Some(rec) = recorder {
            if let Ok(mut r) = rec.lock() {
                r.flush()?;
            }
        }
        if let Some(cap) = capture {
            if let Ok(mut c) = cap.lock() {
                c.flush()?;
            }
        }
        match unwritten.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(StdoutError(e).into()),
            None => Ok(()),
        }
    }
}
