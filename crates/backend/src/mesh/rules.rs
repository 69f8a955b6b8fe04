//! The mesh itself: links, peers, dialing, the tie-break and delivery, as
//! state plus event to effects.

use std::collections::{BTreeMap, BTreeSet};

use super::checks::{printable, quote, REASON_CHARS};
use super::window::{Seen, Window};
use super::{
    valid_addr, valid_peer_name, LinkId, Out, PeerInfo, Stats, Wire, DUPLICATE_LINK, MAX_AHEAD,
    MAX_DIALING, MAX_GOSSIP, MAX_KNOWN, MAX_ORIGINS, MAX_REACHED, MAX_TEXT, MAX_WAITING,
    PROTOCOL_VERSION, WINDOW,
};

/// `reached` plus `more`, without repeats, at most [`MAX_REACHED`] names.
fn extend_reached(reached: &[String], more: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all: Vec<String> = reached.iter().take(MAX_REACHED).cloned().collect();
    for name in more {
        if all.len() >= MAX_REACHED {
            break;
        }
        if !all.contains(&name) {
            all.push(name);
        }
    }
    all
}

#[derive(Debug)]
pub(super) struct Link {
    dialed: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the peer's Hello.
    Pending,
    /// The peer said Hello.
    Up(Up),
}

#[derive(Debug)]
struct Up {
    name: String,
    /// We sent a duplicate-link refusal: nothing more is sent on the link.
    we_retired: bool,
    /// The peer sent one.
    they_retired: bool,
}

impl Link {
    /// Said Hello and not retired by us: lines may be sent on it.
    fn live(&self) -> bool {
        matches!(&self.state, State::Up(up) if !up.we_retired)
    }

    fn up(&self) -> Option<&Up> {
        match &self.state {
            State::Up(up) => Some(up),
            State::Pending => None,
        }
    }
}

#[derive(Debug)]
struct Peer {
    listen: Option<String>,
    /// Its links that said Hello, oldest Hello first.
    links: Vec<LinkId>,
    /// The session its Hello carried (0: none).
    session: u64,
    /// The highest number it could have used: its Hello's `next` less one,
    /// or the highest of the lines it sent us itself.
    heard: u64,
    /// Numbers of its lines above `heard` that came through other peers:
    /// if the peer itself then sends a line with one of them, that one is
    /// its own and is delivered too.
    unconfirmed: BTreeSet<u64>,
}

/// One origin's numbers, and when it was last heard (the mesh's own count
/// of lines received: no clock).
#[derive(Debug, Default)]
pub(super) struct Origin {
    window: Window,
    heard_at: u64,
}

/// The state of one peer of the mesh: its links, the peers behind them, the
/// addresses it is dialing and the lines it has delivered. See the
/// [module docs](super) for the rules.
#[derive(Debug)]
pub struct Mesh {
    name: String,
    listen: Option<String>,
    next_seq: u64,
    pub(super) links: BTreeMap<LinkId, Link>,
    peers: BTreeMap<String, Peer>,
    pub(super) dialing: BTreeSet<String>,
    /// Learned addresses waiting for a dial slot, oldest first.
    pub(super) waiting: std::collections::VecDeque<String>,
    refused: BTreeSet<String>,
    pub(super) origins: BTreeMap<String, Origin>,
    /// Lines received so far: the "clock" of [`Origin::heard_at`].
    ticks: u64,
    stats: Stats,
    session: u64,
}

impl Mesh {
    /// A peer called `name` (which should pass [`valid_peer_name`]: peers
    /// refuse one that does not) that accepts links at `listen`, if any. Its
    /// first line is number 1.
    pub fn new(name: impl Into<String>, listen: Option<String>) -> Mesh {
        Mesh {
            name: name.into(),
            listen,
            next_seq: 1,
            links: BTreeMap::new(),
            peers: BTreeMap::new(),
            dialing: BTreeSet::new(),
            waiting: std::collections::VecDeque::new(),
            refused: BTreeSet::new(),
            origins: BTreeMap::new(),
            ticks: 0,
            stats: Stats::default(),
            session: 0,
        }
    }

    /// Say `session` in every Hello: a number that differs each time the
    /// program starts (the clock, the process id), so that peers recognise
    /// a restart of this name and drop their links to the earlier run at
    /// once instead of sending into them. 0 (the default) says none.
    pub fn with_session(mut self, session: u64) -> Mesh {
        self.session = session;
        self
    }

    /// Number this peer's first line `seq` (at least 1) instead of 1, so that
    /// a restarted peer does not reuse numbers (see the [module docs](super)).
    pub fn with_first_seq(mut self, seq: u64) -> Mesh {
        self.next_seq = seq.max(1);
        self
    }

    /// This peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address this peer accepts links on.
    pub fn listen(&self) -> Option<&str> {
        self.listen.as_deref()
    }

    /// A new link: `dialed` when this peer dialed it, false when it accepted
    /// it. Returns the Hello to send. An id already in use is ignored.
    pub fn on_link_up(&mut self, link: LinkId, dialed: bool) -> Vec<Out> {
        if self.links.contains_key(&link) {
            return Vec::new();
        }
        self.links.insert(
            link,
            Link {
                dialed,
                state: State::Pending,
            },
        );
        vec![Out::Send {
            link,
            wire: self.hello(),
        }]
    }

    /// A frame's payload arrived on `link`. Frames on links the mesh does not
    /// know (closed, refused) are ignored.
    pub fn on_frame(&mut self, link: LinkId, bytes: &[u8]) -> Vec<Out> {
        let mut out = Vec::new();
        if !self.links.contains_key(&link) {
            return out;
        }
        match Wire::decode(bytes) {
            Ok(wire) => self.on_wire(link, wire, &mut out),
            Err(e) => self.refuse(link, None, e.to_string(), &mut out),
        }
        out
    }

    /// Originate a line: number it and send it on a link to every linked
    /// peer. A line longer than [`MAX_TEXT`] bytes is not sent; a notice
    /// says why.
    pub fn say(&mut self, text: &str) -> Vec<Out> {
        if text.len() > MAX_TEXT {
            return vec![Out::Notice(format!(
                "not sent: a line has at most {MAX_TEXT} bytes, this one has {}",
                text.len()
            ))];
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        self.stats.said += 1;
        let links = self.active_links();
        let reached = extend_reached(
            std::slice::from_ref(&self.name),
            links.iter().map(|(name, _)| name.clone()),
        );
        let wire = Wire::Msg {
            origin: self.name.clone(),
            seq,
            text: text.to_string(),
            reached,
        };
        links
            .into_iter()
            .map(|(_, link)| Out::Send {
                link,
                wire: wire.clone(),
            })
            .collect()
    }

    /// `link` is gone (closed by either side, or failed) for `reason`. When
    /// it was a peer's last link: "NAME left (reason)", and a [`Out::Dial`]
    /// of its listen address if it has one.
    pub fn on_link_down(&mut self, link: LinkId, reason: &str) -> Vec<Out> {
        let mut out = Vec::new();
        self.forget(link, Some(reason), &mut out);
        out
    }

    /// The dial of `addr` ended without a Hello from a peer listening
    /// there (it failed, or its link went down first): the mesh forgets the
    /// address (it may ask for it again when it learns it anew) and may ask
    /// to dial a waiting one in its place.
    pub fn dial_failed(&mut self, addr: &str) -> Vec<Out> {
        let mut out = Vec::new();
        if self.dialing.remove(addr) {
            self.dial_waiting(&mut out);
        }
        out
    }

    /// True if a link with the peer at `addr` was refused, by either side:
    /// the mesh does not ask to dial it again, and the app should not redial
    /// it by itself either, until a peer with that listen address says Hello.
    pub fn refused(&self, addr: &str) -> bool {
        self.refused.contains(addr)
    }

    /// The linked peers, by name.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .filter_map(|(name, peer)| {
                Some(PeerInfo {
                    name: name.clone(),
                    listen: peer.listen.clone(),
                    link: self.active(peer)?,
                })
            })
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // --- links and peers ---------------------------------------------------

    fn hello(&self) -> Wire {
        Wire::Hello {
            version: PROTOCOL_VERSION,
            name: self.name.clone(),
            listen: self.listen.clone(),
            peers: self.known_addrs(),
            session: self.session,
            next: self.next_seq,
        }
    }

    /// Listen addresses of linked peers and addresses being dialed.
    fn known_addrs(&self) -> Vec<String> {
        let linked = self.peers.values().filter_map(|p| p.listen.as_ref());
        linked
            .chain(&self.dialing)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(MAX_GOSSIP)
            .cloned()
            .collect()
    }

    /// The link lines to `peer` go on: one it has not retired if any, the
    /// oldest first.
    fn active(&self, peer: &Peer) -> Option<LinkId> {
        peer.links
            .iter()
            .filter_map(|id| {
                let link = self.links.get(id).filter(|l| l.live())?;
                Some((link.up()?.they_retired, *id))
            })
            .min_by_key(|(they_retired, _)| *they_retired)
            .map(|(_, id)| id)
    }

    /// One link per linked peer: `(name, link)`.
    fn active_links(&self) -> Vec<(String, LinkId)> {
        self.peers
            .iter()
            .filter_map(|(name, peer)| Some((name.clone(), self.active(peer)?)))
            .collect()
    }

    fn linked(&self, addr: &str) -> bool {
        self.peers
            .values()
            .any(|p| p.listen.as_deref() == Some(addr))
    }

    fn may_dial(&self, addr: &str) -> bool {
        valid_addr(addr).is_ok()
            && self.listen.as_deref() != Some(addr)
            && !self.dialing.contains(addr)
            && !self.refused.contains(addr)
            && !self.linked(addr)
    }

    /// Dial `addr` if a slot is free, or keep it waiting for one; true if
    /// it was news. At most [`MAX_DIALING`] dials at once and
    /// [`MAX_WAITING`] addresses waiting: past that, it is forgotten.
    fn want_dial(&mut self, addr: &str, out: &mut Vec<Out>) -> bool {
        if !self.may_dial(addr) || self.waiting.iter().any(|a| a == addr) {
            return false;
        }
        if self.dialing.len() < MAX_DIALING {
            self.dialing.insert(addr.to_string());
            out.push(Out::Dial { addr: addr.into() });
        } else if self.waiting.len() < MAX_WAITING {
            self.waiting.push_back(addr.to_string());
        } else {
            self.stats.addrs_dropped += 1;
            if self.stats.addrs_dropped.is_power_of_two() {
                out.push(Out::Warn(format!(
                    "address {} forgotten: {MAX_DIALING} being dialed and {MAX_WAITING} waiting ({} forgotten so far)",
                    quote(addr),
                    self.stats.addrs_dropped
                )));
            }
            return false;
        }
        true
    }

    /// Fill free dial slots from the waiting addresses.
    fn dial_waiting(&mut self, out: &mut Vec<Out>) {
        while self.dialing.len() < MAX_DIALING {
            let Some(addr) = self.waiting.pop_front() else {
                return;
            };
            if self.may_dial(&addr) {
                self.dialing.insert(addr.clone());
                out.push(Out::Dial { addr });
            }
        }
    }

    /// Never dial `addr` again by ourselves.
    fn refuse_addr(&mut self, addr: Option<&str>) {
        let Some(addr) = addr else { return };
        self.dialing.remove(addr);
        if valid_addr(addr).is_ok()
            && self.listen.as_deref() != Some(addr)
            && self.refused.len() < MAX_KNOWN
        {
            self.refused.insert(addr.to_string());
        }
    }

    /// Refuse `link`: notice, Refuse, Close, forget. `who` names the peer
    /// when it is known.
    fn refuse(&mut self, link: LinkId, who: Option<String>, reason: String, out: &mut Vec<Out>) {
        let who = who
            .or_else(|| Some(self.links.get(&link)?.up()?.name.clone()))
            .unwrap_or_else(|| link.to_string());
        out.push(Out::Notice(format!("refused {who}: {reason}")));
        out.push(Out::Send {
            link,
            wire: Wire::Refuse {
                reason: reason.clone(),
            },
        });
        out.push(Out::Close { link, reason });
        self.forget(link, None, out);
    }

    /// Drop `link` from the state. When it was its peer's last live link the
    /// peer is gone: links waiting to be retired are closed and, if the link
    /// went down (`departure`), "NAME left" and a redial.
    fn forget(&mut self, link: LinkId, departure: Option<&str>, out: &mut Vec<Out>) {
        let Some(gone) = self.links.remove(&link) else {
            return;
        };
        let State::Up(up) = gone.state else { return };
        let name = up.name;
        let Some(peer) = self.peers.get_mut(&name) else {
            return;
        };
        peer.links.retain(|l| *l != link);
        let links = &self.links;
        if peer
            .links
            .iter()
            .any(|l| links.get(l).is_some_and(Link::live))
        {
            self.settle(&name, out);
            return;
        }
        let rest = std::mem::take(&mut peer.links);
        let listen = peer.listen.clone();
        self.peers.remove(&name);
        for l in rest {
            self.links.remove(&l);
            out.push(Out::Close {
                link: l,
                reason: format!("{DUPLICATE_LINK} to {name}, whose other link is gone"),
            });
        }
        if let Some(reason) = departure {
            out.push(Out::Notice(format!("{name} left ({reason})")));
            if let Some(addr) = listen {
                self.want_dial(&addr, out);
            }
        }
    }

    fn on_wire(&mut self, link: LinkId, wire: Wire, out: &mut Vec<Out>) {
        let Some(state) = self.links.get(&link) else {
            return;
        };
        let name = state.up().map(|up| up.name.clone());
        match (name, wire) {
            (
                None,
                Wire::Hello {
                    version,
                    name,
                    listen,
                    peers,
                    session,
                    next,
                },
            ) => self.on_hello(link, version, (name, session, next), listen, &peers, out),
            (None, Wire::Refuse { reason }) => {
                out.push(Out::Notice(format!(
                    "{link} refused: {}",
                    printable(&reason, REASON_CHARS)
                )));
                out.push(Out::Close {
                    link,
                    reason: format!("refused before its Hello: {reason}"),
                });
                self.forget(link, None, out);
            }
            (None, other) => self.refuse(
                link,
                None,
                format!("expected Hello first, got {}", other.kind()),
                out,
            ),
            (Some(name), Wire::Hello { .. }) => {
                self.refuse(link, Some(name), "a second Hello on one link".into(), out)
            }
            (Some(name), Wire::Refuse { reason }) => self.on_refused(link, name, reason, out),
            (
                Some(name),
                Wire::Msg {
                    origin,
                    seq,
                    text,
                    reached,
                },
            ) => self.on_msg(link, name, origin, seq, text, &reached, out),
            (Some(name), Wire::Peers { peers }) => {
                if self.learn(&peers, out) {
                    self.gossip(&name, out);
                }
            }
        }
    }

    fn on_hello(
        &mut self,
        link: LinkId,
        version: u32,
        (name, session, next): (String, u64, u64),
        listen: Option<String>,
        peers: &[String],
        out: &mut Vec<Out>,
    ) {
        let named = valid_peer_name(&name).is_ok().then(|| name.clone());
        if version != PROTOCOL_VERSION {
            self.refuse_addr(listen.as_deref());
            let reason = format!(
                "peer speaks protocol version {version}; this peer speaks version {PROTOCOL_VERSION}"
            );
            return self.refuse(link, named, reason, out);
        }
        if let Err(e) = valid_peer_name(&name) {
            let reason = format!("peer name {} is not valid: {e}", quote(&name));
            return self.refuse(link, None, reason, out);
        }
        if name == self.name {
            self.refuse_addr(listen.as_deref());
            let reason = format!("peer name {}: that is our own name", quote(&name));
            return self.refuse(link, named, reason, out);
        }
        if let Some(addr) = &listen {
            if let Err(e) = valid_addr(addr) {
                let reason = format!("listen address {} is not valid: {e}", quote(addr));
                return self.refuse(link, named, reason, out);
            }
        }
        // A peer that claims our address is not reachable there.
        let listen = listen.filter(|a| self.listen.as_ref() != Some(a));
        if let Some(peer) = self.peers.get(&name) {
            if let (Some(old), Some(new)) = (&peer.listen, &listen) {
                if old != new {
                    let reason = format!(
                        "the name {} is already used by the peer at {old}",
                        quote(&name)
                    );
                    self.refuse_addr(Some(new));
                    return self.refuse(link, named, reason, out);
                }
            }
        }

        if let Some(peer) = self.peers.get(&name) {
            // A linked name from another session: the peer restarted, or
            // someone else claims its name. Nothing proves which, so the
            // link it has stays; the link's other end is asked something
            // (gossip): if it is gone, that fails, "NAME left" follows and
            // the mesh dials NAME's address, where a restarted NAME answers.
            if peer.session != 0 && peer.session != session {
                let reason = format!(
                    "the name {} is linked here already, from another session; \
                     a restarted peer is let in once its old link is gone",
                    quote(&name)
                );
                if let Some(old) = self.active(peer) {
                    out.push(Out::Send {
                        link: old,
                        wire: Wire::Peers {
                            peers: self.known_addrs(),
                        },
                    });
                }
                return self.refuse(link, named, reason, out);
            }
        }

        let mut news = false;
        if let Some(addr) = &listen {
            let was_dialing = self.dialing.remove(addr);
            let known = was_dialing || self.linked(addr);
            self.refused.remove(addr);
            news = !known;
            if was_dialing {
                self.dial_waiting(out);
            }
        }
        // It has used no number from `next` on: anything above that was
        // said in its name by someone else.
        let heard = next.saturating_sub(1);
        if next != 0 {
            if let Some(origin) = self.origins.get_mut(&name) {
                let forgotten = origin.window.clamp(next);
                self.stats.rewound = self.stats.rewound.saturating_add(forgotten);
            }
        }
        if let Some(state) = self.links.get_mut(&link) {
            state.state = State::Up(Up {
                name: name.clone(),
                we_retired: false,
                they_retired: false,
            });
        }
        let duplicate = match self.peers.get_mut(&name) {
            Some(peer) => {
                peer.links.push(link);
                if peer.listen.is_none() {
                    peer.listen = listen;
                }
                if peer.session == 0 {
                    peer.session = session;
                }
                peer.heard = peer.heard.max(heard);
                true
            }
            None => {
                self.peers.insert(
                    name.clone(),
                    Peer {
                        listen,
                        links: vec![link],
                        session,
                        heard,
                        unconfirmed: BTreeSet::new(),
                    },
                );
                out.push(Out::Notice(format!("{name} joined")));
                false
            }
        };
        news |= self.learn(peers, out);
        if duplicate {
            self.settle(&name, out);
        }
        if news {
            self.gossip(&name, out);
        }
    }

    /// Ask to dial the new addresses in `addrs` (or keep them waiting);
    /// true if there was one.
    fn learn(&mut self, addrs: &[String], out: &mut Vec<Out>) -> bool {
        let mut news = false;
        for addr in addrs.iter().take(MAX_GOSSIP) {
            news |= self.want_dial(addr, out);
        }
        news
    }

    /// Tell every linked peer but `except` the addresses we know.
    fn gossip(&mut self, except: &str, out: &mut Vec<Out>) {
        let peers = self.known_addrs();
        if peers.is_empty() {
            return;
        }
        for (name, link) in self.active_links() {
            if name != except {
                out.push(Out::Send {
                    link,
                    wire: Wire::Peers {
                        peers: peers.clone(),
                    },
                });
            }
        }
    }

    /// The tie-break: when `name` has more than one live link, retire the
    /// ones both sides agree to drop (see the [module docs](super)).
    fn settle(&mut self, name: &str, out: &mut Vec<Out>) {
        let Some(peer) = self.peers.get(name) else {
            return;
        };
        // (link, dialed by us, retired by the peer), oldest Hello first.
        let live: Vec<(LinkId, bool, bool)> = peer
            .links
            .iter()
            .filter_map(|id| {
                let link = self.links.get(id).filter(|l| l.live())?;
                Some((*id, link.dialed, link.up()?.they_retired))
            })
            .collect();
        if live.len() < 2 {
            return;
        }
        // Links dialed by the peer whose name sorts first win.
        let preferred = self.name.as_str() < name;
        let keep_dialed = if live.iter().any(|&(_, dialed, _)| dialed == preferred) {
            preferred
        } else {
            !preferred
        };
        let mut retire: Vec<LinkId> = live
            .iter()
            .filter(|&&(_, dialed, _)| dialed != keep_dialed)
            .map(|&(id, _, _)| id)
            .collect();
        let same: Vec<(LinkId, bool)> = live
            .iter()
            .filter(|&&(_, dialed, _)| dialed == keep_dialed)
            .map(|&(id, _, they)| (id, they))
            .collect();
        if keep_dialed {
            // We dialed them all: we choose, the oldest the peer has not retired.
            let keep = same.iter().min_by_key(|(_, they)| *they).map(|(id, _)| *id);
            retire.extend(
                same.iter()
                    .map(|(id, _)| *id)
                    .filter(|id| Some(*id) != keep),
            );
        } else if same.iter().any(|(_, they)| !they) {
            // The peer dialed them and chooses: follow its refusals.
            retire.extend(same.iter().filter(|(_, they)| *they).map(|(id, _)| *id));
        }
        for id in retire {
            self.retire(id, name, out);
        }
    }

    /// Send the duplicate-link refusal on `link`; close it if the peer sent
    /// its own already.
    fn retire(&mut self, link: LinkId, name: &str, out: &mut Vec<Out>) {
        let Some(State::Up(up)) = self.links.get_mut(&link).map(|l| &mut l.state) else {
            return;
        };
        if up.we_retired {
            return;
        }
        up.we_retired = true;
        let they_retired = up.they_retired;
        out.push(Out::Send {
            link,
            wire: Wire::Refuse {
                reason: format!(
                    "{DUPLICATE_LINK}: {} keeps another link to {name}",
                    self.name
                ),
            },
        });
        if they_retired {
            self.close_retired(link, out);
        }
    }

    fn close_retired(&mut self, link: LinkId, out: &mut Vec<Out>) {
        out.push(Out::Close {
            link,
            reason: format!("{DUPLICATE_LINK}, retired by both sides"),
        });
        self.forget(link, None, out);
    }

    /// A Refuse on a link that said Hello.
    fn on_refused(&mut self, link: LinkId, name: String, reason: String, out: &mut Vec<Out>) {
        if reason.starts_with(DUPLICATE_LINK) {
            let Some(State::Up(up)) = self.links.get_mut(&link).map(|l| &mut l.state) else {
                return;
            };
            up.they_retired = true;
            if up.we_retired {
                self.close_retired(link, out);
            } else {
                self.settle(&name, out);
            }
            return;
        }
        out.push(Out::Notice(format!(
            "{name} refused the link: {}",
            printable(&reason, REASON_CHARS)
        )));
        let listen = self.peers.get(&name).and_then(|p| p.listen.clone());
        self.refuse_addr(listen.as_deref());
        out.push(Out::Close {
            link,
            reason: format!("refused by {name}: {reason}"),
        });
        self.forget(link, None, out);
    }

    /// Check `seq` against `origin`'s numbers, making room for a new origin
    /// by forgetting the one heard least recently, linked peers last.
    fn accept(&mut self, origin: &str, seq: u64, out: &mut Vec<Out>) -> Seen {
        self.ticks += 1;
        if !self.origins.contains_key(origin) && self.origins.len() >= MAX_ORIGINS {
            let peers = &self.peers;
            let oldest = self
                .origins
                .iter()
                .min_by_key(|(name, o)| (peers.contains_key(*name), o.heard_at))
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                self.origins.remove(&name);
                self.stats.evicted += 1;
                if self.stats.evicted.is_power_of_two() {
                    out.push(Out::Warn(format!(
                        "forgot the numbers of origin {} to make room for {} ({MAX_ORIGINS} remembered, {} forgotten so far)",
                        quote(&name),
                        quote(origin),
                        self.stats.evicted
                    )));
                }
            }
        }
        // A linked origin's numbers start near what it announced: a line
        // passed on ahead of it must not close the numbers below.
        let base = self
            .peers
            .get(origin)
            .map_or(0, |p| p.heard.saturating_sub(WINDOW / 2));
        let entry = self
            .origins
            .entry(origin.to_string())
            .or_insert_with(|| Origin {
                window: Window {
                    mark: base,
                    above: BTreeSet::new(),
                },
                heard_at: 0,
            });
        entry.heard_at = self.ticks;
        entry.window.accept(seq)
    }

    /// A line arrived on `link`, from the peer `from`.
    #[allow(clippy::too_many_arguments)]
    fn on_msg(
        &mut self,
        link: LinkId,
        from: String,
        origin: String,
        seq: u64,
        text: String,
        reached: &[String],
        out: &mut Vec<Out>,
    ) {
        let problem = if let Err(e) = valid_peer_name(&origin) {
            Some(format!("Msg origin {} is not valid: {e}", quote(&origin)))
        } else if seq == 0 {
            Some(format!("Msg from {origin} numbered 0; numbers start at 1"))
        } else if text.len() > MAX_TEXT {
            Some(format!(
                "Msg of {} bytes exceeds the limit of {MAX_TEXT}",
                text.len()
            ))
        } else {
            None
        };
        if let Some(reason) = problem {
            return self.refuse(link, Some(from), reason, out);
        }
        if origin == self.name {
            self.stats.duplicates += 1;
            return;
        }
        let first_hand = origin == from;
        // A line of a linked peer that another peer passes on: it may not
        // run past what that peer could have sent.
        if !first_hand {
            if let Some(peer) = self.peers.get(&origin) {
                let ahead = seq.saturating_sub(peer.heard);
                let problem = if ahead > MAX_AHEAD {
                    Some(format!(
                        "{ahead} past the highest it could have used ({}), limit {MAX_AHEAD}",
                        peer.heard
                    ))
                } else if ahead > 0 && peer.unconfirmed.len() as u64 >= MAX_AHEAD {
                    Some(format!(
                        "{MAX_AHEAD} of its lines already came through others ahead of it"
                    ))
                } else if ahead > 0 && reached.len() >= MAX_REACHED {
                    Some(format!(
                        "ahead of it, with a full list of {MAX_REACHED} peers reached"
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    self.stats.forged += 1;
                    if self.stats.forged.is_power_of_two() {
                        out.push(Out::Warn(format!(
                            "dropped a line of {origin} numbered {seq} passed on by {from}: {problem} ({} such lines so far)",
                            self.stats.forged
                        )));
                    }
                    return;
                }
            }
        }
        let seen = self.accept(&origin, seq, out);
        let seen = match (first_hand, seen, self.peers.get_mut(&origin)) {
            (true, seen, Some(peer)) => {
                peer.heard = peer.heard.max(seq);
                let floor = peer.heard.saturating_sub(MAX_AHEAD);
                let own = peer.unconfirmed.remove(&seq);
                peer.unconfirmed.retain(|&n| n > floor);
                if seen == Seen::Old && own {
                    // The copy that came first through another peer was not
                    // this one: it never sends a number twice, and a peer
                    // that forwards skips those the sayer reached itself.
                    self.stats.overridden += 1;
                    Seen::New
                } else {
                    seen
                }
            }
            (false, seen @ (Seen::New | Seen::Gap), Some(peer)) => {
                if seq > peer.heard {
                    peer.unconfirmed.insert(seq);
                }
                seen
            }
            (_, seen, _) => seen,
        };
        match seen {
            Seen::Old => {
                self.stats.duplicates += 1;
                return;
            }
            Seen::Gap => self.stats.gaps += 1,
            Seen::New => {}
        }
        self.stats.delivered += 1;
        out.push(Out::Deliver {
            from: origin.clone(),
            text: text.clone(),
        });
        // Forward to the peers this line has not been sent to yet.
        let targets: Vec<(String, LinkId)> = self
            .active_links()
            .into_iter()
            .filter(|(name, _)| *name != from && *name != origin && !reached.contains(name))
            .collect();
        if targets.is_empty() {
            return;
        }
        let wire = Wire::Msg {
            origin,
            seq,
            text,
            reached: extend_reached(
                reached,
                std::iter::once(self.name.clone()).chain(targets.iter().map(|(n, _)| n.clone())),
            ),
        };
        for (_, to) in targets {
            out.push(Out::Send {
                link: to,
                wire: wire.clone(),
            });
            self.stats.forwarded += 1;
        }
    }
}
