//! The datapath's counters: per interface (`IfStats`), per hop of a chain (`HopStatsKey` ->
//! `Counter`, in an array slot where the port pair's `HopHome` says so), all per CPU.

/// `SFC_IF_STATS_V3` (per-CPU) slot, and `SFC_IF_STATS_V2` entry: what the program saw on an
/// interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfStats {
    /// New flows classified into a chain at this logical source port, and their later packets.
    pub classified: u64,
    /// Packets left untouched (no classifier matched, not IP, not a chain flow).
    pub unclassified: u64,
    /// Packets that came back from a service function and were steered on.
    pub from_sf: u64,
    /// Packets the parser could not read (truncated, bogus lengths); passed untouched.
    pub malformed: u64,
    /// Packets back from a service function whose flow entry was gone (evicted) or belonged to
    /// another path: their path was recomputed from the configuration (also in `from_sf`).
    pub recomputed: u64,
}
const _: () = assert!(size_of::<IfStats>() == 40);

/// `HopStatsKey::dir`.
pub const DIR_FORWARD: u32 = 0;
pub const DIR_REVERSE: u32 = 1;

/// `SFC_HOP_STATS` key (per-CPU): packets sent into a member at a hop of a chain.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopStatsKey {
    pub chain_id: u32,
    /// 0-based position of the group in the chain (SI = 255 - hop), in both directions.
    pub hop: u32,
    pub port_pair: u32,
    /// `DIR_FORWARD`, or `DIR_REVERSE` for the reverse path of a symmetric chain.
    pub dir: u32,
}
const _: () = assert!(size_of::<HopStatsKey>() == 16);

/// `SFC_HOP_HOMES` value, by port pair id: the one hop (`chain_id`, `hop`) whose counters of the
/// port pair the tc program keeps in `SFC_HOP_SLOTS` (at `slot * 2 + dir`: an array slot, no hash
/// lookup); its other hops, if its group is in more than one chain, go to `SFC_HOP_STATS`. The
/// loader gives a home the same slot for as long as the model has that hop (`sfc stats` adds both
/// maps). `slot` 0: no home.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HopHome {
    pub chain_id: u32,
    pub hop: u16,
    pub slot: u16,
}
const _: () = assert!(size_of::<HopHome>() == 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(size_of::<Counter>() == 16);

impl Counter {
    /// `packets` and `bytes` more: one packet in the datapath, another CPU's or map's counts in
    /// the readers.
    #[expect(clippy::inline_always, reason = "used per packet in the BPF program")]
    #[inline(always)]
    pub fn add(&mut self, packets: u64, bytes: u64) {
        self.packets += packets;
        self.bytes += bytes;
    }
}
