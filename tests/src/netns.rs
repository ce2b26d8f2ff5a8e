//! Network namespaces: a guard that deletes what it created (one namespace, a group of them, or
//! one the calling thread lives in), running code inside a namespace from a thread of this
//! process, the sweep of what a killed run left, and the `ip` / sysctl / sysfs plumbing around
//! them.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::pid_name;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Runs `program args...`, returning stdout; an error carries the command line, exit status,
/// stdout and stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `{program}` (is it installed?)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(stdout)
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// Runs `ip -n ns args...`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Names of all named namespaces starting with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Deletes a named namespace (its interfaces go with it).
pub fn delete(name: &str) -> Result<()> {
    ip(&["netns", "del", name]).map(drop)
}

/// A named network namespace, deleted when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    armed: bool,
}

impl NetNs {
    /// Creates the namespace; fails if it already exists.
    pub fn create(name: &str) -> Result<Self> {
        if exists(name) {
            bail!("network namespace {name} already exists");
        }
        ip(&["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_owned(),
            armed: true,
        };
        ip_in(name, &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the namespace in place when dropped.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.armed
            && exists(&self.name)
            && let Err(e) = delete(&self.name)
        {
            eprintln!(
                "warning: cannot delete network namespace {}: {e:#}",
                self.name
            );
        }
    }
}

/// Namespaces made together, deleted together: in reverse order of creation when dropped.
#[derive(Debug, Default)]
pub struct NetNsGroup(Vec<NetNs>);

impl NetNsGroup {
    /// Creates namespace `name` as the group's newest.
    pub fn create(&mut self, name: &str) -> Result<()> {
        self.0.push(NetNs::create(name)?);
        Ok(())
    }

    /// The names, in creation order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|ns| ns.name().to_owned()).collect()
    }

    /// Leaves every namespace in place when dropped.
    pub fn disarm(&mut self) {
        for ns in &mut self.0 {
            ns.disarm();
        }
    }

    /// Deletes them now, newest first.
    pub fn delete_all(&mut self) {
        while let Some(ns) = self.0.pop() {
            drop(ns);
        }
    }
}

impl Drop for NetNsGroup {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// A namespace of its own for the calling thread (e.g. a test's, for `BPF_PROG_TEST_RUN`, which
/// resolves interface indexes in the caller's namespace): created and entered; on drop the
/// thread goes back to the namespace it came from, then the namespace is deleted.
#[derive(Debug)]
pub struct Inside {
    home: File,
    // Dropped after `drop` below has taken the thread home.
    ns: NetNs,
}

impl Inside {
    pub fn create(name: &str) -> Result<Self> {
        let home = File::open("/proc/thread-self/ns/net").context("open this thread's network namespace")?;
        let inside = Inside { home, ns: NetNs::create(name)? };
        enter(name)?;
        Ok(inside)
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home, "the thread's own namespace") {
            // A second panic while unwinding would abort the whole test binary.
            if std::thread::panicking() {
                eprintln!("warning: cannot leave network namespace {}: {e:#}", self.name());
            } else {
                panic!("cannot leave network namespace {}: {e:#}", self.name());
            }
        }
    }
}

/// Deletes the namespaces named `<prefix>-<pid>-<n>` ([`crate::pid_name`]) whose process is
/// gone: what a killed run (no destructors) left behind. Best effort.
pub fn sweep_stale(prefix: &str) {
    for name in list(prefix) {
        if pid_name::is_stale(&name, prefix) {
            let _ = delete(&name);
        }
    }
}

fn setns(file: &File, what: &str) -> Result<()> {
    // SAFETY: setns on a valid fd we own; it changes only this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns({what}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into namespace `name`. Only for threads made for that purpose (or
/// through [`Inside`], which takes it back): the network namespace is per thread.
pub fn enter(name: &str) -> Result<()> {
    let file = File::open(path(name)).with_context(|| format!("open namespace {name}"))?;
    setns(&file, name)
}

/// Runs `f` on a fresh thread inside namespace `name` and returns its result.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(name)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
    })
}

/// Starts `f` on a thread inside namespace `name`; the thread lives on until `f` returns.
pub fn spawn_in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    let name = name.to_owned();
    std::thread::spawn(move || {
        enter(&name)?;
        Ok(f())
    })
}

/// Writes sysctls (`("net.ipv4.ip_forward", "1")`, ...) inside namespace `name`.
/// `/proc/sys/net` shows the network namespace of the thread that opens it.
pub fn sysctls(name: &str, settings: &[(&str, &str)]) -> Result<()> {
    in_netns(name, || {
        for (key, value) in settings {
            let file = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&file, value)
                .with_context(|| format!("sysctl {key}={value} in namespace {name}"))?;
        }
        Ok(())
    })?
}

/// Writes `value` to `file` of namespace `name`'s own sysfs (`/sys/class/net/...`): through
/// `ip netns exec`, which mounts it (a thread that only entered the namespace still sees the
/// sysfs of its mount namespace).
pub fn write_sysfs(name: &str, file: &str, value: &str) -> Result<()> {
    let script = format!("echo {value} > {file}");
    run("ip", &["netns", "exec", name, "sh", "-c", &script])
        .with_context(|| format!("write {value} to {file} in namespace {name}"))
        .map(drop)
}

/// Reads one sysctl inside namespace `name`.
pub fn sysctl(name: &str, key: &str) -> Result<String> {
    in_netns(name, || {
        let file = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::read_to_string(&file)
            .map(|s| s.trim().to_owned())
            .with_context(|| format!("read sysctl {key} in namespace {name}"))
    })?
}
