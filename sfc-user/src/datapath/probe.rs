//! Health probes through the service functions (`health_check:` on a group), as OVN checks its
//! network functions: a UDP datagram (`sfc_common::probe`) sent into each member's ingress that
//! the datapath must see come back at its egress. A member that misses `failures` probes in a row
//! is reported down (its flows fail over); one that answers `recoveries` in a row is up again.
//!
//! What a function must do with a probe: forward it like chain traffic. A routing function needs
//! a route for the probe's `destination` out of its egress (for a chain towards a server, the
//! server's address) and must not drop its `source` (reverse-path filtering: give a `source`
//! routed through its ingress); a bridge-like function forwards it as it does any frame (its
//! destination MAC is the function's ingress MAC, as for chain traffic). A function that answers
//! probes itself, or drops UDP to port 24512 (0x5fc0), cannot be probed.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    os::fd::{AsRawFd as _, OwnedFd},
};

use aya::maps::{Array, MapData};
use etherparse::PacketBuilder;
use sfc_common::{limits::PROBE_PORT, maps::MAP_PROBES, probe};

use super::{
    DatapathError, Location, Result, State, netlink,
    maps::{map_err, typed},
};
use crate::model::HealthCheck;

/// One member to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub port_pair: String,
    pub id: u32,
    /// The ingress interface (probes are sent out of it, into the function).
    pub ifindex: u32,
    /// The function's MAC behind the ingress, and the ingress's own.
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub check: HealthCheck,
}

/// The members of every group with a health check in the applied state.
pub fn targets(state: &State) -> Vec<Target> {
    let mut out = Vec::new();
    for g in &state.model.port_pair_groups {
        let Some(check) = g.health_check else { continue };
        for &p in &g.port_pairs {
            let pp = &state.model.port_pairs[p];
            let (Some(id), Some(f)) = (state.ids.port_pairs.get(&pp.name), state.facts.get(&pp.ingress)) else { continue };
            let (Some(dst_mac), Ok(link)) = (crate::compile::sf_mac(pp.ingress_mac, f), netlink::link_by_index(f.ifindex, None)) else { continue };
            let Some(src_mac) = link.mac else { continue };
            out.push(Target { port_pair: pp.name.clone(), id: *id, ifindex: f.ifindex, dst_mac, src_mac, check });
        }
    }
    out
}

/// The Ethernet frame of probe `seq` for `t`.
pub fn frame(t: &Target, seq: u64) -> Vec<u8> {
    let payload = probe::payload(t.id, seq);
    let eth = PacketBuilder::ethernet2(t.src_mac, t.dst_mac);
    let mut out = Vec::with_capacity(80);
    let built = match (t.check.source, t.check.destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64).udp(PROBE_PORT, PROBE_PORT).write(&mut out, &payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64).udp(PROBE_PORT, PROBE_PORT).write(&mut out, &payload),
        // Validation keeps both of one family.
        _ => return Vec::new(),
    };
    if built.is_err() {
        out.clear();
    }
    out
}

/// A raw packet socket that sends frames out of an interface of this namespace.
pub struct Sender {
    fd: OwnedFd,
}

impl Sender {
    pub fn new() -> Result<Sender> {
        // No protocol: this socket only sends.
        let flags = rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK;
        let fd = rustix::net::socket_with(rustix::net::AddressFamily::PACKET, rustix::net::SocketType::RAW, flags, None)
            .map_err(|e| DatapathError::Io { what: "opening a packet socket for probes".to_owned(), source: e.into() })?;
        Ok(Sender { fd })
    }

    /// Sends `frame` out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> std::io::Result<()> {
        // The kernel's ifindex is an int: a larger one names no interface.
        let index = i32::try_from(ifindex).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no interface has ifindex {ifindex}")))?;
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = rustix::net::AddressFamily::PACKET.as_raw();
        addr.sll_ifindex = index;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `addr` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap_or(0),
            )
        };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    }
}

/// The sequence number of the last probe back from each port pair (by id).
pub fn returned(loc: &Location, ids: &[u32]) -> Result<BTreeMap<u32, u64>> {
    let m: Array<MapData, u64> = typed(loc, MAP_PROBES)?;
    ids.iter().map(|&id| Ok((id, m.get(&id, 0).map_err(map_err(MAP_PROBES, "reading"))?))).collect()
}

/// One member's probe history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    /// The last probe sent (0: none yet).
    pub sent: u64,
    pub misses: u32,
    pub answers: u32,
    pub up: bool,
}

/// A member's health changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Down,
    Up,
}

impl Tracker {
    /// A member starts out up (link state is the other judge of that).
    pub fn new(first_seq: u64) -> Tracker {
        Tracker { sent: first_seq, misses: 0, answers: 0, up: true }
    }

    /// One interval later: did the last probe come back (`back` is the last sequence number
    /// seen at the egress)? Returns the change it makes, if any. The caller then sends `sent + 1`.
    pub fn observe(&mut self, back: u64, check: &HealthCheck) -> Option<Change> {
        if self.sent == 0 {
            return None;
        }
        if back >= self.sent {
            self.misses = 0;
            self.answers = self.answers.saturating_add(1);
            if !self.up && self.answers >= check.recoveries {
                self.up = true;
                return Some(Change::Up);
            }
        } else {
            self.answers = 0;
            self.misses = self.misses.saturating_add(1);
            if self.up && self.misses >= check.failures {
                self.up = false;
                return Some(Change::Down);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{Change, Target, Tracker, frame};
    use crate::model::HealthCheck;

    const CHECK: HealthCheck = HealthCheck {
        interval_ms: 100,
        failures: 3,
        recoveries: 2,
        source: std::net::IpAddr::V4(Ipv4Addr::new(169, 254, 95, 192)),
        destination: std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
    };

    #[test]
    fn down_after_failures_up_after_recoveries_no_flapping() {
        let mut t = Tracker::new(1);
        let mut step = |back: u64| {
            let c = t.observe(back, &CHECK);
            t.sent += 1;
            c
        };
        assert_eq!(step(1), None, "answered");
        assert_eq!(step(1), None, "one miss");
        assert_eq!(step(1), None, "two misses");
        assert_eq!(step(1), Some(Change::Down), "three misses");
        assert_eq!(step(1), None, "still down");
        assert_eq!(step(6), None, "one answer is not enough");
        assert_eq!(step(6), None, "a miss resets the answers");
        assert_eq!(step(8), None);
        assert_eq!(step(9), Some(Change::Up), "two answers in a row");
    }

    #[test]
    fn probe_frames_carry_the_member_and_sequence() {
        let t = Target { port_pair: "pp1".into(), id: 7, ifindex: 3, dst_mac: [2, 0, 0, 0, 0, 1], src_mac: [2, 0, 0, 0, 0, 2], check: CHECK };
        let f = frame(&t, 42);
        let p = etherparse::SlicedPacket::from_ethernet(&f).expect("a valid frame");
        let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else { panic!("UDP") };
        assert_eq!((udp.source_port(), udp.destination_port()), (sfc_common::limits::PROBE_PORT, sfc_common::limits::PROBE_PORT));
        assert_eq!(udp.payload(), sfc_common::probe::payload(7, 42));
        assert_eq!(&f[..6], &t.dst_mac);
    }
}
