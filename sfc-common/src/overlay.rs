//! Multi-host: what the datapath needs to send a chain's packet to a member or destination on
//! another host, and to take one in. Re-exported by `maps`.
//!
//! The overlay is the kernel's VXLAN in external (`collect_md`) mode, one device per host. A
//! hop to an interface on another host is an ordinary hop whose target ifindex is a stand-in
//! (`REMOTE_IFINDEX_BASE` and up): the tc program addresses the frame to the MAC behind that
//! interface as for a local one, sets the tunnel key (the remote host's VTEP, VNI =
//! `chain_id << 8 | SI`, what networking-sfc's MPLS label packs) and redirects it into the
//! overlay device. The receiving host's `sfc_tc_overlay` hands the frame to the local interface
//! whose MAC it is addressed to (`SFC_OVL_PORTS`); from there the chain goes on as on one host:
//! the service function's egress finds (or recomputes) the flow's path.
#![expect(clippy::pub_underscore_fields, reason = "explicit repr(C) padding, see STYLE.md")]

/// stand-in ifindex -> where that interface is (`RemoteEntry`).
pub const MAP_REMOTES: &str = "SFC_REMOTES";
/// MAC (padded to 8 bytes) -> the local interface a frame from the overlay goes to.
pub const MAP_OVL_PORTS: &str = "SFC_OVL_PORTS";
/// The program on the overlay device's tc ingress.
pub const PROG_TC_OVERLAY: &str = "sfc_tc_overlay";

/// `RemoteEntry::family`.
pub const VTEP_V4: u8 = 4;
pub const VTEP_V6: u8 = 6;

/// `SFC_REMOTES`: a stand-in ifindex -> the host it lives on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The remote host's VTEP address: IPv4 in the first 4 bytes (network order), or IPv6.
    pub vtep: [u8; 16],
    /// `VTEP_V4` or `VTEP_V6`.
    pub family: u8,
    pub _pad: [u8; 3],
    /// The local overlay (VXLAN, external) device the frame is sent out of.
    pub overlay_ifindex: u32,
}
const _: () = assert!(size_of::<RemoteEntry>() == 24);

/// `SFC_OVL_PORTS` key: a MAC address, padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct OvlMac {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<OvlMac>() == 8);

/// `SFC_OVL_PORTS` value: the local interface behind which that MAC lives.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OvlPort {
    pub ifindex: u32,
    /// `OVL_F_PEER`: a veth whose peer is in another namespace (`bpf_redirect_peer`).
    pub flags: u32,
}
const _: () = assert!(size_of::<OvlPort>() == 8);

pub const OVL_F_PEER: u32 = 1;

/// The VNI of a frame of chain `chain_id` at service index `si` (0: after the last hop, on its
/// way to the destination).
#[expect(clippy::inline_always, reason = "used per packet in the BPF program")]
#[inline(always)]
pub const fn vni(chain_id: u32, si: u32) -> u32 {
    ((chain_id & 0xffff) << 8) | (si & 0xff)
}

#[cfg(feature = "user")]
mod pod {
    use super::{OvlMac, OvlPort, RemoteEntry};
    // SAFETY: #[repr(C)], only integers and byte arrays, no implicit padding (asserted above).
    unsafe impl aya::Pod for RemoteEntry {}
    unsafe impl aya::Pod for OvlMac {}
    unsafe impl aya::Pod for OvlPort {}
}
