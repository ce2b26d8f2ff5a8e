//! Robustness figures: how fast flows leave a member that stops serving (a hung function found
//! by health probes; a link that goes down, heard from link notifications), and what a flood of
//! new 5-tuples does to an established flow when the new-flow rate cap holds it back. Each
//! failover runs `runs` times in a fresh topology under `sfc run`; medians and extremes are
//! reported. Uses the test suite's own helpers (`sfc_tests::failover`, `send::flood`).

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use sfc_tests::{
    Sfc, TopologyConfig,
    failover::{self, Fault},
    interrupt,
    process::Daemon,
    stream::{STREAM_PORT, SeqStream, StreamSpec},
    scenario::Fixture,
    send,
    topology::{DEST_IP, End},
};

/// New-flow rate cap (per CPU per second) of the flood measurement.
const FLOOD_CAP: u32 = 10_000;
const FLOOD_SECS: u64 = 3;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, minimum and maximum of `v` (milliseconds), as a table cell.
fn spread(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    match v {
        [] => "-".to_owned(),
        [x] => format!("{x:.0}"),
        _ => format!("{:.0} ({:.0}-{:.0})", v[v.len() / 2], v[0], v[v.len() - 1]),
    }
}

/// One failover measurement in a fresh topology.
fn failover_once(sfc_bin: &Path, f: Fault, i: usize) -> Result<failover::Failover> {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::with_bin(sfc_bin, &fx.topo);
    let file = fx.write("chains.yaml", &failover::chain(&fx.topo, f == Fault::Hang));
    let log = fx.dir.path().join("daemon.log");
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], u16::try_from(9480 + i).unwrap_or(9480)));
    let metrics_arg = metrics.to_string();
    // Link polling slow: the probes and the link notifications do the work.
    let args = ["-f", &file.to_string_lossy(), "--health-interval", "10000", "--metrics", &metrics_arg];
    let mut daemon = Daemon::start(&sfc, &args, &log)?;
    std::thread::sleep(Duration::from_millis(500));
    failover::run(&fx.topo, &sfc, &mut daemon, metrics, f, Duration::from_secs(1)).with_context(|| daemon.log())
}

struct Flood {
    offered: f64,
    created: f64,
    capped: f64,
    steady_lost: u64,
    steady_kept_entry: bool,
    /// Datagrams into sf1, out of sf1, into sf2, out of sf2, into dest.
    counts: [u64; 5],
}

/// A steady flow, then a flood of new 5-tuples for `FLOOD_SECS` under a cap of `FLOOD_CAP`.
fn flood(sfc_bin: &Path) -> Result<Flood> {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let topo = &fx.topo;
    let sfc = Sfc::with_bin(sfc_bin, topo);
    let file = fx.write("chains.yaml", &topo.one_group_per_sf("udp", STREAM_PORT));
    sfc.try_run(&["apply", "-f", &file.to_string_lossy(), "--new-flow-rate", &FLOOD_CAP.to_string()])?;
    // Interface counters over the whole run (steady flow included), read while nothing moves.
    let counters_before = topo.counters()?;
    let spec = StreamSpec { rate: 1000, sports: vec![42_000], limit: Duration::from_secs(FLOOD_SECS + 5) };
    let stream = SeqStream::start(&topo.source(), &topo.dest(), spec)?;
    std::thread::sleep(Duration::from_millis(300));
    let before = sfc.try_stats()?;
    let started = Instant::now();
    let to = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    let out = send::flood(&topo.source(), to, usize::MAX, 1, Duration::from_secs(FLOOD_SECS))?;
    let took = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let report = stream.finish()?;
    let after = sfc.try_stats()?;
    // Read once nothing moves any more: namespaces are read one after another.
    let settled = sfc_tests::counters::settled(Duration::from_secs(3), Duration::from_millis(150), || topo.counters())?;
    let d = settled.since(&counters_before);
    let table = |s: &sfc_tests::Stats, k: &str| s.json["flow_table"][k].as_u64().unwrap_or(0);
    #[expect(clippy::cast_precision_loss, reason = "rates")]
    let per_s = |k: &str| (table(&after, k) - table(&before, k)) as f64 / took;
    let flows = sfc.try_flows()?;
    #[expect(clippy::cast_precision_loss, reason = "rates")]
    Ok(Flood {
        offered: out.flows as f64 / took,
        created: per_s("created"),
        capped: per_s("capped"),
        steady_lost: report.lost(),
        steady_kept_entry: flows.iter().any(|f| f.sport == 42_000),
        counts: [
            d.get(End::SfIn(1)).rx_packets,
            d.get(End::SfOut(1)).tx_packets,
            d.get(End::SfIn(2)).rx_packets,
            d.get(End::SfOut(2)).tx_packets,
            d.get(End::Dest).rx_packets,
        ],
    })
}

/// Runs every measurement; returns the Markdown section.
pub fn run(sfc_bin: &Path, runs: usize) -> Result<String> {
    let mut md = String::from("### Robustness: failover and floods\n\n");
    let _ = writeln!(
        md,
        "Each failover: a fresh topology, `sfc run` serving PG1 = {{PP1, PP2}} -> PG2 = {{PP3}}, one UDP \
         5-tuple at {} datagrams/s through PG1, then the member carrying it fails; {runs} runs, \
         median (min-max) in ms. *Taken out*: from the fault to the daemon's re-apply that \
         removes the member; *gap*: from the fault to the first datagram after the last one \
         lost; *back*: from the fault's end to the member serving again.\n",
        failover::RATE
    );
    let _ = writeln!(md, "| fault | detected by | taken out | gap | datagrams lost | back |\n|---|---|---|---|---|---|");
    for (f, what, by) in [
        (Fault::Hang, "function hung (forwarding off, link up)", "probes (default: every 50 ms, 3 misses)"),
        (Fault::LinkDown, "its ingress link down", "link notification (polling every 10 s)"),
    ] {
        let (mut out, mut gap, mut lost, mut back) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            interrupt::check()?;
            let r = failover_once(sfc_bin, f, i)?;
            println!(
                "{f:?} run {}: taken out {:.0} ms, gap {:.1} ms, {} lost, back {:.0} ms",
                i + 1,
                ms(r.detected),
                ms(r.outage),
                r.report.lost(),
                ms(r.back_after)
            );
            out.push(ms(r.detected));
            gap.push(ms(r.outage));
            #[expect(clippy::cast_precision_loss, reason = "counts")]
            lost.push(r.report.lost() as f64);
            back.push(ms(r.back_after));
        }
        let _ = writeln!(md, "| {what} | {by} | {} | {} | {} | {} |", spread(&mut out), spread(&mut gap), spread(&mut lost), spread(&mut back));
    }
    interrupt::check()?;
    let f = flood(sfc_bin)?;
    println!(
        "flood: {:.0} new flows/s offered, {:.0}/s got an entry, {:.0}/s capped; steady flow lost {}, kept its entry: {}",
        f.offered, f.created, f.capped, f.steady_lost, f.steady_kept_entry
    );
    let [in1, out1, in2, out2, dest] = f.counts;
    // Packets may be lost inside a function (its backlog overflows under the flood); none may
    // reach sf2 or dest except out of the function before it.
    let bypass = if in2 == out1 && dest == out2 { "none" } else { "SOME (counts differ)" };
    let _ = writeln!(
        md,
        "\nFlood: a steady flow (1,000 datagrams/s), then new 5-tuples (one datagram each) as fast \
         as one sender thread makes them for {FLOOD_SECS} s, with `--new-flow-rate {FLOOD_CAP}` \
         (per CPU): {:.0} new flows/s sent; of those that reached the datapath {:.0}/s got an \
         entry and {:.0}/s were steered without one (capped; the rest the veth backlog dropped \
         before any program saw them). The steady flow lost {} datagrams and {} its entry. \
         Interface counters over the whole run: into sf1 {in1}, out of sf1 {out1}, into sf2 {in2}, \
         out of sf2 {out2}, into dest {dest}; packets that skipped an SF: {bypass}.\n",
        f.offered,
        f.created,
        f.capped,
        f.steady_lost,
        if f.steady_kept_entry { "kept" } else { "lost" },
    );
    Ok(md)
}
