//! The sender's decisions: how much to send after a resume. (How long to
//! wait before trying again is `trama_protocol::Backoff`, the rule every
//! part of trama that reconnects uses.)

use std::fmt;

use super::Offer;

/// A [`Answer::Ready`](super::Answer::Ready) offset past the end of the offered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOffset {
    /// The offset the receiver asked for.
    pub offset: u64,
    /// The size of the file offered.
    pub size: u64,
}

impl fmt::Display for BadOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the receiver asked to resume at byte {} of a {}-byte file",
            self.offset, self.size
        )
    }
}

impl std::error::Error for BadOffset {}

/// How many bytes the sender sends after [`Answer::Ready`](super::Answer::Ready)`{ offset }`:
/// `size - offset`, or an error when the offset is past the end.
///
/// ```
/// use trama_backend::files::{bytes_to_send, Offer};
/// let offer = Offer::new("a.bin", 1000, true);
/// assert_eq!(bytes_to_send(&offer, 400), Ok(600));
/// assert!(bytes_to_send(&offer, 1001).is_err());
/// ```
pub fn bytes_to_send(offer: &Offer, offset: u64) -> Result<u64, BadOffset> {
    offer.size.checked_sub(offset).ok_or(BadOffset {
        offset,
        size: offer.size,
    })
}
