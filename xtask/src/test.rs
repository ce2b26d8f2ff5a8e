//! `cargo xtask test`: set up, build `sfc`, run the unit tests then the namespace integration
//! tests, and close with one summary line over both runs.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::{build_cmd, cmd, dirs, setup};

/// `args` go to the test harness of both runs (after `--`), e.g. a name filter. Both runs use
/// `--no-fail-fast`, so one failing test binary does not hide the results of the others.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let sfc = build_cmd::sfc_binary(false)?;
    // The package test installs it (dpkg -i) and runs the unit's daemon under its capabilities.
    let deb = crate::package::build()?;
    let root = dirs::workspace_root();

    // sfc-ebpf is a no_std BPF program: it is built for the bpf target by sfc-user, never for the
    // host, so it has no host tests.
    let mut unit = cmd::cargo();
    unit.current_dir(root)
        .args([
            "test",
            "--no-fail-fast",
            "--workspace",
            "--exclude",
            "sfc-tests",
            "--exclude",
            "sfc-ebpf",
            "--",
        ])
        .args(args)
        .env("RUST_BACKTRACE", "1");

    // The namespace tests share kernel state (bpffs pins, interfaces): one thread.
    let mut integration = cmd::cargo();
    integration
        .current_dir(root)
        .args([
            "test",
            "--no-fail-fast",
            "-p",
            "sfc-tests",
            "--",
            "--test-threads=1",
        ])
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("SFC_BIN", absolute(&sfc)?)
        .env("SFC_DEB", absolute(&deb)?)
        .env("SFC_GRAFYAML", setup::grafyaml_venv()?);

    let mut total = Tally::default();
    let mut failed_runs = Vec::new();
    for (name, command) in [
        ("unit tests", &mut unit),
        ("integration tests", &mut integration),
    ] {
        println!("\n== {name} ==");
        let (tally, ok) = build_cmd::timed(name, || run_counting(command))?;
        total.add(tally);
        if !ok {
            failed_runs.push(format!("`{}`", cmd::display(command)));
        }
    }

    println!();
    println!(
        "xtask: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    if !failed_runs.is_empty() {
        bail!("failed (output above): {}", failed_runs.join("; "));
    }
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::path::absolute(path).with_context(|| format!("making {} absolute", path.display()))
}

/// Counts from libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` lines.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }

    fn parse(line: &str) -> Option<Tally> {
        let rest = line.trim().strip_prefix("test result: ")?;
        let count = |what: &str| {
            rest.split(';').find_map(|part| {
                part.trim()
                    .strip_suffix(what)?
                    .rsplit(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        };
        Some(Tally {
            passed: count(" passed")?,
            failed: count(" failed")?,
            ignored: count(" ignored")?,
        })
    }
}

/// Echoes and runs a `cargo test`, passing its output through line by line while counting the
/// results; returns the counts and whether it exited 0. stdout and stderr share one pipe so that
/// cargo's "Running ..." lines (stderr) stay in order with the test results (stdout).
fn run_counting(command: &mut Command) -> anyhow::Result<(Tally, bool)> {
    cmd::echo(command);
    let (output, writer) = std::io::pipe().context("creating a pipe")?;
    let writer_err = writer.try_clone().context("duplicating a pipe")?;
    let spawned = command.stdout(writer).stderr(writer_err).spawn();
    // `Command` keeps its Stdio after spawning: drop our copies of the pipe's write end, or the
    // read below would never see end-of-file.
    command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let mut child =
        spawned.with_context(|| format!("could not start `{}`", cmd::display(command)))?;
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading the output of `{}`", cmd::display(command)))?;
        if n == 0 {
            break;
        }
        out.write_all(&line).context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
        if let Some(t) = Tally::parse(&String::from_utf8_lossy(&line)) {
            tally.add(t);
        }
    }
    drop(out);
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", cmd::display(command)))?;
    if !status.success() {
        println!("`{}` failed: {status}", cmd::display(command));
    }
    Ok((tally, status.success()))
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn parses_libtest_result_lines() {
        let ok = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(
            Tally::parse(ok),
            Some(Tally {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
        let bad = "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 4 filtered out; finished in 1.20s";
        assert_eq!(
            Tally::parse(bad),
            Some(Tally {
                passed: 1,
                failed: 2,
                ignored: 0
            })
        );
        assert_eq!(Tally::parse("running 3 tests"), None);
        assert_eq!(Tally::parse("test foo ... ok"), None);
    }
}
