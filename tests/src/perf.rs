//! perf's samples, read back: by symbol (`perf report`), and for BPF programs by source line
//! through their JIT line info (`rawbpf::jit_lines`). `cargo xtask bench --profile` profiles a
//! live path's core with it, the micro benchmark's `one_hop_profile` one program's runs.
//! cpu-clock samples (this VM has no hardware PMU events, and none are needed) land a few
//! instructions after the one that took the time: a line's share is approximate, a function's
//! is not.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::rawbpf::{JitLines, jit_lines};

/// Samples of BPF programs by source line (`file:line text`), each line's share of the samples
/// that fell in the programs asked for (entry points and their subprograms), largest first; and
/// how many samples that was.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    pub shares: Vec<(f64, String)>,
    pub samples: u32,
}

/// Samples this process (`pid`) at `freq` Hz into `data` while `during` runs, then stops perf.
/// Fails with what to install when perf is missing.
pub fn record_process<T>(pid: u32, freq: u32, data: &Path, during: impl FnOnce() -> T) -> Result<T> {
    let mut perf = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F", &freq.to_string(), "-p", &pid.to_string(), "-o"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running perf record (Debian: linux-perf)")?;
    // perf attaches after it starts: a run before that would go unsampled. Its data file
    // appears once it records.
    let started = std::time::Instant::now();
    while !data.exists() {
        if let Some(status) = perf.try_wait()? {
            bail!("perf record exited before recording ({status})");
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let _ = perf.kill();
            bail!("perf record did not start within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = during();
    let pid = libc::pid_t::try_from(perf.id()).context("perf's pid")?;
    // SAFETY: a signal to the child this function spawned and has not reaped.
    if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
        bail!("stopping perf record: {}", std::io::Error::last_os_error());
    }
    let done = perf.wait_with_output().context("waiting for perf record")?;
    // Stopped by the interrupt, perf writes its data and then raises it again: it ends killed
    // by SIGINT.
    if !done.status.success() && std::os::unix::process::ExitStatusExt::signal(&done.status) != Some(libc::SIGINT) {
        bail!("perf record ({}): {}", done.status, String::from_utf8_lossy(&done.stderr).trim());
    }
    Ok(out)
}

/// `perf report` of `data` by symbol: (share in percent, symbol), largest first.
pub fn symbols(data: &Path) -> Result<Vec<(f64, String)>> {
    let out = Command::new("perf")
        .args(["report", "--no-children", "--sort", "sym", "--stdio", "-g", "none", "-i"])
        .arg(data)
        .output()
        .context("running perf report")?;
    if !out.status.success() {
        bail!("perf report: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(by_symbol(&String::from_utf8_lossy(&out.stdout)))
}

/// `perf report --stdio` lines: share, space (`[k]`: kernel), symbol.
pub fn by_symbol(report: &str) -> Vec<(f64, String)> {
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
    v
}

/// Maps the samples of `data` that fell in BPF programs named one of `programs` (and their
/// subprograms) to source lines. While the programs are loaded: their JIT code, and so their
/// line maps, exist only then.
pub fn lines(data: &Path, programs: &[&str]) -> Result<Lines> {
    let out = Command::new("perf").args(["script", "-F", "ip,sym", "-i"]).arg(data).output().context("running perf script")?;
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
    Ok(by_line(ips.into_iter(), &jit_lines(programs)?))
}

/// Counts `ips` by the line of `maps` each falls in (ips in none are not the programs').
pub fn by_line(ips: impl Iterator<Item = u64>, maps: &[JitLines]) -> Lines {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawbpf::JitLine;

    #[test]
    fn shares_by_symbol_largest_first() {
        let report = "# Samples: 54K of event 'cpu-clock'\n#\n\
                      \x20    9.78%  [k] _raw_spin_unlock_irqrestore\n\
                      \x20   12.26%  [k] bpf_prog_093a23a8b4b98ada_sfc_tc_ingress\n\
                      \x20    2.22%  [k] htab_map_hash\n\
                      \x20    0.01%  [.] do_lookup_x\n\
                      not a line of the report\n";
        let s = by_symbol(report);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], (12.26, "bpf_prog_093a23a8b4b98ada_sfc_tc_ingress".to_owned()));
        assert_eq!(s[3].1, "do_lookup_x");
    }

    #[test]
    fn samples_are_counted_by_the_line_their_address_falls_in() {
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
