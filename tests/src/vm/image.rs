//! The VMs' kernel and initramfs, built on first use into a cache directory: Debian's kernel
//! (`linux-image-amd64`'s current package, downloaded, never installed), and an initramfs of
//! busybox-static with its applet links, the virtio-net driver and what it needs from that
//! kernel's modules, and [`init.sh`](INIT) as `/init`.
//!
//! The image lives in `<cache>/<key>/`, the key naming the kernel package and version, busybox's
//! version and a hash of the init script: a newer kernel package or a changed init gets a new
//! image. A build happens under a lock file, in a scratch directory renamed into place when
//! complete, so that tests in parallel processes wait for one build and never see half of one.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File, OpenOptions},
    io::BufWriter,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSection as _};

use super::cpio::Cpio;
use crate::netns;

/// Overrides [`DEFAULT_CACHE`].
pub const CACHE_ENV: &str = "SFC_VM_CACHE";
/// Outside `target/`: shared by every worktree, and kept by `cargo clean`.
pub const DEFAULT_CACHE: &str = "/var/cache/sfc-vm";
/// Debian's metapackage for the current kernel; it depends on the versioned image package.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
const BUSYBOX_PACKAGE: &str = "busybox-static";
const BUSYBOX: &str = "/bin/busybox";
/// The modules the guest needs; what they depend on is read from their own `.modinfo`.
const MODULES: &[&str] = &["virtio_pci", "virtio_net"];
/// The guest's `/init`.
pub const INIT: &str = include_str!("init.sh");
/// Raised when the image changes in a way the key would not see otherwise.
const FORMAT: u32 = 1;
const KERNEL_FILE: &str = "vmlinuz";
const INITRAMFS_FILE: &str = "initramfs.cpio";

/// A built image: the kernel and the initramfs for qemu's `-kernel` and `-initrd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmImage {
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

/// Where images (and the KVM probe's answer) are kept: `$SFC_VM_CACHE`, else [`DEFAULT_CACHE`].
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV).map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from)
}

impl VmImage {
    /// The image for the current kernel package, built first if the cache has none (about half
    /// a minute: a 70 MB download and its unpacking). Once per process it asks apt and dpkg for
    /// the versions that make the key.
    pub fn ensure() -> Result<VmImage> {
        static KNOWN: Mutex<Option<VmImage>> = Mutex::new(None);
        let mut known = KNOWN.lock().map_err(|_| anyhow::anyhow!("VM image lock poisoned"))?;
        if let Some(image) = known.as_ref() {
            return Ok(image.clone());
        }
        let image = Self::ensure_uncached().context("making the VM image (kernel and initramfs)")?;
        *known = Some(image.clone());
        Ok(image)
    }

    fn ensure_uncached() -> Result<VmImage> {
        let kernel_package = kernel_package()?;
        let busybox = package_version(BUSYBOX_PACKAGE)?;
        let key = sanitize(&format!(
            "{}_{}-busybox_{busybox}-{:016x}",
            kernel_package.0,
            kernel_package.1,
            fnv1a(&[&FORMAT.to_string(), INIT, &MODULES.join(",")])
        ));
        let cache = cache_dir();
        let image = VmImage::at(&cache.join(&key));
        if image.is_complete() {
            return Ok(image);
        }
        fs::create_dir_all(&cache).with_context(|| format!("create {}", cache.display()))?;
        let _lock = CacheLock::take(&cache.join(".lock"))?;
        // Another process may have built it while this one waited for the lock.
        if image.is_complete() {
            return Ok(image);
        }
        sweep_scratch(&cache);
        let started = Instant::now();
        let scratch = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(&cache)
            .with_context(|| format!("scratch directory in {}", cache.display()))?;
        let built = scratch.path().join("image");
        build(&kernel_package.0, scratch.path(), &built)?;
        fs::rename(&built, &image.dir).with_context(|| format!("rename {} to {}", built.display(), image.dir.display()))?;
        eprintln!("VM image {key} built in {:.1?}", started.elapsed());
        Ok(image)
    }

    fn at(dir: &Path) -> VmImage {
        VmImage { dir: dir.to_owned(), kernel: dir.join(KERNEL_FILE), initramfs: dir.join(INITRAMFS_FILE) }
    }

    /// Complete once renamed into place: the rename is the last step of a build.
    fn is_complete(&self) -> bool {
        self.kernel.is_file() && self.initramfs.is_file()
    }
}

/// Builds the image in `out`, working in `scratch`.
fn build(package: &str, scratch: &Path, out: &Path) -> Result<()> {
    run_in(scratch, "apt-get", &["-o", "APT::Sandbox::User=root", "download", package])?;
    let deb = fs::read_dir(scratch)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb in {}", scratch.display()))?;
    let tree = scratch.join("deb");
    run_in(scratch, "dpkg-deb", &["-x", &deb.to_string_lossy(), &tree.to_string_lossy()])?;

    let (release, vmlinuz) = kernel_in(&tree)?;
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| tree.join(d).join(&release))
        .find(|d| d.is_dir())
        .with_context(|| format!("no modules directory for {release} in {package}"))?;
    let modules = load_order(&modules_dir, MODULES)?;

    fs::create_dir_all(out)?;
    fs::copy(&vmlinuz, out.join(KERNEL_FILE)).with_context(|| format!("copy {}", vmlinuz.display()))?;
    write_initramfs(&out.join(INITRAMFS_FILE), &modules)
        .with_context(|| format!("write the initramfs in {}", out.display()))
}

/// `boot/vmlinuz-<release>` of the unpacked package.
fn kernel_in(tree: &Path) -> Result<(String, PathBuf)> {
    let boot = tree.join("boot");
    for entry in fs::read_dir(&boot).with_context(|| format!("read {}", boot.display()))? {
        let path = entry?.path();
        if let Some(release) = path.file_name().and_then(|n| n.to_str()?.strip_prefix("vmlinuz-")) {
            return Ok((release.to_owned(), path.clone()));
        }
    }
    bail!("no vmlinuz-* in {}", boot.display())
}

/// The initramfs: directories, `/dev/console` (the kernel opens it for init before anything is
/// mounted), busybox and its applet links, the modules and their load order, `/init`.
fn write_initramfs(path: &Path, modules: &[(String, PathBuf)]) -> Result<()> {
    let applets = netns::run(BUSYBOX, &["--list-full"])
        .with_context(|| format!("{BUSYBOX} (package {BUSYBOX_PACKAGE}; `cargo xtask setup` installs it)"))?;
    let busybox = fs::read(BUSYBOX).with_context(|| format!("read {BUSYBOX}"))?;
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut cpio = Cpio::new(BufWriter::new(file));
    for dir in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "etc", "etc/sfcvm", "lib", "lib/modules"] {
        cpio.dir(dir)?;
    }
    cpio.char_dev("dev/console", 0o600, 5, 1)?;
    cpio.file("bin/busybox", 0o755, &busybox)?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "bin/busybox") {
        cpio.symlink(applet, "/bin/busybox")?;
    }
    let mut order = String::new();
    for (name, ko) in modules {
        let data = fs::read(ko).with_context(|| format!("read {}", ko.display()))?;
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, &data)?;
        order.push_str(name);
        order.push('\n');
    }
    cpio.file("etc/sfcvm/modules", 0o644, order.as_bytes())?;
    cpio.file("init", 0o755, INIT.as_bytes())?;
    let mut out = cpio.finish()?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// The modules to load for `wanted`, dependencies first, with their files; built-in ones
/// (`modules.builtin`) need nothing.
fn load_order(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut files = BTreeMap::new();
    index_modules(&modules_dir.join("kernel"), &mut files)?;
    let builtin: BTreeSet<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(Path::new(l).file_name()?.to_str()?))
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        visit(name, &files, &builtin, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

/// Depth-first, dependencies before the module that needs them.
fn visit(
    name: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<()> {
    const MAX_DEPTH: usize = 32;
    if depth > MAX_DEPTH {
        bail!("module dependencies deeper than {MAX_DEPTH} at {name} (a cycle?)");
    }
    if builtin.contains(name) || !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let Some(path) = files.get(name) else {
        bail!("kernel module {name} is neither a module file nor built in");
    };
    for dep in modinfo_depends(path)? {
        visit(&dep, files, builtin, seen, order, depth + 1)?;
    }
    order.push((name.to_owned(), path.clone()));
    Ok(())
}

/// Every `*.ko` under `dir`, by module name. Compressed modules are refused: busybox's insmod
/// would need to decompress them, and Debian 12's are not compressed.
fn index_modules(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, files)?;
            continue;
        }
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if [".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|s| file.ends_with(s)) {
            bail!("{}: compressed kernel modules are not supported by the image builder", path.display());
        }
        if let Some(name) = module_name(file) {
            files.insert(name, path.clone());
        }
    }
    Ok(())
}

/// `virtio-rng.ko` -> `virtio_rng`, as the kernel names modules.
fn module_name(file: &str) -> Option<String> {
    Some(file.strip_suffix(".ko")?.replace('-', "_"))
}

/// The `depends=` entry of a module's `.modinfo` section (NUL-separated `key=value` strings).
fn modinfo_depends(ko: &Path) -> Result<Vec<String>> {
    let data = fs::read(ko).with_context(|| format!("read {}", ko.display()))?;
    let elf = object::File::parse(&*data).with_context(|| format!("{} is not an ELF object", ko.display()))?;
    let section = elf.section_by_name(".modinfo").with_context(|| format!("{} has no .modinfo", ko.display()))?;
    let info = section.data().with_context(|| format!("{}: .modinfo", ko.display()))?;
    Ok(info
        .split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|deps| String::from_utf8_lossy(deps).split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .collect())
}

/// The versioned kernel package `linux-image-amd64` stands for, and its candidate version. A
/// machine whose package lists are empty (a fresh container) gets `apt-get update` first.
fn kernel_package() -> Result<(String, String)> {
    let lookup = || -> Result<(String, String)> {
        let deps = netns::run("apt-cache", &["depends", KERNEL_METAPACKAGE])?;
        let package = deps
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
            .map(|rest| format!("linux-image-{rest}"))
            .with_context(|| format!("apt-cache depends {KERNEL_METAPACKAGE}: no linux-image-* dependency in:\n{deps}"))?;
        let show = netns::run("apt-cache", &["show", "--no-all-versions", &package])?;
        let version = show
            .lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .with_context(|| format!("apt-cache show {package}: no Version"))?;
        Ok((package, version.trim().to_owned()))
    };
    lookup().or_else(|first| {
        netns::run("apt-get", &["update"]).with_context(|| format!("{first:#}; then apt-get update failed"))?;
        lookup().with_context(|| format!("{KERNEL_METAPACKAGE} after apt-get update"))
    })
}

/// The installed version of a Debian package.
fn package_version(package: &str) -> Result<String> {
    let version = netns::run("dpkg-query", &["-W", "-f=${Version}", package])
        .with_context(|| format!("{package} is not installed (`cargo xtask setup` installs it)"))?;
    Ok(version.trim().to_owned())
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` in {} failed ({}): {}",
            args.join(" "),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// Package versions hold `:` and `~`; keep names plain.
fn sanitize(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || "._+-".contains(c) { c } else { '_' }).collect()
}

/// 64-bit FNV-1a over the parts (each followed by a NUL): a content key, not a security one.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Scratch directories of builds that were killed: only ever removed under the lock, when no
/// build can be running.
fn sweep_scratch(cache: &Path) {
    let Ok(entries) = fs::read_dir(cache) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".build-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// An exclusive `flock` on a file, released when dropped (the descriptor closes). Two in one
/// process on the same file wait for each other too: `flock` locks belong to the open file.
pub(super) struct CacheLock(#[expect(dead_code, reason = "held for its descriptor: closing it unlocks")] File);

impl CacheLock {
    pub(super) fn take(path: &Path) -> Result<CacheLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; it blocks until the lock is free.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("flock {}", path.display()));
        }
        Ok(CacheLock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_follow_the_kernel() {
        assert_eq!(module_name("virtio-rng.ko").as_deref(), Some("virtio_rng"));
        assert_eq!(module_name("virtio_net.ko").as_deref(), Some("virtio_net"));
        assert_eq!(module_name("modules.dep"), None);
    }

    #[test]
    fn keys_are_plain_and_follow_the_inputs() {
        assert_eq!(sanitize("linux-image-6.1.0-57-amd64_6.1.192-3-busybox_1:1.35.0~x"), "linux-image-6.1.0-57-amd64_6.1.192-3-busybox_1_1.35.0_x");
        assert_ne!(fnv1a(&["a", "bc"]), fnv1a(&["ab", "c"]));
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
    }
}
