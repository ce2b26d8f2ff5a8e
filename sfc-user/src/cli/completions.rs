//! `sfc completions SHELL`: a completion script generated from the command line's definition
//! (`clap_complete`), so it never lags behind the commands. The package installs the bash, zsh and
//! fish scripts; `tests/cli_docs.rs` keeps the copies under `deploy/` equal to what this prints.

use std::process::ExitCode;

use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

pub fn run(a: &Args) -> ExitCode {
    print!("{}", script(a.shell));
    ExitCode::SUCCESS
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "sfc", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
