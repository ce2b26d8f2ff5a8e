//! `cargo xtask demo --vms`: the blog's five VMs as real qemu VMs in the hub (`sfc_tests::vm`):
//! booting them, and showing what each is, how it was started and, when kept, where to look.

use std::{path::Path, time::Instant};

use anyhow::Result;
use sfc_tests::{
    Topology, TopologyConfig,
    blog::{HTTP_PORT, SFS},
    topology::{BRIDGE, DEST_IP, End, Role},
    vm::{self, Accel, Vm, VmImage},
};

use super::DEMO_ID;

/// qemu options that start a new line when its command line is shown.
const LINE_OPTIONS: &[&str] = &["-kernel", "-initrd", "-append", "-serial", "-chardev", "-netdev"];
/// Where a shown command line wraps.
const WIDTH: usize = 100;

/// The blog's name for `who`'s VM.
fn blog_name(who: Role) -> String {
    match who {
        Role::Source => "source_vm".to_owned(),
        Role::Dest => "dest_vm".to_owned(),
        Role::Sf(n) => format!("vm{n}"),
    }
}

/// What `who` does in the demo.
fn job(who: Role) -> &'static str {
    match who {
        Role::Source => "client (the request loop)",
        Role::Dest => "web server (busybox httpd)",
        Role::Sf(_) => "service function (a router)",
    }
}

/// Builds the demo's topology with every endpoint a qemu VM and shows what it built. With
/// `keep_under`, the VMs can be kept (`--keep`), their files there.
pub(super) fn build(keep_under: Option<&Path>) -> Result<Topology> {
    let mut config = TopologyConfig::new(&SFS).id(DEMO_ID).vms(&SFS).vm_endpoints(HTTP_PORT);
    if let Some(dir) = keep_under {
        config = config.keepable_vms(dir);
    }
    // Both may take a while the first time (a download, a probe VM): before the clock starts.
    let image = VmImage::ensure()?;
    let accel = Accel::detect()?;
    let count = 2 + SFS.len();
    println!(
        "Booting {count} qemu VMs at once ({accel}, image {}) ...\n",
        image.dir.display()
    );
    let started = Instant::now();
    let topo = config.build()?;
    let took = started.elapsed();
    print_vms(&topo, &image, accel, took.as_secs_f64())?;
    Ok(topo)
}

fn print_vms(topo: &Topology, image: &VmImage, accel: Accel, took: f64) -> Result<()> {
    println!(
        "The blog's devstack node is namespace {} with Linux bridge {BRIDGE} (its br-int). \
         Every VM is a real\nqemu VM whose process runs in that namespace, plugged as nova \
         plugs one: a virtio-net NIC on a tap\ndevice per port (`-netdev tap,ifname=<tap>`), \
         and the tap is the bridge port.\n",
        topo.hub()
    );
    println!(
        "  {:<9}  {:<11}  {:<27}  {:<4}  {:<15}  {:<17}  {:<8}  booted in",
        "blog", "VM", "what", "NIC", "address", "MAC", "tap"
    );
    for (who, vm) in topo.vms() {
        for (i, end) in who.ends().into_iter().enumerate() {
            let (addr, len) = end.addr();
            let (blog, name, what, booted) = if i == 0 {
                let booted = vm
                    .booted_in()
                    .map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
                (blog_name(who), vm.name().to_owned(), job(who), booted)
            } else {
                (String::new(), String::new(), "", String::new())
            };
            println!(
                "  {blog:<9}  {name:<11}  {what:<27}  {:<4}  {:<15}  {:<17}  {:<8}  {booted}",
                end.dev(),
                format!("{addr}/{len}"),
                sfc_tests::link::mac_string(end.mac()),
                topo.hub_dev(end),
            );
        }
    }

    let source = topo.vm_for(End::Source).ok_or_else(|| anyhow::anyhow!("source is not a VM"))?;
    let kernel = source.exec("uname -r")?;
    let busybox = source.exec("busybox | head -n 1")?;
    let busybox = busybox.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "\nEach guest: Debian's kernel {} and a busybox initramfs ({busybox}), {} MB, built once \
         into\n{}.",
        kernel.trim(),
        vm::DEFAULT_MEMORY_MB,
        image.dir.display()
    );
    let (what, why) = match accel {
        Accel::Kvm => ("hardware virtualisation", "a probe VM booted with it on this host"),
        Accel::Tcg => (
            "qemu's software emulation",
            "KVM did not boot a probe VM on this host, or there is no /dev/kvm",
        ),
    };
    println!(
        "{} ({what}): {why}\n(the probe's answer is cached; SFC_VM_ACCEL=kvm|tcg overrides it).",
        accel.name().to_uppercase()
    );
    println!(
        "All {} booted at once on {cpus} CPUs, in {took:.1} s; a VM's time runs from qemu's start \
         to its init\nprinting SFCVM-READY on the console, once it has configured the guest.",
        topo.vms().count()
    );

    if let Some(sf1) = topo.vm(SFS[0]) {
        println!(
            "\nHow {} was started (qemu's command line, from /proc/{}/cmdline):\n",
            sf1.name(),
            sf1.pid()
        );
        for line in qemu_command_line(sf1) {
            println!("    {line}");
        }
        println!(
            "\nIts init (the initramfs's /init, a shell script) reads the sfcvm.* parameters: NICs \
             named by MAC,\nsysctls, addresses, static neighbours, routes, and for dest the web \
             server. The host runs\ncommands in a guest (counters, wget) through a root shell on \
             its second serial port."
        );
    }
    println!(
        "\nService VMs are plain routers (ip_forward=1): what comes in on `in` leaves by `out`.\n\
         Neighbours are static and IPv6 is off, so an SF's NIC counts only chain traffic. sfc \
         cannot read\na MAC behind a tap: the chain file names each service VM's MACs."
    );
    Ok(())
}

/// `vm`'s qemu command line, one option group a line, the kernel parameters wrapped.
fn qemu_command_line(vm: &Vm) -> Vec<String> {
    let Ok(raw) = std::fs::read(format!("/proc/{}/cmdline", vm.pid())) else {
        return vec!["(gone)".to_owned()];
    };
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut lines: Vec<String> = vec![String::new()];
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        if LINE_OPTIONS.contains(&arg.as_str()) {
            lines.push(format!("    {arg}"));
        } else {
            let line = lines.last_mut().expect("one line at least");
            if !line.trim().is_empty() {
                line.push(' ');
            }
            line.push_str(arg);
        }
        if arg == "-append"
            && let Some(params) = args.next()
        {
            wrap_params(&mut lines, params);
        }
    }
    lines
}

/// Appends the kernel parameters `params`, quoted, wrapped at [`WIDTH`].
fn wrap_params(lines: &mut Vec<String>, params: &str) {
    let words: Vec<&str> = params.split(' ').collect();
    let last = words.len().saturating_sub(1);
    for (i, word) in words.iter().enumerate() {
        let quoted = match (i == 0, i == last) {
            (true, true) => format!("\"{word}\""),
            (true, false) => format!("\"{word}"),
            (false, true) => format!("{word}\""),
            (false, false) => (*word).to_owned(),
        };
        let line = lines.last_mut().expect("the -append line");
        if line.len() + 1 + quoted.len() > WIDTH && i > 0 {
            lines.push(format!("        {quoted}"));
        } else {
            line.push(' ');
            line.push_str(&quoted);
        }
    }
}

/// `--keep`: what goes on running, and where its files are.
pub(super) fn print_kept(topo: &Topology) {
    println!("The VMs go on running (their files are kept in the directories shown):\n");
    for (_, vm) in topo.vms() {
        println!("    {:<11}  qemu pid {:<7}  {}", vm.name(), vm.pid(), vm.dir().display());
    }
    println!();
}

/// `--keep`: command lines to look around the VMs, each with what it shows.
pub(super) fn look_around(topo: &Topology) -> Vec<(String, String)> {
    let hub = topo.hub();
    let mut lines = Vec::new();
    if let Some(source) = topo.vm_for(End::Source) {
        lines.push((
            format!("socat - UNIX-CONNECT:{}", source.dir().join("shell.sock").display()),
            format!(
                "source's root shell (no prompt; `apt-get install socat`): type \
                 `wget -qO- http://{DEST_IP}/`"
            ),
        ));
    }
    lines.push((
        format!("ip netns exec {hub} tcpdump -ni {} port {HTTP_PORT}", topo.hub_dev(End::SfOut(3))),
        "the blog's tcpdump, on sf3's outgoing tap".to_owned(),
    ));
    lines.push((
        format!("ip -n {hub} -s link show {}", topo.hub_dev(End::SfIn(1))),
        "sf1's ingress tap: what the host sent into the VM".to_owned(),
    ));
    if let Some(sf1) = topo.vm(1) {
        lines.push((
            format!("cat {}", sf1.dir().join("console.log").display()),
            "sf1's console: the kernel's boot and its init".to_owned(),
        ));
    }
    lines
}
