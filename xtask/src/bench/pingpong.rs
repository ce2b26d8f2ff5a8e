//! Request/response latency: one 64-byte UDP message at a time from a client in one namespace to
//! a server in another and back, each end a thread of this process spinning on a non-blocking
//! socket; full round trips, the first [`WARMUP`] left out. It is what `sockperf ping-pong
//! --nonblocked --full-rtt -m 64` measures, and what the bench ran before. Not sockperf itself:
//! its client sleeps two seconds after its warm-up messages whatever its options say (`sleep(2)`
//! in `Client::initBeforeLoop`, after `--pre-warmup-wait`), and runs 450 ms longer than asked, so
//! each of the bench's 27 latency measurements spent about 3 s waiting.
//!
//! A message carries its sequence number: a reply that comes later than [`TIMEOUT`] (counted as
//! lost) is never taken for the reply to the next message.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sfc_tests::netns;

/// Message size (UDP payload), as sockperf's `-m 64`.
const MSG: usize = 64;
/// Round trips in the first this long are not counted (caches, neighbour entries, flow entries).
const WARMUP: Duration = Duration::from_millis(250);
/// A message not answered within this long is lost; the next one is sent.
const TIMEOUT: Duration = Duration::from_millis(200);
/// More lost than this share of the messages sent: the measurement failed.
const MAX_LOST: f64 = 0.01;

/// Round-trip time percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// Where the two ends run: namespaces, and (optionally) the CPUs they are pinned to.
pub struct Ends<'a> {
    pub client_ns: &'a str,
    pub server_ns: &'a str,
    /// (client, server).
    pub cpus: Option<(usize, usize)>,
}

/// Round trips to a server on `server` for `time` (after the warm-up); their p50 and p99.
pub fn round_trips(ends: &Ends, server: SocketAddr, time: Duration) -> Result<Latency> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let server_cpu = ends.cpus.map(|(_, s)| s);
    let serving = {
        let stop = Arc::clone(&stop);
        netns::spawn_in_netns(ends.server_ns, move || serve(server, server_cpu, &stop, &ready_tx))
    };
    // Nothing below returns early before the explicit stop; this stops the server when a panic
    // of the client's thread (resumed by `in_netns`) unwinds through here instead.
    let _stop = StopOnDrop(Arc::clone(&stop));
    let bound = ready_rx.recv_timeout(Duration::from_secs(5));
    let client_cpu = ends.cpus.map(|(c, _)| c);
    let measured = match bound {
        Ok(Ok(())) => netns::in_netns(ends.client_ns, || ask(server, client_cpu, time)).and_then(|r| r),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(anyhow::anyhow!("the latency server in {} did not start", ends.server_ns)),
    };
    stop.store(true, Ordering::Relaxed);
    // The server's failure first: the client's is then only its consequence.
    serving.join().map_err(|_| anyhow::anyhow!("the latency server panicked"))?.and_then(|r| r)?;
    percentiles(measured?)
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The server: answers every message with itself until `stop`.
fn serve(at: SocketAddr, cpu: Option<usize>, stop: &AtomicBool, ready: &mpsc::Sender<Result<()>>) -> Result<()> {
    let sock = match bind(at, cpu) {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                // A send that fails (a full buffer) is a lost reply: the client times out.
                let _ = sock.send_to(&buf[..n], from);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e).context("the latency server's receive"),
        }
    }
    Ok(())
}

fn bind(at: SocketAddr, cpu: Option<usize>) -> Result<UdpSocket> {
    if let Some(cpu) = cpu {
        super::udp::pin_thread(cpu)?;
    }
    let sock = UdpSocket::bind(at).with_context(|| format!("bind the latency server to {at}"))?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// The client: one message at a time, for the warm-up and then `time`; the round trips after
/// the warm-up, in nanoseconds.
fn ask(server: SocketAddr, cpu: Option<usize>, time: Duration) -> Result<Vec<u32>> {
    if let Some(cpu) = cpu {
        super::udp::pin_thread(cpu)?;
    }
    let any = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = UdpSocket::bind(any).context("bind the latency client")?;
    sock.connect(server).with_context(|| format!("connect the latency client to {server}"))?;
    sock.set_nonblocking(true)?;
    let (mut msg, mut reply) = ([0u8; MSG], [0u8; 2048]);
    let start = Instant::now();
    let (measure_from, end) = (start + WARMUP, start + WARMUP + time);
    let mut rtts = Vec::with_capacity(1 << 20);
    let (mut sent, mut lost) = (0u64, 0u64);
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        sent += 1;
        msg[..8].copy_from_slice(&sent.to_le_bytes());
        if let Err(e) = sock.send(&msg) {
            // A full socket buffer or an unreachable answer (ICMP): this message is lost.
            if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::ConnectionRefused {
                return Err(e).context("the latency client's send");
            }
            lost += 1;
            continue;
        }
        loop {
            match sock.recv(&mut reply) {
                Ok(n) if n >= 8 && reply[..8] == msg[..8] => {
                    let t1 = Instant::now();
                    if t0 >= measure_from {
                        rtts.push(u32::try_from((t1 - t0).as_nanos()).unwrap_or(u32::MAX));
                    }
                    break;
                }
                // An old message's late reply, or a short datagram: not this one's.
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::ConnectionRefused) => {
                    if t0.elapsed() > TIMEOUT {
                        lost += 1;
                        break;
                    }
                    std::hint::spin_loop();
                }
                Err(e) => return Err(e).context("the latency client's receive"),
            }
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "message counts far below 2^52")]
    let too_many = lost as f64 > MAX_LOST * sent as f64;
    if sent == 0 || too_many {
        bail!("{lost} of {sent} latency messages got no answer within {TIMEOUT:?}");
    }
    Ok(rtts)
}

/// Nearest-rank p50 and p99, in microseconds.
fn percentiles(mut rtts: Vec<u32>) -> Result<Latency> {
    if rtts.is_empty() {
        bail!("no round trip was measured");
    }
    rtts.sort_unstable();
    let at = |p: usize| {
        let rank = (rtts.len() * p).div_ceil(100).max(1);
        f64::from(rtts[rank - 1]) / 1000.0
    };
    Ok(Latency { p50: at(50), p99: at(99) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = percentiles((1..=100).map(|us| us * 1000).collect()).unwrap();
        assert!((l.p50 - 50.0).abs() < 1e-9 && (l.p99 - 99.0).abs() < 1e-9, "{l:?}");
        let one = percentiles(vec![4200]).unwrap();
        assert!((one.p50 - 4.2).abs() < 1e-9 && (one.p99 - 4.2).abs() < 1e-9, "{one:?}");
        assert!(percentiles(Vec::new()).is_err());
    }
}
