//! `cargo xtask demo --keep` and `--down`: leaving the demo up to look around, and finding and
//! removing what a kept (or killed) demo left.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use sfc_tests::{
    Sfc, Topology, netns,
    blog::HTTP_PORT,
    topology::DEST_IP,
    traffic::{spawn_detached_tcp_server, stop_detached_server},
};

use super::{
    DEMO_ID, Guests, KEPT_SERVER_LIFETIME, SERVER_PID_FILE, WORK_DIR, command, section, vms,
};

/// `--keep`: directions for looking around, and for namespaces a web server process for dest
/// (this process's server thread ends with it). VMs go on running by themselves once
/// [`Topology::keep`] has kept them.
pub(super) fn keep_running(
    topo: &Topology,
    sfc: &Sfc<'_>,
    chain_path: &Path,
    guests: Guests,
) -> Result<()> {
    match guests {
        Guests::Namespaces => keep_namespaces_running(topo, sfc, chain_path),
        Guests::Vms => {
            section("The demo stays up (--keep)");
            vms::print_kept(topo);
            println!("Look around:");
            let mut lines = vms::look_around(topo);
            lines.extend(sfc_lines(sfc, chain_path));
            print_look_around(&lines);
            Ok(())
        }
    }
}

fn keep_namespaces_running(topo: &Topology, sfc: &Sfc<'_>, chain_path: &Path) -> Result<()> {
    // Only the main thread runs now (the server thread was joined), so forking is sound.
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let pid = spawn_detached_tcp_server(&topo.dest(), dest, KEPT_SERVER_LIFETIME)?;
    let pid_file = Path::new(WORK_DIR).join(SERVER_PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
        // Without its pid file `--down` could not find it: don't leave it running.
        stop_detached_server(pid);
        return Err(e).with_context(|| format!("write {}", pid_file.display()));
    }

    section("The demo stays up (--keep)");
    println!(
        "dest's web server is now process {pid} (it stops by itself after {} minutes).\n",
        KEPT_SERVER_LIFETIME.as_secs() / 60
    );
    println!("Look around:");
    let sf3 = topo.sf(3);
    let mut lines = vec![
        (
            format!("ip netns exec {} curl -s http://{DEST_IP}/", topo.source()),
            "a request from source".to_owned(),
        ),
        (
            format!("ip netns exec {sf3} tcpdump -ni out port {HTTP_PORT}"),
            "the blog's tcpdump, on sf3's outgoing interface".to_owned(),
        ),
        (
            format!("ip -n {} -s link show in", topo.sf(1)),
            "sf1's own counters".to_owned(),
        ),
    ];
    lines.extend(sfc_lines(sfc, chain_path));
    print_look_around(&lines);
    Ok(())
}

/// The look-around lines about sfc itself: its counters, and applying an edited chain file.
fn sfc_lines(sfc: &Sfc<'_>, chain_path: &Path) -> [(String, String); 2] {
    [
        (sfc.command_line(&["stats"]), "sfc's counters".to_owned()),
        (
            sfc.command_line(&["apply", "-f", &chain_path.to_string_lossy()]),
            "after editing the chain file".to_owned(),
        ),
    ]
}

/// Command lines, each with what it shows, and how to remove it all.
fn print_look_around(lines: &[(String, String)]) {
    for (line, what) in lines {
        println!("    {line}\n        # {what}");
    }
    println!("\nRemove it all:\n    cargo xtask demo --down");
}

pub(super) fn leftover_exists() -> bool {
    !netns::list(&format!("sfc-{DEMO_ID}-")).is_empty()
        || Path::new(sfc_tests::sfc::PIN_ROOT)
            .join(format!("sfc-{DEMO_ID}-hub"))
            .exists()
        || Path::new(WORK_DIR).exists()
}

/// Removes a kept demo: datapath, web server process, VMs, namespaces, files.
pub(super) fn tear_down(sfc_bin: &Path) -> Result<()> {
    let hub = format!("sfc-{DEMO_ID}-hub");
    let sfc = Sfc::for_netns(sfc_bin, &hub);
    let mut removed = Vec::new();
    if sfc.pin_dir().exists() {
        command(&sfc.command_line(&["down"]));
        if let Err(e) = sfc.try_run(&["down"]) {
            println!("warning: {e:#}");
        }
        if sfc.pin_dir().exists() {
            std::fs::remove_dir_all(sfc.pin_dir())
                .with_context(|| format!("remove {}", sfc.pin_dir().display()))?;
        }
        removed.push(format!(
            "the datapath (pins in {})",
            sfc.pin_dir().display()
        ));
    }
    if let Some(pid) = stop_kept_server()? {
        removed.push(format!("dest's web server (process {pid})"));
    }
    let gone = Topology::remove_by_id(DEMO_ID)?;
    if !gone.vms.is_empty() {
        removed.push(format!("the VMs {}", gone.vms.join(" ")));
    }
    if !gone.namespaces.is_empty() {
        removed.push(format!("the namespaces {}", gone.namespaces.join(" ")));
    }
    if Path::new(WORK_DIR).exists() {
        std::fs::remove_dir_all(WORK_DIR).with_context(|| format!("remove {WORK_DIR}"))?;
        removed.push(WORK_DIR.to_owned());
    }
    if removed.is_empty() {
        println!("No kept demo found: nothing to remove.");
    } else {
        println!("Removed {}.", removed.join(", "));
    }
    Ok(())
}

/// Stops the web server a kept demo left, if its pid file names a live process that is ours:
/// the same executable as this one, or a process inside the demo's dest namespace.
fn stop_kept_server() -> Result<Option<i32>> {
    let pid_file = Path::new(WORK_DIR).join(SERVER_PID_FILE);
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(None);
    };
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid: {text:?}", pid_file.display()))?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let same_exe = std::fs::read_link(proc_dir.join("exe")).ok() == std::env::current_exe().ok();
    let dest_ns = netns::path(&format!("sfc-{DEMO_ID}-dest"));
    let in_dest = match (
        std::fs::metadata(&dest_ns),
        std::fs::metadata(proc_dir.join("ns/net")),
    ) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    if !(same_exe || in_dest) {
        return Ok(None);
    }
    Ok(stop_detached_server(pid).then_some(pid))
}
