//! Picks a port pair group member for a flow: the flow hash on the group's `lb_fields` indexes
//! the group's consistent-hash table, which the loader fills (Maglev, weighted).

use sfc_common::{
    hash::flow_hash,
    limits::LB_TABLE_SIZE,
    maps::{FlowKey, GroupEntry, LbKey},
};

use crate::maps::{SFC_GROUPS, SFC_LB};

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

/// A BPF subprogram (not inlined): called once per hop when a flow is created, so its stack is
/// shared instead of being unrolled into the caller. Returns a port pair id or `PICK_*`.
#[inline(never)]
pub fn pick(group: u32, key: &FlowKey) -> u32 {
    let Some(g) = (unsafe { SFC_GROUPS.get(&group) }) else {
        return PICK_DOWN;
    };
    if g.n_members == 0 {
        return down(g);
    }
    let bucket = flow_hash(key, g.lb_fields) % LB_TABLE_SIZE;
    match unsafe { SFC_LB.get(&LbKey { group, bucket }) } {
        Some(pp) => *pp,
        None => down(g),
    }
}

#[inline(always)]
fn down(g: &GroupEntry) -> u32 {
    if g.failure_policy == sfc_common::maps::FAIL_OPEN { PICK_SKIP } else { PICK_DOWN }
}
