//! (a) Updates under a stream: 50 applies in a row (by `sfc apply`, and by the daemon, whose
//! applies after its first are incremental), and links that come and go with the chain version,
//! lose nothing and never send a packet through half a chain.

use std::{
    fmt::Write as _,
    path::PathBuf,
    thread::sleep,
    time::{Duration, Instant},
};

use sfc_tests::{
    Counters, Sfc, TopologyConfig,
    process::{Daemon, indent},
    scenario::Fixture,
    stream::SeqStream,
    topology::End,
};

use super::{
    assert_every_datagram_crossed_sf3_once, chain_files, context, generation, ms, settled_since,
    sports_on_both_pg1_members, stream,
};

/// Writes chains A and B and applies A; then the counters, and a stream over both PG1 members.
fn a_live_under_stream(fx: &Fixture, sfc: &Sfc<'_>) -> ((PathBuf, PathBuf), Counters, SeqStream) {
    let (a, b) = chain_files(fx);
    sfc.apply(&a);
    let sports = sports_on_both_pg1_members(fx, sfc);

    let before = fx.topo.counters().unwrap();
    ((a, b), before, stream(fx, sports))
}

/// (a) 50 updates in a row, alternating chain A and chain B with `--drain-timeout 0`, under a
/// 1000 pps stream over two 5-tuples (one on each PG1 member): every datagram arrives, and each
/// crossed sf3 exactly once. A packet sent through half a chain (hop 1 of A, then B's tables)
/// would cross sf3 twice or never.
#[test]
fn reapply_50_times_loses_nothing() {
    const APPLIES: usize = 50;
    const PAUSE: Duration = Duration::from_millis(30);
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let ((a, b), before, stream) = a_live_under_stream(&fx, &sfc);
    sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut applies = Vec::new();
    let mut generations = Vec::new();
    for k in 0..APPLIES {
        // A is live: B first, A last.
        let file = if k % 2 == 0 { &b } else { &a };
        let t = Instant::now();
        let out = sfc.apply_now(file);
        applies.push(t.elapsed());
        assert!(out.lines().any(|l| l.trim_start().starts_with("took ") && l.contains(" ms: the file read and checked ")), "apply #{k} says how long it took:\n{out}");
        let g = generation(&out).unwrap_or_else(|| {
            panic!(
                "apply #{k} of {} made no new generation:\n{out}",
                file.display()
            )
        });
        generations.push(g);
        sleep(PAUSE);
    }
    let total = started.elapsed();
    sleep(Duration::from_millis(200));
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(&fx, &sfc, &before);
    let ctx = context(
        &format!("{APPLIES} applies alternating B and A"),
        &fx,
        &report,
        &delta,
        &stats,
    );

    assert!(
        generations.windows(2).all(|w| w[1] > w[0]),
        "every apply must make a new generation: {generations:?}: {ctx}"
    );
    assert_every_datagram_crossed_sf3_once(&report, &delta, &stats, &ctx);
    // Both PG1 members carried their flow while A was live, and chain B's periods bypassed
    // PG1 (so both chains really alternated).
    let (sf1, sf2) = (
        delta.get(End::SfIn(1)).rx_packets,
        delta.get(End::SfIn(2)).rx_packets,
    );
    assert!(
        sf1 > 0 && sf2 > 0,
        "both PG1 members must carry traffic: {ctx}"
    );
    assert!(
        sf1 + sf2 < report.sent(),
        "chain B's periods must bypass PG1: {ctx}"
    );

    // A live again: nothing changes, and `--json` says how long that took, step by step.
    let again = sfc.apply_json(&a);
    assert_eq!(again["flipped"], false, "re-applying the live file changes nothing: {again}");
    let took = &again["took_ms"];
    let at = |k: &str| took[k].as_f64().unwrap_or_else(|| panic!("took_ms.{k} is a number: {again}"));
    let steps: f64 = took["apply_steps"].as_object().unwrap_or_else(|| panic!("took_ms.apply_steps: {again}")).values().filter_map(serde_json::Value::as_f64).sum();
    assert!(took["apply_steps"].get("facts, plan, compile").is_some(), "the steps by name: {again}");
    assert!(at("file") > 0.0 && steps > 0.0 && steps <= at("apply") && (at("total") - at("file") - at("apply")).abs() < 0.01, "the parts add up: {again}");

    let mean = applies.iter().sum::<Duration>() / u32::try_from(APPLIES).unwrap();
    let max = applies.iter().max().copied().unwrap_or_default();
    println!(
        "reapply_50_times_loses_nothing: {APPLIES} applies in {:.2} s (apply mean {:.1} ms, \
         max {:.1} ms, {PAUSE:?} pause after each), generations {}..={}; {report}; \
         through PG1: sf1 {sf1}, sf2 {sf2}; sf3 out tx {}",
        total.as_secs_f64(),
        ms(mean),
        ms(max),
        generations[0],
        generations[APPLIES - 1],
        delta.get(End::SfOut(3)).tx_packets,
    );
}

/// Links that come and go with the chain version: apply B twice (the repeat drops the program
/// from sf1's and sf2's `out`, which only A needs), then A, ten times over, under the stream.
/// Every datagram must still cross sf3 exactly once: A's apply has to attach the program to
/// those interfaces before its generation goes live (it once did so after the flip, and what
/// left sf1 or sf2 in between reached dest through the bridge, skipping sf3).
#[test]
fn reattaching_links_keeps_every_packet_in_the_chain() {
    const CYCLES: usize = 10;
    const PAUSE: Duration = Duration::from_millis(30);
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let ((a, b), before, stream) = a_live_under_stream(&fx, &sfc);
    let mut outputs = String::new();
    for k in 0..CYCLES {
        sleep(PAUSE);
        let to_b = sfc.apply_now(&b);
        let again = sfc.apply_now(&b);
        sleep(PAUSE);
        let to_a = sfc.apply_now(&a);
        let _ = write!(
            outputs,
            "cycle {k}:\n{}{}{}",
            indent(&to_b),
            indent(&again),
            indent(&to_a)
        );
        assert!(generation(&to_b).is_some(), "{outputs}");
        assert!(
            again.contains("no change") && again.contains("detached"),
            "the repeat of B must drop the links only A needs:\n{outputs}"
        );
        assert!(
            generation(&to_a).is_some() && to_a.contains("attached: ") && to_a.contains("(tc)"),
            "A must attach them again:\n{outputs}"
        );
    }
    sleep(PAUSE);
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(&fx, &sfc, &before);
    let ctx = format!(
        "{}\napplies:\n{outputs}",
        context(
            &format!("{CYCLES} x (B, B again, A)"),
            &fx,
            &report,
            &delta,
            &stats
        )
    );
    let bypassed = report.received() - delta.get(End::SfOut(3)).tx_packets.min(report.received());
    println!(
        "reattaching_links_keeps_every_packet_in_the_chain: {CYCLES} cycles; {bypassed} of {} \
         datagrams reached dest without crossing sf3; {report}",
        report.sent()
    );
    assert_every_datagram_crossed_sf3_once(&report, &delta, &stats, &ctx);
}

/// (a) The same 50 alternations under `sfc run`, each the daemon's file rewritten and a SIGHUP
/// (`systemctl reload`): every reload after the first apply starts from what the last apply
/// kept in the daemon (the classifier tables updated, the maps written from the log, nothing
/// read back, the state file written behind), makes a new generation, and the stream loses
/// nothing and crosses sf3 once per datagram.
#[test]
fn the_daemon_reapplies_50_times_and_loses_nothing() {
    const APPLIES: usize = 50;
    const PAUSE: Duration = Duration::from_millis(30);
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, b) = chain_files(&fx);
    let running = fx.dir.path().join("running.yaml");
    std::fs::copy(&a, &running).expect("copying chain A");
    let sock_path = fx.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let log = fx.dir.path().join("daemon.log");
    let file = running.to_string_lossy().into_owned();
    let mut daemon = Daemon::spawn_env(&sfc, &["-f", &file], &log, &[("NOTIFY_SOCKET", &sock_path)]).unwrap_or_else(|e| panic!("{e:#}"));
    super::service::notification(&sock, &daemon, "READY=1");
    let sports = sports_on_both_pg1_members(&fx, &sfc);
    let before = fx.topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    let stream = stream(&fx, sports);
    sleep(Duration::from_millis(200));
    for k in 0..APPLIES {
        // Whole or not at all: the daemon also looks at the file on its own.
        let next = fx.dir.path().join("running.yaml.new");
        std::fs::copy(if k % 2 == 0 { &b } else { &a }, &next).expect("writing the daemon's next file");
        std::fs::rename(&next, &running).expect("replacing the daemon's file");
        super::service::signal(&daemon, "-HUP");
        super::service::notification(&sock, &daemon, "RELOADING=1");
        super::service::notification(&sock, &daemon, "READY=1");
        sleep(PAUSE);
    }
    sleep(Duration::from_millis(200));
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(&fx, &sfc, &before);
    let text = daemon.log();
    let ctx = format!("{}\ndaemon log:\n{}", context(&format!("{APPLIES} reloads alternating B and A"), &fx, &report, &delta, &stats), indent(&text));
    // "applied <file>: generation N live, ...; took 1.2 ms (incremental: ...), after reading and
    // checking the configuration in 0.4 ms"
    let applies: Vec<&str> = text.lines().filter(|l| l.contains(&format!("applied {file}: generation "))).collect();
    let generations: Vec<u32> = applies.iter().filter_map(|l| l.split("generation ").nth(1)?.split_once(" live")?.0.parse().ok()).collect();
    assert_eq!(generations.len(), APPLIES, "one new generation per reload: {ctx}");
    assert!(generations.windows(2).all(|w| w[1] > w[0]), "generations {generations:?}: {ctx}");
    assert!(applies.iter().all(|l| l.contains("(incremental")), "every reload is incremental: {ctx}");
    assert!(applies.iter().all(|l| l.contains("after reading and checking the configuration in ")), "every reload says how long the file's read took: {ctx}");
    assert_every_datagram_crossed_sf3_once(&report, &delta, &stats, &ctx);
    let (sf1, sf2) = (delta.get(End::SfIn(1)).rx_packets, delta.get(End::SfIn(2)).rx_packets);
    assert!(sf1 > 0 && sf2 > 0 && sf1 + sf2 < report.sent(), "both chains took turns (sf1 {sf1}, sf2 {sf2}): {ctx}");
    super::service::signal(&daemon, "-TERM");
    let st = daemon.wait_exit(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(st.is_some_and(|s| s.success()), "{st:?}: {ctx}");
    // The state the daemon wrote behind its last apply is there, and names chain A's groups.
    let stats_after = sfc.run(&["stats"]);
    assert!(stats_after.contains("pp1"), "after the daemon: {stats_after}");
    println!("the_daemon_reapplies_50_times_and_loses_nothing: {report}; through PG1: sf1 {sf1}, sf2 {sf2}");
}
