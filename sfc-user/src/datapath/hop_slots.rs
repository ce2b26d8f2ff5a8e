//! Hop counters in array slots (`HopHome`, `compile::slots::assign_hops`): which slot each port
//! pair's home hop counts into, installed by every apply before its flip, and the slots' counts
//! for `sfc stats`.
//!
//! Port pair homes are not banked (as port pairs are not): a home is rewritten in place. A hop
//! keeps its slot for as long as the model has it, so its counts carry on; a slot is given to
//! another hop only once no installed home points to it and the model no longer has its hop,
//! and it is zeroed first.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues};
use sfc_common::{
    limits::HOP_SLOTS,
    maps::{Counter, HopHome, HopStatsKey, MAP_HOP_HOMES, MAP_HOP_KEYS, MAP_HOP_SLOTS},
};

use super::{
    Location, Result, io_err,
    maps::{map_err, read_hash, typed},
};
use crate::{
    compile::{
        Ids,
        slots::{self, InstalledHops},
    },
    model::Model,
};

/// The slots as installed: what each counts, and the homes that point to them.
fn installed(loc: &Location) -> Result<InstalledHops> {
    let keys: HashMap<MapData, u32, HopStatsKey> = typed(loc, MAP_HOP_KEYS)?;
    let homes: Array<MapData, HopHome> = typed(loc, MAP_HOP_HOMES)?;
    let mut out = InstalledHops::default();
    for (slot, k) in read_hash(&keys, MAP_HOP_KEYS)? {
        let Ok(slot) = u16::try_from(slot) else { continue };
        out.keys.insert(slot, (k.chain_id, k.hop, k.port_pair));
    }
    // Every home written has its slot's key written first: the port pairs that may have one.
    let candidates: BTreeSet<u32> = out.keys.values().map(|k| k.2).collect();
    for pp in candidates {
        let h = homes.get(&pp, 0).map_err(map_err(MAP_HOP_HOMES, "reading"))?;
        if h.slot != 0 {
            out.homes.insert(pp, h);
        }
    }
    Ok(out)
}

/// Installs the homes of `model`'s port pairs (`ids`): slots given anew are zeroed and keyed
/// first, then the homes written. Returns how many slots were given anew. Every apply does it
/// before its flip; a harness writing compiled maps itself (`Maps::write`) calls it after.
pub fn install(loc: &Location, model: &Model, ids: &Ids) -> Result<usize> {
    let before = installed(loc)?;
    let (all, homes) = slots::hops(model, ids);
    let (homes, fresh) = slots::assign_hops(&homes, &all, &before);
    let mut counters: PerCpuArray<MapData, Counter> = typed(loc, MAP_HOP_SLOTS)?;
    let mut keys: HashMap<MapData, u32, HopStatsKey> = typed(loc, MAP_HOP_KEYS)?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| io_err(what)(e))?;
    for (slot, key) in &fresh {
        for dir in 0..2 {
            let zeros = PerCpuValues::try_from(vec![Counter::default(); cpus]).map_err(io_err(format!("{MAP_HOP_SLOTS}: zeroing")))?;
            counters.set(u32::from(*slot) * 2 + dir, zeros, 0).map_err(map_err(MAP_HOP_SLOTS, "zeroing"))?;
        }
        let k = HopStatsKey { chain_id: key.0, hop: key.1, port_pair: key.2, dir: 0 };
        keys.insert(u32::from(*slot), k, 0).map_err(map_err(MAP_HOP_KEYS, "writing"))?;
    }
    let mut array: Array<MapData, HopHome> = typed(loc, MAP_HOP_HOMES)?;
    for (pp, home) in homes.iter().filter(|(pp, h)| before.homes.get(*pp).copied().unwrap_or_default() != **h) {
        array.set(*pp, *home, 0).map_err(map_err(MAP_HOP_HOMES, "writing"))?;
    }
    Ok(fresh.len())
}

/// The slots' counts by hop (both directions), summed over CPUs; none when the datapath was
/// installed by a loader from before the slots.
pub fn counts(loc: &Location) -> Result<BTreeMap<HopStatsKey, Counter>> {
    let mut out = BTreeMap::new();
    if !loc.map_pin(MAP_HOP_KEYS).exists() || !loc.map_pin(MAP_HOP_SLOTS).exists() {
        return Ok(out);
    }
    let keys: HashMap<MapData, u32, HopStatsKey> = typed(loc, MAP_HOP_KEYS)?;
    let counters: PerCpuArray<MapData, Counter> = typed(loc, MAP_HOP_SLOTS)?;
    // A slot past the array (a corrupt key) is skipped, not an error for every reader.
    for (slot, key) in read_hash(&keys, MAP_HOP_KEYS)?.into_iter().filter(|(slot, _)| (1..HOP_SLOTS).contains(slot)) {
        for dir in 0..2u32 {
            let per_cpu = counters.get(&(slot * 2 + dir), 0).map_err(map_err(MAP_HOP_SLOTS, "reading"))?;
            let sum: &mut Counter = out.entry(HopStatsKey { dir, ..key }).or_default();
            for c in &*per_cpu {
                sum.add(c.packets, c.bytes);
            }
        }
    }
    Ok(out)
}
