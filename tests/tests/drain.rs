//! Drains under `sfc run` end on time: a port pair removed from the chain file keeps serving its
//! flows for `--drain-timeout`, and the daemon removes it when that is up, with no further change
//! to the file (a one-shot `sfc apply` removes it only at its next run).
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::time::{Duration, Instant};

use sfc_tests::{
    ChainFile, Sfc, TopologyConfig,
    chain::{FlowClassifier, PortChain, PortPairGroup},
    lifecycle::Daemon,
    scenario::Fixture,
    topology::{End, Topology},
};

fn chain(topo: &Topology, members: &[u8]) -> ChainFile {
    let pps: Vec<String> = members.iter().map(|n| format!("pp{n}")).collect();
    ChainFile {
        port_pairs: members.iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![PortPairGroup::new("pg1", &pps.iter().map(String::as_str).collect::<Vec<_>>())],
        flow_classifiers: vec![FlowClassifier::to_port("fc", "udp", 5000, &topo.hub_dev(End::Source))],
        port_chains: vec![PortChain::new("pc1", 1, &["pg1"], &["fc"])],
        interfaces: Vec::new(),
    }
}

#[test]
fn drains_end_on_time_under_sfc_run() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let sfc = Sfc::for_topology(&fx.topo);
    let file = fx.write("chains.yaml", &chain(&fx.topo, &[1, 2]));
    let log = fx.dir.path().join("daemon.log");
    let mut daemon = Daemon::start(&sfc, &["-f", &file.to_string_lossy(), "--drain-timeout", "2", "--metrics", "127.0.0.1:9470"], &log)
        .unwrap_or_else(|e| panic!("{e:#}"));
    fx.write("chains.yaml", &chain(&fx.topo, &[1]));
    daemon.wait_for_log("draining: pp2", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e:#}"));
    let started = Instant::now();
    // Nothing else changes: the drain must end by the daemon's own clock.
    daemon.wait_for_log("drained and removed: pp2", Duration::from_secs(6)).unwrap_or_else(|e| panic!("{e:#}"));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "pp2 removed after {took:?}, before its 2 s drain was up:\n{}", daemon.log());
    let map = sfc.run(&["map", "dump", "port_pairs"]);
    assert!(!map.contains("pp2"), "pp2 still installed:\n{map}");
    assert!(daemon.is_running(), "{}", daemon.log());
    println!("pp2 drained and removed {took:?} after its drain started (--drain-timeout 2)");
}
