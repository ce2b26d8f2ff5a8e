//! What `sfc run` does by its own clock: a drain ends on time (a port pair removed from the chain
//! file keeps serving its flows for `--drain-timeout`, then goes with no further change to the
//! file; a one-shot `sfc apply` removes it only at its next run), and flow entries age out (a
//! closed TCP flow after `--flow-close-grace`, an idle one after `--flow-idle-timeout`).
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use sfc_tests::{
    ChainFile, Sfc, TopologyConfig,
    chain::{FlowClassifier, PortChain, PortPairGroup},
    process::Daemon,
    scenario::Fixture,
    send,
    topology::{DEST_IP, End, Topology},
    traffic::{TcpServer, tcp_requests},
};

fn chain(topo: &Topology, members: &[u8]) -> ChainFile {
    let pps: Vec<String> = members.iter().map(|n| format!("pp{n}")).collect();
    ChainFile {
        port_pairs: members.iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![PortPairGroup::new(
            "pg1",
            &pps.iter().map(String::as_str).collect::<Vec<_>>(),
        )],
        flow_classifiers: vec![FlowClassifier::to_port(
            "fc",
            "udp",
            5000,
            &topo.hub_dev(End::Source),
        )],
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
    let mut daemon = Daemon::start(
        &sfc,
        &[
            "-f",
            &file.to_string_lossy(),
            "--drain-timeout",
            "2",
            "--metrics",
            "127.0.0.1:9470",
        ],
        &log,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    fx.write("chains.yaml", &chain(&fx.topo, &[1]));
    daemon
        .wait_for_log("draining: pp2", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let started = Instant::now();
    // Nothing else changes: the drain must end by the daemon's own clock.
    daemon
        .wait_for_log("drained and removed: pp2", Duration::from_secs(6))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "pp2 removed after {took:?}, before its 2 s drain was up:\n{}",
        daemon.log()
    );
    let map = sfc.run(&["map", "dump", "port_pairs"]);
    assert!(!map.contains("pp2"), "pp2 still installed:\n{map}");
    assert!(daemon.is_running(), "{}", daemon.log());
    println!("pp2 drained and removed {took:?} after its drain started (--drain-timeout 2)");
}

/// A closed TCP flow goes after the close grace (1 s), an idle UDP flow after the idle timeout
/// (4 s), each counted as removed; the UDP flow outlives the closed TCP one.
#[test]
fn flows_age_out_under_sfc_run() {
    let fx = Fixture::new(TopologyConfig::new(&[1]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let web = SocketAddr::new(IpAddr::V4(DEST_IP), 80);
    let _server = TcpServer::start(&topo.dest(), web).unwrap();
    let mut file = chain(topo, &[1]);
    file.flow_classifiers = vec![
        FlowClassifier::to_port("fc", "udp", 5000, &topo.hub_dev(End::Source)),
        FlowClassifier::to_port("web", "tcp", 80, &topo.hub_dev(End::Source)),
    ];
    file.port_chains = vec![PortChain::new("pc1", 1, &["pg1"], &["fc", "web"])];
    let path = fx.write("chains.yaml", &file);
    let log = fx.dir.path().join("daemon.log");
    let args = [
        "-f",
        &path.to_string_lossy(),
        "--flow-idle-timeout",
        "4",
        "--flow-close-grace",
        "1",
        "--metrics",
        "127.0.0.1:9471",
    ];
    let mut daemon = Daemon::start(&sfc, &args, &log).unwrap_or_else(|e| panic!("{e:#}"));

    let out = tcp_requests(&topo.source(), web, 1).unwrap();
    assert_eq!(out.ok, 1, "{out:?}");
    send::datagrams_with_ttls(
        &topo.source(),
        SocketAddr::new(IpAddr::V4(DEST_IP), 5000),
        &[64; 3],
        Duration::from_millis(10),
    )
    .unwrap();
    let flows = sfc.try_flows().unwrap();
    let tcp = |f: &&sfc_tests::sfc::Flow| f.protocol == "tcp";
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert!(
        flows.iter().find(tcp).is_some_and(|f| f.closing),
        "the TCP flow closed: {flows:?}"
    );
    let started = Instant::now();
    let wait = |what: &str, cond: &dyn Fn(&[sfc_tests::sfc::Flow]) -> bool| {
        while !cond(&sfc.try_flows().unwrap()) {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{what} not within 15 s: {:?}\n{}",
                sfc.try_flows(),
                daemon_log(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    };
    let tcp_gone = wait("the closed TCP flow removed", &|f| {
        f.len() == 1 && !f.iter().any(|x| x.protocol == "tcp")
    });
    let udp_gone = wait("the idle UDP flow removed", &|f| f.is_empty());
    assert!(
        udp_gone >= Duration::from_secs(2),
        "the UDP flow went after {udp_gone:?}, before its 4 s idle timeout"
    );
    let removed = sfc.stats().json["flow_table"]["removed"].as_u64();
    assert_eq!(removed, Some(2), "{}", sfc.stats());
    assert!(daemon.is_running(), "{}", daemon.log());
    println!("closed TCP flow removed {tcp_gone:?}, idle UDP flow {udp_gone:?} after the traffic");
}

fn daemon_log(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
