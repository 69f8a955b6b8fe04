//! What the app sees: the links it names, the effects it carries out, the
//! peers and counters it can show.

use std::fmt;

use super::Wire;

/// One link (one TCP connection), named by the app. Ids must not be reused
/// while the mesh may still hear of the old link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link {}", self.0)
    }
}

/// An effect for the app to carry out, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send `wire` (encoded with [`Wire::encode`], framed) on `link`.
    Send {
        /// The link.
        link: LinkId,
        /// The frame.
        wire: Wire,
    },
    /// Close `link` once the frames already queued on it are sent. The mesh
    /// has forgotten it: telling it the link went down is harmless.
    Close {
        /// The link.
        link: LinkId,
        /// Why, for the app's log.
        reason: String,
    },
    /// Show a line to the user.
    Deliver {
        /// The name of the peer that said it.
        from: String,
        /// The line.
        text: String,
    },
    /// Connect to `addr` and report the link with
    /// [`Mesh::on_link_up`](super::Mesh::on_link_up) (as dialed), or give up
    /// with [`Mesh::dial_failed`](super::Mesh::dial_failed). The app applies
    /// its backoff between attempts, and keeps trying (or gives up) when the
    /// link goes down before the peer's Hello.
    Dial {
        /// A listen address, as peers advertise it.
        addr: String,
    },
    /// A status line for the console: joined, left, refused, not sent.
    Notice(String),
    /// A line for the app's log: input that was dropped, with the numbers.
    Warn(String),
}

/// A linked peer, for `/peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its name.
    pub name: String,
    /// The address it accepts links on, if it said one.
    pub listen: Option<String>,
    /// The link lines to it are sent on.
    pub link: LinkId,
}

/// Counters since the mesh was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines this peer originated with [`Mesh::say`](super::Mesh::say).
    pub said: u64,
    /// Lines of other peers delivered to the user.
    pub delivered: u64,
    /// Copies dropped: lines already delivered (or skipped by a gap), and
    /// this peer's own lines coming back.
    pub duplicates: u64,
    /// Sends of other peers' lines to further peers.
    pub forwarded: u64,
    /// Times an origin's numbers jumped more than [`WINDOW`](super::WINDOW) past its mark.
    pub gaps: u64,
    /// Origins forgotten to make room past [`MAX_ORIGINS`](super::MAX_ORIGINS).
    pub evicted: u64,
    /// Lines of a linked peer, passed on by another, dropped because they
    /// were numbered past what that peer could have sent ([`MAX_AHEAD`](super::MAX_AHEAD)).
    pub forged: u64,
    /// Lines a linked peer sent itself, delivered although a line with the
    /// same number had come from another peer first (which was not its).
    pub overridden: u64,
    /// Learned addresses forgotten because [`MAX_WAITING`](super::MAX_WAITING) were waiting.
    pub addrs_dropped: u64,
    /// Numbers taken back as unseen because their origin's Hello said it
    /// had not used them yet (someone else had, in its name, or the window
    /// jumped there): a line of the origin's still in flight with such a
    /// number may be delivered again.
    pub rewound: u64,
}
