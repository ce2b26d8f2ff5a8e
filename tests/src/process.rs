//! `sfc` child processes that are killed when dropped: the `sfc run` daemon with its log, and an
//! `sfc` command killed a given time after its start; and `indent` for their output in messages.

use std::{
    fmt::{self, Write as _},
    fs::File,
    io::Read as _,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::Sfc;

/// A child process killed (SIGKILL) and reaped when dropped, unless it already exited.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command) -> Result<ChildGuard> {
        let child = cmd.spawn().with_context(|| format!("start {cmd:?}"))?;
        Ok(ChildGuard { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the child outlive this guard (and this process): not killed, not reaped here.
    /// Returns its pid.
    pub fn detach(self) -> u32 {
        let pid = self.child.id();
        std::mem::forget(self);
        pid
    }

    /// The exit status, if it exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// SIGKILL (if still running) and reap; returns the exit status and whether it was still
    /// running when killed.
    pub fn kill(&mut self) -> Result<(ExitStatus, bool)> {
        let running = self.child.try_wait()?.is_none();
        if running {
            self.child.kill().context("SIGKILL")?;
        }
        Ok((self.child.wait()?, running))
    }

    /// Waits at most `limit` for the child to exit by itself.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit and collects piped stdout and stderr.
    pub fn wait_with_output(mut self) -> Result<Output> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_end(&mut stdout)?;
        }
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_end(&mut stderr)?;
        }
        let status = self.child.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `sfc run` in the hub namespace, its output going to a log file; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: ChildGuard,
    log: PathBuf,
}

impl Daemon {
    /// Starts `sfc --netns HUB run args...` (log level info) logging to `log`, and waits until
    /// it serves metrics, i.e. its first apply succeeded.
    pub fn start(sfc: &Sfc<'_>, args: &[&str], log: &Path) -> Result<Daemon> {
        let mut d = Self::spawn(sfc, args, log)?;
        d.wait_for_log("serving metrics", Duration::from_secs(10))?;
        Ok(d)
    }

    /// Starts the daemon without waiting for anything.
    pub fn spawn(sfc: &Sfc<'_>, args: &[&str], log: &Path) -> Result<Daemon> {
        Self::spawn_env(sfc, args, log, &[])
    }

    /// `spawn`, with `env` added to the daemon's environment (`NOTIFY_SOCKET`, say).
    pub fn spawn_env(sfc: &Sfc<'_>, args: &[&str], log: &Path, env: &[(&str, &Path)]) -> Result<Daemon> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let mut cmd = sfc.command(&all);
        cmd.env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        Ok(Daemon {
            child: ChildGuard::spawn(cmd)?,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the log contains `needle`; fails when the daemon exits first or after
    /// `limit`.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "sfc run exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "sfc run did not log {needle:?} within {limit:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits at most `limit` for the daemon to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        self.child.wait_timeout(limit)
    }

    /// SIGKILL and reap; returns whether it was still running.
    pub fn kill(&mut self) -> Result<bool> {
        Ok(self.child.kill()?.1)
    }
}

/// How an `sfc` run that was killed after a delay ended.
#[derive(Debug)]
pub struct KilledRun {
    pub args: Vec<String>,
    pub delay: Duration,
    /// Whether the SIGKILL ended it (rather than it finishing first).
    pub killed: bool,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for KilledRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sfc {} after {:.1} ms: {} ({})",
            self.args.join(" "),
            self.delay.as_secs_f64() * 1000.0,
            if self.killed {
                "killed mid-run"
            } else {
                "had finished"
            },
            self.status
        )?;
        for (what, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if !text.trim().is_empty() {
                write!(
                    f,
                    "\n    {what}: {}",
                    text.trim_end().replace('\n', "\n    ")
                )?;
            }
        }
        Ok(())
    }
}

/// Runs `sfc --netns NS args...` and SIGKILLs it `delay` after the start (if it still runs).
pub fn kill_after(sfc: &Sfc<'_>, args: &[&str], delay: Duration) -> Result<KilledRun> {
    let mut cmd = sfc.command(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(cmd)?;
    let start = Instant::now();
    // Poll rather than sleep: read the pipes only after the kill (outputs are small).
    while start.elapsed() < delay && child.try_wait()?.is_none() {
        std::thread::sleep(Duration::from_micros(200).min(delay.saturating_sub(start.elapsed())));
    }
    if child.try_wait()?.is_none() {
        child.child.kill().context("SIGKILL")?;
    }
    let out = child.wait_with_output()?;
    Ok(KilledRun {
        args: args.iter().map(|&a| a.to_owned()).collect(),
        delay,
        // It may have exited between the look and the kill.
        killed: out.status.signal() == Some(libc::SIGKILL),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `text`, with every line indented, for messages.
pub fn indent(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        let _ = writeln!(out, "    {l}");
    }
    out
}
