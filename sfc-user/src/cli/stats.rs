//! `sfc stats`: counters decoded with the names of the applied chain file.

use std::{process::ExitCode, time::Duration};

use crate::{
    datapath::Location,
    view::stats::{Stats, collect},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (shape in DESIGN.md section 4).
    #[arg(long)]
    json: bool,
    /// Refresh every second with packet rates, until interrupted.
    #[arg(long, conflicts_with = "json")]
    watch: bool,
}

/// `  in SF p50 < 16 us, p99 < 64 us (120 samples)`, or nothing before the first sample.
fn latency(l: Option<&crate::view::stats::Latency>) -> String {
    let us = |s: f64| {
        if s >= 1e-3 { format!("{:.1} ms", s * 1e3) } else { format!("{:.0} us", s * 1e6) }
    };
    l.map_or_else(String::new, |l| format!("  in SF p50 < {}, p99 < {} ({} samples)", us(l.p50_seconds), us(l.p99_seconds), l.samples))
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
            if hop.tap {
                println!("  hop {h} tap group {} (copies; the packets went on)", hop.group);
            } else {
                println!("  hop {h} (SI {}) group {}", 255 - h, hop.group);
            }
            for (mi, mb) in hop.members.iter().enumerate() {
                let before = prev.and_then(|p| p.chains.get(ci)).and_then(|c| c.hops.get(h)).and_then(|x| x.members.get(mi)).map(|x| x.packets);
                println!("    {:<16} {:>12} pkts {:>14} bytes{} {}", mb.port_pair, mb.packets, mb.bytes, latency(mb.latency.as_ref()), rate(mb.packets, before));
                if mb.reverse_packets > 0 {
                    println!("    {:<16} {:>12} pkts {:>14} bytes{} (reverse)", "", mb.reverse_packets, mb.reverse_bytes, latency(mb.reverse_latency.as_ref()));
                }
            }
        }
    }
    if s.failovers > 0 {
        println!("failovers: {}", s.failovers);
    }
    let t = &s.trace;
    if t.emitted + t.lost_budget + t.lost_ring_full > 0 {
        println!("trace events: {} emitted, {} lost over the budget, {} lost to a full ring", t.emitted, t.lost_budget, t.lost_ring_full);
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
