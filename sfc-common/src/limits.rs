//! Bounds shared by the verifier-facing loops and the validator. Defined once, here.

/// 802.1Q / 802.1ad tags walked before giving up on a frame.
pub const MAX_VLAN_DEPTH: usize = 2;
/// IPv6 extension headers walked before giving up on finding the transport header.
pub const MAX_IPV6_EXT_HEADERS: usize = 6;
/// Port pair groups in one chain (= hops). A flow records one member per hop. 8, not 16: the
/// verifier's work grows steeply with the unrolled per-hop code (measured on 6.18: 232k
/// processed instructions at 8 hops, 830k at 16, against a limit of 1M).
pub const MAX_HOPS: usize = 8;
// Hop indexes are masked with MAX_HOPS - 1 for the verifier.
const _: () = assert!(MAX_HOPS.is_power_of_two());
/// Highest `chain_id` (networking-sfc allows 1..=65535; the SPI would allow 24 bits).
pub const MAX_CHAIN_ID: u32 = 65_535;
/// Port pair ids are `u16` inside a flow entry; `PORT_PAIR_NONE` marks an empty hop slot.
pub const MAX_PORT_PAIRS: u32 = 4_096;
pub const PORT_PAIR_NONE: u16 = u16::MAX;
/// Port pair groups across all chains.
pub const MAX_GROUPS: u32 = 1_024;
/// Members in one port pair group.
pub const MAX_GROUP_MEMBERS: u32 = 64;
/// Buckets in a group's consistent-hash (Maglev) table. Prime, and >= 15x `MAX_GROUP_MEMBERS`
/// so each member's share is within one bucket (~0.1%) of its weight.
pub const LB_TABLE_SIZE: u32 = 1_021;
/// Chains installed at once.
pub const MAX_CHAINS: u32 = 4_096;
/// Classifier trie entries (all stages together); the trie allocates on demand.
pub const MAX_CLS_ENTRIES: u32 = 1 << 20;
/// Distinct classifier results (one per final class).
pub const MAX_CLS_RESULTS: u32 = 1 << 18;
/// Interfaces on other hosts (multi-host: `sfc run --etcd`) get stand-in ifindexes from here
/// up, below the classifier's reclassification bit: no local interface has one, so the
/// datapath knows them for what they are (`SFC_REMOTES`: sent over the overlay).
pub const REMOTE_IFINDEX_BASE: u32 = 1 << 28;
/// Remote interfaces known at once (`SFC_REMOTES`).
pub const MAX_REMOTES: u32 = 16_384;
/// The VXLAN UDP port of the overlay between hosts (IANA's).
pub const OVERLAY_PORT: u16 = 4789;
/// Interfaces sfc attaches to.
pub const MAX_IFACES: u32 = 4_096;
/// Slots per bank of `SFC_IFACES_DIR` (a power of two, twice `MAX_IFACES`): interfaces share a
/// slot when their ifindexes are a multiple of it apart, which happens on a host that has made
/// many thousands of interfaces since it started (ifindexes keep growing); those are found in
/// the hash.
pub const IFACE_DIRECT_SLOTS: u32 = MAX_IFACES * 2;
const _: () = assert!(IFACE_DIRECT_SLOTS.is_power_of_two());
/// Slots of `SFC_IF_STATS_V3`: one for every interface in either bank (`SFC_IFACES_V4` holds
/// `MAX_IFACES` per bank), and slot 0, no interface's. `IfaceEntry::stats_slot` is a `u16`.
pub const IF_STATS_SLOTS: u32 = MAX_IFACES * 2 + 1;
const _: () = assert!(IF_STATS_SLOTS <= u16::MAX as u32 + 1);
/// Hop counter slots (`SFC_HOP_SLOTS` holds two per slot, forward and reverse): one per port pair
/// home, and as many for hops whose port pair's home moved while the model still has them;
/// slot 0 is none. A home finding none left uses `SFC_HOP_STATS`.
pub const HOP_SLOTS: u32 = MAX_PORT_PAIRS * 2 + 1;
const _: () = assert!(HOP_SLOTS <= u16::MAX as u32 + 1);
/// Default flow table size; `sfc apply --flow-table-size` overrides it at load time.
pub const DEFAULT_FLOW_TABLE_SIZE: u32 = 65_536;
/// UDP port (source and destination) of health probes (`sfc_common::probe`).
pub const PROBE_PORT: u16 = 0x5fc0;

/// Default new-flow rate cap: new flow entries per CPU per second (Katran's flood guard figure,
/// 125k new connections per second per core). Past it new flows are steered without an entry.
pub const DEFAULT_NEW_FLOW_RATE: u32 = 125_000;
/// Drop reason slots (see `DropReason`); grow-only.
pub const MAX_DROP_REASONS: u32 = 32;
/// Fragmented packets in flight whose later fragments are still expected.
pub const MAX_FRAGS: u32 = 8_192;
/// XDP checksum completion (`sfc-ebpf/src/csum.rs`) sums the transport bytes in chunks of this
/// size (at most 512: `bpf_csum_diff`'s limit) ...
pub const CSUM_CHUNK: usize = 512;
/// ... and at most this many: 4,096 bytes, more than a veth frame can carry to an XDP program
/// without multi-buffer support (a page less headroom).
pub const MAX_CSUM_CHUNKS: usize = 8;
/// The scratch buffer for one chunk, with room for zero padding to whole 32-bit words.
pub const CSUM_BUF_LEN: usize = CSUM_CHUNK + 8;

// ---- the flow table's limits and counters ----------------------------------------------------

/// `SFC_LIMITS[0]`: limits the loader sets for the datapath.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// New flow entries each CPU may create per second (0: no cap). Past it, a new flow is still
    /// steered (its path computed as for an entry, statelessly) but not stored, so a flood of
    /// new 5-tuples cannot evict established flows' stickiness (Katran's new-connection rate
    /// limit, per CPU as there). Counted as `FLOW_STAT_CAPPED`.
    pub new_flows_per_sec: u32,
    #[expect(clippy::pub_underscore_fields, reason = "explicit repr(C) padding, see STYLE.md")]
    pub _pad: u32,
}
const _: () = assert!(size_of::<Limits>() == 8);

/// `SFC_FLOW_STATS` (per-CPU array of u64) slots.
/// Flow entries created for a new key (not a re-resolution of an existing one).
pub const FLOW_STAT_CREATED: u32 = 0;
/// New flows steered without an entry: over `Limits::new_flows_per_sec`.
pub const FLOW_STAT_CAPPED: u32 = 1;
/// Entries the loader removed (expired, closed or flushed); kept in CPU 0's slot. With the two
/// above and the table's fill, what the LRU evicted: created - removed - entries.
pub const FLOW_STAT_REMOVED: u32 = 2;
/// Slots of `SFC_FLOW_STATS`.
pub const FLOW_STATS: u32 = 4;
