//! A private Open vSwitch for one benchmark path: `ovsdb-server` and `ovs-vswitchd` started by
//! the bench in its own run directory (database, sockets, pid files and logs all there), inside
//! the path's hub namespace, with the userspace (netdev) datapath. The system's OVS service,
//! `/etc/openvswitch` and `/var/run/openvswitch` are never touched; the kernel module is not
//! used. Both daemons are this process's children and are stopped when dropped.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sfc_tests::link;

use super::topo::{HOPS, Port};
use crate::cmd;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// The OVS bridge in the hub.
const BRIDGE: &str = "obr";
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Ovs {
    dir: PathBuf,
    /// Both daemons run on this CPU.
    cpu: usize,
    /// Stopped in reverse order: vswitchd, then the database.
    daemons: Vec<(&'static str, Child)>,
}

impl Ovs {
    /// Starts OVS in namespace `hub` on CPU `cpu` with run directory `dir` (created; removed on
    /// drop), adds every hub port to a netdev bridge and installs the chain as one `OpenFlow`
    /// rule per hop.
    pub fn start(hub: &str, dir: &Path, cpu: usize) -> Result<Ovs> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut ovs = Ovs {
            dir: dir.to_owned(),
            cpu,
            daemons: Vec::new(),
        };
        ovs.configure(hub)
            .with_context(|| format!("start Open vSwitch (logs in {})", dir.display()))?;
        Ok(ovs)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn db(&self) -> String {
        format!("--db=unix:{}", self.path("db.sock"))
    }

    /// An OVS command with every default directory pointed at the run directory.
    fn command(&self, program: &str) -> Command {
        let mut c = cmd::command(program);
        for var in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c
    }

    /// `taskset -c <cpu> ip netns exec <hub> <daemon> args...` as a child, output to its log
    /// file only.
    fn spawn(&mut self, hub: &str, daemon: &'static str, args: &[String]) -> Result<()> {
        let mut c = self.command("taskset");
        c.args([
            "-c",
            &self.cpu.to_string(),
            "ip",
            "netns",
            "exec",
            hub,
            daemon,
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd::echo(&c);
        let child = c
            .spawn()
            .with_context(|| format!("could not start {daemon}"))?;
        self.daemons.push((daemon, child));
        Ok(())
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let mut c = self.command(program);
        c.args(args);
        cmd::echo(&c);
        cmd::stdout_of(&mut c).map(drop)
    }

    fn configure(&mut self, hub: &str) -> Result<()> {
        let db_file = self.path("conf.db");
        self.run("ovsdb-tool", &["create", &db_file, SCHEMA])?;
        let dir = self.dir.clone();
        let daemon_args = |name: &str| {
            let file = |ext: &str| {
                dir.join(format!("{name}.{ext}"))
                    .to_string_lossy()
                    .into_owned()
            };
            vec![
                format!("--pidfile={}", file("pid")),
                format!("--unixctl={}", file("ctl")),
                format!("--log-file={}", file("log")),
                "--no-chdir".to_owned(),
            ]
        };
        let mut args = vec![db_file, format!("--remote=punix:{}", self.path("db.sock"))];
        args.extend(daemon_args("ovsdb-server"));
        self.spawn(hub, "ovsdb-server", &args)?;
        self.wait_for("db.sock")?;

        let db = self.db();
        // TSO in userspace: OVS keeps the packets' offload metadata (partial checksums, GSO), as
        // the kernel paths do; without it TCP through OVS fails on veth.
        #[rustfmt::skip]
        self.run("ovs-vsctl", &[
            &db, "--no-wait", "init", "--", "set", "Open_vSwitch", ".",
            "other_config:userspace-tso-enable=true",
        ])?;
        let mut args = vec![format!("unix:{}", self.path("db.sock"))];
        args.extend(daemon_args("ovs-vswitchd"));
        self.spawn(hub, "ovs-vswitchd", &args)?;

        let mut vsctl: Vec<String> = [
            &db,
            "--timeout=10",
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "fail_mode=secure",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        for port in Port::all() {
            vsctl.extend([
                "--".to_owned(),
                "add-port".to_owned(),
                BRIDGE.to_owned(),
                port.hub_dev(),
            ]);
        }
        self.run(
            "ovs-vsctl",
            &vsctl.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        self.wait_for(&format!("{BRIDGE}.mgmt"))?;

        let mgmt = format!("unix:{}", self.path(&format!("{BRIDGE}.mgmt")));
        for flow in flows() {
            self.run("ovs-ofctl", &["add-flow", &mgmt, &flow])?;
        }
        Ok(())
    }

    fn wait_for(&mut self, socket: &str) -> Result<()> {
        let path = self.dir.join(socket);
        let deadline = Instant::now() + START_TIMEOUT;
        while !path.exists() {
            for (name, child) in &mut self.daemons {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{name} exited ({status}); see its log in {}",
                        self.dir.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not appear within {START_TIMEOUT:?}", path.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// The chain, one rule per hop: what arrives from source goes to sf1, what sf<n> sends back goes
/// to sf<n+1>, what sf3 sends back goes to dest; each rule rewrites the destination MAC to the
/// next endpoint's (the service functions address the hub, their gateway). Replies from dest go
/// straight to source.
fn flows() -> Vec<String> {
    let hop = |from: Port, to: Port| {
        format!(
            "in_port={},actions=mod_dl_dst:{},output:{}",
            from.hub_dev(),
            link::mac_string(to.mac()),
            to.hub_dev()
        )
    };
    let mut flows = vec![hop(Port::Source, Port::SfIn(1))];
    for n in 1..HOPS {
        flows.push(hop(Port::SfOut(n), Port::SfIn(n + 1)));
    }
    flows.push(hop(Port::SfOut(HOPS), Port::Dest));
    flows.push(hop(Port::Dest, Port::Source));
    flows
}

impl Drop for Ovs {
    fn drop(&mut self) {
        while let Some((name, mut child)) = self.daemons.pop() {
            // A clean exit first (vswitchd removes its ports), then the signal.
            let ctl = self.path(&format!("{name}.ctl"));
            let _ = self
                .command("ovs-appctl")
                .args(["-t", &ctl, "exit"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
