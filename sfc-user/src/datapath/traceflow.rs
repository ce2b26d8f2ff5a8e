//! `sfc trace --probe`: one synthetic packet through the live datapath, hop by hop, as Antrea's
//! Traceflow and ovn-trace answer "where does this packet go".
//!
//! The packet never touches a wire. Each hop is one `BPF_PROG_TEST_RUN` of the pinned program
//! that is attached to the interface (tc or XDP, whichever the interface runs) on a private copy:
//! the program makes its real decision against the live maps (classifiers, flow table, members'
//! state), and a redirect only records its target. The decision comes back as a trace event (the
//! kernel filter is set to the probe's 5-tuple while it runs), which names the member; the next
//! run is at that member's far side, with the frame as the member would send it (the frame the
//! program wrote, its MACs turned round). It ends where a real packet would leave the chain:
//! delivered to the logical destination port, handed to the host, or dropped, and the probe is
//! neither delivered nor handed on.
//!
//! What a probe leaves behind: the flow-table entries it created (none if its 5-tuple already
//! had a flow, whose member choice it then follows) are removed, and so is the SF latency sample
//! it might have started. It is counted like one packet of its flow on every interface and hop it
//! crossed (`sfc stats`), as it went through the same program.

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp};
use aya_obj::programs::XdpAttachType;
use etherparse::{IpNumber, PacketBuilder};
use sfc_common::{
    limits::MAX_HOPS,
    maps::{DIR_REVERSE, FAMILY_V4, FAMILY_V6, FlowKey, IfaceEntry, MAP_IFACES},
    proto::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, carries_ports},
    trace::{TF_DPORT, TF_DST, TF_PROTO, TF_SPORT, TF_SRC, TV_MEMBER, TV_TAP, TraceConf, TraceEvent},
};

use super::{
    DatapathError, Location, Result, State,
    attach::{LinkKind, PROG_PIN, PROG_XDP_PIN},
    flows, trace,
};
use crate::model::AttachMode;

/// The packet to send: as if it arrived on `in_ifindex` from whatever sits behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub in_iface: String,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Ignored (0) for protocols without ports.
    pub sport: u16,
    pub dport: u16,
}

/// How the probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeEnd {
    /// The last event says: delivered, handed to the host, or dropped.
    Ended,
    /// The program on `ifindex` let it pass without a hop decision: at a source port, no
    /// classifier matched; at a member's far side, the packet is not chain traffic there.
    NotSteered { ifindex: u32 },
    /// The program on `ifindex` returned `verdict` (tc's numbering) without a hop decision.
    Unexplained { ifindex: u32, verdict: u32 },
    /// It went into member `port_pair`, whose other side this configuration does not know (a
    /// member removed from its group that drains).
    IntoUnknownMember { port_pair: u32 },
    /// No sfc program on `ifindex` (the interface is not part of any chain).
    NoProgram { ifindex: u32 },
    /// More hop decisions than a chain can have: a loop.
    TooManyHops,
    /// The member sends the packet back on `ifindex`, an XDP interface whose function's MAC is
    /// not known yet: the probe stops rather than teach the datapath a made-up one.
    UnknownMac { ifindex: u32 },
}

/// What the probe did: its hop decisions in order, how it ended, and the attach mode of the
/// interface it started on.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub events: Vec<TraceEvent>,
    pub end: ProbeEnd,
    pub mode: AttachMode,
}

/// tc verdicts, and XDP's (`include/uapi/linux/pkt_cls.h`, `bpf.h`).
const TC_ACT_OK: u32 = 0;
const XDP_PASS: u32 = 2;

/// `struct __sk_buff` is 192 bytes, `ifindex` at 40 (after `len`, `pkt_type`, `mark`,
/// `queue_mapping`, `protocol`, `vlan_present`, `vlan_tci`, `vlan_proto`, `priority`,
/// `ingress_ifindex`). The kernel accepts few nonzero fields (`convert___skb_to_skb`: `mark`,
/// `priority`, `ingress_ifindex`, `ifindex`, `cb`, `tstamp`, `wire_len`, `gso_segs`, `gso_size`,
/// `hwtstamp`); `len` stays 0, it is taken from the data.
const SKB_CTX_LEN: usize = 192;
const SKB_MARK_OFFSET: usize = 8;
const SKB_IFINDEX_OFFSET: usize = 40;
/// `struct xdp_md`: `data`, `data_end`, `data_meta`, `ingress_ifindex`, `rx_queue_index`,
/// `egress_ifindex`. The kernel reads `data` as the metadata length (0) and `data_end` as the
/// length of the frame's linear part: left at 0, the program would see an empty frame.
const XDP_CTX_LEN: usize = 24;
const XDP_DATA_END_OFFSET: usize = 4;
const XDP_INGRESS_IFINDEX_OFFSET: usize = 12;

/// The context of one `BPF_PROG_TEST_RUN` of `mode`'s program on a frame of `len` bytes that
/// arrives on `ifindex` (which the kernel resolves in the caller's network namespace).
pub fn test_run_context(mode: AttachMode, ifindex: u32, len: usize) -> Vec<u8> {
    context_with_mark(mode, ifindex, len, 0)
}

/// As [`test_run_context`], with `skb->mark` set (tc only): `PROBE_MARK` makes a probe.
fn context_with_mark(mode: AttachMode, ifindex: u32, len: usize, mark: u32) -> Vec<u8> {
    let put = |ctx: &mut Vec<u8>, at: usize, v: u32| ctx[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    match mode {
        AttachMode::Tc => {
            let mut ctx = vec![0u8; SKB_CTX_LEN];
            put(&mut ctx, SKB_IFINDEX_OFFSET, ifindex);
            put(&mut ctx, SKB_MARK_OFFSET, mark);
            ctx
        }
        AttachMode::Xdp => {
            let mut ctx = vec![0u8; XDP_CTX_LEN];
            put(&mut ctx, XDP_DATA_END_OFFSET, u32::try_from(len).unwrap_or(u32::MAX));
            put(&mut ctx, XDP_INGRESS_IFINDEX_OFFSET, ifindex);
            ctx
        }
    }
}

/// A number of this probe's own: its fingerprint (IPv4 id and transport bytes 4..16) must be
/// its own, so that two probes of one 5-tuple are two packets.
fn nonce() -> u64 {
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    u64::try_from(ns & u128::from(u64::MAX)).unwrap_or(0)
}

/// The probe's payload: the nonce first (transport bytes 8..16 of UDP and ICMP, 4..16 of a
/// protocol without a header sfc knows, all of which the fingerprint reads), then text that a
/// capture recognises. TCP and SCTP carry it in their headers (`frame`).
fn payload(nonce: u64) -> Vec<u8> {
    let mut p = nonce.to_be_bytes().to_vec();
    p.extend_from_slice(b"sfc trace probe ");
    p
}

/// The Ethernet frame of `spec`, from `src_mac` to `dst_mac`.
pub fn frame(spec: &ProbeSpec, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Result<Vec<u8>> {
    frame_with(spec, src_mac, dst_mac, nonce())
}

/// [`frame`] with the nonce given.
fn frame_with(spec: &ProbeSpec, src_mac: [u8; 6], dst_mac: [u8; 6], nonce: u64) -> Result<Vec<u8>> {
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let ip = match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => return Err(DatapathError::Other("the probe's source and destination must both be IPv4 or both IPv6".into())),
    };
    let payload = payload(nonce);
    let mut out = Vec::new();
    let bad = |e: String| DatapathError::Other(format!("building the probe: {e}"));
    match spec.proto {
        IPPROTO_UDP => ip.udp(spec.sport, spec.dport).write(&mut out, &payload).map_err(|e| bad(e.to_string()))?,
        // An acknowledgement in the middle of a connection: no SYN, FIN or RST, which would
        // change the flow's state (a FIN marks it closing).
        // The sequence number carries the nonce: TCP's bytes 4..16 are the header's.
        IPPROTO_TCP => {
            let seq = u32::try_from(nonce & u64::from(u32::MAX)).unwrap_or(0);
            ip.tcp(spec.sport, spec.dport, seq, 64_240).ack(1).write(&mut out, &payload).map_err(|e| bad(e.to_string()))?;
        }
        IPPROTO_ICMP if spec.src.is_ipv4() => ip.icmpv4_echo_request(0x5fc0, 1).write(&mut out, &payload).map_err(|e| bad(e.to_string()))?,
        IPPROTO_ICMPV6 if spec.src.is_ipv6() => ip.icmpv6_echo_request(0x5fc0, 1).write(&mut out, &payload).map_err(|e| bad(e.to_string()))?,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => return Err(DatapathError::Other("icmp goes with IPv4 addresses, icmpv6 with IPv6".into())),
        proto => {
            // SCTP's common header (ports, verification tag: the nonce's low half, checksum)
            // then the payload; any other protocol: the payload alone.
            let mut body = Vec::new();
            if proto == IPPROTO_SCTP || carries_ports(proto) {
                body.extend_from_slice(&spec.sport.to_be_bytes());
                body.extend_from_slice(&spec.dport.to_be_bytes());
                body.extend_from_slice(&nonce.to_be_bytes()[4..]);
                body.extend_from_slice(&[0; 4]);
            }
            body.extend_from_slice(&payload);
            ip.write(&mut out, IpNumber(proto), &body).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(out)
}

/// An address as the datapath stores it (IPv4 in the first 4 bytes of 16), and its family.
fn stored(a: IpAddr) -> ([u8; 16], u8) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, FAMILY_V4)
        }
        IpAddr::V6(v6) => (v6.octets(), FAMILY_V6),
    }
}

/// The flow key of `spec` (in zone 0).
pub fn flow_key(spec: &ProbeSpec) -> FlowKey {
    keys(spec, 0)[0]
}

/// The flow key of `spec` in `zone`, and of its replies.
fn keys(spec: &ProbeSpec, zone: u32) -> [FlowKey; 2] {
    let ((src, family), (dst, _)) = (stored(spec.src), stored(spec.dst));
    let ports = carries_ports(spec.proto);
    let (sport, dport) = if ports { (spec.sport.to_be_bytes(), spec.dport.to_be_bytes()) } else { ([0; 2], [0; 2]) };
    let k = FlowKey { src, dst, sport, dport, proto: spec.proto, family, zone, ..FlowKey::default() };
    let r = FlowKey { src: dst, dst: src, sport: dport, dport: sport, ..k };
    [k, r]
}

/// The kernel trace filter that lets exactly the probe's 5-tuple through, keeping the SF latency
/// sampling as it is.
fn filter(spec: &ProbeSpec, latency_every: u32) -> TraceConf {
    let [k, _] = keys(spec, 0);
    let mut filters = TF_SRC | TF_DST | TF_PROTO;
    if carries_ports(spec.proto) {
        filters |= TF_SPORT | TF_DPORT;
    }
    TraceConf {
        enabled: 1,
        filters,
        sample_every: 1,
        budget_per_sec: 0,
        latency_every,
        src: k.src,
        dst: k.dst,
        sport: k.sport,
        dport: k.dport,
        proto: k.proto,
        family: k.family,
        ..TraceConf::default()
    }
}

/// The attach mode of the program on `ifindex`, from its link pin.
fn mode_on(pin_dir: &Path, ifindex: u32) -> Option<AttachMode> {
    [AttachMode::Xdp, AttachMode::Tc].into_iter().find(|m| LinkKind::of(*m).pin(pin_dir, ifindex).exists())
}

/// One run of the program attached to `ifindex` on `frame`; returns the verdict as tc would
/// say it (0: pass) and the frame as the program left it.
fn run_once(loc: &Location, mode: AttachMode, ifindex: u32, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
    // Marked: the program traces where its tap copies would go and sends none.
    let ctx = context_with_mark(mode, ifindex, frame.len(), sfc_common::trace::PROBE_MARK);
    let mut out = vec![0u8; frame.len() + 256];
    let opts = TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), ctx_in: Some(&ctx), repeat: 1, ..TestRunOptions::default() };
    let failed = |source| DatapathError::Program { what: format!("running the probe through the program on ifindex {ifindex}"), source };
    let (r, pass) = match mode {
        AttachMode::Tc => {
            let pin = loc.pin_dir.join(PROG_PIN);
            let p = SchedClassifier::from_pin(&pin).map_err(|source| DatapathError::Program { what: format!("opening {}", pin.display()), source })?;
            (p.test_run(opts).map_err(failed)?, TC_ACT_OK)
        }
        AttachMode::Xdp => {
            let pin = loc.pin_dir.join(PROG_XDP_PIN);
            let p = Xdp::from_pin(&pin, XdpAttachType::Interface).map_err(|source| DatapathError::Program { what: format!("opening {}", pin.display()), source })?;
            (p.test_run(opts).map_err(failed)?, XDP_PASS)
        }
    };
    out.truncate(usize::try_from(r.data_size_out).unwrap_or(0));
    Ok((if r.return_value == pass { TC_ACT_OK } else { r.return_value }, out))
}

/// `CLOCK_MONOTONIC`, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// The interface where a packet sent into member `port_pair` in direction `dir` comes back, and
/// the MAC of the function behind it.
fn far_side(state: &State, port_pair: u32, dir: u8) -> Option<(u32, Option<[u8; 6]>)> {
    let name = state.port_pair_name(port_pair)?;
    let pp = state.model.port_pairs.iter().find(|p| p.name == name)?;
    let (ifname, mac) = if u32::from(dir) == DIR_REVERSE { (&pp.ingress, pp.ingress_mac) } else { (&pp.egress, pp.egress_mac) };
    let f = state.facts.get(ifname)?;
    Some((f.ifindex, crate::compile::sf_mac(mac, f)))
}

/// Sends the probe `spec` through the datapath at `loc` (whose applied state is `state`), from
/// the calling thread's network namespace, which must be the datapath's. Hold `trace::TraceLock`:
/// the probe uses the kernel's one trace filter.
pub fn probe(loc: &Location, state: &State, spec: &ProbeSpec) -> Result<ProbeReport> {
    let facts = state.facts.get(&spec.in_iface).ok_or_else(|| {
        let names: Vec<&str> = state.facts.keys().map(String::as_str).collect();
        DatapathError::Other(format!("'{}' is not an interface of the applied chains (they are: {})", spec.in_iface, names.join(", ")))
    })?;
    let Some(mode) = mode_on(&loc.pin_dir, facts.ifindex) else {
        return Err(DatapathError::Other(format!("no sfc program is attached to '{}' (ifindex {})", spec.in_iface, facts.ifindex)));
    };
    let behind = state.model.interface_macs.get(&spec.in_iface).copied().or_else(|| crate::compile::sf_mac(None, facts));
    // The tc program learns nothing from a probe (it is marked); an XDP program cannot tell it
    // from a frame of the VM behind a tap, and would learn its made-up MAC.
    if mode == AttachMode::Xdp && behind.is_none() {
        return Err(DatapathError::Other(format!(
            "the MAC behind '{}' is not known yet (a VM that has sent nothing): an XDP probe from there would teach the datapath a made-up one",
            spec.in_iface
        )));
    }
    let own = super::netlink::link_by_index(facts.ifindex, None).ok().and_then(|l| l.mac);
    let first = frame(spec, behind.unwrap_or([0x02, 0, 0, 0x5f, 0xc0, 1]), own.unwrap_or([0x02, 0, 0, 0x5f, 0xc0, 2]))?;

    // The flows the probe finds already there stay; the ones it creates go afterwards.
    // Zones of both banks' interfaces: a superset is harmless.
    let zones: BTreeSet<u32> = super::maps::hash_entries::<u32, IfaceEntry>(loc, MAP_IFACES)?.values().map(|i| i.zone).collect();
    let candidates: Vec<FlowKey> = zones.iter().flat_map(|z| keys(spec, *z)).collect();
    let existed = flows::present(loc, &candidates)?;

    let before = trace::conf(loc)?;
    trace::set_conf(loc, filter(spec, before.latency_every))?;
    let walked = walk(loc, state, mode, facts.ifindex, first);
    // Put everything back also when the walk failed half way.
    let restored = trace::set_conf(loc, before);
    let created: Vec<FlowKey> = candidates.iter().zip(&existed).filter(|(_, e)| !**e).map(|(k, _)| *k).collect();
    let forgotten = flows::forget(loc, &created);
    let (events, end) = walked?;
    restored?;
    forgotten?;
    Ok(ProbeReport { events, end, mode })
}

fn walk(loc: &Location, state: &State, first_mode: AttachMode, first_ifindex: u32, first: Vec<u8>) -> Result<(Vec<TraceEvent>, ProbeEnd)> {
    let mut ring = trace::ring(loc)?;
    // Whatever an earlier reader left unread is not the probe's.
    while ring.next().is_some() {}
    let mut events = Vec::new();
    let (mut at, mut mode, mut pkt) = (first_ifindex, first_mode, first);
    let mut fp = None;
    for _ in 0..MAX_HOPS * 2 + 2 {
        let t0 = monotonic_ns();
        let (verdict, out) = run_once(loc, mode, at, &pkt)?;
        let t1 = monotonic_ns();
        let mut mine = Vec::new();
        while let Some(item) = ring.next() {
            let Some(e) = trace::decode(&item) else { continue };
            // The filter lets real packets of the same 5-tuple through too: the probe's events
            // are the ones of this run, on this interface, with the probe's fingerprint (tap
            // copies it would make, then its own hop decision).
            let len = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
            if e.ifindex == at && (t0..=t1).contains(&e.ts_ns) && fp.is_none_or(|f| f == e.fp) && (fp.is_some() || e.len == len) {
                mine.push(e);
            }
        }
        let decision = mine.iter().rposition(|e| e.verdict != TV_TAP);
        events.extend(mine.iter().copied());
        let Some(e) = decision.map(|i| mine[i]) else {
            let end = if verdict == TC_ACT_OK { ProbeEnd::NotSteered { ifindex: at } } else { ProbeEnd::Unexplained { ifindex: at, verdict } };
            return Ok((events, end));
        };
        fp = Some(e.fp);
        if e.verdict != TV_MEMBER {
            return Ok((events, ProbeEnd::Ended));
        }
        // Not an SF latency sample: the probe's time in a member is no function's.
        trace::forget_inflight(loc, e.fp, e.port_pair, e.dir)?;
        let Some((next, sf_mac)) = far_side(state, e.port_pair, e.dir) else {
            return Ok((events, ProbeEnd::IntoUnknownMember { port_pair: e.port_pair }));
        };
        let Some(next_mode) = mode_on(&loc.pin_dir, next) else {
            return Ok((events, ProbeEnd::NoProgram { ifindex: next }));
        };
        if next_mode == AttachMode::Xdp && sf_mac.is_none() {
            // As at the start: an XDP program would learn the frame's made-up source MAC.
            return Ok((events, ProbeEnd::UnknownMac { ifindex: next }));
        }
        // What the member sends back: the frame it received, from its far side's MAC to
        // whoever sent it to the member.
        pkt = out;
        if pkt.len() >= 12 {
            let sent_from: [u8; 6] = pkt[6..12].try_into().unwrap_or([0; 6]);
            let from = sf_mac.unwrap_or_else(|| pkt[..6].try_into().unwrap_or([0; 6]));
            pkt[..6].copy_from_slice(&sent_from);
            pkt[6..12].copy_from_slice(&from);
        }
        (at, mode) = (next, next_mode);
    }
    Ok((events, ProbeEnd::TooManyHops))
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    /// A probe of every kind `frame` builds: protocol, source, destination.
    const PROBES: [(u8, &str, &str); 6] = [
        (IPPROTO_UDP, "10.0.0.1", "10.0.0.2"),
        (IPPROTO_TCP, "fd00::1", "fd00::2"),
        (IPPROTO_ICMP, "10.0.0.1", "10.0.0.2"),
        (IPPROTO_ICMPV6, "fd00::1", "fd00::2"),
        (IPPROTO_SCTP, "10.0.0.1", "10.0.0.2"),
        (47, "10.0.0.1", "10.0.0.2"),
    ];

    fn spec(proto: u8, src: &str, dst: &str) -> ProbeSpec {
        ProbeSpec { in_iface: "src".into(), proto, src: src.parse().unwrap_or_else(|e| panic!("{e}")), dst: dst.parse().unwrap_or_else(|e| panic!("{e}")), sport: 40_000, dport: 80 }
    }

    #[test]
    fn probes_are_well_formed_packets_of_their_5_tuple() {
        for (proto, src, dst) in PROBES {
            let s = spec(proto, src, dst);
            let f = frame(&s, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).unwrap_or_else(|e| panic!("{proto}: {e}"));
            let p = SlicedPacket::from_ethernet(&f).unwrap_or_else(|e| panic!("{proto}: {e}"));
            let ip = p.net.unwrap_or_else(|| panic!("{proto}: no IP"));
            let (got_src, got_dst, got_proto) = match ip {
                NetSlice::Ipv4(v4) => (IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr()), v4.payload().ip_number.0),
                NetSlice::Ipv6(v6) => (IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr()), v6.payload().ip_number.0),
                NetSlice::Arp(_) => panic!("{proto}: ARP"),
            };
            assert_eq!((got_src, got_dst, got_proto), (s.src, s.dst, proto));
            match p.transport {
                Some(TransportSlice::Udp(u)) => assert_eq!((u.source_port(), u.destination_port()), (40_000, 80)),
                Some(TransportSlice::Tcp(t)) => assert!(t.ack() && !t.syn() && !t.fin() && !t.rst() && t.destination_port() == 80),
                _ => {}
            }
            if proto == IPPROTO_SCTP {
                let k = flow_key(&s);
                assert_eq!((k.sport, k.dport), (40_000u16.to_be_bytes(), 80u16.to_be_bytes()));
            }
        }
        assert!(frame(&spec(IPPROTO_UDP, "10.0.0.1", "fd00::2"), [2; 6], [2; 6]).is_err());
        assert!(frame(&spec(IPPROTO_ICMPV6, "10.0.0.1", "10.0.0.2"), [2; 6], [2; 6]).is_err());
    }

    #[test]
    fn two_probes_of_one_5_tuple_differ_where_the_fingerprint_reads() {
        for (proto, src, dst) in PROBES {
            let s = spec(proto, src, dst);
            // Nonces a few nanoseconds apart: only the low half differs.
            let f = |n: u64| frame_with(&s, [2; 6], [2; 6], n).unwrap_or_else(|e| panic!("{proto}: {e}"));
            let (a, b) = (f(0x1234_5678_0000_0001), f(0x1234_5678_0000_0002));
            // The transport header starts after Ethernet and the fixed IPv4 or IPv6 header.
            let l4 = 14 + if s.src.is_ipv4() { 20 } else { 40 };
            // What the fingerprint reads: transport bytes 4..16, checksums left out (UDP's
            // bytes 6..8, SCTP's 8..12; ICMP's checksum, bytes 2..4, is outside them).
            let checksum = |i: &usize| (proto == IPPROTO_UDP && (6..8).contains(i)) || (proto == IPPROTO_SCTP && (8..12).contains(i));
            let read = |f: &[u8]| -> Vec<u8> { (4..16).filter(|i| !checksum(i)).map(|i| f[l4 + i]).collect() };
            assert_ne!(read(&a), read(&b), "protocol {proto}");
        }
    }

    #[test]
    fn keys_are_the_datapaths_and_portless_protocols_have_no_ports() {
        let [k, r] = keys(&spec(IPPROTO_ICMP, "10.0.0.1", "10.0.0.2"), 7);
        assert_eq!((k.family, k.zone, k.sport, k.dport, &k.src[..4]), (FAMILY_V4, 7, [0; 2], [0; 2], &[10, 0, 0, 1][..]));
        assert_eq!((r.src, r.dst), (k.dst, k.src));
        let c = filter(&spec(IPPROTO_ICMP, "10.0.0.1", "10.0.0.2"), 16);
        assert_eq!((c.filters & (TF_SPORT | TF_DPORT), c.latency_every, c.budget_per_sec), (0, 16, 0));
    }
}
