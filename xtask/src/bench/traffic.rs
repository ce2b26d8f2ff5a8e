//! TCP throughput (iperf3, one stream) and request/response latency (sockperf ping-pong, both
//! ends busy-polling), each bounded in time and run inside the path's namespaces. The client runs
//! on [`SENDER_CPU`], the server on [`PATH_CPU`]; there is no RPS, as veth traffic normally runs:
//! each send carries its packet through the path on the sending core.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    topo::{DEST_IP, Net},
    udp::{PATH_CPU, SENDER_CPU},
};
use crate::cmd;

const TCP_PORT: u16 = 5201;
const SOCKPERF_PORT: u16 = 11111;
/// Message size of the latency test (UDP payload).
const SOCKPERF_MSG: &str = "64";
/// Servers get this long to start listening.
const SERVER_START: Duration = Duration::from_millis(400);
/// A client that takes this much longer than asked is killed.
const GRACE: Duration = Duration::from_secs(15);

/// A child process, killed (if still running) and reaped when dropped.
struct Proc {
    what: String,
    /// Taken by [`Proc::finish`].
    child: Option<Child>,
}

impl Proc {
    fn spawn(what: &str, c: &mut Command) -> Result<Proc> {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd::echo(c);
        let child = c
            .spawn()
            .with_context(|| format!("could not start {what}"))?;
        Ok(Proc {
            what: what.to_owned(),
            child: Some(child),
        })
    }

    /// Waits until the process exits, at most `limit`; returns stdout, or an error with its
    /// output when it failed or was killed for taking too long.
    fn finish(mut self, limit: Duration) -> Result<String> {
        let mut child = self.child.take().context("finished twice")?;
        let deadline = Instant::now() + limit;
        let mut killed = false;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The output is small (a summary), so the pipes cannot have filled while we polled.
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if killed || !out.status.success() {
            let why = if killed {
                format!("did not finish within {limit:?}; killed")
            } else {
                format!("failed ({})", out.status)
            };
            bail!(
                "{} {why}: {}{}",
                self.what,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// `taskset -c <cpu> ip netns exec <ns> <program> args...`.
fn in_ns(ns: &str, cpu: usize, program: &str, args: &[&str]) -> Command {
    let mut c = cmd::command("taskset");
    c.args(["-c", &cpu.to_string(), "ip", "netns", "exec", ns, program])
        .args(args);
    c
}

/// Single-stream TCP throughput from source to dest in Gbit/s (iperf3 receiver side).
pub fn tcp_gbps(net: &Net, secs: Duration) -> Result<f64> {
    let (ip, port) = (DEST_IP.to_string(), TCP_PORT.to_string());
    let _server = Proc::spawn(
        "iperf3 server",
        &mut in_ns(
            &net.dest(),
            PATH_CPU,
            "iperf3",
            &["-s", "-1", "-B", &ip, "-p", &port],
        ),
    )?;
    std::thread::sleep(SERVER_START);
    let t = secs.as_secs().max(1).to_string();
    let client = Proc::spawn(
        "iperf3 client",
        &mut in_ns(
            &net.source(),
            SENDER_CPU,
            "iperf3",
            &["-c", &ip, "-p", &port, "-t", &t, "-J"],
        ),
    )?;
    let json = client.finish(secs + GRACE)?;
    parse_iperf3(&json)
}

fn parse_iperf3(json: &str) -> Result<f64> {
    let v: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("iperf3 printed no JSON: {json}"))?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| "iperf3 JSON without end.sum_received.bits_per_second")?;
    Ok(bps / 1e9)
}

/// Round-trip time percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// UDP request/response from source to dest for `secs`: sockperf ping-pong, client and server
/// on non-blocking sockets (they spin instead of sleeping), full round trips.
pub fn latency(net: &Net, secs: Duration) -> Result<Latency> {
    let (ip, port) = (DEST_IP.to_string(), SOCKPERF_PORT.to_string());
    let _server = Proc::spawn(
        "sockperf server",
        &mut in_ns(
            &net.dest(),
            PATH_CPU,
            "sockperf",
            &["server", "-i", &ip, "-p", &port, "--nonblocked"],
        ),
    )?;
    std::thread::sleep(SERVER_START);
    let t = secs.as_secs().max(1).to_string();
    #[rustfmt::skip]
    let client = Proc::spawn(
        "sockperf client",
        &mut in_ns(&net.source(), SENDER_CPU, "sockperf", &[
            "ping-pong", "-i", &ip, "-p", &port, "-t", &t, "-m", SOCKPERF_MSG, "--full-rtt",
            "--nonblocked",
        ]),
    )?;
    let out = client.finish(secs + GRACE)?;
    parse_sockperf(&out)
}

/// sockperf prints `sockperf: ---> percentile 50.000 =    9.263` (microseconds).
fn parse_sockperf(out: &str) -> Result<Latency> {
    let percentile = |p: &str| -> Result<f64> {
        let tag = format!("percentile {p} =");
        out.lines()
            .find_map(|l| l.split_once(&tag).map(|(_, v)| v.trim().to_owned()))
            .with_context(|| format!("sockperf printed no {p} percentile: {out}"))?
            .parse::<f64>()
            .with_context(|| format!("sockperf's {p} percentile is not a number"))
    };
    Ok(Latency {
        p50: percentile("50.000")?,
        p99: percentile("99.000")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockperf_percentiles() {
        let out = "sockperf: ---> percentile 99.000 =   12.648\n\
                   sockperf: ---> percentile 90.000 =   10.001\n\
                   sockperf: ---> percentile 50.000 =    9.263\n";
        let l = parse_sockperf(out).unwrap();
        assert!((l.p50 - 9.263).abs() < 1e-9 && (l.p99 - 12.648).abs() < 1e-9);
        assert!(parse_sockperf("nothing").is_err());
    }

    #[test]
    fn iperf3_receiver_rate() {
        let json = r#"{"end":{"sum_received":{"bits_per_second":9.5e9}}}"#;
        assert!((parse_iperf3(json).unwrap() - 9.5).abs() < 1e-9);
        assert!(parse_iperf3(r#"{"error":"unable to connect"}"#).is_err());
    }
}
