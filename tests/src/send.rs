//! One-way senders, from a thread that entered a namespace: datagrams of one flow with the TTL
//! chosen per datagram, and a flood of new 5-tuples. Bounded in count; nothing waits for replies.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::netns;

/// Sends one datagram per entry of `ttls` from one socket (one fixed 5-tuple) in namespace
/// `ns` to `to`, each with that IP TTL, `gap` apart. Each payload is different (`sfc datagram
/// <i>`), as a real sender's are. Returns how many were sent.
pub fn datagrams_with_ttls(ns: &str, to: SocketAddr, ttls: &[u32], gap: Duration) -> Result<usize> {
    datagrams_from(ns, 0, to, ttls, gap)
}

/// [`datagrams_with_ttls`] from source port `port` (0: any), e.g. to send the very 5-tuple
/// another namespace sends.
pub fn datagrams_from(
    ns: &str,
    port: u16,
    to: SocketAddr,
    ttls: &[u32],
    gap: Duration,
) -> Result<usize> {
    netns::in_netns(ns, || -> Result<usize> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).context("bind UDP sender")?;
        for (i, &ttl) in ttls.iter().enumerate() {
            sock.set_ttl(ttl).with_context(|| format!("IP_TTL {ttl}"))?;
            sock.send_to(format!("sfc datagram {i}").as_bytes(), to)
                .context("send datagram")?;
            std::thread::sleep(gap);
        }
        Ok(ttls.len())
    })?
}

/// What [`flood`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloodOutcome {
    pub sent: usize,
    /// Distinct source ports (new 5-tuples) used.
    pub flows: usize,
}

/// Sends `per_flow` datagrams to `to` from each of `flows` new sockets in namespace `ns` (each
/// its own ephemeral source port, so its own 5-tuple; one open at a time), as fast as they go,
/// for at most `limit`.
pub fn flood(
    ns: &str,
    to: SocketAddr,
    flows: usize,
    per_flow: usize,
    limit: Duration,
) -> Result<FloodOutcome> {
    netns::in_netns(ns, || -> Result<FloodOutcome> {
        let deadline = Instant::now() + limit;
        let mut out = FloodOutcome::default();
        for _ in 0..flows {
            if Instant::now() > deadline {
                break;
            }
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("bind flood socket")?;
            out.flows += 1;
            for _ in 0..per_flow {
                // A full socket buffer is the sender being faster than the path: skip it.
                if sock.send_to(b"flood", to).is_ok() {
                    out.sent += 1;
                }
            }
        }
        Ok(out)
    })?
}
