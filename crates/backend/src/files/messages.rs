//! The control messages, in the order a transfer sends them.

use serde::{Deserialize, Serialize};

use super::{PROTOCOL_VERSION, THANKS};

/// Step 1, sender → receiver: "here is a file".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The sender's protocol version ([`PROTOCOL_VERSION`]); 0 when absent.
    #[serde(default)]
    pub version: u32,
    /// The bare file name (no directories), checked by [`check_name`](super::check_name).
    pub name: String,
    /// The file's size in bytes.
    pub size: u64,
    /// A BLAKE3 digest of the whole file follows the data in [`Done`].
    #[serde(default)]
    pub verify: bool,
}

impl Offer {
    /// An offer in this crate's [`PROTOCOL_VERSION`].
    pub fn new(name: impl Into<String>, size: u64, verify: bool) -> Offer {
        Offer {
            version: PROTOCOL_VERSION,
            name: name.into(),
            size,
            verify,
        }
    }
}

/// Step 2, receiver → sender: go ahead (from which byte) or not (why).
///
/// Encoded as a map with a `"type"` key, e.g. `{"type": "Ready", "offset": 0}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Answer {
    /// Send bytes `[offset, size)` of the file.
    Ready {
        /// The first byte to send; the receiver already holds `0..offset`.
        offset: u64,
    },
    /// The receiver will not take this file.
    Refused {
        /// Why, in words for the person at the sender.
        reason: String,
    },
    /// Not now: the file is being received from another connection (often
    /// the sender's own previous one, which the receiver has not yet seen
    /// die after a cut cable). The sender waits and offers again.
    Busy {
        /// Why, in words for the person at the sender.
        reason: String,
    },
}

impl Answer {
    pub(super) fn refused(reason: String) -> Answer {
        Answer::Refused { reason }
    }
}

/// Step 4, sender → receiver: all bytes are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Lowercase hex BLAKE3 of bytes `0..size` when the offer said `verify`.
    #[serde(default)]
    pub digest: Option<String>,
}

/// Step 5, receiver → sender: whether the file arrived intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when the file was stored.
    pub ok: bool,
    /// [`THANKS`] on success, else what went wrong.
    pub message: String,
    /// On failure: whether sending the file again may succeed (the bytes were
    /// damaged or cut on the way) or not (the receiver's disk is full, the
    /// file is refused). Absent on the wire means false.
    #[serde(default)]
    pub retry: bool,
}

impl Verdict {
    /// `ok: true` with [`THANKS`].
    pub fn success() -> Verdict {
        Verdict {
            ok: true,
            message: THANKS.to_string(),
            retry: false,
        }
    }

    /// `ok: false` with `message`: sending again will not help.
    pub fn failure(message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            message: message.into(),
            retry: false,
        }
    }

    /// `ok: false` with `message`, for damage on the way: send it again.
    pub fn retry(message: impl Into<String>) -> Verdict {
        Verdict {
            retry: true,
            ..Verdict::failure(message)
        }
    }
}
