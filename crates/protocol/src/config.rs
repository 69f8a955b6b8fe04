//! How frames look on the wire: [`FrameConfig`] and its builder.

use crate::{Error, Result};

/// Default limit on one frame's payload: 16 MiB.
///
/// Large enough for any chat line, typed message or file chunk, small enough
/// that a peer cannot make us hold more than this for one message. Memory is
/// only committed as bytes actually arrive (never on the header's word), so the
/// limit bounds what an honest-but-large peer can cost, not what a lying header
/// can: that one costs nothing.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Default size of one read in unframed mode, as in the course notes' `recv(4096)`.
pub const DEFAULT_READ_SIZE: usize = 4096;

/// Whether messages carry a length header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A length header, then exactly that many payload bytes (the notes' chat and file format).
    LengthPrefixed,
    /// No header: a received message is whatever one read returned (at most
    /// `max_frame_len` bytes); a sent message is the bytes as given. This is
    /// the dialect of the notes' echo, two-server and peer programs.
    Unframed,
}

/// Byte order of the length header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Most significant byte first (network order; the notes' `byteorder='big'`).
    Big,
    /// Least significant byte first.
    Little,
}

/// Width of the length header in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderWidth {
    /// 1 byte: payloads up to 255 bytes.
    One = 1,
    /// 2 bytes: payloads up to 65,535 bytes.
    Two = 2,
    /// 4 bytes: payloads up to 4 GiB - 1 (the notes' format).
    Four = 4,
    /// 8 bytes.
    Eight = 8,
}

impl HeaderWidth {
    /// The header width for `n` bytes, if `n` is 1, 2, 4 or 8.
    pub fn from_bytes(n: usize) -> Option<HeaderWidth> {
        match n {
            1 => Some(HeaderWidth::One),
            2 => Some(HeaderWidth::Two),
            4 => Some(HeaderWidth::Four),
            8 => Some(HeaderWidth::Eight),
            _ => None,
        }
    }

    /// Number of header bytes.
    pub fn bytes(self) -> usize {
        self as usize
    }

    /// The largest length this header can express.
    pub fn max_len(self) -> u64 {
        match self {
            HeaderWidth::Eight => u64::MAX,
            w => (1u64 << (8 * w.bytes())) - 1,
        }
    }
}

/// The wire format of a stream: framed or not, header width and order, and the limit.
///
/// The default is the notes' format: a 4-byte big-endian unsigned length, then
/// exactly that many payload bytes, with a limit of [`DEFAULT_MAX_FRAME_LEN`].
/// A `FrameConfig` is always valid: the builder checks that the limit fits the
/// header before it hands one out.
///
/// ```
/// use trama_protocol::{ByteOrder, FrameConfig, HeaderWidth};
///
/// // The notes' format.
/// let notes = FrameConfig::default();
/// assert_eq!(notes.header_len(), 4);
///
/// // A course variant: 2-byte little-endian lengths, at most 1000 bytes.
/// let course = FrameConfig::builder()
///     .width(HeaderWidth::Two)
///     .order(ByteOrder::Little)
///     .max_frame_len(1000)
///     .build()?;
/// assert_eq!(course.max_frame_len(), 1000);
///
/// // A limit the header cannot express is refused.
/// assert!(FrameConfig::builder().width(HeaderWidth::One).max_frame_len(256).build().is_err());
/// # Ok::<(), trama_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameConfig {
    framing: Framing,
    width: HeaderWidth,
    order: ByteOrder,
    max_frame_len: usize,
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig {
            framing: Framing::LengthPrefixed,
            width: HeaderWidth::Four,
            order: ByteOrder::Big,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl FrameConfig {
    /// Start from the default (notes' format) and change what you need.
    pub fn builder() -> FrameConfigBuilder {
        FrameConfigBuilder {
            config: FrameConfig::default(),
            width_set: false,
        }
    }

    /// The unframed dialect with reads of at most [`DEFAULT_READ_SIZE`] bytes.
    pub fn unframed() -> FrameConfig {
        FrameConfig {
            framing: Framing::Unframed,
            max_frame_len: DEFAULT_READ_SIZE,
            ..FrameConfig::default()
        }
    }

    /// Framed or unframed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// True for [`Framing::Unframed`].
    pub fn is_unframed(&self) -> bool {
        self.framing == Framing::Unframed
    }

    /// Header width.
    pub fn width(&self) -> HeaderWidth {
        self.width
    }

    /// Header byte order.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// Number of header bytes on the wire: 0 when unframed.
    pub fn header_len(&self) -> usize {
        match self.framing {
            Framing::LengthPrefixed => self.width.bytes(),
            Framing::Unframed => 0,
        }
    }

    /// The payload limit; in unframed mode, the size of one read.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Check a payload length against the limit, as both sides do.
    pub fn check_len(&self, len: u64) -> Result<()> {
        if len > self.max_frame_len as u64 {
            return Err(Error::FrameTooLarge {
                len,
                limit: self.max_frame_len as u64,
            });
        }
        Ok(())
    }
}

/// Builds a [`FrameConfig`]; [`build`](FrameConfigBuilder::build) checks it.
#[derive(Debug, Clone)]
pub struct FrameConfigBuilder {
    config: FrameConfig,
    width_set: bool,
}

impl FrameConfigBuilder {
    /// Length-prefixed (the default) or unframed. Choosing unframed sets the
    /// limit (the read size) to [`DEFAULT_READ_SIZE`] unless you set it.
    pub fn framing(mut self, framing: Framing) -> Self {
        if framing == Framing::Unframed && self.config.framing != Framing::Unframed {
            self.config.max_frame_len = DEFAULT_READ_SIZE;
        }
        self.config.framing = framing;
        self
    }

    /// Header width (default 4 bytes).
    pub fn width(mut self, width: HeaderWidth) -> Self {
        self.config.width = width;
        self.width_set = true;
        self
    }

    /// Header byte order (default big-endian).
    pub fn order(mut self, order: ByteOrder) -> Self {
        self.config.order = order;
        self
    }

    /// Shorthand for `order(ByteOrder::Little)`.
    pub fn little_endian(self) -> Self {
        self.order(ByteOrder::Little)
    }

    /// Largest payload accepted or sent; in unframed mode, the size of one read.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.config.max_frame_len = max;
        self
    }

    /// Check and return the configuration.
    ///
    /// If a narrow width was chosen but no limit, the limit becomes the
    /// largest the header can express (so `width(One)` alone is valid).
    pub fn build(self) -> Result<FrameConfig> {
        let mut c = self.config;
        if c.framing == Framing::Unframed {
            if c.max_frame_len == 0 {
                return Err(Error::Config(
                    "unframed read size must be at least 1 byte".into(),
                ));
            }
            return Ok(c);
        }
        let width_max = c.width.max_len();
        if self.width_set && c.max_frame_len == DEFAULT_MAX_FRAME_LEN {
            c.max_frame_len = usize::try_from(width_max.min(DEFAULT_MAX_FRAME_LEN as u64))
                .unwrap_or(DEFAULT_MAX_FRAME_LEN);
        }
        if c.max_frame_len as u64 > width_max {
            return Err(Error::Config(format!(
                "limit of {} bytes does not fit a {}-byte header (largest {})",
                c.max_frame_len,
                c.width.bytes(),
                width_max
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_notes_format() {
        let c = FrameConfig::default();
        assert_eq!(c.framing(), Framing::LengthPrefixed);
        assert_eq!(c.header_len(), 4);
        assert_eq!(c.order(), ByteOrder::Big);
        assert_eq!(c.max_frame_len(), DEFAULT_MAX_FRAME_LEN);
    }

    #[test]
    fn narrow_width_without_limit_takes_the_width_max() {
        let c = FrameConfig::builder()
            .width(HeaderWidth::One)
            .build()
            .unwrap();
        assert_eq!(c.max_frame_len(), 255);
        let c = FrameConfig::builder()
            .width(HeaderWidth::Two)
            .build()
            .unwrap();
        assert_eq!(c.max_frame_len(), 65535);
        let c = FrameConfig::builder()
            .width(HeaderWidth::Eight)
            .build()
            .unwrap();
        assert_eq!(c.max_frame_len(), DEFAULT_MAX_FRAME_LEN);
    }

    #[test]
    fn limit_must_fit_the_header() {
        let e = FrameConfig::builder()
            .width(HeaderWidth::Two)
            .max_frame_len(70_000)
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid frame configuration: limit of 70000 bytes does not fit a 2-byte header (largest 65535)"
        );
    }

    #[test]
    fn unframed_needs_a_read_size() {
        assert!(FrameConfig::builder()
            .framing(Framing::Unframed)
            .max_frame_len(0)
            .build()
            .is_err());
        let c = FrameConfig::builder()
            .framing(Framing::Unframed)
            .build()
            .unwrap();
        assert_eq!(c.max_frame_len(), DEFAULT_READ_SIZE);
        assert_eq!(c.header_len(), 0);
    }

    #[test]
    fn check_len_names_both_numbers() {
        let c = FrameConfig::default();
        assert_eq!(
            c.check_len(u32::MAX as u64).unwrap_err().to_string(),
            "frame of 4294967295 bytes exceeds the limit of 16777216"
        );
        assert!(c.check_len(16 * 1024 * 1024).is_ok());
    }
}
