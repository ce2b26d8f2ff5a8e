use std::{
    fmt::Write as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::ValueEnum;
use sfc_common::limits::{DEFAULT_FLOW_TABLE_SIZE, DEFAULT_NEW_FLOW_RATE};

use crate::{
    datapath::{self, LoadOptions, Location},
    model::AttachMode,
};

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// tc ingress programs (tcx links): the default; keeps GSO and checksum offload, fastest for
    /// traffic that arrives as skbs (veth, tap).
    Tc,
    /// Native XDP programs, redirecting through a devmap; the far ends of the veths it redirects
    /// into get an XDP pass program. Offloaded TCP/UDP checksums are completed in the program.
    Xdp,
}

impl From<Mode> for AttachMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Tc => AttachMode::Tc,
            Mode::Xdp => AttachMode::Xdp,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The chain file (YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: String,
    /// Attach mode of every interface the file's `interfaces:` section does not set.
    #[arg(long, value_enum, default_value_t = Mode::Tc)]
    mode: Mode,
    /// Flow table entries, set when the datapath is first loaded (about 200 bytes each: the
    /// maximum, 4194304, locks ~800 MB of kernel memory).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FLOW_TABLE_SIZE,
          value_parser = clap::value_parser!(u32).range(1024..=4_194_304))]
    flow_table_size: u32,
    /// Seconds a port pair removed from its group keeps serving the flows it already has (0:
    /// move them at once). A one-shot apply removes it at the first `sfc apply` once that time
    /// is up; `sfc run` removes it on time.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    drain_timeout: u64,
    /// New flow entries each CPU may create per second (0: no cap). Past it, new flows are still
    /// steered through their chain but get no entry, so a flood of new 5-tuples cannot push
    /// established flows out of the table. Counted as capped in `sfc stats`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NEW_FLOW_RATE)]
    new_flow_rate: u32,
    /// Time the service functions with 1 packet in N (chosen by bytes that routing does not
    /// change, so the same packet is recognised when it comes back): per member histograms in
    /// `sfc stats` and the metrics. 0: off.
    #[arg(long, value_name = "N", default_value_t = sfc_common::trace::DEFAULT_LATENCY_EVERY)]
    sf_latency_every: u32,
    /// Print one JSON object instead of text: the generation, the map changes, the resource
    /// counts and the lists the text shows (README, "Scripting sfc").
    #[arg(long)]
    json: bool,
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let model = super::load_model(&a.file)?;
    let read = started.elapsed();
    let opts = LoadOptions {
        flow_table_size: a.flow_table_size,
        drain_timeout: std::time::Duration::from_secs(a.drain_timeout),
        mode: a.mode.into(),
        new_flow_rate: a.new_flow_rate,
        absent_ok: false,
        latency_every: a.sf_latency_every,
    };
    let r = datapath::apply(loc, &model, opts)?;
    let took = Took { read, apply: started.elapsed().saturating_sub(read) };
    if a.json {
        println!("{}", report_json(loc, &a.file, &model, &r, &took));
        return Ok(ExitCode::SUCCESS);
    }
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
    if r.flipped {
        println!(
            "  generation {}: map entries {} added, {} changed, {} removed",
            r.generation, c.added, c.changed, c.removed
        );
    } else {
        println!("  no change (generation {} stays live)", r.generation);
    }
    if !r.draining.is_empty() {
        println!(
            "  draining (existing flows stay for {} s; a one-shot apply removes them at the first `sfc apply` after that, `sfc run` on time): {}",
            a.drain_timeout,
            r.draining.join(", ")
        );
    }
    if !r.went_down.is_empty() {
        println!("  down (flows fail over to the other members): {}", r.went_down.join(", "));
    }
    if !r.waiting_for_mac.is_empty() {
        println!(
            "  not used until the MAC behind is known (learnt from the VM's own frames: `sfc run` re-applies at once, a one-shot apply at the next `sfc apply`; or give ingress_mac / egress_mac): {}",
            r.waiting_for_mac.join("; ")
        );
    }
    if !r.got_mac.is_empty() {
        println!("  MAC known now, serving: {}", r.got_mac.join(", "));
    }
    if !r.came_up.is_empty() {
        println!("  back up: {}", r.came_up.join(", "));
    }
    if !r.drained.is_empty() {
        println!("  drained and removed: {}", r.drained.join(", "));
    }
    for p in &r.peers {
        println!("  {p}");
    }
    if !r.attached.is_empty() {
        println!("  attached: {}", super::table::list(&r.attached));
    }
    if !r.detached.is_empty() {
        println!("  detached: {}", super::table::list(&r.detached));
    }
    println!("  pinned under {}", loc.pin_dir.display());
    println!("  {}", took.line(&r));
    Ok(ExitCode::SUCCESS)
}

/// How long `sfc apply` took: reading and checking the file, then the apply (whose steps the
/// report has).
struct Took {
    read: Duration,
    apply: Duration,
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

impl Took {
    /// `took 2684 ms: the file read and checked 1237 ms, the apply 1446 ms (facts, plan,
    /// compile 862; read banks, diff, write, flip 260; ...)`: the apply's steps that took 1 ms
    /// or more, longest first (their names have commas: `;` between them).
    fn line(&self, r: &datapath::ApplyReport) -> String {
        let mut steps: Vec<&(&str, Duration)> = r.steps.iter().filter(|(_, d)| *d >= Duration::from_millis(1)).collect();
        steps.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        let mut s = format!("took {} ms: the file read and checked {} ms, the apply {} ms", ms(self.read + self.apply), ms(self.read), ms(self.apply));
        if !steps.is_empty() {
            let parts: Vec<String> = steps.iter().map(|(what, d)| format!("{what} {}", ms(*d))).collect();
            let _ = write!(s, " ({})", parts.join("; "));
        }
        s
    }

    fn json(&self, r: &datapath::ApplyReport) -> serde_json::Value {
        let steps: serde_json::Map<String, serde_json::Value> = r.steps.iter().map(|(what, d)| ((*what).to_owned(), serde_json::json!(d.as_secs_f64() * 1000.0))).collect();
        serde_json::json!({
            "total": (self.read + self.apply).as_secs_f64() * 1000.0,
            "file": self.read.as_secs_f64() * 1000.0,
            "apply": self.apply.as_secs_f64() * 1000.0,
            "apply_steps": steps,
        })
    }
}

/// `sfc apply --json`: what the text report says, one object (fields may be added, not renamed).
fn shown<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn report_json(loc: &Location, file: &str, model: &crate::model::Model, r: &datapath::ApplyReport, took: &Took) -> serde_json::Value {
    let strings = |v: &[String]| v.to_vec();
    serde_json::json!({
        "file": file,
        "netns": loc.netns,
        "pin_dir": loc.pin_dir,
        "first_load": r.first_load,
        "flipped": r.flipped,
        "generation": r.generation,
        "map_changes": {"added": r.map_changes.added, "changed": r.map_changes.changed, "removed": r.map_changes.removed},
        "counts": {
            "port_chains": model.port_chains.len(),
            "port_pair_groups": model.port_pair_groups.len(),
            "port_pairs": model.port_pairs.len(),
            "flow_classifiers": model.flow_classifiers.len(),
        },
        "draining": strings(&r.draining),
        "drained": strings(&r.drained),
        "went_down": strings(&r.went_down),
        "came_up": strings(&r.came_up),
        "waiting_for_mac": strings(&r.waiting_for_mac),
        "got_mac": strings(&r.got_mac),
        "absent": strings(&r.absent),
        "peers": shown(&r.peers),
        "attached": shown(&r.attached),
        "detached": shown(&r.detached),
        "took_ms": took.json(r),
    })
}
