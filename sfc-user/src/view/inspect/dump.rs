//! `sfc map dump`: every entry of one pinned map, decoded into names. Banked configuration maps
//! show both banks, the live one first.

use std::collections::BTreeMap;

use aya::{
    Pod,
    maps::{Array, HashMap, MapData, PerCpuArray},
};
use serde::Serialize;
use sfc_common::{
    DropReason,
    maps::{
        CHAIN_F_SYMMETRIC, ChainEntry, ClsResult,
        DIR_REVERSE, FAIL_OPEN, FlowKey, FragKey, GroupEntry, IF_F_LEARN, IF_F_MAC, IF_F_PEER, IfaceEntry,
        LB_FIELDS, MAP_CHAINS, MAP_CLS,
        MAP_CLS_HASH, MAP_CLS_RES, MAP_DEVMAP, MAP_DROPS, MAP_FLOWS, MAP_FRAGS, MAP_GROUPS, MAP_HOP_HOMES, MAP_HOP_KEYS, MAP_HOP_SLOTS, MAP_HOP_STATS, MAP_IF_SLOTS, MAP_IF_STATS,
        MAP_FLOW_STATS, MAP_IFACES, MAP_IFACES_DIRECT, MAP_LB, MAP_LIMITS, MAP_MACS, MAP_META, MAP_PORT_PAIRS, MacEntry, Meta, PP_F_DOWN, PP_F_DRAINING, PP_F_NO_MAC,
        PP_F_EGRESS_PEER, PP_F_INGRESS_PEER, PortPairEntry, ROLE_SF_EGRESS, ROLE_SF_INGRESS,
    },
};

use super::{
    ClsRow,
    cls::cls_banks,
    Flow, Namer, addr, bit_names, family_name, flows, mac, meta, protocol_name,
    role_names, unbank_class, unbank_id,
};
use crate::datapath::{
    DatapathError, Location, Result,
    maps::{Maps, hash_entries, map_err, typed},
};

// ---- rows --------------------------------------------------------------------------------------

#[derive(Serialize)]
struct DevmapRow {
    interface: String,
    ifindex: u32,
    /// Where frames redirected under `ifindex` are sent (the same interface).
    target_ifindex: u32,
}

#[derive(Serialize)]
struct MacRow {
    interface: String,
    ifindex: u32,
    /// The source MAC of the last unicast frame that arrived there (a VM's, behind a tap).
    learnt_mac: String,
}

#[derive(Serialize)]
struct MetaRow {
    bank: u32,
    generation: u32,
}

#[derive(Serialize)]
struct IfaceRow {
    bank: &'static str,
    ifindex: u32,
    interface: String,
    roles: Vec<&'static str>,
    port_pair: Option<String>,
    flags: Vec<&'static str>,
    zone: u32,
    /// Where its counters are (`SFC_IF_STATS_V3`).
    stats_slot: u16,
}

/// An interface's entry as the program finds it: in its array slot, or in the hash.
#[derive(Serialize)]
struct DirectRow {
    bank: &'static str,
    ifindex: u32,
    interface: String,
    /// Its slot of `SFC_IFACES_DIR` in the bank.
    slot: u32,
    /// "slot" (no hashing), "hash: slot held by ifindex N", "hash: slot empty", or, for a slot
    /// holding an interface the bank's hash does not have, "stale slot". The standby bank's
    /// rows say how it will be once live: until then the program asks its hash (its slots are
    /// rewritten in place by the next apply).
    found_by: String,
    /// The slot holds what the loader's rule gives for the bank's hash entries (the lowest
    /// ifindex of the slot, with its entry): always, unless something wrote one without the other.
    agrees: bool,
}

#[derive(Serialize)]
struct ClsResRow {
    bank: &'static str,
    class: String,
    chain: String,
    chain_id: u32,
    classifier: String,
    source: String,
    destination: String,
}

#[derive(Serialize)]
struct ChainRow {
    bank: &'static str,
    chain_id: u32,
    chain: String,
    groups: Vec<String>,
    flags: Vec<&'static str>,
}

#[derive(Serialize)]
struct GroupRow {
    bank: &'static str,
    group_id: u32,
    group: String,
    members: u32,
    lb_fields: Vec<&'static str>,
    failure_policy: &'static str,
    /// The reclassification class of the group's chains (`GroupEntry::reclass`), as `sfc map dump
    /// cls` names it.
    reclass: String,
}

#[derive(Serialize)]
struct LbRow {
    bank: &'static str,
    group: String,
    bucket: u32,
    port_pair: String,
}

#[derive(Serialize)]
struct PortPairRow {
    port_pair_id: u32,
    port_pair: String,
    group: String,
    ingress: String,
    ingress_mac: String,
    egress: String,
    egress_mac: String,
    flags: Vec<&'static str>,
}

#[derive(Serialize)]
struct HopStatsRow {
    chain: String,
    chain_id: u32,
    hop: u32,
    group: Option<String>,
    port_pair: String,
    direction: &'static str,
    packets: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct IfStatsRow {
    interface: String,
    ifindex: u32,
    classified: u64,
    unclassified: u64,
    from_sf: u64,
    malformed: u64,
    recomputed: u64,
}

#[derive(Serialize)]
struct DropRow {
    reason: String,
    packets: u64,
}

#[derive(Serialize)]
struct CounterRow {
    counter: &'static str,
    value: u64,
}

#[derive(Serialize)]
struct FragRow {
    family: &'static str,
    src: String,
    dst: String,
    protocol: String,
    id: u32,
    sport: u16,
    dport: u16,
}

/// A decoded map entry. `COLUMNS` are its serialized field names in declaration order (JSON
/// objects do not keep an order, tables need one).
pub trait Row: Serialize {
    const COLUMNS: &'static [&'static str];
}

macro_rules! row {
    ($t:ty: $($c:ident),+) => {
        impl Row for $t {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($c)),+];
        }
    };
}

row!(Flow: family, src, dst, sport, dport, protocol, chain, chain_id, hops, previous_hops, reverse, destination, generation, zone, closing, idle_s);
row!(ClsRow: bank, table, stage, class, prefix_len, field, next_class, result);
row!(MetaRow: bank, generation);
row!(DevmapRow: interface, ifindex, target_ifindex);
row!(MacRow: interface, ifindex, learnt_mac);
row!(IfaceRow: bank, ifindex, interface, roles, port_pair, flags, zone, stats_slot);
row!(DirectRow: bank, ifindex, interface, slot, found_by, agrees);
row!(ClsResRow: bank, class, chain, chain_id, classifier, source, destination);
row!(ChainRow: bank, chain_id, chain, groups, flags);
row!(GroupRow: bank, group_id, group, members, lb_fields, failure_policy, reclass);
row!(LbRow: bank, group, bucket, port_pair);
row!(PortPairRow: port_pair_id, port_pair, group, ingress, ingress_mac, egress, egress_mac, flags);
row!(HopStatsRow: chain, chain_id, hop, group, port_pair, direction, packets, bytes);
row!(IfStatsRow: interface, ifindex, classified, unclassified, from_sf, malformed, recomputed);
row!(DropRow: reason, packets);
row!(CounterRow: counter, value);
row!(FragRow: family, src, dst, protocol, id, sport, dport);

/// A map's entries, decoded: one JSON object per entry, each with the keys `columns`.
#[derive(Debug, Clone)]
pub struct Dump {
    pub columns: &'static [&'static str],
    pub rows: Vec<serde_json::Value>,
}

fn rows<T: Row>(v: Vec<T>) -> Result<Dump> {
    let rows = v
        .into_iter()
        .map(|r| serde_json::to_value(r).map_err(|e| DatapathError::Other(format!("encoding a map entry: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    if let Some(serde_json::Value::Object(o)) = rows.first() {
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        let mut cols = T::COLUMNS.to_vec();
        keys.sort_unstable();
        cols.sort_unstable();
        debug_assert_eq!(keys, cols, "Row::COLUMNS out of date");
    }
    Ok(Dump { columns: T::COLUMNS, rows })
}


/// A banked hash map keyed by id: (bank name, id, value), live bank first.
fn banked<V: Pod>(loc: &Location, name: &str, live: u32) -> Result<Vec<(&'static str, u32, V)>> {
    let mut out: Vec<(u32, u32, V)> = hash_entries::<u32, V>(loc, name)?
        .into_iter()
        .map(|(k, v)| {
            let (bank, id) = unbank_id(k);
            (u32::from(bank != live), id, v)
        })
        .collect();
    out.sort_by_key(|(b, id, _)| (*b, *id));
    Ok(out.into_iter().map(|(b, id, v)| (if b == 0 { "live" } else { "standby" }, id, v)).collect())
}


fn port_pair_row(n: &Namer<'_>, id: u32, p: &PortPairEntry) -> PortPairRow {
    PortPairRow {
        port_pair_id: id,
        port_pair: n.port_pair(id),
        group: n.group(p.group),
        ingress: n.iface(p.ingress_ifindex),
        ingress_mac: mac(&p.ingress_mac),
        egress: n.iface(p.egress_ifindex),
        egress_mac: mac(&p.egress_mac),
        flags: bit_names(p.flags, &[
            (PP_F_INGRESS_PEER, "ingress_peer"),
            (PP_F_EGRESS_PEER, "egress_peer"),
            (PP_F_DRAINING, "draining"),
            (PP_F_DOWN, "down"),
            (PP_F_NO_MAC, "no_mac"),
        ]),
    }
}

fn frags(loc: &Location) -> Result<Vec<FragRow>> {
    let m: HashMap<MapData, FragKey, FlowKey> = typed(loc, MAP_FRAGS)?;
    let mut out = Vec::new();
    for r in &m {
        let (k, f) = match r {
            Ok(kv) => kv,
            Err(aya::maps::MapError::KeyNotFound) => continue,
            Err(e) => return Err(map_err(MAP_FRAGS, "reading")(e)),
        };
        out.push(FragRow {
            family: family_name(k.family),
            src: addr(k.family, &k.src),
            dst: addr(k.family, &k.dst),
            protocol: protocol_name(k.proto),
            id: k.id,
            sport: u16::from_be_bytes(f.sport),
            dport: u16::from_be_bytes(f.dport),
        });
    }
    Ok(out)
}

fn drops(loc: &Location) -> Result<Vec<DropRow>> {
    let m: PerCpuArray<MapData, u64> = typed(loc, MAP_DROPS)?;
    let known: BTreeMap<u32, &str> = DropReason::ALL.iter().map(|r| (*r as u32, r.name())).collect();
    let mut out = Vec::new();
    for (i, v) in m.iter().enumerate() {
        let packets: u64 = v.map_err(map_err(MAP_DROPS, "reading"))?.iter().sum();
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        // Every known reason, and an unknown slot only when something counted there.
        match known.get(&i) {
            Some(r) => out.push(DropRow { reason: (*r).to_owned(), packets }),
            None if packets > 0 => out.push(DropRow { reason: format!("reason {i}"), packets }),
            None => {}
        }
    }
    Ok(out)
}


fn ifaces(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<IfaceRow>> {
    Ok(banked::<IfaceEntry>(loc, MAP_IFACES, live)?
        .into_iter()
        .map(|(bank, ifindex, e)| IfaceRow {
            bank,
            ifindex,
            interface: n.iface(ifindex),
            roles: role_names(e.roles),
            port_pair: (e.roles & (ROLE_SF_EGRESS | ROLE_SF_INGRESS) != 0).then(|| n.port_pair(e.port_pair)),
            flags: bit_names(e.flags, &[(IF_F_PEER, "peer"), (IF_F_MAC, "mac"), (IF_F_LEARN, "learn")]),
            zone: e.zone,
            stats_slot: e.stats_slot,
        })
        .collect())
}

fn cls_results(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<ClsResRow>> {
    let mut v: Vec<(u32, u32, ClsResult)> = hash_entries::<u32, ClsResult>(loc, MAP_CLS_RES)?
        .into_iter()
        .map(|(k, r)| {
            let (bank, class) = unbank_class(k);
            (u32::from(bank != live), class, r)
        })
        .collect();
    v.sort_by_key(|(b, c, _)| (*b, *c));
    Ok(v.into_iter()
        .map(|(b, class, r)| ClsResRow {
            bank: if b == 0 { "live" } else { "standby" },
            class: format!("{class:#x}"),
            chain: n.chain(r.chain_id),
            chain_id: r.chain_id,
            classifier: n.classifier(r.classifier),
            source: n.iface(r.src_ifindex),
            destination: n.destination(r.dst_ifindex),
        })
        .collect())
}

fn chains(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<ChainRow>> {
    Ok(banked::<ChainEntry>(loc, MAP_CHAINS, live)?
        .into_iter()
        .map(|(bank, chain_id, c)| ChainRow {
            bank,
            chain_id,
            chain: n.chain(chain_id),
            groups: c.groups.iter().take(c.n_hops as usize).map(|g| n.group(*g)).collect(),
            flags: bit_names(c.flags, &[(CHAIN_F_SYMMETRIC, "symmetric")]),
        })
        .collect())
}

fn groups(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<GroupRow>> {
    Ok(banked::<GroupEntry>(loc, MAP_GROUPS, live)?
        .into_iter()
        .map(|(bank, id, g)| GroupRow {
            bank,
            group_id: id,
            group: n.group(id),
            members: g.n_members,
            lb_fields: bit_names(g.lb_fields, &LB_FIELDS),
            failure_policy: if g.failure_policy == FAIL_OPEN { "fail-open" } else { "fail-closed" },
            reclass: if g.reclass == 0 { "-".to_owned() } else { format!("reclass {}", g.reclass & !(1 << sfc_common::maps::CLS_RECLASS_BIT)) },
        })
        .collect())
}

fn lb(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<LbRow>> {
    let mut v: Vec<(u32, u32, u32, u32)> = crate::datapath::maps::lb_entries(loc)?
        .into_iter()
        .map(|(k, pp)| {
            let (bank, group) = unbank_id(k.group);
            (u32::from(bank != live), group, k.bucket, pp)
        })
        .collect();
    v.sort_unstable();
    Ok(v.into_iter()
        .map(|(b, group, bucket, pp)| LbRow {
            bank: if b == 0 { "live" } else { "standby" },
            group: n.group(group),
            bucket,
            port_pair: n.port_pair(pp),
        })
        .collect())
}

fn hop_stats(loc: &Location, n: &Namer<'_>) -> Result<Vec<HopStatsRow>> {
    Ok(Maps::open(loc)?
        .hop_stats()?
        .into_iter()
        .map(|(k, c)| HopStatsRow {
            chain: n.chain(k.chain_id),
            chain_id: k.chain_id,
            hop: k.hop,
            group: usize::try_from(k.hop).ok().and_then(|h| n.chain_group(k.chain_id, h)),
            port_pair: n.port_pair(k.port_pair),
            direction: if k.dir == DIR_REVERSE { "reverse" } else { "forward" },
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect())
}

fn if_stats(loc: &Location, n: &Namer<'_>) -> Result<Vec<IfStatsRow>> {
    Ok(Maps::open(loc)?
        .if_stats()?
        .into_iter()
        .map(|(ifindex, s)| IfStatsRow {
            interface: n.iface(ifindex),
            ifindex,
            classified: s.classified,
            unclassified: s.unclassified,
            from_sf: s.from_sf,
            malformed: s.malformed,
            recomputed: s.recomputed,
        })
        .collect())
}

fn devmap(loc: &Location, n: &Namer<'_>) -> Result<Vec<DevmapRow>> {
    let m: aya::maps::DevMapHash<MapData> = typed(loc, MAP_DEVMAP)?;
    m.iter()
        .map(|r| {
            r.map(|(k, v)| DevmapRow { interface: n.iface(k), ifindex: k, target_ifindex: v.if_index })
                .map_err(map_err(MAP_DEVMAP, "reading"))
        })
        .collect()
}

/// Every interface of either bank's hash with what its slot holds, and slots holding an
/// interface the bank's hash does not have.
fn direct(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<DirectRow>> {
    use crate::datapath::direct;
    let hashed = banked::<IfaceEntry>(loc, MAP_IFACES, live)?;
    let mut out = Vec::new();
    for (b, name) in [(live, "live"), (live ^ 1, "standby")] {
        let slots: BTreeMap<u32, sfc_common::maps::IfaceDirect> = direct::read(loc, b)?.into_iter().collect();
        let mine: BTreeMap<u32, IfaceEntry> = hashed.iter().filter(|(bank, _, _)| *bank == name).map(|(_, i, e)| (*i, *e)).collect();
        // What the slots must hold (`direct::slots`, the loader's rule) against what they hold.
        let want = direct::slots(&mine);
        for ifindex in mine.keys() {
            let slot = direct::slot_of(*ifindex);
            let agrees = slots.get(&slot) == want.get(&slot);
            let found_by = match slots.get(&slot) {
                Some(d) if d.ifindex == *ifindex => "slot".to_owned(),
                Some(d) => format!("hash: slot held by ifindex {}", d.ifindex),
                None => "hash: slot empty".to_owned(),
            };
            out.push(DirectRow { bank: name, ifindex: *ifindex, interface: n.iface(*ifindex), slot, found_by, agrees });
        }
        for (slot, d) in slots.iter().filter(|(_, d)| !mine.contains_key(&d.ifindex)) {
            out.push(DirectRow { bank: name, ifindex: d.ifindex, interface: n.iface(d.ifindex), slot: *slot, found_by: "stale slot".to_owned(), agrees: false });
        }
    }
    Ok(out)
}

fn metas(loc: &Location) -> Result<Vec<MetaRow>> {
    let m: Array<MapData, Meta> = typed(loc, MAP_META)?;
    m.iter()
        .map(|r| r.map(|m| MetaRow { bank: m.bank, generation: m.generation }).map_err(map_err(MAP_META, "reading")))
        .collect()
}

/// Every entry of map `name` (a name from `ALL_MAPS`), decoded into names.
pub fn dump(loc: &Location, n: &Namer<'_>, name: &'static str) -> Result<Dump> {
    let live = meta(loc)?.bank & 1;
    match name {
        MAP_META => rows(metas(loc)?),
        MAP_IFACES => rows(ifaces(loc, n, live)?),
        MAP_IFACES_DIRECT => rows(direct(loc, n, live)?),
        // The hash is half of the classifier tables: shown with the trie.
        MAP_CLS | MAP_CLS_HASH => rows(cls_banks(loc, n, live)?),
        MAP_CLS_RES => rows(cls_results(loc, n, live)?),
        MAP_CHAINS => rows(chains(loc, n, live)?),
        MAP_GROUPS => rows(groups(loc, n, live)?),
        MAP_LB => rows(lb(loc, n, live)?),
        MAP_PORT_PAIRS => rows(
            crate::datapath::maps::read_port_pairs(&typed(loc, name)?)?.iter().map(|(id, p)| port_pair_row(n, *id, p)).collect(),
        ),
        MAP_FLOWS => rows(flows(loc, n)?),
        MAP_FRAGS => rows(frags(loc)?),
        // One table of hop counters: the hash's and the home hops' slots.
        MAP_HOP_STATS | MAP_HOP_HOMES | MAP_HOP_SLOTS | MAP_HOP_KEYS => rows(hop_stats(loc, n)?),
        // One table of interface counters: the slots' (tc) and the hash's (XDP, the overlay).
        MAP_IF_STATS | MAP_IF_SLOTS => rows(if_stats(loc, n)?),
        MAP_DROPS => rows(drops(loc)?),
        MAP_DEVMAP => rows(devmap(loc, n)?),
        MAP_MACS => rows(
            hash_entries::<u32, MacEntry>(loc, MAP_MACS)?
                .into_iter()
                .map(|(ifindex, m)| MacRow { interface: n.iface(ifindex), ifindex, learnt_mac: super::mac(&m.mac) })
                .collect(),
        ),
        MAP_LIMITS => {
            let m: Array<MapData, sfc_common::maps::Limits> = typed(loc, MAP_LIMITS)?;
            let l = m.get(&0, 0).map_err(map_err(MAP_LIMITS, "reading"))?;
            rows(vec![CounterRow { counter: "new_flows_per_sec (per CPU; 0: no cap)", value: u64::from(l.new_flows_per_sec) }])
        }
        MAP_FLOW_STATS => {
            let s = crate::view::stats::flow_table(loc)?;
            rows(vec![
                CounterRow { counter: "created", value: s.created },
                CounterRow { counter: "capped", value: s.capped },
                CounterRow { counter: "removed", value: s.removed },
                CounterRow { counter: "evicted (created - removed - entries)", value: s.evicted },
            ])
        }
        other => Err(DatapathError::Other(format!("{other}: no decoder for this map"))),
    }
}

/// `SFC_LB_V2`, live bank, at a glance: buckets per member of each group.
pub fn lb_shares(loc: &Location, n: &Namer<'_>) -> Result<BTreeMap<String, BTreeMap<String, u32>>> {
    let live = meta(loc)?.bank & 1;
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (k, pp) in crate::datapath::maps::lb_entries(loc)? {
        let (bank, group) = unbank_id(k.group);
        if bank == live {
            *out.entry(n.group(group)).or_default().entry(n.port_pair(pp)).or_default() += 1;
        }
    }
    Ok(out)
}

