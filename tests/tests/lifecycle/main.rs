//! The datapath's lifecycle under traffic (issue 5): 50 updates in a row lose nothing and never
//! send a packet through half a chain; the loader (daemon or `sfc apply`) can die at any moment
//! while forwarding goes on from the pins; a member whose link goes down fails over within a
//! second; the daemon's metrics say exactly what `sfc stats --json` says; a second loader is
//! refused while one holds the lock, and the pin and state directories are private.
//!
//! Every test streams sequence-numbered UDP datagrams source -> dest:5000 at a steady rate
//! ([`SeqStream`]), so a loss is a named sequence number, not a guess. Chain files
//! ([`failover::chain_over`]): PP1..PP3 for sf1..sf3, PG1 = {PP1, PP2}, PG2 = {PP3}; chain A =
//! pc1 [PG1, PG2], chain B = pc1 [PG2].
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`. `--nocapture` shows the measured figures (timings, loss, failover gap).

mod failover;
mod loader;
mod metrics;
mod service;
mod updates;

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use sfc_tests::{
    Counters, Sfc, Stats,
    failover::chain_over,
    prometheus::Exposition,
    scenario::Fixture,
    sfc::{diagnostics, sports_for_members},
    stream::{SeqStream, StreamReport, StreamSpec, kernel_drops},
    topology::{End, Topology},
};

/// Datagrams per second of every stream.
const RATE: u32 = 1000;
/// No stream runs longer than this, whatever happens.
const STREAM_LIMIT: Duration = Duration::from_secs(30);
/// The daemon's metrics socket: 127.0.0.1 of the hub namespace (the default address).
const METRICS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9469);

/// Writes chain A ([PG1, PG2]) and chain B ([PG2]).
fn chain_files(fx: &Fixture) -> (PathBuf, PathBuf) {
    (
        fx.write("a.yaml", &chain_over(&fx.topo, &["pg1", "pg2"])),
        fx.write("b.yaml", &chain_over(&fx.topo, &["pg2"])),
    )
}

/// Source ports of two 5-tuples, one on each PG1 member (chain A must be live).
fn sports_on_both_pg1_members(fx: &Fixture, sfc: &Sfc<'_>) -> Vec<u16> {
    let src = fx.topo.hub_dev(End::Source);
    sports_for_members(sfc, &src, 0, &["pp1", "pp2"]).unwrap_or_else(|e| panic!("{e:#}"))
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

/// Scrapes the daemon's /metrics from inside the hub namespace.
fn scrape(topo: &Topology) -> Exposition {
    let reply = sfc_tests::http::http_get_in(&topo.hub(), METRICS, "/metrics")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.body);
    Exposition::parse(&reply.body).unwrap_or_else(|e| panic!("{e:#}\n{}", reply.body))
}
