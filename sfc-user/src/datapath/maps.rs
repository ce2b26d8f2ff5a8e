//! Typed access to the pinned maps: bringing them in line with a compiled state, flushing flows,
//! and reading counters.

use std::collections::{BTreeMap, BTreeSet};

use aya::{
    Pod,
    maps::{HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, lpm_trie::Key},
};
use sfc_common::{
    DropReason,
    maps::{
        ChainEntry, ClsKey, ClsResult, Counter, FlowEntry, FlowKey, GroupEntry, HopStatsKey,
        IfStats, IfaceEntry, LbKey, MAP_CHAINS, MAP_CLS, MAP_CLS_RES, MAP_DROPS, MAP_FLOWS,
        MAP_GROUPS, MAP_HOP_STATS, MAP_IF_STATS, MAP_IFACES, MAP_LB, MAP_PORT_PAIRS, PortPairEntry,
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

/// Entries added, changed and removed by a write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

impl Changes {
    fn add(&mut self, o: Changes) {
        self.added += o.added;
        self.changed += o.changed;
        self.removed += o.removed;
    }
}

/// A hash map's desired content: upserts now, deletions in a second pass.
struct Plan<K, V> {
    upsert: Vec<(K, V, bool)>,
    remove: Vec<K>,
}

fn plan<K: Pod + Ord, V: Pod + PartialEq>(have: BTreeMap<K, V>, want: &BTreeMap<K, V>) -> Plan<K, V> {
    let mut upsert = Vec::new();
    for (k, v) in want {
        match have.get(k) {
            Some(h) if h == v => {}
            Some(_) => upsert.push((*k, *v, true)),
            None => upsert.push((*k, *v, false)),
        }
    }
    let remove = have.into_keys().filter(|k| !want.contains_key(k)).collect();
    Plan { upsert, remove }
}

fn hash_contents<K: Pod + Ord, V: Pod>(m: &HashMap<MapData, K, V>, name: &str) -> Result<BTreeMap<K, V>> {
    m.iter().map(|r| r.map_err(map_err(name, "reading"))).collect()
}

struct HashSync<K: Pod, V: Pod> {
    name: &'static str,
    map: HashMap<MapData, K, V>,
    plan: Plan<K, V>,
}

impl<K: Pod + Ord, V: Pod + PartialEq> HashSync<K, V> {
    fn new(loc: &Location, name: &'static str, want: &BTreeMap<K, V>) -> Result<Self> {
        let map: HashMap<MapData, K, V> = typed(loc, name)?;
        let plan = plan(hash_contents(&map, name)?, want);
        Ok(Self { name, map, plan })
    }
    fn upsert(&mut self, c: &mut Changes) -> Result<()> {
        for (k, v, existed) in &self.plan.upsert {
            self.map.insert(k, v, 0).map_err(map_err(self.name, "writing"))?;
            if *existed { c.changed += 1 } else { c.added += 1 }
        }
        Ok(())
    }
    fn remove(&mut self, c: &mut Changes) -> Result<()> {
        for k in &self.plan.remove {
            self.map.remove(k).map_err(map_err(self.name, "removing"))?;
            c.removed += 1;
        }
        Ok(())
    }
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

    /// Brings the configuration maps in line with `c`. Additions and changes go in leaf-first
    /// (port pairs, groups, tables, chains, classifier results, trie, interfaces) so that nothing
    /// the datapath can reach points at a missing entry; removals go root-first.
    pub fn write(&mut self, c: &Compiled) -> Result<Changes> {
        let mut ch = Changes::default();
        let mut pps = HashSync::<u32, PortPairEntry>::new(self.loc, MAP_PORT_PAIRS, &c.port_pairs)?;
        let mut groups = HashSync::<u32, GroupEntry>::new(self.loc, MAP_GROUPS, &c.groups)?;
        let mut lb = HashSync::<LbKey, u32>::new(self.loc, MAP_LB, &c.lb)?;
        let mut chains = HashSync::<u32, ChainEntry>::new(self.loc, MAP_CHAINS, &c.chains)?;
        let mut res = HashSync::<u32, ClsResult>::new(self.loc, MAP_CLS_RES, &c.cls_res)?;
        let mut ifaces = HashSync::<u32, IfaceEntry>::new(self.loc, MAP_IFACES, &c.ifaces)?;
        let mut trie: LpmTrie<MapData, ClsKey, u32> = typed(self.loc, MAP_CLS)?;
        let have: BTreeMap<(u32, ClsKey), u32> = trie
            .iter()
            .map(|r| r.map(|(k, v)| ((k.prefix_len(), k.data()), v)))
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(MAP_CLS, "reading"))?;
        let cls_plan = plan_trie(have, &c.cls);

        pps.upsert(&mut ch)?;
        groups.upsert(&mut ch)?;
        lb.upsert(&mut ch)?;
        chains.upsert(&mut ch)?;
        res.upsert(&mut ch)?;
        for ((bits, key), v, existed) in &cls_plan.upsert {
            trie.insert(&Key::new(*bits, *key), v, 0).map_err(map_err(MAP_CLS, "writing"))?;
            if *existed { ch.changed += 1 } else { ch.added += 1 }
        }
        ifaces.upsert(&mut ch)?;

        ifaces.remove(&mut ch)?;
        for (bits, key) in &cls_plan.remove {
            trie.remove(&Key::new(*bits, *key)).map_err(map_err(MAP_CLS, "removing"))?;
            ch.removed += 1;
        }
        res.remove(&mut ch)?;
        chains.remove(&mut ch)?;
        lb.remove(&mut ch)?;
        groups.remove(&mut ch)?;
        pps.remove(&mut ch)?;
        let mut total = Changes::default();
        total.add(ch);
        Ok(total)
    }

    /// Deletes the flows of `chains`; returns how many.
    pub fn flush_flows(&mut self, chains: &BTreeSet<u32>) -> Result<usize> {
        let mut flows: HashMap<MapData, FlowKey, FlowEntry> = typed(self.loc, MAP_FLOWS)?;
        let doomed: Vec<FlowKey> = flows
            .iter()
            .filter_map(std::result::Result::ok)
            .filter(|(_, v)| chains.contains(&v.chain_id))
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in &doomed {
            // An entry the LRU evicted meanwhile is gone already: that is fine.
            if flows.remove(k).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Per-(chain, hop, port pair) counters, summed over CPUs.
    pub fn hop_stats(&self) -> Result<BTreeMap<HopStatsKey, Counter>> {
        let m: PerCpuHashMap<MapData, HopStatsKey, Counter> = typed(self.loc, MAP_HOP_STATS)?;
        let mut out = BTreeMap::new();
        for r in m.iter() {
            let (k, per_cpu) = r.map_err(map_err(MAP_HOP_STATS, "reading"))?;
            let mut sum = Counter::default();
            for c in per_cpu.iter() {
                sum.packets += c.packets;
                sum.bytes += c.bytes;
            }
            out.insert(k, sum);
        }
        Ok(out)
    }

    /// Per-interface counters, summed over CPUs.
    pub fn if_stats(&self) -> Result<BTreeMap<u32, IfStats>> {
        let m: PerCpuHashMap<MapData, u32, IfStats> = typed(self.loc, MAP_IF_STATS)?;
        let mut out = BTreeMap::new();
        for r in m.iter() {
            let (k, per_cpu) = r.map_err(map_err(MAP_IF_STATS, "reading"))?;
            let mut sum = IfStats::default();
            for s in per_cpu.iter() {
                sum.classified += s.classified;
                sum.unclassified += s.unclassified;
                sum.from_sf += s.from_sf;
                sum.malformed += s.malformed;
            }
            out.insert(k, sum);
        }
        Ok(out)
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
        Ok(m.iter().filter_map(std::result::Result::ok).collect())
    }
}

struct TriePlan {
    upsert: Vec<((u32, ClsKey), u32, bool)>,
    remove: Vec<(u32, ClsKey)>,
}

fn plan_trie(have: BTreeMap<(u32, ClsKey), u32>, want: &BTreeMap<(u32, ClsKey), u32>) -> TriePlan {
    let mut upsert = Vec::new();
    for (k, v) in want {
        match have.get(k) {
            Some(h) if h == v => {}
            Some(_) => upsert.push((*k, *v, true)),
            None => upsert.push((*k, *v, false)),
        }
    }
    let remove = have.into_keys().filter(|k| !want.contains_key(k)).collect();
    TriePlan { upsert, remove }
}
