//! Read-only views of an installed datapath, decoded into the names of the applied chain file:
//! the program and its links, map fill levels and the flow table here, every map's entries in
//! `dump`. Used by `sfc status`, `sfc flows`, `sfc map` and the metrics daemon. Nothing here
//! writes a map.

mod cls;
mod dump;

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::SystemTime,
};

use aya::{
    Pod,
    maps::{HashMap, LpmTrie, MapData, MapInfo, MapType, PerCpuHashMap},
    programs::{
        ProgramInfo,
        links::{FdLink, LinkInfo, PinnedLink},
    },
};
use serde::Serialize;
pub use cls::{ClsRow, ClsSource, cls_entries, decode_cls};
pub use dump::{Dump, Row, dump, lb_shares};
use sfc_common::{
    limits::{MAX_HOPS, PORT_PAIR_NONE},
    maps::{
        ALL_MAPS, ChainEntry, ClsKey, ClsResult, Counter, FAMILY_V6,
        FLOW_F_REVERSE, FlowEntry, FlowKey, FragKey, GroupEntry, HopStatsKey, IfStats, IfaceEntry,
        LbTable, MAP_CHAINS, MAP_CLS, MAP_CLS_HASH, MAP_CLS_RES, MAP_DEVMAP, MAP_DROPS, MAP_FLOW_STATS, MAP_FLOWS, MAP_FRAGS, MAP_GROUPS, MAP_LIMITS,
        MAP_HOP_HOMES, MAP_HOP_KEYS, MAP_HOP_SLOTS, MAP_HOP_STATS, MAP_IF_SLOTS, MAP_IF_STATS, MAP_IFACES, MAP_IFACES_DIRECT, MAP_LB, MAP_META, MAP_PORT_PAIRS, Meta,
        ROLE_DEST, ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE,
    },
};

use crate::datapath::{
    DatapathError, Location, PROG_PIN, Result, State, link_pins,
    maps::{Maps, map_err, typed},
};
pub use crate::model::protocol_name;

// ---- names ---------------------------------------------------------------------------------

/// Turns the ids found in the maps back into the names of the applied chain file. Ids the
/// applied model does not know (a stale flow of a removed chain) get a readable placeholder.
pub struct Namer<'a> {
    pub state: &'a State,
}

impl Namer<'_> {
    pub fn iface(&self, ifindex: u32) -> String {
        self.state.ifname(ifindex).unwrap_or_else(|| format!("ifindex {ifindex}"))
    }

    /// Port pair ids are stable by name (`State::ids`), draining ones included.
    pub fn port_pair(&self, id: u32) -> String {
        self.state.port_pair_name(id).unwrap_or_else(|| format!("port pair #{id}"))
    }

    pub fn group(&self, id: u32) -> String {
        self.state
            .ids
            .groups
            .iter()
            .find(|(_, v)| **v == id)
            .map_or_else(|| format!("group #{id}"), |(n, _)| n.clone())
    }

    pub fn chain(&self, chain_id: u32) -> String {
        if chain_id == 0 {
            // A flow no classifier matches any more (after an update).
            return "none".to_owned();
        }
        self.state
            .model
            .port_chains
            .iter()
            .find(|c| c.chain_id == chain_id)
            .map_or_else(|| format!("chain_id {chain_id} (not in the applied file)"), |c| c.name.clone())
    }

    pub fn classifier(&self, index: u32) -> String {
        if index == sfc_common::maps::CLS_CLASSIFIER_SHARED {
            return "(several)".to_owned();
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| self.state.model.flow_classifiers.get(i))
            .map_or_else(|| format!("classifier #{index}"), |c| c.name.clone())
    }

    /// The group at position `hop` of chain `chain_id`, from the applied model.
    pub fn chain_group(&self, chain_id: u32, hop: usize) -> Option<String> {
        let chain = self.state.model.port_chains.iter().find(|c| c.chain_id == chain_id)?;
        let g = *chain.port_pair_groups.get(hop)?;
        self.state.model.port_pair_groups.get(g).map(|g| g.name.clone())
    }

    /// Where a flow goes after its last hop.
    pub fn destination(&self, ifindex: u32) -> String {
        if ifindex == 0 { "host".to_owned() } else { self.iface(ifindex) }
    }
}

/// Loads the applied model saved beside the pins.
pub fn load_state(loc: &Location) -> Result<State> {
    State::load(&loc.state_dir())?.ok_or_else(|| DatapathError::NotInstalled(loc.pin_dir.clone()))
}

/// An address as the datapath stores it (IPv4 in the first four bytes of 16).
pub fn addr(family: u8, a: &[u8; 16]) -> String {
    if family == FAMILY_V6 {
        Ipv6Addr::from(*a).to_string()
    } else {
        Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
    }
}

pub fn family_name(family: u8) -> &'static str {
    if family == FAMILY_V6 { "ipv6" } else { "ipv4" }
}

pub fn mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn bit_names(bits: u32, names: &[(u32, &'static str)]) -> Vec<&'static str> {
    names.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect()
}

pub fn role_names(roles: u32) -> Vec<&'static str> {
    bit_names(roles, &[
        (ROLE_SOURCE, "source"),
        (ROLE_SF_EGRESS, "sf_egress"),
        (ROLE_SF_INGRESS, "sf_ingress"),
        (ROLE_DEST, "destination"),
    ])
}

// ---- configuration banks ---------------------------------------------------------------------

use sfc_common::maps::{unbanked_class as unbank_class, unbanked_id as unbank_id};

/// `live` for the bank packets use now, `standby` for the other one (the previous generation,
/// or the next one while `apply` writes it).
fn bank_name(bank: u32, live: u32) -> &'static str {
    if bank == live & 1 { "live" } else { "standby" }
}

/// Which bank is live, and its generation.
pub fn meta(loc: &Location) -> Result<Meta> {
    Maps::open(loc)?.meta()
}

/// `SFC_IFACES_V4`, live bank: ifindex -> roles.
pub fn ifaces(loc: &Location) -> Result<BTreeMap<u32, IfaceEntry>> {
    let live = meta(loc)?.bank & 1;
    Ok(crate::datapath::maps::hash_entries::<u32, IfaceEntry>(loc, MAP_IFACES)?
        .into_iter()
        .filter_map(|(k, v)| {
            let (bank, ifindex) = unbank_id(k);
            (bank == live).then_some((ifindex, v))
        })
        .collect())
}

// ---- program, links, maps --------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct ProgramSummary {
    pub pin: PathBuf,
    pub name: String,
    pub id: u32,
    pub tag: String,
    /// Instructions the verifier walked (Linux >= 5.16).
    pub verified_instructions: Option<u32>,
    /// Bytes of translated BPF code and of JIT-compiled machine code.
    pub xlated_bytes: Option<u32>,
    pub jited_bytes: u32,
    /// Seconds since the Unix epoch.
    pub loaded_at: Option<u64>,
    pub map_ids: Vec<u32>,
}

pub fn program(loc: &Location) -> Result<ProgramSummary> {
    let pin = loc.pin_dir.join(PROG_PIN);
    if !pin.exists() {
        return Err(DatapathError::NotInstalled(loc.pin_dir.clone()));
    }
    let info = ProgramInfo::from_pin(&pin)
        .map_err(|source| DatapathError::Program { what: format!("reading {}", pin.display()), source })?;
    Ok(ProgramSummary {
        name: info.name_as_str().unwrap_or_default().to_owned(),
        id: info.id(),
        tag: format!("{:016x}", info.tag()),
        verified_instructions: info.verified_instruction_count(),
        xlated_bytes: info.size_translated(),
        jited_bytes: info.size_jitted(),
        loaded_at: info
            .loaded_at()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        map_ids: info.map_ids().ok().flatten().unwrap_or_default(),
        pin,
    })
}

/// One pinned link: a program is attached to `ifindex` (for `xdp_peer`: to its veth peer) for
/// as long as the pin exists.
#[derive(Debug, Clone, Serialize)]
pub struct LinkSummary {
    pub kind: crate::datapath::attach::LinkKind,
    pub ifindex: u32,
    pub pin: PathBuf,
    pub link_id: Option<u32>,
    pub program_id: Option<u32>,
}

pub fn links(loc: &Location) -> Result<Vec<LinkSummary>> {
    let mut out: Vec<LinkSummary> = link_pins(&loc.pin_dir)?
        .into_iter()
        .map(|l| {
            let (kind, ifindex, pin) = (l.kind, l.ifindex, l.path);
            let info = PinnedLink::from_pin(&pin).ok().and_then(|l| FdLink::from(l).info().ok());
            LinkSummary {
                kind,
                ifindex,
                link_id: info.as_ref().map(LinkInfo::id),
                program_id: info.as_ref().map(LinkInfo::program_id),
                pin,
            }
        })
        .collect();
    out.sort_by_key(|l| (l.ifindex, l.kind));
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct MapSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub map_type: String,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Entries present now (hash maps and the trie: keys counted, both configuration banks;
    /// arrays: every slot).
    pub entries: Option<u64>,
}

fn type_name(t: &Result<MapType>) -> String {
    match t {
        Ok(MapType::Hash) => "hash".to_owned(),
        Ok(MapType::LruHash) => "lru_hash".to_owned(),
        Ok(MapType::PerCpuHash) => "percpu_hash".to_owned(),
        Ok(MapType::LruPerCpuHash) => "lru_percpu_hash".to_owned(),
        Ok(MapType::Array) => "array".to_owned(),
        Ok(MapType::PerCpuArray) => "percpu_array".to_owned(),
        Ok(MapType::LpmTrie) => "lpm_trie".to_owned(),
        Ok(MapType::DevMapHash) => "devmap_hash".to_owned(),
        Ok(other) => format!("{other:?}"),
        Err(_) => "unknown".to_owned(),
    }
}

/// Map names as `sfc map` accepts them: `SFC_FLOWS`, `sfc_flows` or `flows`.
pub fn resolve_map_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    // Versioned names (`SFC_IFACES_V4`, `SFC_PORT_PAIRS2`) answer to their unversioned name too.
    let unversioned = |m: &str| {
        m.rsplit_once("_V")
            .filter(|(_, v)| v.parse::<u32>().is_ok())
            .map_or_else(|| m.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned(), |(b, _)| b.to_owned())
    };
    ALL_MAPS.iter().copied().find(|m| {
        let base = unversioned(m);
        [*m, base.as_str()].iter().any(|n| *n == upper || n.strip_prefix("SFC_") == Some(upper.as_str()))
    })
}

/// Type, sizes and fill level of one pinned map.
pub fn map_summary(loc: &Location, name: &'static str) -> Result<MapSummary> {
    let pin = loc.map_pin(name);
    if !pin.exists() {
        return Err(DatapathError::NotInstalled(loc.pin_dir.clone()));
    }
    let info = MapInfo::from_pin(&pin).map_err(map_err(name, "reading map info"))?;
    let max = info.max_entries();
    let entries = count_entries(loc, name, max)?;
    Ok(MapSummary {
        name: name.to_owned(),
        map_type: type_name(&info.map_type().map_err(map_err(name, "map type"))),
        id: info.id(),
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: max,
        entries,
    })
}

/// Every pinned map of `ALL_MAPS` (maps an older loader did not create are left out).
pub fn map_summaries(loc: &Location) -> Result<Vec<MapSummary>> {
    ALL_MAPS.iter().filter(|n| loc.map_pin(n).exists()).map(|n| map_summary(loc, n)).collect()
}

/// Keys counted one `BPF_MAP_GET_NEXT_KEY` at a time, never more than the map can hold (a key
/// deleted under the walk restarts it from the first key).
fn count<T>(keys: impl Iterator<Item = std::result::Result<T, aya::maps::MapError>>, name: &str, max: u32) -> Result<u64> {
    let mut n = 0u64;
    for k in keys.take(max as usize) {
        k.map_err(map_err(name, "walking keys"))?;
        n += 1;
    }
    Ok(n)
}

fn count_hash<K: Pod, V: Pod>(loc: &Location, name: &str, max: u32) -> Result<u64> {
    let m: HashMap<MapData, K, V> = typed(loc, name)?;
    count(m.keys(), name, max)
}

fn count_percpu<K: Pod, V: Pod>(loc: &Location, name: &str, max: u32) -> Result<u64> {
    let m: PerCpuHashMap<MapData, K, V> = typed(loc, name)?;
    count(m.keys(), name, max)
}

/// Entries in map `name` (`None` for a map this version does not know how to read).
fn count_entries(loc: &Location, name: &str, max: u32) -> Result<Option<u64>> {
    Ok(Some(match name {
        MAP_IFACES => count_hash::<u32, IfaceEntry>(loc, name, max)?,
        MAP_CLS => {
            let m: LpmTrie<MapData, ClsKey, u32> = typed(loc, name)?;
            count(m.keys(), name, max)?
        }
        MAP_CLS_RES => count_hash::<u32, ClsResult>(loc, name, max)?,
        MAP_CLS_HASH => count_hash::<ClsKey, u32>(loc, name, max)?,
        MAP_CHAINS => count_hash::<u32, ChainEntry>(loc, name, max)?,
        MAP_GROUPS => count_hash::<u32, GroupEntry>(loc, name, max)?,
        // A table per group: the fill level is groups of `2 * MAX_GROUPS`.
        MAP_LB => count_hash::<u32, LbTable>(loc, name, max)?,
        MAP_PORT_PAIRS => crate::datapath::maps::read_port_pairs(&typed(loc, name)?)?.len() as u64,
        MAP_FLOWS => count_hash::<FlowKey, FlowEntry>(loc, name, max)?,
        MAP_FRAGS => count_hash::<FragKey, FlowKey>(loc, name, max)?,
        MAP_HOP_STATS => count_percpu::<HopStatsKey, Counter>(loc, name, max)?,
        MAP_IF_STATS => count_percpu::<u32, IfStats>(loc, name, max)?,
        MAP_DEVMAP => {
            let m: aya::maps::DevMapHash<MapData> = typed(loc, name)?;
            count(m.keys(), name, max)?
        }
        // An array has every slot, always.
        MAP_HOP_KEYS => count_hash::<u32, HopStatsKey>(loc, name, max)?,
        MAP_DROPS | MAP_META | MAP_LIMITS | MAP_FLOW_STATS | MAP_IF_SLOTS | MAP_HOP_HOMES | MAP_HOP_SLOTS | MAP_IFACES_DIRECT => u64::from(max),
        _ => return Ok(None),
    }))
}

/// Entries in the flow table and its capacity.
pub fn flow_table_fill(loc: &Location) -> Result<(u64, u32)> {
    let s = map_summary(loc, MAP_FLOWS)?;
    Ok((s.entries.unwrap_or(0), s.max_entries))
}

// ---- flows -----------------------------------------------------------------------------------

/// A flow-table entry in names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    pub src: String,
    pub dst: String,
    /// Host byte order; 0 for protocols without ports.
    pub sport: u16,
    pub dport: u16,
    pub protocol: String,
    /// `none` (chain id 0): no classifier matches the flow any more since an update.
    pub chain: String,
    pub chain_id: u32,
    /// In the order the packets cross them.
    pub hops: Vec<FlowHop>,
    /// The path before the flow was last re-resolved to a new generation (packets that were
    /// already inside the chain finish on it); empty when there was none.
    pub previous_hops: Vec<FlowHop>,
    /// The reverse direction of a symmetric chain.
    pub reverse: bool,
    /// Interface the packets are delivered to after the last hop, or `host`.
    pub destination: String,
    /// The configuration generation the members were picked under.
    pub generation: u32,
    /// The zone of the flow's interfaces (`IfaceEntry::zone`): the same 5-tuple in two zones is
    /// two flows.
    pub zone: u32,
    /// A TCP FIN or RST was seen: the entry goes once the close grace is over (`sfc run`).
    pub closing: bool,
    /// Seconds since the flow's last packet at its entry port.
    pub idle_s: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowHop {
    /// Position of the group in the chain (SI = 255 - hop), as the counters key it.
    pub hop: usize,
    pub group: Option<String>,
    /// `None`: the hop is skipped (its group was down and fail-open).
    pub port_pair: Option<String>,
}

fn flow_hops(n: &Namer<'_>, chain_id: u32, members: &[u16; MAX_HOPS], count: u8, reverse: bool) -> Vec<FlowHop> {
    let count = usize::from(count).min(MAX_HOPS);
    (0..count)
        .map(|step| {
            // A reverse flow lists its members in crossing order, the chain's groups backwards.
            let hop = if reverse { count - 1 - step } else { step };
            let pp = members[step];
            FlowHop {
                hop,
                group: n.chain_group(chain_id, hop),
                port_pair: (pp != PORT_PAIR_NONE).then(|| n.port_pair(u32::from(pp))),
            }
        })
        .collect()
}

/// Decodes one flow-table entry.
pub fn decode_flow(n: &Namer<'_>, k: &FlowKey, v: &FlowEntry) -> Flow {
    let reverse = v.flags & FLOW_F_REVERSE != 0;
    Flow {
        family: family_name(k.family),
        src: addr(k.family, &k.src),
        dst: addr(k.family, &k.dst),
        sport: u16::from_be_bytes(k.sport),
        dport: u16::from_be_bytes(k.dport),
        protocol: protocol_name(k.proto),
        chain: n.chain(v.chain_id),
        chain_id: v.chain_id,
        hops: flow_hops(n, v.chain_id, &v.members, v.n_hops, reverse),
        previous_hops: flow_hops(n, v.chain_id, &v.prev_members, v.prev_n_hops, reverse),
        reverse,
        destination: n.destination(v.dst_ifindex),
        generation: v.generation,
        zone: k.zone,
        closing: v.flags & sfc_common::maps::FLOW_F_CLOSING != 0,
        idle_s: crate::datapath::flows::coarse_now_s().saturating_sub(v.last_seen),
    }
}

/// The flow table, decoded, in a stable order.
pub fn flows(loc: &Location, n: &Namer<'_>) -> Result<Vec<Flow>> {
    let m: HashMap<MapData, FlowKey, FlowEntry> = typed(loc, MAP_FLOWS)?;
    let mut out: Vec<Flow> = crate::datapath::maps::read_hash(&m, MAP_FLOWS)?.iter().map(|(k, v)| decode_flow(n, k, v)).collect();
    out.sort_by(|a, b| {
        (a.chain_id, a.reverse, &a.src, &a.dst, a.sport, a.dport).cmp(&(b.chain_id, b.reverse, &b.src, &b.dst, b.sport, b.dport))
    });
    Ok(out)
}

#[cfg(test)]
mod tests;
