//! Service functions as real qemu VMs on tap devices (issue 13), like the networking-sfc blog's
//! (`CirrOS` there): a VM on its own (booting, its command shell, its web server and `wget`, its
//! taps gone with it), VMs that never boot (an error naming the console's last lines, nothing
//! left behind; a kernel that prints nothing ends early when asked, as the KVM probe asks), and
//! chains steered through a service VM (one way, and symmetric: replies back through it), proven
//! by the VM's own interface counters (read inside it) agreeing with sfc's.
//!
//! Needs qemu-system-x86 and busybox-static (`cargo xtask setup`), and builds the VM image on
//! first use (`sfc_tests::vm::VmImage`). A VM that cannot be made fails the test: it never
//! skips. Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use sfc_tests::{
    Sfc, TopologyConfig,
    bulk::{TcpSink, tcp_bulk},
    chain::FlowClassifier,
    http::http_get_in,
    netns::{self, NetNsGroup, ip_in},
    pid_name,
    scenario::Fixture,
    stream::{STREAM_PORT, SeqStream, StreamSpec},
    topology::{DEST_IP, End},
    traffic::{TcpServer, WELCOME, tcp_requests},
    vm::{KERNEL_FIRST, Vm, VmSpec, stop_in_netns},
};

const HOST_NS: &str = "sfcvmh";
const VM_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x13, 0x00, 0x02];
const HOST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VM_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const BULK_PORT: u16 = 5001;
/// Through a VM under TCG: enough segments to matter, done in seconds.
const BULK_BYTES: u64 = 2 << 20;
/// A stream datagram on the wire: 64 bytes of payload, UDP, IPv4 and Ethernet headers.
const DATAGRAM_FRAME: u64 = 64 + 8 + 20 + 14;

/// A namespace of this process for a VM's host side, swept if a killed run left one.
fn host_namespace() -> (NetNsGroup, String) {
    netns::sweep_stale(HOST_NS);
    let host = pid_name::unique(HOST_NS);
    let mut group = NetNsGroup::default();
    group.create(&host).unwrap_or_else(|e| panic!("{e:#}"));
    (group, host)
}

/// Whether a process with `pid` exists (and is not a zombie of ours: a reaped one is gone).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// qemu processes whose command line names `name` (`-name NAME`).
fn qemus_named(name: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let cmdline = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        (args.first()?.contains("qemu-system") && args.windows(2).any(|w| w[0] == "-name" && w[1] == name)).then(|| args.join(" "))
    })
    .collect()
}

#[test]
fn a_vm_boots_answers_commands_and_its_taps_go_with_it() {
    let (_group, host) = host_namespace();
    let name = pid_name::unique("sfcvm");
    let spec = VmSpec::new(&name)
        .in_netns(&host)
        .nic("vmtap0", VM_MAC, "eth0")
        .addr("eth0", VM_IP.into(), 24)
        .neighbour("eth0", HOST_IP, [0x02, 0x5f, 0xc0, 0x01, 0x00, 0x02])
        .http(80, WELCOME);
    let vm = Vm::boot(spec).unwrap_or_else(|e| panic!("{e:#}"));
    let booted = vm.booted_in().expect("booted");
    eprintln!("VM {name} booted in {booted:.1?} ({})", vm.accel());
    // What the KVM probe waits for (`VmSpec::kernel_timeout`) is on a guest's console.
    assert!(vm.console().contains(KERNEL_FIRST), "no {KERNEL_FIRST:?} on the console:\n{}", vm.console_tail(20));

    // The tap is qemu's, in the host namespace only.
    assert!(ip_in(&host, &["link", "show", "dev", "vmtap0"]).is_ok(), "no vmtap0 in {host}");
    assert!(netns::ip(&["link", "show", "dev", "vmtap0"]).is_err(), "vmtap0 in the root namespace");

    // The command shell: output, exit status, quoting.
    let release = vm.exec("uname -r").unwrap_or_else(|e| panic!("{e:#}"));
    assert!(release.trim().ends_with("-amd64"), "{release:?}");
    assert_eq!(vm.exec("echo 'it'\\''s' \"$((6 * 7))\"").unwrap_or_else(|e| panic!("{e:#}")), "it's 42\n");
    let (status, out) = vm.exec_status("echo before; exit 3", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((status, out.as_str()), (3, "before\n"));
    let err = vm.exec("cat /nonexistent").expect_err("a failing command is an error");
    assert!(format!("{err:#}").contains("No such file"), "{err:#}");

    // Its web server answers the host, and its wget fetches from the host's.
    ip_in(&host, &["addr", "add", &format!("{HOST_IP}/24"), "dev", "vmtap0"]).unwrap_or_else(|e| panic!("{e:#}"));
    ip_in(&host, &["link", "set", "vmtap0", "address", "02:5f:c0:01:00:02", "up"]).unwrap_or_else(|e| panic!("{e:#}"));
    let reply = http_get_in(&host, SocketAddr::new(VM_IP.into(), 80), "/").unwrap_or_else(|e| panic!("{e:#}\n{}", vm.console_tail(20)));
    assert_eq!((reply.status, reply.body.as_str()), (200, WELCOME), "{reply:?}");
    let server = TcpServer::start(&host, SocketAddr::new(HOST_IP.into(), 8080)).unwrap_or_else(|e| panic!("{e:#}"));
    let got = vm.exec(&format!("wget -qO- http://{HOST_IP}:8080/")).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(got, WELCOME);
    assert_eq!(server.served(), 1);
    let counters = vm.link_stats().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(counters["eth0"].rx_packets >= 4 && counters["eth0"].tx_packets >= 4, "{counters:?}");

    let pid = vm.pid();
    vm.stop().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!process_exists(pid), "qemu (pid {pid}) outlived its VM");
    assert!(ip_in(&host, &["link", "show", "dev", "vmtap0"]).is_err(), "the tap outlived its VM");
}

/// `cargo xtask demo --keep`'s VMs: a kept VM outlives its `Vm` (qemu, its tap, its files in the
/// directory given), and is found again by its namespace and stopped, its tap with it.
#[test]
fn a_kept_vm_runs_on_until_stopped_by_its_namespace() {
    let (_group, host) = host_namespace();
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let name = pid_name::unique("sfcvmkeep");
    let spec = VmSpec::new(&name).in_netns(&host).nic("vmtap0", VM_MAC, "eth0").keepable(files.path());
    let vm = Vm::boot(spec).unwrap_or_else(|e| panic!("{e:#}"));
    let dir = vm.dir();
    assert!(dir.starts_with(files.path()), "{} is not under {}", dir.display(), files.path().display());
    let pid = vm.keep().unwrap_or_else(|e| panic!("{e:#}"));

    assert_eq!(qemus_named(&name).len(), 1, "the kept VM (pid {pid}) is not running");
    assert!(ip_in(&host, &["link", "show", "dev", "vmtap0"]).is_ok(), "the kept VM's tap is gone");
    assert!(dir.join("console.log").is_file(), "the kept VM's console went");

    assert_eq!(stop_in_netns(&host).unwrap_or_else(|e| panic!("{e:#}")), std::slice::from_ref(&name));
    assert_eq!(qemus_named(&name), Vec::<String>::new(), "qemu left running");
    assert!(ip_in(&host, &["link", "show", "dev", "vmtap0"]).is_err(), "the tap outlived the VM");
    assert_eq!(stop_in_netns(&host).unwrap_or_else(|e| panic!("{e:#}")), Vec::<String>::new());

    // Only a keepable VM can be kept: any other dies with the thread that started it.
    let plain = Vm::boot(VmSpec::new(&pid_name::unique("sfcvm")).in_netns(&host)).unwrap_or_else(|e| panic!("{e:#}"));
    let err = plain.keep().expect_err("a VM not started keepable cannot be kept");
    assert!(format!("{err:#}").contains("not started keepable"), "{err:#}");
}

/// Boots `spec` expecting a failure; checks it names the console's last lines (`console`) and
/// that neither qemu nor the tap is left.
fn assert_fails_to_boot(host: &str, spec: VmSpec, what: &str, console: &str) {
    let name = spec.name.clone();
    let err = match Vm::boot(spec) {
        Ok(_) => panic!("VM {name} booted"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("{err}");
    assert!(err.contains(what), "the error says what went wrong ({what:?}): {err}");
    let shown = err.split_once("--- console, last 20 lines:").map_or("", |(_, c)| c);
    assert!(shown.contains(console), "the error shows the console ({console:?}): {err}");
    assert_eq!(qemus_named(&name), Vec::<String>::new(), "qemu left running");
    assert!(ip_in(host, &["link", "show", "dev", "vmtap0"]).is_err(), "the tap outlived the VM");
}

#[test]
fn a_vm_that_never_boots_is_an_error_naming_its_console_and_leaves_nothing() {
    let (_group, host) = host_namespace();
    let spec = |what: &str| VmSpec::new(&pid_name::unique(&format!("sfcvm{what}"))).in_netns(&host).nic("vmtap0", VM_MAC, "eth0");
    // No init: the kernel panics, reboots, and qemu (-no-reboot) exits.
    assert_fails_to_boot(&host, spec("exit").append("rdinit=/nonexistent"), "qemu exited", "Kernel panic");
    // The same, but the panic waits forever (panic=0): the boot timeout ends it.
    let hangs = spec("hang").append("rdinit=/nonexistent").append("panic=0").boot_timeout(Duration::from_secs(20));
    assert_fails_to_boot(&host, hangs, "no SFCVM-READY within 20s", "Kernel panic");
    // A kernel that prints nothing (`quiet` leaves its first line out, and an init that only
    // reads the console says nothing either), as where KVM hangs: the probe's early end, long
    // before the boot timeout; the firmware's lines are there.
    let silent = spec("quiet").append("quiet").append("rdinit=/bin/cat").kernel_timeout(Duration::from_secs(3));
    assert_fails_to_boot(&host, silent, "no kernel line (Linux version) on the console within 3s", "Booting from ROM");
    // Our init refuses what it does not know.
    assert_fails_to_boot(&host, spec("fail").append("sfcvm.bogus=1"), "init gave up", "SFCVM-FAIL: unknown parameter sfcvm.bogus=1");
}

sfc_tests::in_both_modes!(a_chain_steers_through_a_service_vm);

/// SF 1 is a VM on two hub taps; source and dest are namespaces. A UDP sequence stream and a
/// TCP transfer (every byte checked) take the chain through it: the VM's own counters of `in`
/// and `out`, read inside the VM, agree with sfc's hop counter, and nothing is dropped.
fn a_chain_steers_through_a_service_vm(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1]).vms(&[1]));
    let topo = &fx.topo;
    let vm = topo.vm(1).expect("sf1 is a VM");
    eprintln!("{} booted in {:.1?} ({})", vm.name(), vm.booted_in().unwrap_or_default(), vm.accel());
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let mut file = topo.one_group_per_sf("udp", STREAM_PORT);
    file.flow_classifiers.push(FlowClassifier::to_port("bulk", "tcp", BULK_PORT, &topo.hub_dev(End::Source)));
    file.port_chains[0].flow_classifiers.push("bulk".to_owned());
    assert_eq!(file.port_pairs[0].ingress_mac, Some(End::SfIn(1).mac()), "a VM's MACs are given to sfc");
    sfc.apply(&fx.write("vm.yaml", &file));

    let spec = StreamSpec { rate: 200, sports: vec![40_001, 40_002], limit: Duration::from_secs(2) };
    let (report, w) = fx.window(&sfc, "a UDP stream through sf1 (a VM)", || {
        let stream = SeqStream::start(&topo.source(), &topo.dest(), spec).unwrap_or_else(|e| panic!("{e:#}"));
        std::thread::sleep(Duration::from_secs(2));
        stream.finish().unwrap_or_else(|e| panic!("{e:#}"))
    });
    let sent = report.sent();
    assert!(sent >= 300 && report.lost() == 0, "{report}: {}", w.report());
    let (sf_in, sf_out) = (w.link(End::SfIn(1)), w.link(End::SfOut(1)));
    assert_eq!((sf_in.rx_packets, sf_in.rx_bytes), (sent, sent * DATAGRAM_FRAME), "sf1 in: {}", w.report());
    assert_eq!((sf_out.tx_packets, sf_out.tx_bytes), (sent, sent * DATAGRAM_FRAME), "sf1 out: {}", w.report());
    assert_eq!(w.packets("pc1", 0, "pp1"), sent, "{}", w.report());
    assert_eq!(w.link(End::Dest).rx_packets, sent, "{}", w.report());
    w.assert_no_drops();

    let sink = TcpSink::start(&topo.dest(), SocketAddr::new(IpAddr::V4(DEST_IP), BULK_PORT)).unwrap_or_else(|e| panic!("{e:#}"));
    let (took, w) = fx.window(&sfc, "TCP through sf1 (a VM)", || {
        tcp_bulk(&topo.source(), SocketAddr::new(IpAddr::V4(DEST_IP), BULK_PORT), BULK_BYTES).unwrap_or_else(|e| panic!("{e:#}"))
    });
    let got = sink.last().unwrap_or_else(|| panic!("the sink saw no connection: {}", w.report()));
    assert_eq!((got.received, got.intact), (BULK_BYTES, true), "{}", w.report());
    eprintln!("{BULK_BYTES} bytes of TCP through a VM in {mode} mode: {took:.2?}");
    let (sf_in, sf_out, dest) = (w.link(End::SfIn(1)), w.link(End::SfOut(1)), w.link(End::Dest));
    assert!(sf_in.rx_bytes > BULK_BYTES, "sf1 saw the transfer: {}", w.report());
    assert_eq!(w.packets("pc1", 0, "pp1"), sf_in.rx_packets, "sfc's count vs sf1's own: {}", w.report());
    // What dest got all came out of the VM (the guest's GRO may merge segments on the way: in
    // XDP mode the source sends MTU-sized ones).
    assert_eq!((sf_out.tx_packets, sf_out.tx_bytes), (dest.rx_packets, dest.rx_bytes), "{}", w.report());
    w.assert_no_drops();
}

/// A symmetric chain through a VM: the guest routes replies for source out of `in` (the route
/// and static neighbour a namespace SF gets, here from its kernel command line), and each
/// direction's packets agree with sfc's forward and reverse counters.
#[test]
fn a_symmetric_chain_brings_replies_back_through_the_vm() {
    const REQUESTS: usize = 10;
    let fx = Fixture::new(TopologyConfig::new(&[1]).vms(&[1]).symmetric_routing());
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let web = SocketAddr::new(IpAddr::V4(DEST_IP), 80);
    let server = TcpServer::start(&topo.dest(), web).unwrap_or_else(|e| panic!("{e:#}"));
    let mut file = topo.one_group_per_sf("tcp", 80);
    file.classifier_mut("web").expect("web").logical_destination_port = Some(topo.hub_dev(End::Dest));
    file.chain_mut("pc1").expect("pc1").symmetric = true;
    sfc.apply(&fx.write("symmetric.yaml", &file));

    let (out, w) = fx.window(&sfc, "TCP to dest:80 through sf1 (a VM), symmetric", || {
        tcp_requests(&topo.source(), web, REQUESTS).unwrap_or_else(|e| panic!("{e:#}"))
    });
    let report = w.report();
    assert_eq!((out.ok, server.served()), (REQUESTS, REQUESTS), "{out:?}: {report}");
    let (source, dest) = (w.link(End::Source), w.link(End::Dest));
    let (sf_in, sf_out) = (w.link(End::SfIn(1)), w.link(End::SfOut(1)));
    assert!(sf_in.rx_packets > 0 && sf_out.rx_packets > 0, "{report}");
    // Forward: source -> in ... out -> dest; reverse: dest -> out ... in -> source.
    assert_eq!([sf_in.rx_packets, sf_out.tx_packets, dest.rx_packets], [source.tx_packets; 3], "forward: {report}");
    assert_eq!([sf_out.rx_packets, sf_in.tx_packets, source.rx_packets], [dest.tx_packets; 3], "reverse: {report}");
    assert_eq!(w.packets("pc1", 0, "pp1"), sf_in.rx_packets, "{report}");
    assert_eq!(w.reverse_packets("pc1", 0, "pp1"), sf_out.rx_packets, "{report}");
    w.assert_no_drops();
}
