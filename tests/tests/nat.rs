//! NAT-ing functions with real packets: a chain sf1 -> [nat: sf2] -> sf3 -> dest for TCP to
//! port 80 from the source's address. sf2 source-NATs what it forwards to its own address (nft
//! `snat`, conntrack), so what comes back out of it no longer matches the chain's classifier.
//! Without `ppg_n_tuple_mapping` those packets are not chain traffic: they skip sf3 (its own
//! counter stays at 0) and reach dest by plain bridging. With the mapping (the group's
//! `egress_n_tuple` names the translated source address) they are reclassified at sf2's egress
//! and continue the same chain: sf3 receives every packet sf1 did. Replies go to sf2's address,
//! sf2 undoes the translation (its conntrack) and they reach the source: every request gets its
//! answer. In tc and XDP mode.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`), `nft` (Debian's `nftables`,
//! installed by `cargo xtask setup`) and root; run with `--test-threads=1`.

use std::net::{IpAddr, SocketAddr};

use sfc_tests::{
    Sfc, TopologyConfig,
    chain::{ChainFile, FlowClassifier, PortChain, PortPairGroup},
    link, netns,
    scenario::Fixture,
    topology::{DEST_IP, End, SOURCE_IP},
    traffic::{TcpServer, tcp_requests},
};

const REQUESTS: usize = 20;

/// pg1 {pp1}, nat {pp2}, pg3 {pp3}: TCP to dest:80 from the source's address, delivered to dest.
fn chain(topo: &sfc_tests::Topology, mapping: Option<String>) -> ChainFile {
    let mut fc = FlowClassifier::to_port("web", "tcp", 80, &topo.hub_dev(End::Source));
    fc.source_ip_prefix = Some(format!("{SOURCE_IP}/32"));
    fc.logical_destination_port = Some(topo.hub_dev(End::Dest));
    ChainFile {
        port_pairs: [1, 2, 3].iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![
            PortPairGroup::new("pg1", &["pp1"]),
            PortPairGroup { n_tuple_mapping: mapping, ..PortPairGroup::new("nat", &["pp2"]) },
            PortPairGroup::new("pg3", &["pp3"]),
        ],
        flow_classifiers: vec![fc],
        port_chains: vec![PortChain::new("pc1", 1, &["pg1", "nat", "pg3"], &["web"])],
        interfaces: Vec::new(),
    }
}

/// sf2 translates the source's address to its own `out` address on what it forwards, and
/// counts the connections it translated (a NAT chain sees each connection's first packet).
fn snat(topo: &sfc_tests::Topology) -> IpAddr {
    let ns = topo.sf(2);
    let to = End::SfOut(2).addr().0;
    let nft = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &ns, "nft"];
        all.extend_from_slice(args);
        netns::run("ip", &all).unwrap_or_else(|e| panic!("{e:#}"));
    };
    nft(&["add", "table", "ip", "sfcnat"]);
    nft(&["add", "chain", "ip", "sfcnat", "post", "{ type nat hook postrouting priority srcnat; }"]);
    let (src, to_s) = (SOURCE_IP.to_string(), to.to_string());
    nft(&["add", "rule", "ip", "sfcnat", "post", "oifname", "out", "ip", "saddr", &src, "counter", "snat", "to", &to_s]);
    // dest answers sf2's address: its neighbour is static, like every other here.
    link::static_neighbour(&topo.dest(), End::Dest.dev(), IpAddr::V4(to), End::SfOut(2).mac()).unwrap_or_else(|e| panic!("{e:#}"));
    IpAddr::V4(to)
}

/// Connections sf2 translated so far.
fn translated(topo: &sfc_tests::Topology) -> u64 {
    let out = netns::run("ip", &["netns", "exec", &topo.sf(2), "nft", "list", "chain", "ip", "sfcnat", "post"]).unwrap_or_else(|e| panic!("{e:#}"));
    let words: Vec<&str> = out.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "packets").and_then(|w| w[1].parse().ok()).unwrap_or_else(|| panic!("no counter in {out}"))
}

fn nat_continues_the_chain(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let nat_addr = snat(topo);
    let server = TcpServer::start(&topo.dest(), SocketAddr::new(IpAddr::V4(DEST_IP), 80)).unwrap_or_else(|e| panic!("{e:#}"));
    let requests = || tcp_requests(&topo.source(), server.addr(), REQUESTS).unwrap_or_else(|e| panic!("{e:#}"));

    // Without the mapping the translated packets are not the chain's: they skip sf3.
    sfc.apply(&fx.write("chains.yaml", &chain(topo, None)));
    let (out, w) = fx.window(&sfc, "requests through a NAT the chain does not know of", requests);
    let report = w.report();
    assert_eq!(out.ok, REQUESTS, "{:?}: {report}", out.errors);
    assert_eq!(translated(topo), REQUESTS as u64, "sf2 translated each connection: {report}");
    let forward = w.link(End::SfIn(1)).rx_packets;
    assert!(forward >= 3 * REQUESTS as u64, "{report}");
    assert_eq!(w.link(End::SfIn(2)).rx_packets, forward, "{report}");
    assert_eq!(w.link(End::SfIn(3)).rx_packets, 0, "sf3 bypassed: {report}");

    // With it they are reclassified at sf2's egress and go on through sf3.
    let mapping = format!("{{egress_n_tuple: {{source_ip_prefix: {nat_addr}/32}}}}");
    sfc.apply(&fx.write("chains.yaml", &chain(topo, Some(mapping))));
    let (out, w) = fx.window(&sfc, "requests through a NAT-ing group", requests);
    let report = w.report();
    assert_eq!(out.ok, REQUESTS, "every request answered: {:?}: {report}", out.errors);
    assert_eq!(translated(topo), 2 * REQUESTS as u64, "{report}");
    let forward = w.link(End::SfIn(1)).rx_packets;
    assert!(forward >= 3 * REQUESTS as u64, "{report}");
    assert_eq!(w.link(End::SfIn(2)).rx_packets, forward, "{report}");
    assert_eq!(w.link(End::SfIn(3)).rx_packets, forward, "sf3 gets every packet sf1 did: {report}");
    assert_eq!(w.link(End::Dest).rx_packets, forward, "{report}");
    // The replies came back through sf2 (they are addressed to it), not through the chain.
    assert!(w.link(End::SfOut(2)).rx_packets >= 2 * REQUESTS as u64, "{report}");
    assert_eq!(w.packets("pc1", 2, "pp3"), forward, "sfc counts the hop after the NAT: {report}");
    assert_eq!(w.interface_delta(&topo.hub_dev(End::SfOut(2)), "recomputed"), REQUESTS as u64, "one reclassification per translated connection: {report}");
    w.assert_no_drops();
}

#[test]
fn a_nat_ing_group_continues_the_chain_with_the_translated_tuple_tc() {
    nat_continues_the_chain("tc");
}

#[test]
fn a_nat_ing_group_continues_the_chain_with_the_translated_tuple_xdp() {
    nat_continues_the_chain("xdp");
}

/// A symmetric chain through a NAT: replies are addressed to sf2's address, so sf3 (after the
/// NAT) routes that address back through its ingress, as it routes the source's. Replies then
/// cross sf3, sf2 (which undoes the translation) and sf1 backwards, each by the reverse entry of
/// the tuple it carries at that point.
#[test]
fn a_symmetric_chain_brings_replies_back_through_the_nat() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]).symmetric_routing());
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let nat_addr = snat(topo);
    netns::ip_in(&topo.sf(3), &["route", "replace", &format!("{nat_addr}/32"), "dev", End::SfIn(3).dev()]).unwrap_or_else(|e| panic!("{e:#}"));
    link::static_neighbour(&topo.sf(3), End::SfIn(3).dev(), nat_addr, End::SfOut(2).mac()).unwrap_or_else(|e| panic!("{e:#}"));
    let server = TcpServer::start(&topo.dest(), SocketAddr::new(IpAddr::V4(DEST_IP), 80)).unwrap_or_else(|e| panic!("{e:#}"));
    let mut file = chain(topo, Some(format!("{{egress_n_tuple: {{source_ip_prefix: {nat_addr}/32}}}}")));
    file.port_chains[0].symmetric = true;
    sfc.apply(&fx.write("chains.yaml", &file));
    let (out, w) = fx.window(&sfc, "requests and replies through a symmetric chain with a NAT", || {
        tcp_requests(&topo.source(), server.addr(), REQUESTS).unwrap_or_else(|e| panic!("{e:#}"))
    });
    let report = w.report();
    assert_eq!(out.ok, REQUESTS, "{:?}: {report}", out.errors);
    assert_eq!(translated(topo), REQUESTS as u64, "{report}");
    let (forward, replies) = (w.link(End::SfIn(1)).rx_packets, w.link(End::Dest).tx_packets);
    assert!(forward >= 3 * REQUESTS as u64 && replies >= 2 * REQUESTS as u64, "{report}");
    for n in [1, 2, 3] {
        assert_eq!(w.link(End::SfIn(n)).rx_packets, forward, "sf{n} forward: {report}");
        assert_eq!(w.link(End::SfOut(n)).rx_packets, replies, "sf{n} replies: {report}");
    }
    assert_eq!(w.link(End::Source).rx_packets, replies, "{report}");
    assert_eq!(w.reverse_packets("pc1", 0, "pp1"), replies, "{report}");
    w.assert_no_drops();
}
