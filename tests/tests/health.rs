//! Health through the function, not just its link: a service function that stops forwarding
//! with its link up (a hung VM) is found by `sfc run`'s probes, its flows move to the other
//! member of its group, and it serves again once it forwards probes again. A link that goes
//! down is noticed from the kernel's link notifications, with link polling made slow.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::time::Duration;

use sfc_tests::{
    Sfc, TopologyConfig,
    failover::{self, Fault},
    process::Daemon,
    scenario::Fixture,
};

fn failover_under_sfc_run(fault: Fault, probed: bool, metrics: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let file = fx.write("chains.yaml", &failover::chain(topo, probed));
    let log = fx.dir.path().join("daemon.log");
    // Link polling every 10 s: what happens below is the probes' or the notifications' doing.
    let args = [
        "-f",
        &file.to_string_lossy(),
        "--health-interval",
        "10000",
        "--metrics",
        metrics,
    ];
    let mut daemon = Daemon::start(&sfc, &args, &log).unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !daemon.log().contains("not forwarding"),
        "healthy members reported down:\n{}",
        daemon.log()
    );

    let addr = metrics.parse().expect("a socket address");
    let r = failover::run(
        topo,
        &sfc,
        &mut daemon,
        addr,
        fault,
        Duration::from_millis(1500),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", daemon.log()));
    let (x, y, report) = (r.failed, r.other, &r.report);
    let ctx = format!(
        "{report}\nsf{x} {fault:?} at {:.0} ms, cleared at {:.0} ms\ndaemon log:\n{}",
        report.ms(r.fault_at),
        report.ms(r.cleared_at),
        daemon.log()
    );
    // Loss only between the fault and its clearing; the stream resumed through sf{y} within a
    // second; probes were consumed at the egress, never counted as traffic or drops.
    for g in report.gaps() {
        let sent = report.sent_at(g.first).unwrap();
        assert!(
            sent + Duration::from_millis(50) >= r.fault_at && sent < r.cleared_at,
            "datagrams #{}..=#{} lost outside the fault: {ctx}",
            g.first,
            g.last
        );
    }
    assert!(
        r.outage < Duration::from_secs(1),
        "flows moved {:?} after the fault: {ctx}",
        r.outage
    );
    assert!(
        r.detected < Duration::from_secs(1),
        "taken out {:?} after the fault: {ctx}",
        r.detected
    );
    assert!(r.via_other > 0, "nothing went through pp{y}: {ctx}");
    assert_eq!(
        r.metric_while_out,
        Some(0),
        "sfc_port_pair_up of pp{x} while it was out: {ctx}"
    );
    let stats = sfc.stats();
    assert!(stats.drops().values().all(|v| *v == 0), "drops: {stats}");
    assert!(daemon.is_running(), "{ctx}");
    println!(
        "{fault:?} of sf{x}: taken out of its group {:.0} ms after the fault; stream resumed {:.1} ms after it \
         (longest silence {:.1} ms, {} datagrams lost); back in its group {:.0} ms after the fault was cleared",
        r.detected.as_secs_f64() * 1e3,
        r.outage.as_secs_f64() * 1e3,
        report.longest_silence().as_secs_f64() * 1e3,
        report.lost(),
        r.back_after.as_secs_f64() * 1e3,
    );
}

#[test]
fn a_hung_function_is_found_by_probes_and_its_flows_move() {
    failover_under_sfc_run(Fault::Hang, true, "127.0.0.1:9472");
}

#[test]
fn a_link_down_is_heard_not_polled() {
    failover_under_sfc_run(Fault::LinkDown, false, "127.0.0.1:9473");
}
