//! `cargo xtask build`: set up, then build the `sfc` binary. `sfc-user/build.rs` builds the eBPF
//! object (nightly, bpf-linker) as part of this, so one cargo call builds both.
use std::path::PathBuf;

use anyhow::bail;

use crate::{cmd, dirs, setup};

/// Runs setup (once per process), builds `sfc-user` and returns the absolute path of the `sfc`
/// binary: `<target dir>/{debug,release}/sfc`.
pub fn sfc_binary(release: bool) -> anyhow::Result<PathBuf> {
    timed("setup", setup::run)?;
    timed(if release { "build (release)" } else { "build" }, || build_sfc(release))
}

/// Runs one step of a task and prints one line with its duration: `xtask: build 41.2 s`.
pub fn timed<T>(step: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let began = std::time::Instant::now();
    let r = f();
    println!("xtask: {step} {:.1} s{}", began.elapsed().as_secs_f64(), if r.is_err() { " (failed)" } else { "" });
    r
}

/// Builds `sfc` (setup must have run); returns the binary's path.
pub fn build_sfc(release: bool) -> anyhow::Result<PathBuf> {
    let mut build = cmd::cargo();
    build
        .current_dir(dirs::workspace_root())
        .args(["build", "-p", "sfc-user"]);
    if release {
        build.arg("--release");
    }
    cmd::run(&mut build)?;
    let sfc = dirs::target_dir()?
        .join(if release { "release" } else { "debug" })
        .join("sfc");
    if !sfc.is_file() {
        bail!(
            "`{}` succeeded but {} does not exist",
            cmd::display(&build),
            sfc.display()
        );
    }
    Ok(sfc)
}
