//! TCP throughput (iperf3, one stream) and request/response latency (UDP ping-pong, both ends
//! busy-polling: `pingpong`), each bounded in time and run inside the path's namespaces. The
//! client runs on [`SENDER_CPU`], the server on [`PATH_CPU`]; there is no RPS, as veth traffic
//! normally runs: each send carries its packet through the path on the sending core.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

pub use super::pingpong::Latency;
use super::{
    pingpong,
    topo::{DEST_IP, Net},
    udp::{PATH_CPU, SENDER_CPU},
};
use crate::cmd;

const TCP_PORT: u16 = 5201;
const LATENCY_PORT: u16 = 11111;
/// A server that does not listen after this long has failed to start.
const SERVER_START: Duration = Duration::from_secs(5);
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
    wait_listening(&net.dest(), TCP_PORT, SERVER_START)?;
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

/// Waits until a TCP socket in namespace `ns` listens on `port` (an iperf3 server is ready), at
/// most `limit`, looking in the namespace's `/proc/net/tcp` and `tcp6`. A fixed wait (400 ms)
/// was mostly idle (iperf3 listens within milliseconds) and on a busy machine could be short.
pub fn wait_listening(ns: &str, port: u16, limit: Duration) -> Result<()> {
    let tables = [sfc_tests::ProcNet::open(ns, "tcp")?, sfc_tests::ProcNet::open(ns, "tcp6")?];
    let deadline = Instant::now() + limit;
    loop {
        for t in &tables {
            if listens(&t.read()?, port) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("nothing listens on TCP port {port} in {ns} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a `/proc/net/tcp` table has a socket listening on `port`: its lines are `sl
/// local_address rem_address st ...`, the address `HEXIP:HEXPORT`, state `0A` LISTEN.
fn listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        state == Some("0A") && local.and_then(|a| a.rsplit_once(':')).is_some_and(|(_, p)| u16::from_str_radix(p, 16) == Ok(port))
    })
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

/// UDP request/response from source to dest for `secs`: one message at a time, client and server
/// on non-blocking sockets (they spin instead of sleeping), full round trips (`pingpong`).
pub fn latency(net: &Net, secs: Duration) -> Result<Latency> {
    let ends = pingpong::Ends { client_ns: &net.source(), server_ns: &net.dest(), cpus: Some((SENDER_CPU, PATH_CPU)) };
    pingpong::round_trips(&ends, SocketAddr::from((DEST_IP, LATENCY_PORT)), secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_its_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                     0: 0202A8C6:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   \
                     1: 0202A8C6:2B67 0102A8C6:1451 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        assert!(listens(table, 5201));
        // 11111 (0x2B67) is there, but as an established connection's local end.
        assert!(!listens(table, 11111));
        assert!(!listens(table, 5202));
    }

    #[test]
    fn iperf3_receiver_rate() {
        let json = r#"{"end":{"sum_received":{"bits_per_second":9.5e9}}}"#;
        assert!((parse_iperf3(json).unwrap() - 9.5).abs() < 1e-9);
        assert!(parse_iperf3(r#"{"error":"unable to connect"}"#).is_err());
    }
}
