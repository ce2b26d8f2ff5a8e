//! Picks a port pair group member for a flow: the flow hash on the group's `lb_fields` indexes
//! the group's consistent-hash table, which the loader fills (Maglev, weighted).

use sfc_common::{
    hash::flow_hash,
    limits::{LB_TABLE_SIZE, PORT_PAIR_NONE},
    maps::{FlowKey, GroupEntry, LbKey, PP_F_DOWN, banked_id},
};

use crate::maps::{SFC_GROUPS, SFC_LB, SFC_PORT_PAIRS};

/// What the group says for this flow.
pub enum Pick {
    /// This port pair.
    Member(u16),
    /// No member is usable and the group fails open: skip the hop.
    Skip,
    /// No member is usable and the group fails closed (or the group is missing).
    Down,
}

const PICK_SKIP: u32 = 0x1_0000;
const PICK_DOWN: u32 = 0x2_0000;

impl From<u32> for Pick {
    #[inline(always)]
    fn from(v: u32) -> Self {
        match v {
            PICK_SKIP => Pick::Skip,
            PICK_DOWN => Pick::Down,
            // Port pair ids are < MAX_PORT_PAIRS (validated), so this never truncates.
            #[allow(clippy::cast_possible_truncation)]
            pp => Pick::Member(pp as u16),
        }
    }
}

/// A BPF subprogram (not inlined): called once per hop when a flow is (re)resolved, so its stack
/// is shared instead of being unrolled into the caller. Returns a port pair id or `PICK_*`.
///
/// `old` is the member the flow had at this hop before (or `PORT_PAIR_NONE`): it is kept while it
/// still belongs to `group` and is not down, also when it is draining. So a flow's path changes
/// only where its chain changed, and removed members drain instead of cutting their flows.
#[inline(never)]
pub fn pick(bank: u32, group: u32, key: &FlowKey, old: u32) -> u32 {
    if old != u32::from(PORT_PAIR_NONE) {
        if let Some(pp) = unsafe { SFC_PORT_PAIRS.get(&old) } {
            if pp.group == group && pp.flags & PP_F_DOWN == 0 {
                return old;
            }
        }
    }
    let Some(g) = (unsafe { SFC_GROUPS.get(&banked_id(bank, group)) }) else {
        return PICK_DOWN;
    };
    if g.n_members == 0 {
        return down(g);
    }
    let bucket = flow_hash(key, g.lb_fields) % LB_TABLE_SIZE;
    match unsafe { SFC_LB.get(&LbKey { group: banked_id(bank, group), bucket }) } {
        Some(pp) => *pp,
        None => down(g),
    }
}

#[inline(always)]
fn down(g: &GroupEntry) -> u32 {
    if g.failure_policy == sfc_common::maps::FAIL_OPEN { PICK_SKIP } else { PICK_DOWN }
}
