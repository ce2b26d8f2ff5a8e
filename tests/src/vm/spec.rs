//! What a VM is: its NICs (each a tap on the host side, plugged as nova/libvirt plug a VM), and
//! the guest's network configuration, which reaches the guest's `/init` (`init.sh`) as `sfcvm.*`
//! kernel parameters. Pure: building the parameters needs no kernel.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Result, bail};

use super::accel::Accel;
use crate::link::mac_string;

/// Boot time limit under TCG, where a busybox VM boots in about 5 s.
pub const TCG_BOOT_TIMEOUT: Duration = Duration::from_mins(1);
/// Memory of a VM unless set: the initramfs and busybox need little.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// x86's `COMMAND_LINE_SIZE` (2048) less the terminating NUL.
const MAX_CMDLINE: usize = 2047;

/// One network card: the tap qemu creates for it on the host (in the VM's namespace), and the
/// guest's MAC and interface name for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNic {
    pub tap: String,
    pub mac: [u8; 6],
    pub name: String,
}

/// `ip route replace PREFIX dev NIC [via VIA]` in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `198.18.0.1/32`, `0.0.0.0/0`, `fd00:5fc::/64`.
    pub prefix: String,
    pub nic: String,
    pub via: Option<IpAddr>,
}

/// How to boot one VM (see [`super::Vm::boot`]).
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// For messages, qemu's `-name` and the guest's hostname.
    pub name: String,
    /// The network namespace qemu runs in (its taps appear there); `None`: the caller's.
    pub netns: Option<String>,
    pub nics: Vec<VmNic>,
    /// Written in the guest as the namespaces' are (`net.ipv4.ip_forward`, `1`).
    pub sysctls: Vec<(String, String)>,
    /// (NIC, address, prefix length).
    pub addrs: Vec<(String, IpAddr, u8)>,
    /// Permanent IPv4 neighbours: (NIC, address, MAC).
    pub neighbours: Vec<(String, Ipv4Addr, [u8; 6])>,
    pub routes: Vec<Route>,
    /// busybox httpd answers this text at `/` on this port.
    pub http: Option<(u16, String)>,
    pub memory_mb: u32,
    /// How long until `SFCVM-READY` before the boot counts as failed.
    pub boot_timeout: Duration,
    /// `Some(limit)`: a guest whose kernel has not printed its first line (`Linux version`) on
    /// the console after this long has failed to boot too, before `boot_timeout` (the KVM
    /// probe: where KVM hangs, the firmware prints and the kernel never does).
    pub kernel_timeout: Option<Duration>,
    /// `None`: KVM where it works, else TCG ([`Accel::detect`]).
    pub accel: Option<Accel>,
    /// Raw kernel parameters after the VM's own (later ones win), e.g. to break a boot on purpose.
    pub append: Vec<String>,
    /// `Some(dir)`: [`super::Vm::keep`] may leave the VM running after this process ends (see
    /// [`VmSpec::keepable`]); its files go into a directory under `dir`.
    pub keepable: Option<PathBuf>,
}

impl VmSpec {
    pub fn new(name: &str) -> VmSpec {
        VmSpec {
            name: name.to_owned(),
            netns: None,
            nics: Vec::new(),
            sysctls: Vec::new(),
            addrs: Vec::new(),
            neighbours: Vec::new(),
            routes: Vec::new(),
            http: None,
            memory_mb: DEFAULT_MEMORY_MB,
            boot_timeout: TCG_BOOT_TIMEOUT,
            kernel_timeout: None,
            accel: None,
            append: Vec::new(),
            keepable: None,
        }
    }

    /// qemu runs in namespace `ns`, where it creates the taps.
    #[must_use]
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_owned());
        self
    }

    /// A NIC with `mac`, called `name` in the guest, behind host tap `tap`.
    #[must_use]
    pub fn nic(mut self, tap: &str, mac: [u8; 6], name: &str) -> Self {
        self.nics.push(VmNic { tap: tap.to_owned(), mac, name: name.to_owned() });
        self
    }

    #[must_use]
    pub fn sysctls<K: AsRef<str>, V: AsRef<str>>(mut self, settings: &[(K, V)]) -> Self {
        self.sysctls.extend(settings.iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())));
        self
    }

    #[must_use]
    pub fn addr(mut self, nic: &str, addr: IpAddr, len: u8) -> Self {
        self.addrs.push((nic.to_owned(), addr, len));
        self
    }

    #[must_use]
    pub fn neighbour(mut self, nic: &str, addr: Ipv4Addr, mac: [u8; 6]) -> Self {
        self.neighbours.push((nic.to_owned(), addr, mac));
        self
    }

    #[must_use]
    pub fn route(mut self, prefix: &str, nic: &str, via: Option<IpAddr>) -> Self {
        self.routes.push(Route { prefix: prefix.to_owned(), nic: nic.to_owned(), via });
        self
    }

    /// busybox httpd on `port` answering `text` (e.g. the blog's "Welcome to dest-vm").
    #[must_use]
    pub fn http(mut self, port: u16, text: &str) -> Self {
        self.http = Some((port, text.to_owned()));
        self
    }

    #[must_use]
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    #[must_use]
    pub fn boot_timeout(mut self, limit: Duration) -> Self {
        self.boot_timeout = limit;
        self
    }

    /// Gives up on a guest whose kernel has printed nothing after `limit`.
    #[must_use]
    pub fn kernel_timeout(mut self, limit: Duration) -> Self {
        self.kernel_timeout = Some(limit);
        self
    }

    #[must_use]
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = Some(accel);
        self
    }

    /// A VM that [`super::Vm::keep`] can leave running after this process ends (`cargo xtask
    /// demo --keep`): qemu does not get the death signal that otherwise ends it with the thread
    /// that started it, and its files (console, shell socket) go into a fresh directory under
    /// `files_under`, not into the temporary directory whose leftovers the next run sweeps.
    /// Until kept it is stopped when dropped, as any VM; a process killed before that leaves it
    /// running, to be found by its namespace ([`super::stop_in_netns`]).
    #[must_use]
    pub fn keepable(mut self, files_under: &Path) -> Self {
        self.keepable = Some(files_under.to_owned());
        self
    }

    /// A raw kernel parameter after the VM's own.
    #[must_use]
    pub fn append(mut self, param: &str) -> Self {
        self.append.push(param.to_owned());
        self
    }

    /// The whole kernel command line: the console on the first serial port, a panic ends the VM
    /// (`panic=-1` reboots, qemu's `-no-reboot` exits), then the `sfcvm.*` parameters, then
    /// [`VmSpec::append`].
    pub fn cmdline(&self) -> Result<String> {
        let mut params = vec!["console=ttyS0".to_owned(), "panic=-1".to_owned()];
        params.extend(self.guest_params()?);
        params.extend(self.append.iter().cloned());
        let line = params.join(" ");
        if line.len() > MAX_CMDLINE {
            bail!("VM {}: kernel command line of {} bytes, the limit is {MAX_CMDLINE}: {line}", self.name, line.len());
        }
        Ok(line)
    }

    /// The `sfcvm.*` parameters `init.sh` reads.
    fn guest_params(&self) -> Result<Vec<String>> {
        let mut p = vec![param("hostname", &[&self.name])?];
        for nic in &self.nics {
            p.push(param("nic", &[&mac_string(nic.mac), &nic.name])?);
        }
        for (k, v) in &self.sysctls {
            p.push(param("sysctl", &[&format!("{k}={v}")])?);
        }
        for (nic, addr, len) in &self.addrs {
            p.push(param("addr", &[nic, &format!("{addr}/{len}")])?);
        }
        for (nic, addr, mac) in &self.neighbours {
            p.push(param("neigh", &[nic, &addr.to_string(), &mac_string(*mac)])?);
        }
        for r in &self.routes {
            let via = r.via.map(|v| v.to_string());
            let mut fields = vec![r.prefix.as_str(), r.nic.as_str()];
            fields.extend(via.as_deref());
            p.push(param("route", &fields)?);
        }
        if let Some((port, text)) = &self.http {
            p.push(format!("sfcvm.http={port},{}", percent_encode(text)));
        }
        Ok(p)
    }
}

/// `sfcvm.KEY=F1,F2,...`; a field must not hold what would split it (blanks, commas, quotes).
fn param(key: &str, fields: &[&str]) -> Result<String> {
    for f in fields {
        if f.is_empty() || f.chars().any(|c| c.is_whitespace() || c == ',' || c == '"' || c.is_control()) {
            bail!("sfcvm.{key}: {f:?} cannot be a field of a kernel parameter (empty, or a blank, comma or quote)");
        }
    }
    Ok(format!("sfcvm.{key}={}", fields.join(",")))
}

/// Every byte but `[A-Za-z0-9._~-]` as `%XX`: a kernel parameter without blanks, which busybox
/// `httpd -d` decodes.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._~-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_function_becomes_sfcvm_parameters() {
        let spec = VmSpec::new("sf1")
            .nic("t1-s1i", [2, 0x5f, 0xc0, 0x11, 0, 1], "in")
            .sysctls(&[("net.ipv4.ip_forward", "1")])
            .addr("in", "198.18.0.11".parse().unwrap(), 32)
            .neighbour("out", Ipv4Addr::new(198, 18, 0, 2), [2, 0x5f, 0xc0, 2, 0, 1])
            .route("198.18.0.1/32", "in", None)
            .route("0.0.0.0/0", "out", Some("198.18.0.2".parse().unwrap()))
            .http(8080, "Welcome to dest-vm\n")
            .append("quiet");
        assert_eq!(
            spec.cmdline().unwrap(),
            "console=ttyS0 panic=-1 sfcvm.hostname=sf1 sfcvm.nic=02:5f:c0:11:00:01,in \
             sfcvm.sysctl=net.ipv4.ip_forward=1 sfcvm.addr=in,198.18.0.11/32 \
             sfcvm.neigh=out,198.18.0.2,02:5f:c0:02:00:01 sfcvm.route=198.18.0.1/32,in \
             sfcvm.route=0.0.0.0/0,out,198.18.0.2 sfcvm.http=8080,Welcome%20to%20dest-vm%0A quiet"
        );
    }

    #[test]
    fn a_field_that_would_split_is_refused() {
        let err = VmSpec::new("sf1").nic("t", [2, 0, 0, 0, 0, 1], "my nic").cmdline().unwrap_err();
        assert!(format!("{err}").contains("sfcvm.nic: \"my nic\""), "{err}");
        let err = VmSpec::new("a,b").cmdline().unwrap_err();
        assert!(format!("{err}").contains("sfcvm.hostname"), "{err}");
    }

    #[test]
    fn too_long_a_command_line_is_refused() {
        let mut spec = VmSpec::new("big");
        for i in 0..100 {
            spec = spec.sysctls(&[(format!("net.ipv4.conf.nic{i}.rp_filter"), "0")]);
        }
        assert!(format!("{:#}", spec.cmdline().unwrap_err()).contains("limit is 2047"));
    }
}
