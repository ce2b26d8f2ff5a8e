use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Builds the kernel programs (`sfc-ebpf`) for the BPF target; `src/datapath` includes the object
/// from `OUT_DIR`.
fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("sfc-user has no parent directory"))?
        .join("sfc-ebpf");
    let root = root.to_str().context("non-UTF-8 path to sfc-ebpf")?;
    aya_build::build_ebpf(
        [Package { name: "sfc-ebpf", root_dir: root, ..Default::default() }],
        Toolchain::default(),
    )
}
