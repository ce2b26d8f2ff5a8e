//! Entering a network namespace by name, as `ip netns` names them (/run/netns/NAME). Only the
//! network namespace changes: bpffs pins stay in the root mount namespace.

use std::{
    fs::File,
    io,
    os::fd::AsFd as _,
};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Moves the calling thread into network namespace `name`. Call before any other thread or
/// socket exists, so the whole process lives there.
pub fn enter(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("'{name}' is not a network namespace name")));
    }
    let path = format!("/run/netns/{name}");
    let f = File::open(&path).map_err(|e| {
        io::Error::new(e.kind(), format!("network namespace '{name}' ({path}): {e}; see `ip netns list`"))
    })?;
    // setns changes only this thread.
    move_into_link_name_space(f.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("entering network namespace '{name}': {e}")))
}

/// The network namespace this one knows by `nsid` (a veth's `link_netnsid`). There is no call
/// from an id to a namespace, so the candidates are asked their id: the named ones (`ip netns`,
/// /run/netns) first, then every process's (containers, VMs' helpers). Each namespace is asked
/// once (by inode).
pub fn open_by_nsid(nsid: i32) -> io::Result<File> {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = std::collections::BTreeSet::new();
    let named = std::fs::read_dir("/run/netns").into_iter().flatten().flatten().map(|e| e.path());
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .map(|e| e.path().join("ns/net"));
    for path in named.chain(procs) {
        let Ok(f) = File::open(&path) else { continue };
        let Ok(meta) = f.metadata() else { continue };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        if let Ok(Some(id)) = super::netlink::nsid_of(f.as_fd())
            && id == nsid
        {
            return Ok(f);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("no network namespace with id {nsid} here (looked in /run/netns and /proc/*/ns/net)")))
}

/// Runs `f` on a thread of its own inside network namespace `ns`; the caller's namespace is
/// untouched (setns changes only the calling thread).
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // On this scoped thread only.
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("a thread in another network namespace panicked"))?
    })
}

/// The other network namespaces where an interface called `name` exists: `ip netns` names, and
/// `host` for the init process's (the one sfc runs in without --netns). For the commonest
/// mistake's error: a file applied with the wrong (or no) `--netns`. Looks at most at 64.
pub fn where_is(name: &str) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let here = std::fs::metadata("/proc/thread-self/ns/net").map(|m| (m.dev(), m.ino())).ok();
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()));
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for (label, path) in std::iter::once(("host".to_owned(), std::path::PathBuf::from("/proc/1/ns/net"))).chain(named).take(64) {
        let Ok(f) = File::open(&path) else { continue };
        let Ok(meta) = f.metadata() else { continue };
        let key = (meta.dev(), meta.ino());
        if Some(key) == here || !seen.insert(key) {
            continue;
        }
        if run_in(&f, || super::netlink::link_by_name(name).is_ok()).unwrap_or(false) {
            found.push(label);
        }
    }
    found
}
