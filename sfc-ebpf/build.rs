use which::which;

/// Rebuild when the bpf-linker binary changes (its mtime is the cache key), as the aya template
/// does: building this crate has an undeclared dependency on that binary.
fn main() {
    let bpf_linker = which("bpf-linker").expect("bpf-linker not found: run `cargo xtask setup`");
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
