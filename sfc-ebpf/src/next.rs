//! Where a packet goes once its flow's path is known (`steer::Path`): the next member or the
//! delivery (`forward`), the redirect that carries it out (`redirect`), and everything a hop does
//! around them (`finish`), the same for `steer::try_steer` and the hit path (`fast::hop`).

use sfc_common::{
    DropReason,
    limits::MAX_HOPS,
    maps::{
        DIR_FORWARD, DIR_REVERSE, FLOW_F_REVERSE, FLOW_F_TAPS, FlowKey, HopStatsKey, IF_F_LEARN, IF_F_MAC, IF_F_PEER, Meta,
        PP_F_EGRESS_PEER, PP_F_ENCAP, PP_F_INGRESS_PEER, banked_id, iface_direct_slot,
    },
    overlay::vni,
    trace::{TV_DELIVER, TV_HOST, TV_MEMBER},
};

use crate::{
    counters::{self, If},
    ctx::PacketCtx,
    hops::hops_from,
    maps::{Note, SFC_IFACES_DIR, SFC_IFACES_V4, Scratch, port_pair},
    parse::Parsed,
    steer::{Action, Path, count, record_exit},
    taps, trace,
};

/// Everything after the flow's path is known, the same for `try_steer` and the hit path
/// (`fast::hop`): SF timing, the next hop, the trace's note, the loop guard's exit record, tap
/// copies, the redirect and the counters. `port_pair` and `stats_slot`: the arrival interface's.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "a packet's whole state at this point; a struct would be copied on the stack")]
pub(crate) fn finish<C: PacketCtx>(
    ctx: &C,
    ifindex: u32,
    port_pair: u32,
    stats_slot: u16,
    p: &Parsed,
    path: &Path,
    scratch: &mut Scratch,
    meta: Meta,
) -> Result<Action, DropReason> {
    if matches!(path.seen, If::FromSf) {
        // SAFETY: `Path::flow`, a flow-table value or the scratch copy, valid for this program run.
        let reverse = unsafe { (*path.flow).flags } & FLOW_F_REVERSE != 0;
        trace::back(p.fp, port_pair, if reverse { DIR_REVERSE } else { DIR_FORWARD });
    }
    let (next, next_hop) = forward(path, meta.bank)?;
    // SAFETY: `Path::flow`, a flow-table value or the scratch copy, valid for this program run.
    note(&mut scratch.note, &next, unsafe { (*path.flow).chain_id }, p.fp);
    if next.kind != Next::MEMBER {
        // Leaving the chain: what the loop guard recognises if it comes round.
        record_exit(path.flow, p);
    }
    // SAFETY: `Path::flow`, a flow-table value or the scratch copy, valid for this program run.
    let tapped = unsafe { (*path.flow).flags } & FLOW_F_TAPS != 0;
    if tapped {
        taps::note(scratch, path.flow, path.prev, path.from, ifindex, meta.bank, next_hop);
    }
    // SAFETY: `Path::flow`, a flow-table value or the scratch copy, valid for this program run.
    let action = redirect(ctx, p, &scratch.key, next, unsafe { (*path.flow).chain_id })?;
    if next.kind == Next::MEMBER {
        trace::sent(p.fp, next.hop.port_pair, next.hop.dir);
    }
    // Counted once the packet is on its way: a packet dropped on the way is counted as a drop
    // only, so interface counters and drops add up to the packets seen.
    count::<C>(stats_slot, ifindex, path.seen);
    Ok(Action { tail: tapped || next.encap, ..action })
}

/// Notes the hop decision for the trace (`trace::emit`).
#[inline(always)]
fn note(n: &mut Note, next: &Next, chain_id: u32, fp: u32) {
    n.fp = fp;
    n.chain_id = chain_id;
    match next.kind {
        Next::MEMBER => {
            n.verdict = TV_MEMBER;
            n.target = next.ifindex;
            n.hop = next.hop.hop;
            n.port_pair = next.hop.port_pair;
            n.dir = next.hop.dir as u8;
            n.si = 255u32.wrapping_sub(next.hop.hop) as u8;
        }
        Next::DELIVER => {
            n.verdict = TV_DELIVER;
            n.target = next.ifindex;
        }
        _ => n.verdict = TV_HOST,
    }
}

/// Where `forward` sends a packet: back to the host (`HOST`: the chain is done and has no
/// logical destination port), into a service function (`MEMBER`: `mac` is its address, `hop`
/// its counter), or to the logical destination port (`DELIVER`), addressed to `mac` (whatever
/// is behind it) unless that is unknown (all zero).
///
/// A struct whose every field is set on every way out, not an enum with payloads: a variant
/// without the others' fields leaves their registers undefined, and LLVM (with 32-bit ALU
/// instructions, BPF v3) spills such a register, which the verifier refuses (see `Action`).
#[derive(Clone, Copy)]
pub(crate) struct Next {
    kind: u8,
    ifindex: u32,
    peer: bool,
    mac: [u8; 6],
    hop: HopStatsKey,
    /// A member that gets a header (`PP_F_ENCAP`, forward direction: `encap::push`).
    encap: bool,
}

impl Next {
    const HOST: u8 = 0;
    const MEMBER: u8 = 1;
    const DELIVER: u8 = 2;
    const TO_HOST: Next =
        Next { kind: Next::HOST, ifindex: 0, peer: false, mac: [0; 6], hop: HopStatsKey { chain_id: 0, hop: 0, port_pair: 0, dir: 0 }, encap: false };
}

/// The first member at or after hop `path.from`, or where the packet goes after the last; and
/// that hop's position (`MAX_HOPS` past the last): the tap hops before it get copies.
#[inline(always)]
pub(crate) fn forward(path: &Path, bank: u32) -> Result<(Next, usize), DropReason> {
    // SAFETY: `Path::flow`, a flow-table value or the scratch copy, valid for this program run.
    let flow = unsafe { &*path.flow };
    let (members, n_hops, present) = if path.prev {
        (&flow.prev_members, flow.prev_n_hops, flow.prev_present)
    } else {
        (&flow.members, flow.n_hops, flow.present)
    };
    // The next hop with a member (fail-open groups leave holes): the lowest set bit from `from`
    // on, computed without a scan for the same reason as in `hop_of`.
    let bits = hops_from(present, path.from, n_hops);
    let next = if (bits >> (path.from & 31)) & 1 != 0 {
        // The hop right after: every hop but a fail-open group's hole. BPF has no popcount
        // instruction (LLVM's is 15 of them): 2 ns a run.
        path.from
    } else if bits == 0 {
        MAX_HOPS
    } else {
        ((bits & bits.wrapping_neg()) - 1).count_ones() as usize
    };
    // LLVM knows `next` < 16 and would drop the bound check below; the verifier does not know
    // it (the count becomes a byte table lookup). A volatile read keeps the check (as the
    // kernel's barrier_var() does).
    // SAFETY: a local's own address, aligned and initialised: the read gives back its value.
    let next = unsafe { core::ptr::read_volatile(&raw const next) };
    if next < MAX_HOPS {
        // The index masked after another volatile read, which LLVM cannot see through (it drops
        // a mask of a value it knows is below `MAX_HOPS`): a verifier that loses the check's
        // bound when the value is spilled to the stack and read back (6.1's; 6.18's keeps it)
        // still has the mask's.
        // SAFETY: a local's own address, aligned and initialised: the read gives back its value.
        let i = unsafe { core::ptr::read_volatile(&raw const next) } & (MAX_HOPS - 1);
        let pp_id = u32::from(members[i]);
        let pp = port_pair(pp_id).ok_or(DropReason::NoPortPair)?;
        let reverse = flow.flags & FLOW_F_REVERSE != 0;
        // Counters are kept by the group's position in the chain, in both directions.
        let (ifindex, mac, peer, dir, position) = if reverse {
            let pos = usize::from(n_hops).wrapping_sub(1).wrapping_sub(next);
            (pp.egress_ifindex, pp.egress_mac, pp.flags & PP_F_EGRESS_PEER != 0, DIR_REVERSE, pos)
        } else {
            (pp.ingress_ifindex, pp.ingress_mac, pp.flags & PP_F_INGRESS_PEER != 0, DIR_FORWARD, next)
        };
        if mac == [0; 6] {
            // A member waiting for its MAC is out of its group's table (`PP_F_NO_MAC`); a flow
            // pinned to it before is not sent to a wrong address.
            return Err(DropReason::NoMac);
        }
        let hop = HopStatsKey { chain_id: flow.chain_id, hop: position as u32, port_pair: pp_id, dir };
        let encap = !reverse && pp.flags & PP_F_ENCAP != 0;
        return Ok((Next { kind: Next::MEMBER, ifindex, peer, mac, hop, encap }, next));
    }
    if flow.dst_ifindex == 0 {
        return Ok((Next::TO_HOST, MAX_HOPS));
    }
    // The live bank's array slot (the lookup the verifier inlines), else the hash (another
    // interface of the bank has the slot). Not `iface::find`: its copy's two ways out cost the
    // verifier more than the tc program has left; the two fields read here are scalars once
    // read, so both ways join in one state.
    let (flags, peer_mac) = match SFC_IFACES_DIR.get(iface_direct_slot(bank, flow.dst_ifindex)) {
        Some(d) if d.ifindex == flow.dst_ifindex => (d.entry.flags, d.entry.peer_mac),
        // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
        _ => unsafe { SFC_IFACES_V4.get(&banked_id(bank, flow.dst_ifindex)) }.map_or((0, [0; 6]), |i| (i.flags, i.peer_mac)),
    };
    let peer = flags & IF_F_PEER != 0;
    let mac = if flags & IF_F_MAC != 0 { peer_mac } else { [0; 6] };
    if mac == [0; 6] && flags & IF_F_LEARN != 0 {
        // Behind a tap whose VM sfc has not heard from: the frame still carries the last SF's
        // gateway MAC, which the VM would refuse.
        return Err(DropReason::NoMac);
    }
    Ok((Next { kind: Next::DELIVER, ifindex: flow.dst_ifindex, peer, mac, ..Next::TO_HOST }, MAX_HOPS))
}

/// Carries out `forward`'s decision. One place for everything a redirect needs, so the
/// program-type specific step (`before_redirect`) is verified once, not once per branch.
#[inline(always)]
pub(crate) fn redirect<C: PacketCtx>(ctx: &C, p: &Parsed, key: &FlowKey, next: Next, chain_id: u32) -> Result<Action, DropReason> {
    // The VNI, should the target be on another host: the SI of the hop (0: delivery).
    let (ifindex, peer, mac, hop, vni) = match next.kind {
        Next::HOST => return Ok(Action::PASS),
        Next::MEMBER => (next.ifindex, next.peer, next.mac, next.hop, vni(next.hop.chain_id, 255u32.wrapping_sub(next.hop.hop))),
        _ => (next.ifindex, next.peer, next.mac, next.hop, vni(chain_id, 0)),
    };
    let ifindex = ctx.before_redirect(p, key, ifindex, vni)?;
    if mac != [0; 6] {
        // The Ethernet destination: the frame's first bytes (the parser read them).
        let dst = ctx.data();
        if dst + 6 > ctx.data_end() {
            return Err(DropReason::RewriteFailed);
        }
        // SAFETY: `dst..dst + 6` is inside the packet (checked above); a byte array has no
        // alignment to keep.
        unsafe { *(dst as *mut [u8; 6]) = mac };
    }
    // Chain 0 is no chain: a delivery, not a hop.
    if hop.chain_id != 0 {
        if C::SLOT_COUNTERS {
            counters::hop_slot(&hop, ctx.len());
        } else {
            counters::hop(&hop, ctx.len());
        }
    }
    Ok(Action { ifindex, peer, tail: false })
}
