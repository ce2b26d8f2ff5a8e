//! The private network namespace (with veth pairs, so `skb->ifindex` names real devices) and
//! the bpffs pin directory a `BPF_PROG_TEST_RUN` harness loads its datapath into, both removed
//! on drop (also when a test panics), and the sweep of what killed runs left behind. Shared by
//! the fixtures and the micro benchmark.

use std::{
    ffi::CString,
    fs::{self, File},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use sfc::datapath;

static INSTANCE: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), INSTANCE.fetch_add(1, Ordering::Relaxed))
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn setns(fd: &File) -> std::io::Result<()> {
    // SAFETY: plain syscall on an open namespace file; affects the calling thread only.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Whether `name` is `<prefix>-<pid>-<n>` for a process that no longer exists: what a killed
/// test run (no destructors) leaves behind.
fn stale(name: &str, prefix: &str) -> bool {
    let Some(pid) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')).and_then(|r| r.split('-').next()) else {
        return false;
    };
    pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes namespaces and pin directories of earlier runs that were killed before cleaning up.
pub fn sweep_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for e in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if stale(&name, "sfcfix") {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
        for e in fs::read_dir("/sys/fs/bpf").into_iter().flatten().flatten() {
            if stale(&e.file_name().to_string_lossy(), "sfc-fixtures") {
                remove_pins(&e.path());
            }
        }
    });
}

fn remove_pins(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let _ = fs::remove_file(e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// A network namespace of veth pairs that the calling thread lives in until drop.
pub struct NetNs {
    name: String,
    home: File,
    entered: bool,
}

impl NetNs {
    /// Creates namespace `sfcfix-<pid>-<n>` with one veth pair per `(a, b)` and enters it.
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        let name = unique("sfcfix");
        let home = File::open("/proc/thread-self/ns/net").expect("opening this thread's network namespace");
        ip(&["netns", "add", &name]);
        // From here on the guard exists, so a failure below still deletes the namespace.
        let mut ns = Self { name, home, entered: false };
        for (a, b) in pairs {
            ip(&["-n", &ns.name, "link", "add", a, "type", "veth", "peer", "name", b]);
        }
        let f = File::open(format!("/run/netns/{}", ns.name)).expect("opening the new namespace");
        setns(&f).unwrap_or_else(|e| panic!("entering {}: {e}", ns.name));
        ns.entered = true;
        ns
    }

    /// `ip link set dev IFNAME mtu MTU` in this namespace.
    pub fn set_mtu(&self, ifname: &str, mtu: u32) {
        ip(&["-n", &self.name, "link", "set", "dev", ifname, "mtu", &mtu.to_string()]);
    }

    /// ifindex of `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        assert!(self.entered);
        Self::ifindex_here(ifname)
    }

    /// ifindex of `ifname` in the calling thread's namespace (the one a live `NetNs` entered).
    pub fn ifindex_here(ifname: &str) -> u32 {
        let c = CString::new(ifname).expect("interface name");
        // SAFETY: a valid NUL-terminated string; resolved in the calling thread's namespace.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert!(i != 0, "no interface {ifname} in this namespace");
        i
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Best effort while unwinding: a second panic here would abort the whole test binary.
        let back = !self.entered || setns(&self.home).is_ok();
        let ok = Command::new("ip").args(["netns", "del", &self.name]).status().is_ok_and(|s| s.success());
        assert!((back && ok) || std::thread::panicking(), "could not leave or delete network namespace {}", self.name);
    }
}

/// A bpffs directory removed (with every pin in it) on drop.
pub struct PinDir(pub PathBuf);

impl PinDir {
    pub fn new() -> Self {
        datapath::ensure_bpffs().expect("mounting bpffs");
        let p = Path::new("/sys/fs/bpf").join(unique("sfc-fixtures"));
        fs::create_dir(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        Self(p)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        remove_pins(&self.0);
    }
}
