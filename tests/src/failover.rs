//! Failover of a service function that stops serving, measured on a sequence-numbered stream:
//! the chain (PG1 = {PP1, PP2} with a health check, PG2 = {PP3}; also what the lifecycle tests
//! stream through), which PG1 member carries a stream, the faults (a hung function:
//! forwarding off with its link up; a link down), and one measured run under `sfc run`. Shared
//! by the health tests and `cargo xtask bench`.

use std::{
    net::SocketAddr,
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    ChainFile, Sfc, Stats,
    chain::{FlowClassifier, PortChain, PortPairGroup},
    http::http_get_in,
    netns,
    process::Daemon,
    prometheus::Exposition,
    stream::{STREAM_PORT, SeqStream, StreamReport, StreamSpec},
    topology::{DEST_IP, End, Topology},
};

/// Datagrams per second of the measured stream.
pub const RATE: u32 = 1000;

/// PP1..PP3, PG1 = {PP1, PP2}, PG2 = {PP3}, classifier `fc` (UDP to dest:[`STREAM_PORT`] from
/// source), and chain pc1 (id 1) over `groups`.
pub fn chain_over(topo: &Topology, groups: &[&str]) -> ChainFile {
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

/// [`chain_over`] PG1 then PG2, with PG1 probed with the default health check (every 50 ms; 3
/// misses: down, 3 answers: up) when `probed`.
pub fn chain(topo: &Topology, probed: bool) -> ChainFile {
    let mut file = chain_over(topo, &["pg1", "pg2"]);
    if probed && let Some(pg1) = file.group_mut("pg1") {
        pg1.health_check = Some(format!("{{destination: {DEST_IP}}}"));
    }
    file
}

/// Which PG1 member (1 or 2) carried the one 5-tuple of a stream at hop 0 of pc1; an error when
/// not exactly one did.
pub fn pg1_carrier(stats: &Stats) -> Result<u8> {
    let carrying: Vec<u8> = [1u8, 2]
        .into_iter()
        .filter(|n| stats.packets("pc1", 0, &format!("pp{n}")).unwrap_or(0) > 0)
        .collect();
    let [member] = carrying[..] else {
        bail!("one 5-tuple must ride exactly one PG1 member, got sf{carrying:?}:\n{stats}")
    };
    Ok(member)
}

/// What makes a member stop serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The function stops forwarding, its link stays up (a hung VM): only probes can tell.
    Hang,
    /// The function's ingress link goes down (inside its namespace; the hub's end loses its
    /// carrier).
    LinkDown,
    /// The function is a VM on taps that is deleted (both taps disappear) and, when cleared,
    /// started again (new taps under the same names, new ifindexes). Its ends must be taps
    /// (`TopologyConfig::taps`).
    VmDeleted,
}

/// One failover, measured.
#[derive(Debug)]
pub struct Failover {
    /// The member that carried the stream (1 or 2), and the other one.
    pub failed: u8,
    pub other: u8,
    pub fault_at: Instant,
    /// From the fault to the daemon's log line taking the member out (`detected`), and to the
    /// member being back in its group after the fault was cleared (`back_after`, from the clear).
    pub detected: Duration,
    pub cleared_at: Instant,
    pub back_after: Duration,
    /// From the fault to the first datagram arriving after the last one lost.
    pub outage: Duration,
    pub report: StreamReport,
    /// Packets sfc sent into the other member by the end.
    pub via_other: u64,
    /// `sfc_port_pair_up` of the failed member while it was out of its group.
    pub metric_while_out: Option<u64>,
}

fn fault(topo: &Topology, n: u8, f: Fault, on: bool) -> Result<()> {
    match f {
        Fault::Hang => netns::sysctls(
            &topo.sf(n),
            &[("net.ipv4.ip_forward", if on { "0" } else { "1" })],
        ),
        Fault::LinkDown => netns::ip_in(
            &topo.sf(n),
            &[
                "link",
                "set",
                End::SfIn(n).dev(),
                if on { "down" } else { "up" },
            ],
        )
        .map(|_| ()),
        Fault::VmDeleted if on => topo.unplug_tap(End::SfIn(n)).and_then(|()| topo.unplug_tap(End::SfOut(n))),
        Fault::VmDeleted => topo.replug_taps(&[End::SfIn(n), End::SfOut(n)]),
    }
}

/// Under a running `sfc run` (`daemon`, serving [`chain`]): starts a stream of one 5-tuple,
/// finds the member carrying it, applies `f` to it, waits for the failover, clears the fault
/// after `hold`, waits until the member is back, and returns what the stream saw.
pub fn run(
    topo: &Topology,
    sfc: &Sfc<'_>,
    daemon: &mut Daemon,
    metrics: SocketAddr,
    f: Fault,
    hold: Duration,
) -> Result<Failover> {
    let spec = StreamSpec {
        rate: RATE,
        sports: vec![41_000],
        limit: Duration::from_secs(30),
    };
    let stream = SeqStream::start(&topo.source(), &topo.dest(), spec)?;
    sleep(Duration::from_millis(500));
    let failed = pg1_carrier(&sfc.try_stats()?)?;
    let other = 3 - failed;
    let fault_at = Instant::now();
    fault(topo, failed, f, true)?;
    daemon.wait_for_log(
        &format!("down, failing over: pp{failed}"),
        Duration::from_secs(3),
    )?;
    let detected = fault_at.elapsed();
    let reply = http_get_in(&topo.hub(), metrics, "/metrics")?;
    let metric_while_out = Exposition::parse(&reply.body)?
        .value("sfc_port_pair_up", &[("port_pair", &format!("pp{failed}"))]);
    sleep(hold);
    let cleared_at = Instant::now();
    fault(topo, failed, f, false)?;
    daemon.wait_for_log(&format!("back up: pp{failed}"), Duration::from_secs(5))?;
    let back_after = cleared_at.elapsed();
    sleep(Duration::from_millis(300));
    let report = stream.finish()?;
    let gaps = report.gaps();
    let resumed = match gaps.last() {
        None => fault_at,
        Some(g) => report
            .arrived_at(g.last + 1)
            .with_context(|| format!("the stream never resumed: {report}"))?,
    };
    let via_other = sfc
        .try_stats()?
        .packets("pc1", 0, &format!("pp{other}"))
        .unwrap_or(0);
    Ok(Failover {
        failed,
        other,
        fault_at,
        detected,
        cleared_at,
        back_after,
        outage: resumed.saturating_duration_since(fault_at),
        report,
        via_other,
        metric_while_out,
    })
}
