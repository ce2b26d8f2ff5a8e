//! Picks a port pair group member for a flow: the flow hash on the group's `lb_fields` indexes
//! the group's consistent-hash table, which the loader fills (Maglev, weighted).

use sfc_common::{
    hash::flow_hash,
    limits::{LB_TABLE_SIZE, PORT_PAIR_NONE},
    maps::{FlowKey, LbKey, PP_F_DOWN, banked_id},
};

use crate::maps::{SFC_GROUPS_V2, SFC_LB, port_pair};

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
        if let Some(pp) = unsafe { SFC_LB.get(&LbKey { group: banked_id(bank, group), bucket }) } {
            // Port pair ids are < MAX_PORT_PAIRS (validated), so this never truncates.
            #[allow(clippy::cast_possible_truncation)]
            {
                *slot = *pp as u16;
            }
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
