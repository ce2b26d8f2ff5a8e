//! Map names, keys and values. The kernel side declares the maps (`sfc-ebpf/src/maps.rs`), the
//! loader writes configuration maps and reads counters; names here are the pinned file names.

// `_pad` fields are STYLE's explicit padding: public so both sides can build the structs.
#![expect(clippy::pub_underscore_fields, reason = "explicit repr(C) padding, see STYLE.md")]

use core::mem::size_of;

use crate::limits::MAX_HOPS;

// ---- names (BPF object names: at most 15 bytes) -------------------------------------------

/// `_V2`: `IfaceEntry` grew the MAC behind the interface (delivery rewrites to it). `_V3`: and
/// the zone that scopes its flows. `_V4`: the same entries, now also in `MAP_IFACES_DIRECT`,
/// whose slots the tc program takes over the hash: a loader that wrote the hash alone would
/// leave them stale, and an older one does not find this name (it refuses the datapath).
pub const MAP_IFACES: &str = "SFC_IFACES_V4";
/// The same entries as `MAP_IFACES`, in array slots by ifindex (`IfaceDirect`): the tc program
/// finds an interface's role without hashing (the live bank's slots only: the loader rewrites
/// the other's in place), and asks the hash when the slot holds another interface or none
/// (`iface_direct_slot`).
pub const MAP_IFACES_DIRECT: &str = "SFC_IFACES_DIR";
pub const MAP_CLS: &str = "SFC_CLS";
pub const MAP_CLS_HASH: &str = "SFC_CLS_HASH";
pub const MAP_CLS_RES: &str = "SFC_CLS_RES";
pub const MAP_CHAINS: &str = "SFC_CHAINS";
pub const MAP_GROUPS: &str = "SFC_GROUPS_V2";
/// Per-CPU packet counters of tap groups (by group id, not banked) for `tap_every`.
pub const MAP_TAP_COUNT: &str = "SFC_TAP_COUNT";
/// `_V2`: one entry per group, its whole table (`LbTable`), where `SFC_LB` had one per bucket:
/// a new flow read that hash's 32 MiB bucket array at a random place at every hop.
pub const MAP_LB: &str = "SFC_LB_V2";
/// `2`: an array indexed by port pair id (was a hash; ids are small and dense). An all-zero
/// slot (ingress ifindex 0) is no port pair.
pub const MAP_PORT_PAIRS: &str = "SFC_PORT_PAIRS2";
/// `_V2`: `FlowKey` grew the zone, `FlowEntry` the loop guard's exit record.
pub const MAP_FLOWS: &str = "SFC_FLOWS_V2";
/// Hop counters not in an array slot (`HopHome`): XDP's, tap copies', a port pair's other hops.
pub const MAP_HOP_STATS: &str = "SFC_HOP_STATS";
/// Port pair id -> `HopHome`: where the tc program counts the port pair's home hop. Written by
/// the loader (`datapath::hop_slots`), read by the tc program.
pub const MAP_HOP_HOMES: &str = "SFC_HOP_HOMES";
/// `HopHome::slot * 2 + dir` -> `Counter` (per CPU). Written by the tc program, read by `sfc
/// stats` (zeroed by the loader before a slot counts another hop).
pub const MAP_HOP_SLOTS: &str = "SFC_HOP_SLOTS";
/// Slot -> the `HopStatsKey` (`dir` 0) it counts. Written by the loader, read by `sfc stats`;
/// the program never reads it.
pub const MAP_HOP_KEYS: &str = "SFC_HOP_KEYS";
/// `_V2`: `IfStats` grew `recomputed`. Since `_V3`: the counters of interfaces in XDP mode and
/// of the overlay device, by ifindex.
pub const MAP_IF_STATS: &str = "SFC_IF_STATS_V2";
/// `IfStats` by `IfaceEntry::stats_slot` (per-CPU array): an array slot instead of a hash
/// lookup per packet. `IF_STATS_SLOTS` slots; slot 0 is no interface's.
pub const MAP_IF_SLOTS: &str = "SFC_IF_STATS_V3";
pub const MAP_DROPS: &str = "SFC_DROPS";
/// `_V2`: `FragKey` and its value (`FlowKey`) grew the zone.
pub const MAP_FRAGS: &str = "SFC_FRAGS_V2";
pub const MAP_META: &str = "SFC_META";
pub const MAP_DEVMAP: &str = "SFC_DEVMAP";
pub const MAP_LIMITS: &str = "SFC_LIMITS";
pub const MAP_PROBES: &str = "SFC_PROBES";
pub const MAP_FLOW_STATS: &str = "SFC_FLOW_STATS";
/// MACs the datapath learnt behind interfaces flagged `IF_F_LEARN` (a VM behind a tap).
pub const MAP_MACS: &str = "SFC_MACS";
/// SFC-aware members' headers (`EncapEntry`), by port pair id.
pub const MAP_ENCAP: &str = "SFC_ENCAP";

/// Every map the loader pins, in a stable order.
pub const ALL_MAPS: [&str; 28] = [
    MAP_META,
    MAP_IFACES,
    MAP_IFACES_DIRECT,
    MAP_CLS,
    MAP_CLS_HASH,
    MAP_CLS_RES,
    MAP_CHAINS,
    MAP_GROUPS,
    MAP_LB,
    MAP_PORT_PAIRS,
    MAP_FLOWS,
    MAP_HOP_STATS,
    MAP_HOP_HOMES,
    MAP_HOP_SLOTS,
    MAP_HOP_KEYS,
    MAP_IF_STATS,
    MAP_IF_SLOTS,
    MAP_DROPS,
    MAP_FRAGS,
    MAP_DEVMAP,
    MAP_LIMITS,
    MAP_FLOW_STATS,
    MAP_PROBES,
    MAP_MACS,
    MAP_TAP_COUNT,
    MAP_ENCAP,
    crate::overlay::MAP_REMOTES,
    crate::overlay::MAP_OVL_PORTS,
];

/// Program names (the function names of the entry points).
pub const PROG_TC_INGRESS: &str = "sfc_tc_ingress";
/// XDP mode's steering program.
pub const PROG_XDP: &str = "sfc_xdp";
/// What XDP mode attaches to the far end of a veth it redirects into (see sfc-ebpf `main.rs`).
pub const PROG_XDP_PASS: &str = "sfc_xdp_pass";

// ---- generations ------------------------------------------------------------------------------
//
// Configuration maps are double-banked: every key of SFC_IFACES_V4, SFC_CLS, SFC_CLS_RES,
// SFC_CHAINS, SFC_GROUPS and SFC_LB_V2 carries a bank bit (SFC_IFACES_DIR has a half of the array
// per bank, `iface_direct_slot`). The loader writes the inactive bank in full, then flips
// `Meta` (one 8-byte array element) so the next packet sees the whole new configuration and
// no packet ever sees half of it. Port pairs are not banked: their ids are stable by name, and
// a removed one stays (draining) until its flows are done.

/// `SFC_META[0]`: which bank is live, and a generation bumped at every flip.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub bank: u32,
    pub generation: u32,
}
const _: () = assert!(size_of::<Meta>() == 8);

/// Bank bit of chain, group and interface keys.
pub const BANK_BIT_ID: u32 = 31;
/// Bank bit of classifier classes (stage-1 classes are ifindexes, below 2^30).
pub const BANK_BIT_CLASS: u32 = 30;

/// A chain id, group id or ifindex as keyed in `bank`.
#[expect(clippy::inline_always, reason = "used per packet in the BPF program")]
#[inline(always)]
pub const fn banked_id(bank: u32, id: u32) -> u32 {
    id | ((bank & 1) << BANK_BIT_ID)
}

/// A banked chain id, group id or ifindex: (bank, id). The inverse of `banked_id`.
pub const fn unbanked_id(key: u32) -> (u32, u32) {
    ((key >> BANK_BIT_ID) & 1, key & !(1 << BANK_BIT_ID))
}

/// A banked classifier class: (bank, class). The inverse of `banked_class`.
pub const fn unbanked_class(key: u32) -> (u32, u32) {
    ((key >> BANK_BIT_CLASS) & 1, key & !(1 << BANK_BIT_CLASS))
}

const _: () = {
    let (bank, id) = unbanked_id(banked_id(1, 4_095));
    assert!(bank == 1 && id == 4_095);
    let (bank, class) = unbanked_class(banked_class(1, CLASS_BASE + 9));
    assert!(bank == 1 && class == CLASS_BASE + 9);
};

/// A classifier class as keyed in `bank`.
#[expect(clippy::inline_always, reason = "used per packet in the BPF program")]
#[inline(always)]
pub const fn banked_class(bank: u32, class: u32) -> u32 {
    class | ((bank & 1) << BANK_BIT_CLASS)
}

// ---- interfaces ----------------------------------------------------------------------------

/// The interface is a flow classifier's `logical_source_port`: classify new flows here.
pub const ROLE_SOURCE: u32 = 1 << 0;
/// The interface is a port pair's `egress`: packets here come back from a service function.
pub const ROLE_SF_EGRESS: u32 = 1 << 1;
/// The interface is a port pair's `ingress`: reverse traffic of symmetric chains comes back here.
pub const ROLE_SF_INGRESS: u32 = 1 << 2;
/// The interface is a classifier's `logical_destination_port`: reverse traffic of symmetric
/// chains starts here.
pub const ROLE_DEST: u32 = 1 << 3;

/// `SFC_IFACES_V4`: banked ifindex -> what the interface is to sfc.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceEntry {
    /// `ROLE_*` bits.
    pub roles: u32,
    /// With `ROLE_SF_EGRESS` / `ROLE_SF_INGRESS`: the port pair the interface belongs to.
    pub port_pair: u32,
    /// `IF_F_*` bits.
    pub flags: u32,
    /// With `IF_F_MAC`: the MAC address of whatever receives frames sent out of the interface
    /// (the veth peer's). A packet delivered to a logical destination port is addressed to it:
    /// after routing SFs its destination MAC is the last SF's gateway, which the receiver would
    /// refuse as another host's once the frame is rebuilt there (XDP, or a plain redirect).
    pub peer_mac: [u8; 6],
    /// Where the interface's counters are in `SFC_IF_STATS_V3`: given by the loader, kept
    /// while the interface is in either bank (`compile::slots`). 0: none given.
    pub stats_slot: u16,
    /// The zone of the interface: flows are keyed by it (`FlowKey::zone`), so tenants that reuse
    /// addresses on separate interfaces never share a flow entry. The compiler puts every
    /// interface that one chain touches (its classifiers' ports, its members' ingresses and
    /// egresses) into one zone, merging chains that share a group, and numbers a zone by its
    /// lowest ifindex so that the number survives re-applies.
    pub zone: u32,
    /// With `ROLE_DEST`: the stage-1 class (`CLS_RECLASS_BIT` set, not banked) holding the
    /// classifiers of the symmetric chains delivering here. A reply arriving with no current
    /// reverse entry (evicted, or of an older generation) is classified by its forward (swapped)
    /// 5-tuple against it, as networking-sfc's reverse flow rules match it, and its path is
    /// recomputed. 0: none.
    pub reply_class: u32,
}
const _: () = assert!(size_of::<IfaceEntry>() == 28);

/// A slot of `MAP_IFACES_DIRECT`: the interface `ifindex` (0: none) and its entry, a copy of
/// its `MAP_IFACES` entry in the same bank. Of the interfaces of one bank that share a slot the
/// lowest ifindex has it; the others are found in the hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceDirect {
    pub ifindex: u32,
    pub entry: IfaceEntry,
}
const _: () = assert!(size_of::<IfaceDirect>() == 32);

/// The slot of `MAP_IFACES_DIRECT` that may hold interface `ifindex` of `bank`: the bank's
/// half of the array (its banks are halves, not a key bit), then the ifindex's low bits.
pub const fn iface_direct_slot(bank: u32, ifindex: u32) -> u32 {
    (bank & 1) * crate::limits::IFACE_DIRECT_SLOTS + (ifindex & (crate::limits::IFACE_DIRECT_SLOTS - 1))
}

/// `IfaceEntry::flags`: a veth whose peer is in another namespace; packets for it are handed to
/// the peer's ingress with `bpf_redirect_peer` instead of being transmitted.
pub const IF_F_PEER: u32 = 1 << 0;
/// `IfaceEntry::flags`: `peer_mac` is known.
pub const IF_F_MAC: u32 = 1 << 1;
/// `IfaceEntry::flags`: no veth peer tells the MAC behind the interface (a tap: a VM's NIC), so
/// the program learns it from the frames arriving there (`SFC_MACS`). Without `IF_F_MAC` too,
/// nothing is delivered to the interface (a `no_mac` drop) rather than sent to a wrong address.
pub const IF_F_LEARN: u32 = 1 << 2;
/// `IfaceEntry::flags`: an interface of a tap group's member (a passive service function).
/// Whatever IP packet the function sends back is dropped and counted (`tap_return`): a tap
/// receives copies and never puts anything into the chain.
pub const IF_F_TAP: u32 = 1 << 3;
/// `IfaceEntry::flags`: the egress of an SFC-aware member (`PP_F_ENCAP`): a frame it sends back
/// with the header sfc pushed (MPLS or NSH) has it read (the SI the function sent) and removed
/// before it is parsed. Only the XDP program can remove it (tc's `bpf_skb_adjust_room` refuses
/// an skb whose protocol is not IP): the loader attaches XDP to such an interface.
pub const IF_F_DECAP: u32 = 1 << 4;

/// `SFC_MACS`: ifindex -> the unicast source MAC of the last frame that arrived on an
/// `IF_F_LEARN` interface. Written by the datapath, read by the loader at every apply (and
/// polled by `sfc run` while a member waits for its MAC).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MacEntry {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<MacEntry>() == 8);


// ---- classification -------------------------------------------------------------------------
//
// Classification is a fixed pipeline of longest-prefix-match lookups in one LPM trie,
// one lookup per field (see sfc-ebpf/src/classify.rs for the scheme and why):
//   stage 1  class = ingress ifindex,  data = ethertype (2) + destination address (16)
//   stage 2  class = from stage 1,      data = source address (16)
//   stage 3  class = from stage 2,      data = IP protocol (1)
//   stage 4  class = from stage 3,      data = destination port (2, big endian)
//   stage 5  class = from stage 4,      data = source port (2, big endian)
// A stage whose class has `CLS_ANY_BIT` is one `SFC_CLS_HASH` lookup of (class, zeros); any
// other asks `SFC_CLS_HASH` for the whole field first and walks the trie only when that is not
// there (see sfc-user compile/cls.rs).
// The class after stage 5 indexes `SFC_CLS_RES`. Classes after stage 1 are allocated by the
// compiler from `CLASS_BASE` so they never collide with an ifindex.

/// First class id the compiler hands out; ids below it are ifindexes (stage 1). Bit 30 is the
/// bank bit, so a bank holds up to 2^30 classes.
pub const CLASS_BASE: u32 = 0x8000_0000;
/// Set in a stage-1 class that is not an ifindex but a reclassification class: the classifiers
/// of the chains a port pair group serves, whatever their logical source port
/// (`GroupEntry::reclass`). A packet back from a service function whose flow entry is gone is
/// classified against it, so its path is recomputed instead of the packet skipping the rest of
/// the chain. Ifindexes at or above this bit are refused by the compiler.
pub const CLS_RECLASS_BIT: u32 = 29;
/// Number of lookup stages.
pub const CLS_STAGES: usize = 5;
/// Bits of `ClsKey::class` (always matched in full).
pub const CLS_CLASS_BITS: u32 = 32;
/// Set in a class id (never a stage-1 class, an ifindex): every classifier the class stands for
/// takes any value of the next field, so the class has one entry, in `SFC_CLS_HASH` under
/// (class, zeros), and the stage is that one lookup. Allocated class ids count up from
/// `CLASS_BASE` below this bit (2^28 per bank).
pub const CLS_ANY_BIT: u32 = 28;
/// Bytes of `ClsKey::data`.
pub const CLS_DATA_LEN: usize = 20;

/// `SFC_CLS` LPM key data (the trie prepends the 32-bit prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClsKey {
    /// Previous stage's class (stage 1: the ingress ifindex), matched in full. Big endian so the
    /// trie's bit order and the value agree.
    pub class: [u8; 4],
    pub data: [u8; CLS_DATA_LEN],
}
const _: () = assert!(size_of::<ClsKey>() == 24);

/// `SFC_CLS_RES`: final class -> which chain a packet enters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClsResult {
    pub chain_id: u32,
    /// Index of the flow classifier in the compiled state (for `explain` and the map dumps;
    /// the datapath does not read it), or `CLS_CLASSIFIER_SHARED`.
    pub classifier: u32,
    /// `logical_destination_port` ifindex, 0 = hand back to the host after the last hop.
    pub dst_ifindex: u32,
    /// The classifier's `logical_source_port` ifindex: where a recomputed flow says it entered,
    /// and where replies of a symmetric chain are delivered.
    pub src_ifindex: u32,
}
const _: () = assert!(size_of::<ClsResult>() == 16);
/// `ClsResult::classifier` of a final class that several classifiers lead to: classifiers with
/// the same chain and ports share their classes, down to the result (`compile::incr`), so the
/// result cannot name one; `sfc explain` finds it in the model.
pub const CLS_CLASSIFIER_SHARED: u32 = u32::MAX;

// ---- chains, groups, port pairs -------------------------------------------------------------

/// `ChainEntry::flags`: install the reverse flow so replies cross the same members backwards.
pub const CHAIN_F_SYMMETRIC: u32 = 1 << 0;
/// `ChainEntry::flags` bits `CHAIN_TAPS_SHIFT..32`: bit `h` set when the group at hop `h` is a
/// tap group (`tap_enabled`): its member gets a copy of each packet (sampled), and the packet
/// itself goes on to the next hop without entering it.
pub const CHAIN_TAPS_SHIFT: u32 = 16;
/// Tap groups in a row (between two inline hops, or at either end) that one hop decision copies
/// to: a bound for the verifier, validated.
pub const MAX_TAPS_IN_A_ROW: usize = 4;

/// `SFC_CHAINS`: banked `chain_id` -> ordered groups (group ids are not banked here).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainEntry {
    pub n_hops: u32,
    pub flags: u32,
    /// Group id per hop; entries past `n_hops` are 0 and never read.
    pub groups: [u32; MAX_HOPS],
}
const _: () = assert!(size_of::<ChainEntry>() == 8 + 4 * MAX_HOPS);

/// Fields hashed to pick a group member (`lb_fields`).
pub const LB_IP_SRC: u32 = 1 << 0;
pub const LB_IP_DST: u32 = 1 << 1;
pub const LB_IP_PROTO: u32 = 1 << 2;
pub const LB_L4_SRC: u32 = 1 << 3;
pub const LB_L4_DST: u32 = 1 << 4;
pub const LB_DEFAULT: u32 = LB_IP_SRC | LB_IP_DST | LB_IP_PROTO | LB_L4_SRC | LB_L4_DST;
/// Each `LB_*` bit and its `lb_fields` name, in hash order.
pub const LB_FIELDS: [(u32, &str); 5] =
    [(LB_IP_SRC, "ip_src"), (LB_IP_DST, "ip_dst"), (LB_IP_PROTO, "ip_proto"), (LB_L4_SRC, "l4_src"), (LB_L4_DST, "l4_dst")];

/// `GroupEntry::failure_policy`.
pub const FAIL_CLOSED: u32 = 0;
pub const FAIL_OPEN: u32 = 1;

/// `SFC_GROUPS`: banked group id -> how to pick a member.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupEntry {
    /// Members currently usable; 0 means the group is down (apply `failure_policy`).
    pub n_members: u32,
    /// `LB_*` bits.
    pub lb_fields: u32,
    /// `FAIL_CLOSED` or `FAIL_OPEN`.
    pub failure_policy: u32,
    /// The stage-1 class (`CLS_RECLASS_BIT` set, not banked) holding the classifiers of every
    /// chain this group serves: what a packet coming back from a member is classified against
    /// when its flow entry is gone. 0: none (the packet cannot be placed; see steer.rs).
    pub reclass: u32,
    /// A tap group copies 1 packet in `tap_every` (counted per CPU; 0 or 1: every packet)...
    pub tap_every: u32,
    /// ... and of those, a packet when `bpf_get_prandom_u32() <= tap_threshold` (`u32::MAX`:
    /// always; a probability p is p * 2^32).
    pub tap_threshold: u32,
}
const _: () = assert!(size_of::<GroupEntry>() == 24);

/// `SFC_LB_V2` value (key: the banked group id): the group's consistent-hash table, bucket ->
/// port pair id, `PORT_PAIR_NONE` for a bucket with no member. A new flow reads one cache line
/// of it per hop, found with one lookup in a hash of at most `2 * MAX_GROUPS` entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbTable {
    pub members: [u16; crate::limits::LB_TABLE_SIZE as usize],
}
const _: () = assert!(size_of::<LbTable>() == 2 * crate::limits::LB_TABLE_SIZE as usize);

/// `PortPairEntry::flags`: the ingress is a veth whose peer is in another namespace, so the
/// packet can be handed straight to the peer's ingress with `bpf_redirect_peer`.
pub const PP_F_INGRESS_PEER: u32 = 1 << 0;
/// `PortPairEntry::flags`: the same for the egress (reverse direction of symmetric chains).
pub const PP_F_EGRESS_PEER: u32 = 1 << 1;
/// `PortPairEntry::flags`: removed from its group; existing flows keep it, new flows do not get it.
pub const PP_F_DRAINING: u32 = 1 << 2;
/// `PortPairEntry::flags`: an interface is down; flows move off it at their next packet.
pub const PP_F_DOWN: u32 = 1 << 3;
/// `PortPairEntry::flags`: the MAC behind one of its interfaces is not known yet (a VM behind a
/// tap that has sent nothing sfc saw): installed with `PP_F_DOWN` too, so no flow gets it.
pub const PP_F_NO_MAC: u32 = 1 << 4;
/// `PortPairEntry::flags`: a member of a tap group (it gets copies, sends nothing back).
pub const PP_F_TAP: u32 = 1 << 5;
/// `PortPairEntry::flags`: an SFC-aware member: packets sent into its ingress carry the header
/// its `SFC_ENCAP` entry describes, with the chain as SPI and the hop's SI.
pub const PP_F_ENCAP: u32 = 1 << 6;

// SFC-aware members' headers (`SFC_ENCAP`): their own module, re-exported here with the maps.
pub use crate::encap::{ENCAP_MPLS, ENCAP_NSH, ETH_P_MPLS_UC, ETH_P_NSH, EncapEntry};

/// `SFC_PORT_PAIRS`: port pair id -> where to send packets into the service function. Forward
/// traffic enters through `ingress` and comes back on `egress`; the reverse direction of a
/// symmetric chain enters through `egress` and comes back on `ingress`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortPairEntry {
    pub ingress_ifindex: u32,
    pub egress_ifindex: u32,
    /// MAC address of the service function's interface behind `ingress`.
    pub ingress_mac: [u8; 6],
    /// MAC address of the service function's interface behind `egress` (zero when unknown and
    /// not needed: no symmetric chain uses this port pair).
    pub egress_mac: [u8; 6],
    /// `PP_F_*` bits.
    pub flags: u32,
    /// The group the port pair belongs to (a port pair is in one group at most).
    pub group: u32,
}
const _: () = assert!(size_of::<PortPairEntry>() == 28);

// ---- flows ------------------------------------------------------------------------------------

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// `SFC_FLOWS_V2` key: the zone of the interface the packet arrived on, and the 5-tuple as it
/// appears in the packet. IPv4 addresses take the first four bytes of the 16; ports are in
/// network byte order (0 for protocols without ports).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    /// `FAMILY_V4` or `FAMILY_V6`.
    pub family: u8,
    pub _pad: [u8; 2],
    /// `IfaceEntry::zone`: the same 5-tuple in two zones is two flows (tenants reuse addresses).
    pub zone: u32,
}
const _: () = assert!(size_of::<FlowKey>() == 44);

/// `FlowEntry::flags`: this entry was installed for the reverse direction of a symmetric chain.
pub const FLOW_F_REVERSE: u8 = 1 << 0;
/// `FlowEntry::flags`: a TCP FIN or RST arrived at the entry port (`last_seen` says when); `sfc
/// run` removes the entry once the close grace is over. A new SYN clears it (port reuse).
pub const FLOW_F_CLOSING: u8 = 1 << 1;
/// `FlowEntry::flags`: the flow's chain has tap groups: the entry point copies its packets to
/// their members (`steer::copy_to_taps`).
pub const FLOW_F_TAPS: u8 = 1 << 2;

/// `SFC_FLOWS` value: the path a flow is pinned to.
///
/// A flow picked under an older generation is re-resolved at its entry port: members still in
/// the same group are kept, so its path changes only where the chain changed, and the old path
/// stays in `prev_members` so packets already inside the chain finish where they started.
/// `chain_id` 0 with no hops marks a flow no classifier matches any more (its old path is still
/// in `prev_members` for packets in flight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub chain_id: u32,
    /// Where to deliver after the last hop (0 = back to the host).
    pub dst_ifindex: u32,
    pub n_hops: u8,
    pub flags: u8,
    /// The IP TTL / hop limit of the packet that (re)resolved the flow at its entry port (0:
    /// unknown, as for a path recomputed at a service function). Tells an old path from a new
    /// one for packets in flight across a re-resolution (steer.rs `came_by_prev`).
    pub ttl: u8,
    pub prev_n_hops: u8,
    /// `Meta::generation` the members were picked under.
    pub generation: u32,
    /// Bit h set: `members[h]` is a port pair (not skipped). Lets the datapath count the SFs on
    /// a path prefix without a loop.
    pub present: u16,
    pub prev_present: u16,
    /// The interface the flow enters the chain on (its logical source port, or for a reverse
    /// entry the logical destination port). Only packets arriving there start or re-resolve it:
    /// the same 5-tuple on another port is another tenant's traffic.
    pub in_ifindex: u32,
    /// Port pair id picked at each hop; `PORT_PAIR_NONE` past `n_hops` (or a skipped hop).
    pub members: [u16; MAX_HOPS],
    /// The path before the last re-resolution.
    pub prev_members: [u16; MAX_HOPS],
    /// Loop guard (steer.rs): the fingerprint of the last packet of the flow that left the chain
    /// (delivered or handed to the host), its TTL / hop limit then, and when (coarse monotonic
    /// milliseconds, modulo 2^16). The same packet coming back into the entry port soon after
    /// with a lower TTL has gone round a loop.
    pub exit_fp: u32,
    pub exit_ttl: u8,
    pub _pad: u8,
    pub exit_ms: u16,
    /// `CLOCK_MONOTONIC_COARSE` seconds of the last packet at the entry port (or of the entry's
    /// creation): `sfc run` removes entries idle longer than `--flow-idle-timeout`.
    pub last_seen: u32,
}
const _: () = assert!(size_of::<FlowEntry>() == 36 + 4 * MAX_HOPS);
// `present` has a bit per hop.
const _: () = assert!(MAX_HOPS <= 16);

impl Default for FlowEntry {
    fn default() -> Self {
        Self {
            chain_id: 0,
            dst_ifindex: 0,
            n_hops: 0,
            flags: 0,
            ttl: 0,
            prev_n_hops: 0,
            generation: 0,
            present: 0,
            prev_present: 0,
            in_ifindex: 0,
            members: [crate::limits::PORT_PAIR_NONE; MAX_HOPS],
            prev_members: [crate::limits::PORT_PAIR_NONE; MAX_HOPS],
            exit_fp: 0,
            exit_ttl: 0,
            _pad: 0,
            exit_ms: 0,
            last_seen: 0,
        }
    }
}

// The counters' keys and values (`IfStats`, `HopStatsKey`, `HopHome`, `Counter`) are in
// `counters`.
pub use crate::counters::{Counter, DIR_FORWARD, DIR_REVERSE, HopHome, HopStatsKey, IfStats};

/// `SFC_FRAGS_V2` key: one fragmented IP packet in a zone: addresses, protocol and id for IPv4 (RFC 791);
/// addresses and id for IPv6 (RFC 8200: `proto` is 0, since extension headers after the fragment
/// header hide the transport protocol from later fragments).
/// The value is the `FlowKey` its first fragment was steered with, so later fragments, which
/// carry no ports, follow the same path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IPv4 identification (zero-extended) or IPv6 fragment identification.
    pub id: u32,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
    pub zone: u32,
}
const _: () = assert!(size_of::<FragKey>() == 44);

// The flow table's limits and counters (`Limits`, `FLOW_STAT_*`) are in `limits`.
pub use crate::limits::{FLOW_STAT_CAPPED, FLOW_STAT_CREATED, FLOW_STAT_REMOVED, FLOW_STATS, Limits};


#[cfg(feature = "user")]
mod pod {
    use super::{
        ChainEntry, ClsKey, ClsResult, Counter, EncapEntry, FlowEntry, FlowKey, FragKey, GroupEntry,
        HopHome, HopStatsKey, IfStats, IfaceDirect, IfaceEntry, LbTable, Limits, MacEntry, Meta, PortPairEntry,
    };
    // SAFETY: all of these are #[repr(C)], contain only integers and byte arrays, and have no
    // implicit padding (explicit `_pad` fields and size assertions above).
    unsafe impl aya::Pod for IfaceEntry {}
    unsafe impl aya::Pod for IfaceDirect {}
    unsafe impl aya::Pod for IfStats {}
    unsafe impl aya::Pod for ClsKey {}
    unsafe impl aya::Pod for ClsResult {}
    unsafe impl aya::Pod for ChainEntry {}
    unsafe impl aya::Pod for EncapEntry {}
    unsafe impl aya::Pod for GroupEntry {}
    unsafe impl aya::Pod for LbTable {}
    unsafe impl aya::Pod for PortPairEntry {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowEntry {}
    unsafe impl aya::Pod for HopStatsKey {}
    unsafe impl aya::Pod for HopHome {}
    unsafe impl aya::Pod for Counter {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for Meta {}
    unsafe impl aya::Pod for Limits {}
    unsafe impl aya::Pod for MacEntry {}
}
