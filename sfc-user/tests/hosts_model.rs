//! Multi-host, the pure parts: what the agent makes of etcd's keys (`etcd::View`), the facts of
//! interfaces on other hosts (stand-in ifindexes that stay put across applies), and what compile
//! makes of them (no program or XDP redirect for them, their hosts' VTEPs, the local ports frames
//! from the overlay go to).

use std::{collections::BTreeMap, net::IpAddr};

use sfc::{
    compile::{self, IfaceFacts},
    config,
    datapath::cluster::{Cluster, RemotePort, remote_facts},
    etcd::{NodeRecord, PortRecord, View},
    model,
};
use sfc_common::{
    limits::REMOTE_IFINDEX_BASE,
    overlay::{OVL_F_PEER, OvlMac, VTEP_V4, VTEP_V6},
};

const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: a-in, egress: a-out}
  - {name: pp2, ingress: b-in, egress: b-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
flow_classifiers:
  - {name: web, protocol: tcp, logical_source_port: src, logical_destination_port: dst}
port_chains:
  - {name: pc1, chain_id: 3, port_pair_groups: [pg1, pg2], flow_classifiers: [web], chain_parameters: {symmetric: true}}
";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn node(vtep: &str) -> NodeRecord {
    NodeRecord { vtep: ip(vtep), applied_revision: Some(7), generation: 2, error: None, absent: Vec::new(), down: Vec::new() }
}

fn port(mac: Option<&str>, up: bool) -> PortRecord {
    PortRecord { mac: mac.map(str::to_owned), up }
}

#[test]
fn a_view_gives_the_other_hosts_ports_with_their_vteps() {
    let mut v = View::default();
    v.nodes.insert("h1".into(), node("192.0.2.1"));
    v.nodes.insert("h2".into(), node("2001:db8::2"));
    v.ports.insert(("h1".into(), "src".into()), port(Some("02:00:00:00:00:01"), true));
    v.ports.insert(("h2".into(), "a-in".into()), port(Some("02:00:00:00:00:02"), true));
    v.ports.insert(("h2".into(), "a-out".into()), port(None, false));
    // A host whose lease expired: its node record is gone, its ports with it (or soon).
    v.ports.insert(("h3".into(), "b-in".into()), port(Some("02:00:00:00:00:03"), true));
    let c = v.cluster("h1", "ovl");
    assert_eq!(c.overlay, "ovl");
    assert_eq!(c.remote.keys().map(String::as_str).collect::<Vec<_>>(), ["a-in", "a-out"], "not h1's own, not h3's");
    assert_eq!(c.remote["a-in"], RemotePort { node: "h2".into(), vtep: ip("2001:db8::2"), mac: Some([2, 0, 0, 0, 0, 2]), up: true });
    assert_eq!((c.remote["a-out"].mac, c.remote["a-out"].up), (None, false));
    assert_eq!(v.own_ports("h1").keys().map(String::as_str).collect::<Vec<_>>(), ["src"]);
}

fn local(names: &[(&str, u32)]) -> BTreeMap<String, IfaceFacts> {
    names
        .iter()
        .map(|(n, i)| ((*n).to_owned(), IfaceFacts { ifindex: *i, peer_mac: Some([2, 0, 0, 0, 1, u8::try_from(*i).unwrap_or(0)]), peer_in_other_netns: true, ..Default::default() }))
        .collect()
}

fn cluster(ports: &[(&str, &str, bool)]) -> Cluster {
    Cluster {
        overlay: "ovl".into(),
        remote: ports
            .iter()
            .map(|(n, vtep, up)| ((*n).to_owned(), RemotePort { node: "h2".into(), vtep: ip(vtep), mac: Some([2, 9, 9, 9, 9, 9]), up: *up }))
            .collect(),
    }
}

#[test]
fn stand_in_ifindexes_stay_with_their_interface() {
    let names = ["src", "dst", "a-in", "a-out", "b-in", "b-out"].iter().map(|s| (*s).to_owned()).collect();
    let here = local(&[("src", 1), ("dst", 2)]);
    let c1 = cluster(&[("a-in", "192.0.2.2", true), ("a-out", "192.0.2.2", true)]);
    let (f1, down) = remote_facts(&names, &here, &c1, None, 0);
    assert!(down.is_empty());
    assert_eq!((f1["a-in"].ifindex, f1["a-out"].ifindex), (REMOTE_IFINDEX_BASE, REMOTE_IFINDEX_BASE + 1));
    assert_eq!(f1["a-in"].remote, Some(ip("192.0.2.2")));
    assert!(!f1["a-in"].learns(), "a remote interface's MAC comes from its host, it is not learnt");
    // b appears, a-in goes down: a keeps its ids (flows point at them), b gets the next one.
    let next = sfc::datapath::cluster::next_stand_in(&f1, 0);
    let c2 = cluster(&[("b-in", "192.0.2.3", true), ("a-in", "192.0.2.2", false), ("a-out", "192.0.2.2", true)]);
    let (f2, down) = remote_facts(&names, &here, &c2, Some(&f1), next);
    assert_eq!((f2["a-in"].ifindex, f2["a-out"].ifindex, f2["b-in"].ifindex), (REMOTE_IFINDEX_BASE, REMOTE_IFINDEX_BASE + 1, REMOTE_IFINDEX_BASE + 2));
    assert_eq!(down.into_iter().collect::<Vec<_>>(), ["a-in"]);
    // a leaves (its host went away), c arrives: c does not get a's stand-ins, which flows of
    // the previous generation may still carry.
    let next = sfc::datapath::cluster::next_stand_in(&f2, next);
    let c3 = cluster(&[("b-in", "192.0.2.3", true), ("b-out", "192.0.2.3", true)]);
    let (f3, _) = remote_facts(&names, &here, &c3, Some(&f2), next);
    assert_eq!((f3["b-in"].ifindex, f3["b-out"].ifindex), (REMOTE_IFINDEX_BASE + 2, REMOTE_IFINDEX_BASE + 3));
    // A local interface is never taken from another host, whoever publishes the name.
    let c4 = cluster(&[("src", "192.0.2.9", true)]);
    assert!(remote_facts(&names, &here, &c4, None, 0).0.is_empty());
}

#[test]
fn compile_sends_remote_hops_to_the_overlay() {
    let m = model::validate(&config::parse("t", FILE).expect("parses")).unwrap_or_else(|e| panic!("{e}"));
    let mut facts = local(&[("src", 1), ("dst", 2), ("b-in", 5), ("b-out", 6)]);
    let names = m.port_pairs.iter().flat_map(|p| [p.ingress.clone(), p.egress.clone()]).chain(["src".into(), "dst".into()]).collect();
    let (remote, _) = remote_facts(&names, &facts, &cluster(&[("a-in", "192.0.2.2", true), ("a-out", "2001:db8::2", true)]), None, 0);
    facts.extend(remote);
    let no_overlay = compile::compile(&m, &facts, None);
    assert!(matches!(no_overlay.as_ref().map_err(Vec::as_slice), Err([compile::CompileError::NoOverlay { .. }])), "{no_overlay:?}");
    let inputs = compile::Inputs { overlay: Some(40), ..compile::Inputs::new(&m, &facts) };
    let c = compile::compile_with(&m, &inputs).unwrap_or_else(|e| panic!("{e:?}"));
    let (a_in, a_out) = (REMOTE_IFINDEX_BASE, REMOTE_IFINDEX_BASE + 1);
    for i in [a_in, a_out] {
        assert!(!c.attach.contains(&i) && !c.redirect_targets.contains(&i), "no program, no devmap entry for {i}");
    }
    assert_eq!((c.remotes[&a_in].family, c.remotes[&a_in].overlay_ifindex, &c.remotes[&a_in].vtep[..4]), (VTEP_V4, 40, &[192, 0, 2, 2][..]));
    assert_eq!(c.remotes[&a_out].family, VTEP_V6);
    // pp1's entry points at the stand-ins, addressed to the MAC its host published.
    let pp1 = c.port_pairs.values().find(|p| p.ingress_ifindex == a_in).expect("pp1");
    assert_eq!((pp1.egress_ifindex, pp1.ingress_mac), (a_out, [2, 9, 9, 9, 9, 9]));
    // Frames from the overlay go to the local redirect targets, by the MAC behind each: pp2's
    // ingress (forward), its egress and the source port (reverse), the destination.
    let mac = |i: u8| OvlMac { mac: [2, 0, 0, 0, 1, i], _pad: [0; 2] };
    for (i, ifindex) in [(5u8, 5u32), (6, 6), (1, 1), (2, 2)] {
        assert_eq!(c.ovl_ports.get(&mac(i)).map(|p| (p.ifindex, p.flags)), Some((ifindex, OVL_F_PEER)), "ifindex {ifindex}: {:?}", c.ovl_ports);
    }
    assert_eq!(c.ovl_ports.len(), 4);
}
