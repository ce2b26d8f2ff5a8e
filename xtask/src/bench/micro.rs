//! The micro benchmark: `sfc-user/tests/bench_micro.rs`, an ignored test that times the tc
//! program with `BPF_PROG_TEST_RUN`, built and run in release mode. Its table is printed between
//! two marker lines, which this picks out of its output.

use std::process::Stdio;

use anyhow::{Context as _, Result, bail};

use crate::{cmd, dirs};

const BEGIN: &str = "BENCH-MICRO BEGIN";
const END: &str = "BENCH-MICRO END";
const GROWTH_BEGIN: &str = "BENCH-GROWTH BEGIN";
const GROWTH_END: &str = "BENCH-GROWTH END";
/// The benchmark's tests that print the tables above (`BEGIN`, then `GROWTH_BEGIN`).
const TESTS: [&str; 2] = ["classify_and_steer", "growth_with_hops_and_flows"];

fn cargo_test(no_run: bool) -> std::process::Command {
    let mut c = cmd::cargo();
    c.current_dir(dirs::workspace_root()).args([
        "test",
        "--release",
        "-p",
        "sfc-user",
        "--test",
        "bench_micro",
    ]);
    if no_run {
        c.arg("--no-run");
    } else {
        // The two tests whose tables this reads, exactly: `--ignored` alone also runs
        // `updates_alone`, the updates table again (10 s) for nobody.
        c.args(["--", "--ignored", "--nocapture", "--test-threads=1", "--exact"]).args(TESTS);
    }
    c
}

/// Builds the benchmark (so that compiling does not overlap with any measurement), and with it
/// the `sfc` binary (integration tests get the package's binaries): one build of `sfc-user`
/// instead of two (a plain `cargo build` compiles it again without the dev-dependencies'
/// features). The binary's path.
pub fn build_with_sfc() -> Result<std::path::PathBuf> {
    cmd::run(&mut cargo_test(true))?;
    let sfc = dirs::target_dir()?.join("release").join("sfc");
    if !sfc.is_file() {
        bail!("the benchmark's build did not leave {}", sfc.display());
    }
    Ok(sfc)
}

/// The command line that runs it, for BENCHMARKS.md.
pub fn command_line() -> String {
    cmd::display(&cargo_test(false))
        .split_once("cargo")
        .map_or_else(String::new, |(_, rest)| format!("cargo{rest}"))
}

/// Runs the benchmark (progress on stderr goes to the terminal) and returns its table.
pub fn run() -> Result<String> {
    let mut c = cargo_test(false);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd::echo(&c);
    let out = c
        .output()
        .with_context(|| format!("could not start `{}`", cmd::display(&c)))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("the micro benchmark failed ({}):\n{stdout}", out.status);
    }
    let block = |begin: &str, end: &str| {
        stdout
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table.trim().to_owned())
            .with_context(|| format!("the micro benchmark printed no {begin} table:\n{stdout}"))
    };
    let table = block(BEGIN, END)?;
    let growth = block(GROWTH_BEGIN, GROWTH_END)?;
    Ok(format!("{table}\n\nGrowth (`growth_with_hops_and_flows`):\n\n{growth}\n"))
}
