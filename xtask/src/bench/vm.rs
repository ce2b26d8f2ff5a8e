//! VM boot time: what a service VM of the suite and of `cargo xtask demo --vms` costs before it
//! forwards anything (Debian's kernel and a busybox initramfs under qemu, like the blog's
//! `CirrOS` VMs), and what making the image costs.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::Result;
use sfc_tests::{
    interrupt,
    netns::{self, NetNsGroup},
    pid_name,
    vm::{Accel, Vm, VmImage, VmSpec},
};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x5b, 0x00, 0x01];

/// Boots `boots` VMs one after the other (one NIC on a tap in a namespace of its own) and
/// returns the Markdown section: image, accelerator, boot times (qemu start to the guest's
/// ready line).
pub fn run(boots: usize) -> Result<String> {
    let started = Instant::now();
    let image = VmImage::ensure()?;
    let image_took = started.elapsed();
    let probe = Instant::now();
    let accel = Accel::detect()?;
    let probe_took = probe.elapsed();
    let prefix = "sfcb-vm";
    netns::sweep_stale(prefix);
    let ns = pid_name::unique(prefix);
    let mut group = NetNsGroup::default();
    group.create(&ns)?;
    let mut times = Vec::new();
    for i in 0..boots {
        interrupt::check()?;
        let spec = VmSpec::new(&pid_name::unique("sfcbvm")).in_netns(&ns).nic("vmtap0", MAC, "eth0");
        let vm = Vm::boot(spec)?;
        let t = vm.booted_in().unwrap_or_default();
        println!("boot {}/{boots}: {:.1} s ({accel})", i + 1, t.as_secs_f64());
        times.push(t);
        vm.stop()?;
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let list: Vec<String> = times.iter().map(|t| format!("{:.1}", t.as_secs_f64())).collect();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### VM boot\n\nThe service VMs of the suite and of `cargo xtask demo --vms`: Debian's kernel \
         and a busybox initramfs (`sfc_tests::vm`), one virtio-net NIC on a tap, 128 MiB, \
         accelerator **{accel}** (KVM only where a probe VM boots with it). From starting qemu to \
         the guest's ready line (modules loaded, addresses set): median **{:.1} s** of {boots} \
         boots one after the other ({} s). The image ({}) was {} in {:.1} s; deciding the \
         accelerator took {:.1} s ({}).\n",
        median.as_secs_f64(),
        list.join(", "),
        image.dir.display(),
        if image_took > Duration::from_secs(2) { "built" } else { "found in the cache" },
        image_took.as_secs_f64(),
        probe_took.as_secs_f64(),
        if probe_took > Duration::from_secs(2) { "a probe ran" } else { "the cached answer" },
    );
    Ok(md)
}
