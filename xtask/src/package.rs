//! `cargo xtask package`: the Debian package, `target/debian/sfc_<version>_<arch>.deb`, from the
//! release build. Assembled as a directory tree and packed with `dpkg-deb --root-owner-group`
//! (what cargo-deb does, without building cargo-deb itself on every fresh machine):
//!
//! - `/usr/bin/sfc` (the eBPF object is inside it);
//! - `/lib/systemd/system/sfc.service`, `/etc/sfc/chains.yaml` (an example) and
//!   `/etc/default/sfc` (both conffiles: an upgrade keeps the operator's edits);
//! - the man pages and the bash, zsh and fish completions from `deploy/` (generated from the
//!   clap definitions; `sfc-user/tests/cli_docs.rs` keeps them current);
//! - maintainer scripts from `deploy/debian/` (daemon-reload; on removal the service's datapath
//!   is taken down while the binary is still there).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::{build_cmd, cmd, dirs};

/// Builds the package; returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    let sfc = build_cmd::sfc_binary(true)?;
    let version = cmd::stdout_of(cmd::command(&sfc).arg("--version"))?;
    // `sfc 0.1.0 (git ..., eBPF object sha256 ...)`.
    let upstream = version.split_whitespace().nth(1).context("`sfc --version` printed no version")?.to_owned();
    let arch = cmd::stdout_of(cmd::command("dpkg").arg("--print-architecture"))?.trim().to_owned();
    let out = dirs::target_dir()?.join("debian");
    let root = out.join(format!("sfc_{upstream}_{arch}"));
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let deploy = dirs::workspace_root().join("deploy");
    let put = |from: &Path, to: &str, mode: u32| -> anyhow::Result<()> {
        let dst = root.join(to);
        std::fs::create_dir_all(dst.parent().context("no parent")?)?;
        std::fs::copy(from, &dst).with_context(|| format!("copying {} to {}", from.display(), dst.display()))?;
        set_mode(&dst, mode)
    };
    put(&sfc, "usr/bin/sfc", 0o755)?;
    cmd::run(cmd::command("strip").arg("--strip-debug").arg(root.join("usr/bin/sfc")))?;
    put(&deploy.join("systemd/sfc.service"), "lib/systemd/system/sfc.service", 0o644)?;
    put(&deploy.join("debian/chains.yaml"), "etc/sfc/chains.yaml", 0o644)?;
    put(&deploy.join("debian/default"), "etc/default/sfc", 0o644)?;
    put(&deploy.join("completions/sfc.bash"), "usr/share/bash-completion/completions/sfc", 0o644)?;
    put(&deploy.join("completions/_sfc"), "usr/share/zsh/vendor-completions/_sfc", 0o644)?;
    put(&deploy.join("completions/sfc.fish"), "usr/share/fish/vendor_completions.d/sfc.fish", 0o644)?;
    let man = root.join("usr/share/man/man1");
    std::fs::create_dir_all(&man)?;
    let mut pages = 0;
    for e in std::fs::read_dir(deploy.join("man")).context("reading deploy/man")? {
        let p = e?.path();
        let name = p.file_name().context("no file name")?.to_string_lossy().into_owned();
        let gz = man.join(format!("{name}.gz"));
        // -n: no name or time stamp inside, so the same page gives the same bytes.
        let body = cmd::probe(cmd::command("gzip").args(["-9n", "-c"]).arg(&p))?;
        if !body.status.success() {
            bail!("gzip {} failed", p.display());
        }
        std::fs::write(&gz, body.stdout)?;
        set_mode(&gz, 0o644)?;
        pages += 1;
    }
    let doc = root.join("usr/share/doc/sfc");
    std::fs::create_dir_all(&doc)?;
    std::fs::write(doc.join("copyright"), COPYRIGHT)?;
    put(&dirs::workspace_root().join("README.md"), "usr/share/doc/sfc/README.md", 0o644)?;

    let debian = root.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    for script in ["postinst", "prerm", "postrm"] {
        put(&deploy.join("debian").join(script), &format!("DEBIAN/{script}"), 0o755)?;
    }
    std::fs::write(debian.join("conffiles"), "/etc/sfc/chains.yaml\n/etc/default/sfc\n")?;
    // Whatever the builder's umask: directories 0755, files as set above or 0644.
    set_mode(&root, 0o755)?;
    normalize_modes(&root)?;
    let size_kib = du_kib(&root)?;
    let glibc = glibc_needed(&root.join("usr/bin/sfc"))?;
    let mut control = std::fs::File::create(debian.join("control"))?;
    write!(
        control,
        "Package: sfc\nVersion: {upstream}\nArchitecture: {arch}\nMaintainer: sfc developers <sfc@localhost>\n\
         Installed-Size: {size_kib}\nDepends: libc6 (>= {glibc}), libgcc-s1\nSection: net\nPriority: optional\n\
         Description: service function chaining datapath on eBPF\n \
         sfc steers traffic through chains of service functions (OpenStack networking-sfc's\n \
         port pairs, port pair groups, flow classifiers and port chains) with tc and XDP\n \
         programs on the VMs' tap interfaces and veths. The sfc binary validates and applies\n \
         chain files, runs as a daemon (sfc.service) that re-applies on change, fails members\n \
         over and serves Prometheus metrics, and inspects the datapath.\n"
    )?;
    drop(control);
    let deb = out.join(format!("sfc_{upstream}_{arch}.deb"));
    build_cmd::timed("package", || cmd::run(cmd::command("dpkg-deb").args(["--root-owner-group", "-Zxz", "--build"]).arg(&root).arg(&deb)))?;
    println!("package: {} ({pages} man pages; `{}`)", deb.display(), version.trim());
    Ok(deb)
}

/// The newest glibc symbol version the binary links against (`2.34`): its `libc6` dependency.
fn glibc_needed(bin: &Path) -> anyhow::Result<String> {
    let symbols = cmd::stdout_of(cmd::command("objdump").arg("-T").arg(bin))?;
    let mut newest: Option<Vec<u32>> = None;
    for v in symbols.split("GLIBC_").skip(1) {
        let v: String = v.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let parts: Vec<u32> = v.split('.').filter_map(|p| p.parse().ok()).collect();
        if !parts.is_empty() && newest.as_ref().is_none_or(|n| parts > *n) {
            newest = Some(parts);
        }
    }
    let newest = newest.context("objdump -T shows no GLIBC_ symbol versions")?;
    Ok(newest.iter().map(ToString::to_string).collect::<Vec<_>>().join("."))
}

/// Directories 0755 and files without an execute bit 0644, under `root`.
fn normalize_modes(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for e in std::fs::read_dir(root)? {
        let p = e?.path();
        let mode = std::fs::metadata(&p)?.permissions().mode();
        if p.is_dir() {
            set_mode(&p, 0o755)?;
            normalize_modes(&p)?;
        } else if mode & 0o111 == 0 {
            set_mode(&p, 0o644)?;
        }
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", p.display()))
}

/// Kibibytes the tree takes, for `Installed-Size`.
fn du_kib(root: &Path) -> anyhow::Result<u64> {
    fn walk(p: &Path, total: &mut u64) -> std::io::Result<()> {
        for e in std::fs::read_dir(p)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                walk(&e.path(), total)?;
            } else {
                *total += m.len().div_ceil(1024);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(root, &mut total).with_context(|| format!("sizing {}", root.display()))?;
    Ok(total)
}

const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: sfc\n\nFiles: *\nLicense: MIT OR Apache-2.0\n";
