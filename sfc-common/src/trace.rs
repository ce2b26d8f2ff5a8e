//! Path tracing and the time packets spend in service functions: the configuration `sfc trace`
//! writes, the events the kernel programs emit into a ring buffer, and the latency histogram's
//! layout.
//!
//! Tracing is off until `sfc trace` switches it on (`TraceConf::enabled`); then every hop
//! decision of a chain packet that passes the filters (chain, addresses, protocol, ports, a
//! 1-in-N sample) becomes one `TraceEvent`, within a per-CPU budget of events per second.
//! Events over the budget or that find the ring full are counted (`TraceStats`), never silently
//! missing.
//!
//! SF latency: when a packet is sent into a member and its fingerprint (`Parsed::fp` in the
//! kernel program: bytes routing does not change) is sampled (`fp % latency_every == 0`), the
//! time is remembered under (fingerprint, member, direction); when the packet comes back out of
//! the member the difference goes into a log2 histogram per member and direction.

#![expect(clippy::pub_underscore_fields, reason = "explicit repr(C) padding, see STYLE.md")]

use core::mem::size_of;

use crate::maps::FlowKey;

/// The ring buffer of `TraceEvent`s (pinned: `sfc trace` reads it).
pub const MAP_TRACE: &str = "SFC_TRACE";
/// `[0]`: the `TraceConf`.
pub const MAP_TRACE_CONF: &str = "SFC_TRACE_CONF";
/// Per-CPU `u64` counters, indexed by `TS_*`.
pub const MAP_TRACE_STATS: &str = "SFC_TRACE_STATS";
/// Per-CPU `u64` histogram buckets: `latency_slot(port_pair, dir) * LATENCY_BUCKETS + bucket`.
pub const MAP_LATENCY: &str = "SFC_LATENCY";
/// (fingerprint, member, direction) -> when the sampled packet was sent into the member.
pub const MAP_INFLIGHT: &str = "SFC_INFLIGHT";

/// Ring buffer size in bytes (a power of two, a multiple of the page size): 4,096 events of 96
/// bytes with room to spare.
pub const TRACE_RING_BYTES: u32 = 1 << 20;
/// Sampled packets inside service functions at once (an LRU: a packet an SF drops is forgotten).
pub const MAX_INFLIGHT: u32 = 16_384;
/// Histogram buckets: bucket `b` counts times in `[2^b, 2^(b+1))` units of 1,024 ns (bucket 0
/// also everything shorter); the last bucket everything from about 2.2 s on.
pub const LATENCY_BUCKETS: u32 = 32;
/// Nanoseconds per histogram unit (a shift, not a division, in the kernel).
pub const LATENCY_UNIT_SHIFT: u32 = 10;
/// Default sampling of SF latency: 1 packet in 16 (by fingerprint).
pub const DEFAULT_LATENCY_EVERY: u32 = 16;

/// `TraceConf::filters` bits: which fields must match.
pub const TF_SRC: u32 = 1 << 0;
pub const TF_DST: u32 = 1 << 1;
pub const TF_PROTO: u32 = 1 << 2;
pub const TF_SPORT: u32 = 1 << 3;
pub const TF_DPORT: u32 = 1 << 4;
pub const TF_CHAIN: u32 = 1 << 5;

/// `SFC_TRACE_CONF[0]`. All zero: tracing off, latency sampling off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceConf {
    /// Nonzero: emit events.
    pub enabled: u32,
    /// `TF_*` bits.
    pub filters: u32,
    pub chain_id: u32,
    /// Emit one matching packet in N (by fingerprint); 0 or 1: every one.
    pub sample_every: u32,
    /// Events per CPU per second; past it they are counted as lost. 0: no budget.
    pub budget_per_sec: u32,
    /// SF latency: sample packets whose fingerprint is a multiple of this; 0: off.
    pub latency_every: u32,
    /// Addresses as in `FlowKey` (IPv4 in the first 4 bytes), with `family`.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Network byte order, as in `FlowKey`.
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<TraceConf>() == 64);

/// `skb->mark` of a `sfc trace --probe` packet (a `BPF_PROG_TEST_RUN` copy, never on a wire):
/// tap copies of it are traced, not sent.
pub const PROBE_MARK: u32 = 0x5fc0_7ace;

/// `TraceEvent::verdict`: what the program did with the packet.
pub const TV_MEMBER: u8 = 1;
/// Delivered to the chain's logical destination port.
pub const TV_DELIVER: u8 = 2;
/// The chain is done, handed back to the host (no logical destination port).
pub const TV_HOST: u8 = 3;
/// Dropped, `TraceEvent::reason` says why (a `DropReason`).
pub const TV_DROP: u8 = 4;
/// A copy was sent to a tap group's member (`target`, `port_pair`, `hop`); the packet itself
/// went on (its own event follows).
pub const TV_TAP: u8 = 5;

/// One hop decision.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceEvent {
    /// `bpf_ktime_get_ns` (monotonic, since boot).
    pub ts_ns: u64,
    /// Where the packet arrived, and where it was sent (0: the host, or dropped).
    pub ifindex: u32,
    pub target: u32,
    pub chain_id: u32,
    /// The member's position in the chain (with `TV_MEMBER`), counted from 0 in the forward
    /// direction whatever the direction.
    pub hop: u32,
    pub port_pair: u32,
    /// Bytes of the packet.
    pub len: u32,
    pub verdict: u8,
    /// With `TV_DROP`: the `DropReason`.
    pub reason: u8,
    /// `DIR_FORWARD` / `DIR_REVERSE` (with `TV_MEMBER`).
    pub dir: u8,
    /// Service index as RFC 8300 counts it: 255 when the packet enters the chain, one less
    /// per service function it has been through.
    pub si: u8,
    pub key: FlowKey,
    /// The packet's fingerprint (bytes routing does not change): with `key`, what tells one
    /// packet's events from another's.
    pub fp: u32,
    pub _pad: [u8; 4],
}
const _: () = assert!(size_of::<TraceEvent>() == 88);

/// `SFC_TRACE_STATS` indexes.
pub const TS_EMITTED: u32 = 0;
/// Over the per-CPU budget.
pub const TS_LOST_BUDGET: u32 = 1;
/// The ring was full (the reader is behind).
pub const TS_LOST_FULL: u32 = 2;
pub const TRACE_STATS: u32 = 3;

/// `SFC_INFLIGHT` key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InflightKey {
    pub fp: u32,
    /// `latency_slot(port_pair, dir)`.
    pub slot: u32,
}
const _: () = assert!(size_of::<InflightKey>() == 8);

/// The histogram of port pair `port_pair` in direction `dir` (0 forward, 1 reverse).
pub const fn latency_slot(port_pair: u32, dir: u8) -> u32 {
    port_pair * 2 + (dir as u32 & 1)
}

/// The bucket of a time of `ns` nanoseconds.
pub const fn latency_bucket(ns: u64) -> u32 {
    let units = ns >> LATENCY_UNIT_SHIFT;
    if units == 0 {
        return 0;
    }
    let b = units.ilog2();
    if b >= LATENCY_BUCKETS { LATENCY_BUCKETS - 1 } else { b }
}

/// The upper bound of bucket `b` in seconds (the histogram's `le`); infinite for the last.
pub fn latency_bucket_le(b: u32) -> f64 {
    if b + 1 >= LATENCY_BUCKETS {
        return f64::INFINITY;
    }
    // 2^(b+1) units of 2^LATENCY_UNIT_SHIFT ns (no `powi` without std).
    let mut s = f64::from(1u32 << LATENCY_UNIT_SHIFT) / 1e9;
    for _ in 0..=b {
        s *= 2.0;
    }
    s
}

#[cfg(feature = "user")]
mod pod {
    use super::{InflightKey, TraceConf, TraceEvent};
    // SAFETY: #[repr(C)], integers and byte arrays only, explicit padding (sizes asserted above).
    unsafe impl aya::Pod for TraceConf {}
    unsafe impl aya::Pod for TraceEvent {}
    unsafe impl aya::Pod for InflightKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1_023), 0);
        assert_eq!(latency_bucket(1_024), 0);
        assert_eq!(latency_bucket(2_048), 1);
        assert_eq!(latency_bucket(4_095), 1);
        assert_eq!(latency_bucket(4_096), 2);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
        // A time is below its bucket's upper bound.
        for ns in [1_500u32, 10_000, 1_000_000, 123_456_789] {
            assert!(f64::from(ns) / 1e9 < latency_bucket_le(latency_bucket(u64::from(ns))), "{ns}");
        }
    }
}
