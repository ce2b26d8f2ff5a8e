//! Running external commands: every command line is echoed before it runs, every failure says
//! which command failed and how, and every child sees `~/.cargo/bin` on its PATH (bpf-linker and
//! rustup live there, and a fresh shell may not have it).
use std::{
    ffi::{OsStr, OsString},
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

use anyhow::{Context as _, bail};

/// A `Command` for `program` with `~/.cargo/bin` prepended to PATH when it is missing.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", path_with_cargo_bin());
    cmd
}

/// The cargo that runs xtask (cargo sets `CARGO` for `cargo run`), else `cargo` from PATH.
pub fn cargo() -> Command {
    command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Echoes and runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    echo(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` quietly (a check, not an action) and returns its output whatever the exit status;
/// fails only when the program cannot be started.
pub fn probe(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{}`", display(cmd)))
}

/// Runs `cmd` quietly and returns its stdout; fails, with its stderr, unless it exits 0.
pub fn stdout_of(cmd: &mut Command) -> anyhow::Result<String> {
    let out = probe(cmd)?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}: {}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", display(cmd)))
}

/// Prints the command line, with the environment variables set on it except PATH.
pub fn echo(cmd: &Command) {
    println!("$ {}", display(cmd));
}

/// `VAR=value program arg...`, as a shell would show it (PATH left out: it is always set).
pub fn display(cmd: &Command) -> String {
    let env = cmd
        .get_envs()
        .filter(|(k, _)| *k != "PATH")
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())));
    let argv = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned());
    env.chain(argv).collect::<Vec<_>>().join(" ")
}

/// The cargo bin directory: `$CARGO_HOME/bin`, else `$HOME/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

fn path_with_cargo_bin() -> &'static OsString {
    static PATH: OnceLock<OsString> = OnceLock::new();
    PATH.get_or_init(|| {
        let current = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
        if let Some(bin) = cargo_bin_dir()
            && !dirs.contains(&bin)
        {
            dirs.insert(0, bin);
        }
        // Joining only fails on a directory containing ':'; keep PATH as it was then.
        std::env::join_paths(dirs).unwrap_or(current)
    })
}
