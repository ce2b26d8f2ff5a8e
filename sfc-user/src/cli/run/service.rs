//! `sfc run` as a service: one daemon per pin directory, and systemd's notification protocol
//! (`deploy/systemd/sfc.service` is `Type=notify`): `READY=1` once the datapath is live, so
//! `systemctl start` returns when it forwards; `RELOADING=1` / `READY=1` around a reload
//! (`systemctl reload`, SIGHUP); `STOPPING=1` on the way out. Outside systemd (no
//! `NOTIFY_SOCKET`) nothing is sent.

use std::{
    fs::File,
    io::{Read as _, Seek as _, Write as _},
    os::fd::AsFd as _,
    path::PathBuf,
};

use anyhow::Context as _;
use sd_notify::NotifyState;

use crate::datapath::Location;

/// The lock a running daemon holds on its pin directory: `/run/sfc/<pin dir>.daemon.lock`
/// (next to the state directory, not in it: `sfc down` removes that). Released when the
/// process ends, however it ends.
pub struct DaemonLock {
    _file: File,
}

pub fn lock_path(loc: &Location) -> PathBuf {
    // `--pin-dir /x/` and `/x/.` are `/x`: one datapath, one lock, never inside its state dir.
    let pin_dir: PathBuf = std::path::absolute(&loc.pin_dir).unwrap_or_else(|_| loc.pin_dir.clone()).components().collect();
    let mut p = Location { netns: None, pin_dir }.state_dir().into_os_string();
    p.push(".daemon.lock");
    PathBuf::from(p)
}

/// Takes the daemon lock of `loc`, or says which process holds it and what to do.
pub fn lock(loc: &Location) -> anyhow::Result<DaemonLock> {
    let path = lock_path(loc);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        anyhow::bail!(
            "another `sfc run`{} already manages {}: stop it first (`systemctl stop sfc`, or kill it), or give this one its own --netns / --pin-dir",
            if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
            loc.pin_dir.display()
        );
    }
    file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id())).with_context(|| format!("writing {}", path.display()))?;
    Ok(DaemonLock { _file: file })
}

/// `sfc down`: removes the daemon lock file of `loc` when no daemon holds it (a daemon that
/// ran leaves it behind; /run is tmpfs, but a test suite makes thousands).
pub fn remove_stale_lock(loc: &Location) {
    let path = lock_path(loc);
    let Ok(file) = File::open(&path) else { return };
    if rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Tells systemd the datapath is live (after the first apply, and after a reload).
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload began (SIGHUP): systemd waits for the next `ready`.
pub fn reloading() {
    let usec = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let usec = u64::try_from(usec.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(usec.tv_nsec).unwrap_or(0) / 1000;
    notify(&[NotifyState::Reloading, NotifyState::MonotonicUsec(i128::from(usec))]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

fn notify(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("telling systemd ({states:?}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_pin_dir_however_spelled_and_never_inside_its_state_dir() {
        let at = |p: &str| lock_path(&Location::new(None, Some(PathBuf::from(p))));
        assert_eq!(at("/sys/fs/bpf/x"), PathBuf::from("/run/sfc/sys/fs/bpf/x.daemon.lock"));
        assert_eq!(at("/sys/fs/bpf/x/"), at("/sys/fs/bpf/x"));
        assert_eq!(at("/sys/fs/bpf/./x"), at("/sys/fs/bpf/x"));
        let state = Location::new(None, Some(PathBuf::from("/sys/fs/bpf/x"))).state_dir();
        assert!(!at("/sys/fs/bpf/x/").starts_with(&state), "{:?} inside {state:?}", at("/sys/fs/bpf/x/"));
    }
}
