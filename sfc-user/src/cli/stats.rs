//! `sfc stats`: counters decoded with the names of the applied chain file.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use serde::Serialize;
use sfc_common::maps::{Counter, DIR_FORWARD, DIR_REVERSE, HopStatsKey};

use crate::datapath::{DatapathError, Location, State, flows, flows::FlowTableStats, maps::Maps};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (shape in DESIGN.md section 4).
    #[arg(long)]
    json: bool,
    /// Refresh every second with packet rates, until interrupted.
    #[arg(long, conflicts_with = "json")]
    watch: bool,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub chains: Vec<ChainStats>,
    pub drops: BTreeMap<&'static str, u64>,
    pub interfaces: Vec<IfaceStats>,
    /// Times a member went down and its flows failed over (kept across applies).
    pub failovers: u64,
    /// The flow table: fill, entries created, new flows capped, entries removed and evicted.
    pub flow_table: FlowTableStats,
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
    let state = State::load(&loc.state_dir())?.ok_or_else(|| DatapathError::NotInstalled(loc.pin_dir.clone()))?;
    let maps = Maps::open(loc)?;
    let hop = maps.hop_stats()?;
    let m = &state.model;
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
                            MemberStats {
                                port_pair: m.port_pairs[p].name.clone(),
                                packets: f.packets,
                                bytes: f.bytes,
                                reverse_packets: r.packets,
                                reverse_bytes: r.bytes,
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
    Ok(Stats { chains, drops: maps.drops()?, interfaces, failovers: state.failovers, flow_table: flows::stats(loc)? })
}

fn print_table(s: &Stats, prev: Option<&Stats>, secs: f64) {
    let rate = |now: u64, before: Option<u64>| -> String {
        match before {
            #[expect(clippy::cast_precision_loss, reason = "a displayed rate, rounded to a whole number")]
            Some(b) if secs > 0.0 => format!("{:>10.0}/s", now.saturating_sub(b) as f64 / secs),
            _ => String::new(),
        }
    };
    for (ci, ch) in s.chains.iter().enumerate() {
        println!("chain {} (chain_id {})", ch.name, ch.chain_id);
        for (h, hop) in ch.hops.iter().enumerate() {
            println!("  hop {h} (SI {}) group {}", 255 - h, hop.group);
            for (mi, mb) in hop.members.iter().enumerate() {
                let before = prev.and_then(|p| p.chains.get(ci)).and_then(|c| c.hops.get(h)).and_then(|x| x.members.get(mi)).map(|x| x.packets);
                println!("    {:<16} {:>12} pkts {:>14} bytes {}", mb.port_pair, mb.packets, mb.bytes, rate(mb.packets, before));
                if mb.reverse_packets > 0 {
                    println!("    {:<16} {:>12} pkts {:>14} bytes (reverse)", "", mb.reverse_packets, mb.reverse_bytes);
                }
            }
        }
    }
    if s.failovers > 0 {
        println!("failovers: {}", s.failovers);
    }
    let f = &s.flow_table;
    println!(
        "flow table: {} of {} entries; {} created, {} new flows capped (no entry), {} removed (aged, closed, flushed), {} evicted",
        f.entries, f.capacity, f.created, f.capped, f.removed, f.evicted
    );
    let dropped: Vec<_> = s.drops.iter().filter(|(_, v)| **v > 0).collect();
    if dropped.is_empty() {
        println!("drops: none");
    } else {
        println!("drops:");
        for (k, v) in dropped {
            println!("  {k:<20} {v:>12}");
        }
    }
    if !s.interfaces.is_empty() {
        println!("interfaces:       classified unclassified      from_sf    malformed   recomputed");
        for i in &s.interfaces {
            println!("  {:<14} {:>10} {:>12} {:>12} {:>12} {:>12}", i.name, i.classified, i.unclassified, i.from_sf, i.malformed, i.recomputed);
        }
    }
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    if a.json {
        println!("{}", serde_json::to_string(&collect(loc)?)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !a.watch {
        print_table(&collect(loc)?, None, 0.0);
        return Ok(ExitCode::SUCCESS);
    }
    let mut prev: Option<Stats> = None;
    loop {
        let s = collect(loc)?;
        print!("\x1b[2J\x1b[H");
        print_table(&s, prev.as_ref(), 1.0);
        prev = Some(s);
        std::thread::sleep(Duration::from_secs(1));
    }
}
