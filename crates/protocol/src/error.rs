//! The one error type of `trama-protocol`.
//!
//! Every variant carries the numbers a reader needs to see what went wrong:
//! the length that was announced, the limit it broke, how many bytes came.

use std::io;

/// Everything that can go wrong while framing, deframing or decoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame (received or about to be sent) is longer than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The length announced by the header, or the length of the payload to send.
        len: u64,
        /// The limit in force.
        limit: u64,
    },

    /// The stream ended inside a header.
    #[error("stream ended after {got} of {expected} header bytes")]
    TruncatedHeader {
        /// Header bytes that arrived.
        got: usize,
        /// Header bytes the configuration expects.
        expected: usize,
    },

    /// The stream ended inside a payload.
    #[error("stream ended after {got} of {expected} payload bytes")]
    TruncatedPayload {
        /// Payload bytes that arrived.
        got: u64,
        /// Payload bytes the header announced.
        expected: u64,
    },

    /// A stream of frames (see [`crate::StreamReader`]) ended without its end marker.
    #[error("stream of frames ended after {got} bytes without its end marker")]
    UnterminatedStream {
        /// Payload bytes that arrived before the stream ended.
        got: u64,
    },

    /// A configuration that cannot work, for example a limit the header cannot express.
    #[error("invalid frame configuration: {0}")]
    Config(String),

    /// A payload that should be UTF-8 text is not.
    #[error("payload is not valid UTF-8 at byte {at}")]
    Utf8 {
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        at: usize,
    },

    /// A payload could not be decoded by a codec (JSON, MessagePack, ...).
    #[error("{codec} decode failed on a {len}-byte payload: {reason}")]
    Decode {
        /// Name of the codec, e.g. `"json"`.
        codec: &'static str,
        /// Length of the payload that failed.
        len: usize,
        /// What the codec said.
        reason: String,
    },

    /// A value could not be encoded by a codec.
    #[error("{codec} encode failed: {reason}")]
    Encode {
        /// Name of the codec, e.g. `"msgpack"`.
        codec: &'static str,
        /// What the codec said.
        reason: String,
    },

    /// A payload transform (see [`crate::Transform`]) refused a frame.
    #[error("transform {name} rejected a {len}-byte frame: {reason}")]
    Transform {
        /// Name of the transform.
        name: &'static str,
        /// Length of the frame it saw.
        len: usize,
        /// Why it refused.
        reason: String,
    },

    /// A frame that should carry a request envelope (see [`crate::envelope`])
    /// does not.
    #[error("bad envelope in a {len}-byte frame: {reason}")]
    Envelope {
        /// Length of the frame.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The underlying reader or writer failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// True when the error is about the bytes the peer sent (as opposed to a
    /// local I/O failure or a local misconfiguration). Servers use it to decide
    /// between "drop this client, log why" and "something is wrong here".
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Error::FrameTooLarge { .. }
                | Error::TruncatedHeader { .. }
                | Error::TruncatedPayload { .. }
                | Error::UnterminatedStream { .. }
                | Error::Utf8 { .. }
                | Error::Decode { .. }
                | Error::Transform { .. }
                | Error::Envelope { .. }
        )
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::TruncatedHeader { .. }
            | Error::TruncatedPayload { .. }
            | Error::UnterminatedStream { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
