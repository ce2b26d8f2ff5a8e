//! The datapath's lifecycle under traffic (issue 5): 50 updates in a row lose nothing and never
//! send a packet through half a chain; the loader (daemon or `sfc apply`) can die at any moment
//! while forwarding goes on from the pins; a member whose link goes down fails over within a
//! second; the daemon's metrics say exactly what `sfc stats --json` says; a second loader is
//! refused while one holds the lock, and the pin and state directories are private.
//!
//! Every test streams sequence-numbered UDP datagrams source -> dest:5000 at a steady rate
//! ([`SeqStream`]), so a loss is a named sequence number, not a guess. Chain files: PP1..PP3 for
//! sf1..sf3, PG1 = {PP1, PP2}, PG2 = {PP3}; chain A = pc1 [PG1, PG2], chain B = pc1 [PG2].
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`. `--nocapture` shows the measured figures (timings, loss, failover gap).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::OpenOptions,
    net::{Ipv4Addr, SocketAddr},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    thread::sleep,
    time::{Duration, Instant},
};

use sfc_tests::{
    ChainFile, Counters, Sfc, Stats, TopologyConfig,
    chain::{FlowClassifier, PortChain, PortPairGroup},
    process::{Daemon, indent, kill_after},
    prometheus::Exposition,
    rng::Rng,
    sfc::sports_for_members,
    stream::{STREAM_PORT, SeqStream, StreamReport, StreamSpec, kernel_drops},
    netns::ip_in,
    scenario::Fixture,
    sfc::diagnostics,
    topology::{DEST_IP, End, Topology},
    traffic::{UdpEchoServer, udp_exchange},
};

/// Datagrams per second of every stream.
const RATE: u32 = 1000;
/// No stream runs longer than this, whatever happens.
const STREAM_LIMIT: Duration = Duration::from_secs(30);
/// The daemon's metrics socket: 127.0.0.1 of the hub namespace (the default address).
const METRICS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9469);

/// PP1..PP3, PG1 = {PP1, PP2}, PG2 = {PP3}, classifier `fc` (UDP to dest port 5000 from
/// source), and chain pc1 (id 1) over `groups`.
fn chain(topo: &Topology, groups: &[&str]) -> ChainFile {
    ChainFile {
        port_pairs: [1, 2, 3].iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![
            PortPairGroup::new("pg1", &["pp1", "pp2"]),
            PortPairGroup::new("pg2", &["pp3"]),
        ],
        flow_classifiers: vec![FlowClassifier::to_port(
            "fc",
            "udp",
            STREAM_PORT,
            &topo.hub_dev(End::Source),
        )],
        port_chains: vec![PortChain::new("pc1", 1, groups, &["fc"])],
        interfaces: Vec::new(),
    }
}

/// Writes chain A ([PG1, PG2]) and chain B ([PG2]).
fn chain_files(fx: &Fixture) -> (PathBuf, PathBuf) {
    (
        fx.write("a.yaml", &chain(&fx.topo, &["pg1", "pg2"])),
        fx.write("b.yaml", &chain(&fx.topo, &["pg2"])),
    )
}

fn stream(fx: &Fixture, sports: Vec<u16>) -> SeqStream {
    let spec = StreamSpec {
        rate: RATE,
        sports,
        limit: STREAM_LIMIT,
    };
    SeqStream::start(&fx.topo.source(), &fx.topo.dest(), spec).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The generation an `sfc apply` output says went live (`generation N: map entries ...`).
fn generation(apply_output: &str) -> Option<u32> {
    let rest = apply_output.split("generation ").nth(1)?;
    let (n, tail) = rest.split_once(':')?;
    tail.starts_with(" map entries").then_some(())?;
    n.trim().parse().ok()
}

/// Everything about a stream and the topology for an assertion message.
fn context(
    what: &str,
    fx: &Fixture,
    report: &StreamReport,
    delta: &Counters,
    stats: &Stats,
) -> String {
    format!(
        "{what} (topology {})\n{report}\nendpoint counter deltas:\n{delta}\nkernel drop \
         counters (since the topology was built):\n{}sfc stats --json:\n{stats}\n{}",
        fx.topo.id(),
        kernel_drops(&fx.topo),
        diagnostics(&fx.topo)
    )
}

/// Demands what every lifecycle stream must show: nothing lost, duplicated or failed to send,
/// and every datagram crossed sf3 exactly once (so none skipped a chain's last hop or went
/// through twice) and reached dest; no sfc drop at all.
fn assert_every_datagram_crossed_sf3_once(
    report: &StreamReport,
    delta: &Counters,
    stats: &Stats,
    ctx: &str,
) {
    assert!(report.send_failures.is_empty(), "send failures: {ctx}");
    assert_eq!(report.lost(), 0, "datagrams lost: {ctx}");
    assert_eq!(report.duplicates, 0, "datagrams duplicated: {ctx}");
    assert_eq!(report.received(), report.sent(), "received vs sent: {ctx}");
    let n = report.sent();
    assert_eq!(delta.get(End::Source).tx_packets, n, "source tx: {ctx}");
    assert_eq!(delta.get(End::Dest).rx_packets, n, "dest rx: {ctx}");
    assert_eq!(delta.get(End::SfIn(3)).rx_packets, n, "sf3 in rx: {ctx}");
    assert_eq!(delta.get(End::SfOut(3)).tx_packets, n, "sf3 out tx: {ctx}");
    for n in [1, 2] {
        assert_eq!(
            delta.get(End::SfIn(n)).rx_packets,
            delta.get(End::SfOut(n)).tx_packets,
            "sf{n} forwarded a different number of packets than it received: {ctx}"
        );
    }
    let drops: BTreeMap<String, u64> = stats.drops().into_iter().filter(|(_, v)| *v > 0).collect();
    assert!(drops.is_empty(), "sfc drops {drops:?}: {ctx}");
}

/// Settles, then returns the counter deltas since `before` and the stats.
fn settled_since(fx: &Fixture, sfc: &Sfc<'_>, before: &Counters) -> (Counters, Stats) {
    let (after, stats) = fx.settled(sfc);
    (after.since(before), stats)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
    let (a, b) = chain_files(&fx);
    sfc.apply(&a);
    let src = fx.topo.hub_dev(End::Source);
    let sports =
        sports_for_members(&sfc, &src, 0, &["pp1", "pp2"]).unwrap_or_else(|e| panic!("{e:#}"));

    let before = fx.topo.counters().unwrap();
    let stream = stream(&fx, sports);
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
    let (a, b) = chain_files(&fx);
    sfc.apply(&a);
    let src = fx.topo.hub_dev(End::Source);
    let sports =
        sports_for_members(&sfc, &src, 0, &["pp1", "pp2"]).unwrap_or_else(|e| panic!("{e:#}"));

    let before = fx.topo.counters().unwrap();
    let stream = stream(&fx, sports);
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

/// (b) The loader may die at any moment. `sfc run` is killed (SIGKILL) mid-stream: forwarding
/// goes on from the pins (the SFs' counters keep moving) and a new `sfc apply` of the daemon's
/// file adopts the pinned state ("no change"). Then `sfc apply` runs alternating A and B are
/// killed at random moments of their run (`SFC_TEST_SEED` replays the delays); a clean apply
/// succeeds afterwards, a repeat of it says "no change", and over all of it the stream lost
/// nothing and every datagram crossed sf3 exactly once.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn killing_the_loader_loses_nothing() {
    const KILLED_APPLIES: usize = 12;
    let (mut rng, seed) = Rng::from_env_or_clock();
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, b) = chain_files(&fx);
    let log = fx.dir.path().join("daemon.log");
    let mut daemon = Daemon::start(
        &sfc,
        &["-f", &a.to_string_lossy(), "--drain-timeout", "0"],
        &log,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let src = fx.topo.hub_dev(End::Source);
    let sports =
        sports_for_members(&sfc, &src, 0, &["pp1", "pp2"]).unwrap_or_else(|e| panic!("{e:#}"));

    let before = fx.topo.counters().unwrap();
    let stream = stream(&fx, sports);
    sleep(Duration::from_millis(500));
    let at_kill = fx.topo.counters().unwrap();
    assert!(
        daemon.kill().unwrap(),
        "the daemon had exited before the kill:\n{}",
        daemon.log()
    );
    let killed_at = Instant::now();
    sleep(Duration::from_millis(500));
    let after_kill = fx.topo.counters().unwrap().since(&at_kill);
    for end in [End::SfIn(1), End::SfIn(2), End::SfOut(3)] {
        let moved = after_kill.get(end);
        assert!(
            moved.rx_packets + moved.tx_packets > 100,
            "{end} stood still in the 500 ms after the daemon was killed:\n{after_kill}\ndaemon log:\n{}\n{}",
            daemon.log(),
            diagnostics(&fx.topo)
        );
    }
    assert!(
        sfc.pin_dir().join("prog_tc_ingress").exists(),
        "the pins went with the daemon"
    );
    let adopt = sfc.apply_now(&a);
    assert!(
        adopt.contains("no change"),
        "a new loader must adopt the state the killed daemon left:\n{adopt}"
    );

    // A clean apply's duration, to spread the kills over a whole run.
    let t = Instant::now();
    let out = sfc.apply_now(&b);
    let clean = t.elapsed();
    assert!(generation(&out).is_some(), "{out}");
    let mut runs = Vec::new();
    for k in 0..KILLED_APPLIES {
        let file = if k % 2 == 0 { &a } else { &b };
        let delay = rng.duration_below(clean + clean / 4);
        let run = kill_after(
            &sfc,
            &[
                "apply",
                "-f",
                &file.to_string_lossy(),
                "--drain-timeout",
                "0",
            ],
            delay,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        runs.push(run);
        sleep(Duration::from_millis(20));
    }
    let mut runs_text = String::new();
    for r in &runs {
        let _ = writeln!(runs_text, "  {r}");
    }
    // A clean apply of A succeeds whatever the killed runs left (a new generation, or "no
    // change" when the last run to get that far installed A); a repeat of it changes nothing.
    let clean_a = sfc
        .try_run(&["apply", "-f", &a.to_string_lossy(), "--drain-timeout", "0"])
        .unwrap_or_else(|e| {
            panic!("clean apply after the kills: {e:#}\nkilled runs (seed {seed}):\n{runs_text}")
        });
    let again = sfc.apply_now(&a);
    sleep(Duration::from_millis(300));
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(&fx, &sfc, &before);
    let ctx = format!(
        "{}\nkilled apply runs (SFC_TEST_SEED={seed}):\n{runs_text}clean apply \
         A:\n{}repeat:\n{}daemon log:\n{}",
        context(
            "daemon killed, then applies killed",
            &fx,
            &report,
            &delta,
            &stats
        ),
        indent(&clean_a),
        indent(&again),
        indent(&daemon.log())
    );
    assert!(
        again.contains("no change"),
        "the same file again must be no change: {ctx}"
    );
    assert_every_datagram_crossed_sf3_once(&report, &delta, &stats, &ctx);

    let killed = runs.iter().filter(|r| r.killed).count();
    println!(
        "killing_the_loader_loses_nothing: daemon SIGKILLed {:.0} ms into the stream; clean \
         apply {:.1} ms; {killed} of {KILLED_APPLIES} applies killed mid-run (delays {:?} ms, \
         seed {seed}); {report}",
        report.ms(killed_at),
        ms(clean),
        runs.iter()
            .map(|r| format!("{:.0}{}", ms(r.delay), if r.killed { "k" } else { "" }))
            .collect::<Vec<_>>(),
    );
}

/// Scrapes the daemon's /metrics from inside the hub namespace.
fn scrape(topo: &Topology) -> Exposition {
    let reply = sfc_tests::http::http_get_in(&topo.hub(), METRICS, "/metrics")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.body);
    Exposition::parse(&reply.body).unwrap_or_else(|e| panic!("{e:#}\n{}", reply.body))
}

/// Polls the metrics until `ok` holds (at most `limit`); returns the last scrape and how long
/// it took.
fn scrape_until(
    topo: &Topology,
    limit: Duration,
    ok: impl Fn(&Exposition) -> bool,
) -> (Exposition, Option<Duration>) {
    let start = Instant::now();
    loop {
        let e = scrape(topo);
        if ok(&e) {
            return (e, Some(start.elapsed()));
        }
        if start.elapsed() >= limit {
            return (e, None);
        }
        sleep(Duration::from_millis(20));
    }
}

/// (c) `sfc run` watches the members' links: one 5-tuple at 1000 pps through PG1 = {PP1, PP2};
/// the `in` link of the member carrying it goes down inside its SF namespace; the stream resumes
/// through the other member within a second, one failover is counted (stats and metrics), and
/// when the link comes back the member is reported up again without losing anything more.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn link_down_fails_over_within_a_second() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, _) = chain_files(&fx);
    let log = fx.dir.path().join("daemon.log");
    let mut daemon = Daemon::start(
        &sfc,
        &["-f", &a.to_string_lossy(), "--health-interval", "200"],
        &log,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    let before = fx.topo.counters().unwrap();
    let stream = stream(&fx, vec![40_000]);
    sleep(Duration::from_millis(500));
    let stats = sfc.stats();
    let carrying: Vec<u8> = [1u8, 2]
        .into_iter()
        .filter(|n| stats.packets("pc1", 0, &format!("pp{n}")).unwrap_or(0) > 0)
        .collect();
    let [x] = carrying[..] else {
        panic!("one 5-tuple must ride exactly one PG1 member, got sf{carrying:?}:\n{stats}")
    };
    let y = 3 - x;
    let (ppx, ppy) = (format!("pp{x}"), format!("pp{y}"));
    let at_down = fx.topo.counters().unwrap();
    assert_eq!(
        at_down.since(&before).get(End::SfOut(y)).tx_packets,
        0,
        "sf{y} carried traffic before the failover:\n{}",
        at_down.since(&before)
    );

    let down_at = Instant::now();
    ip_in(&fx.topo.sf(x), &["link", "set", "in", "down"]).unwrap();
    sleep(Duration::from_millis(1500));
    let (down_metrics, failover_seen) = scrape_until(&fx.topo, Duration::from_secs(2), |e| {
        e.value("sfc_failovers_total", &[]) == Some(1)
    });
    let down_stats = sfc.stats();
    let up_at = Instant::now();
    ip_in(&fx.topo.sf(x), &["link", "set", "in", "up"]).unwrap();
    let (up_metrics, back_after) = scrape_until(&fx.topo, Duration::from_secs(3), |e| {
        e.value("sfc_port_pair_up", &[("port_pair", &ppx)]) == Some(1)
    });
    // Reported up is the link; back in its group is the daemon's re-apply.
    let back_in_group = daemon.wait_for_log(&format!("back up: {ppx}"), Duration::from_secs(1));
    let back_in_group_after = up_at.elapsed();
    sleep(Duration::from_millis(500));
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(&fx, &sfc, &before);
    let ctx = format!(
        "{}\nsf{x} in down at {:.1} ms, up at {:.1} ms\ndaemon log:\n{}",
        context(
            &format!("sf{x} in down, then up"),
            &fx,
            &report,
            &delta,
            &stats
        ),
        report.ms(down_at),
        report.ms(up_at),
        indent(&daemon.log())
    );

    // Loss only around the failover, less than a second's worth, and none after the link is
    // back.
    let gaps = report.gaps();
    let lost = report.lost();
    assert!(
        lost < u64::from(RATE),
        "lost a second's worth or more: {ctx}"
    );
    for g in &gaps {
        let sent = report.sent_at(g.first).unwrap();
        assert!(
            sent + Duration::from_millis(50) >= down_at && sent < up_at,
            "datagrams #{}..=#{} lost outside the failover (sent at {:.1} ms): {ctx}",
            g.first,
            g.last,
            report.ms(sent)
        );
    }
    // The stream resumed within a second: the datagram after the last missing one arrived
    // less than a second after the link went down.
    let resumed = gaps
        .last()
        .map_or(Some(down_at), |g| report.arrived_at(g.last + 1));
    let resumed = resumed.unwrap_or_else(|| panic!("the stream never resumed: {ctx}"));
    let outage = resumed.saturating_duration_since(down_at);
    assert!(
        outage < Duration::from_secs(1),
        "resumed {:.1} ms after the link went down: {ctx}",
        ms(outage)
    );
    // What arrived after the failover came through the other member: it forwarded at least
    // everything sent between a second after the event and the link coming back, and sf3 saw
    // each arriving datagram exactly once.
    let via_y_at_least =
        report.received_where(|t| t >= down_at + Duration::from_secs(1) && t < up_at);
    let via_y = delta.get(End::SfOut(y)).tx_packets;
    assert!(
        via_y >= via_y_at_least && via_y > 0,
        "sf{y} out tx {via_y}, but {via_y_at_least} datagrams arrived after the failover: {ctx}"
    );
    let via_x = delta.get(End::SfOut(x)).tx_packets;
    assert_eq!(
        via_x + via_y,
        report.received(),
        "every datagram that arrived crossed one PG1 member: {ctx}"
    );
    assert_eq!(
        delta.get(End::SfOut(3)).tx_packets,
        report.received(),
        "sf3 out tx vs received: {ctx}"
    );

    // One failover, in stats and metrics; the member down, then back.
    assert_eq!(down_stats.json["failovers"], 1, "{down_stats}: {ctx}");
    assert!(
        failover_seen.is_some(),
        "metrics: no sfc_failovers_total 1 within 2 s: {:?}: {ctx}",
        down_metrics.family("sfc_failovers_total")
    );
    assert_eq!(
        down_metrics.value("sfc_port_pair_up", &[("port_pair", &ppx)]),
        Some(0),
        "{ppx} must be reported down: {:?}: {ctx}",
        down_metrics.family("sfc_port_pair_up")
    );
    assert_eq!(
        down_metrics.value("sfc_port_pair_up", &[("port_pair", &ppy)]),
        Some(1),
        "{ctx}"
    );
    assert!(
        back_after.is_some(),
        "{ppx} not reported up within 3 s of its link coming back: {:?}: {ctx}",
        up_metrics.family("sfc_port_pair_up")
    );
    if let Err(e) = back_in_group {
        panic!("{ppx} not back in its group within 1 s of its link coming back: {e:#}: {ctx}");
    }
    assert_eq!(
        up_metrics.value("sfc_failovers_total", &[]),
        Some(1),
        "coming back is no failover: {ctx}"
    );
    assert_eq!(stats.json["failovers"], 1, "{ctx}");
    assert!(daemon.is_running(), "the daemon died: {ctx}");

    let first_gap = gaps.first().copied();
    println!(
        "link_down_fails_over_within_a_second: flow on {ppx}, sf{x} in down at {:.0} ms; lost {lost} \
         datagrams ({}), stream resumed {:.1} ms after the link went down, longest silence {:.1} ms; \
         via {ppy} {via_y}, via {ppx} {via_x}; {ppx} reported up {:.0} ms and back in its group \
         {:.0} ms after its link came back; {report}",
        report.ms(down_at),
        first_gap.map_or("none".to_owned(), |g| format!("#{}..=#{}", g.first, g.last)),
        ms(outage),
        ms(report.longest_silence()),
        back_after.map_or(f64::NAN, ms),
        ms(back_in_group_after),
    );
}

/// Every (chain, hop, member) counter of `stats` next to its metric; panics on a difference.
fn assert_metrics_equal_stats(e: &Exposition, stats: &Stats, ctx: &str) {
    let mut members = 0;
    for chain in stats.json["chains"].as_array().unwrap() {
        let name = chain["name"].as_str().unwrap();
        let id = chain["chain_id"].to_string();
        for (h, hop) in chain["hops"].as_array().unwrap().iter().enumerate() {
            let group = hop["group"].as_str().unwrap();
            let h = h.to_string();
            for m in hop["members"].as_array().unwrap() {
                members += 1;
                let pp = m["port_pair"].as_str().unwrap();
                let labels = [
                    ("chain", name),
                    ("chain_id", id.as_str()),
                    ("hop", h.as_str()),
                    ("group", group),
                    ("port_pair", pp),
                ];
                for (family, field) in [
                    ("sfc_hop_packets_total", "packets"),
                    ("sfc_hop_bytes_total", "bytes"),
                    ("sfc_hop_reverse_packets_total", "reverse_packets"),
                    ("sfc_hop_reverse_bytes_total", "reverse_bytes"),
                ] {
                    assert_eq!(
                        e.value(family, &labels),
                        m[field].as_u64(),
                        "{family}{labels:?} vs stats {field}: {ctx}"
                    );
                }
            }
        }
    }
    for family in [
        "sfc_hop_packets_total",
        "sfc_hop_bytes_total",
        "sfc_hop_reverse_packets_total",
        "sfc_hop_reverse_bytes_total",
    ] {
        assert_eq!(
            e.family(family).len(),
            members,
            "{family}: one sample per member: {ctx}"
        );
    }

    let drops = stats.drops();
    assert!(!drops.is_empty(), "stats has no drop reasons: {ctx}");
    for (reason, n) in &drops {
        assert_eq!(
            e.value("sfc_drops_total", &[("reason", reason)]),
            Some(*n),
            "sfc_drops_total{{reason={reason:?}}}: {ctx}"
        );
    }
    assert_eq!(e.family("sfc_drops_total").len(), drops.len(), "{ctx}");

    let interfaces = stats.json["interfaces"].as_array().unwrap();
    assert!(!interfaces.is_empty(), "stats has no interfaces: {ctx}");
    for i in interfaces {
        let name = i["name"].as_str().unwrap();
        for kind in ["classified", "unclassified", "from_sf", "malformed", "recomputed"] {
            assert_eq!(
                e.value(
                    "sfc_interface_packets_total",
                    &[("interface", name), ("kind", kind)]
                ),
                i[kind].as_u64(),
                "sfc_interface_packets_total{{interface={name:?},kind={kind:?}}}: {ctx}"
            );
        }
    }
    assert_eq!(
        e.family("sfc_interface_packets_total").len(),
        interfaces.len() * 5,
        "{ctx}"
    );
    for (family, field) in [
        ("sfc_flows_created_total", "created"),
        ("sfc_flows_capped_total", "capped"),
        ("sfc_flows_removed_total", "removed"),
        ("sfc_flows_evicted_total", "evicted"),
    ] {
        assert_eq!(e.value(family, &[]), stats.json["flow_table"][field].as_u64(), "{family}: {ctx}");
    }
    assert_eq!(
        e.value("sfc_failovers_total", &[]),
        stats.json["failovers"].as_u64(),
        "{ctx}"
    );
    assert_eq!(
        e.value("sfc_chains", &[]),
        Some(stats.json["chains"].as_array().unwrap().len() as u64),
        "{ctx}"
    );
}

/// (d) The daemon's /metrics (scraped inside the hub) and `sfc stats --json`, read with no
/// traffic in between, agree on every counter; every family has its HELP and TYPE; the flow
/// table gauges agree with `sfc flows --json`; anything but /metrics is a 404.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn metrics_match_stats() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, _) = chain_files(&fx);
    let log = fx.dir.path().join("daemon.log");
    let daemon = Daemon::start(&sfc, &["-f", &a.to_string_lossy()], &log)
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Chain traffic on both PG1 members, and unclassified traffic (UDP to another port, and
    // its echoes) so that every interface counter kind has something to show.
    let src = fx.topo.hub_dev(End::Source);
    let sports =
        sports_for_members(&sfc, &src, 0, &["pp1", "pp2"]).unwrap_or_else(|e| panic!("{e:#}"));
    let s = stream(&fx, sports);
    sleep(Duration::from_millis(300));
    let report = s.finish().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.received() > 0, "{report}");
    let echo_to = SocketAddr::new(DEST_IP.into(), 5001);
    let _echo = UdpEchoServer::start(&fx.topo.dest(), echo_to).unwrap();
    let echoed = udp_exchange(&fx.topo.source(), echo_to, 10).unwrap();
    assert!(echoed.echoed > 0, "{echoed:?}");

    let (_, settled_stats) = fx.settled(&sfc);
    let first = scrape(&fx.topo);
    let stats = sfc.stats();
    let flows = sfc.run(&["flows", "--json"]);
    let second = scrape(&fx.topo);
    let ctx = format!(
        "stats:\n{stats}\nmetrics:\n{}\ndaemon log:\n{}",
        indent(
            &first
                .samples
                .iter()
                .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        indent(&daemon.log())
    );
    assert_eq!(
        stats, settled_stats,
        "the counters moved after settling: {ctx}"
    );
    assert_eq!(first.samples, second.samples, "two scrapes differ: {ctx}");

    let families = [
        ("sfc_hop_packets_total", "counter"),
        ("sfc_hop_bytes_total", "counter"),
        ("sfc_hop_reverse_packets_total", "counter"),
        ("sfc_hop_reverse_bytes_total", "counter"),
        ("sfc_drops_total", "counter"),
        ("sfc_interface_packets_total", "counter"),
        ("sfc_flow_table_entries", "gauge"),
        ("sfc_flow_table_capacity", "gauge"),
        ("sfc_port_pair_up", "gauge"),
        ("sfc_chains", "gauge"),
        ("sfc_failovers_total", "counter"),
    ];
    for (family, kind) in families {
        assert_eq!(
            first.types.get(family).map(String::as_str),
            Some(kind),
            "# TYPE {family}: {ctx}"
        );
        assert!(
            first.help.get(family).is_some_and(|h| !h.is_empty()),
            "# HELP {family}: {ctx}"
        );
    }
    for s in &first.samples {
        assert!(
            first.types.contains_key(&s.name),
            "sample {} has no TYPE: {ctx}",
            s.name
        );
    }

    assert_metrics_equal_stats(&first, &stats, &ctx);
    // Something was counted everywhere, so the comparison above was not of zeros.
    let by_member = stats.packets_by_port_pair();
    for pp in ["pp1", "pp2", "pp3"] {
        assert!(
            by_member.get(pp).is_some_and(|&n| n > 0),
            "no packets counted into {pp}: {ctx}"
        );
    }
    let counted: u64 = by_member.values().sum();
    for pp in ["pp1", "pp2", "pp3"] {
        assert_eq!(
            first.value("sfc_port_pair_up", &[("port_pair", pp)]),
            Some(1),
            "{ctx}"
        );
    }
    let flows: serde_json::Value = serde_json::from_str(&flows).unwrap();
    assert_eq!(
        first.value("sfc_flow_table_entries", &[]),
        flows["flows"].as_array().map(|f| f.len() as u64),
        "flow table entries vs sfc flows --json: {flows}: {ctx}"
    );
    assert_eq!(
        first.value("sfc_flow_table_capacity", &[]),
        flows["capacity"].as_u64(),
        "flow table capacity vs sfc flows --json: {ctx}"
    );

    let nope = sfc_tests::http::http_get_in(&fx.topo.hub(), METRICS, "/nope")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(nope.status, 404, "{}\n{}", nope.head, nope.body);
    println!(
        "metrics_match_stats: {} samples agree with sfc stats --json ({} members, {} interfaces, \
         {counted} member packets); /nope -> {}",
        first.samples.len(),
        first.family("sfc_hop_packets_total").len(),
        stats.json["interfaces"].as_array().map_or(0, Vec::len),
        nope.status
    );
}

/// Everything `sfc apply` could change, read back: the saved state, the pin directory listing
/// and every configuration map, decoded.
fn installed(sfc: &Sfc<'_>) -> String {
    let mut out = std::fs::read_to_string(sfc.state_dir().join("state.json"))
        .unwrap_or_else(|e| format!("(state.json: {e})"));
    let mut pins: Vec<String> = std::fs::read_dir(sfc.pin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pins.sort();
    let _ = writeln!(out, "\npins: {pins:?}");
    for map in [
        "SFC_META",
        "SFC_IFACES_V3",
        "SFC_CLS",
        "SFC_CLS_RES",
        "SFC_CHAINS",
        "SFC_GROUPS",
        "SFC_LB",
        "SFC_PORT_PAIRS2",
    ] {
        let _ = writeln!(out, "{map}: {}", sfc.run(&["map", "dump", map, "--json"]));
    }
    out
}

fn assert_private_dir(dir: &Path) {
    let meta = std::fs::metadata(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(meta.is_dir(), "{} is not a directory", dir.display());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o700,
        "{} mode {:o}",
        dir.display(),
        meta.permissions().mode()
    );
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{} owner", dir.display());
}

/// (e) While another process holds the datapath's lock, `sfc apply` and `sfc run` are refused
/// with "another sfc is changing this datapath" and change nothing; once it is released the
/// same apply goes through. The pin and state directories are mode 0700, owned by root.
#[test]
fn second_loader_is_refused() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, b) = chain_files(&fx);
    sfc.apply(&a);
    assert_private_dir(sfc.pin_dir());
    assert_private_dir(&sfc.state_dir());

    let lock_path = sfc.state_dir().join("lock");
    let lock = OpenOptions::new().write(true).open(&lock_path).unwrap();
    // SAFETY: flock on an fd we own; released when `lock` is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        lock_path.display(),
        std::io::Error::last_os_error()
    );

    let before = installed(&sfc);
    let refused = sfc
        .try_run(&["apply", "-f", &b.to_string_lossy()])
        .expect_err("sfc apply must be refused while the lock is held");
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("another sfc is changing this datapath"),
        "{refused}"
    );
    let log = fx.dir.path().join("daemon.log");
    let mut daemon = Daemon::spawn(&sfc, &["-f", &b.to_string_lossy()], &log).unwrap();
    let status = daemon.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "sfc run must fail while the lock is held ({status:?}):\n{}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("another sfc is changing this datapath"),
        "{}",
        daemon.log()
    );
    let after = installed(&sfc);
    assert!(
        before == after,
        "a refused loader changed the datapath:\n{}",
        sfc_tests::chain::line_diff(&before, &after, 2)
    );

    drop(lock);
    let out = sfc.apply(&b);
    assert!(generation(&out).is_some(), "{out}");
    println!(
        "second_loader_is_refused: refused with: {}",
        refused.lines().last().unwrap_or("")
    );
}
