//! `sfc trace`: the live path of matching packets, from the datapath's own hop decisions (a ring
//! buffer of events, filtered and budgeted in the kernel). One line per packet (`source -> pp1
//! (pg1) -> pp3 (pg2) -> dest, 41 us`), JSON lines of events (`--json`), or one line per flow
//! and a flow table at the end (`--follow`). Ctrl-C ends it; tracing is switched off on the way
//! out.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use sfc_common::{
    maps::{FAMILY_V4, FAMILY_V6},
    trace::{TF_CHAIN, TF_DPORT, TF_DST, TF_PROTO, TF_SPORT, TF_SRC, TraceConf},
};
use tokio::io::unix::AsyncFd;

use crate::{
    datapath::{Location, trace},
    view::{
        inspect::{self, Namer},
        trace::{Assembler, PacketPath, micros, name},
    },
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only packets of this port chain (by name).
    #[arg(long, value_name = "NAME")]
    chain: Option<String>,
    /// Only packets from this address (IPv4 or IPv6).
    #[arg(long, value_name = "ADDR")]
    pub(super) src: Option<IpAddr>,
    /// Only packets to this address.
    #[arg(long, value_name = "ADDR")]
    pub(super) dst: Option<IpAddr>,
    /// Only packets of this protocol (tcp, udp, icmp, icmpv6, sctp or a number).
    #[arg(long, value_name = "PROTO")]
    pub(super) proto: Option<String>,
    /// Only packets from this transport port.
    #[arg(long, value_name = "N")]
    pub(super) sport: Option<u16>,
    /// Only packets to this transport port.
    #[arg(long, value_name = "N")]
    pub(super) dport: Option<u16>,
    /// Instead of watching traffic: run one synthetic packet (--proto, --src, --dst, --sport,
    /// --dport) through the live datapath as if it arrived on --in, and report each hop it took
    /// and where it ended. It runs on a private copy (`BPF_PROG_TEST_RUN`): nothing is sent on any
    /// wire and the destination never receives it.
    #[arg(long, requires = "in_iface", conflicts_with_all = ["chain", "follow", "count", "duration", "sample", "budget"])]
    probe: bool,
    /// With --probe: the interface the probe arrives on (a logical source port, or a member's
    /// egress to probe from the middle of a chain).
    #[arg(long = "in", value_name = "IFACE", requires = "probe")]
    pub(super) in_iface: Option<String>,
    /// Trace one matching packet in N (chosen by bytes that routing does not change, so all
    /// the hops of a traced packet are traced).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    sample: u32,
    /// Events each CPU may emit per second; past it they are counted as lost (the datapath
    /// never pays more than this for tracing).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    budget: u32,
    /// Stop after K packets (with --json: K events).
    #[arg(long, value_name = "K")]
    count: Option<u64>,
    /// Stop after S seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Print each event as a JSON line (with --probe: the report as one JSON object).
    #[arg(long, conflicts_with = "follow")]
    pub(super) json: bool,
    /// Group by flow: a line when a flow appears or its path changes, and a flow table at the end.
    #[arg(long)]
    follow: bool,
}

/// The kernel filter for `a`.
fn filter(loc: &Location, a: &Args) -> anyhow::Result<TraceConf> {
    let mut c = TraceConf { enabled: 1, sample_every: a.sample, budget_per_sec: a.budget, ..TraceConf::default() };
    if let Some(name) = &a.chain {
        let state = inspect::load_state(loc)?;
        let chain = state.model.port_chains.iter().find(|c| &c.name == name);
        let Some(chain) = chain else {
            let names: Vec<&str> = state.model.port_chains.iter().map(|c| c.name.as_str()).collect();
            return Err(super::exit::invalid!("no port chain '{name}' is installed (chains: {})", names.join(", ")));
        };
        c.filters |= TF_CHAIN;
        c.chain_id = chain.chain_id;
    }
    let mut family = None;
    for (addr, bit, slot) in [(a.src, TF_SRC, &mut c.src), (a.dst, TF_DST, &mut c.dst)] {
        let Some(addr) = addr else { continue };
        let f = match addr {
            IpAddr::V4(v4) => {
                slot[..4].copy_from_slice(&v4.octets());
                FAMILY_V4
            }
            IpAddr::V6(v6) => {
                *slot = v6.octets();
                FAMILY_V6
            }
        };
        if family.is_some_and(|x| x != f) {
            return Err(super::exit::invalid!("--src and --dst must both be IPv4 or both IPv6"));
        }
        family = Some(f);
        c.filters |= bit;
    }
    c.family = family.unwrap_or(0);
    if let Some(p) = &a.proto {
        c.proto = crate::model::parse_protocol(p).map_err(|e| super::exit::invalid!("--proto: {e}"))?;
        c.filters |= TF_PROTO;
    }
    if let Some(p) = a.sport {
        c.sport = p.to_be_bytes();
        c.filters |= TF_SPORT;
    }
    if let Some(p) = a.dport {
        c.dport = p.to_be_bytes();
        c.filters |= TF_DPORT;
    }
    Ok(c)
}

/// Switches tracing off (keeping the SF latency sampling) when dropped, also on an error.
struct Tracing<'a> {
    loc: &'a Location,
}

impl Drop for Tracing<'_> {
    fn drop(&mut self) {
        if let Ok(c) = trace::conf(self.loc) {
            let _ = trace::set_conf(self.loc, TraceConf { latency_every: c.latency_every, ..TraceConf::default() });
        }
    }
}

/// A packet path older than this without an end went into a member and did not come back.
const LOST_AFTER: Duration = Duration::from_secs(1);

/// What `--follow` keeps per flow.
#[derive(Default)]
struct FlowRow {
    packets: u64,
    path: String,
    took_ns: u64,
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    if a.probe {
        return super::trace_probe::run(loc, a);
    }
    let state = inspect::load_state(loc)?;
    let _lock = trace::TraceLock::acquire(loc)?;
    let conf = filter(loc, a)?;
    let ring = trace::ring(loc).context("the trace ring buffer (a datapath installed by an older sfc has none: `sfc apply` again)")?;
    let before = trace::stats(loc)?;
    let latency_every = trace::conf(loc)?.latency_every;
    trace::set_conf(loc, TraceConf { latency_every, ..conf })?;
    let _off = Tracing { loc };
    let namer = Namer { state: &state };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let mut out = Output { a, namer: &namer, assembler: Assembler::default(), shown: 0, flows: BTreeMap::new() };
    rt.block_on(async {
        // SAFETY: the ring buffer owns its map's fd, which stays open and the same for as long as
        // the `AsyncFd` owns the ring buffer.
        let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("polling the trace ring buffer: {e}"))?;
        let deadline = a.duration.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        eprintln!("tracing{}; Ctrl-C to stop", describe(a));
        loop {
            if out.done() || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            tokio::select! {
                r = fd.readable_mut() => {
                    let mut guard = r.context("waiting for trace events")?;
                    let ring = guard.get_inner_mut();
                    while let Some(item) = ring.next() {
                        if let Some(raw) = trace::decode(&item) {
                            out.event(&raw);
                        }
                        if out.done() {
                            break;
                        }
                    }
                    guard.clear_ready();
                }
                _ = tick.tick() => {
                    let now = monotonic_ns();
                    for p in out.assembler.expire(now.saturating_sub(u64::try_from(LOST_AFTER.as_nanos()).unwrap_or(u64::MAX))) {
                        out.packet(&p);
                    }
                }
                _ = &mut ctrl_c => break,
            }
        }
        anyhow::Ok(())
    })?;
    for p in out.assembler.drain() {
        out.packet(&p);
    }
    out.finish();
    let after = trace::stats(loc)?;
    let lost = (after.lost_budget - before.lost_budget, after.lost_ring_full - before.lost_ring_full);
    eprintln!(
        "{} events; lost: {} over the budget of {}/s per CPU, {} to a full ring buffer",
        after.emitted - before.emitted,
        lost.0,
        a.budget,
        lost.1
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(a: &Args) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &a.chain {
        parts.push(format!("chain {c}"));
    }
    if let Some(p) = &a.proto {
        parts.push(p.clone());
    }
    if let Some(s) = a.src {
        parts.push(format!("from {s}"));
    }
    if let Some(d) = a.dst {
        parts.push(format!("to {d}"));
    }
    if let Some(p) = a.sport {
        parts.push(format!("sport {p}"));
    }
    if let Some(p) = a.dport {
        parts.push(format!("dport {p}"));
    }
    if a.sample > 1 {
        parts.push(format!("1 packet in {}", a.sample));
    }
    if parts.is_empty() { " every chain packet".to_owned() } else { format!(" {}", parts.join(", ")) }
}

/// `CLOCK_MONOTONIC`, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

struct Output<'a> {
    a: &'a Args,
    namer: &'a Namer<'a>,
    assembler: Assembler,
    /// Packets (or, with --json, events) shown.
    shown: u64,
    flows: BTreeMap<String, FlowRow>,
}

impl Output<'_> {
    fn done(&self) -> bool {
        self.a.count.is_some_and(|k| self.shown >= k)
    }

    fn event(&mut self, raw: &sfc_common::trace::TraceEvent) {
        let e = name(self.namer, raw);
        if self.a.json {
            if let Ok(line) = serde_json::to_string(&e) {
                println!("{line}");
            }
            self.shown += 1;
            return;
        }
        if let Some(p) = self.assembler.push(raw, e) {
            self.packet(&p);
        }
    }

    fn packet(&mut self, p: &PacketPath) {
        if self.a.json || self.done() {
            return;
        }
        self.shown += 1;
        if !self.a.follow {
            println!("{p}");
            return;
        }
        let flow = p.flow.to_string();
        let path = p.steps.join(" -> ");
        let row = self.flows.entry(flow.clone()).or_default();
        if row.path != path {
            let what = if row.packets == 0 { "new flow" } else { "path changed" };
            println!("{what}: {flow}  {path}");
            row.path = path;
        }
        row.packets += 1;
        row.took_ns += p.took_ns;
    }

    fn finish(&self) {
        if !self.a.follow || self.flows.is_empty() {
            return;
        }
        println!();
        let rows: Vec<Vec<String>> = self
            .flows
            .iter()
            .map(|(flow, r)| vec![flow.clone(), r.path.clone(), r.packets.to_string(), micros(r.took_ns / r.packets.max(1))])
            .collect();
        super::table::print_table(&["flow", "path", "packets", "mean time"], &rows);
    }
}
