use std::process::ExitCode;

use clap::ValueEnum;
use sfc_common::limits::DEFAULT_FLOW_TABLE_SIZE;

use crate::datapath::{self, LoadOptions, Location};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// tc ingress programs (tcx links): the default, fastest for skb traffic on veth.
    Tc,
    /// XDP programs.
    Xdp,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The chain file (YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: String,
    /// Attach mode.
    #[arg(long, value_enum, default_value_t = Mode::Tc)]
    mode: Mode,
    /// Flow table entries (set when the datapath is first loaded).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FLOW_TABLE_SIZE,
          value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    flow_table_size: u32,
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    if a.mode == Mode::Xdp {
        anyhow::bail!("--mode xdp is not available yet; use --mode tc (the default)");
    }
    let model = super::load_model(&a.file)?;
    let r = datapath::apply(loc, &model, LoadOptions { flow_table_size: a.flow_table_size })?;
    let c = r.map_changes;
    println!(
        "{} {} to {}: {} port chains, {} port pair groups, {} port pairs, {} flow classifiers",
        if r.first_load { "installed" } else { "updated" },
        a.file,
        loc.netns.as_deref().map_or_else(|| "the host namespace".to_owned(), |n| format!("netns {n}")),
        model.port_chains.len(),
        model.port_pair_groups.len(),
        model.port_pairs.len(),
        model.flow_classifiers.len(),
    );
    println!("  map entries: {} added, {} changed, {} removed", c.added, c.changed, c.removed);
    if !r.attached.is_empty() {
        println!("  attached tc ingress: {}", r.attached.join(", "));
    }
    if !r.detached.is_empty() {
        println!("  detached: {}", r.detached.join(", "));
    }
    if r.flushed_flows > 0 {
        println!("  {} flows of changed chains will be reclassified", r.flushed_flows);
    }
    println!("  pinned under {}", loc.pin_dir.display());
    Ok(ExitCode::SUCCESS)
}
