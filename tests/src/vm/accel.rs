//! KVM or TCG. `/dev/kvm` can exist where a KVM guest still cannot run (nested virtualisation
//! that does not work: the guest hangs, or qemu aborts on an MSR), so KVM is used only once a
//! probe VM booted with it; the answer is kept per host kernel in the cache directory.

use std::{fmt, fs, path::Path, sync::Mutex, time::Duration};

use anyhow::{Result, bail};

use super::{Vm, VmSpec, image};

/// Overrides the probe: `kvm` or `tcg`.
pub const ACCEL_ENV: &str = "SFC_VM_ACCEL";
/// A KVM guest boots in a second or two; one that has not in this long never will.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Where KVM hangs (nested virtualisation on our VMs) the firmware prints its lines and the
/// kernel never does, while qemu spins a core. A guest that runs prints the kernel's first
/// line early: after about 3 s under TCG here, which emulates the CPU, so sooner with KVM.
/// Waiting out the whole `PROBE_TIMEOUT` instead cost a fresh machine's first VM test (and the
/// bench) 9 s more.
const PROBE_KERNEL: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// qemu's `-accel` value.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    fn parse(s: &str) -> Option<Accel> {
        match s.trim() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }

    /// `$SFC_VM_ACCEL` if set; else the answer a probe gave on this host kernel (probing once
    /// when there is none: 6 s where KVM hangs, 15 s at most): KVM if a VM booted with it, TCG
    /// otherwise.
    pub fn detect() -> Result<Accel> {
        static KNOWN: Mutex<Option<Accel>> = Mutex::new(None);
        let mut known = KNOWN.lock().map_err(|_| anyhow::anyhow!("accelerator lock poisoned"))?;
        if let Some(a) = *known {
            return Ok(a);
        }
        let accel = match std::env::var(ACCEL_ENV) {
            Ok(v) => match Accel::parse(&v) {
                Some(a) => a,
                None => bail!("{ACCEL_ENV}={v:?}: kvm or tcg"),
            },
            Err(_) => cached_probe()?,
        };
        *known = Some(accel);
        Ok(accel)
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn cached_probe() -> Result<Accel> {
    if !Path::new("/dev/kvm").exists() {
        return Ok(Accel::Tcg);
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let file = image::cache_dir().join(format!("accel-{}", release.trim()));
    let known = || fs::read_to_string(&file).ok().as_deref().and_then(Accel::parse);
    if let Some(a) = known() {
        return Ok(a);
    }
    // What a VM needs whatever the accelerator, first: its failure must not read as "no KVM".
    image::VmImage::ensure()?;
    crate::netns::run(super::QEMU, &["--version"])?;
    // One probe at a time: a test in another process waits for this one's answer.
    let _lock = image::CacheLock::take(&image::cache_dir().join(".accel-lock"))?;
    if let Some(a) = known() {
        return Ok(a);
    }
    let accel = match Vm::boot(VmSpec::new("kvm-probe").accel(Accel::Kvm).boot_timeout(PROBE_TIMEOUT).kernel_timeout(PROBE_KERNEL)) {
        Ok(_) => Accel::Kvm,
        Err(e) => {
            let first = format!("{e:#}");
            eprintln!("KVM does not boot a VM here, VMs run under TCG: {}", first.lines().next().unwrap_or_default());
            Accel::Tcg
        }
    };
    fs::create_dir_all(image::cache_dir())?;
    fs::write(&file, accel.name())?;
    Ok(accel)
}
