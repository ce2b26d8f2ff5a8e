//! `--profile`: where the path's core spends its time while the path carries UDP, by symbol.
//! perf samples by `cpu-clock` (this VM has no hardware PMU events, and none are needed): a
//! probe of its own after the UDP measurement, at the carried rate, on the path's core only.
//! The shares are of all the core's samples, idle included; what a path's BPF programs and the
//! kernel's hash-map code take of them is the datapath's part.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};

/// Sampling frequency (Hz): 2,000 samples a second on the core.
const FREQ: &str = "2000";

/// Kernel functions that BPF programs' hash-map lookups and updates run in.
const MAP_CODE: &[&str] = &[
    "htab_map_hash",
    "lookup_nulls_elem_raw",
    "lookup_elem_raw",
    "memcmp",
    "__htab_map_lookup_elem",
    "htab_map_lookup_elem",
    "htab_lru_map_lookup_elem",
    "htab_lru_map_update_elem",
    "htab_lru_map_delete_elem",
    "htab_map_update_elem",
    "htab_map_delete_elem",
    "htab_lock_bucket",
    "bpf_lru_pop_free",
];

/// One probe: symbols with their share (percent of the core's samples), largest first; and
/// where in sfc's source its programs' samples fell (`Lines`).
#[derive(Debug, Clone, Default)]
pub struct Symbols(pub Vec<(f64, String)>, pub Lines);

/// sfc's programs' samples by source line (`file:line text`), each line's share of the samples
/// that fell in sfc's programs (entry points and subprograms), largest first; and how many
/// samples that was. Empty when sfc ran no program on the core (or its line info could not be
/// read: the reason is the only entry, with a share of 0).
#[derive(Debug, Clone, Default)]
pub struct Lines {
    pub shares: Vec<(f64, String)>,
    pub samples: u32,
}

impl Symbols {
    /// Share of BPF programs (JIT code, symbols `bpf_prog_<tag>[_<name>]`).
    pub fn programs(&self) -> f64 {
        self.0.iter().filter(|(_, s)| s.starts_with("bpf_prog_")).fold(0.0, |sum, (p, _)| sum + p)
    }

    /// Share of the kernel's hash-map code ([`MAP_CODE`]).
    pub fn map_code(&self) -> f64 {
        self.0.iter().filter(|(_, s)| MAP_CODE.contains(&s.as_str())).fold(0.0, |sum, (p, _)| sum + p)
    }

    /// The `n` largest, as "symbol share %".
    pub fn top(&self, n: usize) -> Vec<String> {
        self.0.iter().take(n).map(|(p, s)| format!("`{s}` {p:.1} %")).collect()
    }

    /// sfc's `n` hottest source lines, as "line share %" (shares of sfc's programs' samples).
    pub fn top_lines(&self, n: usize) -> Vec<String> {
        self.1.shares.iter().take(n).map(|(p, s)| format!("`{s}` {p:.1} %")).collect()
    }
}

/// Fails with what to install when perf is missing.
pub fn check() -> Result<()> {
    match std::process::Command::new("perf").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!("--profile needs perf (Debian: linux-perf; `cargo xtask bench --profile` installs it)"),
    }
}

/// Samples core `cpu` for `time` into `data`, and reads the shares by symbol back.
pub fn record(cpu: usize, time: Duration, data: &Path) -> Result<Symbols> {
    let secs = format!("{:.1}", time.as_secs_f64());
    let cpu = cpu.to_string();
    let out = crate::cmd::command("perf")
        .args(["record", "-q", "-C", &cpu, "-e", "cpu-clock", "-F", FREQ, "-o"])
        .arg(data)
        .args(["--", "sleep", &secs])
        .output()
        .context("running perf record")?;
    if !out.status.success() {
        bail!("perf record: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let out = crate::cmd::command("perf")
        .args(["report", "--no-children", "--sort", "sym", "--stdio", "-g", "none", "-i"])
        .arg(data)
        .output()
        .context("running perf report")?;
    if !out.status.success() {
        bail!("perf report: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut symbols = parse(&String::from_utf8_lossy(&out.stdout));
    // While the path is up: its programs' JIT code, and so their line maps, are still loaded.
    symbols.1 = sfc_lines(data).unwrap_or_else(|e| Lines { shares: vec![(0.0, format!("no line profile: {e:#}"))], samples: 0 });
    Ok(symbols)
}

/// The entry points whose samples `sfc_lines` maps (their subprograms come with them).
const SFC_PROGRAMS: &[&str] = &["sfc_tc_ingress", "sfc_xdp", "sfc_tc_overlay"];

/// Maps the samples of `data` that fell in sfc's programs (`SFC_PROGRAMS` and their
/// subprograms) to source lines through each loaded program's JIT line info
/// (`sfc_tests::rawbpf::jit_lines`). cpu-clock samples land a few instructions after the one
/// that took the time: a line's share is approximate, a function's is not.
fn sfc_lines(data: &Path) -> Result<Lines> {
    let out = crate::cmd::command("perf").args(["script", "-F", "ip,sym", "-i"]).arg(data).output().context("running perf script")?;
    if !out.status.success() {
        bail!("perf script: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let ips: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let ip = u64::from_str_radix(w.next()?, 16).ok()?;
            w.next()?.starts_with("bpf_prog_").then_some(ip)
        })
        .collect();
    if ips.is_empty() {
        return Ok(Lines::default());
    }
    Ok(by_line(ips.into_iter(), &sfc_tests::rawbpf::jit_lines(SFC_PROGRAMS)?))
}

/// Counts `ips` by the line of `maps` each falls in (ips in none are not sfc's).
fn by_line(ips: impl Iterator<Item = u64>, maps: &[sfc_tests::rawbpf::JitLines]) -> Lines {
    let mut counts: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
    let mut samples = 0u32;
    for ip in ips {
        if let Some(l) = maps.iter().find_map(|m| m.at(ip)) {
            *counts.entry(format!("{}:{} {}", l.file, l.line, l.text)).or_default() += 1;
            samples = samples.saturating_add(1);
        }
    }
    let total = f64::from(samples.max(1));
    let mut shares: Vec<(f64, String)> = counts.into_iter().map(|(line, n)| (100.0 * f64::from(n) / total, line)).collect();
    shares.sort_by(|a, b| b.0.total_cmp(&a.0));
    Lines { shares, samples }
}

/// `perf report --stdio` lines: share, space (`[k]`: kernel), symbol.
fn parse(report: &str) -> Symbols {
    let mut v: Vec<(f64, String)> = report
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let share = words.next()?.strip_suffix('%')?.parse::<f64>().ok()?;
            let _space = words.next()?; // [k] or [.]
            let sym = words.collect::<Vec<_>>().join(" ");
            (!sym.is_empty()).then_some((share, sym))
        })
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    Symbols(v, Lines::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_by_symbol_and_the_datapaths_part() {
        let report = "# Samples: 54K of event 'cpu-clock'\n#\n\
                      \x20   12.26%  [k] bpf_prog_093a23a8b4b98ada_sfc_tc_ingress\n\
                      \x20    9.78%  [k] _raw_spin_unlock_irqrestore\n\
                      \x20    2.22%  [k] htab_map_hash\n\
                      \x20    0.68%  [k] bpf_prog_a05761d35fe0cb46_back\n\
                      \x20    0.01%  [.] do_lookup_x\n";
        let s = parse(report);
        assert_eq!(s.0.len(), 5);
        // No symbol of a kind: 0, not -0 (what `sum` of no f64 gives).
        assert_eq!(format!("{:.1}", Symbols::default().programs()), "0.0");
        assert_eq!(s.0[0].1, "bpf_prog_093a23a8b4b98ada_sfc_tc_ingress");
        assert!((s.programs() - 12.94).abs() < 1e-9);
        assert!((s.map_code() - 2.22).abs() < 1e-9);
        assert_eq!(s.top(2), vec!["`bpf_prog_093a23a8b4b98ada_sfc_tc_ingress` 12.3 %", "`_raw_spin_unlock_irqrestore` 9.8 %"]);
    }

    #[test]
    fn sfc_samples_are_counted_by_the_line_their_address_falls_in() {
        use sfc_tests::rawbpf::{JitLine, JitLines};
        let line = |addr, line: u32, text: &str| JitLine { addr, file: "steer.rs".to_owned(), line, text: text.to_owned() };
        let map = JitLines { funcs: vec![(1000, 100), (2000, 50)], lines: vec![line(1000, 10, "a"), line(1040, 11, "b"), line(2000, 20, "c")] };
        // 1000..1040: a; 1040..1100: b; 2000..2050: c; the rest is not the program's.
        let l = by_line([1000, 1039, 1040, 1099, 2049, 1100, 999, 3000].into_iter(), &[map]);
        assert_eq!(l.samples, 5);
        let share = |s: &str| l.shares.iter().find(|(_, t)| t == s).map(|(p, _)| *p);
        assert_eq!((share("steer.rs:10 a"), share("steer.rs:11 b"), share("steer.rs:20 c")), (Some(40.0), Some(40.0), Some(20.0)));
        assert_eq!(by_line(std::iter::empty(), &[]).samples, 0);
    }
}
