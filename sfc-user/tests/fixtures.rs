//! Packet fixtures for the tc program: each case is a packet built with a builder, the interface
//! it arrives on, the map set-up, and the expected verdict, output bytes and counter changes. The
//! program runs with `BPF_PROG_TEST_RUN` (see `common`), the maps are written by the real loader
//! code from `CHAINS` below. Needs root (bpf, network namespaces).
//!
//! Each test loads its own datapath in its own namespace, so tests may run in parallel. Within
//! one table the cases run in order against one datapath and its flow table: a case may rely on
//! the flow an earlier one created (that is what "the same flow" means).
//!
//! Run: `cargo test -p sfc-user --test fixtures` (as root). Knobs: `SFC_FUZZ_SEED` (replay a
//! fuzz run; the seed is printed), `SFC_FUZZ_PACKETS` (default 300,000), `SFC_PROBES` (cases of
//! the model comparison, default 5,000).

mod common;
/// The flow table as a cache and the guards around it: tenants, recomputed paths, loops, the
/// new-flow cap, TCP close marks, health probes. (A crate root looks for modules beside itself:
/// the path keeps this one in a folder of its own, which cargo does not take for a test.)
#[path = "fixtures/guards.rs"]
mod guards;

use std::{collections::BTreeMap, time::Instant};

use common::{
    Delta, Fixture, csum, PASS, REDIRECT, DROP,
    packets::{self, L4, v4, v4_with, v6, v6_with, with_dst_mac},
    probe::{Choices, Probe, address, choices, expected_by_model, port},
    table::{Case, Count, Out, Setup, check_table, fwd, rev},
};
use etherparse::IpNumber;
use sfc::model::AttachMode;
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use sfc_common::{
    DropReason,
    maps::{DIR_FORWARD, HopStatsKey, IfStats},
};

// ---- the set-up every table shares ---------------------------------------------------------

/// Veth pairs of the fixture namespace; both ends of each are used as separate interfaces.
const PAIRS: &[(&str, &str)] = &[
    ("src0", "src1"),
    ("dst0", "idle0"),
    ("sf1i", "sf1o"),
    ("sf2i", "sf2o"),
    ("sf3", "sf4"),
    ("sfa", "sfb"),
    ("sf5", "sf6"),
    ("sf7", "sf8"),
    ("ss1i", "ss1o"),
    ("ss2i", "ss2o"),
    ("tb0", "tbx"),
    ("tbi", "tbo"),
];

/// Every interface that has a role in `CHAINS` (`idle0` has none).
const ROLE_IFACES: &[&str] = &[
    "src0", "src1", "dst0", "sf1i", "sf1o", "sf2i", "sf2o", "sf3", "sf4", "sfa", "sfb", "sf5", "sf6", "sf7", "sf8",
    "ss1i", "ss1o", "ss2i", "ss2o", "tb0", "tbi", "tbo",
];

/// The chains under test:
/// - `web` (1): TCP 192.168.1.0/24 -> 10.0.0.0/24 port 80 on src0, through SF1 then SF2, then
///   back to the host.
/// - `udp` (2): UDP source ports 1024-4999 -> ports 1000-2000 on src0, through SF3 (ingress =
///   egress), then delivered to dst0.
/// - `v6` (3): TCP to `[2001:db8:1::/64]:443` on src0, through SF4.
/// - `weighted` (4): UDP port 5000 on src0, through one of `SFa` (weight 1) / `SFb` (weight 3).
/// - `failopen` (5) / `failclosed` (6): UDP 6000 / 6001 on src0, for groups that go down.
/// - `dns` (7): on src1 (a source port the web flow does not match): UDP port 53, SCTP port
///   3868, and anything (any protocol) to 10.99.0.0/16.
/// - `sym` (8): symmetric, TCP port 8080 on src0 through SS1, SS2, delivered to dst0; replies
///   from dst0 go back through SS2, SS1 to src0.
/// - `webtb` (9): another tenant: `web`'s classifier on tb0 (a separate network reusing the same
///   addresses), through its own SF `tbi`/`tbo`.
const CHAINS: &str = r#"
port_pairs:
  - {name: pp1, ingress: sf1i, egress: sf1o}
  - {name: pp2, ingress: sf2i, egress: sf2o}
  - {name: pp3, ingress: sf3, egress: sf3}
  - {name: pp4, ingress: sf4, egress: sf4}
  - {name: ppa, ingress: sfa, egress: sfa, weight: 1}
  - {name: ppb, ingress: sfb, egress: sfb, weight: 3}
  - {name: ppfo, ingress: sf5, egress: sf5}
  - {name: ppfc, ingress: sf6, egress: sf6}
  - {name: pp7, ingress: sf7, egress: sf7}
  - {name: ppdns, ingress: sf8, egress: sf8}
  - {name: pps1, ingress: ss1i, egress: ss1o}
  - {name: pps2, ingress: ss2i, egress: ss2o}
  - {name: pptb, ingress: tbi, egress: tbo}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
  - {name: pg3, port_pairs: [pp3]}
  - {name: pg4, port_pairs: [pp4]}
  - {name: pgw, port_pairs: [ppa, ppb]}
  - {name: pgfo, port_pairs: [ppfo], failure_policy: fail-open}
  - {name: pgfc, port_pairs: [ppfc], failure_policy: fail-closed}
  - {name: pg7, port_pairs: [pp7]}
  - {name: pgdns, port_pairs: [ppdns]}
  - {name: pgs1, port_pairs: [pps1]}
  - {name: pgs2, port_pairs: [pps2]}
  - {name: pgtb, port_pairs: [pptb]}
flow_classifiers:
  - name: web
    protocol: tcp
    source_ip_prefix: 192.168.1.0/24
    destination_ip_prefix: 10.0.0.0/24
    destination_port_range_min: 80
    destination_port_range_max: 80
    logical_source_port: src0
  - name: udprange
    protocol: udp
    source_port_range_min: 1024
    source_port_range_max: 4999
    destination_port_range_min: 1000
    destination_port_range_max: 2000
    logical_source_port: src0
    logical_destination_port: dst0
  - name: v6web
    ethertype: IPv6
    protocol: tcp
    destination_ip_prefix: "2001:db8:1::/64"
    destination_port_range_min: 443
    destination_port_range_max: 443
    logical_source_port: src0
  - {name: lb, protocol: udp, destination_port_range_min: 5000, destination_port_range_max: 5000, logical_source_port: src0}
  - {name: fo, protocol: udp, destination_port_range_min: 6000, destination_port_range_max: 6000, logical_source_port: src0}
  - {name: fc, protocol: udp, destination_port_range_min: 6001, destination_port_range_max: 6001, logical_source_port: src0}
  - {name: dns, protocol: udp, destination_port_range_min: 53, destination_port_range_max: 53, logical_source_port: src1}
  - {name: sctp, protocol: sctp, destination_port_range_min: 3868, destination_port_range_max: 3868, logical_source_port: src1}
  - {name: any99, destination_ip_prefix: 10.99.0.0/16, logical_source_port: src1}
  - name: symweb
    protocol: tcp
    destination_port_range_min: 8080
    destination_port_range_max: 8080
    logical_source_port: src0
    logical_destination_port: dst0
  - name: webtb
    protocol: tcp
    source_ip_prefix: 192.168.1.0/24
    destination_ip_prefix: 10.0.0.0/24
    destination_port_range_min: 80
    destination_port_range_max: 80
    logical_source_port: tb0
port_chains:
  - {name: web, chain_id: 1, port_pair_groups: [pg1, pg2], flow_classifiers: [web]}
  - {name: udp, chain_id: 2, port_pair_groups: [pg3], flow_classifiers: [udprange]}
  - {name: v6, chain_id: 3, port_pair_groups: [pg4], flow_classifiers: [v6web]}
  - {name: weighted, chain_id: 4, port_pair_groups: [pgw], flow_classifiers: [lb]}
  - {name: failopen, chain_id: 5, port_pair_groups: [pgfo, pg7], flow_classifiers: [fo]}
  - {name: failclosed, chain_id: 6, port_pair_groups: [pgfc], flow_classifiers: [fc]}
  - {name: dns, chain_id: 7, port_pair_groups: [pgdns], flow_classifiers: [dns, sctp, any99]}
  - name: sym
    chain_id: 8
    port_pair_groups: [pgs1, pgs2]
    flow_classifiers: [symweb]
    chain_parameters: {symmetric: true}
  - {name: webtb, chain_id: 9, port_pair_groups: [pgtb], flow_classifiers: [webtb]}
"#;

/// The MAC address behind an interface (what the loader would read from the veth peer).
fn mac_of(ifname: &str) -> [u8; 6] {
    let i = PAIRS.iter().flat_map(|(a, b)| [*a, *b]).position(|n| n == ifname).expect("fixture interface");
    [0x02, 0x5f, 0xc0, 0x00, 0x00, u8::try_from(i + 1).expect("few interfaces")]
}

/// Interfaces whose peer is "in another namespace" (redirects use `bpf_redirect_peer`); the
/// others use `bpf_redirect`, so both helpers are exercised.
fn peer_in_other_netns(ifname: &str) -> bool {
    matches!(ifname, "sf1i" | "dst0" | "ss2o")
}

fn fixture(mode: AttachMode) -> Fixture {
    Fixture::with_mode(mode, PAIRS, CHAINS, mac_of, peer_in_other_netns)
}

/// Every table and check below runs against both programs, `sfc_tc_ingress` and `sfc_xdp`, with
/// the same expectations: `tc::steering`, `xdp::steering`, and so on.
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod tc {
            $(#[test] fn $name() { super::$name(sfc::model::AttachMode::Tc) })*
        }
        mod xdp {
            $(#[test] fn $name() { super::$name(sfc::model::AttachMode::Xdp) })*
        }
    };
}

use guards::{
    health_probes_are_consumed_at_the_egress, loop_guard, new_flows_over_the_cap_are_steered_without_an_entry,
    no_hop_skipped_when_flow_entries_are_gone, tcp_close_and_reuse_mark_the_flow, tenants_with_the_same_addresses,
};

in_both_modes!(offloads, steering, known_flow_on_another_source_port, tenants_with_the_same_addresses, no_hop_skipped_when_flow_entries_are_gone, loop_guard, new_flows_over_the_cap_are_steered_without_an_entry, tcp_close_and_reuse_mark_the_flow, health_probes_are_consumed_at_the_egress, classifier_boundaries, encapsulations, ipv6_fragments_with_extension_header_after_the_fragment_header, hostile_inputs, truncation_at_every_length, failure_policies, classification_matches_the_model, weighted_group_shares, fuzz, flow_left_alone_after_its_classifier_is_removed);

// ---- addresses -------------------------------------------------------------------------------

const CLIENT: [u8; 4] = [192, 168, 1, 10];
const SERVER: [u8; 4] = [10, 0, 0, 20];
const V6_CLIENT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const V6_SERVER: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20];

fn v6_addr(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().expect("ipv6 address").octets()
}

/// The web chain's TCP SYN from `sport` (distinct source ports keep flows apart).
fn web(sport: u16) -> Vec<u8> {
    v4(CLIENT, SERVER, L4::Tcp(sport, 80))
}

fn web_v6(sport: u16) -> Vec<u8> {
    v6(V6_CLIENT, V6_SERVER, L4::Tcp(sport, 443))
}

// ---- table shorthands for this configuration ------------------------------------------------

impl Case {
    /// Classified on src0 into `chain`, sent into hop 0's SF (ingress `sf`, port pair `pp`).
    fn steered(what: &'static str, packet: Vec<u8>, chain: &'static str, sf: &'static str, pp: &'static str) -> Self {
        Self::steered_on("src0", what, packet, chain, sf, pp)
    }

    /// Passed untouched and counted as malformed.
    fn malformed(what: &'static str, packet: Vec<u8>) -> Self {
        Self::new(what, "src0", packet, PASS, Out::Unchanged, Count::Malformed, None)
    }
}

// ---- 1-3: steering along a chain, and what is left alone -----------------------------------------

fn steering_cases() -> Vec<Case> {
    use Count::{Classified, FromSf, Nothing, Unclassified};
    let w = web(40_000);
    let udp = v4(CLIENT, [10, 0, 5, 5], L4::Udp(2000, 1500));
    let sym = v4([192, 168, 5, 1], [10, 9, 0, 1], L4::Tcp(41_000, 8080));
    let sym_reply = v4([10, 9, 0, 1], [192, 168, 5, 1], L4::Tcp(8080, 41_000));
    vec![
        Case::steered("classified TCP SYN on the source port: into SF1", w.clone(), "web", "sf1i", "pp1"),
        Case::steered("the same flow again: same member", w.clone(), "web", "sf1i", "pp1"),
        Case::new("back from SF1's egress: into SF2", "sf1o", w.clone(), REDIRECT, Out::DstMacOf("sf2i"), FromSf, fwd("web", 1, "pp2")),
        Case::new("back from SF2 (last hop): to the host, untouched", "sf2o", w.clone(), PASS, Out::Unchanged, FromSf, None),
        // Loop guard: a packet of a known flow that comes back to its entry port with less TTL
        // than the flow started with (64) has been routed around: dropped.
        Case::new("known flow back at its entry port with TTL 63: loop, dropped", "src0", packets::v4_ttl(CLIENT, SERVER, 63, L4::Tcp(40_000, 80)), DROP, Out::Unchanged, Count::Drop(DropReason::Loop), None),
        Case::steered("known flow with TTL 65: steered", packets::v4_ttl(CLIENT, SERVER, 65, L4::Tcp(40_000, 80)), "web", "sf1i", "pp1"),
        Case::new("chain flow on an SF egress not on its path", "sf3", w.clone(), PASS, Out::Unchanged, Unclassified, None),
        Case::untouched("other destination port", "src0", v4(CLIENT, SERVER, L4::Tcp(40_001, 81))),
        Case::untouched("other protocol (UDP to port 80)", "src0", v4(CLIENT, SERVER, L4::Udp(40_002, 80))),
        Case::untouched("ICMP echo", "src0", v4(CLIENT, SERVER, L4::Echo)),
        Case::untouched("other source interface (a fresh web-shaped flow on src1)", "src1", web(40_003)),
        Case::untouched("ARP", "src0", packets::arp(CLIENT, SERVER)),
        Case::untouched("IPv6 on an IPv4-only match (same ports)", "src0", v6(V6_CLIENT, v6_addr("::ffff:10.0.0.20"), L4::Tcp(40_004, 80))),
        Case::untouched("web-shaped packet on the destination port", "dst0", web(40_005)),
        Case::new("interface without a role: not even counted", "idle0", web(40_006), PASS, Out::Unchanged, Nothing, None),
        Case::new("interface without a role, known flow", "idle0", w, PASS, Out::Unchanged, Nothing, None),
        // Chain `udp` ends at a logical destination port: redirected there, addressed to the MAC
        // behind it (after routing SFs it carries the last SF's gateway's).
        Case::steered("UDP in the port ranges: into SF3", udp.clone(), "udp", "sf3", "pp3"),
        Case::new("back from SF3 (ingress = egress): delivered to dst0, addressed to what is behind it", "sf3", udp, REDIRECT, Out::DstMacOf("dst0"), FromSf, None),
        Case::steered("IPv6 TCP 443: into SF4", web_v6(40_007), "v6", "sf4", "pp4"),
        Case::steered_on("src1", "UDP 53 on src1: its own chain", v4(CLIENT, SERVER, L4::Udp(40_008, 53)), "dns", "sf8", "ppdns"),
        Case::untouched("UDP 53 on src0: that classifier is on src1", "src0", v4(CLIENT, SERVER, L4::Udp(40_009, 53))),
        // Symmetric chain: forward through SS1, SS2 to dst0; the reply from dst0 back through
        // SS2 (entering at its egress), SS1, to src0.
        // networking-sfc installs a symmetric chain's reverse classifier as a flow rule of its
        // own: a reply-shaped packet takes the reverse path whether the forward flow was seen.
        Case::new("reply-shaped packet on dst0 before the flow exists: the reverse path", "dst0", sym_reply.clone(), REDIRECT, Out::DstMacOf("ss2o"), Count::ReplyRecomputed, rev("sym", 1, "pps2")),
        Case::steered("symmetric chain, forward: into SS1", sym.clone(), "sym", "ss1i", "pps1"),
        Case::new("symmetric, forward: SS1 -> SS2", "ss1o", sym.clone(), REDIRECT, Out::DstMacOf("ss2i"), FromSf, fwd("sym", 1, "pps2")),
        Case::new("symmetric, forward: SS2 -> dst0", "ss2o", sym, REDIRECT, Out::DstMacOf("dst0"), FromSf, None),
        Case::new("symmetric, reply on dst0: into SS2's egress", "dst0", sym_reply.clone(), REDIRECT, Out::DstMacOf("ss2o"), Classified, rev("sym", 1, "pps2")),
        Case::new("symmetric, reply back out of SS2's ingress: into SS1's egress", "ss2i", sym_reply.clone(), REDIRECT, Out::DstMacOf("ss1o"), FromSf, rev("sym", 0, "pps1")),
        Case::new("symmetric, reply back out of SS1's ingress: to src0", "ss1i", sym_reply.clone(), REDIRECT, Out::DstMacOf("src0"), FromSf, None),
        // A new generation (an unrelated member went down): the reverse entry is re-resolved at
        // dst0 like the forward one at src0, not followed blindly.
        Case::new("symmetric, a reply after a new generation: re-resolved, into SS2's egress", "dst0", sym_reply, REDIRECT, Out::DstMacOf("ss2o"), Classified, rev("sym", 1, "pps2"))
            .with_setup(Setup::InterfaceDown("sf6")),
    ]
}

fn steering(mode: AttachMode) {
    let mut fx = fixture(mode);
    check_table(&mut fx, &steering_cases());
}

/// A flow belongs to the port it entered on: a packet with an established flow's 5-tuple
/// arriving on a *different* logical source port (where no classifier matches it, e.g. another
/// tenant reusing the same addresses) must not be steered by that flow.
fn known_flow_on_another_source_port(mode: AttachMode) {
    let mut fx = fixture(mode);
    let w = web(40_100);
    check_table(&mut fx, &[
        Case::steered("web flow on src0", w.clone(), "web", "sf1i", "pp1"),
        Case::untouched("the same 5-tuple on src1, where no classifier matches it", "src1", w),
    ]);
}

// ---- 4: classifier boundaries ---------------------------------------------------------------------

fn boundary_cases() -> Vec<Case> {
    let mut sport = 41_000u16;
    let mut next = || {
        sport += 1;
        sport
    };
    let web4 = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| v4(src, dst, L4::Tcp(sport, dport));
    let udp4 = |sport: u16, dport: u16| v4(CLIENT, SERVER, L4::Udp(sport, dport));
    let v6to = |dst: &str, sport: u16, dport: u16| v6(V6_CLIENT, v6_addr(dst), L4::Tcp(sport, dport));
    let web_in = |what, p| Case::steered(what, p, "web", "sf1i", "pp1");
    let udp_in = |what, p| Case::steered(what, p, "udp", "sf3", "pp3");
    let v6_in = |what, p| Case::steered(what, p, "v6", "sf4", "pp4");
    let out = |what, p| Case::untouched(what, "src0", p);
    vec![
        out("web: destination port 79", web4(CLIENT, SERVER, next(), 79)),
        web_in("web: destination port 80", web4(CLIENT, SERVER, next(), 80)),
        out("web: destination port 81", web4(CLIENT, SERVER, next(), 81)),
        out("web: destination 9.255.255.255 (just below 10.0.0.0/24)", web4(CLIENT, [9, 255, 255, 255], next(), 80)),
        web_in("web: destination 10.0.0.0 (first)", web4(CLIENT, [10, 0, 0, 0], next(), 80)),
        web_in("web: destination 10.0.0.255 (last)", web4(CLIENT, [10, 0, 0, 255], next(), 80)),
        out("web: destination 10.0.1.0 (just above)", web4(CLIENT, [10, 0, 1, 0], next(), 80)),
        out("web: source 192.168.0.255 (just below 192.168.1.0/24)", web4([192, 168, 0, 255], SERVER, next(), 80)),
        web_in("web: source 192.168.1.0 (first)", web4([192, 168, 1, 0], SERVER, next(), 80)),
        web_in("web: source 192.168.1.255 (last)", web4([192, 168, 1, 255], SERVER, next(), 80)),
        out("web: source 192.168.2.0 (just above)", web4([192, 168, 2, 0], SERVER, next(), 80)),
        out("udp: destination port 999 (min - 1)", udp4(3000, 999)),
        udp_in("udp: destination port 1000 (min)", udp4(3000, 1000)),
        udp_in("udp: destination port 2000 (max)", udp4(3000, 2000)),
        out("udp: destination port 2001 (max + 1)", udp4(3000, 2001)),
        out("udp: source port 1023 (min - 1)", udp4(1023, 1500)),
        udp_in("udp: source port 1024 (min)", udp4(1024, 1500)),
        udp_in("udp: source port 4999 (max)", udp4(4999, 1500)),
        out("udp: source port 5000 (max + 1)", udp4(5000, 1500)),
        Case::steered_on("src1", "SCTP destination port 3868", packets::v4_proto(CLIENT, SERVER, IpNumber::SCTP, &packets::sctp(next(), 3868)), "dns", "sf8", "ppdns"),
        Case::untouched("SCTP destination port 3869", "src1", packets::v4_proto(CLIENT, SERVER, IpNumber::SCTP, &packets::sctp(next(), 3869))),
        Case::steered_on("src1", "any protocol to 10.99.0.0/16: ICMP", v4(CLIENT, [10, 99, 0, 1], L4::Echo), "dns", "sf8", "ppdns"),
        Case::steered_on("src1", "any protocol to 10.99.0.0/16: GRE", packets::v4_proto(CLIENT, [10, 99, 255, 255], IpNumber::GRE, &[0, 0, 0x08, 0, 1, 2, 3, 4]), "dns", "sf8", "ppdns"),
        Case::steered_on("src1", "any protocol to 10.99.0.0/16: TCP", v4(CLIENT, [10, 99, 1, 1], L4::Tcp(next(), 22)), "dns", "sf8", "ppdns"),
        Case::untouched("any protocol, 10.98.255.255 (just below 10.99.0.0/16)", "src1", v4(CLIENT, [10, 98, 255, 255], L4::Echo)),
        Case::untouched("any protocol, 10.100.0.0 (just above)", "src1", packets::v4_proto(CLIENT, [10, 100, 0, 0], IpNumber::GRE, &[0, 0, 0x08, 0, 1, 2, 3, 4])),
        out("v6: destination port 442", v6to("2001:db8:1::20", next(), 442)),
        v6_in("v6: destination port 443", v6to("2001:db8:1::20", next(), 443)),
        out("v6: destination port 444", v6to("2001:db8:1::20", next(), 444)),
        out("v6: destination 2001:db8:0:ffff:ffff:ffff:ffff:ffff (just below)", v6to("2001:db8:0:ffff:ffff:ffff:ffff:ffff", next(), 443)),
        v6_in("v6: destination 2001:db8:1:: (first)", v6to("2001:db8:1::", next(), 443)),
        v6_in("v6: destination 2001:db8:1::ffff:ffff:ffff:ffff (last)", v6to("2001:db8:1::ffff:ffff:ffff:ffff", next(), 443)),
        out("v6: destination 2001:db8:1:1:: (just above)", v6to("2001:db8:1:1::", next(), 443)),
    ]
}

fn classifier_boundaries(mode: AttachMode) {
    let mut fx = fixture(mode);
    check_table(&mut fx, &boundary_cases());
}

// ---- 5: encapsulations, options, extension headers, fragments -------------------------------------

fn encapsulation_cases() -> Vec<Case> {
    let web_in = |what, p| Case::steered(what, p, "web", "sf1i", "pp1");
    let v6_in = |what, p| Case::steered(what, p, "v6", "sf4", "pp4");
    let qinq = packets::v4_qinq(100, 200, CLIENT, SERVER, 42_002, 80);
    let plain_v6 = web_v6(42_020);
    // Fragments. A first fragment (offset 0, more fragments) carries the ports and is classified;
    // later fragments carry none. Observed behaviour: the datapath remembers which flow a first
    // fragment was steered with (by addresses, protocol and IP id) and sends later fragments of
    // the same packet along the same path, on the source port and on the SF egress alike; a later
    // fragment whose first fragment it has not seen is left alone (unclassified).
    let first = v4_with(packets::ipv4_fragment(CLIENT, SERVER, 0x1234, 0, true), L4::Tcp(42_030, 80));
    let later = packets::v4_later_fragment(CLIENT, SERVER, IpNumber::TCP, 0x1234, 185);
    let orphan = packets::v4_later_fragment(CLIENT, SERVER, IpNumber::TCP, 0x4321, 185);
    let first6 = v6_with(V6_CLIENT, V6_SERVER, packets::ipv6_fragment(0x7777, 0, true), L4::Tcp(42_031, 443));
    let later6 = packets::v6_later_fragment(V6_CLIENT, V6_SERVER, 0x7777, 185);
    let orphan6 = packets::v6_later_fragment(V6_CLIENT, V6_SERVER, 0x7778, 185);
    vec![
        web_in("802.1Q tagged", packets::v4_vlan(100, CLIENT, SERVER, 42_001, 80)),
        web_in("double-tagged (802.1ad + 802.1Q)", qinq.clone()),
        Case::malformed("three VLAN tags (over MAX_VLAN_DEPTH)", packets::push_vlan(&qinq, 300)),
        Case::untouched("802.1Q tagged ARP", "src0", packets::push_vlan(&packets::arp(CLIENT, SERVER), 100)),
        web_in("IPv4 with 8 bytes of options", v4_with(packets::ipv4_header_with_options(CLIENT, SERVER, 8), L4::Tcp(42_003, 80))),
        web_in("IPv4 with 40 bytes of options (IHL 15)", v4_with(packets::ipv4_header_with_options(CLIENT, SERVER, 40), L4::Tcp(42_004, 80))),
        v6_in("IPv6 with hop-by-hop and destination options", v6_with(V6_CLIENT, V6_SERVER, packets::hbh_and_dstopts(), L4::Tcp(42_010, 443))),
        v6_in("IPv6 with an authentication header", v6_with(V6_CLIENT, V6_SERVER, packets::auth_header(), L4::Tcp(42_011, 443))),
        v6_in("IPv6 with 6 extension headers (MAX_IPV6_EXT_HEADERS)", packets::with_ipv6_ext_chain(&plain_v6, 6)),
        web_in("IPv4 first fragment", first.clone()),
        web_in("IPv4 later fragment of that packet: follows it", later.clone()),
        Case::new("IPv4 first fragment back from SF1", "sf1o", first, REDIRECT, Out::DstMacOf("sf2i"), Count::FromSf, fwd("web", 1, "pp2")),
        Case::new("IPv4 later fragment back from SF1", "sf1o", later, REDIRECT, Out::DstMacOf("sf2i"), Count::FromSf, fwd("web", 1, "pp2")),
        Case::untouched("IPv4 later fragment, first fragment never seen", "src0", orphan),
        v6_in("IPv6 first fragment", first6),
        v6_in("IPv6 later fragment of that packet: follows it", later6),
        Case::untouched("IPv6 later fragment, first fragment never seen", "src0", orphan6),
        Case::untouched("IPv4 later fragment on an SF egress, never seen", "sf1o", packets::v4_later_fragment(CLIENT, SERVER, IpNumber::TCP, 0x5555, 10)),
        Case::untouched("UDP first fragment to port 80: the classifier wants TCP", "src0", v4_with(packets::ipv4_fragment(CLIENT, SERVER, 0x99, 0, true), L4::Udp(42_040, 80))),
        web_in("the double-tagged flow again (known flow)", qinq),
    ]
}

fn encapsulations(mode: AttachMode) {
    let mut fx = fixture(mode);
    check_table(&mut fx, &encapsulation_cases());
}

/// Extension headers after an IPv6 fragment header belong to the fragmentable part (RFC 8200
/// 4.5): the first fragment carries them before the transport header, and every later fragment's
/// fragment header names the first of them (here destination options, 60), not the transport.
/// The later fragment must still follow its first fragment.
fn ipv6_fragments_with_extension_header_after_the_fragment_header(mode: AttachMode) {
    let mut fx = fixture(mode);
    let first = packets::with_dstopts_after_fragment(&v6_with(V6_CLIENT, V6_SERVER, packets::ipv6_fragment(0x7779, 0, true), L4::Tcp(42_032, 443)));
    let later = packets::with_fragment_next_header(&packets::v6_later_fragment(V6_CLIENT, V6_SERVER, 0x7779, 185), 60);
    check_table(&mut fx, &[
        Case::steered("first fragment, destination options after the fragment header", first, "v6", "sf4", "pp4"),
        Case::steered("later fragment (its fragment header says: destination options)", later, "v6", "sf4", "pp4"),
    ]);
}

// ---- offloads a local sender leaves to the interface ------------------------------------------------

/// Frames as a sender on this host hands them to a veth: TCP and UDP checksums left to offload
/// (`CHECKSUM_PARTIAL`: the field holds the pseudo-header sum), an SCTP CRC left at zero, and a
/// frame too large for the SF's interface. tc redirects the skb, which keeps the offload note,
/// so it changes nothing; XDP turns the frame into an `xdp_frame` without that note, so it must
/// complete the checksum (over payloads of one to three 512-byte chunks, odd lengths included),
/// and what it cannot send correctly it drops and counts.
fn offload_cases(mode: AttachMode) -> Vec<Case> {
    use Count::{Classified, Drop};
    let xdp = mode == AttachMode::Xdp;
    // Sent into `sf`: by tc as it came, by XDP with its checksum completed (= `full`).
    let completed = |what, on, full: Vec<u8>, chain, sf, pp| {
        let out = if xdp { Out::FrameTo(sf, full.clone()) } else { Out::DstMacOf(sf) };
        Case::new(what, on, csum::offloaded(&full), REDIRECT, out, Classified, fwd(chain, 0, pp))
    };
    let web_with = |sport, n| packets::v4_payload(CLIENT, SERVER, L4::Tcp(sport, 80), &packets::payload(n));
    let v6_with_payload = |sport, n| packets::v6_payload(V6_CLIENT, V6_SERVER, L4::Tcp(sport, 443), &packets::payload(n));
    let udp_with = |sport, n| packets::v4_payload(CLIENT, [10, 0, 5, 5], L4::Udp(sport, 1500), &packets::payload(n));
    let mut no_udp_csum = udp_with(2001, 100);
    let at = csum::transport(&no_udp_csum).and_then(|t| t.check_off()).expect("udp");
    no_udp_csum[at..at + 2].copy_from_slice(&[0, 0]);
    let sctp_offloaded = packets::v4_proto(CLIENT, SERVER, IpNumber::SCTP, &packets::sctp_offloaded(46_010, 3868));
    let too_big = udp_with(2002, 1300);
    vec![
        completed("TCP, offloaded checksum, 19-byte payload (one chunk)", "src0", web(46_000), "web", "sf1i", "pp1"),
        completed("TCP, offloaded checksum, 1,400-byte payload (three chunks)", "src0", web_with(46_001, 1400), "web", "sf1i", "pp1"),
        completed("TCP, offloaded checksum, 1,001-byte payload (odd length)", "src0", web_with(46_002, 1001), "web", "sf1i", "pp1"),
        completed("TCP, offloaded checksum, 492 bytes: header + payload exactly one chunk", "src0", web_with(46_003, 492), "web", "sf1i", "pp1"),
        completed("IPv6 TCP, offloaded checksum, 700-byte payload", "src0", v6_with_payload(46_004, 700), "v6", "sf4", "pp4"),
        completed("UDP, offloaded checksum, 900-byte payload", "src0", udp_with(2000, 900), "udp", "sf3", "pp3"),
        Case::steered("UDP without a checksum (0): left at 0", no_udp_csum, "udp", "sf3", "pp3"),
        if xdp {
            Case::new("SCTP with an offloaded (zero) CRC32c: dropped", "src1", sctp_offloaded, DROP, Out::Unchanged, Drop(DropReason::ChecksumOffload), None)
        } else {
            Case::steered_on("src1", "SCTP with an offloaded (zero) CRC32c: the skb keeps the note", sctp_offloaded, "dns", "sf8", "ppdns")
        },
        // sf3's MTU is 1,280 here (see `offloads`): a 1,328-byte IP packet does not fit.
        if xdp {
            Case::new("UDP larger than the SF interface's MTU: dropped", "src0", too_big, DROP, Out::Unchanged, Drop(DropReason::TooBig), None)
        } else {
            Case::steered("UDP larger than the SF interface's MTU: tc hands the skb over as it is", too_big, "udp", "sf3", "pp3")
        },
    ]
}

fn offloads(mode: AttachMode) {
    let mut fx = fixture(mode);
    fx.set_mtu("sf3", 1280);
    let cases = offload_cases(mode);
    for c in cases.iter().filter(|c| matches!(c.out, Out::FrameTo(..))) {
        if let Out::FrameTo(_, full) = &c.out {
            assert_eq!(csum::transport_ok(full), Some(true), "{}: the expected frame's checksum", c.what);
            assert_eq!(csum::transport_ok(&c.packet), Some(false), "{}: the offloaded frame's checksum", c.what);
        }
    }
    check_table(&mut fx, &cases);
}

// ---- 6: hostile input -------------------------------------------------------------------------------

fn hostile_cases() -> Vec<Case> {
    let w = web(43_000);
    let ipv6_as_v4 = packets::with_ethertype(&web_v6(43_001), 0x0800);
    let mut v4_in_v6 = packets::with_ethertype(&web(43_002), 0x86dd);
    v4_in_v6.resize(14 + 40 + 20, 0); // long enough for an IPv6 header: only the version is wrong
    let mut ext_too_long = packets::with_ipv6_ext_chain(&web_v6(43_003), 1);
    ext_too_long[14 + 40 + 1] = 255; // hdr_ext_len: 2048 bytes, far beyond the frame
    vec![
        Case::malformed("IPv4 IHL 4", packets::with_vihl(&w, 0x44)),
        Case::malformed("IPv4 IHL 0", packets::with_vihl(&w, 0x40)),
        Case::malformed("version 6 in the IPv4 ethertype", packets::with_vihl(&w, 0x65)),
        Case::malformed("an IPv6 packet in the IPv4 ethertype", ipv6_as_v4),
        Case::malformed("version 4 in the IPv6 ethertype", v4_in_v6),
        Case::malformed("IPv4 IHL 15 in a frame shorter than 60 header bytes", packets::ipv4_header_longer_than_frame(CLIENT, SERVER)),
        Case::malformed("IPv6 with 7 extension headers (over MAX_IPV6_EXT_HEADERS)", packets::with_ipv6_ext_chain(&web_v6(43_004), 7)),
        Case::malformed("IPv6 with 12 extension headers", packets::with_ipv6_ext_chain(&web_v6(43_005), 12)),
        Case::malformed("IPv6 extension header longer than the frame", ext_too_long),
        // Untagged IPv4/IPv6 frames shorter than their IP header cannot be run (see
        // `common::kernel_refuses`); behind a VLAN tag the kernel does not look, so these reach
        // the parser's "no IP header" paths.
        Case::malformed("802.1Q tag, then nothing (inner ethertype IPv4)", packets::bare_vlan(0x0800)),
        Case::malformed("802.1Q tag, then nothing (inner ethertype IPv6)", packets::bare_vlan(0x86dd)),
        Case::malformed("802.1Q tag, then 19 bytes of an IPv4 header", packets::push_vlan(&web(43_007), 7)[..14 + 4 + 19].to_vec()),
        Case::malformed("Ethernet header only, 802.1Q ethertype", packets::bare_ethernet(0x8100)),
        Case::untouched("Ethernet header only, ARP ethertype", "src0", packets::bare_ethernet(0x0806)),
        Case::malformed("TCP ports cut in half", w[..14 + 20 + 3].to_vec()),
        // Observed and intended: the IPv4 total length is not checked against the frame; BIG TCP
        // GSO packets carry a total length of 0, and they must be steered like any other.
        Case::steered("IPv4 total length 0 (as BIG TCP GSO packets carry)", packets::with_ipv4_total_len(&web(43_006), 0), "web", "sf1i", "pp1"),
    ]
}

fn hostile_inputs(mode: AttachMode) {
    let mut fx = fixture(mode);
    check_table(&mut fx, &hostile_cases());
}

/// Every truncation (0 bytes to full length) of classifiable packets: each length the program
/// runs on is passed untouched and counted malformed while the ports are cut off, and steered
/// (output = input with the SF's MAC) once they are complete; the interface counters account for
/// every run. Lengths `BPF_PROG_TEST_RUN` refuses (`common::kernel_refuses`: shorter than an
/// Ethernet header, or untagged and shorter than the IP header) must fail with EINVAL and change
/// no counter; the tagged variants cover those truncation points inside the IP headers.
fn truncation_at_every_length(mode: AttachMode) {
    let fx = fixture(mode);
    let sweeps: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        // (what, packet, bytes up to and including the ports, SF)
        ("IPv4 TCP", web(44_000), 14 + 20 + 4, "sf1i"),
        ("IPv4 TCP with 8 bytes of options", v4_with(packets::ipv4_header_with_options(CLIENT, SERVER, 8), L4::Tcp(44_001, 80)), 14 + 28 + 4, "sf1i"),
        ("QinQ IPv4 TCP", packets::v4_qinq(1, 2, CLIENT, SERVER, 44_002, 80), 14 + 8 + 20 + 4, "sf1i"),
        ("IPv6 TCP with hop-by-hop + destination options", v6_with(V6_CLIENT, V6_SERVER, packets::hbh_and_dstopts(), L4::Tcp(44_003, 443)), 14 + 40 + 16 + 4, "sf4"),
        ("802.1Q IPv6 TCP with hop-by-hop + destination options", packets::push_vlan(&v6_with(V6_CLIENT, V6_SERVER, packets::hbh_and_dstopts(), L4::Tcp(44_004, 443)), 5), 14 + 4 + 40 + 16 + 4, "sf4"),
    ];
    let mut failures = Vec::new();
    for (what, pkt, ports_end, sf) in &sweeps {
        let before = fx.counters();
        let (mut runs, mut want_malformed, mut want_classified) = (0u64, 0u64, 0u64);
        for len in 0..=pkt.len() {
            let input = &pkt[..len];
            let r = fx.try_run("src0", input);
            if common::kernel_refuses(fx.mode, input) {
                if r.is_ok() {
                    failures.push(format!("{what} cut to {len} bytes: the kernel ran it (expected EINVAL)"));
                }
                continue;
            }
            runs += 1;
            let Ok(o) = r else {
                failures.push(format!("{what} cut to {len} bytes: run failed: {r:?}"));
                continue;
            };
            let (want_verdict, want_out) = if len < *ports_end {
                want_malformed += 1;
                (PASS, input.to_vec())
            } else {
                want_classified += 1;
                (REDIRECT, with_dst_mac(input, mac_of(sf)))
            };
            if o.verdict != want_verdict || o.data != want_out {
                failures.push(format!("{what} cut to {len} bytes: verdict {} (want {want_verdict}), output as expected: {}", o.verdict, o.data == want_out));
            }
        }
        let d = fx.counters().since(&before);
        let src = d.ifs.get(&fx.ifindex("src0")).copied().unwrap_or_default();
        if d.if_packets() != runs || d.drop_packets() != 0 || src.malformed != want_malformed || src.classified != want_classified {
            failures.push(format!(
                "{what}: {runs} runs, counters {:?}, drops {:?} (want {want_malformed} malformed + {want_classified} classified on src0)",
                d.ifs, d.drops
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- group failure policies ------------------------------------------------------------------------

fn failure_cases() -> Vec<Case> {
    use Count::{Classified, Drop};
    let fo = |sport| v4(CLIENT, SERVER, L4::Udp(sport, 6000));
    let fc = |sport| v4(CLIENT, SERVER, L4::Udp(sport, 6001));
    let no_member = Drop(DropReason::NoMember);
    vec![
        Case::steered("fail-open chain, member up: hop 0", fo(45_000), "failopen", "sf5", "ppfo"),
        Case::steered("fail-closed chain, member up: hop 0", fc(45_001), "failclosed", "sf6", "ppfc"),
        Case::new("fail-open group's only member down: new flow skips hop 0", "src0", fo(45_002), REDIRECT, Out::DstMacOf("sf7"), Classified, fwd("failopen", 1, "pp7"))
            .with_setup(Setup::InterfaceDown("sf5")),
        Case::new("fail-open, existing flow: moves off the down member, skips hop 0", "src0", fo(45_000), REDIRECT, Out::DstMacOf("sf7"), Classified, fwd("failopen", 1, "pp7")),
        Case::new("fail-closed group's only member down: new flow dropped", "src0", fc(45_003), DROP, Out::Unchanged, no_member, None)
            .with_setup(Setup::InterfaceDown("sf6")),
        Case::new("fail-closed, existing flow: its member is down, dropped", "src0", fc(45_001), DROP, Out::Unchanged, no_member, None),
        Case::steered("other chains are not affected", web(45_004), "web", "sf1i", "pp1"),
    ]
}

fn failure_policies(mode: AttachMode) {
    let mut fx = fixture(mode);
    check_table(&mut fx, &failure_cases());
}

// ---- classification against the model ---------------------------------------------------------

/// Builds a probe near one classifier of `CHAINS`: every field at a boundary of that classifier,
/// inside it, or random; sometimes on the other source port, in the other address family, or
/// with another protocol.
fn probe(model: &sfc::model::Model, c: Choices) -> Probe {
    use sfc::model::Ethertype;
    let (fc, flip, sm, sr, dm, dr, spm, spr, dpm, dpr, pm) = c;
    let fc = &model.flow_classifiers[fc % model.flow_classifiers.len()];
    let v6 = (fc.ethertype == Ethertype::IPv6) != (flip == 1);
    let on_src1 = (fc.logical_source_port == "src1") != (flip == 2);
    let bits = if v6 { 128 } else { 32 };
    let any = sfc::model::Prefix::any(if v6 { Ethertype::IPv6 } else { Ethertype::IPv4 });
    let (sp, dp) = if flip == 1 { (&any, &any) } else { (&fc.source_prefix, &fc.destination_prefix) };
    // src0 and src1 may send the very same 5-tuples: they are separate zones (as two tenants'
    // networks are), so a flow on one never steers the other's packets.
    let src = address(sp, bits, sm, sr);
    let dst = address(dp, bits, dm, dr);
    let protos = [6u8, 17, 132, 1, 47];
    let proto = match (fc.protocol, pm) {
        (Some(p), 0..=5) => if p == 58 { 1 } else { p },
        _ => protos[usize::from(pm) % protos.len()],
    };
    Probe {
        iface: if on_src1 { "src1" } else { "src0" },
        v6,
        proto,
        src,
        dst,
        sport: port(fc.source_ports, spm, spr),
        dport: port(fc.destination_ports, dpm, dpr),
    }
}

/// Random well-formed packets near every classifier of `CHAINS` (each field at a boundary, inside,
/// or random; sometimes on the other source port or in the other family): the datapath classifies a packet into a chain exactly when the model's own
/// definition of a classifier match says so, and sends it to a member of that chain's first
/// group. This checks the classifier compiler (prefix splitting of port ranges, the staged trie)
/// against the model, through the kernel. Shrinks to a minimal packet on failure.
fn classification_matches_the_model(mode: AttachMode) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let fx = fixture(mode);
    let cases = std::env::var("SFC_PROBES").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&choices(), |c| {
        let p = probe(&fx.model, c);
        let (chains, macs) = expected_by_model(&fx, &p);
        if chains.len() > 1 {
            return Err(TestCaseError::fail(format!("fixture config: {p:?} matches chains {chains:?}")));
        }
        let pkt = p.packet();
        let o = fx.run(p.iface, &pkt);
        let ok = if chains.is_empty() {
            o.verdict == PASS && o.data == pkt
        } else {
            o.verdict == REDIRECT && o.data[6..] == pkt[6..] && macs.iter().any(|m| o.data[..6] == *m)
        };
        if ok {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "{p:?}: model says chains {chains:?} (first hop MACs {macs:02x?}); datapath: verdict {}, destination MAC {:02x?}",
                o.verdict,
                &o.data[..6]
            )))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- 7: weighted group ----------------------------------------------------------------------------

/// 2,000 distinct flows through a group with weights 1 and 3: the members' shares (from the hop
/// counters) within 5 percentage points of 25% / 75%; every flow's second packet takes the same
/// member as its first.
fn weighted_group_shares(mode: AttachMode) {
    const FLOWS: u16 = 2_000;
    let fx = fixture(mode);
    let before = fx.counters();
    let mut member_of = Vec::new();
    for i in 0..FLOWS {
        let src = [172, 16, u8::try_from(i / 250).expect("small"), u8::try_from(i % 250).expect("small")];
        let p = v4(src, SERVER, L4::Udp(10_000 + i, 5000));
        let o = fx.run("src0", &p);
        assert_eq!(o.verdict, REDIRECT, "flow {i}");
        member_of.push((p, o.data[..6].to_vec()));
    }
    let d = fx.counters().since(&before);
    let share = |pp: &str| {
        let k = HopStatsKey { chain_id: fx.chain_id("weighted"), hop: 0, port_pair: fx.port_pair_id(pp), dir: DIR_FORWARD };
        d.hops.get(&k).map_or(0, |c| c.packets)
    };
    let (a, b) = (share("ppa"), share("ppb"));
    assert_eq!(a + b, u64::from(FLOWS), "hop counters {:?}", d.hops);
    #[expect(clippy::cast_precision_loss, reason = "counts of a few thousand")]
    let pct_a = 100.0 * a as f64 / f64::from(FLOWS);
    println!("weighted group: ppa {a} ({pct_a:.1}%), ppb {b} ({:.1}%)", 100.0 - pct_a);
    assert!((pct_a - 25.0).abs() <= 5.0, "ppa (weight 1) got {pct_a:.1}% of {FLOWS} flows, want 25% +- 5");
    for (i, (p, mac)) in member_of.iter().enumerate() {
        let o = fx.run("src0", p);
        assert_eq!(&o.data[..6], mac.as_slice(), "flow {i} changed member on its second packet");
        assert!(*mac == mac_of("sfa") || *mac == mac_of("sfb"), "flow {i} went to {mac:02x?}");
    }
}

// ---- 8: randomized ----------------------------------------------------------------------------------

/// XDP completes a checksum that looks offloaded (it equals the pseudo-header sum): a mutated
/// packet may look like that. Then the output may differ from the input only in the TCP/UDP
/// checksum field, and only to make it right.
fn only_checksum_completed(input: &[u8], output: &[u8]) -> bool {
    let Some(at) = csum::transport(input).and_then(|t| t.check_off()) else { return false };
    output[6..at] == input[6..at] && output[at + 2..] == input[at + 2..] && csum::transport_ok(output) == Some(true)
}

/// The valid packets the fuzzer mutates: every shape the tables use.
fn fuzz_corpus() -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = Vec::new();
    for t in [steering_cases(), boundary_cases(), encapsulation_cases(), hostile_cases(), failure_cases(), offload_cases(AttachMode::Xdp)] {
        c.extend(t.into_iter().map(|c| c.packet));
    }
    c
}

/// A few hundred thousand mutated packets on random interfaces (all roles, and one without a
/// role): every verdict is OK, SHOT or REDIRECT; OK leaves the bytes untouched; REDIRECT changes
/// at most the Ethernet destination, to an SF's MAC; and every packet on an interface with a role
/// is counted exactly once (interface counters + drops = runs). Packets on the interface without
/// a role are not counted anywhere, by design (the program returns before looking at them);
/// frames the kernel refuses to run (`common::kernel_refuses`) never reach the program.
/// Seed: `SFC_FUZZ_SEED` or the clock; printed. Size: `SFC_FUZZ_PACKETS` (default 300,000).
fn fuzz(mode: AttachMode) {
    let seed = std::env::var("SFC_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    let n: u64 = std::env::var("SFC_FUZZ_PACKETS").ok().and_then(|s| s.parse().ok()).unwrap_or(300_000);
    println!("fuzz: seed {seed} (set SFC_FUZZ_SEED={seed} to replay), {n} packets");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut fx = fixture(mode);
    // A fail-closed group whose only member is down: new flows of its chain are dropped, so SHOT
    // verdicts and drop counters take part too.
    fx.set_interface_down("sf6");
    let corpus = fuzz_corpus();
    let mut ifaces: Vec<(&str, u32)> = ROLE_IFACES.iter().map(|n| (*n, fx.ifindex(n))).collect();
    ifaces.push(("idle0", fx.ifindex("idle0")));
    let sf_macs: Vec<[u8; 6]> = ROLE_IFACES.iter().map(|n| mac_of(n)).collect();

    let before = fx.counters();
    let started = Instant::now();
    let (mut counted, mut uncounted, mut refused) = (0u64, 0u64, 0u64);
    let mut verdicts: BTreeMap<u32, u64> = BTreeMap::new();
    for i in 0..n {
        let p = common::mutate::mutate(&mut rng, &corpus);
        // Source ports get most packets: that is where flows are created.
        let (name, ifindex) = if rng.random_bool(0.5) { ifaces[0] } else { ifaces[rng.random_range(0..ifaces.len())] };
        let r = fx.try_run_ifindex(ifindex, &p);
        if common::kernel_refuses(fx.mode, &p) {
            assert!(r.is_err(), "seed {seed} packet {i} on {name}: the kernel ran a frame it should refuse: {p:02x?}");
            refused += 1;
            continue;
        }
        let o = r.unwrap_or_else(|e| panic!("seed {seed} packet {i} on {name}: run failed: {e:?}\n{p:02x?}"));
        *verdicts.entry(o.verdict).or_default() += 1;
        let ok = match o.verdict {
            PASS | DROP => o.data == p,
            REDIRECT => {
                o.data.len() == p.len()
                    && (o.data[6..] == p[6..] || (fx.mode == AttachMode::Xdp && only_checksum_completed(&p, &o.data)))
                    && (o.data[..6] == p[..6] || sf_macs.iter().any(|m| o.data[..6] == *m))
            }
            _ => false,
        };
        assert!(ok, "seed {seed} packet {i} on {name}: verdict {}, input {p:02x?}, output {:02x?}", o.verdict, o.data);
        if name == "idle0" {
            assert_eq!(o.verdict, PASS, "seed {seed} packet {i}: an interface without a role must be left alone");
            uncounted += 1;
        } else {
            counted += 1;
        }
    }
    let elapsed = started.elapsed();
    let d: Delta = fx.counters().since(&before);
    println!(
        "fuzz: {n} packets in {elapsed:.2?} ({:.1} us each); {refused} refused by the kernel; verdicts {verdicts:?}; {} flows in the table; counters {:?}; drops {:?}",
        elapsed.as_secs_f64() * 1e6 / f64::from(u32::try_from(n).unwrap_or(u32::MAX)),
        fx.flow_count(),
        d.ifs.values().fold(IfStats::default(), |a, s| IfStats {
            classified: a.classified + s.classified,
            unclassified: a.unclassified + s.unclassified,
            from_sf: a.from_sf + s.from_sf,
            malformed: a.malformed + s.malformed,
            recomputed: a.recomputed + s.recomputed,
        }),
        d.drops,
    );
    assert!(!d.ifs.contains_key(&fx.ifindex("idle0")), "seed {seed}: counters for the interface without a role: {:?}", d.ifs);
    assert_eq!(
        d.if_packets() + d.drop_packets(),
        counted,
        "seed {seed}: {counted} packets on interfaces with a role ({uncounted} without), but counters {:?} and drops {:?}",
        d.ifs,
        d.drops
    );
}

/// A steered flow whose classifier is removed by an update is left alone from its next packet on
/// (the chain is not visited), and the TTL loop guard no longer applies to it: a packet with a
/// lower TTL than the flow started with is not a loop when nothing steers it.
fn flow_left_alone_after_its_classifier_is_removed(mode: AttachMode) {
    let mut fx = fixture(mode);
    let syn = |ttl| packets::v4_ttl(CLIENT, SERVER, ttl, L4::Tcp(40_900, 80));
    let first = fx.run("src0", &syn(64));
    assert_eq!(first.verdict, REDIRECT, "steered before the update");

    fx.reconfigure(&CHAINS.replace("flow_classifiers: [web]}", "flow_classifiers: []}"));
    let before = fx.counters();
    for ttl in [64, 60] {
        let out = fx.run("src0", &syn(ttl));
        assert_eq!(out.verdict, PASS, "TTL {ttl}: left alone after the classifier was removed");
        assert_eq!(out.data, syn(ttl), "TTL {ttl}: bytes unchanged");
    }
    let d = fx.counters().since(&before);
    assert_eq!(d.drop_packets(), 0, "nothing dropped (no hop_limit): {d:?}");
}
