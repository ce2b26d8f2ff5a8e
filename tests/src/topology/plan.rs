//! The topology's address plan: every endpoint-side interface ([`End`]) with its namespace
//! role, device name, addresses, MACs and the name of the bridge port facing it.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

pub const SOURCE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const DEST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PREFIX_LEN: u8 = 24;
pub const SOURCE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5fc, 0, 0, 0, 0, 0, 1);
pub const DEST_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5fc, 0, 0, 0, 0, 0, 2);
pub const PREFIX6_LEN: u8 = 64;
/// The one IPv6 subnet of a topology.
pub const SUBNET6: &str = "fd00:5fc::/64";

/// Who holds endpoint interfaces: a namespace of that name, or a VM ([`super::TopologyConfig::vms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Source,
    Dest,
    /// Service function `n`.
    Sf(u8),
}

impl Role {
    /// Its interfaces.
    pub fn ends(self) -> Vec<End> {
        match self {
            Role::Source => vec![End::Source],
            Role::Dest => vec![End::Dest],
            Role::Sf(n) => vec![End::SfIn(n), End::SfOut(n)],
        }
    }
}

impl fmt::Display for Role {
    /// `source`, `dest`, `sf<n>`: what namespace and VM names end with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Source => f.write_str("source"),
            Role::Dest => f.write_str("dest"),
            Role::Sf(n) => write!(f, "sf{n}"),
        }
    }
}

/// One endpoint-side interface and the bridge port facing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    Source,
    Dest,
    /// Service function `n`'s ingress interface (`in`).
    SfIn(u8),
    /// Service function `n`'s egress interface (`out`).
    SfOut(u8),
}

impl End {
    /// Interface name inside the endpoint namespace.
    pub fn dev(self) -> &'static str {
        match self {
            End::Source | End::Dest => "eth0",
            End::SfIn(_) => "in",
            End::SfOut(_) => "out",
        }
    }

    /// Who holds this interface.
    pub fn owner(self) -> Role {
        match self {
            End::Source => Role::Source,
            End::Dest => Role::Dest,
            End::SfIn(n) | End::SfOut(n) => Role::Sf(n),
        }
    }

    /// Short name of the namespace role: `source`, `dest`, `sf<n>`.
    pub fn role(self) -> String {
        self.owner().to_string()
    }

    /// The hub-side name after the topology's id: `<id>-<suffix>`.
    pub(super) fn hub_suffix(self) -> String {
        match self {
            End::Source => "src".to_owned(),
            End::Dest => "dst".to_owned(),
            End::SfIn(n) => format!("s{n}i"),
            End::SfOut(n) => format!("s{n}o"),
        }
    }

    /// The endpoint-side MAC address: locally administered, fixed, so that static neighbour
    /// and FDB entries can be written before anything is up. `02:5f:c0:<who>:<side>:01`.
    pub fn mac(self) -> [u8; 6] {
        let (who, side) = match self {
            End::Source => (0x01, 0),
            End::Dest => (0x02, 0),
            End::SfIn(n) => (0x10 + n, 0),
            End::SfOut(n) => (0x10 + n, 1),
        };
        [0x02, 0x5f, 0xc0, who, side, 0x01]
    }

    /// The hub-side MAC: as [`End::mac`] with last byte 02.
    pub fn hub_mac(self) -> [u8; 6] {
        let mut mac = self.mac();
        mac[5] = 0x02;
        mac
    }

    /// The address on this interface, with its prefix length.
    pub fn addr(self) -> (Ipv4Addr, u8) {
        match self {
            End::Source => (SOURCE_IP, PREFIX_LEN),
            End::Dest => (DEST_IP, PREFIX_LEN),
            // /32 on `in`: no subnet route there, so what arrives on `in` for dest leaves by `out`.
            End::SfIn(n) => (Ipv4Addr::new(198, 18, 0, 10 * n + 1), 32),
            End::SfOut(n) => (Ipv4Addr::new(198, 18, 0, 10 * n + 2), PREFIX_LEN),
        }
    }

    /// The IPv6 address on this interface (IPv6 topologies), with its prefix length: as
    /// [`End::addr`], `fd00:5fc::1`, `::2`, `::<n>1/128` and `::<n>2/64` (hex digits).
    pub fn addr6(self) -> (Ipv6Addr, u8) {
        let sf = |n: u8, i: u16| Ipv6Addr::new(0xfd00, 0x5fc, 0, 0, 0, 0, 0, u16::from(n) * 16 + i);
        match self {
            End::Source => (SOURCE_IP6, PREFIX6_LEN),
            End::Dest => (DEST_IP6, PREFIX6_LEN),
            End::SfIn(n) => (sf(n, 1), 128),
            End::SfOut(n) => (sf(n, 2), PREFIX6_LEN),
        }
    }

    /// The address of the given family (`v6`) on this interface.
    pub fn ip(self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.addr6().0)
        } else {
            IpAddr::V4(self.addr().0)
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role(), self.dev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::mac_string;

    #[test]
    fn sf_addresses_follow_the_plan() {
        assert_eq!(End::SfIn(3).addr(), (Ipv4Addr::new(198, 18, 0, 31), 32));
        assert_eq!(End::SfOut(3).addr(), (Ipv4Addr::new(198, 18, 0, 32), 24));
        assert_eq!(mac_string(End::SfOut(2).hub_mac()), "02:5f:c0:12:01:02");
    }
}
