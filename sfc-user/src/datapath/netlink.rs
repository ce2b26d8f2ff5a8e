//! A minimal rtnetlink client: `RTM_GETLINK`, which is all the loader needs to learn an
//! interface's index, kind, MTU, XDP program and veth peer, and the peer's MAC address inside its
//! own namespace (`IFLA_TARGET_NETNSID`, Linux >= 4.20), without entering that namespace; and
//! `RTM_GETNSID`, to tell which namespace file a peer's namespace id stands for.

use std::io;

use rustix::net::{self, netlink::SocketAddrNetlink};

/// `AF_UNSPEC` and `ENODEV`, as the kernel writes them into netlink messages.
const AF_UNSPEC: u8 = 0;
const ENODEV: i32 = rustix::io::Errno::NODEV.raw_os_error();

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_MTU: u16 = 4;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_TARGET_NETNSID: u16 = 46;
const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const NLA_F_MASK: u16 = 0x3fff;
// RFC 2863 operational states that mean "cannot carry traffic".
const IF_OPER_NOTPRESENT: u8 = 3;
const IF_OPER_DOWN: u8 = 2;
const IF_OPER_LOWERLAYERDOWN: u8 = 5;

/// What `RTM_GETLINK` said about one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// `veth`, `bridge`, `tun`, ...; `None` for plain devices.
    pub kind: Option<String>,
    /// The peer's ifindex (veth), in the namespace `link_netnsid` names when that is set.
    pub link: Option<u32>,
    pub link_netnsid: Option<i32>,
    /// Operationally able to carry traffic (`unknown`, as tap devices report, counts as up).
    pub oper_up: bool,
    pub mtu: Option<u32>,
    /// The XDP program attached in native (driver) mode, if any.
    pub xdp_drv_prog_id: Option<u32>,
    /// The bridge (or other master) the interface is a port of.
    pub master: Option<u32>,
    /// The link type (`ARPHRD_*`): `ARPHRD_ETHER` for veths and taps, `ARPHRD_NONE` for an L3
    /// tun device (`IFF_TUN`), which carries bare IP packets.
    pub link_type: u16,
    /// A VXLAN device's mode: external (`collect_md`: the tunnel key comes with each packet),
    /// and its UDP port.
    pub vxlan_external: bool,
    pub vxlan_port: Option<u16>,
}


#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    #[error("netlink: no interface {0}")]
    NotFound(String),
    #[error("netlink: {what}: {source}")]
    Kernel { what: String, source: io::Error },
    #[error("netlink: malformed reply to {0}")]
    Malformed(String),
}

fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Walks netlink attributes: (type, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_F_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[(len + 3) & !3usize..];
        if b.len() > usize::MAX / 2 {
            b = &[];
        }
        Some((ty, payload))
    })
}

/// Sends one request of type `ty` (`msg`, its header filled in here) and returns the reply: a
/// message of type `want` at least `min_len` bytes long (headers included), cut to its own
/// length. The kernel's error reply becomes `Kernel` (`NotFound` for ENODEV), naming `what`.
fn request(msg: Vec<u8>, ty: u16, want: u16, min_len: usize, what: &str) -> Result<Vec<u8>, NetlinkError> {
    request_with(msg, ty, NLM_F_REQUEST, want, min_len, what)
}

/// `request` with header flags `flags`; `want` `NLMSG_ERROR` takes the kernel's
/// acknowledgement (error code 0) as the answer.
fn request_with(mut msg: Vec<u8>, ty: u16, flags: u16, want: u16, min_len: usize, what: &str) -> Result<Vec<u8>, NetlinkError> {
    let sock = net::socket_with(net::AddressFamily::NETLINK, net::SocketType::RAW, net::SocketFlags::CLOEXEC, None)
        .map_err(|e| NetlinkError::Socket(e.into()))?;
    let total = u32::try_from(msg.len()).unwrap_or(0);
    msg[0..4].copy_from_slice(&total.to_ne_bytes());
    msg[4..6].copy_from_slice(&ty.to_ne_bytes());
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // To the kernel: port id 0, no groups.
    net::sendto(&sock, &msg, net::SendFlags::empty(), &SocketAddrNetlink::new(0, 0)).map_err(|e| NetlinkError::Socket(e.into()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (n, _) = net::recv(&sock, &mut buf[..], net::RecvFlags::empty()).map_err(|e| NetlinkError::Socket(e.into()))?;
    buf.truncate(n);
    if buf.len() < 16 {
        return Err(NetlinkError::Malformed(what.to_owned()));
    }
    let reply = u16::from_ne_bytes([buf[4], buf[5]]);
    if reply == NLMSG_ERROR {
        let code = if buf.len() >= 20 { i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]) } else { 0 };
        if code == 0 && want == NLMSG_ERROR {
            return Ok(buf);
        }
        if code == -ENODEV {
            return Err(NetlinkError::NotFound(what.to_owned()));
        }
        return Err(NetlinkError::Kernel { what: what.to_owned(), source: io::Error::from_raw_os_error(-code) });
    }
    // A u32 always fits a usize here (64-bit hosts).
    let len = (u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize).min(buf.len());
    if reply != want || len < min_len {
        return Err(NetlinkError::Malformed(what.to_owned()));
    }
    buf.truncate(len);
    Ok(buf)
}

fn get_link(ifindex: u32, name: Option<&str>, target_nsid: Option<i32>, what: &str) -> Result<Link, NetlinkError> {
    // nlmsghdr (16) + ifinfomsg (16) + attributes.
    let mut msg = vec![0u8; 32];
    msg[16] = AF_UNSPEC;
    // The kernel's ifindex is an int: a larger one names no interface (not index 0, which means "by name").
    let index = i32::try_from(ifindex).map_err(|_| NetlinkError::NotFound(what.to_owned()))?;
    msg[20..24].copy_from_slice(&index.to_ne_bytes());
    if let Some(n) = name {
        let mut z = n.as_bytes().to_vec();
        z.push(0);
        push_attr(&mut msg, IFLA_IFNAME, &z);
    }
    if let Some(nsid) = target_nsid {
        push_attr(&mut msg, IFLA_TARGET_NETNSID, &nsid.to_ne_bytes());
    }
    let buf = request(msg, RTM_GETLINK, RTM_NEWLINK, 32, what)?;
    let mut link = Link {
        ifindex: u32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]),
        link_type: u16::from_ne_bytes([buf[18], buf[19]]),
        ..Link::default()
    };
    for (t, p) in attrs(&buf[32..]) {
        match t {
            IFLA_ADDRESS if p.len() == 6 => link.mac = Some([p[0], p[1], p[2], p[3], p[4], p[5]]),
            IFLA_IFNAME => link.name = String::from_utf8_lossy(p.split(|b| *b == 0).next().unwrap_or(&[])).into_owned(),
            IFLA_LINK if p.len() == 4 => link.link = Some(u32::from_ne_bytes([p[0], p[1], p[2], p[3]])),
            IFLA_MASTER if p.len() == 4 => link.master = Some(u32::from_ne_bytes([p[0], p[1], p[2], p[3]])).filter(|m| *m != 0),
            IFLA_LINK_NETNSID if p.len() == 4 => link.link_netnsid = Some(i32::from_ne_bytes([p[0], p[1], p[2], p[3]])),
            IFLA_MTU if p.len() == 4 => link.mtu = Some(u32::from_ne_bytes([p[0], p[1], p[2], p[3]])),
            IFLA_XDP => {
                for (xt, xp) in attrs(p) {
                    if xt == IFLA_XDP_DRV_PROG_ID && xp.len() == 4 {
                        link.xdp_drv_prog_id = Some(u32::from_ne_bytes([xp[0], xp[1], xp[2], xp[3]])).filter(|id| *id != 0);
                    }
                }
            }
            IFLA_OPERSTATE if !p.is_empty() => {
                link.oper_up = !matches!(p[0], IF_OPER_DOWN | IF_OPER_NOTPRESENT | IF_OPER_LOWERLAYERDOWN);
            }
            IFLA_LINKINFO => {
                for (it, ip) in attrs(p) {
                    if it == IFLA_INFO_KIND {
                        link.kind = Some(String::from_utf8_lossy(ip.split(|b| *b == 0).next().unwrap_or(&[])).into_owned());
                    }
                    if it == IFLA_INFO_DATA {
                        for (dt, dp) in attrs(ip) {
                            match dt {
                                IFLA_VXLAN_COLLECT_METADATA if !dp.is_empty() => link.vxlan_external = dp[0] != 0,
                                IFLA_VXLAN_PORT if dp.len() == 2 => link.vxlan_port = Some(u16::from_be_bytes([dp[0], dp[1]])),
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFF_UP: u32 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_LEARNING: u16 = 7;
const IFLA_VXLAN_PORT: u16 = 15;
const IFLA_VXLAN_COLLECT_METADATA: u16 = 25;

/// Creates a VXLAN device `name` in external (`collect_md`) mode on UDP `port`, without
/// learning, up (`ip link add NAME [mtu MTU] up type vxlan external dstport PORT nolearning`):
/// the tunnel key of each packet comes from the program that sends it.
pub fn create_vxlan(name: &str, port: u16, mtu: Option<u32>) -> Result<(), NetlinkError> {
    let mut msg = vec![0u8; 32];
    msg[16] = AF_UNSPEC;
    msg[24..28].copy_from_slice(&IFF_UP.to_ne_bytes());
    msg[28..32].copy_from_slice(&IFF_UP.to_ne_bytes());
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    push_attr(&mut msg, IFLA_IFNAME, &z);
    if let Some(m) = mtu {
        push_attr(&mut msg, IFLA_MTU, &m.to_ne_bytes());
    }
    let mut data = Vec::new();
    push_attr(&mut data, IFLA_VXLAN_COLLECT_METADATA, &[1]);
    push_attr(&mut data, IFLA_VXLAN_PORT, &port.to_be_bytes());
    push_attr(&mut data, IFLA_VXLAN_LEARNING, &[0]);
    let mut info = Vec::new();
    push_attr(&mut info, IFLA_INFO_KIND, b"vxlan\0");
    push_attr(&mut info, IFLA_INFO_DATA, &data);
    push_attr(&mut msg, IFLA_LINKINFO, &info);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
    request_with(msg, RTM_NEWLINK, flags, NLMSG_ERROR, 16, &format!("creating VXLAN device '{name}'")).map(|_| ())
}

/// Deletes the interface called `name` (`ip link del NAME`).
pub fn delete_link(name: &str) -> Result<(), NetlinkError> {
    let mut msg = vec![0u8; 32];
    msg[16] = AF_UNSPEC;
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    push_attr(&mut msg, IFLA_IFNAME, &z);
    request_with(msg, RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, NLMSG_ERROR, 16, &format!("deleting '{name}'")).map(|_| ())
}

/// The interface called `name` in the current network namespace.
pub fn link_by_name(name: &str) -> Result<Link, NetlinkError> {
    get_link(0, Some(name), None, &format!("'{name}'"))
}

/// Interface `ifindex` in the namespace known here as `nsid` (or the current one).
pub fn link_by_index(ifindex: u32, nsid: Option<i32>) -> Result<Link, NetlinkError> {
    let what = match nsid {
        Some(n) => format!("ifindex {ifindex} in netnsid {n}"),
        None => format!("ifindex {ifindex}"),
    };
    get_link(ifindex, None, nsid, &what)
}

/// The interface and, for a veth, its peer (looked up in the peer's namespace).
pub fn link_and_peer(name: &str) -> Result<(Link, Option<Link>), NetlinkError> {
    let link = link_by_name(name)?;
    let peer = match (link.kind.as_deref(), link.link) {
        (Some("veth"), Some(peer)) if peer != 0 => Some(link_by_index(peer, link.link_netnsid)?),
        _ => None,
    };
    Ok((link, peer))
}

/// The id this namespace knows the network namespace of `fd` by, if it has given it one (a veth
/// whose peer lives there has: `Link::link_netnsid`).
pub fn nsid_of(fd: std::os::fd::BorrowedFd<'_>) -> Result<Option<i32>, NetlinkError> {
    use std::os::fd::AsRawFd as _;
    // nlmsghdr (16) + rtgenmsg (1, padded to 4) + NETNSA_FD.
    let mut msg = vec![0u8; 20];
    msg[16] = AF_UNSPEC;
    push_attr(&mut msg, NETNSA_FD, &u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX).to_ne_bytes());
    let buf = request(msg, RTM_GETNSID, RTM_NEWNSID, 20, "RTM_GETNSID")?;
    Ok(attrs(&buf[20..])
        .find(|(t, p)| *t == NETNSA_NSID && p.len() == 4)
        .map(|(_, p)| i32::from_ne_bytes([p[0], p[1], p[2], p[3]]))
        .filter(|id| *id >= 0))
}

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLMSG_DONE: u16 = 3;
const NLM_F_DUMP: u16 = 0x300;
const AF_BRIDGE: u8 = 7;
const NDA_LLADDR: u16 = 2;
/// An entry of the device's own address list, not of the bridge's database.
const NTF_SELF: u8 = 0x02;
const NUD_PERMANENT: u16 = 0x80;

/// The unicast MACs the bridge's forwarding database places behind bridge port `port` (learnt
/// or static entries of the bridge itself; not the port's own address, which is permanent).
/// The MAC of a VM whose tap is a bridge port, known from frames it sent before sfc was there.
pub fn fdb_macs(port: u32) -> Result<Vec<[u8; 6]>, NetlinkError> {
    let what = format!("the bridge forwarding database (port ifindex {port})");
    let sock = net::socket_with(net::AddressFamily::NETLINK, net::SocketType::RAW, net::SocketFlags::CLOEXEC, None)
        .map_err(|e| NetlinkError::Socket(e.into()))?;
    // nlmsghdr (16) + ndmsg (12).
    let mut msg = vec![0u8; 28];
    msg[0..4].copy_from_slice(&28u32.to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    msg[16] = AF_BRIDGE;
    net::sendto(&sock, &msg, net::SendFlags::empty(), &SocketAddrNetlink::new(0, 0)).map_err(|e| NetlinkError::Socket(e.into()))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, _) = net::recv(&sock, &mut buf[..], net::RecvFlags::empty()).map_err(|e| NetlinkError::Socket(e.into()))?;
        let mut b = &buf[..n];
        while b.len() >= 16 {
            let len = (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize).min(b.len());
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            if len < 16 {
                return Err(NetlinkError::Malformed(what));
            }
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = if len >= 20 { i32::from_ne_bytes([b[16], b[17], b[18], b[19]]) } else { 0 };
                    return Err(NetlinkError::Kernel { what, source: io::Error::from_raw_os_error(-code) });
                }
                RTM_NEWNEIGH if len >= 28 => {
                    let ifindex = u32::from_ne_bytes([b[20], b[21], b[22], b[23]]);
                    let state = u16::from_ne_bytes([b[24], b[25]]);
                    let flags = b[26];
                    if ifindex == port && flags & NTF_SELF == 0 && state & NUD_PERMANENT == 0 {
                        for (t, p) in attrs(&b[28..len]) {
                            if t == NDA_LLADDR && p.len() == 6 && p[0] & 1 == 0 && p.iter().any(|x| *x != 0) {
                                out.push([p[0], p[1], p[2], p[3], p[4], p[5]]);
                            }
                        }
                    }
                }
                _ => {}
            }
            b = &b[((len + 3) & !3usize).min(b.len())..];
        }
    }
}

/// `RTMGRP_LINK`: the multicast group of link notifications.
const RTMGRP_LINK: u32 = 1;

/// A non-blocking socket that receives the kernel's link notifications (interfaces added,
/// removed, going up or down) in the calling thread's namespace. What it receives is a wake-up,
/// not parsed: the reader then looks at the links it cares about.
pub fn link_events() -> io::Result<std::os::fd::OwnedFd> {
    let flags = net::SocketFlags::CLOEXEC | net::SocketFlags::NONBLOCK;
    let owned = net::socket_with(net::AddressFamily::NETLINK, net::SocketType::RAW, flags, None)?;
    net::bind(&owned, &SocketAddrNetlink::new(0, RTMGRP_LINK))?;
    Ok(owned)
}
