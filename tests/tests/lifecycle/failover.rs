//! (c) A member whose link goes down fails over within a second, and comes back.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, TopologyConfig,
    failover::pg1_carrier,
    netns::ip_in,
    process::{Daemon, indent},
    prometheus::Exposition,
    scenario::Fixture,
    topology::{End, Topology},
};

use super::{RATE, chain_files, context, ms, scrape, settled_since, stream};

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
    let x = pg1_carrier(&sfc.stats()).unwrap_or_else(|e| panic!("{e:#}"));
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
