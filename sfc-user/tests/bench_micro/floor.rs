//! The floor under the spread costs (issue 17): what one kernel hash lookup of a key that is
//! out of the cache costs on this machine, measured the way the spread rows are.
//!
//! sfc's spread rows (a new flow spread over 100,000 classifiers, a hit spread over 1,000,000
//! flows) grow because each packet reads an entry that no recent packet read: the classifier
//! hash's entry of its destination, the flow table's entry of its flow. No datapath that keeps
//! those entries in a kernel hash map avoids that read. The floor is a bare tc program that does
//! nothing but that read: the packet's bytes `from..from + 4 * words` copied into an otherwise
//! zero key of the map's key size, one `bpf_map_lookup_elem` in a map of the same type, size
//! and flags as sfc's, filled with the same keys; verdict 1 when found. For a new flow it then
//! also inserts the flow into a flow table (`Floor::new`'s `record`), as any stateful datapath
//! must. The floor's growth (spread over many entries minus one entry) is then the part of
//! sfc's growth that no datapath of kernel hash maps avoids on this machine.
//!
//! Written here as raw instructions (as `xtask`'s path (f) is): sfc-ebpf builds one object, and
//! a program whose maps are given to it at load needs either an object of its own or this.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
pub const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `struct __sk_buff` offsets of `data` and `data_end`.
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
/// The key's room on the stack: the largest key (sfc's flow key, 44 bytes) rounded up to 8.
const KEY_ROOM: i16 = 48;
/// Verdicts (and 0: not found, 2: a packet too short).
const FOUND: u32 = 1;
const NOT_RECORDED: u32 = 3;

/// One BPF instruction: opcode, registers (dst low nibble, src high), offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let regs = (dst & 0xf) | (src << 4);
    u64::from(code) | u64::from(regs) << 8 | u64::from(off.cast_unsigned()) << 16 | u64::from(imm.cast_unsigned()) << 32
}

/// The flow record's key room below the key's, and its value's below that (sfc's flow entry,
/// 68 bytes, rounded up to 8).
const RECORD_KEY: i16 = 2 * KEY_ROOM;
const RECORD_VALUE: i16 = RECORD_KEY + 72;
/// The bytes a flow is keyed by: IPv4 addresses and ports, bytes 26..38 of the frame.
const FLOW_FROM: i16 = 26;
const FLOW_WORDS: i16 = 3;

/// The program: key := zeros, then `words` 4-byte words of the packet from byte `from`; one
/// lookup in `map`. With `record`, then also what a new flow must do once it is classified:
/// insert its 5-tuple (`FLOW_FROM`) with a zero entry into that flow table. Verdict 1 when
/// `map` has the key, 0 when not, 2 for a packet too short, 3 when the insert failed.
fn program(map: &OwnedFd, from: i16, words: i16, record: Option<&OwnedFd>) -> Vec<u64> {
    let end = (from + 4 * words).max(FLOW_FROM + 4 * FLOW_WORDS);
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
    if record.is_some() {
        for w in 0..FLOW_WORDS {
            copy(&mut p, FLOW_FROM + 4 * w, -RECORD_KEY + 4 * w);
        }
    }
    let load_map = |p: &mut Vec<u64>, m: &OwnedFd| p.extend([insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, m.as_raw_fd()), 0]); // r1 = m (two slots)
    load_map(&mut p, map);
    p.extend([
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, i32::from(-KEY_ROOM)),     // r2 -= KEY_ROOM
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call bpf_map_lookup_elem
        insn(0xbf, 6, 0, 0, 0),                        // r6 = r0
    ]);
    if let Some(flows) = record {
        load_map(&mut p, flows);
        p.extend([
            insn(0xbf, 2, 10, 0, 0),                          // r2 = r10
            insn(0x07, 2, 0, 0, i32::from(-RECORD_KEY)),      // r2 -= RECORD_KEY
            insn(0xbf, 3, 10, 0, 0),                          // r3 = r10
            insn(0x07, 3, 0, 0, i32::from(-RECORD_VALUE)),    // r3 -= RECORD_VALUE
            insn(0xb7, 4, 0, 0, 0),                           // r4 = BPF_ANY
            insn(0x85, 0, 0, 0, BPF_FUNC_MAP_UPDATE_ELEM),    // call bpf_map_update_elem
            insn(0x15, 0, 0, 2, 0),                           // if r0 == 0 goto +2
            insn(0xb7, 0, 0, 0, NOT_RECORDED.cast_signed()),  // r0 = NOT_RECORDED
            insn(0x95, 0, 0, 0, 0),                           // exit
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

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded bpf_attr of 128 bytes that outlives the call; every
    // pointer in it (keys, values, instructions, license, log, packet) points at memory that
    // outlives it too.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr)) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

fn fd(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor this process owns.
    unsafe { OwnedFd::from_raw_fd(i32::try_from(r).expect("a file descriptor")) }
}

/// What `BPF_MAP_CREATE` is asked for.
#[derive(Clone, Copy)]
pub struct MapSpec {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

fn create(MapSpec { map_type, key_size, value_size, max_entries, flags }: MapSpec) -> OwnedFd {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map_type) | u64::from(key_size) << 32;
    attr[1] = u64::from(value_size) | u64::from(max_entries) << 32;
    attr[2] = u64::from(flags);
    fd(bpf(BPF_MAP_CREATE, &mut attr).unwrap_or_else(|e| panic!("creating a map for the floor: {e}")))
}

/// A map of sfc's type, size and flags and the bare program that looks keys up in it.
pub struct Floor {
    map: OwnedFd,
    /// The flow table a `recording` floor inserts into (held for the program's sake).
    _flows: Option<OwnedFd>,
    prog: OwnedFd,
    key_size: usize,
    value: Vec<u8>,
    from: usize,
    words: usize,
}

impl Floor {
    /// A map as `spec` says, keyed by `words` words of the packet from byte `from`; with
    /// `record`, each run then also records the packet's flow as a new flow does: an insert of
    /// its addresses and ports into an LRU hash of `record` entries with sfc's flow key and
    /// entry sizes.
    pub fn new(spec: MapSpec, from: usize, words: usize, record: Option<u32>) -> Self {
        use sfc_common::maps::{FlowEntry, FlowKey};
        let flows = record.map(|table| {
            let (k, v) = (u32::try_from(size_of::<FlowKey>()).expect("small"), u32::try_from(size_of::<FlowEntry>()).expect("small"));
            assert!(k <= KEY_ROOM.cast_unsigned().into() && v <= (RECORD_VALUE - RECORD_KEY).cast_unsigned().into(), "the flow's key and entry fit their rooms");
            create(MapSpec { map_type: BPF_MAP_TYPE_LRU_HASH, key_size: k, value_size: v, max_entries: table, flags: 0 })
        });
        Self::build(spec, from, words, flows)
    }

    fn build(spec: MapSpec, from: usize, words: usize, flows: Option<OwnedFd>) -> Self {
        let MapSpec { key_size, value_size, .. } = spec;
        assert!(4 * words <= key_size as usize && key_size <= KEY_ROOM.cast_unsigned().into(), "the key holds the copied words");
        let map = create(spec);
        let insns = program(&map, i16::try_from(from).expect("offset"), i16::try_from(words).expect("words"), flows.as_ref());
        let license = b"GPL\0";
        let mut log = vec![0u8; 64 * 1024];
        let mut attr = [0u64; 16];
        attr[0] = u64::from(BPF_PROG_TYPE_SCHED_CLS) | (insns.len() as u64) << 32;
        attr[1] = insns.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        attr[3] = 1 | (log.len() as u64) << 32; // log_level, log_size
        attr[4] = log.as_mut_ptr() as u64;
        let prog = fd(bpf(BPF_PROG_LOAD, &mut attr).unwrap_or_else(|e| {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            panic!("loading the floor's program: {e}\n{}", String::from_utf8_lossy(&log[..end]))
        }));
        Floor { map, _flows: flows, prog, key_size: key_size as usize, value: vec![0; value_size as usize], from, words }
    }

    /// The key the program builds from `packet`.
    fn key(&self, packet: &[u8]) -> Vec<u8> {
        let mut k = vec![0u8; self.key_size];
        k[..4 * self.words].copy_from_slice(&packet[self.from..self.from + 4 * self.words]);
        k
    }

    /// Inserts the key of each of `packets`.
    pub fn fill<'p>(&self, packets: impl Iterator<Item = &'p [u8]>) {
        for p in packets {
            let k = self.key(p);
            let mut attr = [0u64; 16];
            attr[0] = u64::from(self.map.as_raw_fd().cast_unsigned());
            attr[1] = k.as_ptr() as u64;
            attr[2] = self.value.as_ptr() as u64;
            bpf(BPF_MAP_UPDATE_ELEM, &mut attr).unwrap_or_else(|e| panic!("filling the floor's map: {e}"));
        }
    }

    /// One run of the program on `packet`: verdict and the kernel's time in ns.
    fn run(&self, packet: &[u8]) -> (u32, f64) {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(self.prog.as_raw_fd().cast_unsigned());
        attr[1] = packet.len() as u64; // data_size_in (data_size_out 0: no copy out)
        attr[2] = packet.as_ptr() as u64; // data_in
        attr[4] = 1; // repeat
        bpf(BPF_PROG_TEST_RUN, &mut attr).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN (floor): {e}"));
        let retval = u32::try_from(attr[0] >> 32).expect("u32");
        let duration = u32::try_from(attr[4] >> 32).expect("u32");
        (retval, f64::from(duration))
    }

    /// Mean kernel time of one run each of `packets`, every one of which must find its key.
    pub fn singles<'p>(&self, packets: impl Iterator<Item = &'p [u8]>) -> f64 {
        let (mut total, mut n) = (0.0, 0u32);
        for p in packets {
            let (v, t) = self.run(p);
            assert_eq!(v, FOUND, "the floor's lookup missed a key it was given (0), or its insert failed (3)");
            (total, n) = (total + t, n + 1);
        }
        total / f64::from(n.max(1))
    }
}
