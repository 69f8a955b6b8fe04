//! The worker pool: runs a service that may block, away from the I/O threads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Receiver;
use trama_protocol::{Actions, ConnId, DisconnectReason, Event, Service};

use crate::server::Core;

/// An event, owned, on its way to a worker.
pub(crate) enum Job {
    Connected {
        id: ConnId,
        peer: SocketAddr,
    },
    Message {
        id: ConnId,
        payload: Vec<u8>,
    },
    Disconnected {
        id: ConnId,
        reason: DisconnectReason,
    },
}

impl Job {
    fn event(&self) -> Event<'_> {
        match self {
            Job::Connected { id, peer } => Event::Connected {
                id: *id,
                peer: *peer,
            },
            Job::Message { id, payload } => Event::Message { id: *id, payload },
            Job::Disconnected { id, reason } => Event::Disconnected { id: *id, reason },
        }
    }
}

/// Handle jobs until every I/O thread has dropped its sender.
pub(crate) fn run<S: Service>(rx: Receiver<Job>, service: Arc<Mutex<S>>, core: Arc<Core>) {
    let mut actions = Actions::new();
    for job in rx {
        {
            let mut service = service.lock().unwrap_or_else(|e| e.into_inner());
            service.on_event(job.event(), &mut actions);
        }
        // The lock is released before any action is carried out.
        core.apply(&actions);
        actions.clear();
    }
}
