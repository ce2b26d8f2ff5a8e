//! A bpffs pin directory of its own for a test that loads the datapath itself (the
//! `BPF_PROG_TEST_RUN` fixtures and the micro benchmark), removed with every pin in it when
//! dropped, also when the test panics; and the sweep of those a killed run left behind.
//!
//! bpffs must be mounted at [`BPFFS`] (the tests call `sfc::datapath::ensure_bpffs`, the
//! loader's own check, first).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::pid_name;

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// `/sys/fs/bpf/<prefix>-<pid>-<n>`, removed (with its pins) on drop.
#[derive(Debug)]
pub struct PinDir(PathBuf);

impl PinDir {
    pub fn create(prefix: &str) -> Result<Self> {
        let dir = Path::new(BPFFS).join(pid_name::unique(prefix));
        fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(PinDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

/// Removes the pin directories `<prefix>-<pid>-<n>` whose process is gone. Best effort.
pub fn sweep_stale(prefix: &str) {
    for e in fs::read_dir(BPFFS).into_iter().flatten().flatten() {
        if pid_name::is_stale(&e.file_name().to_string_lossy(), prefix) {
            remove(&e.path());
        }
    }
}

/// Unpins everything in `dir` (pins are files on bpffs), then removes it. Best effort.
fn remove(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = fs::remove_file(e.path());
    }
    let _ = fs::remove_dir(dir);
}
