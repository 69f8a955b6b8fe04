//! The settings every connection shares, documented once: [`LinkOptions`]
//! (the key, TLS, keepalive: every end, accepting or dialing) and
//! [`DialOptions`] (those, plus the connect timeout and the backoff: every
//! end that dials). Each config embeds the one that fits it and offers
//! `with_*` setters that reach inside, so a program writes
//! `ClientConfig::default().with_auth(auth)` whatever config it builds.
//!
//! Both are generic over the TLS settings because the ends differ in what
//! TLS needs: a dialer trusts ([`TlsConnector`]), a server proves who it is
//! ([`TlsAcceptor`](crate::TlsAcceptor)), a peer does both
//! ([`PeerTls`](crate::PeerTls)). They live here, public, so a crate
//! built on trama-transport (a proxy, a tool) can embed the same options
//! in its own config.

use std::time::Duration;

use trama_protocol::Backoff;

use crate::{AuthConfig, TlsConnector};

/// How one TCP connection is secured and watched, whichever end opened it.
///
/// ```
/// use std::time::Duration;
/// use trama_transport::{ClientConfig, ServerConfig};
///
/// let server = ServerConfig::default().with_keepalive(Duration::from_secs(10));
/// assert_eq!(server.link.keepalive, Some(Duration::from_secs(10)));
/// let client = ClientConfig::default()
///     .with_keepalive(None)
///     .with_connect_timeout(Duration::from_secs(1));
/// assert_eq!(client.dial.link.keepalive, None);
/// assert_eq!(client.dial.connect_timeout, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkOptions<Tls> {
    /// Run the shared-key handshake (Python's `multiprocessing.connection`
    /// `authkey`) before any application byte moves; a connection whose
    /// key differs never reaches the program. Default off.
    pub auth: Option<AuthConfig>,
    /// Speak TLS first; the key handshake, if any, then runs inside it, so
    /// the key never crosses the network in the clear. Default off.
    pub tls: Option<Tls>,
    /// Declare the peer dead after about this long without an answer from
    /// its TCP stack (keepalive probes; on Linux also unacknowledged data),
    /// so a host that vanished (unplugged, powered off, its network gone)
    /// is noticed instead of holding the connection open for hours. Default
    /// 30 s ([`DEFAULT_KEEPALIVE`](crate::DEFAULT_KEEPALIVE)); `None` leaves
    /// it to TCP (minutes to hours).
    pub keepalive: Option<Duration>,
}

impl<Tls> Default for LinkOptions<Tls> {
    fn default() -> Self {
        LinkOptions {
            auth: None,
            tls: None,
            keepalive: Some(crate::DEFAULT_KEEPALIVE),
        }
    }
}

impl<Tls> LinkOptions<Tls> {
    /// The same options with the key handshake on (`Some`) or off (`None`).
    pub fn with_auth(mut self, auth: impl Into<Option<AuthConfig>>) -> Self {
        self.auth = auth.into();
        self
    }

    /// The same options with TLS on (`Some`) or off (`None`).
    pub fn with_tls(mut self, tls: impl Into<Option<Tls>>) -> Self {
        self.tls = tls.into();
        self
    }

    /// The same options with another keepalive (`None`: leave it to TCP).
    pub fn with_keepalive(mut self, keepalive: impl Into<Option<Duration>>) -> Self {
        self.keepalive = keepalive.into();
        self
    }
}

/// How an end that dials connects: the [`LinkOptions`] of the connection,
/// how long an attempt may take, and how long to wait before the next one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DialOptions<Tls = TlsConnector> {
    /// The key, TLS and keepalive of every connection dialed.
    pub link: LinkOptions<Tls>,
    /// How long each resolved address gets to accept the connection, and
    /// then how long the TLS handshake may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The waits between attempts of an end that redials (a
    /// [`MultiClient`](crate::MultiClient) server, a persistent
    /// [`PeerNode`](crate::PeerNode) dial); a [`Client`](crate::Client)
    /// dials once and does not use it. Default 100 ms doubling to 5 s.
    pub backoff: Backoff,
}

impl<Tls> Default for DialOptions<Tls> {
    fn default() -> Self {
        DialOptions {
            link: LinkOptions::default(),
            connect_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }
}

impl<Tls> DialOptions<Tls> {
    /// The same options with other [`LinkOptions`].
    pub fn with_link(mut self, link: LinkOptions<Tls>) -> Self {
        self.link = link;
        self
    }

    /// The same options with another connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The same options with another backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// `with_*` setters for plain fields of a config: `with!(with_inbox: inbox: usize)`.
/// Each sets the field and hands the config back, so a config is built in
/// one expression; the field's own doc says what it means.
macro_rules! with {
    ($($setter:ident: $field:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("The same settings with another [`", stringify!($field), "`](Self::", stringify!($field), ").")]
            pub fn $setter(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

/// The setters of the [`LinkOptions`] a config holds at `$($path).+`, on the
/// config itself: `ServerConfig::default().with_auth(auth)`.
macro_rules! link_setters {
    ($tls:ty, $($path:ident).+) => {
        /// The same settings with the key handshake on (`Some`) or off (`None`);
        /// see [`LinkOptions::auth`](crate::LinkOptions::auth).
        pub fn with_auth(mut self, auth: impl Into<Option<crate::AuthConfig>>) -> Self {
            self.$($path).+.auth = auth.into();
            self
        }

        /// The same settings with TLS on (`Some`) or off (`None`);
        /// see [`LinkOptions::tls`](crate::LinkOptions::tls).
        pub fn with_tls(mut self, tls: impl Into<Option<$tls>>) -> Self {
            self.$($path).+.tls = tls.into();
            self
        }

        /// The same settings with another keepalive (`None`: leave it to TCP);
        /// see [`LinkOptions::keepalive`](crate::LinkOptions::keepalive).
        pub fn with_keepalive(mut self, keepalive: impl Into<Option<std::time::Duration>>) -> Self {
            self.$($path).+.keepalive = keepalive.into();
            self
        }
    };
}

/// The setters of the [`DialOptions`] a config holds at `$field`, on the
/// config itself, the link's included.
macro_rules! dial_setters {
    ($tls:ty, $field:ident) => {
        crate::options::link_setters!($tls, $field.link);

        /// The same settings with another connect timeout; see
        /// [`DialOptions::connect_timeout`](crate::DialOptions::connect_timeout).
        pub fn with_connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.$field.connect_timeout = timeout;
            self
        }
    };
}

/// The backoff setter, for the configs whose ends redial.
macro_rules! backoff_setter {
    ($field:ident) => {
        /// The same settings with another backoff between attempts; see
        /// [`DialOptions::backoff`](crate::DialOptions::backoff).
        pub fn with_backoff(mut self, backoff: trama_protocol::Backoff) -> Self {
            self.$field.backoff = backoff;
            self
        }
    };
}

pub(crate) use {backoff_setter, dial_setters, link_setters, with};
