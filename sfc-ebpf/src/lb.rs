//! Picks a port pair group member for a flow: the flow hash on the group's `lb_fields` indexes
//! the group's consistent-hash table, which the loader fills (Maglev, weighted).

use sfc_common::{
    hash::flow_hash,
    limits::{LB_TABLE_SIZE, PORT_PAIR_NONE},
    maps::{FlowKey, PP_F_DOWN, banked_id},
};

use crate::maps::{SFC_GROUPS_V2, SFC_LB_V2, port_pair};

/// `pick` returns: the slot holds a port pair (or `PORT_PAIR_NONE` for a fail-open skip).
pub const PICK_OK: u32 = 0;
/// `pick` returns: no member is usable and the group fails closed (or is missing).
pub const PICK_DOWN: u32 = 1;

/// A BPF subprogram (not inlined), called once per hop when a flow is (re)resolved, so its
/// stack is shared instead of unrolled into the caller. It writes the member (or
/// `PORT_PAIR_NONE` for a fail-open skip) into `slot` and says only whether the hop is usable.
///
/// `old` is the member the flow had at this hop before (or `PORT_PAIR_NONE`): it is kept while it
/// still belongs to `group` and is not down, also when it is draining. So a flow's path changes
/// only where its chain changed, and removed members drain instead of cutting their flows.
#[inline(never)]
pub fn pick(bank: u32, group: u32, key: &FlowKey, old: u32, slot: &mut u16) -> u32 {
    if old != u32::from(PORT_PAIR_NONE)
        && let Some(pp) = port_pair(old)
            && pp.group == group && pp.flags & PP_F_DOWN == 0 {
                #[allow(clippy::cast_possible_truncation)]
                {
                    *slot = old as u16;
                }
                return PICK_OK;
            }
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
    let Some(g) = (unsafe { SFC_GROUPS_V2.get(&banked_id(bank, group)) }) else {
        return PICK_DOWN;
    };
    if g.n_members != 0 {
        let bucket = flow_hash(key, g.lb_fields) % LB_TABLE_SIZE;
        // Through memory: LLVM knows a remainder is below the table's length and drops the
        // bounds check below, which the verifier needs to see the table index bounded.
        // SAFETY: a local's own address.
        let bucket = unsafe { core::ptr::read_volatile(&raw const bucket) } as usize;
        // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
        if let Some(table) = unsafe { SFC_LB_V2.get(&banked_id(bank, group)) }
            && let Some(&pp) = table.members.get(bucket)
            && pp != PORT_PAIR_NONE
        {
            *slot = pp;
            return PICK_OK;
        }
    }
    if g.failure_policy == sfc_common::maps::FAIL_OPEN {
        *slot = PORT_PAIR_NONE;
        PICK_OK
    } else {
        PICK_DOWN
    }
}
