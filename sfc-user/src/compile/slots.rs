//! Where each interface's counters are: `IfaceEntry::stats_slot`, a slot of the per-CPU array
//! `SFC_IF_STATS_V3` (an array slot costs the datapath no hash lookup per packet).
//!
//! A slot stays with its interface while either bank has it, so counters carry on across
//! applies, and a slot is given to another interface only once it is in neither bank: a
//! packet still finishing its path under the previous generation's entry never bumps another
//! interface's counters. The loader zeroes a slot before an entry naming it anew is written
//! (`datapath::apply`).

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::{limits::IF_STATS_SLOTS, maps::IfaceEntry};

/// ifindex -> slot, as installed: both banks' entries, the live bank's where they differ.
pub type Slots = BTreeMap<u32, u16>;

/// Gives every entry of `ifaces` a slot: the one `installed` gives its ifindex, else the lowest
/// one no interface in `installed` holds. Slot 0 is none (what entries written before slots
/// existed hold); it is never given.
pub fn assign(ifaces: &mut BTreeMap<u32, IfaceEntry>, installed: &Slots) {
    let mut taken = BTreeSet::new();
    let mut fresh = Vec::new();
    for (ifindex, e) in ifaces.iter_mut() {
        match installed.get(ifindex) {
            Some(&s) if s != 0 && taken.insert(s) => e.stats_slot = s,
            _ => fresh.push(e),
        }
    }
    if fresh.is_empty() {
        return;
    }
    // The slots of interfaces in neither the new entries nor the banks are free; those of
    // interfaces only in the banks are used once there are no others (more interfaces than
    // `IF_STATS_SLOTS` in the banks and the new entries together: they are zeroed too).
    let held: BTreeSet<u16> = installed.values().copied().collect();
    let slots = || (1..IF_STATS_SLOTS).filter_map(|s| u16::try_from(s).ok());
    let mut free = slots().filter(|s| !held.contains(s) && !taken.contains(s)).chain(slots().filter(|s| held.contains(s) && !taken.contains(s)));
    for e in fresh {
        e.stats_slot = free.next().unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(ifindexes: &[u32]) -> BTreeMap<u32, IfaceEntry> {
        ifindexes.iter().map(|i| (*i, IfaceEntry { roles: 1, ..IfaceEntry::default() })).collect()
    }

    fn slots(ifaces: &BTreeMap<u32, IfaceEntry>) -> Vec<(u32, u16)> {
        ifaces.iter().map(|(i, e)| (*i, e.stats_slot)).collect()
    }

    #[test]
    fn slots_stay_with_their_interfaces_and_are_reused_only_when_free() {
        let mut a = entries(&[10, 20, 30]);
        assign(&mut a, &Slots::new());
        assert_eq!(slots(&a), [(10, 1), (20, 2), (30, 3)]);
        // 20 leaves, 5 and 40 come: 20's slot is still in a bank, so not given.
        let installed: Slots = a.iter().map(|(i, e)| (*i, e.stats_slot)).collect();
        let mut b = entries(&[5, 10, 30, 40]);
        assign(&mut b, &installed);
        assert_eq!(slots(&b), [(5, 4), (10, 1), (30, 3), (40, 5)]);
        // Once 20 is in neither bank its slot is free again.
        let installed: Slots = b.iter().map(|(i, e)| (*i, e.stats_slot)).collect();
        let mut c = entries(&[5, 10, 30, 40, 50]);
        assign(&mut c, &installed);
        assert_eq!(slots(&c), [(5, 4), (10, 1), (30, 3), (40, 5), (50, 2)]);
    }

    #[test]
    fn entries_without_slots_and_clashes_get_fresh_ones() {
        // Written before slots existed (0), and two interfaces claiming one slot.
        let installed = Slots::from([(10, 0), (20, 7), (30, 7)]);
        let mut a = entries(&[10, 20, 30]);
        assign(&mut a, &installed);
        assert_eq!(slots(&a), [(10, 1), (20, 7), (30, 2)]);
    }

    #[test]
    fn when_every_free_slot_is_gone_the_banks_slots_are_used() {
        let installed: Slots = (1..IF_STATS_SLOTS).map(|s| (1000 + s, u16::try_from(s).unwrap())).collect();
        let mut a = entries(&[1, 2]);
        assign(&mut a, &installed);
        assert_eq!(slots(&a), [(1, 1), (2, 2)]);
    }
}
