//! Two tenants on one host reuse the same addresses: two bridges in one hub namespace, each with
//! its own source, dest and two SFs, every endpoint with the same addresses and MACs as its twin,
//! and one chain per tenant in one chain file. Both send the very same 5-tuple at once: each
//! tenant's SFs see exactly their tenant's datagrams, both destinations receive all, and no
//! packet comes back from an SF unrecognised.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use sfc_tests::{
    ChainFile, Counters, Sfc, Stats, Topology, TopologyConfig,
    chain::{FlowClassifier, PortChain, PortPair, PortPairGroup},
    counters::settled,
    scenario::Fixture,
    send,
    topology::{DEST_IP, End},
};

sfc_tests::in_both_modes!(tenants_sending_the_same_5_tuple_stay_apart);

const PORT: u16 = 5353;
/// Both tenants' senders use this source port: the same 5-tuple, byte for byte.
const SPORT: u16 = 40_404;
const DATAGRAMS: usize = 1_000;
const ROUNDS: usize = 3;

/// Tenant `t`'s port pairs, groups, classifier and chain (`pc<t>`, id `t`), on `topo`'s ports.
fn tenant(file: &mut ChainFile, topo: &Topology, t: u32) {
    for n in [1u8, 2] {
        file.port_pairs.push(PortPair::new(
            &format!("pp{t}{n}"),
            &topo.hub_dev(End::SfIn(n)),
            &topo.hub_dev(End::SfOut(n)),
        ));
        file.port_pair_groups.push(PortPairGroup::new(
            &format!("pg{t}{n}"),
            &[&format!("pp{t}{n}")],
        ));
    }
    file.flow_classifiers.push(FlowClassifier::to_port(
        &format!("fc{t}"),
        "udp",
        PORT,
        &topo.hub_dev(End::Source),
    ));
    file.port_chains.push(PortChain::new(
        &format!("pc{t}"),
        t,
        &[&format!("pg{t}1"), &format!("pg{t}2")],
        &[&format!("fc{t}")],
    ));
}

fn reading(a: &Topology, b: &Topology, sfc: &Sfc<'_>) -> (Counters, Counters, Stats) {
    settled(Duration::from_secs(3), Duration::from_millis(150), || {
        Ok((a.counters()?, b.counters()?, sfc.try_stats()?))
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn tenants_sending_the_same_5_tuple_stay_apart(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let a = &fx.topo;
    let b = TopologyConfig::new(&[1, 2])
        .in_hub(&a.hub())
        .build()
        .unwrap_or_else(|e| panic!("{e:#}"));
    let sfc = Sfc::for_topology(a).with_mode(mode);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), PORT);
    // Nothing answers on dest: an echo arriving after a sender closed its socket would make the
    // source answer with an ICMP error, one packet more on source's tx than the datagrams.
    let mut file = ChainFile::default();
    tenant(&mut file, a, 1);
    tenant(&mut file, &b, 2);
    sfc.apply(&fx.write("tenants.yaml", &file));

    let (a0, b0, s0) = reading(a, &b, &sfc);
    for round in 0..ROUNDS {
        std::thread::scope(|s| {
            let send = |topo: &Topology| {
                let ns = topo.source();
                s.spawn(move || {
                    send::datagrams_from(
                        &ns,
                        SPORT,
                        dest,
                        &[64; DATAGRAMS],
                        Duration::from_micros(100),
                    )
                    .unwrap()
                })
            };
            let (x, y) = (send(a), send(&b));
            assert_eq!(
                (x.join().expect("tenant 1"), y.join().expect("tenant 2")),
                (DATAGRAMS, DATAGRAMS),
                "round {round}"
            );
        });
    }
    let (a1, b1, s1) = reading(a, &b, &sfc);
    let (da, db) = (a1.since(&a0), b1.since(&b0));
    let report = format!(
        "tenant 1:\n{da}\ntenant 2:\n{db}\nsfc stats after:\n{}",
        s1.raw
    );
    let n = (DATAGRAMS * ROUNDS) as u64;
    for (t, d, topo) in [(1u32, &da, a), (2, &db, &b)] {
        assert_eq!(
            d.get(End::Source).tx_packets,
            n,
            "tenant {t} sent: {report}"
        );
        for sf in [1u8, 2] {
            assert_eq!(
                d.get(End::SfIn(sf)).rx_packets,
                n,
                "tenant {t}'s sf{sf} saw exactly its tenant's datagrams: {report}"
            );
            assert_eq!(
                d.get(End::SfOut(sf)).tx_packets,
                n,
                "tenant {t}'s sf{sf} forwarded them: {report}"
            );
            let pp = format!("pp{t}{sf}");
            let counted = |s: &Stats| {
                s.packets(&format!("pc{t}"), usize::from(sf - 1), &pp)
                    .unwrap_or(0)
            };
            assert_eq!(counted(&s1) - counted(&s0), n, "sfc into {pp}: {report}");
            let out = topo.hub_dev(End::SfOut(sf));
            let kind =
                |k: &str| s1.interface(&out, k).unwrap_or(0) - s0.interface(&out, k).unwrap_or(0);
            assert_eq!(
                (kind("from_sf"), kind("unclassified"), kind("recomputed")),
                (n, 0, 0),
                "{out}: every datagram recognised at once: {report}"
            );
        }
        assert_eq!(
            d.get(End::Dest).rx_packets,
            n,
            "tenant {t}'s dest received all: {report}"
        );
    }
    assert!(s1.drops().values().all(|v| *v == 0), "drops: {report}");
    let flows = sfc.try_flows().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(flows.len(), 2, "one flow per tenant: {flows:?}");
}
