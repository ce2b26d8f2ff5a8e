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

/// sfc's programs' samples by source line, each line's share of the samples that fell in sfc's
/// programs (entry points and subprograms). Empty when sfc ran no program on the core (or its
/// line info could not be read: the reason is the only entry, with a share of 0).
pub use sfc_tests::perf::Lines;

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
    let mut symbols = Symbols(sfc_tests::perf::symbols(data)?, Lines::default());
    // While the path is up: its programs' JIT code, and so their line maps, are still loaded.
    symbols.1 = sfc_tests::perf::lines(data, SFC_PROGRAMS).unwrap_or_else(|e| Lines { shares: vec![(0.0, format!("no line profile: {e:#}"))], samples: 0 });
    Ok(symbols)
}

/// The entry points whose samples are mapped to lines (their subprograms come with them).
const SFC_PROGRAMS: &[&str] = &["sfc_tc_ingress", "sfc_xdp", "sfc_tc_overlay"];

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
        let s = Symbols(sfc_tests::perf::by_symbol(report), Lines::default());
        assert_eq!(s.0.len(), 5);
        // No symbol of a kind: 0, not -0 (what `sum` of no f64 gives).
        assert_eq!(format!("{:.1}", Symbols::default().programs()), "0.0");
        assert_eq!(s.0[0].1, "bpf_prog_093a23a8b4b98ada_sfc_tc_ingress");
        assert!((s.programs() - 12.94).abs() < 1e-9);
        assert!((s.map_code() - 2.22).abs() < 1e-9);
        assert_eq!(s.top(2), vec!["`bpf_prog_093a23a8b4b98ada_sfc_tc_ingress` 12.3 %", "`_raw_spin_unlock_irqrestore` 9.8 %"]);
    }
}
