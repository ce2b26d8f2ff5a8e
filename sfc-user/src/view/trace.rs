//! Trace events decoded with the applied chain file's names, and put together into one path per
//! packet (`sfc trace`). Pure: events in, lines out; tested without a kernel.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;
use sfc_common::{
    DropReason,
    maps::{DIR_REVERSE, FlowKey},
    trace::{TV_DELIVER, TV_DROP, TV_HOST, TV_MEMBER, TV_TAP, TraceEvent},
};

use super::inspect::{Namer, addr, family_name};
use crate::{
    datapath::traceflow::{ProbeEnd, ProbeReport},
    model::AttachMode,
};

/// One hop decision, with names.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Monotonic clock (since boot), nanoseconds.
    pub ts_ns: u64,
    /// The interface the packet arrived on.
    pub at: String,
    /// `member` (sent into a service function), `delivered` (to the logical destination
    /// port), `host` (the chain is done, handed back to the host), `dropped`.
    pub verdict: &'static str,
    /// With `dropped`: why (a `sfc stats` drop reason).
    pub reason: Option<&'static str>,
    pub chain: String,
    pub chain_id: u32,
    /// Service index: 255 at entry, one less per service function passed.
    pub si: Option<u8>,
    /// With `member`: the hop (0-based position of its group in the chain), group, member.
    pub hop: Option<u32>,
    pub group: Option<String>,
    pub member: Option<String>,
    /// An SFC-aware member's header (`nsh`, `mpls`): the packet went in with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encap: Option<&'static str>,
    /// `forward`, or `reverse` (replies of a symmetric chain).
    pub direction: &'static str,
    /// Where it was sent (the member's ingress, the destination port).
    pub to: Option<String>,
    pub len: u32,
    pub flow: Flow,
}

/// A flow's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Flow {
    pub family: &'static str,
    pub protocol: String,
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let both = |a: &str, p: u16| if self.family == "ipv6" { format!("[{a}]:{p}") } else { format!("{a}:{p}") };
        write!(f, "{} {} > {}", self.protocol, both(&self.src, self.sport), both(&self.dst, self.dport))
    }
}

fn flow_of(k: &FlowKey) -> Flow {
    Flow {
        family: family_name(k.family),
        protocol: crate::model::protocol_name(k.proto),
        src: addr(k.family, &k.src),
        dst: addr(k.family, &k.dst),
        sport: u16::from_be_bytes(k.sport),
        dport: u16::from_be_bytes(k.dport),
    }
}

/// `e` with names.
pub fn name(n: &Namer<'_>, e: &TraceEvent) -> Event {
    let member = e.verdict == TV_MEMBER || e.verdict == TV_TAP;
    let n_hops = n.state.model.chain_by_id(e.chain_id).map(|c| c.port_pair_groups.len());
    let si = match e.verdict {
        TV_MEMBER => Some(e.si),
        TV_DELIVER | TV_HOST => n_hops.and_then(|h| u8::try_from(255 - h.min(255)).ok()),
        _ => None,
    };
    Event {
        ts_ns: e.ts_ns,
        at: n.iface(e.ifindex),
        verdict: match e.verdict {
            TV_MEMBER => "member",
            TV_DELIVER => "delivered",
            TV_HOST => "host",
            TV_DROP => "dropped",
            TV_TAP => "tap",
            _ => "unknown",
        },
        reason: (e.verdict == TV_DROP).then(|| DropReason::ALL.iter().find(|r| **r as u32 == u32::from(e.reason)).map_or("unknown", |r| r.name())),
        chain: n.chain(e.chain_id),
        chain_id: e.chain_id,
        si,
        hop: member.then_some(e.hop),
        group: if member { usize::try_from(e.hop).ok().and_then(|h| n.chain_group(e.chain_id, h)) } else { None },
        member: member.then(|| n.port_pair(e.port_pair)),
        encap: if e.verdict == TV_MEMBER && u32::from(e.dir) != DIR_REVERSE {
            n.state.model.port_pairs.iter().find(|p| p.name == n.port_pair(e.port_pair)).and_then(|p| p.aware.correlation.header())
        } else {
            None
        },
        direction: if u32::from(e.dir) == DIR_REVERSE { "reverse" } else { "forward" },
        to: (e.target != 0).then(|| n.iface(e.target)),
        len: e.len,
        flow: flow_of(&e.key),
    }
}

/// One packet's way through a chain, from its events.
#[derive(Debug, Clone, Serialize)]
pub struct PacketPath {
    pub flow: Flow,
    pub chain: String,
    /// Where it entered, each member (with its group), and where it ended.
    pub steps: Vec<String>,
    /// From the first event to the last.
    pub took_ns: u64,
    /// The last event ended the path (delivered, host, dropped); `false`: it went into a
    /// member and did not come back in time.
    pub complete: bool,
    /// The members, in order (for `--follow`).
    pub members: Vec<String>,
    pub first_ts_ns: u64,
}

impl fmt::Display for PacketPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}", self.flow, self.steps.join(" -> "))?;
        if self.complete {
            write!(f, ", {}", micros(self.took_ns))
        } else {
            write!(f, " (did not come back)")
        }
    }
}

/// `41 us`, `1.2 ms`.
pub fn micros(ns: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a displayed duration")]
    let us = ns as f64 / 1e3;
    if us >= 1000.0 { format!("{:.1} ms", us / 1e3) } else { format!("{us:.0} us") }
}

type PacketKey = ([u8; 16], [u8; 16], [u8; 2], [u8; 2], u8, u8, u32, u32);

fn packet_key(e: &TraceEvent) -> PacketKey {
    let k = &e.key;
    (k.src, k.dst, k.sport, k.dport, k.proto, k.family, k.zone, e.fp)
}

/// Puts events together into packets: a packet's events share its flow and fingerprint; the
/// path ends with a delivery, a hand-back to the host, or a drop.
#[derive(Default)]
pub struct Assembler {
    pending: BTreeMap<PacketKey, Vec<Event>>,
}

impl Assembler {
    /// Adds an event; returns the packet's path when this event ended it.
    pub fn push(&mut self, raw: &TraceEvent, e: Event) -> Option<PacketPath> {
        let key = packet_key(raw);
        let ends = e.verdict != "member" && e.verdict != "tap";
        let events = self.pending.entry(key).or_default();
        events.push(e);
        if !ends {
            return None;
        }
        let events = self.pending.remove(&key)?;
        Some(path(events, true))
    }

    /// Paths of packets seen last before `before_ns` that never ended (lost in a member).
    pub fn expire(&mut self, before_ns: u64) -> Vec<PacketPath> {
        let old: Vec<PacketKey> =
            self.pending.iter().filter(|(_, ev)| ev.last().is_none_or(|e| e.ts_ns < before_ns)).map(|(k, _)| *k).collect();
        old.into_iter().filter_map(|k| self.pending.remove(&k)).map(|ev| path(ev, false)).collect()
    }

    /// Everything still pending (at the end of a trace).
    pub fn drain(&mut self) -> Vec<PacketPath> {
        self.expire(u64::MAX)
    }
}

fn path(mut events: Vec<Event>, complete: bool) -> PacketPath {
    events.sort_by_key(|e| e.ts_ns);
    let first = &events[0];
    let last = &events[events.len() - 1];
    let mut steps = vec![first.at.clone()];
    let mut members = Vec::new();
    for e in &events {
        steps.push(step(e));
        if e.verdict == "member" {
            members.push(e.member.clone().unwrap_or_default());
        }
    }
    PacketPath {
        flow: first.flow.clone(),
        chain: first.chain.clone(),
        steps,
        took_ns: last.ts_ns.saturating_sub(first.ts_ns),
        complete,
        members,
        first_ts_ns: first.ts_ns,
    }
}

/// What `sfc trace --probe` reports: the probe's hop decisions and where it ended.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    pub flow: Flow,
    /// The interface it was sent in on, and the attach mode of the program there.
    #[serde(rename = "in")]
    pub in_iface: String,
    pub mode: &'static str,
    pub events: Vec<Event>,
    /// Where it entered, each member (with its group), and where it ended (as `sfc trace`).
    pub path: Vec<String>,
    /// `delivered`, `host`, `dropped`, `not_steered` (no hop decision where it was: not chain
    /// traffic there), `unexplained` (a verdict without a hop decision), `into_unknown_member`
    /// (into a member that drains, whose far side is unknown), `no_program` (the member's far side
    /// runs no sfc program), `too_many_hops` (a loop).
    pub ended: &'static str,
    /// Where it ended, when it was not at a hop decision.
    pub ended_at: Option<String>,
    /// Why, in words.
    pub detail: String,
}

/// `r` with names: the probe `spec` (its 5-tuple `key`) sent in on `in_iface`.
pub fn probe_view(n: &Namer<'_>, in_iface: &str, key: &FlowKey, r: &ProbeReport) -> ProbeView {
    let events: Vec<Event> = r.events.iter().map(|e| name(n, e)).collect();
    let mut path = vec![in_iface.to_owned()];
    let last = events.last();
    for e in &events {
        path.push(step(e));
    }
    let (ended, ended_at, detail) = match r.end {
        ProbeEnd::Ended => {
            let e = last.map_or("unknown", |e| e.verdict);
            let detail = match e {
                "delivered" => format!("delivered to {}; the probe stops here (it is not sent)", last.and_then(|e| e.to.clone()).unwrap_or_default()),
                "host" => "the chain is done: handed to the host; the probe stops here".to_owned(),
                _ => format!("dropped: {}", last.and_then(|e| e.reason).unwrap_or("unknown")),
            };
            (e, None, detail)
        }
        ProbeEnd::NotSteered { ifindex } => {
            let at = n.iface(ifindex);
            let detail = if events.is_empty() {
                format!("not steered on {at}: no classifier of a chain that enters there matches it (it goes on untouched)")
            } else {
                format!("not steered on {at}: the program there does not take it for chain traffic")
            };
            path.push("untouched".to_owned());
            ("not_steered", Some(at), detail)
        }
        ProbeEnd::Unexplained { ifindex, verdict } => {
            let at = n.iface(ifindex);
            path.push("?".to_owned());
            ("unexplained", Some(at.clone()), format!("the program on {at} returned verdict {verdict} without a hop decision"))
        }
        ProbeEnd::IntoUnknownMember { port_pair } => {
            let m = n.port_pair(port_pair);
            ("into_unknown_member", None, format!("sent into {m}, which is no longer in the configuration (it drains): where it comes back is unknown"))
        }
        ProbeEnd::NoProgram { ifindex } => {
            let at = n.iface(ifindex);
            path.push("?".to_owned());
            ("no_program", Some(at.clone()), format!("{at}, where the member sends it back, runs no sfc program (re-apply the chains)"))
        }
        ProbeEnd::TooManyHops => ("too_many_hops", None, "more hop decisions than a chain can have: a loop".to_owned()),
        ProbeEnd::UnknownMac { ifindex } => {
            let at = n.iface(ifindex);
            path.push("?".to_owned());
            ("unknown_mac", Some(at.clone()), format!("the MAC of the function behind {at} (XDP) is not known yet: the probe stops there rather than teach the datapath a made-up one"))
        }
    };
    ProbeView {
        flow: flow_of(key),
        in_iface: in_iface.to_owned(),
        mode: match r.mode {
            AttachMode::Tc => "tc",
            AttachMode::Xdp => "xdp",
        },
        events,
        path,
        ended,
        ended_at,
        detail,
    }
}

impl fmt::Display for ProbeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "probe {} in on {} ({} program), run on a private copy: nothing is sent", self.flow, self.in_iface, self.mode)?;
        for e in &self.events {
            write!(f, "  {}: ", e.at)?;
            match e.verdict {
                "member" => {
                    let hop = e.hop.map_or_else(String::new, |h| format!(", hop {}", h + 1));
                    let si = e.si.map_or_else(String::new, |s| format!(", SI {s}"));
                    let dir = if e.direction == "reverse" { " (reverse)" } else { "" };
                    writeln!(f, "chain {}{hop}{si}{dir}: into {} through {}", e.chain, step(e), e.to.as_deref().unwrap_or("?"))?;
                }
                "tap" => {
                    let hop = e.hop.map_or_else(String::new, |h| format!(", hop {}", h + 1));
                    let m = format!("{} ({})", e.member.as_deref().unwrap_or("?"), e.group.as_deref().unwrap_or("?"));
                    writeln!(f, "chain {}{hop}: a copy to tap {m} through {} (a probe's copy is not sent)", e.chain, e.to.as_deref().unwrap_or("?"))?;
                }
                "delivered" => writeln!(f, "chain {}: delivered to {}", e.chain, e.to.as_deref().unwrap_or("?"))?,
                "host" => writeln!(f, "chain {}: done, handed to the host", e.chain)?,
                _ => writeln!(f, "chain {}: dropped ({})", e.chain, e.reason.unwrap_or("unknown"))?,
            }
        }
        writeln!(f, "{}", self.detail)?;
        write!(f, "path: {}", self.path.join(" -> "))
    }
}

/// One event's step in a path: the member (with its group), the destination, `host`, a drop.
fn step(e: &Event) -> String {
    match e.verdict {
        "member" | "tap" => {
            let m = e.member.clone().unwrap_or_default();
            let m = match (&e.group, e.encap) {
                (Some(g), Some(h)) => format!("{m} ({g}, {h} SI {})", e.si.unwrap_or_default()),
                (Some(g), None) => format!("{m} ({g})"),
                (None, _) => m,
            };
            if e.verdict == "tap" { format!("[copy to {m}]") } else { m }
        }
        "delivered" => e.to.clone().unwrap_or_else(|| "?".to_owned()),
        "host" => "host".to_owned(),
        "dropped" => format!("dropped: {}", e.reason.unwrap_or("unknown")),
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: u64, verdict: &'static str, member: Option<&str>, fp: u32) -> (TraceEvent, Event) {
        let raw = TraceEvent { ts_ns: ts, fp, ..TraceEvent::default() };
        let e = Event {
            ts_ns: ts,
            at: if ts == 0 { "src".to_owned() } else { "sf-out".to_owned() },
            verdict,
            reason: None,
            chain: "pc1".to_owned(),
            chain_id: 1,
            si: None,
            hop: None,
            group: member.map(|_| "pg".to_owned()),
            member: member.map(str::to_owned),
            encap: None,
            direction: "forward",
            to: (verdict == "delivered").then(|| "dst".to_owned()),
            len: 100,
            flow: flow_of(&raw.key),
        };
        (raw, e)
    }

    #[test]
    fn events_of_one_packet_make_one_line() {
        let mut a = Assembler::default();
        for (raw, e) in [ev(0, "member", Some("pp1"), 7), ev(1_000, "member", Some("pp3"), 7)] {
            assert!(a.push(&raw, e).is_none());
        }
        // Another packet of the same flow, in between: kept apart by its fingerprint.
        let (raw, e) = ev(1_500, "member", Some("pp2"), 8);
        assert!(a.push(&raw, e).is_none());
        let (raw, e) = ev(41_000, "delivered", None, 7);
        let p = a.push(&raw, e).expect("the path ended");
        assert_eq!(p.steps, ["src", "pp1 (pg)", "pp3 (pg)", "dst"]);
        assert_eq!((p.took_ns, p.complete), (41_000, true));
        assert!(p.to_string().ends_with("src -> pp1 (pg) -> pp3 (pg) -> dst, 41 us"), "{p}");
        let lost = a.expire(10_000);
        assert_eq!(lost.len(), 1, "the other packet never came back");
        assert!(!lost[0].complete && lost[0].to_string().ends_with("(did not come back)"));
        assert!(a.drain().is_empty());
    }
}
