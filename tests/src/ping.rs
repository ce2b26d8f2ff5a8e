//! `ping`, in-process: ICMP echo requests from a thread inside a namespace over a raw socket,
//! one at a time, each waited for.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Slice, Icmpv4Type, Ipv4Slice};

use crate::{netns, traffic::Streak};

/// What a batch of ICMP echo requests achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingOutcome {
    pub sent: usize,
    /// Echo replies that came back (matching identifier and sequence number).
    pub replied: usize,
}

/// ICMP echo identifier of [`ping`]: the low bits of the pid, so that parallel test processes
/// tell their replies apart (a raw socket sees every ICMP packet of its namespace).
fn ping_id() -> u16 {
    (std::process::id() & 0xffff) as u16
}

/// `ping -c n` from namespace `ns` to `to`, in-process over a raw ICMP socket: `n` echo
/// requests one at a time (32 bytes of payload each), waiting up to a second for each reply;
/// stops after [`crate::traffic::MAX_CONSECUTIVE_FAILURES`] lost replies in a row.
pub fn ping(ns: &str, to: Ipv4Addr, n: usize) -> Result<PingOutcome> {
    netns::in_netns(ns, || -> Result<PingOutcome> {
        // SAFETY: socket(2) with constant arguments; the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        if fd < 0 {
            bail!("raw ICMP socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: SO_RCVTIMEO with a timeval of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                socklen::<libc::timeval>(),
            )
        };
        if rc != 0 {
            bail!("SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        }
        let dest = libc::sockaddr_in {
            sin_family: libc::sa_family_t::try_from(libc::AF_INET)?,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        let id = ping_id();
        let mut out = PingOutcome::default();
        let mut streak = Streak::default();
        for i in 0..n {
            let seq = u16::try_from(i).unwrap_or(u16::MAX);
            let request = echo_request(id, seq);
            // SAFETY: sendto with a buffer and a sockaddr_in we own, sizes passed along.
            let sent = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                    0,
                    (&raw const dest).cast(),
                    socklen::<libc::sockaddr_in>(),
                )
            };
            if sent < 0 {
                bail!("send echo request {i}: {}", std::io::Error::last_os_error());
            }
            out.sent += 1;
            let replied = wait_echo_reply(&sock, to, id, seq);
            out.replied += usize::from(replied);
            if !streak.record(replied) {
                break;
            }
        }
        Ok(out)
    })?
}

/// An ICMP echo request (type 8) with 32 bytes of payload, checksum and all (etherparse).
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let payload: Vec<u8> = (0..32u8).map(|b| b.wrapping_add(0x20)).collect();
    let header = Icmpv4Header::with_checksum(Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq }), &payload);
    let mut p = header.to_bytes().to_vec();
    p.extend_from_slice(&payload);
    p
}

/// The size of a socket argument, as the socket calls take it.
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).expect("socket structures are small")
}

/// Reads the raw socket for up to a second until the echo reply `id`/`seq` from `from` comes.
fn wait_echo_reply(sock: &OwnedFd, from: Ipv4Addr, id: u16, seq: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        // SAFETY: recv into a buffer we own, its length passed along.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        // A raw IPv4 socket receives the IP header too.
        let Ok(ip) = Ipv4Slice::from_slice(&buf[..n]) else { continue };
        if ip.header().source_addr() != from {
            continue;
        }
        let Ok(icmp) = Icmpv4Slice::from_slice(ip.payload().payload) else { continue };
        if icmp.icmp_type() == Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq }) {
            return true;
        }
    }
    false
}
