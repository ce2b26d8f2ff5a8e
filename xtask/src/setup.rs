//! `cargo xtask setup`: install, only where missing, what the build and the tests need on a fresh
//! Debian 12 machine (run as root). Every step checks first and prints "ok" when nothing is to do.
use std::{
    path::PathBuf,
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{self, command},
    dirs,
};

/// Debian packages the build needs (bpf-linker's and sfc's): what each is for.
const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("llvm-22-dev", "bpf-linker links against LLVM 22"),
    (
        "libpolly-22-dev",
        "LLVM 22's static libraries reference Polly (bpf-linker build)",
    ),
    ("zlib1g-dev", "libLLVM needs zlib (bpf-linker build)"),
    ("libzstd-dev", "libLLVM needs zstd (bpf-linker build)"),
    (
        "protobuf-compiler",
        "etcd-client (the Rust crate sfc's multi-host agent speaks etcd with) compiles etcd's protocol files",
    ),
    (
        "libprotobuf-dev",
        "protoc's well-known types (google/protobuf/descriptor.proto) that etcd's protocol files import",
    ),
];

/// Debian packages the tests, the demo and packaging need: what each is for.
const PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "the tests and the demo use ip and bridge"),
    (
        "ethtool",
        "the tests read interface counters and set offloads",
    ),
    (
        "qemu-system-x86",
        "the VM tests boot service functions as qemu VMs on tap devices",
    ),
    (
        "busybox-static",
        "the VMs' initramfs is busybox (init, shell, ip, httpd, wget)",
    ),
    (
        "prometheus",
        "the dashboard test scrapes `sfc run` with a real Prometheus and runs the panels' queries",
    ),
    (
        "nftables",
        "the NAT-ing function test's service function SNATs with nft",
    ),
    (
        "binutils",
        "`cargo xtask package` strips the binary and reads the glibc versions it needs (objdump)",
    ),
    (
        "etcd-server",
        "the multi-host tests and demo keep the configuration in a real etcd (in a namespace of their own)",
    ),
    (
        "etcd-client",
        "etcdctl: the multi-host tests wait for etcd to answer",
    ),
    (
        "python3-venv",
        "grafyaml (from PyPI), which checks the Grafana dashboard, is installed into a venv",
    ),
];

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

/// Runs every step once per process; later calls (build after setup, say) return at once.
pub fn run() -> anyhow::Result<()> {
    run_with(&[])
}

/// `run`, also installing `extra` Debian packages (name, why) with the tests' packages: one apt
/// transaction, not two (the bench's tools).
pub fn run_with(extra: &[(&str, &str)]) -> anyhow::Result<()> {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    // On a fresh machine most of this is downloading and unpacking: the nightly (rustup) comes
    // beside the Debian packages (apt); bpf-linker's build, which needs LLVM from apt and takes
    // the cores, beside the other packages' unpacking (the disk) and grafyaml (pip). Where
    // everything is there, each step only checks.
    let nightly_and_rest = std::thread::scope(|s| {
        let nightly = s.spawn(rust_src);
        let rest = debian_packages(BUILD_PACKAGES).and_then(|()| {
            let linker = s.spawn(bpf_linker);
            let others = debian_packages(&[PACKAGES, extra].concat()).and_then(|()| grafyaml());
            joined(linker, "bpf-linker").and(others)
        });
        (joined(nightly, "nightly"), rest)
    });
    match nightly_and_rest {
        (Ok(()), Ok(())) => {}
        (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e),
        (Err(nightly), Err(rest)) => return Err(rest.context(format!("and the nightly toolchain: {nightly:#}"))),
    }
    bpffs()?;
    DONE.store(true, Ordering::Relaxed);
    Ok(())
}

/// A setup step's thread's result (a panic is an error of that step).
fn joined(step: std::thread::ScopedJoinHandle<'_, anyhow::Result<()>>, what: &str) -> anyhow::Result<()> {
    step.join().unwrap_or_else(|_| Err(anyhow::anyhow!("installing {what} panicked")))
}

/// The eBPF crate is built with a dated nightly (`sfc-ebpf/rust-toolchain.toml` says which and
/// why) and its `-Z build-std=core`, which needs that toolchain's `rust-src`. rustup reads the
/// file itself, in that directory, once the variable naming the toolchain `cargo` runs us with
/// is gone.
fn rust_src() -> anyhow::Result<()> {
    cmd::stdout_of(command("rustup").arg("--version"))
        .context("rustup is needed to manage the nightly toolchain; install Rust with rustup")?;
    let in_ebpf = |args: &[&str]| {
        let mut c = command("rustup");
        c.args(args).current_dir(dirs::workspace_root().join("sfc-ebpf")).env_remove("RUSTUP_TOOLCHAIN");
        c
    };
    let listed = cmd::probe(&mut in_ebpf(&["component", "list", "--installed"]))?;
    if listed.status.success() && String::from_utf8_lossy(&listed.stdout).lines().any(is_rust_src) {
        println!("setup: ok   the eBPF toolchain (sfc-ebpf/rust-toolchain.toml) with rust-src");
        return Ok(());
    }
    println!("setup: installing the eBPF toolchain of sfc-ebpf/rust-toolchain.toml with rust-src (`core` is built from source)");
    // Not rustup itself: a machine that does not update rustup on its own is not updated here.
    cmd::run(&mut in_ebpf(&["toolchain", "install", "--no-self-update"]))
}

/// `rustup component list` names it `rust-src`, or with a target triple on older rustups.
fn is_rust_src(line: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or_default();
    name == "rust-src" || name.starts_with("rust-src-")
}

/// Installs those of `packages` that are missing, after one `apt-get update` per process.
fn debian_packages(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    static UPDATED: AtomicBool = AtomicBool::new(false);
    let mut missing = Vec::new();
    for &(name, why) in packages {
        if is_installed(name)? {
            println!("setup: ok   {name}");
        } else {
            println!("setup: missing {name}: {why}");
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "setup: installing {} (this takes a few minutes)",
        missing.join(" ")
    );
    if !UPDATED.load(Ordering::Relaxed) {
        cmd::run(command("apt-get").arg("update").stdin(Stdio::null()))?;
        UPDATED.store(true, Ordering::Relaxed);
    }
    cmd::run(
        command("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()),
    )
}

/// True when dpkg reports the package fully installed; a package dpkg has never heard of makes
/// `dpkg-query` exit 1, which is "not installed", not an error.
fn is_installed(package: &str) -> anyhow::Result<bool> {
    let out = cmd::probe(command("dpkg-query").args(["-W", "-f=${Status}", package]))
        .context("dpkg-query not found: setup supports Debian (12) only")?;
    Ok(out.status.success() && out.stdout == b"install ok installed")
}

/// bpf-linker links the eBPF object; aya-build calls it through rustc.
fn bpf_linker() -> anyhow::Result<()> {
    let works =
        cmd::probe(command("bpf-linker").arg("--version")).is_ok_and(|out| out.status.success());
    if works {
        println!("setup: ok   bpf-linker");
        return Ok(());
    }
    println!(
        "setup: installing bpf-linker (links the eBPF programs; builds against LLVM 22, takes minutes)"
    );
    // Without LLVM_PREFIX bpf-linker's build script looks for libLLVM under /usr/lib64 and fails.
    cmd::run(
        cmd::cargo()
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
            // Its manifest builds releases with full debug info: 37 s and a 42 MB binary here,
            // without 30 s and 2.8 MB (the time is on a fresh machine's way to its first build).
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .stdin(Stdio::null()),
    )?;
    cmd::stdout_of(command("bpf-linker").arg("--version"))
        .context("bpf-linker was installed but does not run")?;
    Ok(())
}

/// grafyaml's venv: `<target dir>/grafyaml`. Debian's Python refuses `pip install` outside a
/// venv (PEP 668), and a venv under the target directory leaves the system's Python alone.
pub fn grafyaml_venv() -> anyhow::Result<PathBuf> {
    Ok(dirs::target_dir()?.join("grafyaml"))
}

/// grafyaml (from `PyPI`) validates the Grafana dashboard and makes its JSON (deploy/grafana):
/// installed into [`grafyaml_venv`] at the versions `deploy/grafana/requirements.txt` pins, again
/// when that file changes (the venv keeps a copy of the one it was made from).
fn grafyaml() -> anyhow::Result<()> {
    let venv = grafyaml_venv()?;
    let requirements = dirs::workspace_root().join("deploy/grafana/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let made_from = venv.join("sfc-requirements.txt");
    let works = cmd::probe(command(venv.join("bin/grafana-dashboard")).arg("--version"))
        .is_ok_and(|out| out.status.success());
    if works && std::fs::read_to_string(&made_from).is_ok_and(|had| had == wanted) {
        println!("setup: ok   grafyaml in {}", venv.display());
        return Ok(());
    }
    println!(
        "setup: installing grafyaml into {} (checks the Grafana dashboard)",
        venv.display()
    );
    // Debian's own Python, whose venv module python3-venv provides (not whatever `python3` a
    // version manager puts first on PATH).
    cmd::run(
        command("/usr/bin/python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .stdin(Stdio::null()),
    )?;
    cmd::run(
        command(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .stdin(Stdio::null()),
    )?;
    std::fs::write(&made_from, wanted)
        .with_context(|| format!("writing {}", made_from.display()))?;
    Ok(())
}

/// sfc pins its maps and programs under /sys/fs/bpf, which must be a bpf filesystem.
fn bpffs() -> anyhow::Result<()> {
    if bpffs_mounted()? {
        println!("setup: ok   bpffs at {BPFFS}");
        return Ok(());
    }
    println!("setup: mounting bpffs at {BPFFS} (sfc pins its maps there)");
    cmd::run(command("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    if !bpffs_mounted()? {
        bail!("mounted bpffs at {BPFFS}, but /proc/mounts does not show it");
    }
    Ok(())
}

fn bpffs_mounted() -> anyhow::Result<bool> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|line| is_bpffs_at(line, BPFFS)))
}

/// A /proc/mounts line is `source mountpoint fstype options dump pass`.
fn is_bpffs_at(line: &str, mountpoint: &str) -> bool {
    let mut fields = line.split_whitespace().skip(1);
    fields.next() == Some(mountpoint) && fields.next() == Some("bpf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpffs_line() {
        assert!(is_bpffs_at(
            "bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0",
            BPFFS
        ));
        assert!(is_bpffs_at("none /sys/fs/bpf bpf rw 0 0", BPFFS));
        assert!(!is_bpffs_at("sysfs /sys sysfs rw,relatime 0 0", BPFFS));
        assert!(!is_bpffs_at("tmpfs /sys/fs/bpf tmpfs rw 0 0", BPFFS));
    }

    #[test]
    fn the_ebpf_toolchain_file_names_a_dated_nightly_with_rust_src() {
        let file = std::fs::read_to_string(dirs::workspace_root().join("sfc-ebpf/rust-toolchain.toml")).unwrap();
        assert!(file.lines().any(|l| l.starts_with("channel = \"nightly-20")), "a dated nightly (the file says why):\n{file}");
        assert!(file.lines().any(|l| l.starts_with("components = [\"rust-src\"")), "{file}");
    }

    #[test]
    fn rust_src_line() {
        assert!(is_rust_src("rust-src"));
        assert!(is_rust_src("rust-src (installed)"));
        assert!(!is_rust_src("rust-std-x86_64-unknown-linux-gnu"));
        assert!(!is_rust_src("rustc-x86_64-unknown-linux-gnu"));
    }

    #[test]
    fn unknown_package_is_not_installed() {
        // Only meaningful on Debian; skip where dpkg-query does not exist.
        if let Ok(installed) = is_installed("sfc-no-such-package-xyz") {
            assert!(!installed);
        }
    }
}
