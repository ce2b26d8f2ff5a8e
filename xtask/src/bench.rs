//! `cargo xtask bench`: how fast sfc steers, and what that costs against the alternatives.
//!
//! - Micro (`micro`): the tc program's nanoseconds per packet under `BPF_PROG_TEST_RUN`, for 1 to
//!   100,000 classifiers, flow-table hits and misses.
//! - Macro: six paths from a source namespace to a dest namespace through a hub namespace
//!   (`paths`): (a) direct, plain routing; the same three service functions chained by (b) Linux
//!   policy routing, (c) Open vSwitch's userspace datapath, (d) sfc tc mode, (e) sfc XDP mode,
//!   (d1, d2) sfc tc mode while `sfc trace` runs with a filter nothing matches and on every
//!   packet (what tracing costs; no TCP for these two), (f) the smallest possible tc steering
//!   (`minimal`: a constant `bpf_redirect_peer` and MAC per port, no maps: the limit of tc
//!   steering here), and (t) sfc tc mode with the service functions behind taps (a userspace
//!   pump per NIC).
//! - Multi-host (`hosts`): a hop to another host next to a local hop, and push to applied.
//!   For each: 64-byte UDP packet rate, single-stream TCP throughput and request/response
//!   latency (`traffic`). All paths are set up first; then every measurement is repeated
//!   `--reps` times, interleaved across the paths (the order rotating each repetition), and the
//!   medians are reported with ratios against (a).
//!
//! Everything runs in namespaces this creates (`sfcb-<id>-<path>-<role>`), with addresses only
//! inside them; the guards remove namespaces, sfc pins, OVS daemons and scratch files also on
//! failure and Ctrl-C. The results go to the terminal and into BENCHMARKS.md (`report`,
//! `document`).

mod document;
mod hosts;
mod micro;
mod minimal;
mod options;
mod ovs;
mod paths;
mod perf;
mod pingpong;
mod progs;
mod report;
mod robust;
mod topo;
mod traffic;
mod udp;
mod vm;

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, bail};
use sfc_tests::interrupt;

use self::{
    paths::{Env, Outcome, Ready, Spec, WorkDir},
    report::{Row, Samples},
    topo::{HOPS, Port},
};
use crate::{build_cmd, cmd, dirs};

pub use options::Options;

pub fn run(opts: &Options) -> Result<()> {
    let opts = &opts.effective();
    if opts.reps == 0 || opts.secs == 0 {
        bail!("--reps and --secs must be at least 1");
    }
    interrupt::install()?;
    let started = Instant::now();
    build_cmd::timed("setup", || crate::setup::run_with(&opts.tools()))?;
    if opts.profile && !opts.no_macro {
        perf::check()?;
    }
    let installed = started.elapsed();
    let sfc = build_cmd::timed("build (release)", || if opts.no_micro { build_cmd::build_sfc(true) } else { micro::build_with_sfc() })?;
    let built = started.elapsed();

    let mut md = String::new();
    let _ = writeln!(
        md,
        "Command: `{}` (as root), run on {}.\n",
        opts.command_line(),
        today()
    );
    let _ = writeln!(md, "### Machine\n\n{}", document::machine());
    let mut failures = Vec::new();
    if !opts.no_macro {
        let (section, failed) = macro_bench(&sfc, opts)?;
        md.push_str(&section);
        failures.extend(failed);
    }
    if !opts.no_vm {
        section("VM boot time");
        match vm::run(opts.vm_boots.max(1)) {
            Ok(s) => {
                println!("\n{s}");
                md.push_str(&s);
                md.push('\n');
            }
            Err(e) => failures.push(format!("VM boot: {e:#}")),
        }
    }
    let hosts_md = if opts.no_hosts { None } else { hosts_part(&sfc, opts, &mut failures) };
    let measured_macro = started.elapsed();
    interrupt::check()?;
    if !opts.no_micro {
        section("Micro benchmark: BPF_PROG_TEST_RUN");
        let table = micro::run()?;
        println!("\n{table}");
        let _ = writeln!(
            md,
            "### Micro: classify-and-steer under BPF_PROG_TEST_RUN\n\n`{}`\n\n{table}",
            micro::command_line()
        );
    }
    let after_micro = started.elapsed();
    let mut robust_md = None;
    if !opts.no_robust {
        section("Robustness: failover and floods");
        match robust::run(&sfc, opts.failover_runs.max(1)) {
            Ok(s) => {
                println!("\n{s}");
                robust_md = Some(s);
            }
            Err(e) => failures.push(format!("robustness: {e:#}")),
        }
    }
    let took = started.elapsed();
    let phases = format!(
        "installing what was missing {:.0} s, building {:.0} s, macro and VM boot {:.0} s, micro {:.0} s, robustness {:.0} s",
        installed.as_secs_f64(),
        built.saturating_sub(installed).as_secs_f64(),
        measured_macro.saturating_sub(built).as_secs_f64(),
        after_micro.saturating_sub(measured_macro).as_secs_f64(),
        took.saturating_sub(after_micro).as_secs_f64()
    );
    let _ = writeln!(md, "The whole run took {:.1} minutes ({phases}).\n", took.as_secs_f64() / 60.0);

    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| dirs::workspace_root().join("BENCHMARKS.md"));
    if failures.is_empty() {
        // Each part keeps its own generated block, so a run of one part leaves the others.
        if !(opts.no_macro && opts.no_micro && opts.no_vm) {
            document::write_benchmarks_md(&out, &document::MAIN, &md)?;
        }
        if let Some(h) = hosts_md {
            let h = format!("Command: `{}` (as root), run on {}.\n\n{h}", opts.command_line(), today());
            document::write_benchmarks_md(&out, &document::HOSTS, &h)?;
        }
        if let Some(r) = robust_md {
            let r = format!("Command: `{}` (as root), run on {}.\n\n{r}", opts.command_line(), today());
            document::write_benchmarks_md(&out, &document::ROBUST, &r)?;
        }
        println!("\nResults written to {}.", out.display());
    } else {
        println!("\nNot writing {}: some paths failed.", out.display());
    }
    println!("cargo xtask bench took {:.1} minutes ({phases}).", took.as_secs_f64() / 60.0);
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// The multi-host part (`hosts`): its Markdown, or `None` with the failure noted.
fn hosts_part(sfc: &Path, opts: &Options, failures: &mut Vec<String>) -> Option<String> {
    section("Multi-host: a hop to another host, push to applied");
    match hosts::run(sfc, opts.reps, opts.secs) {
        Ok(s) => {
            println!("\n{s}");
            Some(s)
        }
        Err(e) => {
            failures.push(format!("multi-host: {e:#}"));
            None
        }
    }
}

/// One measurement kind, in the order each repetition runs them.
#[derive(Debug, Clone, Copy)]
enum Metric {
    Udp,
    Tcp,
    Latency,
}

/// Sets up every path, measures, prints and returns the Markdown section, and the paths that
/// failed (set-up or every sample of a measurement).
fn macro_bench(sfc: &Path, opts: &Options) -> Result<(String, Vec<String>)> {
    section("Macro benchmark: paths through the hub");
    let leftovers = paths::leftovers();
    if !leftovers.is_empty() {
        println!(
            "note: namespaces of an earlier, interrupted bench exist: {} (remove with `ip netns del`)",
            leftovers.join(" ")
        );
    }
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let id = fresh_id();
    let work = WorkDir::create(std::env::temp_dir().join(format!("sfc-bench-{id}")))?;
    let env = Env {
        id: &id,
        sfc_bin: sfc,
        work: &work.0,
        path_cpu: udp::PATH_CPU.min(cpus - 1),
    };
    println!(
        "namespaces {}*, scratch {}",
        paths::prefix(&id),
        work.0.display()
    );

    let mut failures = Vec::new();
    let mut ready: Vec<Ready> = Vec::new();
    let mut rows: Vec<(Spec, Option<String>)> = Vec::new();
    let known: Vec<&str> = paths::all().iter().map(|p| p.key).collect();
    if let Some(bad) = opts.paths.iter().find(|k| !known.contains(&k.as_str())) {
        bail!("--paths: no path {bad:?} (paths: {})", known.join(", "));
    }
    let wanted = |p: &Spec| {
        p.key == "a" || (opts.paths.is_empty() && !paths::ON_REQUEST.contains(&p.key)) || opts.paths.iter().any(|k| k == p.key)
    };
    for spec in paths::all().into_iter().filter(wanted) {
        interrupt::check()?;
        println!("\n-- ({}) {}", spec.key, spec.title);
        match spec.kind.install(spec, &env) {
            Ok(Outcome::Ready(r)) => {
                rows.push((spec, None));
                ready.push(r);
            }
            Ok(Outcome::Unavailable(spec, why)) => {
                println!("({}) not measured: {why}", spec.key);
                rows.push((spec, Some(why)));
            }
            Err(e) => {
                let e = paths::setup_error(&spec, e);
                println!("{e:#}");
                failures.push(format!("{e:#}"));
                rows.push((spec, Some("set-up failed".to_owned())));
            }
        }
    }
    interrupt::check()?;

    let samples = measure_all(&ready, opts, cpus, &work.0)?;
    let ready_keys_once: Vec<&str> = ready.iter().filter(|r| once_only(&r.spec, opts)).map(|r| r.spec.key).collect();
    let mut measured = samples.iter();
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(spec, unavailable)| {
            if let Some(why) = unavailable {
                return Row::Unavailable(spec, why);
            }
            let s = measured.next().expect("one sample set per ready path");
            if !s.errors.is_empty() {
                println!("({}) errors: {}", spec.key, s.errors.join("; "));
            }
            if s.pps.is_empty() || (s.gbps.is_empty() && !spec.skip_tcp) || s.p50.is_empty() {
                failures.push(format!(
                    "({}) {}: no successful sample of some measurement: {}",
                    spec.key,
                    spec.title,
                    s.errors.join("; ")
                ));
            }
            Row::Measured(spec, s.medians(), Box::new(s.clone()))
        })
        .collect();
    drop(ready);

    let profile = report::perf_note(&rows).map_or_else(String::new, |p| format!("\n\n{p}"));
    let (table, goals, flat_out, taps, tracing) = (
        report::table(&rows),
        format!("{}\n{}", report::goals(&rows), report::paired_note(&rows)),
        format!("{}\n\n{}{profile}", report::flat_out_note(&rows), report::bpf_note(&rows)),
        report::tap_note(&rows),
        report::trace_note(&rows),
    );
    println!("\n{table}\n{flat_out}\n\n{tracing}\n\n{taps}\n\nGoals for sfc tc mode:\n{goals}");
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Macro: source to dest through the hub namespace\n\n\
         Medians of {} repetitions of {} s each, interleaved across the paths{}.\n\n{table}\n\
         {flat_out}\n\n{tracing}\n\n{taps}\n\nGoals for sfc tc mode (d):\n\n{goals}\n{}",
        opts.reps,
        opts.secs,
        once_note(&ready_keys_once),
        method(cpus)
    );
    Ok((md, failures))
}

/// Whether `spec` is measured in the first of several repetitions only: a `once` path in a
/// run of every path (named in `--paths`, it is measured in each).
fn once_only(spec: &Spec, opts: &Options) -> bool {
    spec.once && opts.reps > 1 && opts.paths.is_empty()
}

/// ", except ..., measured in the first repetition only" for the `once` paths; empty without.
fn once_note(keys: &[&str]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let keys: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
    format!(" ({}: the first repetition only, variants of (d) and (f) for their own notes)", keys.join(", "))
}

/// Every measurement `opts.reps` times, interleaved: per repetition each metric on every path
/// in turn, starting one path later each repetition. Samples in `ready`'s order.
fn measure_all(ready: &[Ready], opts: &Options, cpus: usize, work: &Path) -> Result<Vec<Samples>> {
    let secs = Duration::from_secs(opts.secs);
    let mut samples: Vec<Samples> = vec![Samples::default(); ready.len()];
    println!(
        "\n{} repetitions x {} s per measurement, interleaved over {} paths",
        opts.reps,
        opts.secs,
        ready.len()
    );
    for rep in 0..opts.reps {
        for metric in [Metric::Udp, Metric::Tcp, Metric::Latency] {
            for i in 0..ready.len() {
                interrupt::check()?;
                let k = (i + rep) % ready.len();
                if (matches!(metric, Metric::Tcp) && ready[k].spec.skip_tcp) || (rep > 0 && once_only(&ready[k].spec, opts)) {
                    continue;
                }
                // The profile: in the first repetition, into the scratch directory.
                let profile = (opts.profile && rep == 0).then(|| work.join(format!("perf-{}.data", ready[k].spec.key)));
                let line = measure(&ready[k], metric, (secs, cpus), profile.as_deref(), &mut samples[k]);
                interrupt::check()?;
                println!(
                    "rep {}/{} {metric:?} ({}): {line}",
                    rep + 1,
                    opts.reps,
                    ready[k].spec.key
                );
            }
        }
    }
    Ok(samples)
}

/// Runs one measurement of `metric` on `path` (with a profile of the path's core into
/// `profile`, for UDP), records it in `s`; returns a line for the log.
fn measure(path: &Ready, metric: Metric, (secs, cpus): (Duration, usize), profile: Option<&Path>, s: &mut Samples) -> String {
    let net = &path.net;
    let result = match metric {
        Metric::Udp => udp::udp_rate(net, secs, cpus, path.spec.kind == paths::Kind::Sfc("xdp"), profile).and_then(|r| {
            check_route(path, &r)?;
            s.pps.push(r.sustained);
            s.by_rep.pps.push(Some(r.sustained));
            s.sender_limited |= r.sender_limited;
            s.flat_out_offered.push(r.flat_out_offered);
            s.flat_out_delivered.push(r.flat_out_delivered);
            let bpf = match &r.bpf {
                Ok(p) => {
                    s.bpf.push(p.clone());
                    let names: Vec<String> = p.by_name.iter().map(|(n, (runs, ns))| format!("{n} {runs} runs {ns} ns")).collect();
                    format!("; BPF {:.0} ns per packet ({:.1} runs of {:.0} ns: {})", p.ns_per_packet, p.runs_per_packet, p.ns_per_run, names.join(", "))
                }
                Err(e) => format!("; BPF statistics: {e}"),
            };
            let bpf = match &r.perf {
                Some(Ok(p)) => {
                    s.perf = Some(p.clone());
                    format!("{bpf}; profile: BPF programs {:.1} %, hash-map code {:.1} % of the core", p.programs(), p.map_code())
                }
                Some(Err(e)) => format!("{bpf}; profile: {e}"),
                None => bpf,
            };
            Ok(format!(
                "{:.0} kpps carried{}; flat out {:.0} kpps offered, {:.0} kpps arrived{bpf}",
                r.sustained / 1e3,
                if r.sender_limited {
                    " (sender-limited)"
                } else {
                    ""
                },
                r.flat_out_offered / 1e3,
                r.flat_out_delivered / 1e3
            ))
        }),
        Metric::Tcp => traffic::tcp_gbps(net, secs).map(|g| {
            s.gbps.push(g);
            s.by_rep.gbps.push(Some(g));
            format!("{g:.2} Gbit/s")
        }),
        Metric::Latency => traffic::latency(net, secs).map(|l| {
            s.p50.push(l.p50);
            s.by_rep.p50.push(Some(l.p50));
            s.p99.push(l.p99);
            format!("RTT p50 {:.1} us, p99 {:.1} us", l.p50, l.p99)
        }),
    };
    result.unwrap_or_else(|e| {
        // The repetition has no value of this metric (and keeps its place for pairing).
        match metric {
            Metric::Udp => s.by_rep.pps.push(None),
            Metric::Tcp => s.by_rep.gbps.push(None),
            Metric::Latency => s.by_rep.p50.push(None),
        }
        let e = format!("{metric:?}: {e:#}");
        s.errors.push(e.clone());
        format!("FAILED: {e}")
    })
}

/// The packets must have taken the path: through every service function on a chain path, past
/// none on the direct one (their own interface counters say so).
fn check_route(path: &Ready, r: &udp::Rate) -> Result<()> {
    let delivered = r.delivered_packets;
    for (n, &through) in (1..=HOPS).zip(&r.sf_packets) {
        let chained = path.spec.hops > 0;
        #[expect(clippy::cast_precision_loss, reason = "packet counts")]
        let share = through as f64 / delivered.max(1) as f64;
        if chained && share < 0.9 {
            bail!(
                "only {through} of {delivered} packets went through sf{n}: the chain is not in the path"
            );
        }
        if !chained && through > delivered / 100 {
            bail!("{through} packets went through sf{n} on the direct path");
        }
    }
    if delivered == 0 {
        bail!("no packet arrived at dest ({})", Port::Dest.dev());
    }
    Ok(())
}

/// How the numbers were taken, for BENCHMARKS.md.
fn method(cpus: usize) -> String {
    let (tx, path) = (udp::SENDER_CPU, udp::PATH_CPU);
    let loss = udp::MAX_LOSS * 100.0;
    let steps = udp::SEARCH_STEPS;
    let cores = if cpus > 1 {
        format!(
            "The sender, a thread of the bench pinned to CPU {tx}, writes one flow of prebuilt \
             frames to a raw packet socket on source's interface (`sendmmsg`, qdisc bypassed); RPS \
             on the hub's port facing source moves everything after it (hub, service functions, \
             OVS, dest) to CPU {path}, so sender and path do not share a core. For (e) the \
             port runs XDP, which sees the frames before RPS could move them, so it gets threaded \
             NAPI instead, its thread pinned to CPU {path}: the same split."
        )
    } else {
        "One CPU: the sender and the path share it.".to_owned()
    };
    format!(
        "How it was measured:\n\n\
         - Topology: one copy per path of hub, source, dest and sf1-sf3 namespaces joined by veth \
         pairs; the hub routes; the service functions are plain IPv4 routers. Replies (TCP ACKs, \
         ping-pong answers) go from dest straight back to source on every path. From the last \
         service function to dest, policy routing and OVS take one more hub lookup; sfc \
         redirects straight into dest (the chain's `logical_destination_port`).\n\
         - UDP: 64-byte frames (18-byte payload) of one flow, their IPv4 ids counting up as a \
         host's stack numbers packets (so sfc's SF timing samples its default 1 in 16), counted \
         on source's and dest's interfaces. \
         {cores} Sent flat out, the sender overloads every chain path and the per-CPU backlog \
         drops packets half-way, wasting the work done on them (see the flat-out figures), so \
         the table shows the highest rate that arrives with at most {loss:.0}% lost: a \
         {steps}-step binary search with a paced sender, then that rate held for the full \
         measurement time (RFC 2544 throughput, shortened). Each UDP measurement also checks the \
         route: every service function's own counters must show the packets (none on (a)).\n\
         - TCP: iperf3, one stream, client on CPU {tx}, server on CPU {path}, no RPS.\n\
         - Latency: UDP ping-pong, one 64-byte message at a time, between two threads of the \
         bench spinning on non-blocking sockets (`xtask/src/bench/pingpong.rs`: what `sockperf \
         ping-pong --nonblocked --full-rtt` measures, without its fixed two-second wait), client \
         on CPU {tx}, server on CPU {path}; round-trip times, the first 250 ms left out. \
         \"Added p50 per hop\" is (p50 - p50 of (a)) / 3.\n\
         - sfc XDP mode (e): `sfc apply --mode xdp` puts `sfc_xdp` on the hub's ports and a \
         pass program on the far end of every interface it redirects into; the kernel turns GSO \
         and TSO off on the peers of XDP interfaces, and the program completes the TCP \
         checksums the senders left to offload, at every hop (see the analysis).\n\
         - OVS: Debian's openvswitch-switch; ovsdb-server and ovs-vswitchd started by the bench in \
         the hub namespace with their own run directory, `datapath_type=netdev`, \
         `userspace-tso-enable=true` (without it TCP fails on veth), AF_PACKET (\"system\") \
         ports, both daemons pinned to CPU {path}.\n"
    )
}

/// Four base-36 characters from the pid and the clock: namespaces of parallel runs differ.
fn fresh_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = std::process::id().wrapping_mul(0x9e37_79b9) ^ nanos;
    let mut id = String::new();
    for _ in 0..4 {
        id.push(char::from_digit(x % 36, 36).unwrap_or('0'));
        x /= 36;
    }
    id
}

/// The date, `YYYY-MM-DD` (UTC).
fn today() -> String {
    cmd::stdout_of(cmd::command("date").args(["-u", "+%F"]))
        .map_or_else(|_| "an unknown date".to_owned(), |d| d.trim().to_owned())
}

fn section(title: &str) {
    println!("\n== {title} ==\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_base36() {
        let id = fresh_id();
        assert_eq!(id.len(), 4);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }
}
