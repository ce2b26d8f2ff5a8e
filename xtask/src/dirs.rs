//! Where things are: the workspace, and cargo's target directory (the build's output, and the
//! home of the tools setup installs into it). Below setup and build, which both need them.
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cmd;

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// cargo's target directory as cargo itself resolves it (`CARGO_TARGET_DIR`, config, default).
pub fn target_dir() -> anyhow::Result<PathBuf> {
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
