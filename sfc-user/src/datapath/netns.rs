//! Entering a network namespace by name, as `ip netns` names them (/run/netns/NAME). Only the
//! network namespace changes: bpffs pins stay in the root mount namespace.

use std::{fs::File, io, os::fd::AsRawFd};

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
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("entering network namespace '{name}': {e}")));
    }
    Ok(())
}
