//! Developer tasks for sfc, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
mod bench;
mod build_cmd;
mod cmd;
mod demo;
mod dirs;
mod package;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(bin_name = "cargo xtask", about = "Set up, build, test and demo sfc")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install (only what is missing) everything the build and the tests need.
    Setup,
    /// Set up, then build the `sfc` binary (and with it the eBPF object) and print its path.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, build, then run the unit tests and the namespace integration tests.
    Test {
        /// Passed to both `cargo test` runs' test harness, e.g. a name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, create a namespace topology, apply a chain, send traffic, show counters.
    Demo {
        /// The blog's VMs as real qemu VMs (source, dest, three service functions) on taps,
        /// not namespaces.
        #[arg(long)]
        vms: bool,
        /// Leave the topology and the datapath in place afterwards.
        #[arg(long)]
        keep: bool,
        /// Keep the demo (as --keep) under `sfc run` with metrics, a Prometheus scraping it and
        /// a request a second for an hour, and print how to point Grafana at it.
        #[arg(long, conflicts_with = "down")]
        observe: bool,
        /// Only tear down what an earlier `demo --keep` or `--observe` left.
        #[arg(long)]
        down: bool,
        /// `sfc apply --mode`: tc (the default) or xdp.
        #[arg(long, default_value = "tc", value_parser = ["tc", "xdp"])]
        mode: String,
        /// The VMs spread over N hosts (3: hub namespaces joined by a VXLAN underlay, etcd,
        /// one `sfc run --etcd` agent per host, each step an `sfc push`).
        #[arg(long, value_name = "N", conflicts_with_all = ["vms", "keep", "observe", "down"])]
        hosts: Option<usize>,
    },
    /// Set up, build, then benchmark: `BPF_PROG_TEST_RUN` per packet, and paths through namespaces
    /// (direct, policy routing, OVS userspace, sfc tc, sfc XDP); writes BENCHMARKS.md.
    Bench(bench::Options),
    /// Set up, build the release binary and pack the Debian package (binary, sfc.service, an
    /// example /etc/sfc/chains.yaml, man pages, completions); prints its path.
    Package,
}

fn main() -> ExitCode {
    // One line naming the failed step, not anyhow's Debug dump (which adds a backtrace whenever
    // RUST_BACKTRACE is set).
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Setup => setup::run(),
        Command::Build { release } => {
            let sfc = build_cmd::sfc_binary(release)?;
            println!("{}", sfc.display());
            Ok(())
        }
        Command::Test { args } => test::run(&args),
        Command::Demo { vms, keep, observe, down, mode, hosts } => {
            let guests = if vms { demo::Guests::Vms } else { demo::Guests::Namespaces };
            let kept = if observe { demo::Kept::Observed } else if keep { demo::Kept::Up } else { demo::Kept::No };
            demo::run(&build_cmd::sfc_binary(false)?, kept, down, &mode, guests, hosts)
        }
        Command::Bench(opts) => bench::run(&opts),
        Command::Package => package::build().map(|_| ()),
    }
}
