//! The pieces a test network is built from, each in a named namespace: veth pairs (between two
//! namespaces or inside one), addresses, static neighbours, MTUs, links up; interface indexes;
//! and MAC addresses written as `ip` wants them. Used by the topology, the benchmark's own
//! topology and the tests that adjust either.

use std::{ffi::CString, net::IpAddr};

use anyhow::{Result, bail};

use crate::netns::ip_in;

/// `02:5f:c0:01:00:01`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// One end of a veth pair: its namespace, name and (fixed, or the kernel's random) MAC.
#[derive(Debug, Clone, Copy)]
pub struct Veth<'a> {
    pub ns: &'a str,
    pub dev: &'a str,
    pub mac: Option<[u8; 6]>,
    /// The ifindex to give it (the kernel's next free one when `None`).
    pub index: Option<u32>,
}

impl<'a> Veth<'a> {
    pub fn new(ns: &'a str, dev: &'a str) -> Self {
        Veth { ns, dev, mac: None, index: None }
    }

    #[must_use]
    pub fn mac(self, mac: [u8; 6]) -> Self {
        Veth { mac: Some(mac), ..self }
    }

    #[must_use]
    pub fn index(self, index: u32) -> Self {
        Veth { index: Some(index), ..self }
    }
}

/// Creates the veth pair `a` - `b` (created in `a`'s namespace, `b` moved to its own). Both ends
/// stay down.
pub fn veth(a: Veth<'_>, b: Veth<'_>) -> Result<()> {
    let (a_mac, b_mac) = (a.mac.map(mac_string), b.mac.map(mac_string));
    let (a_index, b_index) = (a.index.map(|i| i.to_string()), b.index.map(|i| i.to_string()));
    let mut args = vec!["link", "add", a.dev];
    if let Some(mac) = &a_mac {
        args.extend(["address", mac]);
    }
    if let Some(i) = &a_index {
        args.extend(["index", i]);
    }
    args.extend(["type", "veth", "peer", "name", b.dev]);
    if let Some(mac) = &b_mac {
        args.extend(["address", mac]);
    }
    if let Some(i) = &b_index {
        args.extend(["index", i]);
    }
    if b.ns != a.ns {
        args.extend(["netns", b.ns]);
    }
    ip_in(a.ns, &args).map(drop)
}

/// `ip link set DEV up` in `ns`.
pub fn up(ns: &str, dev: &str) -> Result<()> {
    ip_in(ns, &["link", "set", dev, "up"]).map(drop)
}

/// `ip link set dev DEV mtu MTU` in `ns`.
pub fn set_mtu(ns: &str, dev: &str, mtu: u32) -> Result<()> {
    ip_in(ns, &["link", "set", "dev", dev, "mtu", &mtu.to_string()]).map(drop)
}

/// Adds `addr/len` to `dev` in `ns`; an IPv6 address without duplicate address detection (the
/// address plans are static: there is nothing to detect, and DAD would delay and add traffic).
pub fn add_addr(ns: &str, dev: &str, addr: IpAddr, len: u8) -> Result<()> {
    let cidr = format!("{addr}/{len}");
    let mut args = vec!["addr", "add", cidr.as_str(), "dev", dev];
    if addr.is_ipv6() {
        args.push("nodad");
    }
    ip_in(ns, &args).map(drop)
}

/// A permanent neighbour entry in `ns`: `addr` is at `mac` behind `dev`, so nobody ARPs (or
/// solicits) for it.
pub fn static_neighbour(ns: &str, dev: &str, addr: IpAddr, mac: [u8; 6]) -> Result<()> {
    let (addr, mac) = (addr.to_string(), mac_string(mac));
    #[rustfmt::skip]
    ip_in(ns, &["neigh", "replace", &addr, "lladdr", &mac, "dev", dev, "nud", "permanent"])?;
    Ok(())
}

/// The index of interface `dev` in the calling thread's namespace.
pub fn ifindex(dev: &str) -> Result<u32> {
    let name = CString::new(dev)?;
    // SAFETY: a valid NUL-terminated string; resolved in the calling thread's namespace.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {dev} in this namespace: {}", std::io::Error::last_os_error());
    }
    Ok(index)
}

