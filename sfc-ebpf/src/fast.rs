//! The hit path: a packet of a flow the table knows, at its entry port or back from one of its
//! service functions (veths and VMs' taps alike), steered without walking `steer::try_steer`'s
//! other cases.
//!
//! `try_steer` handles every kind of packet (new flows, re-resolution, recomputation, replies,
//! fragments, SFC-aware headers, probes, taps) and pays for that generality on every packet: the
//! interface's entry found and copied by a subprogram, the key zeroed and then filled by the
//! parser of every frame, the header pop. Most packets are none of those cases. `hop` takes them
//! when it can tell, before any side effect, that `try_steer` would decide exactly the same; both
//! then go through the same `next::finish`. Any other packet goes on to `try_steer` with what
//! `hop` found out (its parse, and that its flow is not in the table), so that a packet of no
//! chain or a new flow does not pay for both.

use sfc_common::{
    DropReason,
    limits::PROBE_PORT,
    maps::{
        FLOW_F_REVERSE, IF_F_DECAP, IF_F_LEARN, IF_F_TAP, IfaceEntry, ROLE_DEST, ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE, Meta, iface_direct_slot,
    },
};

use crate::{
    ctx::PacketCtx,
    maps::{SFC_FLOWS_V2, SFC_IFACES_DIR, Scratch},
    parse::{IPPROTO_UDP, Parsed, plain},
    next::finish,
    steer::{Action, entered, from_sf, learn, reply},
};

/// `hop`'s answer.
pub enum Hop {
    /// Steered (or dropped, as `Err`): `try_steer` returns this.
    Steered(Action),
    /// Not steered here, and nothing changed: `try_steer` decides, from what is known.
    Ahead(Ahead),
}

/// What `hop` found out about a packet it left to `try_steer`.
pub struct Ahead {
    /// The packet's parse, its key (zone included) in the scratch: `try_steer` parses nothing
    /// again. `None`: not parsed (not a packet `hop` takes, or not a plain one).
    pub parsed: Option<Parsed>,
    /// The key was looked up and is not in the flow table.
    pub miss: bool,
    /// The frame's source MAC was learnt (`steer::learn`, a learning interface's).
    pub learnt: bool,
}

const UNKNOWN: Hop = Hop::Ahead(Ahead { parsed: None, miss: false, learnt: false });

/// The hit path for a packet that arrived on `ifindex`; errors are the ones `try_steer` returns
/// for the same packet (from `finish`, or the loop guard).
#[inline(always)]
pub fn hop<C: PacketCtx>(ctx: &C, ifindex: u32, meta: Meta, s: &mut Scratch) -> Result<Hop, DropReason> {
    // tc only: XDP's `try_steer` reads its interface from the hash without a copy, and the hit
    // path made its runs no faster while costing its verification 160,000 instructions.
    if !C::IFACE_SLOTS {
        return Ok(UNKNOWN);
    }
    let Some(e) = live_iface(ifindex, meta.bank) else { return Ok(UNKNOWN) };
    let (roles, flags, port_pair, zone, stats_slot) = (e.roles, e.flags, e.port_pair, e.zone, e.stats_slot);
    // Headers to remove, a passive function's return: `try_steer`'s.
    if flags & (IF_F_DECAP | IF_F_TAP) != 0 {
        return Ok(UNKNOWN);
    }
    let sf = roles & (ROLE_SF_EGRESS | ROLE_SF_INGRESS) != 0;
    if !sf && roles & (ROLE_SOURCE | ROLE_DEST) == 0 {
        return Ok(UNKNOWN);
    }
    // A tap (a VM's NIC): its frames teach the MAC behind it, as in `try_steer` (a probe's
    // made-up source MAC teaches nothing).
    let learnt = flags & IF_F_LEARN != 0 && !ctx.is_probe();
    if learnt {
        learn(ctx, ifindex);
    }
    let ahead = |parsed, miss| Ok(Hop::Ahead(Ahead { parsed, miss, learnt }));
    let Some(p) = plain(ctx.data(), ctx.data_end(), &mut s.key, zone) else { return ahead(None, false) };
    // A health probe back from its SF (`probe::returned`) is taken out by `try_steer`.
    if roles & ROLE_SF_EGRESS != 0 && s.key.proto == IPPROTO_UDP && s.key.dport == PROBE_PORT.to_be_bytes() {
        return ahead(Some(p), false);
    }
    let Some(flow) = SFC_FLOWS_V2.get_ptr_mut(&s.key) else { return ahead(Some(p), true) };
    // The cases of `lookup_flow` in its order, each taken only as far as it goes without making
    // or re-resolving a flow.
    // SAFETY: a pointer from a flow-table lookup, valid for this program run (RCU); plain
    // integers, which another CPU writing concurrently can only leave as another valid value.
    let f = unsafe { &*flow };
    let path = if sf {
        // Not on a path through this port pair: recomputed by `try_steer`.
        from_sf(flow, p.ttl, port_pair)
    } else if roles & ROLE_DEST != 0 {
        // The reply of a symmetric chain on its reverse entry. Another entry is `try_steer`'s (a
        // reply recomputed, or a flow of a source port that is also a destination), as is one
        // of an older generation.
        if f.flags & FLOW_F_REVERSE != 0 && f.in_ifindex == ifindex { reply(flow, &p, meta)? } else { None }
    } else if f.generation == meta.generation {
        entered(flow, ifindex, &p)?
    } else {
        // Re-resolved by `try_steer`.
        None
    };
    let Some(path) = path else { return ahead(Some(p), false) };
    s.taps.ifindex = 0;
    s.decap.on = 0;
    finish(ctx, ifindex, port_pair, stats_slot, &p, &path, s, meta).map(Hop::Steered)
}

/// The entry of `ifindex` in the live bank's array slot, where `iface::find` looks first. An
/// interface without a slot of its own is `try_steer`'s.
#[inline(always)]
fn live_iface(ifindex: u32, bank: u32) -> Option<&'static IfaceEntry> {
    let d = SFC_IFACES_DIR.get(iface_direct_slot(bank, ifindex))?;
    (d.ifindex == ifindex && ifindex != 0).then_some(&d.entry)
}
