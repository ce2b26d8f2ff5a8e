//! `SFC_IFACES_DIR`: the interfaces' entries of `SFC_IFACES_V4` again, in array slots by
//! ifindex (`sfc_common::maps::IfaceDirect`), so that the program finds an interface's role
//! without hashing. The hash stays the record: an apply writes a bank's slots with the bank's
//! hash entries, before the flip; a slot that holds another interface (two of one bank share
//! it: the lowest ifindex has it) or none sends the program to the hash.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::{Array, MapData};
use sfc_common::{
    limits::IFACE_DIRECT_SLOTS,
    maps::{IfaceDirect, IfaceEntry, MAP_IFACES_DIRECT, iface_direct_slot},
};

use super::{
    Location, Result,
    maps::{map_err, typed},
};

/// The slot (within a bank) that interface `ifindex` may have.
pub fn slot_of(ifindex: u32) -> u32 {
    iface_direct_slot(0, ifindex)
}

/// What one bank's slots hold for `ifaces`, by slot (slots not listed are empty).
pub fn slots(ifaces: &BTreeMap<u32, IfaceEntry>) -> BTreeMap<u32, IfaceDirect> {
    let mut out = BTreeMap::new();
    // In ifindex order: the lowest of those that share a slot has it.
    for (ifindex, entry) in ifaces {
        out.entry(slot_of(*ifindex)).or_insert(IfaceDirect { ifindex: *ifindex, entry: *entry });
    }
    out
}

/// Writes bank `bank`'s slots for `ifaces` (what the bank's hash entries are being made):
/// every slot of the bank when `touched` is `None` (nothing is known of what the slots hold),
/// else the slots of the interfaces in `touched` (those added, changed or removed). A datapath
/// whose program has no such map (pinned by an older sfc) is left as it is.
pub fn write(loc: &Location, bank: u32, ifaces: &BTreeMap<u32, IfaceEntry>, touched: Option<&BTreeSet<u32>>) -> Result<()> {
    if !loc.map_pin(MAP_IFACES_DIRECT).exists() {
        return Ok(());
    }
    let mut m: Array<MapData, IfaceDirect> = typed(loc, MAP_IFACES_DIRECT)?;
    let want = slots(ifaces);
    let which: Box<dyn Iterator<Item = u32>> = match touched {
        None => Box::new(0..IFACE_DIRECT_SLOTS),
        Some(t) => Box::new(t.iter().map(|i| slot_of(*i)).collect::<BTreeSet<u32>>().into_iter()),
    };
    for slot in which {
        let v = want.get(&slot).copied().unwrap_or_default();
        m.set(iface_direct_slot(bank, slot), v, 0).map_err(map_err(MAP_IFACES_DIRECT, "writing"))?;
    }
    Ok(())
}

/// Bank `bank`'s slots that hold an interface: (slot, what it holds).
pub fn read(loc: &Location, bank: u32) -> Result<Vec<(u32, IfaceDirect)>> {
    let m: Array<MapData, IfaceDirect> = typed(loc, MAP_IFACES_DIRECT)?;
    let mut out = Vec::new();
    for slot in 0..IFACE_DIRECT_SLOTS {
        let v = m.get(&iface_direct_slot(bank, slot), 0).map_err(map_err(MAP_IFACES_DIRECT, "reading"))?;
        if v.ifindex != 0 {
            out.push((slot, v));
        }
    }
    Ok(out)
}

/// Whether both banks' slots hold exactly what `slots` gives for the bank's hash entries (the
/// tests' check after applies; `sfc map dump SFC_IFACES_DIR` compares them slot by slot).
pub fn check(loc: &Location) -> Result<std::result::Result<(), String>> {
    let hashed = super::maps::hash_entries::<u32, IfaceEntry>(loc, sfc_common::maps::MAP_IFACES)?;
    for bank in 0..2 {
        let mine: BTreeMap<u32, IfaceEntry> = hashed
            .iter()
            .filter(|(k, _)| sfc_common::maps::unbanked_id(**k).0 == bank)
            .map(|(k, e)| (sfc_common::maps::unbanked_id(*k).1, *e))
            .collect();
        let want: Vec<(u32, IfaceDirect)> = slots(&mine).into_iter().collect();
        let have = read(loc, bank)?;
        if have != want {
            return Ok(Err(format!("bank {bank}: the interface slots hold {have:?}, the hash gives {want:?}")));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_ifindex_has_a_shared_slot() {
        let e = |zone| IfaceEntry { zone, ..IfaceEntry::default() };
        let ifaces = BTreeMap::from([(3, e(1)), (3 + IFACE_DIRECT_SLOTS, e(2)), (7, e(3)), (2 * IFACE_DIRECT_SLOTS + 3, e(4))]);
        let s = slots(&ifaces);
        assert_eq!(s.len(), 2);
        assert_eq!(s[&3], IfaceDirect { ifindex: 3, entry: e(1) });
        assert_eq!(s[&7], IfaceDirect { ifindex: 7, entry: e(3) });
        assert_eq!(slot_of(3 + IFACE_DIRECT_SLOTS), 3);
    }

    #[test]
    fn banks_have_slots_of_their_own() {
        assert_eq!(iface_direct_slot(0, 5), 5);
        assert_eq!(iface_direct_slot(1, 5), IFACE_DIRECT_SLOTS + 5);
        assert_eq!(iface_direct_slot(1, IFACE_DIRECT_SLOTS + 5), IFACE_DIRECT_SLOTS + 5);
    }
}
