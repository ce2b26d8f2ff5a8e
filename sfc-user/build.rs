//! Builds the kernel programs (`sfc-ebpf`) for the BPF target; `src/datapath` includes the object
//! from `OUT_DIR`. Also records what `sfc --version` reports: the git revision of the tree and
//! the SHA-256 of the eBPF object.
//!
//! Hand-written instead of `aya_build::build_ebpf`, which relays every line the inner cargo
//! prints (`Compiling ...`) as a `cargo:warning`, so a normal build looked broken. Here only the
//! compiler's own warnings and errors reach the user; the inner cargo's log is shown only when
//! that build fails.

use std::{
    io::{BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, anyhow, bail};
use cargo_metadata::{Message, diagnostic::DiagnosticLevel};
use sha2::{Digest as _, Sha256};

const PACKAGE: &str = "sfc-ebpf";
const BINARY: &str = "sfc";

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let workspace = manifest.parent().ok_or_else(|| anyhow!("sfc-user has no parent directory"))?;
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = build_ebpf(&workspace.join(PACKAGE), &out_dir)?;
    let digest = Sha256::digest(std::fs::read(&object).with_context(|| format!("reading {}", object.display()))?);
    let hex = digest.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    println!("cargo:rustc-env=SFC_EBPF_SHA256={hex}");
    println!("cargo:rustc-env=SFC_GIT_REVISION={}", git_revision(workspace));
    Ok(())
}

/// `cargo build` of the eBPF package for `bpfel-unknown-none` (a dated nightly, `build-std=core`,
/// bpf-linker with BTF), as aya-build does it; returns the object copied to `out_dir/sfc`.
fn build_ebpf(root: &Path, out_dir: &Path) -> anyhow::Result<PathBuf> {
    // What the object is built from: the eBPF crate, the map contract it shares with the
    // loader, the workspace's manifest (its profile for sfc-ebpf) and lock file, and the linker
    // (its mtime is the cache key, as in the aya template; sfc-ebpf's own build script says the
    // same to the inner build).
    let workspace = root.parent().ok_or_else(|| anyhow!("{} has no parent directory", root.display()))?;
    for watched in [root.to_path_buf(), workspace.join("sfc-common"), workspace.join("Cargo.toml"), workspace.join("Cargo.lock")] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let linker = which::which("bpf-linker").context("bpf-linker not found: run `cargo xtask setup`")?;
    println!("cargo:rerun-if-changed={}", linker.display());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH not set")?;
    let target = match std::env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("little") => "bpfel-unknown-none",
        Ok("big") => "bpfeb-unknown-none",
        other => bail!("unsupported target endianness {other:?}"),
    };
    // The dated nightly of sfc-ebpf/rust-toolchain.toml (it says why), explicitly: the outer
    // cargo's environment may name its own toolchain.
    let file = root.join("rust-toolchain.toml");
    let toolchain = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| channel_of(&t).map(str::to_owned))
        .with_context(|| format!("{} names no channel", file.display()))?;
    let mut cmd = Command::new("rustup");
    cmd.args(["run", &toolchain, "cargo", "build", "--package", PACKAGE, "-Z", "build-std=core", "--bins"])
        .args(["--message-format=json", "--release", "--target", target])
        // A target directory of its own: the outer cargo holds the lock of its profile's.
        .arg("--target-dir")
        .arg(ebpf_target_dir(out_dir))
        .current_dir(root)
        .env("CARGO_ENCODED_RUSTFLAGS", format!("--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"))
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?} (is rustup installed? `cargo xtask setup` installs {toolchain})"))?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);
    let (mut executable, mut unreadable_bitcode) = (None, false);
    for message in Message::parse_stream(stdout) {
        match message.context("reading the eBPF build's messages")? {
            Message::CompilerArtifact(a) if a.target.name == BINARY => {
                executable = a.executable.map(cargo_metadata::camino::Utf8PathBuf::into_std_path_buf);
            }
            // Real diagnostics only: every error (a linker error has no span), warnings with a
            // place in the code (not the "N warnings emitted" summaries).
            Message::CompilerMessage(m)
                if matches!(m.message.level, DiagnosticLevel::Error | DiagnosticLevel::Ice)
                    || (m.message.level == DiagnosticLevel::Warning && !m.message.spans.is_empty()) =>
            {
                let rendered = m.message.rendered.unwrap_or(m.message.message);
                // What LLVM says when bpf-linker's LLVM is older than the compiler's.
                unreadable_bitcode |= rendered.contains("Invalid record");
                for line in rendered.lines() {
                    println!("cargo:warning=sfc-ebpf: {line}");
                }
            }
            _ => {}
        }
    }
    let status = child.wait().context("waiting for the eBPF build")?;
    let log = log.join().unwrap_or_default();
    if !status.success() {
        let hint = if unreadable_bitcode {
            format!(
                "\nbpf-linker could not read the compiler's LLVM bitcode: its LLVM is older than {toolchain}'s. \
                 The toolchain ({}) and bpf-linker's LLVM (`cargo xtask setup`) move together.",
                file.display()
            )
        } else {
            String::new()
        };
        bail!("building the eBPF programs failed ({status}):\n{log}{hint}");
    }
    let built = executable.ok_or_else(|| anyhow!("the eBPF build produced no `{BINARY}` object:\n{log}"))?;
    let dst = out_dir.join(BINARY);
    std::fs::copy(&built, &dst).with_context(|| format!("copying {} to {}", built.display(), dst.display()))?;
    Ok(dst)
}

/// The `channel = "..."` of a rust-toolchain.toml: `rustup run` needs the name (setup lets
/// rustup read the file itself).
fn channel_of(toml: &str) -> Option<&str> {
    toml.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .find_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The inner build's target directory: `sfc-ebpf` beside the profile directories of the outer
/// build's (`target/sfc-ebpf`), so the debug and the release build of sfc-user (CI makes both)
/// share one build of the object, which is always built in release mode with the same flags.
/// The inner cargo's lock keeps two outer builds from writing it at once. Under `out_dir` when
/// that is not under a `build` directory as cargo lays it out.
fn ebpf_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>[/<triple>]/<profile>/build/sfc-user-<hash>/out.
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .map_or_else(|| out_dir.join(PACKAGE), |target| target.join(PACKAGE))
}

/// The revision of the workspace (`3f2a9c1d0b7e`; `-dirty` when tracked files differ from it
/// as of this script's last run, which an edit under `sfc-user/src`, a commit or a checkout
/// triggers), or `unknown` outside a git checkout (a source tarball).
fn git_revision(workspace: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace)
            // `git status` must not take index.lock under the user's own git commands.
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // A new commit or checkout changes HEAD, the ref it names (loose or packed) or the index.
    // Only paths that exist: cargo takes a missing one as changed and would rerun every build.
    let mut watched = vec!["HEAD".to_owned(), "index".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(p) = git(&["rev-parse", "--git-path", &name]).map(|p| workspace.join(p)).filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    // An edit makes the tree dirty before anything is staged.
    println!("cargo:rerun-if-changed={}", workspace.join("sfc-user/src").display());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev}-dirty") } else { rev }
}
