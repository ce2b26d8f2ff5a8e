//! Compilation to the map entries of `sfc-common`, determinism, and diffs between compiled states.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sfc::{
    compile::{self, Compiled, IfaceFacts, LbKey, diff},
    config, model,
};
use sfc_common::{
    limits::LB_TABLE_SIZE,
    maps::{
        CHAIN_F_SYMMETRIC, FAIL_OPEN, LB_IP_DST, LB_IP_SRC, ROLE_DEST, ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE,
    },
};

const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out, weight: 3}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp2], lb_fields: [ip_src, ip_dst], failure_policy: fail-open}
flow_classifiers:
  - {name: web, protocol: tcp, destination_ip_prefix: 10.0.0.20/32, destination_port_range_min: 80,
     destination_port_range_max: 80, logical_source_port: src, logical_destination_port: dst}
port_chains:
  - {name: pc1, chain_id: 9, port_pair_groups: [pg1], flow_classifiers: [web], chain_parameters: {symmetric: true}}
";

/// Interface facts: fixed indexes so entries can be checked exactly.
fn facts() -> BTreeMap<String, IfaceFacts> {
    [("src", 1), ("dst", 2), ("sf1-in", 3), ("sf1-out", 4), ("sf2-in", 5), ("sf2-out", 6), ("sf3-in", 7), ("sf3-out", 8)]
        .into_iter()
        .map(|(n, i)| (n.to_owned(), IfaceFacts { ifindex: i, peer_mac: Some([2, 0, 0, 0, 0, u8::try_from(i).unwrap()]), peer_in_other_netns: true, ..Default::default() }))
        .collect()
}

fn build(text: &str) -> (model::Model, Compiled) {
    let m = model::validate(&config::parse("t", text).expect("parses")).unwrap_or_else(|e| panic!("{e}"));
    let c = compile::compile(&m, &facts(), None).expect("compiles");
    (m, c)
}

fn shares(c: &Compiled, group: u32) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for (k, v) in &c.lb {
        if k.group == group {
            *out.entry(*v).or_default() += 1;
        }
    }
    out
}

#[test]
fn entries_are_exactly_what_the_kernel_reads() {
    let (_, c) = build(FILE);
    // SFC_CHAINS: chain_id -> hops (group ids are positions here).
    assert_eq!(c.chains.keys().copied().collect::<Vec<_>>(), [9]);
    let ch = c.chains[&9];
    assert_eq!((ch.n_hops, ch.flags, ch.groups[0]), (1, CHAIN_F_SYMMETRIC, 0));
    assert!(ch.groups[1..].iter().all(|g| *g == 0));
    // SFC_GROUPS.
    let g = c.groups[&0];
    assert_eq!((g.n_members, g.lb_fields, g.failure_policy), (2, LB_IP_SRC | LB_IP_DST, FAIL_OPEN));
    // SFC_LB: one full table, weights 1:3.
    assert_eq!(c.lb.len(), LB_TABLE_SIZE as usize);
    assert!((0..LB_TABLE_SIZE).all(|b| c.lb.contains_key(&LbKey { group: 0, bucket: b })));
    let s = shares(&c, 0);
    assert!((254..=257).contains(&s[&0]) && s[&0] + s[&1] == LB_TABLE_SIZE as usize, "{s:?}");
    // SFC_PORT_PAIRS: where to send packets into each member, and both MACs (symmetric chain).
    let pp = c.port_pairs[&1];
    assert_eq!((pp.ingress_ifindex, pp.egress_ifindex, pp.ingress_mac, pp.egress_mac), (5, 6, [2, 0, 0, 0, 0, 5], [2, 0, 0, 0, 0, 6]));
    // SFC_IFACES: roles.
    let roles: BTreeMap<u32, u32> = c.ifaces.iter().map(|(i, e)| (*i, e.roles)).collect();
    assert_eq!(roles, BTreeMap::from([
        (1, ROLE_SOURCE),
        (2, ROLE_DEST),
        (3, ROLE_SF_INGRESS),
        (4, ROLE_SF_EGRESS),
        (5, ROLE_SF_INGRESS),
        (6, ROLE_SF_EGRESS)
    ]));
    assert_eq!((c.ifaces[&4].port_pair, c.ifaces[&6].port_pair), (0, 1));
    // SFC_CLS_RES: one final class, for `web`, delivering to dst.
    let res: Vec<(u32, u32, u32)> = c.cls_res.values().map(|r| (r.chain_id, r.classifier, r.dst_ifindex)).collect();
    assert_eq!(res, [(9, 0, 2)]);
    // Symmetric: SF ingresses and the destination get the program too.
    assert_eq!(c.attach, BTreeSet::from([1, 2, 3, 4, 5, 6]));
}

#[test]
fn same_input_same_entries() {
    let (_, a) = build(FILE);
    let (_, b) = build(FILE);
    assert_eq!(a, b);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    // JSON is read the same as YAML.
    let json = r#"{"port_pairs": [{"name": "pp1", "ingress": "sf1-in", "egress": "sf1-out"},
                                   {"name": "pp2", "ingress": "sf2-in", "egress": "sf2-out", "weight": 3}],
                   "port_pair_groups": [{"name": "pg1", "port_pairs": ["pp1", "pp2"], "lb_fields": ["ip_src", "ip_dst"],
                                         "failure_policy": "fail-open"}],
                   "flow_classifiers": [{"name": "web", "protocol": "tcp", "destination_ip_prefix": "10.0.0.20/32",
                                         "destination_port_range_min": 80, "destination_port_range_max": 80,
                                         "logical_source_port": "src", "logical_destination_port": "dst"}],
                   "port_chains": [{"name": "pc1", "chain_id": 9, "port_pair_groups": ["pg1"], "flow_classifiers": ["web"],
                                    "chain_parameters": {"symmetric": true}}]}"#;
    let (_, c) = build(json);
    assert_eq!(a, c);
}

#[test]
fn member_order_in_a_group_does_not_change_who_owns_a_bucket() {
    let (m1, a) = build(FILE);
    let (m2, b) = build(&FILE.replace("port_pairs: [pp1, pp2]", "port_pairs: [pp2, pp1]"));
    let owner = |m: &model::Model, c: &Compiled, k: &LbKey| m.port_pairs[c.lb[k] as usize].name.clone();
    assert!(a.lb.keys().all(|k| owner(&m1, &a, k) == owner(&m2, &b, k)));
}

#[test]
fn diff_of_identical_states_is_empty() {
    let (_, a) = build(FILE);
    assert!(diff::diff(&a, &a).is_empty());
}

#[test]
fn adding_a_member_touches_its_group_only() {
    let (_, a) = build(FILE);
    let more = FILE
        .replace("  - {name: pp2, ingress: sf2-in, egress: sf2-out, weight: 3}\n", "  - {name: pp2, ingress: sf2-in, egress: sf2-out, weight: 3}\n  - {name: pp3, ingress: sf3-in, egress: sf3-out}\n")
        .replace("[pp1, pp2]", "[pp1, pp2, pp3]");
    let (_, b) = build(&more);
    let d = diff::diff(&a, &b);
    assert!(d.chains.is_empty() && d.cls.is_empty() && d.cls_res.is_empty());
    assert_eq!(d.port_pairs.added.keys().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(d.groups.changed.len(), 1);
    assert_eq!(d.ifaces.added.keys().copied().collect::<Vec<_>>(), [7, 8]);
    assert_eq!(d.attach, BTreeSet::from([7, 8]));
    // The new member (weight 1 of 5) takes about a fifth of the table; little else moves.
    let to_new = d.lb.changed.values().filter(|(_, new)| *new == 2).count();
    assert!((195..=215).contains(&to_new), "{to_new}");
    assert!(d.lb.changed.len() - to_new < 60, "{} buckets moved between old members", d.lb.changed.len() - to_new);
    assert_eq!(d.chains_touched(&a, &b), BTreeSet::from([9]));
    // Applying the diff to the old entries gives the new ones.
    let mut lb = a.lb.clone();
    d.lb.apply(&mut lb);
    assert_eq!(lb, b.lb);
}

#[test]
fn removing_a_chain_removes_its_entries() {
    let (_, a) = build(FILE);
    let (_, b) = build("port_pairs: []\n");
    let d = diff::diff(&a, &b);
    assert_eq!(d.chains.removed.len(), 1);
    assert_eq!(d.lb.removed.len(), LB_TABLE_SIZE as usize);
    assert_eq!(d.counts().added + d.counts().changed, 0);
    assert_eq!(d.detach, a.attach);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// For any two weightings of the group: applying the diff gives the new entries, and only the
    /// group's own entries change.
    #[test]
    fn diff_then_apply_gives_the_new_state(w1 in 1u32..=10, w2 in 1u32..=10, v1 in 1u32..=10, v2 in 1u32..=10) {
        let with = |a: u32, b: u32| FILE
            .replace("egress: sf2-out, weight: 3}", &format!("egress: sf2-out, weight: {b}}}"))
            .replace("egress: sf1-out}", &format!("egress: sf1-out, weight: {a}}}"));
        let (_, old) = build(&with(w1, w2));
        let (_, new) = build(&with(v1, v2));
        let d = diff::diff(&old, &new);
        let mut lb = old.lb.clone();
        d.lb.apply(&mut lb);
        prop_assert_eq!(&lb, &new.lb);
        prop_assert!(d.chains.is_empty() && d.groups.is_empty() && d.port_pairs.is_empty() && d.ifaces.is_empty() && d.cls.is_empty());
        prop_assert_eq!(d.is_empty(), (w1 == v1 && w2 == v2) || w1 * v2 == w2 * v1);
    }
}

/// A tap group: its hop is marked in the chain entry (copies, not crossed), it never fails
/// closed, it carries its sampling, its member is flagged, and both of the member's interfaces
/// drop what the function sends back.
#[test]
fn tap_groups_compile_to_marked_hops() {
    let text = "
port_pairs:
  - {name: pp1, ingress: a-in, egress: a-out}
  - {name: pp2, ingress: b-in, egress: b-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: tapg, port_pairs: [pp2], tap_enabled: true, tap_sample_every: 8, tap_sample_probability: 0.25}
flow_classifiers:
  - {name: fc, protocol: tcp, logical_source_port: src}
port_chains:
  - {name: pc, chain_id: 3, port_pair_groups: [tapg, pg1], flow_classifiers: [fc]}
";
    let cfg = sfc::config::parse("tap.yaml", text).expect("parses");
    let model = sfc::model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let facts: BTreeMap<String, sfc::compile::IfaceFacts> = [("a-in", 3), ("a-out", 4), ("b-in", 5), ("b-out", 6), ("src", 2)]
        .into_iter()
        .map(|(n, i)| (n.to_owned(), sfc::compile::IfaceFacts { ifindex: i, peer_mac: Some([2, 0, 0, 0, 0, 1]), peer_in_other_netns: true, ..Default::default() }))
        .collect();
    let c = sfc::compile::compile(&model, &facts, None).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.chains[&3].flags >> sfc_common::maps::CHAIN_TAPS_SHIFT, 0b01, "hop 0 is the tap");
    let tap_gid = c.port_pairs[&1].group;
    let g = c.groups[&tap_gid];
    assert_eq!((g.failure_policy, g.tap_every), (sfc_common::maps::FAIL_OPEN, 8));
    assert_eq!(g.tap_threshold, 1 << 30, "a quarter of 2^32");
    assert_ne!(c.port_pairs[&1].flags & sfc_common::maps::PP_F_TAP, 0);
    assert_eq!(c.port_pairs[&0].flags & sfc_common::maps::PP_F_TAP, 0);
    for i in [5, 6] {
        assert_ne!(c.ifaces[&i].flags & sfc_common::maps::IF_F_TAP, 0, "ifindex {i}");
        assert!(c.attach.contains(&i), "ifindex {i} runs the program (to drop what comes back)");
    }
    assert_eq!(c.ifaces[&4].flags & sfc_common::maps::IF_F_TAP, 0);
}

/// Zones (`IfaceEntry::zone`): the interfaces one chain touches are one zone, named by its lowest
/// ifindex; chains with nothing in common are separate zones (tenants reusing addresses never
/// share a flow entry); chains sharing a group share a zone.
#[test]
fn zones_follow_chains() {
    let two_tenants = "
port_pairs:
  - {name: pa, ingress: sf1-in, egress: sf1-out}
  - {name: pb, ingress: sf2-in, egress: sf2-out}
port_pair_groups:
  - {name: ga, port_pairs: [pa]}
  - {name: gb, port_pairs: [pb]}
flow_classifiers:
  - {name: a, protocol: udp, logical_source_port: src, logical_destination_port: dst}
  - {name: b, protocol: udp, logical_source_port: sf3-in}
port_chains:
  - {name: ca, chain_id: 1, port_pair_groups: [ga], flow_classifiers: [a]}
  - {name: cb, chain_id: 2, port_pair_groups: [gb], flow_classifiers: [b]}
";
    let (_, c) = build(two_tenants);
    let zone = |i: u32| c.ifaces[&i].zone;
    assert_eq!([zone(1), zone(2), zone(3), zone(4)], [1; 4], "tenant a: src, dst, sf1");
    assert_eq!([zone(5), zone(6), zone(7)], [5; 3], "tenant b: sf2, its source port sf3-in");
    // The same two chains sharing group ga at their second hop: one zone.
    let shared = two_tenants.replace("port_pair_groups: [gb], flow_classifiers: [b]", "port_pair_groups: [gb, ga], flow_classifiers: [b]");
    let (_, c) = build(&shared);
    assert!(c.ifaces.values().all(|e| e.zone == 1), "{:?}", c.ifaces);
}

/// Reclassification (`GroupEntry::reclass`): each group names a stage-1 class holding the
/// classifiers of the chains it serves, whatever their logical source port, and a packet of the
/// chain classified there reaches the chain's result, which carries the logical source and
/// destination ports (where a recomputed flow entered, and where it goes after the last hop).
#[test]
fn groups_can_reclassify_their_chains_traffic() {
    let (m, c) = build(FILE);
    let g = c.groups[&0];
    assert_ne!(g.reclass, 0);
    assert_eq!(g.reclass >> sfc_common::maps::CLS_RECLASS_BIT, 1, "a reclassification class, not an ifindex");
    let key = |dport: u16| {
        let mut k = sfc_common::maps::FlowKey { proto: 6, family: 4, sport: 999u16.to_be_bytes(), dport: dport.to_be_bytes(), ..Default::default() };
        k.src[..4].copy_from_slice(&[10, 1, 1, 1]);
        k.dst[..4].copy_from_slice(&[10, 0, 0, 20]);
        k
    };
    let class = compile::cls::lookup(&c.cls, &c.cls_hash, g.reclass, 0x0800, &key(80)).expect("web traffic reclassifies");
    let res = c.cls_res[&class];
    assert_eq!((res.chain_id, res.src_ifindex, res.dst_ifindex), (9, 1, 2));
    assert_eq!(m.flow_classifiers[res.classifier as usize].name, "web");
    assert_eq!(compile::cls::lookup(&c.cls, &c.cls_hash, g.reclass, 0x0800, &key(81)), None, "not the chain's traffic");
    // The source port's own class gives the same result.
    assert_eq!(compile::cls::lookup(&c.cls, &c.cls_hash, 1, 0x0800, &key(80)), Some(class));
    // The chain is symmetric: its destination port reclassifies replies by their forward
    // 5-tuple, in a class of its own.
    let reply_class = c.ifaces[&2].reply_class;
    assert!(reply_class != 0 && reply_class != g.reclass && reply_class >> sfc_common::maps::CLS_RECLASS_BIT == 1);
    assert_eq!(c.ifaces[&1].reply_class, 0, "the source port receives no replies to reclassify");
    let res = c.cls_res[&compile::cls::lookup(&c.cls, &c.cls_hash, reply_class, 0x0800, &key(80)).expect("reply class")];
    assert_eq!((res.chain_id, res.src_ifindex, res.dst_ifindex), (9, 1, 2));
}

#[test]
fn an_ifindex_sfc_cannot_key_is_an_error() {
    let m = model::validate(&config::parse("t", FILE).expect("parses")).unwrap_or_else(|e| panic!("{e}"));
    let mut f = facts();
    f.get_mut("src").expect("src").ifindex = compile::MAX_IFINDEX;
    let errs = compile::compile(&m, &f, None).expect_err("refused");
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|e| e.contains("flow_classifiers[web].logical_source_port") && e.contains("ifindex")), "{text:?}");
}

/// Ids stay with their names; a new name never gets an id that a draining port pair, or the
/// group such a port pair was in, still holds (flows keep a draining member by its old group's
/// id, so a new group under that id would inherit it).
#[test]
fn ids_are_not_reused_while_their_owners_drain() {
    let (m, _) = build(FILE);
    let first = compile::Ids::by_index(&m);
    assert_eq!((first.port_pair("pp1"), first.port_pair("pp2"), first.group("pg1")), (0, 1, 0));
    // pp1 and pg1 are replaced by new names while pp1 drains (port pair 0 in group 0).
    let next = FILE.replace("pp1", "pp9").replace("pg1", "pgx");
    let (m2, _) = build(&next);
    let reserved = compile::Reserved { port_pairs: BTreeSet::from([0]), groups: BTreeSet::from([0]) };
    let ids = compile::Ids::assign(&m2, &first, &reserved);
    assert_eq!(ids.port_pair("pp2"), 1, "kept by name");
    assert_eq!(ids.port_pair("pp9"), 2, "not the draining port pair's 0");
    assert_eq!(ids.group("pgx"), 1, "not the draining member's group's 0");
    // Once nothing drains, the lowest free ids are used again.
    let ids = compile::Ids::assign(&m2, &first, &compile::Reserved::default());
    assert_eq!((ids.port_pair("pp9"), ids.group("pgx")), (0, 0));
}

/// NAT-ing groups (`ppg_n_tuple_mapping`): what comes back out of the proxy group `nat` has
/// another destination port and source address, so `nat` and every later group reclassify the
/// chain's traffic by the translated classifier, each to the chain's own result; groups before
/// it by the original.
#[test]
fn groups_behind_a_nat_reclassify_the_translated_tuple() {
    let file = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out}
  - {name: pp3, ingress: sf3-in, egress: sf3-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - name: nat
    port_pairs: [pp2]
    ppg_n_tuple_mapping:
      egress_n_tuple: {source_ip_prefix: 10.9.9.9/32, destination_port_range_min: 8080, destination_port_range_max: 8080}
  - {name: pg3, port_pairs: [pp3]}
flow_classifiers:
  - {name: web, protocol: tcp, source_ip_prefix: 10.1.1.1/32, destination_ip_prefix: 10.0.0.20/32,
     destination_port_range_min: 80, destination_port_range_max: 80, logical_source_port: src, logical_destination_port: dst}
port_chains:
  - {name: pc1, chain_id: 9, port_pair_groups: [pg1, nat, pg3], flow_classifiers: [web]}
";
    let (m, c) = build(file);
    let key = |src: [u8; 4], dport: u16| {
        let mut k = sfc_common::maps::FlowKey { proto: 6, family: 4, sport: 999u16.to_be_bytes(), dport: dport.to_be_bytes(), ..Default::default() };
        k.src[..4].copy_from_slice(&src);
        k.dst[..4].copy_from_slice(&[10, 0, 0, 20]);
        k
    };
    let (original, translated) = (key([10, 1, 1, 1], 80), key([10, 9, 9, 9], 8080));
    let reclass = |g: u32, k: &sfc_common::maps::FlowKey| compile::cls::lookup(&c.cls, &c.cls_hash, c.groups[&g].reclass, 0x0800, k).map(|class| c.cls_res[&class]);
    let pg1 = reclass(0, &original).expect("pg1 sees the original tuple");
    assert_eq!(reclass(0, &translated), None, "nothing before the NAT has the translated tuple");
    for g in [1, 2] {
        let res = reclass(g, &translated).unwrap_or_else(|| panic!("group {g} reclassifies the translated tuple"));
        assert_eq!((res.chain_id, res.src_ifindex, res.dst_ifindex), (9, 1, 2));
        assert_eq!(m.flow_classifiers[res.classifier as usize].name, "web", "the result names the classifier itself");
        assert_eq!(res, pg1);
        assert_eq!(reclass(g, &key([10, 9, 9, 9], 80)), None, "only the whole translated tuple");
    }
    assert_ne!(c.groups[&0].reclass, c.groups[&1].reclass);
    assert_eq!(c.groups[&1].reclass, c.groups[&2].reclass, "the same view of the chain: one class");
    assert_eq!(c.ifaces[&2].reply_class, 0, "an asymmetric chain: no reply class");
    // Symmetric: a reply at the destination is classified by its forward tuple, the translated.
    let (m, c) = build(&file.replace("flow_classifiers: [web]}", "flow_classifiers: [web], chain_parameters: {symmetric: true}}"));
    let reply = |k: &sfc_common::maps::FlowKey| compile::cls::lookup(&c.cls, &c.cls_hash, c.ifaces[&2].reply_class, 0x0800, k).map(|class| c.cls_res[&class]);
    let res = reply(&translated).expect("a reply to the translated tuple");
    assert_eq!((res.chain_id, m.flow_classifiers[res.classifier as usize].name.as_str()), (9, "web"));
    assert_eq!(reply(&original).map(|r| r.chain_id), Some(9), "and to the original (a NAT that let it through)");
    // The source port classifies by the original tuple only.
    assert!(compile::cls::lookup(&c.cls, &c.cls_hash, 1, 0x0800, &original).is_some());
    assert_eq!(compile::cls::lookup(&c.cls, &c.cls_hash, 1, 0x0800, &translated), None);
    // Compiled again with the classes it gave (an apply that changes nothing): the very same
    // entries, although the translated classifier has its original's name.
    let again = compile::compile_with(&m, &compile::Inputs { class_ids: Some(&c.class_ids), ..compile::Inputs::new(&m, &facts()) }).expect("compiles");
    assert!(again == c, "a compile with its own classes changed entries");
}

type Edit = Box<dyn Fn(&mut model::Model, &mut BTreeMap<String, IfaceFacts>)>;

/// A compile that updates the previous one's classifier tables (`compile_kept`, what a process
/// that applies again does) gives what a fresh compile gives, edit after edit: the same entries
/// in every other map, classifier tables that are the same up to numbering, the same result for
/// every final class, and a log that says exactly which entries changed.
#[test]
fn kept_compiles_are_fresh_compiles() {
    let file = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - name: nat
    port_pairs: [pp2]
    ppg_n_tuple_mapping:
      egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}
flow_classifiers:
  - {name: web, protocol: tcp, destination_ip_prefix: 10.0.0.20/32, logical_source_port: src, logical_destination_port: dst}
port_chains:
  - {name: pc1, chain_id: 9, port_pair_groups: [pg1, nat], flow_classifiers: [web], chain_parameters: {symmetric: true}}
";
    let (mut m, _) = build(file);
    let template = m.flow_classifiers[0].clone();
    let with_dst = move |name: String, dst: &str| model::FlowClassifier { name, destination_prefix: model::Prefix::parse(dst).expect("prefix"), ..template.clone() };
    m.flow_classifiers = (0..40).map(|i| with_dst(format!("c{i}"), &format!("10.0.{}.{}/32", i % 3, i))).collect();
    let renumber = |m: &mut model::Model| m.port_chains[0].flow_classifiers = (0..m.flow_classifiers.len()).collect();
    renumber(&mut m);
    let edits: Vec<(&str, Edit)> = vec![
        ("nothing", Box::new(|_, _| {})),
        ("one moved", Box::new(move |m, _| m.flow_classifiers[3].destination_prefix = model::Prefix::parse("10.7.7.7/32").expect("prefix"))),
        ("one removed", Box::new(move |m, _| {
            m.flow_classifiers.remove(5);
            renumber(m);
        })),
        ("a /16 over others", Box::new({
            let with_dst = with_dst.clone();
            move |m, _| {
                m.flow_classifiers.push(with_dst("wide".to_owned(), "10.0.0.0/16"));
                renumber(m);
            }
        })),
        ("the first removed (every index after it moves)", Box::new(move |m, _| {
            m.flow_classifiers.remove(0);
            renumber(m);
        })),
        ("the destination port's ifindex", Box::new(|_, f| f.get_mut("dst").expect("dst").ifindex = 42)),
        ("not symmetric", Box::new(|m, _| m.port_chains[0].symmetric = false)),
        ("the /16 gone", Box::new(move |m, _| {
            m.flow_classifiers.pop();
            renumber(m);
        })),
    ];
    let mut f = facts();
    let mut kept = compile::incr::Kept::new(&compile::cls::ClassIds::new());
    let mut before: Option<Compiled> = None;
    for (what, edit) in edits {
        edit(&mut m, &mut f);
        let inputs = compile::Inputs::new(&m, &f);
        let mut c = compile::compile_kept(&m, &inputs, &mut kept).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let fresh = compile::compile_with(&m, &inputs).expect("compiles");
        let pair = compile::cls::equivalent((&c.cls, &c.cls_hash, &finals(&c)), (&fresh.cls, &fresh.cls_hash, &finals(&fresh)))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        for (a, b) in &pair {
            assert_eq!(c.cls_res.get(a), fresh.cls_res.get(b), "{what}: the result of final class {a:#x}");
        }
        // The classifiers share one chain and its ports: their final classes are shared, and
        // what the kept compiler says of them is what a fresh compile says.
        assert!(c.cls_res.values().any(|r| r.classifier == sfc_common::maps::CLS_CLASSIFIER_SHARED), "{what}: no shared result");
        let strip = |x: &Compiled| Compiled { cls: BTreeMap::new(), cls_hash: BTreeMap::new(), cls_res: BTreeMap::new(), class_ids: BTreeMap::new(), ..x.clone() };
        assert!(strip(&c) == strip(&fresh), "{what}: the other maps differ");
        if let Some(b) = &before {
            let log = &kept.log;
            assert!(!log.whole);
            for (k, old) in &log.trie {
                assert_eq!(b.cls.get(k), old.as_ref(), "{what}");
            }
            assert!(b.cls.iter().all(|(k, v)| log.trie.contains_key(k) || c.cls.get(k) == Some(v)), "{what}: a trie entry changed unlogged");
            assert!(c.cls.keys().all(|k| log.trie.contains_key(k) || b.cls.contains_key(k)), "{what}: a trie entry came unlogged");
            for (k, old) in &log.res {
                assert_eq!(b.cls_res.get(k), old.as_ref(), "{what}");
            }
            assert!(b.cls_res.iter().all(|(k, v)| log.res.contains_key(k) || c.cls_res.get(k) == Some(v)), "{what}: a result changed unlogged");
            assert!(c.cls_res.keys().all(|k| log.res.contains_key(k) || b.cls_res.contains_key(k)), "{what}: a result came unlogged");
            for (k, old) in &log.hash {
                assert_eq!(b.cls_hash.get(k), old.as_ref(), "{what}");
            }
            assert!(b.cls_hash.iter().all(|(k, v)| log.hash.contains_key(k) || c.cls_hash.get(k) == Some(v)), "{what}: a hash entry changed unlogged");
        }
        before = Some(c.clone());
        kept.restore(&mut c);
    }
}

/// Final classes as the equivalence check takes them (a compiled state keeps their results, not
/// their sets; the results are compared on their own).
fn finals(c: &Compiled) -> BTreeMap<u32, BTreeSet<usize>> {
    c.cls_res.keys().map(|k| (*k, BTreeSet::new())).collect()
}
