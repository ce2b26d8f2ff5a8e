//! Every map the kernel programs use. All are pinned by name under the loader's pin directory, so
//! a restarted loader (or a second `sfc apply`) finds the same state.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use sfc_common::{
    trace::{InflightKey, LATENCY_BUCKETS, MAX_INFLIGHT, TRACE_RING_BYTES, TRACE_STATS, TraceConf},
    limits::{
        CSUM_BUF_LEN, DEFAULT_FLOW_TABLE_SIZE, IFACE_DIRECT_SLOTS, MAX_CHAINS, MAX_CLS_ENTRIES, MAX_CLS_RESULTS,
        HOP_SLOTS, IF_STATS_SLOTS, MAX_DROP_REASONS, MAX_FRAGS, MAX_GROUPS, MAX_HOPS, MAX_IFACES, MAX_PORT_PAIRS, MAX_REMOTES,
    },
    maps::{
        ChainEntry, ClsKey, ClsResult, Counter, EncapEntry, FLOW_STATS, FlowEntry, FlowKey, FragKey, GroupEntry,
        HopHome, HopStatsKey, IfStats, IfaceDirect, IfaceEntry, LbTable, Limits, MacEntry, Meta, PortPairEntry,
    },
    overlay::{OvlMac, OvlPort, RemoteEntry},
};

/// [0] -> the live configuration bank and generation. Written by the loader (one element: the
/// atomic switch point of an update), read first for every packet.
#[map]
pub static SFC_META: Array<Meta> = Array::pinned(1, 0);

/// banked ifindex -> role of the interface (source port, SF egress, ...). Written by the loader, read per
/// packet to decide what to do.
#[map]
pub static SFC_IFACES_V4: HashMap<u32, IfaceEntry> = HashMap::pinned(MAX_IFACES * 2, 0);

/// `iface_direct_slot(bank, ifindex)` -> the interface and its entry: `SFC_IFACES_V4` in array
/// slots, whose lookup the verifier inlines (the hash lookup of every packet cost it about 16 ns
/// of 120). Written by the loader with the hash; `iface::find` asks the hash when the slot
/// holds another interface or none.
#[map]
pub static SFC_IFACES_DIR: Array<IfaceDirect> = Array::pinned(IFACE_DIRECT_SLOTS * 2, 0);

/// Classifier trie: (class, field bits) -> next class. Written by the loader (compiled from the
/// flow classifiers), read by `classify` with one lookup per field.
#[map]
pub static SFC_CLS: LpmTrie<ClsKey, u32> = LpmTrie::pinned(MAX_CLS_ENTRIES * 2, 0);

/// Classifier hash, asked before the trie at every stage: (class, whole field) -> next class for
/// full-length prefixes, (class, zeros) -> next class for a `CLS_ANY_BIT` class (its only entry
/// is "any"). Written by the loader, read by `classify`. Allocated on demand.
#[map]
pub static SFC_CLS_HASH: HashMap<ClsKey, u32> =
    HashMap::pinned(MAX_CLS_ENTRIES * 2, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Final class -> chain the packet enters. Written by the loader, read by `classify`.
#[map]
pub static SFC_CLS_RES: HashMap<u32, ClsResult> = HashMap::pinned(MAX_CLS_RESULTS * 2, 0);

/// `chain_id` -> ordered port pair groups. Written by the loader, read when a flow is created.
#[map]
pub static SFC_CHAINS: HashMap<u32, ChainEntry> = HashMap::pinned(MAX_CHAINS * 2, 0);

/// group id -> member count, hashed fields, failure policy and a tap group's sampling. Written
/// by the loader, read by `lb` and the tap copies.
#[map]
pub static SFC_GROUPS_V2: HashMap<u32, GroupEntry> = HashMap::pinned(MAX_GROUPS * 2, 0);

/// Per-CPU packet counter of each tap group (group id, not banked): `GroupEntry::tap_every`.
#[map]
pub static SFC_TAP_COUNT: PerCpuArray<u32> = PerCpuArray::pinned(MAX_GROUPS, 0);

/// Banked group id -> the group's consistent-hash table, whole (`LbTable`). Written by the loader
/// (Maglev tables), read by `lb`. Allocated on demand: the kernel's direct map holds the tables
/// (no page walk into a big vmalloc area, as a preallocated map's would need).
#[map]
pub static SFC_LB_V2: HashMap<u32, LbTable> = HashMap::pinned(MAX_GROUPS * 2, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// port pair id -> ingress interface and the SF's MAC behind it (ingress ifindex 0: no port
/// pair). Written by the loader, read by `steer` at every hop: an array, so the verifier inlines
/// the lookup (no hashing on the per-packet path).
#[map]
pub static SFC_PORT_PAIRS2: Array<PortPairEntry> = Array::pinned(MAX_PORT_PAIRS, 0);

/// port pair id -> the header an SFC-aware member gets (`PP_F_ENCAP`). Written by the loader,
/// read by `encap::push` for packets sent into such a member.
#[map]
pub static SFC_ENCAP: Array<EncapEntry> = Array::pinned(MAX_PORT_PAIRS, 0);

/// The port pair `id`, if installed.
#[inline(always)]
pub fn port_pair(id: u32) -> Option<&'static PortPairEntry> {
    SFC_PORT_PAIRS2.get(id).filter(|p| p.ingress_ifindex != 0)
}

/// 5-tuple -> chain and member per hop. Written by the datapath when a flow is classified (and
/// pruned by LRU), read at every hop; the loader reads it for `sfc flows`. Size is set at load.
#[map]
pub static SFC_FLOWS_V2: LruHashMap<FlowKey, FlowEntry> =
    LruHashMap::pinned(DEFAULT_FLOW_TABLE_SIZE, 0);

/// (chain, hop, port pair, direction) -> packets/bytes sent into that member (per CPU). Written
/// by the datapath, read by `sfc stats`.
#[map]
pub static SFC_HOP_STATS: PerCpuHashMap<HopStatsKey, Counter> =
    PerCpuHashMap::pinned(MAX_CHAINS * MAX_HOPS as u32 * 2, 0);

/// Port pair id -> the hop whose counters the tc program keeps in `SFC_HOP_SLOTS` (`HopHome`).
/// Written by the loader.
#[map]
pub static SFC_HOP_HOMES: Array<HopHome> = Array::pinned(MAX_PORT_PAIRS, 0);

/// `HopHome::slot * 2 + dir` -> packets/bytes sent into that member at its home hop (per CPU).
/// Written by the tc program, read by `sfc stats` (zeroed by the loader before a slot counts
/// another hop).
#[map]
pub static SFC_HOP_SLOTS: PerCpuArray<Counter> = PerCpuArray::pinned(HOP_SLOTS * 2, 0);

/// Slot -> the hop it counts (`dir` 0). Written by the loader, read by `sfc stats`; the program
/// never reads it.
#[map]
pub static SFC_HOP_KEYS: HashMap<u32, HopStatsKey> = HashMap::pinned(HOP_SLOTS, 0);

/// Fragmented packet -> the flow key its first fragment was steered with. Written by the
/// datapath on a first fragment, read for later fragments (which carry no ports); LRU-pruned.
#[map]
pub static SFC_FRAGS_V2: LruHashMap<FragKey, FlowKey> = LruHashMap::pinned(MAX_FRAGS, 0);

/// ifindex -> classified/unclassified/from-SF/malformed packets (per CPU) of interfaces in XDP
/// mode (`PacketCtx::SLOT_COUNTERS`) and of the overlay device, which has no `IfaceEntry`.
/// Read by `sfc stats`, which adds `SFC_IF_STATS_V3`'s slots.
#[map]
pub static SFC_IF_STATS_V2: PerCpuHashMap<u32, IfStats> = PerCpuHashMap::pinned(MAX_IFACES, 0);

/// `IfaceEntry::stats_slot` -> what the tc program saw on the interface (per CPU): an array
/// slot, whose lookup the verifier inlines, instead of a hash lookup per packet. Written by the
/// tc program, read by `sfc stats` (zeroed by the loader before a slot counts another interface).
#[map]
pub static SFC_IF_STATS_V3: PerCpuArray<IfStats> = PerCpuArray::pinned(IF_STATS_SLOTS, 0);

/// drop reason -> packets (per CPU). Written by the datapath, read by `sfc stats`.
#[map]
pub static SFC_DROPS: PerCpuArray<u64> = PerCpuArray::pinned(MAX_DROP_REASONS, 0);

/// Per-packet working memory: the parsed flow key and a flow entry under construction. In a map,
/// not on the 512-byte stack, where LLVM would split the address arrays into per-byte spills.
/// Private to the program (not pinned); index 0 only.
#[repr(C)]
pub struct Scratch {
    /// What this packet's hop decision was, for `trace::emit`.
    pub note: Note,
    pub key: FlowKey,
    pub flow: FlowEntry,
    /// The reverse direction of a symmetric chain's new flow.
    pub rkey: FlowKey,
    pub rflow: FlowEntry,
    pub frag: FragKey,
    /// The tap copies this packet's hop decision asks for (`steer::copy_to_taps`).
    pub taps: Taps,
    /// The header an SFC-aware member sent back with this packet (`encap::pop`).
    pub decap: crate::encap::Decap,
}

/// A packet's flow path, for the tap copies the entry point makes once steering decided
/// (`steer::copy_to_taps`): the tap hops of `members` from `from` up to (not including) `next`
/// get copies. Filled only for flows whose chain has taps (`FLOW_F_TAPS`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Taps {
    /// The interface of the decision (0: no copies; a stale record is not this packet's).
    pub ifindex: u32,
    pub bank: u32,
    pub chain_id: u32,
    pub from: u8,
    pub next: u8,
    pub n_hops: u8,
    pub reverse: u8,
    pub present: u16,
    pub _pad: u16,
    pub members: [u16; sfc_common::limits::MAX_HOPS],
}

/// A packet's hop decision, noted by steering for the trace (`trace::emit`), which takes it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Note {
    /// The packet's ingress interface (a note of another interface is not this packet's).
    pub ifindex: u32,
    /// `TV_*`, 0: no hop decision (not a chain packet).
    pub verdict: u8,
    pub dir: u8,
    pub si: u8,
    pub _pad: u8,
    pub chain_id: u32,
    pub hop: u32,
    pub port_pair: u32,
    pub target: u32,
    /// `Parsed::fp` (1-in-N sampling).
    pub fp: u32,
}

#[map]
pub static SFC_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The entry of the interface the packet arrived on, as `iface::find` found it. Private to
/// the program; index 0 only. A map of its own, not a field of `Scratch`: steering reads it
/// through a shared reference while it writes the scratch (and a copy on the stack would give
/// the verifier 28 more bytes of state to tell apart: 270,000 more instructions).
#[map]
pub static SFC_IFACE_BUF: PerCpuArray<IfaceEntry> = PerCpuArray::with_max_entries(1, 0);

/// ifindex -> the same ifindex: every interface an XDP program may redirect to (SF ingresses and
/// egresses, logical source and destination ports). Written by the loader, read by the XDP
/// entry point (`bpf_redirect_map`, so the kernel batches transmissions). Not banked: an entry is
/// added before a generation needs it and removed once neither live generation does.
#[map]
pub static SFC_DEVMAP: DevMapHash = DevMapHash::pinned(MAX_IFACES, 0);

/// [0] -> limits (the new-flow rate cap). Written by the loader, read when a flow is created.
#[map]
pub static SFC_LIMITS: Array<Limits> = Array::pinned(1, 0);

/// `FLOW_STAT_*` -> flow entries created, new flows capped (per CPU), entries the loader removed.
/// Written by the datapath (and the loader, for removals), read by `sfc stats` and metrics.
#[map]
pub static SFC_FLOW_STATS: PerCpuArray<u64> = PerCpuArray::pinned(FLOW_STATS, 0);

/// port pair id -> the sequence number of the last health probe that came back out of its
/// egress (`sfc_common::probe`). Written by the datapath, read by `sfc run`'s prober.
#[map]
pub static SFC_PROBES: Array<u64> = Array::pinned(MAX_PORT_PAIRS, 0);

/// This CPU's new-flow count in the current second, for the rate cap. Private to the program.
#[repr(C)]
pub struct RateWindow {
    pub second: u64,
    pub count: u32,
}

#[map]
pub static SFC_RATE: PerCpuArray<RateWindow> = PerCpuArray::with_max_entries(1, 0);

/// One chunk of a transport header and payload being summed (`csum::l4_sum`). Private to the
/// program; index 0 only.
#[map]
pub static SFC_CSUM_BUF: PerCpuArray<[u8; CSUM_BUF_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// ifindex -> the source MAC of the last unicast frame that arrived on an `IF_F_LEARN` interface
/// (a VM's, behind a tap). Written here, read by the loader (see `sfc_common::maps::MacEntry`).
#[map]
pub static SFC_MACS: HashMap<u32, MacEntry> = HashMap::pinned(MAX_IFACES, 0);

/// Stand-in ifindex -> the host an interface lives on (`sfc_common::overlay`). Written by the
/// loader, read by `overlay::send`.
#[map]
pub static SFC_REMOTES: HashMap<u32, RemoteEntry> = HashMap::pinned(MAX_REMOTES, 0);

/// MAC -> the local interface a frame from the overlay is handed to. Written by the loader,
/// read by `sfc_tc_overlay`.
#[map]
pub static SFC_OVL_PORTS: HashMap<OvlMac, OvlPort> = HashMap::pinned(MAX_IFACES, 0);

/// Trace events for `sfc trace` (see `sfc_common::trace`).
#[map]
pub static SFC_TRACE: RingBuf = RingBuf::pinned(TRACE_RING_BYTES, 0);

/// [0]: what to trace (written by `sfc trace`) and how often to time SFs (by `sfc apply`).
#[map]
pub static SFC_TRACE_CONF: Array<TraceConf> = Array::pinned(1, 0);

/// Events emitted and lost, per CPU (`TS_*`).
#[map]
pub static SFC_TRACE_STATS: PerCpuArray<u64> = PerCpuArray::pinned(TRACE_STATS, 0);

/// This CPU's events in the current second, for the trace budget. Private to the program.
#[map]
pub static SFC_TRACE_RATE: PerCpuArray<RateWindow> = PerCpuArray::with_max_entries(1, 0);

/// SF latency histograms, per CPU: `latency_slot(port_pair, dir) * LATENCY_BUCKETS + bucket`.
#[map]
pub static SFC_LATENCY: PerCpuArray<u64> = PerCpuArray::pinned(MAX_PORT_PAIRS * 2 * LATENCY_BUCKETS, 0);

/// Sampled packets inside service functions: when each was sent in.
#[map]
pub static SFC_INFLIGHT: LruHashMap<InflightKey, u64> = LruHashMap::pinned(MAX_INFLIGHT, 0);
