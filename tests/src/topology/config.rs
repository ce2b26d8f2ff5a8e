//! What a topology is built from: [`TopologyConfig`], a builder of the topology's options.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{End, Topology};

/// What to build.
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Fixed id (e.g. `demo`, so it can be found again); `None`: a fresh random one.
    pub id: Option<String>,
    /// Which service functions exist, e.g. `[1, 3]`; each in 1..=9.
    pub sfs: Vec<u8>,
    /// Dual-stack endpoints (IPv6 as well as IPv4).
    pub ipv6: bool,
    /// SFs send what is addressed to source out of `in` (symmetric chains' replies).
    pub symmetric_routing: bool,
    /// Plug into this existing hub namespace (another topology's) with a bridge of its own
    /// (`br-<id>`), as a second tenant on the same host: same addresses, separate network.
    pub hub: Option<String>,
    /// Ends joined to the hub as a VM's NIC is, by a tap in the hub and a [`TapPump`] (a VM's
    /// virtio backend), instead of a veth pair.
    pub taps: Vec<End>,
    /// Service functions that are qemu VMs on two hub taps instead of namespaces.
    pub vms: Vec<u8>,
    /// `Some(port)`: source and dest are qemu VMs on one hub tap each, and dest's web server
    /// (busybox httpd, answering [`crate::traffic::WELCOME`]) listens on `port`.
    pub vm_endpoints: Option<u16>,
    /// VMs that [`Topology::keep`] can leave running, their files (console, shell socket) in
    /// directories under this one ([`crate::vm::VmSpec::keepable`]).
    pub keepable_vms: Option<PathBuf>,
}

impl TopologyConfig {
    pub fn new(sfs: &[u8]) -> Self {
        TopologyConfig {
            id: None,
            sfs: sfs.to_vec(),
            ipv6: false,
            symmetric_routing: false,
            hub: None,
            taps: Vec::new(),
            vms: Vec::new(),
            vm_endpoints: None,
            keepable_vms: None,
        }
    }

    /// Makes service functions `sfs` qemu VMs (see [`TopologyConfig::vms`]).
    #[must_use]
    pub fn vms(mut self, sfs: &[u8]) -> Self {
        self.vms.extend_from_slice(sfs);
        self
    }

    /// Makes source and dest qemu VMs, dest serving HTTP on `web_port` (see
    /// [`TopologyConfig::vm_endpoints`]).
    #[must_use]
    pub fn vm_endpoints(mut self, web_port: u16) -> Self {
        self.vm_endpoints = Some(web_port);
        self
    }

    /// VMs that can be kept, their files under `dir` (see [`TopologyConfig::keepable_vms`]).
    #[must_use]
    pub fn keepable_vms(mut self, dir: &Path) -> Self {
        self.keepable_vms = Some(dir.to_owned());
        self
    }

    /// Joins `ends` to the hub through taps (see [`TopologyConfig::taps`]).
    #[must_use]
    pub fn taps(mut self, ends: &[End]) -> Self {
        self.taps.extend_from_slice(ends);
        self
    }

    /// Another tenant on `hub` (see [`TopologyConfig::hub`]). The topology that owns `hub` must
    /// outlive this one.
    #[must_use]
    pub fn in_hub(mut self, hub: &str) -> Self {
        self.hub = Some(hub.to_owned());
        self
    }

    /// IPv6 on the endpoints too (see the module doc).
    #[must_use]
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Replies to source leave each SF through `in` (see the module doc).
    #[must_use]
    pub fn symmetric_routing(mut self) -> Self {
        self.symmetric_routing = true;
        self
    }

    #[must_use]
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    pub fn build(self) -> Result<Topology> {
        Topology::build(self)
    }
}
