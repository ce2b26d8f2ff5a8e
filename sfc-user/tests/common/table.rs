//! Packet tests as a table (STYLE "Tests"): description, interface, input packet, map set-up,
//! expected verdict, expected output bytes, and the one counter each packet must bump. The
//! runner checks every column for every case, against the counters' full change, and reports
//! all mismatches at once.

use std::{collections::BTreeMap, fmt::Write as _};

use sfc_common::{
    DropReason,
    maps::{Counter, DIR_FORWARD, DIR_REVERSE, HopStatsKey, IfStats},
};

use super::{Fixture, PASS, REDIRECT, packets::with_dst_mac};

/// Map set-up applied just before a case runs (on top of the fixture's configuration and of
/// the set-ups of earlier cases).
#[derive(Clone, Copy, Debug)]
pub enum Setup {
    /// The maps as they are.
    Config,
    /// The interface is down (as the loader's health check finds it): its port pair is flagged
    /// down and left out of its group, in a new configuration generation.
    InterfaceDown(&'static str),
    /// Every flow entry forgotten (`sfc flows --flush`; or LRU eviction under a flood): paths
    /// must be recomputed, never skipped.
    ForgetFlows,
}

/// Expected output bytes, derived from the input.
#[derive(Clone, Debug)]
pub enum Out {
    /// Byte-identical to the input.
    Unchanged,
    /// The input with the Ethernet destination set to the MAC behind this interface (the next
    /// SF); every other byte identical.
    DstMacOf(&'static str),
    /// This frame (the input as the program must repair it, e.g. with its checksum completed)
    /// with the Ethernet destination set to the MAC behind the interface.
    FrameTo(&'static str, Vec<u8>),
}

/// Which counter the packet must bump (and nothing else among interface counters and drops).
#[derive(Clone, Copy, Debug)]
pub enum Count {
    Classified,
    Unclassified,
    FromSf,
    /// Back from a service function with no flow entry placing it: its path was recomputed
    /// (`from_sf` and `recomputed`).
    Recomputed,
    /// A reply at a symmetric chain's destination port with no current reverse entry: its path
    /// was computed from its forward 5-tuple (`classified` and `recomputed`).
    ReplyRecomputed,
    Malformed,
    /// The interface has no role: the program does not count the packet anywhere.
    Nothing,
    Drop(DropReason),
}

/// The member a packet is sent into: its hop counter must grow by one packet of the input's
/// length (and no other hop counter may change).
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub chain: &'static str,
    pub hop: u32,
    pub port_pair: &'static str,
    pub reverse: bool,
}

/// Forward direction, hop `hop` (0-based position of the group in the chain).
pub const fn fwd(chain: &'static str, hop: u32, port_pair: &'static str) -> Member {
    Member { chain, hop, port_pair, reverse: false }
}

/// Reverse direction of a symmetric chain; `hop` is still the group's position in the chain.
pub const fn rev(chain: &'static str, hop: u32, port_pair: &'static str) -> Member {
    Member { chain, hop, port_pair, reverse: true }
}

pub struct Case {
    pub what: &'static str,
    pub iface: &'static str,
    pub packet: Vec<u8>,
    pub setup: Setup,
    pub verdict: u32,
    pub out: Out,
    pub count: Count,
    pub hop: Option<Member>,
}

impl Case {
    /// A case on the configured maps.
    pub fn new(what: &'static str, iface: &'static str, packet: Vec<u8>, verdict: u32, out: Out, count: Count, hop: impl Into<Option<Member>>) -> Self {
        Self { what, iface, packet, setup: Setup::Config, verdict, out, count, hop: hop.into() }
    }

    /// Classified on `iface` into `chain`, sent into hop 0's SF (ingress `sf`, port pair `pp`).
    pub fn steered_on(iface: &'static str, what: &'static str, packet: Vec<u8>, chain: &'static str, sf: &'static str, pp: &'static str) -> Self {
        Self::new(what, iface, packet, REDIRECT, Out::DstMacOf(sf), Count::Classified, fwd(chain, 0, pp))
    }

    /// Left alone on a source port: no classifier matches.
    pub fn untouched(what: &'static str, iface: &'static str, packet: Vec<u8>) -> Self {
        Self::new(what, iface, packet, PASS, Out::Unchanged, Count::Unclassified, None)
    }

    pub fn with_setup(mut self, setup: Setup) -> Self {
        self.setup = setup;
        self
    }
}

fn expected_bytes(fx: &Fixture, c: &Case) -> Vec<u8> {
    match &c.out {
        Out::Unchanged => c.packet.clone(),
        Out::DstMacOf(sf) => with_dst_mac(&c.packet, fx.mac_behind(sf)),
        Out::FrameTo(sf, frame) => with_dst_mac(frame, fx.mac_behind(sf)),
    }
}

fn expected_if_delta(fx: &Fixture, c: &Case) -> BTreeMap<u32, IfStats> {
    let mut s = IfStats::default();
    match c.count {
        Count::Classified => s.classified = 1,
        Count::Unclassified => s.unclassified = 1,
        Count::FromSf => s.from_sf = 1,
        Count::Recomputed => {
            s.from_sf = 1;
            s.recomputed = 1;
        }
        Count::ReplyRecomputed => {
            s.classified = 1;
            s.recomputed = 1;
        }
        Count::Malformed => s.malformed = 1,
        Count::Nothing | Count::Drop(_) => return BTreeMap::new(),
    }
    BTreeMap::from([(fx.ifindex(c.iface), s)])
}

fn hop_key(fx: &Fixture, h: Member) -> HopStatsKey {
    HopStatsKey {
        chain_id: fx.chain_id(h.chain),
        hop: h.hop,
        port_pair: fx.port_pair_id(h.port_pair),
        dir: if h.reverse { DIR_REVERSE } else { DIR_FORWARD },
    }
}

/// Runs `cases` in order; returns one line per mismatch.
pub fn run_table(fx: &mut Fixture, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        match c.setup {
            Setup::InterfaceDown(ifname) => fx.set_interface_down(ifname),
            Setup::ForgetFlows => fx.forget_flows(),
            Setup::Config => {}
        }
        let before = fx.counters();
        let got = match fx.try_run(c.iface, &c.packet) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("#{i} {}: the run failed: {e:?}", c.what));
                continue;
            }
        };
        let d = fx.counters().since(&before);
        let mut bad = String::new();
        if got.verdict != c.verdict {
            let _ = write!(bad, " verdict {} (want {});", got.verdict, c.verdict);
        }
        let want = expected_bytes(fx, c);
        if got.data != want {
            let _ = write!(bad, " output differs: got {:02x?}, want {:02x?};", got.data, want);
        }
        let want_ifs = expected_if_delta(fx, c);
        if d.ifs != want_ifs {
            let _ = write!(bad, " interface counters changed by {:?} (want {want_ifs:?});", d.ifs);
        }
        let want_hops: BTreeMap<_, _> = c
            .hop
            .map(|h| (hop_key(fx, h), Counter { packets: 1, bytes: c.packet.len() as u64 }))
            .into_iter()
            .collect();
        if d.hops != want_hops {
            let _ = write!(bad, " hop counters changed by {:?} (want {want_hops:?});", d.hops);
        }
        let want_drops: BTreeMap<_, _> = match c.count {
            Count::Drop(r) => BTreeMap::from([(r.name(), 1)]),
            _ => BTreeMap::new(),
        };
        if d.drops != want_drops {
            let _ = write!(bad, " drops changed by {:?} (want {want_drops:?});", d.drops);
        }
        if !bad.is_empty() {
            failures.push(format!("#{i} {} (on {}):{bad}", c.what, c.iface));
        }
    }
    failures
}

pub fn check_table(fx: &mut Fixture, cases: &[Case]) {
    let failures = run_table(fx, cases);
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
