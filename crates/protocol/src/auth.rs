//! The shared-key handshake: a mutual challenge-response that speaks
//! Python's `multiprocessing.connection` `authkey` protocol, with no I/O.
//!
//! Both ends hold the same secret key. Each sends the other a challenge of
//! fresh random bytes and checks that the answer is the HMAC of that
//! challenge under the key; a wrong answer gets `#FAILURE#`, a right one
//! `#WELCOME#`. The listening side challenges first, then answers; the
//! dialing side answers, then challenges. Every message is one frame of the
//! course notes' format (4-byte big-endian length), at most 256 bytes, as
//! Python's `recv_bytes(256)` requires.
//!
//! Two dialects exist, and the answer's shape says which one a peer speaks:
//!
//! - modern (Python 3.12 and later): the challenge is
//!   `#CHALLENGE#{sha256}` + 40 random bytes and the answer is `{sha256}` +
//!   HMAC-SHA256 over everything after `#CHALLENGE#`, prefix included, so a
//!   peer cannot talk the other down to a weaker digest;
//! - legacy (Python up to 3.11): the challenge is `#CHALLENGE#` + 20 random
//!   bytes and the answer a bare 16-byte HMAC-MD5. A legacy peer answers our
//!   modern challenge with a bare HMAC-MD5 of the whole of it.
//!
//! We always challenge with SHA-256. Legacy MD5 answers, and answering a
//! legacy challenge, happen only with [`AuthPolicy::allow_legacy_md5`]: HMAC-MD5
//! is not known to be broken, but MD5 is, and an old dialect a peer can pick
//! is a door we keep shut unless asked.
//!
//! The random bytes come from the operating system (`getrandom`), so a
//! recorded handshake cannot be replayed: the replayed answer belongs to
//! another challenge. Answers are compared in constant time.
//!
//! ```
//! use trama_protocol::auth::{AuthKey, AuthPolicy, Handshake};
//!
//! let key = AuthKey::from_file_contents(b"secret\n".to_vec())?;
//! let mut server = Handshake::listener(&key, AuthPolicy::default())?;
//! let mut client = Handshake::dialer(&key, AuthPolicy::default())?;
//! // Shuttle bytes until both are done (a socket does this in real life).
//! while !(server.is_done() && client.is_done()) {
//!     let to_client = server.take_output();
//!     client.feed(&to_client)?;
//!     let to_server = client.take_output();
//!     server.feed(&to_server)?;
//! }
//! # Ok::<(), trama_protocol::auth::AuthError>(())
//! ```

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::Sha256;

/// The first bytes of a challenge message.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The verdict for a right answer.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// The verdict for a wrong answer.
pub const FAILURE: &[u8] = b"#FAILURE#";
/// Largest handshake message, as Python's `recv_bytes(256)` enforces.
pub const MAX_MESSAGE: usize = 256;
/// Random bytes in our challenge (Python 3.12's `MESSAGE_LENGTH`).
const NONCE_LEN: usize = 40;
/// A legacy challenge's length (after `#CHALLENGE#`) and a legacy answer's.
const LEGACY_CHALLENGE_LEN: usize = 20;
const MD5_LEN: usize = 16;
const SHA256_PREFIX: &[u8] = b"{sha256}";
const MD5_PREFIX: &[u8] = b"{md5}";
/// Longest `{digest}` name Python accepts (`sha3_256`, `sha3_384`) plus braces.
const MAX_PREFIX: usize = 10;
const HEADER: usize = 4;

/// Why a handshake failed. The variants say which side is at fault so the
/// logs of both ends point at the key, the dialect or the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The key is empty (an empty file, or one holding only a newline).
    #[error("the key is empty")]
    EmptyKey,
    /// The operating system gave no random bytes.
    #[error("no random bytes for a challenge: {0}")]
    Random(String),
    /// The peer's answer to our challenge is wrong: it has another key, or none.
    #[error("the peer's answer to our challenge is wrong (the keys differ)")]
    WrongAnswer,
    /// The peer said `#FAILURE#` to our answer.
    #[error("the peer rejected our answer with #FAILURE# (the keys differ)")]
    Rejected,
    /// The peer speaks legacy HMAC-MD5 (Python up to 3.11) and it was not allowed.
    #[error(
        "the peer uses the legacy HMAC-MD5 handshake (Python 3.11 or older); \
         allow it with --allow-legacy-md5"
    )]
    LegacyRefused,
    /// The peer asked for, or answered with, a digest we do not speak.
    #[error("the peer uses digest {0:?}; only sha256 (and md5 when allowed) are supported")]
    UnsupportedDigest(String),
    /// A message that has no place at this point of the handshake.
    #[error("handshake message not understood: expected {expected}, got {got}")]
    Unexpected {
        /// What the handshake waited for.
        expected: &'static str,
        /// What came (its length and first bytes, never key material).
        got: String,
    },
    /// A frame header announced more than [`MAX_MESSAGE`] bytes.
    #[error("handshake message of {len} bytes, limit {MAX_MESSAGE}")]
    TooLong {
        /// The announced length.
        len: u64,
    },
    /// [`Handshake::feed`] was called after the handshake ended.
    #[error("the handshake is already over")]
    Over,
}

/// The shared secret. It never appears in `Debug` output or in errors, and
/// its bytes are overwritten when it is dropped (best effort).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    bytes: Vec<u8>,
}

impl AuthKey {
    /// A key from raw bytes. Empty keys are refused: they would admit anyone
    /// who also has "no key".
    pub fn new(bytes: Vec<u8>) -> Result<AuthKey, AuthError> {
        if bytes.is_empty() {
            return Err(AuthError::EmptyKey);
        }
        Ok(AuthKey { bytes })
    }

    /// A key from a key file's contents, with one trailing newline (`\n` or
    /// `\r\n`) removed, so that `echo secret > key` matches Python's
    /// `authkey=b'secret'`. Only one: a key that really ends in a newline
    /// keeps the rest.
    pub fn from_file_contents(mut bytes: Vec<u8>) -> Result<AuthKey, AuthError> {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        AuthKey::new(bytes)
    }

    /// How many bytes the key has (its length is not secret enough to hide
    /// from the program that holds it; it never goes on the wire).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: empty keys cannot be made.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn mac_sha256(&self, message: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(message);
        mac
    }

    fn mac_md5(&self, message: &[u8]) -> Hmac<Md5> {
        let mut mac =
            <Hmac<Md5> as Mac>::new_from_slice(&self.bytes).unwrap_or_else(|_| unreachable_hmac());
        mac.update(message);
        mac
    }
}

/// HMAC accepts keys of every length, so `new_from_slice` never fails; this
/// keeps that fact in one place without a panic in the type's signature.
fn unreachable_hmac<T>() -> T {
    unreachable!("HMAC accepts keys of any length")
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

impl Drop for AuthKey {
    fn drop(&mut self) {
        for b in self.bytes.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&self.bytes);
    }
}

/// What a handshake accepts besides the modern SHA-256 dialect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthPolicy {
    /// Accept a bare HMAC-MD5 answer and answer a legacy (20-byte) or
    /// `{md5}` challenge: needed for Python 3.11 and older. Off by default.
    pub allow_legacy_md5: bool,
}

impl AuthPolicy {
    /// The same policy with legacy HMAC-MD5 accepted or not.
    pub fn with_legacy_md5(mut self, allow: bool) -> AuthPolicy {
        self.allow_legacy_md5 = allow;
        self
    }
}

/// Which half of the exchange an end plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The accepting end (Python's `Listener`): challenges first.
    Listener,
    /// The connecting end (Python's `Client`): answers first.
    Dialer,
}

/// The two halves of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// We challenge, the peer answers, we give the verdict.
    Deliver,
    /// The peer challenges, we answer, the peer gives the verdict.
    Answer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// We sent this challenge (what follows `#CHALLENGE#`) and wait for the answer.
    AwaitAnswer(Vec<u8>),
    /// We wait for the peer's challenge.
    AwaitChallenge,
    /// We answered and wait for `#WELCOME#` or `#FAILURE#`.
    AwaitVerdict,
    Done,
    Failed,
}

/// One end of the handshake, fed bytes and producing bytes (framed), so a
/// blocking stream and a readiness loop drive it alike.
///
/// Drive it with [`take_output`](Handshake::take_output) (bytes to write),
/// [`needed`](Handshake::needed) (how many bytes the next step still lacks)
/// and [`feed`](Handshake::feed) (bytes read). `feed` never consumes a byte
/// past the last handshake message, so what follows it in the same read
/// belongs to the application. When `feed` fails, still write what
/// `take_output` returns (a `#FAILURE#` for the peer), then close.
#[derive(Debug)]
pub struct Handshake {
    key: AuthKey,
    policy: AuthPolicy,
    parts: [Part; 2],
    part: usize,
    state: State,
    /// The frame being read: header, then body (at most 4 + 256 bytes).
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Our challenge (after `#CHALLENGE#`), until it is sent.
    pending_challenge: Option<Vec<u8>>,
    /// The peer used legacy HMAC-MD5 in either half.
    legacy_used: bool,
}

impl Handshake {
    /// The accepting end: its challenge is ready in [`take_output`](Handshake::take_output).
    pub fn listener(key: &AuthKey, policy: AuthPolicy) -> Result<Handshake, AuthError> {
        Handshake::new(Role::Listener, key, policy)
    }

    /// The connecting end: it waits for the listener's challenge.
    pub fn dialer(key: &AuthKey, policy: AuthPolicy) -> Result<Handshake, AuthError> {
        Handshake::new(Role::Dialer, key, policy)
    }

    /// An end of the given role, with a fresh random challenge.
    pub fn new(role: Role, key: &AuthKey, policy: AuthPolicy) -> Result<Handshake, AuthError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(Handshake::with_nonce(role, key, policy, nonce))
    }

    fn with_nonce(
        role: Role,
        key: &AuthKey,
        policy: AuthPolicy,
        nonce: [u8; NONCE_LEN],
    ) -> Handshake {
        let parts = match role {
            Role::Listener => [Part::Deliver, Part::Answer],
            Role::Dialer => [Part::Answer, Part::Deliver],
        };
        let mut challenge = Vec::with_capacity(SHA256_PREFIX.len() + NONCE_LEN);
        challenge.extend_from_slice(SHA256_PREFIX);
        challenge.extend_from_slice(&nonce);
        let mut h = Handshake {
            key: key.clone(),
            policy,
            parts,
            part: 0,
            state: State::AwaitChallenge,
            inbuf: Vec::with_capacity(HEADER + MAX_MESSAGE),
            out: Vec::new(),
            pending_challenge: Some(challenge),
            legacy_used: false,
        };
        h.begin();
        h
    }

    /// True once both halves succeeded: application bytes may flow.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True once the handshake failed; nothing more will be accepted.
    pub fn has_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// True if the peer answered our challenge with legacy HMAC-MD5 (or
    /// challenged us that way), for the logs.
    pub fn used_legacy_md5(&self) -> bool {
        self.legacy_used
    }

    /// The bytes to write to the peer now (framed); empty if none.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// True if there are bytes waiting in [`take_output`](Handshake::take_output).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many more bytes the message being read needs (at least 1 while
    /// the handshake waits for the peer, 0 when it is over). A blocking
    /// reader reads exactly this many, so it never takes bytes that belong
    /// to the application.
    pub fn needed(&self) -> usize {
        match self.state {
            State::Done | State::Failed => 0,
            _ if self.inbuf.len() < HEADER => HEADER - self.inbuf.len(),
            _ => HEADER + self.body_len() - self.inbuf.len(),
        }
    }

    fn body_len(&self) -> usize {
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&self.inbuf[..HEADER]);
        u32::from_be_bytes(h) as usize
    }

    /// Take bytes read from the peer. Returns how many were consumed: all of
    /// them, or fewer when the handshake finished part-way (the rest is the
    /// application's). An error ends the handshake; write any output, then
    /// close.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<usize, AuthError> {
        let total = bytes.len();
        while !bytes.is_empty() {
            match self.state {
                State::Done => return Ok(total - bytes.len()),
                State::Failed => return Err(AuthError::Over),
                _ => {}
            }
            let take = self.needed().min(bytes.len());
            self.inbuf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.inbuf.len() == HEADER {
                let len = self.body_len();
                if len > MAX_MESSAGE {
                    self.state = State::Failed;
                    return Err(AuthError::TooLong { len: len as u64 });
                }
            }
            if self.inbuf.len() >= HEADER && self.inbuf.len() == HEADER + self.body_len() {
                let message = self.inbuf.split_off(HEADER);
                self.inbuf.clear();
                if let Err(e) = self.on_message(&message) {
                    self.state = State::Failed;
                    return Err(e);
                }
            }
        }
        if self.state == State::Failed {
            return Err(AuthError::Over);
        }
        Ok(total)
    }

    fn push(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // Every message we build is far below 2^32 bytes.
        self.out.extend_from_slice(&(len as u32).to_be_bytes());
        for p in parts {
            self.out.extend_from_slice(p);
        }
    }

    /// Start the current part (or finish).
    fn begin(&mut self) {
        match self.parts.get(self.part) {
            None => self.state = State::Done,
            Some(Part::Answer) => self.state = State::AwaitChallenge,
            Some(Part::Deliver) => {
                let challenge = self.pending_challenge.take().unwrap_or_default();
                self.push(&[CHALLENGE, &challenge]);
                self.state = State::AwaitAnswer(challenge);
            }
        }
    }

    fn next_part(&mut self) {
        self.part += 1;
        self.begin();
    }

    fn on_message(&mut self, message: &[u8]) -> Result<(), AuthError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::AwaitAnswer(challenge) => {
                let verdict = self.verify(&challenge, message);
                match verdict {
                    Ok(()) => {
                        self.push(&[WELCOME]);
                        self.next_part();
                        Ok(())
                    }
                    Err(e) => {
                        // Python raises AuthenticationError on this, not a bare EOF.
                        self.push(&[FAILURE]);
                        Err(e)
                    }
                }
            }
            State::AwaitChallenge => {
                let answer = self.answer(message)?;
                self.push(&[&answer]);
                self.state = State::AwaitVerdict;
                Ok(())
            }
            State::AwaitVerdict => {
                if message == WELCOME {
                    self.next_part();
                    Ok(())
                } else if message == FAILURE {
                    Err(AuthError::Rejected)
                } else {
                    Err(unexpected("#WELCOME# or #FAILURE#", message))
                }
            }
            State::Done | State::Failed => Err(AuthError::Over),
        }
    }

    /// Check the peer's answer to `challenge`, in constant time.
    fn verify(&mut self, challenge: &[u8], answer: &[u8]) -> Result<(), AuthError> {
        if answer.len() == MD5_LEN {
            if !self.policy.allow_legacy_md5 {
                return Err(AuthError::LegacyRefused);
            }
            self.legacy_used = true;
            return self
                .key
                .mac_md5(challenge)
                .verify_slice(answer)
                .map_err(|_| AuthError::WrongAnswer);
        }
        match split_digest(answer) {
            Some((b"sha256", mac)) => self
                .key
                .mac_sha256(challenge)
                .verify_slice(mac)
                .map_err(|_| AuthError::WrongAnswer),
            Some((b"md5", mac)) if self.policy.allow_legacy_md5 => {
                self.legacy_used = true;
                self.key
                    .mac_md5(challenge)
                    .verify_slice(mac)
                    .map_err(|_| AuthError::WrongAnswer)
            }
            Some((b"md5", _)) => Err(AuthError::LegacyRefused),
            Some((name, _)) => Err(AuthError::UnsupportedDigest(
                String::from_utf8_lossy(name).into_owned(),
            )),
            // No prefix and not MD5-sized: a wrong answer (a peer without the
            // key sends anything at all), which earns a #FAILURE#.
            None => Err(AuthError::WrongAnswer),
        }
    }

    /// Our answer to the peer's challenge message.
    fn answer(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let Some(challenge) = message.strip_prefix(CHALLENGE) else {
            return Err(unexpected("#CHALLENGE#", message));
        };
        if challenge.len() < LEGACY_CHALLENGE_LEN {
            return Err(unexpected("a challenge of at least 20 bytes", message));
        }
        if challenge.len() == LEGACY_CHALLENGE_LEN || challenge.len() == MD5_LEN {
            if !self.policy.allow_legacy_md5 {
                return Err(AuthError::LegacyRefused);
            }
            self.legacy_used = true;
            return Ok(self.key.mac_md5(challenge).finalize().into_bytes().to_vec());
        }
        match split_digest(challenge) {
            Some((b"sha256", _)) => {
                let mac = self.key.mac_sha256(challenge).finalize().into_bytes();
                Ok([SHA256_PREFIX, &mac[..]].concat())
            }
            Some((b"md5", _)) if self.policy.allow_legacy_md5 => {
                self.legacy_used = true;
                let mac = self.key.mac_md5(challenge).finalize().into_bytes();
                Ok([MD5_PREFIX, &mac[..]].concat())
            }
            Some((b"md5", _)) => Err(AuthError::LegacyRefused),
            Some((name, _)) => Err(AuthError::UnsupportedDigest(
                String::from_utf8_lossy(name).into_owned(),
            )),
            None => Err(unexpected("a {digest} prefix", message)),
        }
    }
}

/// `{name}rest` -> `(name, rest)`, for names of Python's length.
fn split_digest(message: &[u8]) -> Option<(&[u8], &[u8])> {
    if message.first() != Some(&b'{') {
        return None;
    }
    let end = message
        .iter()
        .take(MAX_PREFIX)
        .position(|&b| b == b'}')
        .filter(|&i| i > 1)?;
    Some((&message[1..end], &message[end + 1..]))
}

fn unexpected(expected: &'static str, got: &[u8]) -> AuthError {
    // Only the start, escaped: enough to recognise a wrong protocol.
    let shown: String = got
        .iter()
        .take(16)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    AuthError::Unexpected {
        expected,
        got: format!("{} bytes starting {shown:?}", got.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &[u8]) -> AuthKey {
        AuthKey::new(k.to_vec()).unwrap()
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    fn unframe(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        out
    }

    /// The nonce the Python vectors below were made with: bytes 0..40.
    fn counting_nonce() -> [u8; NONCE_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Run two ends against each other; returns each end's result.
    fn run(a: &mut Handshake, b: &mut Handshake) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (mut ra, mut rb) = (Ok(()), Ok(()));
        for _ in 0..10 {
            let to_b = a.take_output();
            if rb.is_ok() && !to_b.is_empty() {
                rb = b.feed(&to_b).map(|_| ());
            }
            let to_a = b.take_output();
            if ra.is_ok() && !to_a.is_empty() {
                ra = a.feed(&to_a).map(|_| ());
            }
            let a_over = a.is_done() || ra.is_err();
            let b_over = b.is_done() || rb.is_err();
            if a_over && b_over && !a.has_output() && !b.has_output() {
                break;
            }
        }
        (ra, rb)
    }

    #[test]
    fn key_file_contents_lose_one_newline_only() {
        let k = AuthKey::from_file_contents(b"secret\n".to_vec()).unwrap();
        assert_eq!(k, key(b"secret"));
        let k = AuthKey::from_file_contents(b"secret\r\n".to_vec()).unwrap();
        assert_eq!(k, key(b"secret"));
        let k = AuthKey::from_file_contents(b"secret\n\n".to_vec()).unwrap();
        assert_eq!(k, key(b"secret\n"));
        assert_eq!(
            AuthKey::from_file_contents(b"\n".to_vec()),
            Err(AuthError::EmptyKey)
        );
        assert_eq!(AuthKey::new(Vec::new()), Err(AuthError::EmptyKey));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = key(b"hunter2-very-secret");
        let shown = format!(
            "{k:?} {:?}",
            Handshake::listener(&k, AuthPolicy::default()).unwrap()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        // Not even as the bytes' decimal values.
        assert!(!shown.contains("104, 117, 110"), "{shown}");
    }

    #[test]
    fn same_key_succeeds_both_ways() {
        let k = key(b"secret");
        let mut s = Handshake::listener(&k, AuthPolicy::default()).unwrap();
        let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        let (rs, rc) = run(&mut s, &mut c);
        assert_eq!((rs, rc), (Ok(()), Ok(())));
        assert!(s.is_done() && c.is_done());
        assert!(!s.used_legacy_md5() && !c.used_legacy_md5());
    }

    #[test]
    fn different_keys_fail_with_a_failure_message() {
        let mut s = Handshake::listener(&key(b"secret"), AuthPolicy::default()).unwrap();
        let mut c = Handshake::dialer(&key(b"other"), AuthPolicy::default()).unwrap();
        let challenge = s.take_output();
        c.feed(&challenge).unwrap();
        let answer = c.take_output();
        assert_eq!(s.feed(&answer), Err(AuthError::WrongAnswer));
        let verdict = s.take_output();
        assert_eq!(unframe(&verdict), vec![FAILURE.to_vec()]);
        assert_eq!(c.feed(&verdict), Err(AuthError::Rejected));
        assert!(s.has_failed() && c.has_failed());
        assert_eq!(s.feed(b"more"), Err(AuthError::Over));
    }

    #[test]
    fn the_dialer_checks_the_listener_too() {
        // A listener that answers with the wrong key is caught by the dialer.
        let mut s = Handshake::listener(&key(b"k"), AuthPolicy::default()).unwrap();
        let mut c = Handshake::dialer(&key(b"k"), AuthPolicy::default()).unwrap();
        let mut wrong = Handshake::listener(&key(b"not k"), AuthPolicy::default()).unwrap();
        c.feed(&s.take_output()).unwrap();
        s.feed(&c.take_output()).unwrap();
        // Welcome, then the dialer's challenge, answered by the wrong key.
        let welcome = s.take_output();
        c.feed(&welcome).unwrap();
        let theirs = c.take_output();
        let msgs = unframe(&theirs);
        let challenge = msgs[0].strip_prefix(CHALLENGE).unwrap();
        let bad = [
            SHA256_PREFIX,
            &wrong.key.mac_sha256(challenge).finalize().into_bytes()[..],
        ]
        .concat();
        let _ = wrong.take_output();
        assert_eq!(c.feed(&frame(&bad)), Err(AuthError::WrongAnswer));
        assert_eq!(unframe(&c.take_output()), vec![FAILURE.to_vec()]);
    }

    #[test]
    fn challenges_are_fresh() {
        let k = key(b"secret");
        let a = Handshake::listener(&k, AuthPolicy::default())
            .unwrap()
            .take_output();
        let b = Handshake::listener(&k, AuthPolicy::default())
            .unwrap()
            .take_output();
        assert_eq!(
            a.len(),
            4 + CHALLENGE.len() + SHA256_PREFIX.len() + NONCE_LEN
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_replayed_answer_fails() {
        let k = key(b"secret");
        let mut first = Handshake::listener(&k, AuthPolicy::default()).unwrap();
        let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        c.feed(&first.take_output()).unwrap();
        let recorded = c.take_output();
        first.feed(&recorded).unwrap();
        // The same answer, to a new listener (new challenge), is wrong.
        let mut second = Handshake::listener(&k, AuthPolicy::default()).unwrap();
        let _ = second.take_output();
        assert_eq!(second.feed(&recorded), Err(AuthError::WrongAnswer));
    }

    /// Made with CPython 3.12's `multiprocessing.connection._create_response(
    /// b'secret', b'{sha256}' + bytes(range(40)))`.
    const PY312_ANSWER: &str =
        "7b7368613235367dfc57fbe650d6124b98215e7b5d197d5807ad69982d275a9735ea2d56f1fa6989";
    /// CPython 3.11's answer to the same challenge: `hmac.new(b'secret', msg, 'md5')`.
    const PY311_ANSWER: &str = "8e48d2bb349b4b72b9382999ed5b62eb";
    /// CPython 3.12's `_create_response(b'secret', bytes(range(100, 120)))`
    /// (a legacy 20-byte challenge).
    const PY_LEGACY_ANSWER: &str = "5f9f891a641f27a6cbc56977af884b59";

    #[test]
    fn our_challenge_and_python_312_answer() {
        let k = key(b"secret");
        let mut s =
            Handshake::with_nonce(Role::Listener, &k, AuthPolicy::default(), counting_nonce());
        let challenge = s.take_output();
        let mut expected = CHALLENGE.to_vec();
        expected.extend_from_slice(b"{sha256}");
        expected.extend(0u8..40);
        assert_eq!(unframe(&challenge), vec![expected]);
        s.feed(&frame(&hex(PY312_ANSWER))).unwrap();
        assert_eq!(unframe(&s.take_output())[0], WELCOME);
        assert!(!s.used_legacy_md5());
    }

    #[test]
    fn we_answer_like_python_312() {
        let k = key(b"secret");
        let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        let mut challenge = CHALLENGE.to_vec();
        challenge.extend_from_slice(b"{sha256}");
        challenge.extend(0u8..40);
        c.feed(&frame(&challenge)).unwrap();
        assert_eq!(unframe(&c.take_output()), vec![hex(PY312_ANSWER)]);
    }

    #[test]
    fn python_311_answer_needs_the_legacy_flag() {
        let k = key(b"secret");
        let mut strict =
            Handshake::with_nonce(Role::Listener, &k, AuthPolicy::default(), counting_nonce());
        let _ = strict.take_output();
        assert_eq!(
            strict.feed(&frame(&hex(PY311_ANSWER))),
            Err(AuthError::LegacyRefused)
        );
        assert_eq!(unframe(&strict.take_output()), vec![FAILURE.to_vec()]);

        let legacy = AuthPolicy {
            allow_legacy_md5: true,
        };
        let mut lenient = Handshake::with_nonce(Role::Listener, &k, legacy, counting_nonce());
        let _ = lenient.take_output();
        lenient.feed(&frame(&hex(PY311_ANSWER))).unwrap();
        assert_eq!(unframe(&lenient.take_output())[0], WELCOME);
        assert!(lenient.used_legacy_md5());
        // A wrong MD5 answer is still wrong.
        let mut other = Handshake::with_nonce(Role::Listener, &k, legacy, counting_nonce());
        let _ = other.take_output();
        let mut bad = hex(PY311_ANSWER);
        bad[0] ^= 1;
        assert_eq!(other.feed(&frame(&bad)), Err(AuthError::WrongAnswer));
    }

    #[test]
    fn we_answer_a_legacy_challenge_only_when_allowed() {
        let k = key(b"secret");
        let mut challenge = CHALLENGE.to_vec();
        challenge.extend(100u8..120);
        let mut strict = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        assert_eq!(
            strict.feed(&frame(&challenge)),
            Err(AuthError::LegacyRefused)
        );
        assert!(!strict.has_output());
        let legacy = AuthPolicy {
            allow_legacy_md5: true,
        };
        let mut lenient = Handshake::dialer(&k, legacy).unwrap();
        lenient.feed(&frame(&challenge)).unwrap();
        assert_eq!(unframe(&lenient.take_output()), vec![hex(PY_LEGACY_ANSWER)]);
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        let k = key(b"secret");
        let cases: Vec<Vec<u8>> = vec![
            frame(b""),
            frame(b"{"),
            frame(b"{}"),
            frame(b"{sha256}"),
            frame(b"{sha512}0123456789012345678901234567890123456789"),
            frame(b"{aaaaaaaaaaaaaaaaaaaaaaaaaaaa}"),
            frame(&[0xff; 256]),
            (300u32).to_be_bytes().to_vec(),
            u32::MAX.to_be_bytes().to_vec(),
        ];
        for case in &cases {
            let mut s = Handshake::listener(&k, AuthPolicy::default()).unwrap();
            let _ = s.take_output();
            assert!(s.feed(case).is_err(), "listener took {case:?}");
            let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
            assert!(c.feed(case).is_err(), "dialer took {case:?}");
        }
        let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        assert!(matches!(
            c.feed(&frame(b"#CHALLENGE#{sha3_256}0123456789012345678901234567890123456789")),
            Err(AuthError::UnsupportedDigest(d)) if d == "sha3_256"
        ));
        let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        assert!(matches!(
            c.feed(&frame(b"#CHALLENGE#short")),
            Err(AuthError::Unexpected { .. })
        ));
    }

    #[test]
    fn bytes_after_the_handshake_are_left_for_the_application() {
        let k = key(b"secret");
        let mut s = Handshake::listener(&k, AuthPolicy::default()).unwrap();
        let mut c = Handshake::dialer(&k, AuthPolicy::default()).unwrap();
        c.feed(&s.take_output()).unwrap();
        s.feed(&c.take_output()).unwrap();
        c.feed(&s.take_output()).unwrap();
        let mut s_bound = c.take_output(); // welcome + the dialer's challenge
        s.feed(&s_bound).unwrap();
        let answer = s.take_output();
        c.feed(&answer).unwrap();
        assert!(c.is_done());
        s_bound = c.take_output(); // the last welcome
        let last_len = s_bound.len();
        s_bound.extend_from_slice(b"\x00\x00\x00\x04hola");
        // Fed one byte at a time up to the end, then the rest at once.
        for b in &s_bound[..last_len - 1] {
            assert_eq!(s.feed(std::slice::from_ref(b)), Ok(1));
            assert!(s.needed() > 0);
        }
        assert_eq!(s.feed(&s_bound[last_len - 1..]), Ok(1));
        assert!(s.is_done());
        assert_eq!(s.needed(), 0);
    }
}
