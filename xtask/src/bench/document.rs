//! BENCHMARKS.md: the machine a run measured on, and the generated parts of the file.
//!
//! BENCHMARKS.md keeps whatever people wrote around the generated parts: a run replaces only the
//! text between a part's two markers ([`MAIN`]: macro and micro; [`ROBUST`]: failover and
//! floods; [`HOSTS`]: multi-host), or adds the part at the end.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

/// The markers around one generated part of BENCHMARKS.md.
pub struct Part {
    pub begin: &'static str,
    pub end: &'static str,
}

pub const MAIN: Part =
    Part { begin: "<!-- cargo xtask bench: generated from here -->", end: "<!-- cargo xtask bench: generated up to here -->" };
pub const HOSTS: Part = Part {
    begin: "<!-- cargo xtask bench (multi-host): generated from here -->",
    end: "<!-- cargo xtask bench (multi-host): generated up to here -->",
};
pub const ROBUST: Part = Part {
    begin: "<!-- cargo xtask bench (robustness): generated from here -->",
    end: "<!-- cargo xtask bench (robustness): generated up to here -->",
};

/// Cores, memory, kernel, CPU model, distribution, load, tool versions.
pub fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let debian = read("/etc/debian_version").trim().to_owned();
    let load = read("/proc/loadavg");
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    #[expect(clippy::cast_precision_loss, reason = "memory sizes")]
    let mem_gib = mem_kb as f64 / 1024.0 / 1024.0;
    let mut m = String::new();
    let _ = writeln!(m, "- CPU: {model}, {cores} cores (as the VM sees them)");
    let _ = writeln!(m, "- memory: {mem_gib:.1} GiB");
    let _ = writeln!(m, "- kernel: Linux {kernel}; Debian {debian}");
    let _ = writeln!(
        m,
        "- load average when the run started: {load} (a shared machine: whatever else runs \
         competes for the same cores; the bench stops nothing)"
    );
    let _ = writeln!(m, "- tools: {}", tool_versions().join(", "));
    m
}

fn tool_versions() -> Vec<String> {
    let first_line = |program: &str, arg: &str| {
        crate::cmd::probe(crate::cmd::command(program).arg(arg)).map_or_else(
            |_| format!("{program}: not found"),
            |o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            },
        )
    };
    vec![
        first_line("iperf3", "--version"),
        first_line("ovs-vswitchd", "--version"),
    ]
}

/// Replaces generated part `part` of `path` with `generated` (or adds it, or writes a new file).
pub fn write_benchmarks_md(path: &Path, part: &Part, generated: &str) -> Result<()> {
    let Part { begin, end } = part;
    let block = format!("{begin}\n{generated}{end}\n");
    let text = match std::fs::read_to_string(path) {
        Ok(old) => match (old.find(begin), old.find(end)) {
            (Some(b), Some(e)) if b < e => {
                let rest = old[e + end.len()..].trim_start_matches('\n');
                let gap = if rest.is_empty() { "" } else { "\n" };
                format!("{}{block}{gap}{rest}", &old[..b])
            }
            _ => format!("{}\n{block}", old.trim_end()),
        },
        Err(_) => format!("# sfc benchmarks\n\n{block}"),
    };
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_part_is_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("sfcb-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("B.md");
        write_benchmarks_md(&file, &MAIN, "one\n").unwrap();
        let first = std::fs::read_to_string(&file).unwrap();
        assert!(first.contains("one\n"));
        std::fs::write(&file, format!("intro\n\n{first}\nanalysis\n")).unwrap();
        write_benchmarks_md(&file, &MAIN, "two\n").unwrap();
        write_benchmarks_md(&file, &ROBUST, "three\n").unwrap();
        let second = std::fs::read_to_string(&file).unwrap();
        assert!(second.starts_with("intro\n"), "{second}");
        assert!(
            second.contains("two\n") && !second.contains("one\n"),
            "{second}"
        );
        assert!(second.contains("analysis\n") && second.trim_end().ends_with(ROBUST.end), "{second}");
        write_benchmarks_md(&file, &ROBUST, "four\n").unwrap();
        let third = std::fs::read_to_string(&file).unwrap();
        assert!(third.contains("two\n") && third.contains("four\n") && !third.contains("three\n"), "{third}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
