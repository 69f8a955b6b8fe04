//! The frames peers exchange, and how they are encoded.

use serde::{Deserialize, Serialize};

use super::CODEC;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One frame between peers: a MessagePack map tagged by its `"type"` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Wire {
    /// The first frame each side sends on a new link.
    Hello {
        /// The sender's [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        version: u32,
        /// The sender's name, unique in the mesh.
        name: String,
        /// The address the sender accepts links on, if any (absent: none).
        #[serde(default)]
        listen: Option<String>,
        /// Listen addresses of peers the sender knows (absent: none).
        #[serde(default)]
        peers: Vec<String>,
        /// A number the sender picked when it started (absent or 0: none).
        /// A known name saying Hello with another session has restarted:
        /// its old links lead to a program that is gone.
        #[serde(default, skip_serializing_if = "is_zero")]
        session: u64,
        /// The number the sender's next line will have (absent or 0: not
        /// said). Lines of the sender that other peers pass on may run at
        /// most [`MAX_AHEAD`](super::MAX_AHEAD) past it (or past the sender's own lines).
        #[serde(default, skip_serializing_if = "is_zero")]
        next: u64,
    },
    /// The link is refused, or retired when `reason` starts with
    /// [`DUPLICATE_LINK`](super::DUPLICATE_LINK); the sender sends nothing more on it.
    Refuse {
        /// Why, in words for the person at the other end.
        reason: String,
    },
    /// A chat line.
    Msg {
        /// The name of the peer that said it.
        origin: String,
        /// Its number among the lines `origin` said: 1, 2, 3...
        seq: u64,
        /// The line.
        text: String,
        /// Peers this line has already been sent to (and the senders
        /// themselves), so a forwarder skips them: in a full mesh the sayer
        /// reaches everyone and nobody forwards. Only an optimisation: a name
        /// missing here costs a duplicate, which the sequence numbers drop.
        /// At most [`MAX_REACHED`](super::MAX_REACHED) names.
        #[serde(default)]
        reached: Vec<String>,
    },
    /// Gossip: listen addresses the sender knows.
    Peers {
        /// The addresses (absent: none).
        #[serde(default)]
        peers: Vec<String>,
    },
}

impl Wire {
    /// The frame's payload: the value in [`CODEC`].
    pub fn encode(&self) -> trama_protocol::Result<Vec<u8>> {
        CODEC.to_vec(self)
    }

    /// Read a frame's payload; the error names the problem.
    pub fn decode(bytes: &[u8]) -> trama_protocol::Result<Wire> {
        CODEC.decode(bytes)
    }

    /// The `"type"` of this frame: `"Hello"`, `"Refuse"`, `"Msg"` or `"Peers"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Wire::Hello { .. } => "Hello",
            Wire::Refuse { .. } => "Refuse",
            Wire::Msg { .. } => "Msg",
            Wire::Peers { .. } => "Peers",
        }
    }
}
