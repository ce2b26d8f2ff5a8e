//! Updates (issue 17): the wall time of a whole `datapath::apply` (facts, plan, compile, the
//! writes, the flip; the state written behind it, timed apart, as `sfc run` has it) at 100,000
//! classifiers, when nothing, 1, 100 or 10,000 classifiers changed (their destination moved),
//! where that time went (`ApplyReport::steps`), and the memory of this process (the loader runs
//! in it) for them: its peak, and what it holds between two applies. Real tcx attachments on
//! veths in a private namespace; no packet is sent. Printed with the growth tables.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sfc::{
    datapath::{self, LoadOptions, Location},
    model::{AttachMode, Model, Prefix},
};

use super::{PAIRS, dst_of, group, model_with, sandbox};

const N: usize = 100_000;
const CHANGED: [usize; 3] = [1, 100, 10_000];

/// `base` with classifiers `0..k` sent to destinations no other classifier has (`round`
/// keeps successive updates distinct).
fn moved(base: &Model, k: usize, round: usize) -> Model {
    let mut m = base.clone();
    for (i, c) in m.flow_classifiers.iter_mut().take(k).enumerate() {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&dst_of(N * (round + 1) + i));
        c.destination_prefix = Prefix { addr, ..c.destination_prefix };
    }
    m
}

/// What comes before every apply of a chain file, `sfc run`'s as `sfc apply`'s: reading and
/// checking the whole file (the rows above start from a model built in code).
fn reading(base: &Model) -> String {
    let text = chain_text(base);
    let t = Instant::now();
    let cfg = sfc::config::parse("bench.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let parsed = t.elapsed();
    let t = Instant::now();
    let model = sfc::model::validate(&cfg).unwrap_or_else(|e| panic!("the bench's chain file is invalid:\n{e}"));
    let checked = t.elapsed();
    assert_eq!(model.flow_classifiers.len(), base.flow_classifiers.len(), "the chain file has every classifier");
    format!(
        "Before any of these applies, reading the chain file (YAML, {} classifiers, {:.1} MB): parsing {} ms, checking {} ms. `sfc apply` and `sfc run` read the whole file for every apply.",
        group(base.flow_classifiers.len()),
        f64::from(u32::try_from(text.len()).unwrap_or(u32::MAX)) / 1e6,
        ms(parsed),
        ms(checked)
    )
}

/// `model`'s chain file as an operator writes it: `chain_file()`'s resources with every
/// classifier, one line each.
fn chain_text(model: &Model) -> String {
    use std::fmt::Write as _;
    let template = super::chain_file();
    let (head, _) = template.split_once("flow_classifiers:").unwrap_or_else(|| panic!("chain_file() has classifiers"));
    let mut out = format!("{head}flow_classifiers:\n");
    for c in &model.flow_classifiers {
        let [a, b, cc, d, ..] = c.destination_prefix.addr;
        let _ = writeln!(
            out,
            "  - {{name: {}, protocol: udp, destination_ip_prefix: {a}.{b}.{cc}.{d}/{}, logical_source_port: {}, logical_destination_port: {}}}",
            c.name, c.destination_prefix.len, super::SRC, super::DST
        );
    }
    out.push_str("port_chains:\n");
    for pc in &model.port_chains {
        let _ = writeln!(out, "  - name: {}\n    chain_id: {}\n    port_pair_groups: [pg1]\n    flow_classifiers:", pc.name, pc.chain_id);
        for &i in &pc.flow_classifiers {
            let _ = writeln!(out, "      - {}", model.flow_classifiers[i].name);
        }
    }
    out
}

/// A figure of this process's `/proc/self/status` (`VmHWM`: peak resident, `VmRSS`: resident
/// now), MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("/proc/self/status: {e}"));
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    kib / 1024.0
}

/// Starts the peak over: what the benchmarks before this one freed is handed back to the
/// system (as `sfc run` does after every apply), then the kernel's peak is set to what is
/// resident now (`clear_refs` 5), so that the peak reported is this part's.
fn peak_from_here() {
    datapath::give_back_freed();
    std::fs::write("/proc/self/clear_refs", "5").unwrap_or_else(|e| panic!("resetting the peak resident memory: {e}"));
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

pub fn updates() -> Vec<String> {
    let _ns = sandbox::namespace(PAIRS);
    let pins = sandbox::pin_dir();
    let loc = Location::new(None, Some(pins.path().to_owned()));
    let opts = LoadOptions {
        flow_table_size: 65_536,
        drain_timeout: Duration::ZERO,
        mode: AttachMode::Tc,
        new_flow_rate: 0,
        absent_ok: false,
        latency_every: 0,
    };
    peak_from_here();
    let base = model_with(N);
    // As `sfc run` does: the state file is written behind each apply, and the next waits for it.
    datapath::write_behind(true);
    let timed = |what: &str, run: &dyn Fn() -> datapath::Result<datapath::ApplyReport>| {
        let t = Instant::now();
        let r = run().unwrap_or_else(|e| panic!("{what}: {e}"));
        let took = t.elapsed();
        let t = Instant::now();
        datapath::settle(&loc).unwrap_or_else(|e| panic!("{what}: {e}"));
        let saved = t.elapsed();
        eprintln!("bench_micro: updates, {what}: {took:.1?}, map entries {} added, {} changed, {} removed, {} written", r.map_changes.added, r.map_changes.changed, r.map_changes.removed, r.written);
        (took, r.map_changes.added + r.map_changes.changed + r.map_changes.removed, r.written, r.steps, r.read_banks, saved)
    };
    // As `sfc run` does: the model in an `Arc`, which the state kept for the next apply shares
    // (`apply_shared`); `sfc apply`'s row below goes through `apply`, which copies it.
    let apply = |m: Model, what: &str| {
        let m = Arc::new(m);
        timed(what, &|| datapath::apply_shared(&loc, &m, opts))
    };
    // Columns: wall, entries written, then every step the apply reports (its own labels), and
    // the part of the write step that read the banks back.
    let mut rows = vec![("first install".to_owned(), apply(base.clone(), "first install"))];
    rows.push(("nothing changed".to_owned(), apply(base.clone(), "nothing changed")));
    // The first apply that changes something also writes the whole other bank, empty since
    // the install: the rows after it are the steady state.
    rows.push(("1 changed, the other bank filled".to_owned(), apply(moved(&base, 1, 0), "1 changed, first")));
    for (round, k) in CHANGED.into_iter().enumerate() {
        rows.push((format!("{} changed", group(k)), apply(moved(&base, k, round + 1), &format!("{k} changed"))));
    }
    // What `sfc apply` does, one process per apply: nothing kept, so the state file is read,
    // the classifiers compiled from scratch and the banks read back, and the state is written
    // before the apply returns. One classifier more moved from the last row's model.
    datapath::forget_kept(&loc);
    datapath::write_behind(false);
    let k = CHANGED[CHANGED.len() - 1];
    let mut last = moved(&base, k, CHANGED.len());
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&dst_of(N * (CHANGED.len() + 2) + k));
    last.flow_classifiers[k].destination_prefix.addr = addr;
    // Between two applies of `sfc run`: what the last one kept (the compiler, the state, the
    // banks' contents) and the models of this benchmark, the freed heap handed back.
    let between = status_mib("VmRSS");
    rows.push(("1 changed, nothing kept (a new process: `sfc apply`)".to_owned(), timed("1 changed, nothing kept", &|| datapath::apply(&loc, &last, opts))));
    let labels: Vec<&str> = rows[0].1 .3.iter().map(|(s, _)| *s).collect();
    let mut out = vec![
        format!(
            "| apply at {} classifiers | wall ms | map entries changed | entries written | {} ms | of which banks read back and diffed ms | then the state written behind ms |",
            group(N),
            labels.join(" ms | ")
        ),
        format!("|---|---:|---:|---:|{}---:|---:|", "---:|".repeat(labels.len())),
    ];
    for (what, (took, changed, written, steps, read, saved)) in &rows {
        let parts: Vec<String> = steps.iter().map(|(_, d)| ms(*d)).collect();
        out.push(format!("| {what} | {} | {} | {} | {} | {} | {} |", ms(*took), group(*changed), group(*written), parts.join(" | "), ms(*read), ms(*saved)));
    }
    out.push(String::new());
    // The file read last, as `sfc run` reads it on a change: beside what the applies kept.
    let read = reading(&base);
    out.push(format!(
        "Memory of the process that applied them (the loader runs in it; these applies and the file's reading only, the benchmarks before them left out): peak {:.0} MiB; resident between two applies, with what the last one kept, this benchmark's own copy of the model and the freed heap handed back as `sfc run` does, {between:.0} MiB.",
        status_mib("VmHWM")
    ));
    out.push(String::new());
    out.push(read);
    if let Err(e) = datapath::down(&loc) {
        eprintln!("bench_micro: updates: sfc down: {e}");
    }
    out
}
