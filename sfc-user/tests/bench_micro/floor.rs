//! The floor under the spread costs (issue 17): what the reads a spread packet cannot avoid
//! cost on this machine, in maps of sfc's type and size, measured the way the spread rows are.
//!
//! sfc's spread rows (a new flow spread over 100,000 classifiers, a hit spread over 1,000,000
//! flows) grow because each packet reads an entry that no recent packet read: the classifier
//! hash's entry of its destination, the flow table's entry of its flow. The floor is a bare tc
//! program that does nothing but that read: the packet's bytes `from..from + 4 * words` copied
//! into an otherwise zero key of the map's key size, one `bpf_map_lookup_elem` in a map of the
//! same type, size and flags as sfc's, filled with the same keys; verdict 1 when found. For a
//! new flow it also does what a datapath that keeps flows must (`Floor::new`'s `record`): it
//! looks the flow up in a flow table first (the miss that tells it the flow is new), and
//! inserts it after the read. The floor's growth (spread over many entries minus one) is
//! the part of sfc's growth that its maps' kind and size cost by themselves, whatever the
//! program around the lookups.
//!
//! Written as raw instructions (`sfc_tests::rawbpf`, as `xtask`'s path (f) is): sfc-ebpf builds
//! one object, and a program with its own maps compiled in needs an object of its own or this.

use std::os::fd::OwnedFd;

use sfc_common::maps::{FlowEntry, FlowKey};
use sfc_tests::rawbpf::{
    self, BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_MAP_UPDATE_ELEM, BPF_MAP_TYPE_LRU_HASH, Map, MapSpec, SKB_DATA, SKB_DATA_END, insn,
    load_map,
};
/// The key's room on the stack: the largest key (sfc's flow key, 44 bytes) rounded up to 8.
const KEY_ROOM: i16 = 48;
/// The flow record's key room below the key's, and its value's below that (sfc's flow entry,
/// 68 bytes, rounded up to 8).
const RECORD_KEY: i16 = 2 * KEY_ROOM;
const RECORD_VALUE: i16 = RECORD_KEY + 72;
/// What a flow is keyed by here: the IPv4 addresses and ports, frame bytes 26..38.
pub const FLOW_FROM: usize = 26;
pub const FLOW_WORDS: usize = 3;
/// The IPv4 destination address: frame bytes 30..34.
pub const DST_FROM: usize = 30;
/// Verdicts (and 0: not found, 2: a packet too short).
const FOUND: u32 = 1;
const NOT_RECORDED: u32 = 3;

/// sfc's flow table's key and entry sizes.
pub fn flow_sizes() -> (u32, u32) {
    let size = |n: usize| u32::try_from(n).expect("a small type");
    (size(size_of::<FlowKey>()), size(size_of::<FlowEntry>()))
}

/// The program: key := zeros, then `words` 4-byte words of the packet from byte `from`; one
/// lookup in `map`. With `record`, also what a new flow must do around its classification: look
/// its addresses and ports (`FLOW_FROM`) up in that flow table before (a miss), and insert them
/// with a zero entry after.
/// Verdict 1 when `map` has the key, 0 when not, 2 for a packet too short, 3 when the insert
/// failed.
fn program(map: &Map, from: i16, words: i16, record: Option<&Map>) -> Vec<u64> {
    let small = |n: usize| i16::try_from(n).expect("a small offset");
    let (flow_from, flow_words) = (small(FLOW_FROM), small(FLOW_WORDS));
    let end = (from + 4 * words).max(flow_from + 4 * flow_words);
    let room = if record.is_some() { RECORD_VALUE } else { KEY_ROOM };
    let mut p = vec![
        insn(0x61, 2, 1, SKB_DATA, 0),       // r2 = skb->data
        insn(0x61, 3, 1, SKB_DATA_END, 0),   // r3 = skb->data_end
        insn(0xbf, 4, 2, 0, 0),              // r4 = r2
        insn(0x07, 4, 0, 0, i32::from(end)), // r4 += end
        insn(0x2d, 4, 3, 0, 0),              // if r4 > r3 goto short (offset patched below)
    ];
    let short_jump = p.len() - 1;
    for off in (-room..0).step_by(8) {
        p.push(insn(0x7a, 10, 0, off, 0)); // *(u64 *)(r10 + off) = 0
    }
    // r5 = *(u32 *)(r2 + at); *(u32 *)(r10 + to) = r5
    let copy = |p: &mut Vec<u64>, at: i16, to: i16| p.extend([insn(0x61, 5, 2, at, 0), insn(0x63, 10, 5, to, 0)]);
    for w in 0..words {
        copy(&mut p, from + 4 * w, -KEY_ROOM + 4 * w);
    }
    if let Some(flows) = record {
        for w in 0..flow_words {
            copy(&mut p, flow_from + 4 * w, -RECORD_KEY + 4 * w);
        }
        // A datapath that keeps flows learns that a flow is new from its flow table: the
        // lookup that misses comes first (its bucket is the one the insert then writes).
        p.extend(load_map(flows));
        p.extend([
            insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
            insn(0x07, 2, 0, 0, i32::from(-RECORD_KEY)),   // r2 -= RECORD_KEY
            insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call bpf_map_lookup_elem (a miss)
        ]);
    }
    p.extend(load_map(map));
    p.extend([
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, i32::from(-KEY_ROOM)),     // r2 -= KEY_ROOM
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call bpf_map_lookup_elem
        insn(0xbf, 6, 0, 0, 0),                        // r6 = r0
    ]);
    if let Some(flows) = record {
        p.extend(load_map(flows));
        p.extend([
            insn(0xbf, 2, 10, 0, 0),                         // r2 = r10
            insn(0x07, 2, 0, 0, i32::from(-RECORD_KEY)),     // r2 -= RECORD_KEY
            insn(0xbf, 3, 10, 0, 0),                         // r3 = r10
            insn(0x07, 3, 0, 0, i32::from(-RECORD_VALUE)),   // r3 -= RECORD_VALUE
            insn(0xb7, 4, 0, 0, 0),                          // r4 = BPF_ANY
            insn(0x85, 0, 0, 0, BPF_FUNC_MAP_UPDATE_ELEM),   // call bpf_map_update_elem
            insn(0x15, 0, 0, 2, 0),                          // if r0 == 0 goto +2
            insn(0xb7, 0, 0, 0, NOT_RECORDED.cast_signed()), // r0 = NOT_RECORDED
            insn(0x95, 0, 0, 0, 0),                          // exit
        ]);
    }
    p.extend([
        insn(0xb7, 0, 0, 0, 0),                   // r0 = 0
        insn(0x15, 6, 0, 1, 0),                   // if r6 == 0 goto +1
        insn(0xb7, 0, 0, 0, FOUND.cast_signed()), // r0 = FOUND
        insn(0x95, 0, 0, 0, 0),                   // exit
    ]);
    let short = p.len();
    p.extend([insn(0xb7, 0, 0, 0, 2), insn(0x95, 0, 0, 0, 0)]); // short: r0 = 2; exit
    let off = i16::try_from(short - short_jump - 1).expect("a short program");
    p[short_jump] = insn(0x2d, 4, 3, off, 0);
    p
}

/// A map of sfc's type and size and the bare program that looks keys up in it.
pub struct Floor {
    map: Map,
    prog: OwnedFd,
    key_size: usize,
    value: Vec<u8>,
    from: usize,
    words: usize,
}

impl Floor {
    /// A map as `spec` says, keyed by `words` words of the packet from byte `from`; with
    /// `record`, each run also looks the packet's flow up and records it as a new flow does: a
    /// lookup (a miss) before the read and an insert after it, of its addresses and ports, in an
    /// LRU hash of `record` entries with sfc's flow key and entry sizes. (The program holds its
    /// maps; the fds are only needed to load it.)
    pub fn new(spec: MapSpec, from: usize, words: usize, record: Option<u32>) -> Self {
        assert!(
            4 * words <= spec.key_size as usize && spec.key_size <= KEY_ROOM.cast_unsigned().into(),
            "the key holds the copied words"
        );
        let flows = record.map(|table| {
            let (key_size, value_size) = flow_sizes();
            assert!(
                key_size <= KEY_ROOM.cast_unsigned().into() && value_size <= (RECORD_VALUE - RECORD_KEY).cast_unsigned().into(),
                "the flow's key and entry fit their rooms"
            );
            let s = MapSpec { map_type: BPF_MAP_TYPE_LRU_HASH, key_size, value_size, max_entries: table, flags: 0 };
            rawbpf::create_map(s).unwrap_or_else(|e| panic!("{e:#}"))
        });
        let map = rawbpf::create_map(spec).unwrap_or_else(|e| panic!("{e:#}"));
        let (f, w) = (i16::try_from(from).expect("an offset"), i16::try_from(words).expect("a few words"));
        let prog = rawbpf::load_sched_cls(&program(&map, f, w, flows.as_ref())).unwrap_or_else(|e| panic!("the floor's program: {e:#}"));
        Floor { map, prog, key_size: spec.key_size as usize, value: vec![0; spec.value_size as usize], from, words }
    }

    /// The key the program builds from `packet`.
    fn key(&self, packet: &[u8]) -> Vec<u8> {
        let mut k = vec![0u8; self.key_size];
        k[..4 * self.words].copy_from_slice(&packet[self.from..self.from + 4 * self.words]);
        k
    }

    /// Inserts the key of each of `packets`. (An LRU map may evict before it is full when the
    /// free entries left are fewer than about 128 per CPU: the tables here keep more spare.)
    pub fn fill<'p>(&self, packets: impl Iterator<Item = &'p [u8]>) {
        for p in packets {
            self.map.update(&self.key(p), &self.value).unwrap_or_else(|e| panic!("filling the floor's map: {e:#}"));
        }
    }

    /// Mean kernel time (ns) of one run each of `packets`, every one of which must find its key.
    pub fn singles<'p>(&self, packets: impl Iterator<Item = &'p [u8]>) -> f64 {
        let (mut total, mut n) = (0.0, 0u32);
        for p in packets {
            let (v, t) = rawbpf::test_run_once(&self.prog, p).unwrap_or_else(|e| panic!("the floor: {e:#}"));
            assert_eq!(v, FOUND, "the floor's lookup missed a key it was given (0), or its insert failed (3)");
            (total, n) = (total + f64::from(t), n + 1);
        }
        total / f64::from(n.max(1))
    }
}

/// Writes a buffer several times the size of a core's L2 cache (and of the TLB's reach), so
/// that sfc's spread runs and the floor's start from the same state: their maps' entries out
/// of the nearer caches, whichever was written last.
pub fn evict_caches() {
    const BYTES: usize = 32 << 20;
    let mut v = vec![0u8; BYTES];
    for i in (0..BYTES).step_by(64) {
        v[i] = i.to_le_bytes()[0];
    }
    std::hint::black_box(&v);
}

/// `Floor`'s growth sentence part: "at least N ns" when the floor grew, else that it did not.
pub fn needs(grew: f64, ratio: f64) -> String {
    if grew > 0.0 { format!("at least {:.0} ns", grew / (ratio - 1.0)) } else { "no minimum (the floor did not grow in this run)".to_owned() }
}
