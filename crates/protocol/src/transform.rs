//! The extension point for course formats: a per-frame payload transform.
//!
//! Many assignments fix a format of their own on top of length framing: XOR
//! every byte with a key, append a checksum, number each chunk. Width, byte
//! order and limit are [`FrameConfig`](crate::FrameConfig) settings; anything
//! that changes the payload itself is a [`Transform`], attached to a
//! [`FrameWriter`](crate::FrameWriter) and a [`FrameReader`](crate::FrameReader)
//! with `with_transform`. See `crates/protocol/examples/` for three of them.

use crate::Result;

/// Changes each payload on its way out and undoes it on its way in.
///
/// `outbound` runs before the frame's length is computed, so a transform may
/// grow the payload (a trailer, a sequence number) and the header still tells
/// the truth. `inbound` may shrink the payload or refuse it with
/// [`Error::Transform`](crate::Error::Transform). A transform may keep state
/// (a counter); one instance serves one direction of one stream.
pub trait Transform: Send {
    /// A short name used in error messages.
    fn name(&self) -> &'static str;

    /// Rewrite a payload before it is framed and sent.
    fn outbound(&mut self, payload: &mut Vec<u8>) -> Result<()>;

    /// Rewrite (or refuse) a payload after it was received and deframed.
    fn inbound(&mut self, payload: &mut Vec<u8>) -> Result<()>;
}
