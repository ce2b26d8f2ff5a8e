//! VMs that outlived the process that started them (kept on purpose with [`super::Vm::keep`],
//! or left by a killed run), found again by the namespace qemu runs in and stopped. The
//! namespace is what ties them to their owner: their taps are there, and a namespace with a
//! process in it outlives `ip netns delete`, so it must be emptied first.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{POLL, TERM_GRACE};
use crate::netns;

/// Stops every qemu running in namespace `ns` (SIGTERM, SIGKILL after a grace period) and waits
/// until they are gone, their taps with them; returns their VM names (`-name`). Nothing to do
/// when `ns` does not exist.
pub fn stop_in_netns(ns: &str) -> Result<Vec<String>> {
    let Ok(target) = fs::metadata(netns::path(ns)) else {
        return Ok(Vec::new());
    };
    let in_ns = |pid: u32| {
        fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| (m.dev(), m.ino()) == (target.dev(), target.ino()))
    };
    let found: Vec<(u32, String)> = qemus().into_iter().filter(|(pid, _)| in_ns(*pid)).collect();
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        for (pid, _) in &found {
            // Still the qemu in `ns` we found, not a new process under a reused pid.
            if is_qemu(*pid) && in_ns(*pid) {
                signal_pid(*pid, signal);
            }
        }
        if wait_gone(&found, TERM_GRACE) {
            return Ok(found.into_iter().map(|(_, name)| name).collect());
        }
    }
    let left: Vec<u32> = found.iter().map(|(pid, _)| *pid).filter(|&pid| alive(pid)).collect();
    bail!("qemu in {ns} (pids {left:?}) still running after SIGKILL");
}

/// Every qemu process: (pid, its `-name`, or "?").
fn qemus() -> Vec<(u32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        is_qemu(pid).then(|| (pid, name_of(pid).unwrap_or_else(|| "?".to_owned())))
    })
    .collect()
}

fn is_qemu(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| Some(exe.file_name()?.to_str()?.starts_with("qemu-system")))
        .unwrap_or(false)
}

/// The value after `-name` on `pid`'s command line.
fn name_of(pid: u32) -> Option<String> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let at = args.iter().position(|a| *a == b"-name")?;
    Some(String::from_utf8_lossy(args.get(at + 1)?).into_owned())
}

fn signal_pid(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid was just checked to be a
        // qemu in the namespace being emptied.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Whether `pid` still runs: it exists and is not a zombie (dead, waiting for its parent).
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last parenthesis (comm may contain one).
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z')
}

/// Waits up to `limit` for every process of `procs` to be gone; whether they are.
fn wait_gone(procs: &[(u32, String)], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !procs.iter().any(|(pid, _)| alive(*pid)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}
