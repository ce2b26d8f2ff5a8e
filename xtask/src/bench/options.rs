//! `cargo xtask bench`'s command line: what to measure, how long, and the packages it needs.

use std::{fmt::Write as _, path::PathBuf};

/// Debian packages the bench runs: what each is for.
const TOOLS: &[(&str, &str)] = &[
    ("iperf3", "TCP throughput"),
    ("openvswitch-switch", "the OVS userspace path (c)"),
];

#[derive(clap::Args, Debug, Clone)]
#[expect(clippy::struct_excessive_bools, reason = "clap switches: each bool is one flag of the command line")]
pub struct Options {
    /// Repetitions of every measurement, interleaved across the paths; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub(super) reps: usize,
    /// Seconds per measurement (2 keeps a whole run under 10 minutes on a 2-core machine).
    #[arg(long, default_value_t = 2)]
    pub(super) secs: u64,
    /// Skip the micro benchmark (`BPF_PROG_TEST_RUN`).
    #[arg(long)]
    pub(super) no_micro: bool,
    /// Skip the namespace benchmark (the paths through the hub).
    #[arg(long)]
    pub(super) no_macro: bool,
    /// Skip the robustness figures (failover after a hung function or a link down, floods).
    #[arg(long)]
    pub(super) no_robust: bool,
    /// Skip the VM boot time.
    #[arg(long)]
    pub(super) no_vm: bool,
    /// Skip the multi-host figures (a hop to another host, push to applied).
    #[arg(long)]
    pub(super) no_hosts: bool,
    /// VM boots measured (one after the other).
    #[arg(long, default_value_t = 3)]
    pub(super) vm_boots: usize,
    /// Runs of each failover measurement.
    #[arg(long, default_value_t = 3)]
    pub(super) failover_runs: usize,
    /// Where to write the results [default: BENCHMARKS.md in the workspace root].
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Only these paths of the macro benchmark, by key (`a,d,f`); the baseline (a) is always in.
    /// The flow-keeping floor (g) is measured only when named here (`--paths d,f,g`).
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub(super) paths: Vec<String>,
    /// A smoke run: one repetition of 1 s per measurement, one VM boot, one run of each
    /// failover (the numbers are not for comparing).
    #[arg(long)]
    pub(super) quick: bool,
    /// Also profile the path's core (perf, by cpu-clock) while each path carries UDP in the
    /// first repetition: the largest symbols per path, the share of its BPF programs and of
    /// the kernel's hash-map code, and sfc's hottest source lines (through its programs' JIT
    /// line info). Installs perf (Debian: linux-perf) when missing.
    #[arg(long)]
    pub(super) profile: bool,
}

impl Options {
    /// The options a run uses: `--quick` makes every count 1 and every measurement 1 s.
    pub(super) fn effective(&self) -> Options {
        if self.quick {
            Options { reps: 1, secs: 1, vm_boots: 1, failover_runs: 1, ..self.clone() }
        } else {
            self.clone()
        }
    }

    /// The Debian packages this run needs.
    pub(super) fn tools(&self) -> Vec<(&'static str, &'static str)> {
        let mut tools = if self.no_macro && self.no_hosts { Vec::new() } else { TOOLS.to_vec() };
        if self.profile && !self.no_macro {
            tools.push(("linux-perf", "the path core's profile (`--profile`)"));
        }
        tools
    }

    /// The command line, as BENCHMARKS.md shows it.
    pub(super) fn command_line(&self) -> String {
        let mut c = String::from("cargo xtask bench");
        let defaults = (3, 2);
        if (self.reps, self.secs) != defaults {
            let _ = write!(c, " --reps {} --secs {}", self.reps, self.secs);
        }
        let switches = |c: &mut String, on: &[(bool, &str)]| on.iter().filter(|(set, _)| *set).for_each(|(_, flag)| c.push_str(flag));
        switches(&mut c, &[(self.no_micro, " --no-micro"), (self.no_macro, " --no-macro"), (self.no_robust, " --no-robust"), (self.no_vm, " --no-vm")]);
        if !self.paths.is_empty() {
            let _ = write!(c, " --paths {}", self.paths.join(","));
        }
        switches(&mut c, &[(self.quick, " --quick"), (self.profile, " --profile"), (self.no_hosts, " --no-hosts")]);
        c
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Options,
    }

    #[test]
    fn the_command_line_names_what_differs_from_the_defaults_in_order() {
        let line = |args: &[&str]| Cli::parse_from(std::iter::once("bench").chain(args.iter().copied())).opts.command_line();
        assert_eq!(line(&[]), "cargo xtask bench");
        assert_eq!(
            line(&["--no-hosts", "--profile", "--paths", "d,f", "--no-vm", "--no-micro", "--secs", "1"]),
            "cargo xtask bench --reps 3 --secs 1 --no-micro --no-vm --paths d,f --profile --no-hosts"
        );
    }
}
