//! Health through the function, not just its link: a service function that stops forwarding
//! with its link up (a hung VM) is found by `sfc run`'s probes, its flows move to the other
//! member of its group, and it serves again once it forwards probes again. A link that goes
//! down is noticed from the kernel's link notifications.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use sfc_tests::{
    ChainFile, Sfc, TopologyConfig,
    chain::{FlowClassifier, PortChain, PortPairGroup},
    lifecycle::{Daemon, STREAM_PORT, SeqStream, StreamSpec},
    netns,
    scenario::Fixture,
    topology::{DEST_IP, End, Topology},
};

const RATE: u32 = 1000;

/// PG1 = {PP1, PP2} probed every 100 ms (3 misses: down, 3 answers: up), PG2 = {PP3}.
fn chain(topo: &Topology) -> ChainFile {
    let mut pg1 = PortPairGroup::new("pg1", &["pp1", "pp2"]);
    pg1.health_check = Some(format!("{{destination: {DEST_IP}, interval_ms: 100, failures: 3, recoveries: 3}}"));
    ChainFile {
        port_pairs: [1, 2, 3].iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![pg1, PortPairGroup::new("pg2", &["pp3"])],
        flow_classifiers: vec![FlowClassifier::to_port("fc", "udp", STREAM_PORT, &topo.hub_dev(End::Source))],
        port_chains: vec![PortChain::new("pc1", 1, &["pg1", "pg2"], &["fc"])],
        interfaces: Vec::new(),
    }
}

fn forwarding(topo: &Topology, sf: u8, on: bool) {
    netns::sysctls(&topo.sf(sf), &[("net.ipv4.ip_forward", if on { "1" } else { "0" })]).unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn a_hung_function_is_found_by_probes_and_its_flows_move() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let file = fx.write("chains.yaml", &chain(topo));
    let log = fx.dir.path().join("daemon.log");
    // Link polling every 10 s: what happens below is the probes' doing.
    let args = ["-f", &file.to_string_lossy(), "--health-interval", "10000", "--metrics", "127.0.0.1:9472"];
    let mut daemon = Daemon::start(&sfc, &args, &log).unwrap_or_else(|e| panic!("{e:#}"));
    sleep(Duration::from_millis(500));
    assert!(!daemon.log().contains("not forwarding"), "healthy members reported down:\n{}", daemon.log());

    let spec = StreamSpec { rate: RATE, sports: vec![41_000], limit: Duration::from_secs(30) };
    let stream = SeqStream::start(&topo.source(), &topo.dest(), spec).unwrap_or_else(|e| panic!("{e:#}"));
    sleep(Duration::from_millis(500));
    let stats = sfc.stats();
    let carrying: Vec<u8> = [1u8, 2].into_iter().filter(|n| stats.packets("pc1", 0, &format!("pp{n}")).unwrap_or(0) > 0).collect();
    let [x] = carrying[..] else { panic!("one 5-tuple rides one member, got sf{carrying:?}:\n{stats}") };
    let y = 3 - x;

    let hung_at = Instant::now();
    forwarding(topo, x, false);
    daemon.wait_for_log(&format!("not forwarding now [pp{x}]"), Duration::from_secs(3)).unwrap_or_else(|e| panic!("{e:#}"));
    let detected = hung_at.elapsed();
    daemon.wait_for_log(&format!("down, failing over: pp{x}"), Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e:#}"));
    sleep(Duration::from_millis(1500));
    let resumed_at = Instant::now();
    forwarding(topo, x, true);
    daemon.wait_for_log(&format!("back up: pp{x}"), Duration::from_secs(3)).unwrap_or_else(|e| panic!("{e:#}"));
    let back_after = resumed_at.elapsed();
    sleep(Duration::from_millis(300));
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let ctx = format!("{report}\nsf{x} hung at {:.0} ms, resumed at {:.0} ms\ndaemon log:\n{}", report.ms(hung_at), report.ms(resumed_at), daemon.log());

    // Loss only while sf{x} was hung and before the failover; the stream resumed through sf{y}
    // within a second.
    let gaps = report.gaps();
    for g in &gaps {
        let sent = report.sent_at(g.first).unwrap();
        assert!(sent + Duration::from_millis(50) >= hung_at && sent < resumed_at, "datagrams #{}..=#{} lost outside the hang: {ctx}", g.first, g.last);
    }
    let resumed = gaps.last().map_or(Some(hung_at), |g| report.arrived_at(g.last + 1)).unwrap_or_else(|| panic!("the stream never resumed: {ctx}"));
    let outage = resumed.saturating_duration_since(hung_at);
    assert!(outage < Duration::from_secs(1), "flows moved {outage:?} after the hang: {ctx}");
    let after = sfc.stats();
    assert!(after.packets("pc1", 0, &format!("pp{y}")).unwrap_or(0) > 0, "nothing went through pp{y}: {ctx}");
    assert!(detected < Duration::from_secs(1), "detected after {detected:?}: {ctx}");
    assert!(daemon.is_running(), "{ctx}");
    // Probes are consumed at the egress: never counted as traffic, never dropped.
    assert!(after.drops().values().all(|v| *v == 0), "drops: {after}");
    println!(
        "hung sf{x} detected by probes {:.0} ms after it stopped forwarding; largest gap {:.1} ms ({} datagrams lost); back in its group {:.0} ms after it resumed",
        detected.as_secs_f64() * 1e3,
        outage.as_secs_f64() * 1e3,
        report.lost(),
        back_after.as_secs_f64() * 1e3,
    );
}

/// With link polling every 10 s, a member whose link goes down is still taken out within a
/// second: the daemon hears it from the kernel's link notifications.
#[test]
fn a_link_down_is_heard_not_polled() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let mut file = chain(topo);
    file.port_pair_groups[0].health_check = None;
    let file = fx.write("chains.yaml", &file);
    let log = fx.dir.path().join("daemon.log");
    let args = ["-f", &file.to_string_lossy(), "--health-interval", "10000", "--metrics", "127.0.0.1:9473"];
    let mut daemon = Daemon::start(&sfc, &args, &log).unwrap_or_else(|e| panic!("{e:#}"));
    let down_at = Instant::now();
    netns::ip_in(&topo.hub(), &["link", "set", &topo.hub_dev(End::SfIn(1)), "down"]).unwrap();
    daemon.wait_for_log("down, failing over: pp1", Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e:#}"));
    println!("link down heard and failed over {:.0} ms after it went down", down_at.elapsed().as_secs_f64() * 1e3);
}
