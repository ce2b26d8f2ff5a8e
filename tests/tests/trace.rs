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
    topology::{DEST_IP, End, SOURCE_IP},
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

sfc_tests::in_both_modes!(
    every_traced_packet_shows_the_members_it_crossed,
    service_function_latency_is_measured_per_member,
    a_probe_reports_the_path_a_packet_takes_and_is_never_sent
);

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

/// `sfc trace --probe` as JSON, the probe a UDP datagram from `sport` to `dport`.
fn probe(sfc: &Sfc<'_>, src_dev: &str, sport: u16, dport: u16) -> serde_json::Value {
    let (src, dst, sport, dport) = (SOURCE_IP.to_string(), DEST_IP.to_string(), sport.to_string(), dport.to_string());
    let out = sfc.run(&["trace", "--probe", "--in", src_dev, "--proto", "udp", "--src", &src, "--dst", &dst, "--sport", &sport, "--dport", &dport, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Whether `sfc flows` lists a flow from source port `sport`.
fn has_flow(sfc: &Sfc<'_>, sport: u16) -> bool {
    let json = sfc.run(&["flows", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["flows"].as_array().unwrap_or_else(|| panic!("{json}")).iter().any(|f| f["sport"] == sport || f["dport"] == sport)
}

/// The SF latency samples of every member, summed.
fn latency_samples(sfc: &Sfc<'_>) -> u64 {
    let json = sfc.run(&["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let hops = v["chains"][0]["hops"].as_array().cloned().unwrap_or_default();
    hops.iter().flat_map(|h| h["members"].as_array().cloned().unwrap_or_default()).map(|m| m["latency"]["samples"].as_u64().unwrap_or(0)).sum()
}

/// A probe goes through the live programs hop by hop: it names the member of each group and
/// the destination port, while no interface of any function or of the destination sees a
/// packet. A probe of a new 5-tuple leaves no flow entry and no SF latency sample behind; a
/// probe of a live flow follows that flow's member and leaves its entry alone; a 5-tuple no
/// classifier matches is reported as untouched; tracing is off again afterwards.
fn a_probe_reports_the_path_a_packet_takes_and_is_never_sent(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let mut file = failover::chain(topo, false);
    let dest = topo.hub_dev(End::Dest);
    if let Some(fc) = file.flow_classifiers.first_mut() {
        fc.logical_destination_port = Some(dest.clone());
    }
    let path = fx.write("chains.yaml", &file);
    sfc.run(&["apply", "--mode", mode, "--sf-latency-every", "1", "-f", &path.to_string_lossy()]);
    let src = topo.hub_dev(End::Source);

    let (v, w) = fx.window(&sfc, "one probe", || probe(&sfc, &src, 40_001, STREAM_PORT));
    assert_eq!(v["ended"], "delivered", "{v}");
    assert_eq!(v["mode"], mode, "{v}");
    let steps: Vec<&str> = v["path"].as_array().unwrap_or_else(|| panic!("{v}")).iter().filter_map(|s| s.as_str()).collect();
    assert_eq!(steps.len(), 4, "{v}");
    assert_eq!((steps[0], steps[2], steps[3]), (src.as_str(), "pp3 (pg2)", dest.as_str()), "{v}");
    assert!(steps[1] == "pp1 (pg1)" || steps[1] == "pp2 (pg1)", "{v}");
    let si: Vec<u64> = v["events"].as_array().unwrap_or_else(|| panic!("{v}")).iter().filter_map(|e| e["si"].as_u64()).collect();
    assert_eq!(si, [255, 254, 253], "SI at each decision: {v}");
    for end in [End::SfIn(1), End::SfIn(2), End::SfIn(3), End::SfOut(1), End::SfOut(2), End::SfOut(3), End::Dest] {
        assert_eq!(w.link(end).rx_packets + w.link(end).tx_packets, 0, "{end:?} saw the probe on a wire: {}", w.report());
    }
    let member = steps[1].split(' ').next().unwrap_or_default();
    assert_eq!(w.packets("pc1", 0, member), 1, "the probe is counted like a packet: {}", w.report());
    assert!(!has_flow(&sfc, 40_001), "the probe's flow entry is removed");
    assert_eq!(latency_samples(&sfc), 0, "the probe's time in a member is not a latency sample");

    // A live flow: the probe takes that flow's member and leaves its entry.
    let real = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    let ((), w) = fx.window(&sfc, "a real flow", || {
        datagrams_from(&topo.source(), 40_002, real, &[64; 3], Duration::from_millis(2)).unwrap_or_else(|e| panic!("{e:#}"));
    });
    let carrier = if w.packets("pc1", 0, "pp1") == 3 { "pp1 (pg1)" } else { "pp2 (pg1)" };
    assert_eq!(w.packets("pc1", 0, "pp1") + w.packets("pc1", 0, "pp2"), 3, "{}", w.report());
    let v = probe(&sfc, &src, 40_002, STREAM_PORT);
    assert_eq!((v["ended"].as_str(), v["path"][1].as_str()), (Some("delivered"), Some(carrier)), "{v}");
    assert!(has_flow(&sfc, 40_002), "the live flow keeps its entry");

    // Not chain traffic: untouched.
    let v = probe(&sfc, &src, 40_003, 9);
    assert_eq!(v["ended"], "not_steered", "{v}");
    assert_eq!(v["events"].as_array().map(Vec::len), Some(0), "{v}");

    // Tracing is off again: traffic emits no event.
    let stats = |s: &str| -> u64 {
        let json = sfc.run(&["stats", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        v["trace"][s].as_u64().unwrap_or_else(|| panic!("no trace.{s}: {json}"))
    };
    let before = stats("emitted");
    send_flows(topo);
    assert_eq!(stats("emitted"), before, "tracing stays off after a probe");
    let text = sfc.run(&["trace", "--probe", "--in", &src, "--proto", "udp", "--src", &SOURCE_IP.to_string(), "--dst", &DEST_IP.to_string(), "--sport", "40001", "--dport", &STREAM_PORT.to_string()]);
    assert!(text.contains("nothing is sent") && text.contains(&format!("path: {src} -> pp")) && text.contains(&format!("delivered to {dest}")), "{text}");
}
