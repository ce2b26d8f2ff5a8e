//! `sfc trace`: every packet of the traced traffic is reported with the members it really
//! crossed (checked against the service functions' own interface counters), filters are honoured
//! in the kernel, and events over the budget are counted as lost, never silently missing.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    collections::BTreeMap,
    fs::File,
    net::{IpAddr, SocketAddr},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, TopologyConfig,
    failover,
    process::ChildGuard,
    scenario::Fixture,
    send::datagrams_from,
    stream::STREAM_PORT,
    topology::{DEST_IP, End},
};

/// Source ports of the traced flows, and datagrams per flow.
const SPORTS: [u16; 8] = [41_001, 41_002, 41_003, 41_004, 41_005, 41_006, 41_007, 41_008];
const PER_FLOW: usize = 5;

/// `sfc trace ARGS` in the background, its output in files under `dir`; returns once it says
/// it is tracing.
fn start_trace(sfc: &Sfc<'_>, dir: &Path, args: &[&str]) -> (ChildGuard, std::path::PathBuf, std::path::PathBuf) {
    let (out, err) = (dir.join("trace.out"), dir.join("trace.err"));
    let mut all = vec!["trace"];
    all.extend_from_slice(args);
    let mut cmd = sfc.command(&all);
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out).unwrap_or_else(|e| panic!("{e}")))
        .stderr(File::create(&err).unwrap_or_else(|e| panic!("{e}")));
    let child = ChildGuard::spawn(cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&err).unwrap_or_default().contains("tracing") {
        assert!(Instant::now() < deadline, "sfc trace did not start: {}", std::fs::read_to_string(&err).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, out, err)
}

fn send_flows(topo: &sfc_tests::Topology) {
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    for sport in SPORTS {
        datagrams_from(&topo.source(), sport, dest, &[64; PER_FLOW], Duration::from_millis(2)).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

fn finish(mut child: ChildGuard, out: &Path, err: &Path) -> (String, String) {
    let status = child.wait_timeout(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e:#}"));
    let (out, err) = (std::fs::read_to_string(out).unwrap_or_default(), std::fs::read_to_string(err).unwrap_or_default());
    assert!(status.is_some_and(|s| s.success()), "sfc trace did not end well ({status:?}):\n{out}\n{err}");
    (out, err)
}

sfc_tests::in_both_modes!(every_traced_packet_shows_the_members_it_crossed, service_function_latency_is_measured_per_member);

/// PG1 = {PP1, PP2}, PG2 = {PP3}: eight flows, five datagrams each. Every packet is one line
/// naming its member at each hop; a flow keeps its member; the lines per member add up to what
/// the member's own interface counted.
fn every_traced_packet_shows_the_members_it_crossed(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    sfc.apply(&fx.write("chains.yaml", &failover::chain(topo, false)));
    let n = (SPORTS.len() * PER_FLOW).to_string();
    let dport = STREAM_PORT.to_string();
    let (child, out, err) = start_trace(&sfc, fx.dir.path(), &["--chain", "pc1", "--proto", "udp", "--dport", &dport, "--count", &n]);
    let ((), w) = fx.window(&sfc, "traced UDP flows", || send_flows(topo));
    let (out, err) = finish(child, &out, &err);

    let src = topo.hub_dev(End::Source);
    let mut by_member: BTreeMap<String, u64> = BTreeMap::new();
    let mut member_of_flow: BTreeMap<String, String> = BTreeMap::new();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), SPORTS.len() * PER_FLOW, "one line per packet:\n{out}\n{err}");
    for line in &lines {
        // `udp 198.18.0.1:41001 > 198.18.0.2:5201  a-src -> pp2 (pg1) -> pp3 (pg2) -> host, 12 us`
        let (flow, path) = line.split_once("  ").unwrap_or_else(|| panic!("{line}"));
        let steps: Vec<&str> = path.split(" -> ").collect();
        assert_eq!(steps.len(), 4, "{line}");
        assert_eq!(steps[0], src, "{line}");
        assert!(steps[1] == "pp1 (pg1)" || steps[1] == "pp2 (pg1)", "{line}");
        assert_eq!(steps[2], "pp3 (pg2)", "{line}");
        assert!(steps[3].starts_with("host, ") && (steps[3].ends_with(" us") || steps[3].ends_with(" ms")), "{line}");
        let member = steps[1].split(' ').next().unwrap_or_default().to_owned();
        let first = member_of_flow.entry(flow.to_owned()).or_insert_with(|| member.clone());
        assert_eq!(*first, member, "a flow changed members: {line}\n{out}");
        *by_member.entry(member).or_default() += 1;
    }
    assert_eq!(member_of_flow.len(), SPORTS.len(), "{out}");
    for n in [1u8, 2] {
        let traced = by_member.get(&format!("pp{n}")).copied().unwrap_or(0);
        assert_eq!(traced, w.link(End::SfIn(n)).rx_packets, "pp{n}: traced vs its own counter\n{out}\n{}", w.report());
    }
    assert_eq!(w.link(End::SfIn(3)).rx_packets, lines.len() as u64, "{}", w.report());
    assert!(err.contains("lost: 0 over the budget") && err.contains(", 0 to a full ring buffer"), "{err}");
}

/// Filters are applied in the kernel: a filter nothing matches emits no event at all; a budget
/// of one event per second per CPU loses the rest, and says how many.
#[test]
fn filters_and_the_budget_are_honoured() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    sfc.apply(&fx.write("chains.yaml", &failover::chain(topo, false)));

    let (child, out, err) = start_trace(&sfc, fx.dir.path(), &["--dport", "9", "--duration", "1.5"]);
    send_flows(topo);
    let (out, err) = finish(child, &out, &err);
    assert!(out.is_empty() && err.contains("\n0 events; lost: 0 over the budget"), "{out}\n{err}");

    let (child, out, err) = start_trace(&sfc, fx.dir.path(), &["--budget", "1", "--duration", "1.5", "--json"]);
    send_flows(topo);
    let (out, err) = finish(child, &out, &err);
    let events = out.lines().count();
    let lost: u64 = err
        .split("lost: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!((1..=4).contains(&events), "one event per CPU per second: {events}\n{out}");
    // 40 packets, three hop decisions each (into PG1, into PG2, back to the host): all but
    // those emitted are lost.
    assert_eq!(events as u64 + lost, 120, "{err}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(first["chain"], "pc1", "{first}");
    let stats = sfc.run(&["stats"]);
    assert!(stats.contains("trace events:"), "sfc stats shows the trace counters:\n{stats}");
}


/// With every packet timed (`--sf-latency-every 1`), each member's histogram holds one sample
/// per packet it forwarded, and `sfc stats` shows its p50 and p99.
fn service_function_latency_is_measured_per_member(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let file = fx.write("chains.yaml", &failover::chain(topo, false));
    sfc.run(&["apply", "--mode", mode, "--sf-latency-every", "1", "-f", &file.to_string_lossy()]);
    let ((), w) = fx.window(&sfc, "timed UDP flows", || send_flows(topo));
    let json = sfc.run(&["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut samples = BTreeMap::new();
    for hop in v["chains"][0]["hops"].as_array().unwrap_or_else(|| panic!("{json}")) {
        for m in hop["members"].as_array().unwrap_or_else(|| panic!("{json}")) {
            let name = m["port_pair"].as_str().unwrap_or_default().to_owned();
            let l = &m["latency"];
            if l.is_null() {
                samples.insert(name, 0);
                continue;
            }
            let (p50, p99) = (l["p50_seconds"].as_f64().unwrap_or(0.0), l["p99_seconds"].as_f64().unwrap_or(0.0));
            assert!(p50 > 0.0 && p50 <= p99 && p99 < 1.0, "{name}: {l}");
            samples.insert(name, l["samples"].as_u64().unwrap_or(0));
        }
    }
    for n in [1u8, 2, 3] {
        let got = samples.get(&format!("pp{n}")).copied().unwrap_or(0);
        assert_eq!(got, w.link(End::SfIn(n)).rx_packets, "pp{n}: samples vs packets into it\n{json}\n{}", w.report());
    }
    let text = sfc.run(&["stats"]);
    assert!(text.contains("in SF p50 < "), "{text}");
}
