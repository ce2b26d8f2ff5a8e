//! What the commonest operator mistakes get: an error that names the fix. bpffs missing and not
//! mountable, a kernel without tcx, an interface that lives in another network namespace than
//! the one sfc looks in.

use std::{fs, io};

use super::{BPFFS, DatapathError, Result, compile, netns};

/// Mounts bpffs at /sys/fs/bpf when it is not mounted (a fresh machine has none).
pub fn ensure_bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").map_err(super::io_err("reading /proc/mounts"))?;
    if mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, ty) = (f.next(), f.next(), f.next());
        dir == Some(BPFFS) && ty == Some("bpf")
    }) {
        return Ok(());
    }
    let unmountable = |e: io::Error| {
        DatapathError::Other(format!(
            "bpffs is not mounted at {BPFFS} and mounting it failed ({e}): mount it (`mount -t bpf bpf {BPFFS}`; systemd does at boot with sys-fs-bpf.mount), or give sfc CAP_SYS_ADMIN so it mounts it itself"
        ))
    };
    fs::create_dir_all(BPFFS).map_err(unmountable)?;
    rustix::mount::mount("bpf", BPFFS, "bpf", rustix::mount::MountFlags::empty(), None).map_err(|e| unmountable(e.into()))
}

/// tcx (Linux 6.6) attaches sfc's tc programs: on an older kernel aya would fall back to a
/// netlink filter, which sfc does not manage. Says so before anything is loaded.
pub fn require_tcx() -> Result<()> {
    let v = aya::util::KernelVersion::current().map_err(|e| DatapathError::Other(format!("reading the kernel version: {e}")))?;
    match tcx_missing(v) {
        Some(msg) => Err(DatapathError::Other(msg)),
        None => Ok(()),
    }
}

fn tcx_missing(v: aya::util::KernelVersion) -> Option<String> {
    (v < aya::util::KernelVersion::new(6, 6, 0)).then(|| {
        format!("this kernel ({v:?}) has no tcx, which sfc attaches its tc programs with: it needs Linux 6.6 or later (Debian 12: the bookworm-backports kernel)")
    })
}


/// Interfaces missing here that exist in another namespace: the error names it and the fix.
pub(super) fn elsewhere(mut errors: Vec<compile::CompileError>) -> Vec<compile::CompileError> {
    for e in &mut errors {
        if let compile::CompileError::NoInterface { iface, where_, .. } = e {
            let name = iface.split('\'').nth(1).unwrap_or(iface);
            match netns::where_is(name).as_slice() {
                [] => {}
                [ns] if ns == "host" => where_.push_str(" (it is in the host namespace: leave out --netns)"),
                [ns] => *where_ = format!("{where_} (it is in network namespace '{ns}': use --netns {ns})"),
                many => *where_ = format!("{where_} (it is in network namespaces {}: use --netns with the one meant)", many.join(", ")),
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use aya::util::KernelVersion;

    use super::tcx_missing;

    #[test]
    fn kernels_before_6_6_have_no_tcx() {
        let e = tcx_missing(KernelVersion::new(6, 1, 0)).expect("6.1 has no tcx");
        assert!(e.contains("Linux 6.6 or later"), "{e}");
        assert!(tcx_missing(KernelVersion::new(6, 6, 0)).is_none());
        assert!(tcx_missing(KernelVersion::new(6, 18, 3)).is_none());
    }
}
