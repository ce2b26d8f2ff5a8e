//! Typed access to the pinned maps: bringing them in line with a compiled state, flushing flows,
//! and reading counters.

use std::collections::BTreeMap;

use aya::{
    Pod,
    maps::{Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, lpm_trie::Key},
};
use sfc_common::{
    DropReason,
    maps::{
        ChainEntry, ClsKey, ClsResult, Counter, FlowEntry, FlowKey, GroupEntry, HopStatsKey,
        IfStats, IfaceEntry, LbKey, MAP_CHAINS, MAP_CLS, MAP_CLS_HASH, MAP_CLS_RES, MAP_DEVMAP, MAP_DROPS, MAP_FLOWS,
        MAP_GROUPS, MAP_HOP_STATS, MAP_IF_STATS, MAP_IFACES, MAP_LB, MAP_META, MAP_PORT_PAIRS,
        Meta, PP_F_DRAINING, PortPairEntry, unbanked_class, unbanked_id,
    },
};

use super::{DatapathError, Location, Result};
use crate::compile::Compiled;

/// Opens the pinned map `name` of the datapath at `loc`.
pub(crate) fn open(loc: &Location, name: &str) -> Result<Map> {
    let path = loc.map_pin(name);
    if !path.exists() {
        return Err(DatapathError::NotInstalled(loc.pin_dir.clone()));
    }
    let data = MapData::from_pin(&path).map_err(|source| DatapathError::Map { what: format!("opening {}", path.display()), source })?;
    Map::from_map_data(data).map_err(|source| DatapathError::Map { what: format!("opening {}", path.display()), source })
}

pub(crate) fn map_err(name: &str, action: &str) -> impl FnOnce(MapError) -> DatapathError {
    let what = format!("{name}: {action}");
    move |source| DatapathError::Map { what, source }
}

/// Opens the pinned map `name` as a typed aya map.
pub(crate) fn typed<T: TryFrom<Map, Error = MapError>>(loc: &Location, name: &str) -> Result<T> {
    T::try_from(open(loc, name)?).map_err(map_err(name, "unexpected map type"))
}

/// Entries added, changed and removed by a write, against the live configuration.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.changed == 0 && self.removed == 0
    }

    fn count<K: Ord, V: PartialEq>(&mut self, live: &BTreeMap<K, V>, want: &BTreeMap<K, V>) {
        for (k, v) in want {
            match live.get(k) {
                None => self.added += 1,
                Some(l) if l != v => self.changed += 1,
                Some(_) => {}
            }
        }
        self.removed += live.keys().filter(|k| !want.contains_key(k)).count();
    }
}

/// What a write did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteReport {
    pub changes: Changes,
    /// The generation now live (unchanged when nothing changed).
    pub generation: u32,
    pub flipped: bool,
}

/// A banked map's content split by bank, with the bank bit removed from the keys.
struct Banked<K, V> {
    live: BTreeMap<K, V>,
    target: BTreeMap<K, V>,
}

fn split<K: Ord + Copy, V>(all: Vec<(K, V)>, bank_of: impl Fn(&K) -> u32, unbank: impl Fn(K) -> K, live: u32) -> Banked<K, V> {
    let mut b = Banked { live: BTreeMap::new(), target: BTreeMap::new() };
    for (k, v) in all {
        if bank_of(&k) == live {
            b.live.insert(unbank(k), v);
        } else {
            b.target.insert(unbank(k), v);
        }
    }
    b
}

fn id_bank(id: u32) -> u32 {
    unbanked_id(id).0
}

fn class_bank(class: u32) -> u32 {
    unbanked_class(class).0
}

/// Brings a hash map's `bank` half to `want` (keys given without the bank bit).
fn sync_hash<K: Pod + Ord, V: Pod + PartialEq>(
    m: &mut HashMap<MapData, K, V>,
    name: &str,
    have: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
    bank: impl Fn(K) -> K,
) -> Result<()> {
    for (k, v) in want {
        if have.get(k) != Some(v) {
            m.insert(bank(*k), v, 0).map_err(map_err(name, "writing"))?;
        }
    }
    for k in have.keys().filter(|k| !want.contains_key(*k)) {
        m.remove(&bank(*k)).map_err(map_err(name, "removing"))?;
    }
    Ok(())
}

/// Every entry of a per-CPU hash map, its values summed over CPUs with `add`.
fn sum_per_cpu<K: Pod + Ord, V: Pod + Default>(
    m: &PerCpuHashMap<MapData, K, V>,
    name: &str,
    add: impl Fn(&mut V, &V),
) -> Result<BTreeMap<K, V>> {
    let mut out = BTreeMap::new();
    for r in m {
        let (k, per_cpu) = r.map_err(map_err(name, "reading"))?;
        let mut sum = V::default();
        for v in &*per_cpu {
            add(&mut sum, v);
        }
        out.insert(k, sum);
    }
    Ok(out)
}

/// The installed port pairs: the array's slots that hold one.
pub(crate) fn read_port_pairs(m: &Array<MapData, PortPairEntry>) -> Result<BTreeMap<u32, PortPairEntry>> {
    let mut out = BTreeMap::new();
    for (id, e) in (0u32..).zip(m.iter()) {
        let e = e.map_err(map_err(MAP_PORT_PAIRS, "reading"))?;
        if e.ingress_ifindex != 0 {
            out.insert(id, e);
        }
    }
    Ok(out)
}

/// Every entry of a hash map. A key removed between two steps of the walk (an LRU eviction, a
/// flow aged out) is gone either way and skipped; any other error is one.
pub(crate) fn read_hash<K: Pod, V: Pod>(m: &HashMap<MapData, K, V>, name: &str) -> Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    for r in m {
        match r {
            Ok(kv) => out.push(kv),
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(name, "reading")(e)),
        }
    }
    Ok(out)
}

/// Every entry of the pinned hash map `name`, by key.
pub(crate) fn hash_entries<K: Pod + Ord, V: Pod>(loc: &Location, name: &str) -> Result<BTreeMap<K, V>> {
    let m: HashMap<MapData, K, V> = typed(loc, name)?;
    Ok(read_hash(&m, name)?.into_iter().collect())
}

/// The pinned maps of one datapath.
pub struct Maps<'a> {
    loc: &'a Location,
}

impl<'a> Maps<'a> {
    pub fn open(loc: &'a Location) -> Result<Self> {
        // Fail early and clearly when nothing is installed.
        open(loc, MAP_IFACES)?;
        Ok(Self { loc })
    }

    /// The live bank and generation.
    pub fn meta(&self) -> Result<Meta> {
        let m: Array<MapData, Meta> = typed(self.loc, MAP_META)?;
        m.get(&0, 0).map_err(map_err(MAP_META, "reading"))
    }

    /// Installs `c` as the next generation: the inactive bank of every configuration map is
    /// written in full, port pairs (not banked: stable ids) are added or updated and `draining`
    /// ones kept with `PP_F_DRAINING`, then one write of `SFC_META` makes it all live at once.
    /// Port pairs in neither set are removed after the flip. With nothing to change (and
    /// `force` false) nothing is written and the generation stays.
    #[expect(clippy::too_many_lines, reason = "the steps of a generation write, in the order they must happen")]
    pub fn write(&mut self, c: &Compiled, draining: &BTreeMap<u32, PortPairEntry>, force: bool) -> Result<WriteReport> {
        let meta = self.meta()?;
        let live = meta.bank & 1;
        let target = live ^ 1;

        let mut ifaces: HashMap<MapData, u32, IfaceEntry> = typed(self.loc, MAP_IFACES)?;
        let mut chains: HashMap<MapData, u32, ChainEntry> = typed(self.loc, MAP_CHAINS)?;
        let mut groups: HashMap<MapData, u32, GroupEntry> = typed(self.loc, MAP_GROUPS)?;
        let mut lb: HashMap<MapData, LbKey, u32> = typed(self.loc, MAP_LB)?;
        let mut res: HashMap<MapData, u32, ClsResult> = typed(self.loc, MAP_CLS_RES)?;
        let mut pps: Array<MapData, PortPairEntry> = typed(self.loc, MAP_PORT_PAIRS)?;
        let mut trie: LpmTrie<MapData, ClsKey, u32> = typed(self.loc, MAP_CLS)?;
        let mut cls_hash: HashMap<MapData, ClsKey, u32> = typed(self.loc, MAP_CLS_HASH)?;

        let unid = |k: u32| unbanked_id(k).1;
        let uncl = |k: u32| unbanked_class(k).1;
        let b_ifaces = split(read_hash(&ifaces, MAP_IFACES)?, |k| id_bank(*k), unid, live);
        let b_chains = split(read_hash(&chains, MAP_CHAINS)?, |k| id_bank(*k), unid, live);
        let b_groups = split(read_hash(&groups, MAP_GROUPS)?, |k| id_bank(*k), unid, live);
        let b_lb = split(read_hash(&lb, MAP_LB)?, |k| id_bank(k.group), |k| LbKey { group: unid(k.group), ..k }, live);
        let b_res_raw = split(read_hash(&res, MAP_CLS_RES)?, |k| class_bank(*k), uncl, live);
        // Result values are not banked; trie keys and values are.
        let trie_all: Vec<((u32, ClsKey), u32)> = trie
            .iter()
            .map(|r| r.map(|(k, v)| ((k.prefix_len(), k.data()), v)))
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(MAP_CLS, "reading"))?;
        let trie_bank = |k: &(u32, ClsKey)| class_bank(u32::from_be_bytes(k.1.class));
        let trie_unbank = |(bits, k): (u32, ClsKey)| (bits, ClsKey { class: uncl(u32::from_be_bytes(k.class)).to_be_bytes(), ..k });
        let mut b_trie = split(trie_all, trie_bank, trie_unbank, live);
        for v in b_trie.live.values_mut().chain(b_trie.target.values_mut()) {
            *v = uncl(*v);
        }
        // Hash keys and values are banked classes (the wild bit stays where it is).
        let key_unbank = |k: ClsKey| ClsKey { class: uncl(u32::from_be_bytes(k.class)).to_be_bytes(), ..k };
        let mut b_hash = split(read_hash(&cls_hash, MAP_CLS_HASH)?, |k| class_bank(u32::from_be_bytes(k.class)), key_unbank, live);
        for v in b_hash.live.values_mut().chain(b_hash.target.values_mut()) {
            *v = uncl(*v);
        }
        let pps_have = read_port_pairs(&pps)?;
        let mut pps_want = c.port_pairs.clone();
        for (id, e) in draining {
            pps_want.entry(*id).or_insert(PortPairEntry { flags: e.flags | PP_F_DRAINING, ..*e });
        }

        let mut changes = Changes::default();
        changes.count(&b_ifaces.live, &c.ifaces);
        changes.count(&b_chains.live, &c.chains);
        changes.count(&b_groups.live, &c.groups);
        changes.count(&b_lb.live, &c.lb);
        changes.count(&b_res_raw.live, &c.cls_res);
        changes.count(&b_trie.live, &c.cls);
        changes.count(&b_hash.live, &c.cls_hash);
        changes.count(&pps_have, &pps_want);
        // Redirect targets are added even when nothing else changed (a datapath pinned by an
        // older sfc has an empty devmap); adding is harmless to whatever is live.
        let mut devmap: DevMapHash<MapData> = typed(self.loc, MAP_DEVMAP)?;
        let dev_have: std::collections::BTreeSet<u32> =
            devmap.keys().collect::<std::result::Result<_, _>>().map_err(map_err(MAP_DEVMAP, "reading"))?;
        let dev_want: std::collections::BTreeSet<u32> = c
            .redirect_targets
            .iter()
            .copied()
            .chain(draining.values().flat_map(|e| [e.ingress_ifindex, e.egress_ifindex]))
            .collect();
        for ifindex in dev_want.difference(&dev_have) {
            devmap.insert(*ifindex, *ifindex, None, 0).map_err(|e| DatapathError::Other(format!(
                "{MAP_DEVMAP}: adding ifindex {ifindex} (XDP redirect target): {e}"
            )))?;
        }
        // A fresh datapath has generation 0 and nothing live: it always gets its first flip.
        if changes.is_empty() && !force && meta.generation != 0 {
            return Ok(WriteReport { changes, generation: meta.generation, flipped: false });
        }

        // 1. Port pairs first (redirect targets are in already): whatever the new bank points at
        //    must exist when it goes live.
        for (id, e) in &pps_want {
            if pps_have.get(id) != Some(e) {
                pps.set(*id, e, 0).map_err(map_err(MAP_PORT_PAIRS, "writing"))?;
            }
        }
        // 2. The inactive bank, in full.
        let bid = |k: u32| sfc_common::maps::banked_id(target, k);
        let bcl = |k: u32| sfc_common::maps::banked_class(target, k);
        sync_hash(&mut ifaces, MAP_IFACES, &b_ifaces.target, &c.ifaces, bid)?;
        sync_hash(&mut chains, MAP_CHAINS, &b_chains.target, &c.chains, bid)?;
        sync_hash(&mut groups, MAP_GROUPS, &b_groups.target, &c.groups, bid)?;
        sync_hash(&mut lb, MAP_LB, &b_lb.target, &c.lb, |k| LbKey { group: bid(k.group), ..k })?;
        sync_hash(&mut res, MAP_CLS_RES, &b_res_raw.target, &c.cls_res, bcl)?;
        for ((bits, key), v) in &c.cls {
            if b_trie.target.get(&(*bits, *key)) != Some(v) {
                let k = ClsKey { class: bcl(u32::from_be_bytes(key.class)).to_be_bytes(), ..*key };
                trie.insert(&Key::new(*bits, k), bcl(*v), 0).map_err(map_err(MAP_CLS, "writing"))?;
            }
        }
        for (bits, key) in b_trie.target.keys().filter(|k| !c.cls.contains_key(*k)) {
            let k = ClsKey { class: bcl(u32::from_be_bytes(key.class)).to_be_bytes(), ..*key };
            trie.remove(&Key::new(*bits, k)).map_err(map_err(MAP_CLS, "removing"))?;
        }
        let key_bank = |k: ClsKey| ClsKey { class: bcl(u32::from_be_bytes(k.class)).to_be_bytes(), ..k };
        for (key, v) in &c.cls_hash {
            if b_hash.target.get(key) != Some(v) {
                cls_hash.insert(key_bank(*key), bcl(*v), 0).map_err(map_err(MAP_CLS_HASH, "writing"))?;
            }
        }
        for key in b_hash.target.keys().filter(|k| !c.cls_hash.contains_key(*k)) {
            cls_hash.remove(&key_bank(*key)).map_err(map_err(MAP_CLS_HASH, "removing"))?;
        }
        // 3. The flip: one array element, so every packet sees either generation, whole.
        let next = Meta { bank: target, generation: meta.generation.wrapping_add(1).max(1) };
        let mut m: Array<MapData, Meta> = typed(self.loc, MAP_META)?;
        m.set(0, next, 0).map_err(map_err(MAP_META, "flipping the generation"))?;
        // 4. Port pairs nothing refers to any more (their drain ended), and redirect targets
        //    neither the new generation nor the one live until now has (packets of the old one
        //    may still be on their way through it).
        for id in pps_have.keys().filter(|id| !pps_want.contains_key(*id)) {
            pps.set(*id, PortPairEntry::default(), 0).map_err(map_err(MAP_PORT_PAIRS, "removing"))?;
        }
        for ifindex in dev_have.iter().filter(|i| !dev_want.contains(i) && !b_ifaces.live.contains_key(i)) {
            devmap.remove(*ifindex).map_err(map_err(MAP_DEVMAP, "removing"))?;
        }
        Ok(WriteReport { changes, generation: next.generation, flipped: true })
    }

    /// Interfaces the live generation gives a role (those that need the program now).
    pub fn live_ifaces(&self) -> Result<std::collections::BTreeSet<u32>> {
        let live = self.meta()?.bank & 1;
        let ifaces: HashMap<MapData, u32, IfaceEntry> = typed(self.loc, MAP_IFACES)?;
        Ok(read_hash(&ifaces, MAP_IFACES)?
            .into_iter()
            .filter(|(k, e)| id_bank(*k) == live && e.roles != 0)
            .map(|(k, _)| unbanked_id(k).1)
            .collect())
    }

    /// The installed port pairs (active and draining), by id.
    pub fn port_pairs(&self) -> Result<BTreeMap<u32, PortPairEntry>> {
        read_port_pairs(&typed(self.loc, MAP_PORT_PAIRS)?)
    }

    /// Per-(chain, hop, port pair) counters, summed over CPUs.
    pub fn hop_stats(&self) -> Result<BTreeMap<HopStatsKey, Counter>> {
        let m: PerCpuHashMap<MapData, HopStatsKey, Counter> = typed(self.loc, MAP_HOP_STATS)?;
        sum_per_cpu(&m, MAP_HOP_STATS, |sum, c| {
            sum.packets += c.packets;
            sum.bytes += c.bytes;
        })
    }

    /// Per-interface counters, summed over CPUs.
    pub fn if_stats(&self) -> Result<BTreeMap<u32, IfStats>> {
        let m: PerCpuHashMap<MapData, u32, IfStats> = typed(self.loc, MAP_IF_STATS)?;
        sum_per_cpu(&m, MAP_IF_STATS, |sum, s| {
            sum.classified += s.classified;
            sum.unclassified += s.unclassified;
            sum.from_sf += s.from_sf;
            sum.malformed += s.malformed;
            sum.recomputed += s.recomputed;
        })
    }

    /// Drops by reason (every known reason, zeros included), summed over CPUs.
    pub fn drops(&self) -> Result<BTreeMap<&'static str, u64>> {
        let m: PerCpuArray<MapData, u64> = typed(self.loc, MAP_DROPS)?;
        let mut out = BTreeMap::new();
        for r in DropReason::ALL {
            let v = m.get(&(r as u32), 0).map_err(map_err(MAP_DROPS, "reading"))?;
            out.insert(r.name(), v.iter().sum());
        }
        Ok(out)
    }

    /// The flow table.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowEntry)>> {
        let m: HashMap<MapData, FlowKey, FlowEntry> = typed(self.loc, MAP_FLOWS)?;
        read_hash(&m, MAP_FLOWS)
    }

}

