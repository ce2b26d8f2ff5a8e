//! `cargo xtask build`: set up, then build the `sfc` binary. `sfc-user/build.rs` builds the eBPF
//! object (aya-build, nightly, bpf-linker) as part of this, so one cargo call builds both.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::{cmd, setup};

/// Runs setup (once per process), builds `sfc-user` and returns the absolute path of the `sfc`
/// binary: `<target dir>/{debug,release}/sfc`.
pub fn sfc_binary(release: bool) -> anyhow::Result<PathBuf> {
    setup::run()?;
    build_sfc(release)
}

/// Builds `sfc` (setup must have run); returns the binary's path.
pub fn build_sfc(release: bool) -> anyhow::Result<PathBuf> {
    let mut build = cmd::cargo();
    build
        .current_dir(workspace_root())
        .args(["build", "-p", "sfc-user"]);
    if release {
        build.arg("--release");
    }
    cmd::run(&mut build)?;
    let sfc = target_dir()?
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

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// cargo's target directory as cargo itself resolves it (`CARGO_TARGET_DIR`, config, default).
fn target_dir() -> anyhow::Result<PathBuf> {
    let mut metadata = cmd::cargo();
    metadata
        .current_dir(workspace_root())
        .args(["metadata", "--format-version", "1", "--no-deps"]);
    let json = cmd::stdout_of(&mut metadata)?;
    let value: serde_json::Value = serde_json::from_str(&json)
        .with_context(|| format!("`{}` printed invalid JSON", cmd::display(&metadata)))?;
    let dir = value["target_directory"]
        .as_str()
        .with_context(|| format!("`{}` printed no target_directory", cmd::display(&metadata)))?;
    Ok(PathBuf::from(dir))
}
