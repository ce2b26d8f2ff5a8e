//! Where counters are kept in array slots (an array slot costs the datapath no hash lookup per
//! packet): each interface's (`IfaceEntry::stats_slot`, in `SFC_IF_STATS_V3`), and each port
//! pair's at its home hop (`HopHome`, in `SFC_HOP_SLOTS`; `assign_hops`).
//!
//! A slot stays with its interface while either bank has it, so counters carry on across
//! applies, and a slot is given to another interface only once it is in neither bank: a
//! packet still finishing its path under the previous generation's entry never bumps another
//! interface's counters. The loader zeroes a slot before an entry naming it anew is written
//! (`datapath::apply`).

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::{
    limits::{HOP_SLOTS, IF_STATS_SLOTS, MAX_PORT_PAIRS},
    maps::{HopHome, IfaceEntry},
};

use super::Ids;
use crate::model::Model;

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

/// A hop's counters, both directions: (chain id, position of the group in the chain, port pair
/// id), as in `HopStatsKey`.
pub type HopKey = (u32, u32, u32);

/// Every hop of the model's chains (each member of each group at its position), and each port
/// pair's home: its first hop, chains in the model's order (none for a tap group's members).
pub fn hops(model: &Model, ids: &Ids) -> (BTreeSet<HopKey>, BTreeMap<u32, HopKey>) {
    let (mut all, mut homes) = (BTreeSet::new(), BTreeMap::new());
    for chain in &model.port_chains {
        for (hop, &g) in (0u32..).zip(&chain.port_pair_groups) {
            let group = &model.port_pair_groups[g];
            for &p in &group.port_pairs {
                let key = (chain.chain_id, hop, ids.port_pair(&model.port_pairs[p].name));
                all.insert(key);
                // Tap copies count in the hash (`taps.rs`), and an id the homes array has no
                // room for too: no home for either.
                if !group.tap_enabled && key.2 < MAX_PORT_PAIRS {
                    homes.entry(key.2).or_insert(key);
                }
            }
        }
    }
    (all, homes)
}

/// The hop slots as installed: what each slot counts, and the homes (by port pair id).
#[derive(Debug, Default)]
pub struct InstalledHops {
    pub keys: BTreeMap<u16, HopKey>,
    pub homes: BTreeMap<u32, HopHome>,
}

/// The homes to install for `homes` (port pair id -> its home hop), and the slots given anew
/// (to be zeroed and keyed before a home names them). A home's hop keeps the slot it has; a new
/// one gets the lowest slot no installed home points to whose hop `model_hops` no longer has
/// (that hop's counts would otherwise be shown again, and the packets of a home being replaced
/// may still be on their way). Port pairs with an installed home and none now get an empty one.
/// A home finding no free slot gets none: its counters stay in the hash.
pub fn assign_hops(homes: &BTreeMap<u32, HopKey>, model_hops: &BTreeSet<HopKey>, installed: &InstalledHops) -> (BTreeMap<u32, HopHome>, BTreeMap<u16, HopKey>) {
    let slot_of: BTreeMap<HopKey, u16> = installed.keys.iter().map(|(s, k)| (*k, *s)).collect();
    let pointed: BTreeSet<u16> = installed.homes.values().map(|h| h.slot).collect();
    let taken: BTreeSet<u16> = homes.values().filter_map(|k| slot_of.get(k).copied()).collect();
    let mut free = (1..HOP_SLOTS).filter_map(|s| u16::try_from(s).ok()).filter(|s| {
        !pointed.contains(s) && !taken.contains(s) && installed.keys.get(s).is_none_or(|k| !model_hops.contains(k))
    });
    let (mut out, mut fresh) = (BTreeMap::new(), BTreeMap::new());
    for (pp, key) in homes {
        let slot = match slot_of.get(key) {
            Some(s) => Some(*s),
            None => free.next().inspect(|s| {
                fresh.insert(*s, *key);
            }),
        };
        if let (Some(slot), Ok(hop)) = (slot, u16::try_from(key.1)) {
            out.insert(*pp, HopHome { chain_id: key.0, hop, slot });
        }
    }
    for pp in installed.homes.keys() {
        out.entry(*pp).or_default();
    }
    (out, fresh)
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

    fn installed(homes: &BTreeMap<u32, HopHome>, keys: &[(u16, HopKey)]) -> InstalledHops {
        InstalledHops { keys: keys.iter().copied().collect(), homes: homes.clone() }
    }

    #[test]
    fn hop_homes_keep_their_slots_and_take_only_slots_nothing_uses() {
        // pp 7 at hop 0 of chain 1, pp 8 at hop 1; then pp 8 moves to chain 2 (its chain-1 hop
        // is gone), pp 9 comes.
        let a = BTreeMap::from([(7, (1, 0, 7)), (8, (1, 1, 8))]);
        let all: BTreeSet<HopKey> = a.values().copied().collect();
        let (homes, fresh) = assign_hops(&a, &all, &InstalledHops::default());
        assert_eq!(fresh, BTreeMap::from([(1, (1, 0, 7)), (2, (1, 1, 8))]));
        assert_eq!(homes[&8], HopHome { chain_id: 1, hop: 1, slot: 2 });
        let inst = installed(&homes, &[(1, (1, 0, 7)), (2, (1, 1, 8))]);
        let b = BTreeMap::from([(7, (1, 0, 7)), (8, (2, 0, 8)), (9, (1, 1, 9))]);
        let all: BTreeSet<HopKey> = b.values().copied().collect();
        let (homes, fresh) = assign_hops(&b, &all, &inst);
        // Slot 2 is still pointed at by pp 8's installed home: not given yet.
        assert_eq!(fresh, BTreeMap::from([(3, (2, 0, 8)), (4, (1, 1, 9))]));
        assert_eq!(homes[&7].slot, 1);
        // Once no home points at it, and the model lacks its hop, slot 2 is free.
        let inst = installed(&homes, &[(1, (1, 0, 7)), (2, (1, 1, 8)), (3, (2, 0, 8)), (4, (1, 1, 9))]);
        let c = BTreeMap::from([(7, (1, 0, 7)), (8, (2, 0, 8)), (9, (1, 1, 9)), (10, (3, 0, 10))]);
        let (homes, fresh) = assign_hops(&c, &c.values().copied().collect(), &inst);
        assert_eq!(fresh, BTreeMap::from([(2, (3, 0, 10))]));
        // A port pair no longer in a chain gets an empty home.
        let inst = installed(&homes, &[(1, (1, 0, 7)), (2, (3, 0, 10)), (3, (2, 0, 8)), (4, (1, 1, 9))]);
        let d = BTreeMap::from([(7, (1, 0, 7))]);
        let (homes, fresh) = assign_hops(&d, &d.values().copied().collect(), &inst);
        assert!(fresh.is_empty());
        assert_eq!(homes[&10], HopHome::default());
        assert_eq!(homes[&7].slot, 1);
    }

    #[test]
    fn a_hop_the_model_still_has_keeps_its_slot_after_its_home_moved() {
        // pp 8 is in chains 1 and 2; its home was chain 1, and chain 1 now comes later: its
        // chain-1 slot keeps its counts (the model has that hop), the new home gets a new slot.
        let inst = installed(&BTreeMap::from([(8, HopHome { chain_id: 1, hop: 0, slot: 1 })]), &[(1, (1, 0, 8))]);
        let homes = BTreeMap::from([(8, (2, 0, 8))]);
        let all = BTreeSet::from([(1, 0, 8), (2, 0, 8)]);
        let (out, fresh) = assign_hops(&homes, &all, &inst);
        assert_eq!(fresh, BTreeMap::from([(2, (2, 0, 8))]));
        assert_eq!(out[&8].slot, 2);
    }

    #[test]
    fn a_frozen_slot_is_kept_while_the_model_has_its_hop() {
        // pp 8's home moved from chain 1 to chain 2 an apply ago: no home points at slot 1 any
        // more, but the model still has chain 1's hop, whose counts slot 1 holds.
        let inst = installed(&BTreeMap::from([(8, HopHome { chain_id: 2, hop: 0, slot: 2 })]), &[(1, (1, 0, 8)), (2, (2, 0, 8))]);
        let homes = BTreeMap::from([(8, (2, 0, 8)), (9, (3, 0, 9))]);
        let all = BTreeSet::from([(1, 0, 8), (2, 0, 8), (3, 0, 9)]);
        let (out, fresh) = assign_hops(&homes, &all, &inst);
        assert_eq!(fresh, BTreeMap::from([(3, (3, 0, 9))]), "slot 1 is not given while the model has (1, 0, 8)");
        assert_eq!(out[&8].slot, 2);
        // Once chain 1 is gone, slot 1 is free.
        let all = BTreeSet::from([(2, 0, 8), (3, 0, 9)]);
        let (_, fresh) = assign_hops(&homes, &all, &inst);
        assert_eq!(fresh, BTreeMap::from([(1, (3, 0, 9))]));
    }

    #[test]
    fn when_every_free_slot_is_gone_the_banks_slots_are_used() {
        let installed: Slots = (1..IF_STATS_SLOTS).map(|s| (1000 + s, u16::try_from(s).unwrap())).collect();
        let mut a = entries(&[1, 2]);
        assign(&mut a, &installed);
        assert_eq!(slots(&a), [(1, 1), (2, 2)]);
    }
}
