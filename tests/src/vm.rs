//! Real virtual machines on tap devices, like the networking-sfc blog's (`CirrOS` there): qemu
//! with Debian's kernel and a busybox initramfs ([`VmImage`]), one virtio-net NIC per tap,
//! plugged as nova/libvirt plug a VM (`-netdev tap,ifname=...`), the guest's network configured
//! from the kernel command line ([`VmSpec`]).
//!
//! qemu runs inside the caller's namespace (the topology's hub), so its taps appear there and
//! nowhere else; they are not persistent and vanish when qemu exits. Two serial ports: `ttyS0`
//! is the console, written to a file, where the guest says `SFCVM-READY` (or `SFCVM-FAIL`);
//! `ttyS1` is a root shell on a unix socket, through which [`Vm::exec`] runs commands and reads
//! their output and exit status (interface counters, `wget`).
//!
//! A [`Vm`] kills its qemu (SIGTERM, then SIGKILL) and waits for it when dropped, and qemu gets
//! SIGKILL if the thread that booted it dies first (`PR_SET_PDEATHSIG`), so a killed test run
//! leaves no VM behind either. A VM started [`VmSpec::keepable`] can be left running on purpose
//! ([`Vm::keep`], `cargo xtask demo --keep`); [`stop_in_netns`] finds and stops it later.

mod accel;
mod cpio;
mod image;
mod kept;
mod spec;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    io::{ErrorKind, Read as _, Write as _},
    os::unix::{net::UnixStream, process::CommandExt as _},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use tempfile::TempDir;

pub use self::{
    accel::{ACCEL_ENV, Accel},
    image::{CACHE_ENV, DEFAULT_CACHE, INIT, VmImage, cache_dir},
    kept::stop_in_netns,
    spec::{DEFAULT_MEMORY_MB, Route, TCG_BOOT_TIMEOUT, VmNic, VmSpec},
};
use crate::{counters::LinkStats, netns, pid_name, process::indent};

pub const QEMU: &str = "qemu-system-x86_64";
/// The kernel's first console line begins `[    0.000000] Linux version` (the firmware's come
/// before it).
pub const KERNEL_FIRST: &str = "Linux version";
/// What the guest's init prints on the console once configured.
pub const READY: &str = "SFCVM-READY";
/// What it prints before giving up.
pub const FAIL: &str = "SFCVM-FAIL";
/// Console lines an error shows.
const CONSOLE_TAIL: usize = 20;
/// qemu opens its taps before the guest runs; this is generous.
const TAP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Vm::exec`] waits for a command.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(20);
/// Scratch directories are `<tmp>/sfcvm-<pid>-<random>` ([`crate::pid_name`]'s form).
const DIR_PREFIX: &str = "sfcvm";

/// A running VM; killed (and waited for) when dropped.
#[derive(Debug)]
pub struct Vm {
    name: String,
    netns: Option<String>,
    taps: Vec<String>,
    accel: Accel,
    boot_timeout: Duration,
    kernel_timeout: Option<Duration>,
    child: Child,
    /// `console.log`, `qemu.log`, `shell.sock`; removed with the VM (or, after a killed run, by
    /// the next one).
    dir: TempDir,
    started: Instant,
    booted_in: Option<Duration>,
    shell: Mutex<Option<Shell>>,
    /// Started [`VmSpec::keepable`]: no death signal, files outside the swept temp directory.
    keepable: bool,
    /// [`Vm::keep`] was called: dropping it leaves qemu and its files alone.
    kept: bool,
}

/// The connection to the guest's command shell.
#[derive(Debug)]
struct Shell {
    stream: UnixStream,
    next: u64,
    /// A command timed out: its output would be taken for the next one's.
    lost: bool,
}

impl Vm {
    /// Starts the VM and waits until its guest is ready ([`Vm::start`], [`Vm::wait_ready`]).
    pub fn boot(spec: VmSpec) -> Result<Vm> {
        let mut vm = Vm::start(spec)?;
        vm.wait_ready()?;
        Ok(vm)
    }

    /// Starts qemu and returns once its taps exist (so that the caller can plug them while the
    /// guest boots); the guest is not up yet.
    pub fn start(spec: VmSpec) -> Result<Vm> {
        let image = VmImage::ensure()?;
        let accel = match spec.accel {
            Some(a) => a,
            None => Accel::detect()?,
        };
        let cmdline = spec.cmdline()?;
        sweep_stale_dirs();
        let dir = match &spec.keepable {
            Some(under) => {
                std::fs::create_dir_all(under).with_context(|| format!("create {}", under.display()))?;
                tempfile::Builder::new().prefix(&format!("vm-{}-", spec.name)).tempdir_in(under)
            }
            None => tempfile::Builder::new().prefix(&format!("{DIR_PREFIX}-{}-", std::process::id())).tempdir(),
        }
        .context("VM scratch directory")?;
        let keepable = spec.keepable.is_some();
        let log = File::create(dir.path().join("qemu.log"))?;
        let mut cmd = match &spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, QEMU]);
                c
            }
            None => Command::new(QEMU),
        };
        let memory = spec.memory_mb.to_string();
        #[rustfmt::skip]
        cmd.args(["-name", &spec.name, "-nodefaults", "-nographic", "-no-reboot", "-m", &memory, "-accel", accel.name()])
            .arg("-kernel").arg(&image.kernel)
            .arg("-initrd").arg(&image.initramfs)
            .args(["-append", &cmdline])
            .arg("-serial").arg(format!("file:{}", dir.path().join("console.log").display()))
            .arg("-chardev").arg(format!("socket,id=shell,path={},server=on,wait=off", dir.path().join("shell.sock").display()))
            .args(["-serial", "chardev:shell"]);
        for (i, nic) in spec.nics.iter().enumerate() {
            let mac = crate::link::mac_string(nic.mac);
            cmd.arg("-netdev").arg(format!("tap,id=net{i},ifname={},script=no,downscript=no", nic.tap));
            cmd.arg("-device").arg(format!("virtio-net-pci,netdev=net{i},mac={mac}"));
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: between fork and exec only prctl, which is async-signal-safe, runs. The death
        // signal survives `ip netns exec`'s exec of qemu (neither is set-user-ID).
        unsafe {
            cmd.pre_exec(move || {
                if !keepable && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("start {QEMU} (`cargo xtask setup` installs it)"))?;
        let mut vm = Vm {
            name: spec.name,
            netns: spec.netns,
            taps: spec.nics.into_iter().map(|n| n.tap).collect(),
            accel,
            boot_timeout: spec.boot_timeout,
            kernel_timeout: spec.kernel_timeout,
            child,
            dir,
            started: Instant::now(),
            booted_in: None,
            shell: Mutex::new(None),
            keepable,
            kept: false,
        };
        vm.wait_for_taps()?;
        Ok(vm)
    }

    fn wait_for_taps(&mut self) -> Result<()> {
        let deadline = Instant::now() + TAP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("qemu exited ({status}) before creating its taps")));
            }
            if self.taps.iter().all(|t| self.tap_exists(t)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                return Err(self.failure(&format!("taps {:?} did not appear within {TAP_TIMEOUT:?}", self.taps)));
            }
            std::thread::sleep(POLL);
        }
    }

    fn tap_exists(&self, tap: &str) -> bool {
        match &self.netns {
            Some(ns) => netns::ip_in(ns, &["link", "show", "dev", tap]).is_ok(),
            None => netns::ip(&["link", "show", "dev", tap]).is_ok(),
        }
    }

    /// Waits for the guest's `SFCVM-READY`, then connects to its command shell. A guest that
    /// gives up (`SFCVM-FAIL`), a qemu that exits, or no word within the boot timeout: qemu is
    /// killed and the error shows the console's last lines.
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = self.started + self.boot_timeout;
        loop {
            let console = self.console();
            if says_ready(&console) {
                break;
            }
            if let Some(line) = console.lines().find(|l| l.starts_with(FAIL)) {
                let _ = self.kill();
                return Err(self.failure(&format!("the guest's init gave up: {line}")));
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("qemu exited ({status}) before {READY}")));
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                return Err(self.failure(&format!("no {READY} within {:?}", self.boot_timeout)));
            }
            if let Some(limit) = self.kernel_timeout
                && self.started.elapsed() > limit
                && !console.contains(KERNEL_FIRST)
            {
                let _ = self.kill();
                return Err(self.failure(&format!("no kernel line ({KERNEL_FIRST}) on the console within {limit:?}")));
            }
            std::thread::sleep(POLL);
        }
        self.booted_in = Some(self.started.elapsed());
        let socket = self.dir.path().join("shell.sock");
        let stream = UnixStream::connect(&socket).with_context(|| format!("VM {}: connect to {}", self.name, socket.display()))?;
        *self.shell.lock().map_err(|_| anyhow!("VM {}: shell lock poisoned", self.name))? =
            Some(Shell { stream, next: 1, lost: false });
        self.exec("true").with_context(|| format!("VM {}: the command shell does not answer", self.name))?;
        Ok(())
    }

    /// Runs `cmd` with `sh -c` in the guest (stdin `/dev/null`, stderr into stdout) and returns
    /// its output; a non-zero exit status is an error showing the output.
    pub fn exec(&self, cmd: &str) -> Result<String> {
        let (status, out) = self.exec_status(cmd, EXEC_TIMEOUT)?;
        if status != 0 {
            bail!("VM {}: `{cmd}` exited with {status}:\n{}", self.name, indent(&out));
        }
        Ok(out)
    }

    /// Runs `cmd` as [`Vm::exec`] does, waiting at most `limit`; returns its exit status and
    /// output whatever the status. After a timeout the shell is out of step: every later
    /// command fails.
    pub fn exec_status(&self, cmd: &str, limit: Duration) -> Result<(i32, String)> {
        let mut guard = self.shell.lock().map_err(|_| anyhow!("VM {}: shell lock poisoned", self.name))?;
        let Some(shell) = guard.as_mut() else {
            bail!("VM {}: not booted (no command shell yet)", self.name);
        };
        if shell.lost {
            bail!("VM {}: the command shell is out of step after an earlier timeout", self.name);
        }
        let n = shell.next;
        shell.next += 1;
        // The marker is quoted in the command line, so that only its output matches.
        let line = format!("sh -c '{}' </dev/null 2>&1; echo SFCVM-EXIT-\"{n}\" $?\n", cmd.replace('\'', r"'\''"));
        let marker = format!("SFCVM-EXIT-{n} ");
        shell.stream.write_all(line.as_bytes()).with_context(|| format!("VM {}: send `{cmd}`", self.name))?;
        let deadline = Instant::now() + limit;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(at) = find(&buf, marker.as_bytes())
                && let Some(nl) = buf[at..].iter().position(|&b| b == b'\n')
            {
                let status = String::from_utf8_lossy(&buf[at + marker.len()..at + nl]);
                let status = status.trim().parse::<i32>().with_context(|| format!("VM {}: exit status {status:?}", self.name))?;
                return Ok((status, String::from_utf8_lossy(&buf[..at]).into_owned()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                shell.lost = true;
                bail!("VM {}: `{cmd}` did not finish within {limit:?}; output so far:\n{}", self.name, indent(&String::from_utf8_lossy(&buf)));
            }
            shell.stream.set_read_timeout(Some(left))?;
            match shell.stream.read(&mut chunk) {
                Ok(0) => bail!("VM {}: the command shell closed (qemu gone?)", self.name),
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e).with_context(|| format!("VM {}: read from the command shell", self.name)),
            }
        }
    }

    /// Packet and byte counters of every interface of the guest but `lo`, by name, read inside
    /// the guest (`/sys/class/net/*/statistics`).
    pub fn link_stats(&self) -> Result<BTreeMap<String, LinkStats>> {
        let out = self.exec(
            "cd /sys/class/net && for d in *; do [ $d = lo ] || echo $d $(cat $d/statistics/rx_packets \
             $d/statistics/rx_bytes $d/statistics/tx_packets $d/statistics/tx_bytes); done",
        )?;
        parse_link_stats(&out).with_context(|| format!("VM {}: interface counters {out:?}", self.name))
    }

    /// Everything the console showed so far.
    pub fn console(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(self.dir.path().join("console.log")) {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// The console's last `n` lines.
    pub fn console_tail(&self, n: usize) -> String {
        let console = self.console();
        let lines: Vec<&str> = console.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// qemu's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The host-side taps, in NIC order.
    pub fn taps(&self) -> &[String] {
        &self.taps
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// From qemu's start to `SFCVM-READY`, once booted.
    pub fn booted_in(&self) -> Option<Duration> {
        self.booted_in
    }

    /// The files behind the VM (console, qemu's output, the shell's socket).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Leaves the VM running when this process ends, with its files (console, shell socket);
    /// returns qemu's pid. Only a VM started [`VmSpec::keepable`]: any other dies with the thread
    /// that started it. [`stop_in_netns`] stops it later.
    pub fn keep(mut self) -> Result<u32> {
        if !self.keepable {
            bail!("VM {}: not started keepable, so qemu dies with the thread that started it", self.name);
        }
        self.kept = true;
        self.dir.disable_cleanup(true);
        Ok(self.pid())
    }

    /// Stops qemu: SIGTERM, SIGKILL after a grace period; waits for it. Its taps go with it.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.kill()
    }

    fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: a signal to our own child, which has not been reaped (try_wait saw it run).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
        self.child.kill().context("SIGKILL qemu")?;
        Ok(self.child.wait()?)
    }

    /// An error about this VM, with the console's last lines (up to init's `SFCVM-FAIL` if it
    /// gave up: the panic that follows says less) and qemu's own output.
    fn failure(&self, what: &str) -> anyhow::Error {
        let console = self.console();
        let lines: Vec<&str> = console.lines().collect();
        let end = lines.iter().position(|l| l.starts_with(FAIL)).map_or(lines.len(), |i| i + 1);
        let tail = lines[end.saturating_sub(CONSOLE_TAIL)..end].join("\n");
        let mut msg = format!("VM {} ({}, qemu pid {}): {what}", self.name, self.accel, self.pid());
        let _ = write!(msg, "\n--- console, last {CONSOLE_TAIL} lines:\n{}", indent(&tail));
        let qemu = std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default();
        if !qemu.trim().is_empty() {
            let _ = write!(msg, "--- qemu:\n{}", indent(&qemu));
        }
        anyhow!(msg)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = self.kill() {
            eprintln!("warning: VM {}: stopping qemu (pid {}): {e:#}", self.name, self.child.id());
        }
    }
}

/// Removes the scratch directories of VMs whose process is gone (killed before its guards ran),
/// once per process.
fn sweep_stale_dirs() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for e in entries.flatten() {
            if pid_name::is_stale(&e.file_name().to_string_lossy(), DIR_PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

/// Whether init's `SFCVM-READY` is on the console: at the start of a line, which the kernel's
/// own messages may continue before init's newline comes (both write to ttyS0), as a CI run saw:
/// `SFCVM-READY[    2.028463] clocksource: Switched to clocksource tsc`.
fn says_ready(console: &str) -> bool {
    console.lines().any(|l| l.starts_with(READY))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Lines `NAME RX_PACKETS RX_BYTES TX_PACKETS TX_BYTES`.
fn parse_link_stats(text: &str) -> Result<BTreeMap<String, LinkStats>> {
    let mut links = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, rx_p, rx_b, tx_p, tx_b] = fields[..] else {
            bail!("not `name rx_packets rx_bytes tx_packets tx_bytes`: {line:?}");
        };
        let num = |s: &str| s.parse::<u64>().with_context(|| format!("{name}: {s:?} is not a counter"));
        links.insert(
            name.to_owned(),
            LinkStats { rx_packets: num(rx_p)?, rx_bytes: num(rx_b)?, tx_packets: num(tx_p)?, tx_bytes: num(tx_b)? },
        );
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_marker_is_found_with_a_kernel_message_after_it_on_its_line() {
        let console = "[    1.667103] Run /init as init process\n\
                       SFCVM-READY[    2.028463] clocksource: Switched to clocksource tsc\n\n";
        assert!(says_ready(console));
        assert!(says_ready("SFCVM-READY\r\n"));
        // The kernel's command line and init's failures are not the marker.
        assert!(!says_ready("[    0.000000] Command line: console=ttyS0 sfcvm.hostname=a\n"));
        assert!(!says_ready("SFCVM-FAIL: insmod virtio_net\n"));
    }

    #[test]
    fn parses_guest_counters() {
        let links = parse_link_stats("in 3 300 0 0\nout 0 0 3 300\n").unwrap();
        assert_eq!(links["in"], LinkStats { rx_packets: 3, rx_bytes: 300, tx_packets: 0, tx_bytes: 0 });
        assert_eq!(links["out"].tx_bytes, 300);
        assert!(parse_link_stats("in 3 300\n").is_err());
    }
}
