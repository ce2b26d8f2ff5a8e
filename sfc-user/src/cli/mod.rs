//! The `sfc` command line (DESIGN.md section 4). One module per subcommand, dispatched here.

mod apply;
mod cluster_status;
mod completions;
mod down;
pub mod exit;
mod explain;
/// Made-up interface facts for a model (what `sfc explain -f` compiles against).
pub use explain::synthetic_facts;
mod flows;
mod logging;
mod map;
mod neutron;
mod privileges;
mod push;
mod run;
mod stats;
mod status;
mod table;
mod trace;
mod trace_probe;
mod validate;

/// What `sfc --version` prints: the version, the git revision it was built from and the SHA-256
/// of the eBPF object embedded in the binary.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SFC_GIT_REVISION"),
    ", eBPF object sha256 ",
    env!("SFC_EBPF_SHA256"),
    ")"
);

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::datapath::{Location, netns};

#[derive(Debug, Parser)]
#[command(
    name = "sfc",
    version = VERSION,
    about = "Service function chaining on eBPF: networking-sfc port chains, steered by tc programs",
    after_help = concat!(
        "Chain file schema: port_pairs, port_pair_groups, flow_classifiers, port_chains (YAML or JSON).\n",
        "Exit codes: 0 done; 1 invalid input (chain file, arguments; nothing changed); 2 runtime failure\n",
        "(kernel, interfaces, permissions, bpffs, etcd); 3 nothing installed there."
    )
)]
pub struct Cli {
    /// Operate on interfaces inside this network namespace (as named by `ip netns`).
    #[arg(long, global = true, value_name = "NAME")]
    netns: Option<String>,
    /// Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>].
    #[arg(long, global = true, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and validate a chain file; print every problem with its line.
    Validate(validate::Args),
    /// Install a chain file, or update the running datapath to it.
    Apply(apply::Args),
    /// Detach everything, unpin, and leave the interfaces as they were.
    Down(down::Args),
    /// Per chain / hop / member packets and bytes, and drops by reason.
    Stats(stats::Args),
    /// Which classifier, chain, members and interfaces a packet takes: from FILE (no kernel
    /// needed) or from the installed state.
    Explain(explain::Args),
    /// Attached interfaces and their roles, the program, the chains, and map fill levels.
    Status(status::Args),
    /// The flow table, decoded: 5-tuple, chain, the port pair picked at each hop.
    Flows(flows::Args),
    /// Every pinned map (`map list`) or one map's entries decoded into names (`map dump NAME`).
    Map(map::Args),
    /// The live path of matching packets through their chains, from the datapath's own hop
    /// decisions; Ctrl-C ends it.
    Trace(trace::Args),
    /// Read networking-sfc's API objects into a chain file (`sfc import neutron FILE...`).
    Import(neutron::ImportArgs),
    /// Write a chain file as networking-sfc's API objects (`sfc export neutron [-f FILE]`).
    Export(neutron::ExportArgs),
    /// Multi-host: validate a chain file and store it in etcd for every host's `sfc run --etcd`.
    Push(push::Args),
    /// Daemon: apply FILE, re-apply it when it changes, fail members over when their links go
    /// down, serve Prometheus metrics; Ctrl-C or SIGTERM leaves the datapath installed.
    Run(run::Args),
    /// Print a shell completion script: `sfc completions bash > /etc/bash_completion.d/sfc`.
    Completions(completions::Args),
}

/// The command line's definition: what completions and man pages are generated from.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `sfc completions SHELL`'s output.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    completions::script(shell)
}

impl Cli {
    fn location(&self) -> Location {
        Location::new(self.netns.clone(), self.pin_dir.clone())
    }

    /// The error when this process lacks a capability the command needs (`privileges`).
    fn missing_privileges(&self) -> Option<String> {
        use privileges::Access::{Load, Read, Remove};
        let netns = self.netns.is_some();
        let (name, access, enters) = match &self.command {
            Command::Apply(_) => ("apply", Load, netns),
            Command::Run(_) => ("run", Load, netns),
            Command::Down(_) => ("down", Remove, netns),
            Command::Trace(_) => ("trace", Load, netns),
            Command::Status(a) if a.etcd.is_none() => ("status", Read, netns),
            Command::Stats(_) => ("stats", Read, false),
            Command::Flows(_) => ("flows", Read, false),
            Command::Map(_) => ("map", Read, false),
            _ => return None,
        };
        privileges::missing(name, &privileges::needed(access, enters))
    }

    fn enter_netns(&self) -> anyhow::Result<()> {
        if let Some(ns) = &self.netns {
            netns::enter(ns)?;
        }
        Ok(())
    }
}

/// Runs the command line; errors are printed as `error: ...`, never as a panic or a Debug dump.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version print and exit 0; a usage error is invalid input (exit 1).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::code(exit::INVALID) } else { ExitCode::SUCCESS };
        }
    };
    // The daemon reports what it does (reloads, failovers) at info; one-shot commands stay quiet.
    logging::init(matches!(cli.command, Command::Run(_)), matches!(&cli.command, Command::Run(a) if a.json));
    if let Some(e) = cli.missing_privileges() {
        logging::error(&e);
        return exit::code(exit::RUNTIME);
    }
    let result = match &cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Apply(a) => cli.enter_netns().and_then(|()| apply::run(&cli.location(), a)),
        Command::Down(a) => cli.enter_netns().and_then(|()| down::run(&cli.location(), a)),
        Command::Stats(a) => stats::run(&cli.location(), a),
        Command::Explain(a) => explain::run(&cli.location(), a),
        Command::Status(a) => cli.enter_netns().and_then(|()| status::run(&cli.location(), a)),
        Command::Flows(a) => flows::run(&cli.location(), a),
        Command::Map(a) => map::run(&cli.location(), a),
        // The probe runs the programs on interfaces of the datapath's namespace.
        Command::Trace(a) => cli.enter_netns().and_then(|()| trace::run(&cli.location(), a)),
        Command::Import(a) => neutron::import(a),
        Command::Push(a) => push::run(a),
        Command::Completions(a) => Ok(completions::run(a)),
        Command::Export(a) => neutron::export(&cli.location(), a),
        // The etcd agent's thread starts first: the control plane is reached from the
        // namespace sfc started in, the datapath set up in --netns.
        // One daemon per datapath (two would fight over it at every apply): the lock is taken
        // before anything starts, the etcd session included.
        Command::Run(a) => run::lock(&cli.location()).and_then(|_lock| {
            let agent = run::etcd::start(&a.etcd)?;
            cli.enter_netns()?;
            run::run(&cli.location(), a, agent)
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            logging::error(&format!("{e:#}"));
            exit::code(exit::code_of(&e))
        }
    }
}

/// Reads, parses and validates a chain file; every problem is in the error, one per line.
pub(crate) fn load_model(path: &str) -> anyhow::Result<crate::model::Model> {
    validated(path, &crate::config::load(path)?)
}

/// The model of chain file `path` whose content is `text` (already read: what is hashed is what
/// is applied).
pub(crate) fn model_of(path: &str, text: &[u8]) -> anyhow::Result<crate::model::Model> {
    let text = std::str::from_utf8(text).map_err(|e| exit::invalid!("{path}: not UTF-8 text ({e})"))?;
    validated(path, &crate::config::parse(path, text)?)
}

fn validated(path: &str, cfg: &crate::config::ConfigFile) -> anyhow::Result<crate::model::Model> {
    crate::model::validate(cfg).map_err(|errs| {
        let n = errs.0.len();
        exit::invalid!("{path}: {n} problem{}:\n{errs}", if n == 1 { "" } else { "s" })
    })
}
