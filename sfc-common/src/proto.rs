//! IP protocol numbers sfc names, and which of them carry ports: the kernel parser and the
//! model (classifiers, `explain`) must agree on both.

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_UDPLITE: u8 = 136;

/// Whether the datapath reads ports for `proto` (for other protocols the flow key's ports are 0).
#[expect(clippy::inline_always, reason = "used per packet in the BPF program")]
#[inline(always)]
pub const fn carries_ports(proto: u8) -> bool {
    matches!(proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_UDPLITE)
}
