//! Counters per chain, hop and member (both directions), per interface, drops by reason, the
//! flow table's accounting, and failovers: what `sfc stats` prints and the metrics expose.

use std::collections::BTreeMap;

use serde::Serialize;
use sfc_common::maps::{Counter, DIR_FORWARD, DIR_REVERSE, HopStatsKey};

use super::inspect;
use crate::datapath::{Location, flows, maps::Maps, trace};

#[derive(Debug, Serialize)]
pub struct Stats {
    pub chains: Vec<ChainStats>,
    pub drops: BTreeMap<&'static str, u64>,
    pub interfaces: Vec<IfaceStats>,
    /// Times a member went down and its flows failed over (kept across applies).
    pub failovers: u64,
    /// The flow table: fill, entries created, new flows capped, entries removed and evicted.
    pub flow_table: FlowTableStats,
    /// `sfc trace`'s events, emitted and lost.
    pub trace: crate::datapath::trace::TraceStats,
}

#[derive(Debug, Serialize)]
pub struct ChainStats {
    pub name: String,
    pub chain_id: u32,
    pub hops: Vec<HopStats>,
}

#[derive(Debug, Serialize)]
pub struct HopStats {
    pub group: String,
    /// A tap group: its members' counts are copies (the packets themselves went on).
    pub tap: bool,
    pub members: Vec<MemberStats>,
}

#[derive(Debug, Serialize)]
pub struct MemberStats {
    pub port_pair: String,
    pub packets: u64,
    pub bytes: u64,
    /// The reverse direction of a symmetric chain (0 otherwise).
    pub reverse_packets: u64,
    pub reverse_bytes: u64,
    /// Time packets spend inside the service function (from being sent into it to coming
    /// back out), sampled; `None` before the first sample. The member's, whatever the chain.
    pub latency: Option<Latency>,
    pub reverse_latency: Option<Latency>,
}

/// A member's SF latency histogram (`sfc_common::trace`: log2 buckets of 1.024 us).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    /// Upper bounds of the buckets holding the median and the 99th percentile (a factor of two
    /// of resolution), in seconds.
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    /// Samples per bucket: bucket b holds times below `sfc_common::trace::latency_bucket_le(b)`.
    pub buckets: Vec<u64>,
}

impl Latency {
    fn of(buckets: &[u64]) -> Option<Latency> {
        let samples = buckets.iter().sum();
        Some(Latency {
            samples,
            p50_seconds: trace::quantile(buckets, 0.5)?,
            p99_seconds: trace::quantile(buckets, 0.99)?,
            buckets: buckets.to_vec(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct IfaceStats {
    pub name: String,
    pub ifindex: u32,
    pub classified: u64,
    pub unclassified: u64,
    pub from_sf: u64,
    pub malformed: u64,
    /// Of `from_sf`: packets whose flow entry was gone (or another path's) and whose path was
    /// recomputed from the configuration.
    pub recomputed: u64,
}

/// Reads the counters of the datapath at `loc`.
pub fn collect(loc: &Location) -> anyhow::Result<Stats> {
    let state = inspect::load_state(loc)?;
    let maps = Maps::open(loc)?;
    let hop = maps.hop_stats()?;
    let m = &state.model;
    // A datapath installed by an older sfc has no latency or trace maps.
    let has = |name: &str| loc.map_pin(name).exists();
    let ids: Vec<u32> = m.port_pairs.iter().map(|p| state.ids.port_pair(&p.name)).collect();
    let latency = if has(sfc_common::trace::MAP_LATENCY) { trace::latency(loc, &ids)? } else { BTreeMap::new() };
    let chains = m
        .port_chains
        .iter()
        .map(|ch| ChainStats {
            name: ch.name.clone(),
            chain_id: ch.chain_id,
            hops: ch
                .port_pair_groups
                .iter()
                .enumerate()
                .map(|(h, &g)| HopStats {
                    group: m.port_pair_groups[g].name.clone(),
                    tap: m.port_pair_groups[g].tap_enabled,
                    members: m.port_pair_groups[g]
                        .port_pairs
                        .iter()
                        .map(|&p| {
                            let get = |dir| {
                                let key = HopStatsKey {
                                    chain_id: ch.chain_id,
                                    hop: u32::try_from(h).unwrap_or(u32::MAX),
                                    port_pair: state.ids.port_pair(&m.port_pairs[p].name),
                                    dir,
                                };
                                hop.get(&key).copied().unwrap_or(Counter::default())
                            };
                            let (f, r) = (get(DIR_FORWARD), get(DIR_REVERSE));
                            let id = state.ids.port_pair(&m.port_pairs[p].name);
                            let lat = |dir: u8| latency.get(&(id, dir)).and_then(|b| Latency::of(b));
                            MemberStats {
                                port_pair: m.port_pairs[p].name.clone(),
                                packets: f.packets,
                                bytes: f.bytes,
                                reverse_packets: r.packets,
                                reverse_bytes: r.bytes,
                                latency: lat(0),
                                reverse_latency: lat(1),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let interfaces = maps
        .if_stats()?
        .into_iter()
        .map(|(ifindex, s)| IfaceStats {
            name: state.ifname(ifindex).unwrap_or_else(|| format!("ifindex {ifindex}")),
            ifindex,
            classified: s.classified,
            unclassified: s.unclassified,
            from_sf: s.from_sf,
            malformed: s.malformed,
            recomputed: s.recomputed,
        })
        .collect();
    let trace = if has(sfc_common::trace::MAP_TRACE_STATS) { trace::stats(loc)? } else { trace::TraceStats::default() };
    Ok(Stats { chains, drops: maps.drops()?, interfaces, failovers: state.failovers, flow_table: flow_table(loc)?, trace })
}

/// The flow table's accounting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableStats {
    pub entries: u64,
    pub capacity: u64,
    /// Entries the datapath created for new flows.
    pub created: u64,
    /// New flows steered without an entry: over the new-flow rate cap.
    pub capped: u64,
    /// Entries the loader removed: aged out, closed, flushed.
    pub removed: u64,
    /// Entries the kernel's LRU evicted to make room: created - removed - entries (an estimate
    /// while flows are being created and removed during the reading).
    pub evicted: u64,
}

/// The flow table's accounting now.
pub fn flow_table(loc: &Location) -> crate::datapath::Result<FlowTableStats> {
    let (entries, capacity) = inspect::flow_table_fill(loc)?;
    let (created, capped, removed) = flows::counts(loc)?;
    Ok(FlowTableStats {
        entries,
        capacity: u64::from(capacity),
        created,
        capped,
        removed,
        evicted: created.saturating_sub(removed).saturating_sub(entries),
    })
}
