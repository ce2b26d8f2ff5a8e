//! Multi-host: what a hop to another host costs next to a local hop, and how long a push takes
//! to be running on every host (`sfc_tests::hosts`: hub namespaces joined by a VXLAN underlay,
//! etcd in a namespace of its own, one `sfc run --etcd` agent per host).
//!
//! Three hosts: source, dest and sf1 on h1, sf2 on h2, sf3 on h3 (idle). Two chain files with
//! the same classifier (everything from source to dest): (L) through sf1, all on h1; (X)
//! through sf2, so every packet crosses to h2 and back over the overlay. They are pushed in
//! turn, every measurement interleaved L, X, L, X, ...; medians reported. The rates are the
//! tools' own (iperf3 UDP with 18-byte payloads unpaced, received packets per second; iperf3
//! TCP; UDP ping-pong of 64-byte messages, both ends spinning: `pingpong`), on this 2-core VM,
//! where the agents and etcd share the cores.

use std::{
    fmt::Write as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sfc_tests::{
    TopologyConfig,
    chain::{ChainFile, FlowClassifier, PortChain, PortPairGroup, ScratchDir},
    hosts::Hosts,
    interrupt,
    topology::{DEST_IP, End, SOURCE_IP},
};

use super::report::median;

const PLACEMENT: [(End, usize); 4] = [(End::SfIn(2), 2), (End::SfOut(2), 2), (End::SfIn(3), 3), (End::SfOut(3), 3)];
const PUSHES: usize = 6;

/// Source to dest, all IPv4, through `pp<sf>`.
fn chain(h: &Hosts, sf: u8) -> ChainFile {
    let topo = h.topo();
    let mut fc = FlowClassifier::protocol("all", "udp", &topo.hub_dev(End::Source));
    fc.protocol = None;
    fc.source_ip_prefix = Some(format!("{SOURCE_IP}/32"));
    fc.destination_ip_prefix = Some(format!("{DEST_IP}/32"));
    // Delivered by sfc: after sf2 (on h2) the packet is not h2's to bridge (dest is on h1).
    fc.logical_destination_port = Some(topo.hub_dev(End::Dest));
    ChainFile {
        port_pairs: [1, 2, 3].iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![PortPairGroup::new("pg", &[&format!("pp{sf}")])],
        flow_classifiers: vec![fc],
        port_chains: vec![PortChain::new("pc1", 1, &["pg"], &["all"])],
        interfaces: Vec::new(),
    }
}

/// `ip netns exec NS program args...` (the tools need no bpffs), output or an error.
fn in_ns(ns: &str, program: &str, args: &[&str], limit: Duration) -> Result<String> {
    let out = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .args(["ip", "netns", "exec", ns, program])
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {}: {}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A server in `ns` for the length of one measurement.
struct Server(std::process::Child);

impl Server {
    /// Starts `program` in `ns` and waits until it listens on TCP `port`.
    fn start(ns: &str, port: u16, program: &str, args: &[&str]) -> Result<Server> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        // Owned first: a server that never listens is killed on the way out.
        let server = Server(child);
        super::traffic::wait_listening(ns, port, Duration::from_secs(5))?;
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (UDP packets per second received, TCP Gbit/s, round trip p50 in microseconds).
fn measure(h: &Hosts, secs: u64) -> Result<(f64, f64, f64)> {
    let topo = h.topo();
    let (src, dst, ip, t) = (topo.source(), topo.dest(), DEST_IP.to_string(), secs.to_string());
    let limit = Duration::from_secs(secs + 20);
    let pps = {
        let _s = Server::start(&dst, 5301, "iperf3", &["-s", "-1", "-B", &ip, "-p", "5301"])?;
        let json = in_ns(&src, "iperf3", &["-c", &ip, "-p", "5301", "-u", "-b", "0", "-l", "18", "-t", &t, "-J"], limit)?;
        let v: serde_json::Value = serde_json::from_str(&json).context("iperf3 JSON")?;
        let s = &v["end"]["sum"];
        let got = s["packets"].as_f64().unwrap_or(0.0) - s["lost_packets"].as_f64().unwrap_or(0.0);
        got / s["seconds"].as_f64().filter(|x| *x > 0.0).context("iperf3: no duration")?
    };
    let gbps = {
        let _s = Server::start(&dst, 5302, "iperf3", &["-s", "-1", "-B", &ip, "-p", "5302"])?;
        let json = in_ns(&src, "iperf3", &["-c", &ip, "-p", "5302", "-t", &t, "-J"], limit)?;
        let v: serde_json::Value = serde_json::from_str(&json).context("iperf3 JSON")?;
        v["end"]["sum_received"]["bits_per_second"].as_f64().context("iperf3: no throughput")? / 1e9
    };
    let ends = super::pingpong::Ends { client_ns: &src, server_ns: &dst, cpus: None };
    let p50 = super::pingpong::round_trips(&ends, std::net::SocketAddr::from((DEST_IP, 11112)), Duration::from_secs(secs))?.p50;
    Ok((pps, gbps, p50))
}

/// Runs the multi-host measurements; returns the Markdown section.
pub fn run(sfc: &Path, reps: usize, secs: u64) -> Result<String> {
    let dir = ScratchDir::new("bench-hosts")?;
    let topo = TopologyConfig::new(&[1, 2, 3]).build()?;
    let mut h = Hosts::build(topo, 3, &PLACEMENT, false, sfc, dir.path())?;
    let local = dir.write("local.yaml", &chain(&h, 1))?;
    let cross = dir.write("cross.yaml", &chain(&h, 2))?;
    let rev = h.push(&local)?;
    for n in 1..=3 {
        h.start_agent_with(n, &["--drain-timeout", "0"])?;
    }
    h.wait_applied(rev, Duration::from_mins(1))?;

    // Push to running everywhere, alternating the two files.
    let mut applied = Vec::new();
    for i in 0..PUSHES {
        interrupt::check()?;
        let file = if i % 2 == 0 { &cross } else { &local };
        let t = Instant::now();
        let rev = h.push(file)?;
        h.wait_applied(rev, Duration::from_secs(30))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("push {}/{PUSHES}: running on 3 hosts after {ms:.0} ms", i + 1);
        applied.push(ms);
    }

    let (mut l, mut x) = (Vec::new(), Vec::new());
    for r in 0..reps {
        for (name, file, out) in [("L", &local, &mut l), ("X", &cross, &mut x)] {
            interrupt::check()?;
            let rev = h.push(file)?;
            h.wait_applied(rev, Duration::from_secs(30))?;
            let m = measure(&h, secs)?;
            println!("rep {}/{reps} ({name}): {:.0} pps, {:.2} Gbit/s, p50 {:.1} us", r + 1, m.0, m.1, m.2);
            out.push(m);
        }
    }
    let med = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| median(&v.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    let (lp, lt, ll) = (med(&l, |m| m.0), med(&l, |m| m.1), med(&l, |m| m.2));
    let (xp, xt, xl) = (med(&x, |m| m.0), med(&x, |m| m.1), med(&x, |m| m.2));
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Multi-host: a hop to another host\n\n\
         Three hosts (hub namespaces, a VXLAN underlay at MTU 1600, etcd in a namespace, one `sfc run --etcd` \
         agent per host; `xtask/src/bench/hosts.rs`). (L) source -> sf1 -> dest, all on h1; (X) source@h1 -> \
         sf2@h2 -> dest@h1: every packet crosses to h2 and back in sfc's overlay. Medians of {reps} \
         interleaved runs of {secs} s each (iperf3 UDP, 18-byte payloads, unpaced: received packets per second; \
         iperf3 TCP, one stream; UDP ping-pong, 64 bytes, one message at a time, both ends spinning).\n\n\
         | path | UDP pps | TCP Gbit/s | RTT p50 (us) |\n|---|---|---|---|\n\
         | (L) local hop | {lp:.0} | {lt:.2} | {ll:.1} |\n\
         | (X) hop to another host and back | {xp:.0} ({:.2}x) | {xt:.2} ({:.2}x) | {xl:.1} (+{:.1}) |\n\n\
         From `sfc push` to every host running the pushed revision with every port known (`sfc status --etcd`, \
         polled every 100 ms, each poll a process): median **{:.0} ms** of {PUSHES} pushes ({}).\n",
        xp / lp.max(1.0),
        xt / lt.max(1e-9),
        xl - ll,
        median(&applied).unwrap_or(0.0),
        applied.iter().map(|a| format!("{a:.0}")).collect::<Vec<_>>().join(", "),
    );
    drop(h);
    Ok(md)
}
