//! The floor of a datapath that keeps flows (issue 17): per hop, the least a tc program that
//! steers by a flow table can do. The benchmark's path (g) runs it on the hub's ports, and the
//! micro benchmark times it next to path (f)'s program (`limit_program`, here too) and sfc's
//! own hop.
//!
//! Path (f) redirects everything arriving on a port to a target compiled in: the limit of tc
//! steering on that topology. A real datapath cannot compile its targets in; it learns where a
//! packet goes from what it keeps about the packet's flow. The floor does only that, per packet:
//! - the arrival interface's entry, from an array slot by ifindex (the verifier inlines the
//!   lookup): its default next hop, 0 when the port is not steered;
//! - the parse: Ethernet, IPv4 without options (anything else passes), the ports;
//! - the flow's lookup in an LRU hash of sfc's flow table's kind, size and key and entry sizes
//!   (`FlowKey`, `FlowEntry`): addresses, ports, protocol, family and the arrival ifindex, so
//!   that each hop of a flow is an entry of its own with its own next hop;
//! - a flow the table does not know is inserted with the port's default next hop (a new flow's
//!   one write; no classification);
//! - the destination MAC rewritten from the entry, and `bpf_redirect_peer` to its ifindex.
//!
//! Nothing else: no counters, no loop guard, no SF timing, no members, no IPv6, no VLANs, no
//! fragments, no generations. What sfc does per hop above this floor is its features; what the
//! floor does above (f) is what keeping flows costs by itself.
//!
//! Written as raw instructions, as (f) and the micro benchmark's classifier floor are
//! (`rawbpf`): sfc-ebpf builds one object, and this must not be sfc's code.

use std::os::fd::OwnedFd;

use anyhow::{Context as _, Result, bail};

use crate::rawbpf::{
    self, BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_MAP_UPDATE_ELEM, BPF_FUNC_REDIRECT_PEER, BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_LRU_HASH, Map, MapSpec, SKB_DATA, SKB_DATA_END, insn, load_map,
};

/// `struct __sk_buff`'s `ifindex` (the arrival interface).
const SKB_IFINDEX: i16 = 40;
/// Array slots for interfaces: ifindexes up to this (a benchmark's namespace has a few dozen).
pub const IFACE_SLOTS: u32 = 4096;
/// An interface slot: the next hop's ifindex (0: not steered) and MAC, padded to 16 bytes.
const IFACE_VALUE: u32 = 16;
/// The flow table's size: sfc's default (`MAP_FLOWS`' 65,536 entries).
pub const FLOWS: u32 = 65_536;
/// sfc's flow key and entry sizes (`sfc_common::maps::FlowKey`, `FlowEntry`; this crate does
/// not see those types: the micro benchmark checks the two against them).
pub const FLOW_KEY: u32 = 44;
pub const FLOW_VALUE: u32 = 68;
/// Stack rooms: the flow key's (48 bytes from `KEY`), the interface key's (4), a new entry's
/// (72 from `VALUE`).
const KEY: i16 = -48;
const IFACE_KEY: i16 = -56;
const VALUE: i16 = -128;
/// The frame's bytes the parse reads: Ethernet, a 20-byte IPv4 header, the ports.
const PARSED: i32 = 38;
const TC_ACT_OK: i32 = 0;
/// `FlowKey::family` of IPv4 (`sfc_common::maps::FAMILY_V4`).
const FAMILY_V4: i32 = 4;

/// Path (f)'s program, the limit of tc steering: the frame's destination MAC := `mac`;
/// `bpf_redirect_peer(ifindex)`. No parsing beyond the Ethernet header, no maps, no counters;
/// 13 instructions. A frame shorter than 6 bytes passes (the verifier insists on the bounds
/// check).
pub fn limit_program(ifindex: u32, mac: [u8; 6]) -> Vec<u64> {
    let mac_lo = i32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let mac_hi = i32::from(u16::from_le_bytes([mac[4], mac[5]]));
    vec![
        insn(0x61, 2, 1, SKB_DATA, 0),               // r2 = skb->data
        insn(0x61, 3, 1, SKB_DATA_END, 0),           // r3 = skb->data_end
        insn(0xbf, 4, 2, 0, 0),                      // r4 = r2
        insn(0x07, 4, 0, 0, 6),                      // r4 += 6
        insn(0x2d, 4, 3, 6, 0),                      // if r4 > r3 goto pass
        insn(0x62, 2, 0, 0, mac_lo),                 // *(u32 *)(r2 + 0) = mac[0..4]
        insn(0x6a, 2, 0, 4, mac_hi),                 // *(u16 *)(r2 + 4) = mac[4..6]
        insn(0xb7, 1, 0, 0, ifindex.cast_signed()),  // r1 = ifindex
        insn(0xb7, 2, 0, 0, 0),                      // r2 = 0
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_PEER), // call bpf_redirect_peer
        insn(0x95, 0, 0, 0, 0),                      // exit
        insn(0xb7, 0, 0, 0, TC_ACT_OK),              // pass: r0 = TC_ACT_OK
        insn(0x95, 0, 0, 0, 0),                      // exit
    ]
}

/// The program, holding `ifaces` and `flows` (see the module comment). Jumps are written with
/// labels and patched once the code is laid out.
fn program(ifaces: &Map, flows: &Map) -> Vec<u64> {
    let mut p: Vec<u64> = Vec::new();
    // Forward jumps to `pass` (patched below): their indexes.
    let mut to_pass: Vec<usize> = Vec::new();
    let jump_to_pass = |p: &mut Vec<u64>, to_pass: &mut Vec<usize>, code: u8, dst: u8, src: u8, imm: i32| {
        to_pass.push(p.len());
        p.push(insn(code, dst, src, 0, imm));
    };
    // The interface's slot.
    p.extend([
        insn(0xbf, 6, 1, 0, 0),           // r6 = ctx
        insn(0x61, 2, 6, SKB_IFINDEX, 0), // r2 = skb->ifindex
        insn(0x63, 10, 2, IFACE_KEY, 0),  // *(u32 *)(r10 + IFACE_KEY) = r2
    ]);
    p.extend(load_map(ifaces));
    p.extend([
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, i32::from(IFACE_KEY)),     // r2 += IFACE_KEY
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call bpf_map_lookup_elem
    ]);
    jump_to_pass(&mut p, &mut to_pass, 0x15, 0, 0, 0); // if r0 == 0 goto pass
    p.push(insn(0xbf, 7, 0, 0, 0)); // r7 = the slot
    p.push(insn(0x61, 1, 7, 0, 0)); // r1 = its next hop's ifindex
    jump_to_pass(&mut p, &mut to_pass, 0x15, 1, 0, 0); // if r1 == 0 goto pass: not steered
    // The parse.
    p.extend([
        insn(0x61, 2, 6, SKB_DATA, 0),     // r2 = skb->data
        insn(0x61, 3, 6, SKB_DATA_END, 0), // r3 = skb->data_end
        insn(0xbf, 4, 2, 0, 0),            // r4 = r2
        insn(0x07, 4, 0, 0, PARSED),       // r4 += PARSED
    ]);
    jump_to_pass(&mut p, &mut to_pass, 0x2d, 4, 3, 0); // if r4 > r3 goto pass
    p.push(insn(0x69, 4, 2, 12, 0)); // r4 = *(u16 *)(r2 + 12): the ethertype, as stored
    jump_to_pass(&mut p, &mut to_pass, 0x55, 4, 0, i32::from(u16::from_ne_bytes([0x08, 0x00]))); // not IPv4: pass
    p.push(insn(0x71, 4, 2, 14, 0)); // r4 = *(u8 *)(r2 + 14): version and header length
    jump_to_pass(&mut p, &mut to_pass, 0x55, 4, 0, 0x45); // options (or not v4): pass
    // The flow's key: zeroed, then addresses, ports, protocol, family, the arrival ifindex.
    for off in (KEY..0).step_by(8) {
        p.push(insn(0x7a, 10, 0, off, 0)); // *(u64 *)(r10 + off) = 0
    }
    // (frame offset, key offset, size opcode of load and store)
    for (at, to, ld, st) in [(26, 0, 0x61, 0x63), (30, 16, 0x61, 0x63), (34, 32, 0x61, 0x63), (23, 36, 0x71, 0x73)] {
        p.push(insn(ld, 4, 2, at, 0)); // r4 = frame[at]
        p.push(insn(st, 10, 4, KEY + to, 0)); // key[to] = r4
    }
    p.extend([
        insn(0x72, 10, 0, KEY + 37, FAMILY_V4), // key.family = 4
        insn(0x61, 4, 6, SKB_IFINDEX, 0),       // r4 = skb->ifindex
        insn(0x63, 10, 4, KEY + 40, 0),         // key.zone = r4
    ]);
    p.extend(load_map(flows));
    p.extend([
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, i32::from(KEY)),           // r2 += KEY
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call bpf_map_lookup_elem
    ]);
    // A hit: its entry is the next hop. (Patched below: over the insert.)
    let hit_jump = p.len();
    p.push(insn(0x55, 0, 0, 0, 0)); // if r0 != 0 goto hit
    // A new flow: its entry is the slot's next hop (the first 12 bytes), the rest zero.
    for off in (VALUE..VALUE + 72).step_by(8) {
        p.push(insn(0x7a, 10, 0, off, 0)); // *(u64 *)(r10 + off) = 0
    }
    p.extend([
        insn(0x79, 1, 7, 0, 0),         // r1 = *(u64 *)(r7 + 0): ifindex, MAC[0..4]
        insn(0x7b, 10, 1, VALUE, 0),    // *(u64 *)(r10 + VALUE) = r1
        insn(0x61, 1, 7, 8, 0),         // r1 = *(u32 *)(r7 + 8): MAC[4..6], padding
        insn(0x63, 10, 1, VALUE + 8, 0), // *(u32 *)(r10 + VALUE + 8) = r1
    ]);
    p.extend(load_map(flows));
    p.extend([
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, i32::from(KEY)),           // r2 += KEY
        insn(0xbf, 3, 10, 0, 0),                       // r3 = r10
        insn(0x07, 3, 0, 0, i32::from(VALUE)),         // r3 += VALUE
        insn(0xb7, 4, 0, 0, 0),                        // r4 = BPF_ANY
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_UPDATE_ELEM), // call bpf_map_update_elem (a full table: still steered)
        insn(0xbf, 0, 7, 0, 0),                        // r0 = the slot: the next hop
    ]);
    let hit = p.len();
    p[hit_jump] = insn(0x55, 0, 0, offset(hit_jump, hit), 0);
    // hit: r7 = the next hop (the entry, or the slot for a new flow).
    p.extend([
        insn(0xbf, 7, 0, 0, 0),            // r7 = r0
        insn(0x61, 2, 6, SKB_DATA, 0),     // r2 = skb->data (the helpers took r2 and r3)
        insn(0x61, 3, 6, SKB_DATA_END, 0), // r3 = skb->data_end
        insn(0xbf, 4, 2, 0, 0),            // r4 = r2
        insn(0x07, 4, 0, 0, 6),            // r4 += 6
    ]);
    jump_to_pass(&mut p, &mut to_pass, 0x2d, 4, 3, 0); // if r4 > r3 goto pass
    p.extend([
        insn(0x61, 4, 7, 4, 0),                       // r4 = MAC[0..4]
        insn(0x63, 2, 4, 0, 0),                       // *(u32 *)(r2 + 0) = r4
        insn(0x69, 4, 7, 8, 0),                       // r4 = MAC[4..6]
        insn(0x6b, 2, 4, 4, 0),                       // *(u16 *)(r2 + 4) = r4
        insn(0x61, 1, 7, 0, 0),                       // r1 = the next hop's ifindex
        insn(0xb7, 2, 0, 0, 0),                       // r2 = 0
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_PEER),  // call bpf_redirect_peer
        insn(0x95, 0, 0, 0, 0),                       // exit
    ]);
    let pass = p.len();
    p.extend([insn(0xb7, 0, 0, 0, TC_ACT_OK), insn(0x95, 0, 0, 0, 0)]); // pass: r0 = TC_ACT_OK; exit
    for at in to_pass {
        p[at] = (p[at] & !(0xffff << 16)) | u64::from(offset(at, pass).cast_unsigned()) << 16;
    }
    p
}

/// A jump's offset from the instruction at `from` to `to`.
fn offset(from: usize, to: usize) -> i16 {
    i16::try_from(to - from - 1).expect("a short program")
}

/// The floor's maps and program (the program holds the maps).
pub struct HopFloor {
    ifaces: Map,
    prog: OwnedFd,
    insns: usize,
}

impl HopFloor {
    /// New maps (a flow table of `FLOWS` entries) and the program, loaded.
    pub fn new() -> Result<HopFloor> {
        let ifaces = rawbpf::create_map(MapSpec {
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: IFACE_VALUE,
            max_entries: IFACE_SLOTS,
            flags: 0,
        })?;
        let flows = rawbpf::create_map(MapSpec {
            map_type: BPF_MAP_TYPE_LRU_HASH,
            key_size: FLOW_KEY,
            value_size: FLOW_VALUE,
            max_entries: FLOWS,
            flags: 0,
        })?;
        let code = program(&ifaces, &flows);
        let prog = rawbpf::load_sched_cls(&code).context("the flow-keeping floor's program")?;
        Ok(HopFloor { ifaces, prog, insns: code.len() })
    }

    /// Packets arriving on `from` go to `to`'s peer with `mac` as their destination.
    pub fn steer(&self, from: u32, to: u32, mac: [u8; 6]) -> Result<()> {
        if from == 0 || from >= IFACE_SLOTS || to == 0 {
            bail!("ifindexes {from} -> {to}: the floor steers from ifindexes 1..{IFACE_SLOTS} to one that is not 0");
        }
        let mut v = [0u8; IFACE_VALUE as usize];
        v[..4].copy_from_slice(&to.to_ne_bytes());
        v[4..10].copy_from_slice(&mac);
        self.ifaces.update(&from.to_ne_bytes(), &v)
    }

    pub fn prog(&self) -> &OwnedFd {
        &self.prog
    }

    /// The program's length in instructions (`ld_imm64` counts two).
    pub fn insns(&self) -> usize {
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;
    use crate::rawbpf::TestRun;

    const TC_ACT_REDIRECT: u32 = 7;
    /// `sizeof(struct __sk_buff)`: a run's context, its `ifindex` set.
    const SKB_LEN: usize = 192;
    /// The loopback device: the one interface every namespace has (a test run sends nothing).
    const LO: u32 = 1;

    fn udp(sport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 1, 2], [198, 18, 2, 2], 64)
            .udp(sport, 9)
            .write(&mut v, &[0u8; 18])
            .expect("a packet");
        v
    }

    /// One run on `packet` arriving on loopback: the verdict and the frame's destination MAC.
    fn run(f: &HopFloor, packet: &[u8]) -> (u32, [u8; 6]) {
        let mut ctx = vec![0u8; SKB_LEN];
        ctx[SKB_IFINDEX as usize..SKB_IFINDEX as usize + 4].copy_from_slice(&LO.to_ne_bytes());
        let mut out = vec![0u8; packet.len() + 64];
        let t = TestRun { ctx: Some(&ctx), repeat: 1, out: Some(&mut out) };
        let (verdict, _) = rawbpf::test_run(f.prog(), packet, t).unwrap_or_else(|e| panic!("{e:#}"));
        (verdict, out[..6].try_into().expect("six bytes"))
    }

    fn imm(i: u64) -> u32 {
        (i >> 32) as u32
    }

    #[test]
    fn the_limit_program_rewrites_the_mac_and_redirects() {
        let mac = [0x02, 0x5f, 0xc0, 0x01, 0x02, 0x03];
        let p = limit_program(7, mac);
        // The bounds check jumps to the pass branch.
        let off = ((p[4] >> 16) & 0xffff) as usize;
        assert_eq!((p[4] & 0xff, p[4 + 1 + off] & 0xff, imm(p[4 + 1 + off])), (0x2d, 0xb7, 0));
        // The MAC as stored (little-endian words), the target, the helper.
        let mut stored = imm(p[5]).to_le_bytes().to_vec();
        stored.extend_from_slice(&imm(p[6]).to_le_bytes()[..2]);
        assert_eq!(stored, mac);
        assert_eq!((imm(p[7]), imm(p[9]), p[10] & 0xff), (7, 155, 0x95));
    }

    #[test]
    fn steers_by_the_flow_it_keeps() {
        // Needs root (BPF); the verifier checks the program here.
        let f = HopFloor::new().unwrap_or_else(|e| panic!("{e:#} (this test needs root and BPF)"));
        // Not steered yet: passes, untouched.
        assert_eq!(run(&f, &udp(1000)), (TC_ACT_OK as u32, [2, 0, 0, 0, 0, 2]));
        let (first, second) = ([2, 0x5f, 0, 0, 0, 0xa], [2, 0x5f, 0, 0, 0, 0xb]);
        f.steer(LO, 42, first).expect("steer");
        assert_eq!(run(&f, &udp(1000)), (TC_ACT_REDIRECT, first));
        // The port's next hop changes: the flow keeps the one it was given, a new flow gets
        // the new one.
        f.steer(LO, 43, second).expect("steer");
        assert_eq!(run(&f, &udp(1000)), (TC_ACT_REDIRECT, first));
        assert_eq!(run(&f, &udp(1001)), (TC_ACT_REDIRECT, second));
        // Not IPv4 (an ARP request): passes.
        let mut arp = udp(1000);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run(&f, &arp).0, TC_ACT_OK as u32);
        // An IPv4 header and no ports (the kernel wants the header whole): passes.
        assert_eq!(run(&f, &udp(1000)[..34]).0, TC_ACT_OK as u32);
        assert!(f.steer(0, 42, first).is_err() && f.steer(IFACE_SLOTS, 42, first).is_err(), "ifindexes out of range are refused");
    }
}
