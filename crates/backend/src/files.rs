//! File transfer: the rules, with no files and no sockets.
//!
//! The app `trama-files` opens the files and the connections; this module
//! decides everything that can be decided without them: which names a
//! receiver may create, what the temporary file is called, where a transfer
//! resumes, whether what arrived is what was sent, how long to wait before
//! retrying, and how to say a size in words. Every rule is a plain function
//! of plain values, tested without I/O.
//!
//! # The wire protocol (version [`PROTOCOL_VERSION`])
//!
//! One TCP connection carries any number of files, one after the other.
//! Control messages are MessagePack maps with named fields ([`CODEC`], i.e.
//! `trama_protocol::Codec::MsgPack`) inside the default frames: a 4-byte
//! big-endian length, then the payload. The file's bytes themselves are
//! **not** framed, so each side can hand them to the kernel (`sendfile`,
//! `splice`) in one piece.
//!
//! 1. sender → receiver, framed: [`Offer`]
//!    `{"version": 1, "name": "a.bin", "size": 1000, "verify": true}`.
//!    `verify` promises a BLAKE3 digest of the whole file after the data.
//!    `name` is a bare file name that must pass [`check_name`].
//! 2. receiver → sender, framed: [`Answer`], a map tagged by `"type"`:
//!    `{"type": "Ready", "offset": 400}` (send bytes `[offset, size)`), or
//!    `{"type": "Refused", "reason": "..."}` (nothing follows for this file;
//!    the sender may offer another one or close). [`plan_receive`] decides.
//! 3. sender → receiver, raw: exactly `size - offset` bytes of the file,
//!    starting at byte `offset`.
//! 4. sender → receiver, framed: [`Done`] `{"digest": "af13..."}`: the
//!    lowercase hex BLAKE3 digest (64 characters) of bytes `0..size` of the
//!    file when the offer said `verify`, else `{"digest": nil}`. The digest
//!    covers the whole file even after a resume, so the receiver hashes the
//!    `offset` bytes it already had before the new ones.
//! 5. receiver → sender, framed: [`Verdict`] `{"ok": true, "message":
//!    "Gracias."}`, or `ok: false` with what went wrong. [`judge`] decides.
//! 6. The sender offers the next file on the same connection, or closes it.
//!
//! A receiver that cannot go on in the middle of step 3 (a full disk) may
//! send its failing [`Verdict`] early and close; a sender whose write fails
//! should look for that verdict before reporting a lost connection.
//!
//! Unknown fields are ignored, so later versions may add some. An offer
//! without a `version` field reads as version 0 and is refused with a reason
//! that says so, like any version other than [`PROTOCOL_VERSION`].
//!
//! # The receiver's files
//!
//! The receiver writes into [`partial_name`]`(name, size)` in its directory
//! and renames that file to `name` only once [`judge`] accepted it. The size
//! is part of the temporary name, so a partial file is resumed only by an
//! offer of the same name and size. On [`Answer::Ready`], the receiver
//! truncates the temporary file to `offset` (creating it if needed) and
//! appends from there: that one rule covers a fresh start, a resume and a
//! stale partial file.
//!
//! ```
//! use trama_backend::files::{judge, plan_receive, Answer, DiskFacts, Offer, THANKS};
//!
//! let offer = Offer::new("enviar.bin", 1000, false);
//! // A previous try left 400 bytes in the temporary file: resume there.
//! let facts = DiskFacts { final_exists: false, partial_len: Some(400) };
//! assert_eq!(plan_receive(&offer, &facts, false), Answer::Ready { offset: 400 });
//! // ... 600 more bytes arrive, then Done { digest: None } ...
//! let verdict = judge(&offer, 400 + 600, None, None);
//! assert!(verdict.ok);
//! assert_eq!(verdict.message, THANKS);
//! ```

mod messages;
mod names;
mod progress;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;

use trama_protocol::Codec;

pub use messages::{Answer, Done, Offer, Verdict};
pub use names::{check_name, is_partial_name, numbered_name, partial_name, NameError};
pub use progress::{human_bytes, Progress};
pub use receiver::{
    is_digest, judge, plan_receive, plan_receive_with_limit, DiskFacts, RateFloor, TooSlow,
};
pub use sender::{bytes_to_send, Backoff, BadOffset};

/// The version of the protocol described in the [module docs](self).
pub const PROTOCOL_VERSION: u32 = 1;

/// The codec of every control message.
pub const CODEC: Codec = Codec::MsgPack;

/// A generous bound for one control message's frame. The longest valid one is
/// an [`Offer`] with a 255-byte name or a refusal that quotes it: a few
/// hundred bytes. A peer that announces more is not speaking this protocol.
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// The receiver's message on success, as in the course notes.
pub const THANKS: &str = "Gracias.";

/// Longest file name accepted, in bytes (the limit of ext4, APFS, NTFS...).
pub const MAX_NAME_BYTES: usize = 255;

/// Prefix of the receiver's temporary files; [`check_name`] refuses names
/// that start with it (in any letter case).
pub const TEMP_PREFIX: &str = ".trama-";

/// Suffix of the receiver's temporary files.
pub const PARTIAL_SUFFIX: &str = ".part";

/// Length of a BLAKE3 digest in hex.
pub const DIGEST_HEX_LEN: usize = 64;

/// Hex digits of a digest shown in messages.
const SHORT_DIGEST: usize = 16;

/// Characters of a name quoted in an error message.
const QUOTED_CHARS: usize = 64;
