//! Model-guided random packets: each field at a boundary of some classifier, inside it, or
//! random, and what the model says such a packet matches. The fixtures compare that with what
//! the datapath does.

use std::collections::BTreeSet;

use etherparse::IpNumber;
use sfc::model::{Ethertype, PortRange, Prefix};

use super::{
    Fixture,
    packets::{self, L4, v4, v6},
};

/// A well-formed packet for comparing the datapath's classification with the model's.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The interface it arrives on.
    pub iface: &'static str,
    pub v6: bool,
    /// 6, 17, 132 (SCTP), 1 (ICMP: sent as `ICMPv6`, protocol 58, in IPv6) or 47 (GRE).
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
}

impl Probe {
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, 6 | 17 | 132)
    }

    pub fn packet(&self) -> Vec<u8> {
        let (s4, d4) = (self.src[..4].try_into().expect("4"), self.dst[..4].try_into().expect("4"));
        let (sp, dp) = (self.sport, self.dport);
        let l4 = match self.proto {
            6 => Some(L4::Tcp(sp, dp)),
            17 => Some(L4::Udp(sp, dp)),
            1 => Some(L4::Echo),
            _ => None,
        };
        let raw = if self.proto == 132 { packets::sctp(sp, dp) } else { vec![0, 0, 0x08, 0, 1, 2, 3, 4] };
        match (self.v6, l4) {
            (false, Some(l4)) => v4(s4, d4, l4),
            (true, Some(l4)) => v6(self.src, self.dst, l4),
            (false, None) => packets::v4_proto(s4, d4, IpNumber(self.proto), &raw),
            (true, None) => packets::v6_proto(self.src, self.dst, IpNumber(self.proto), &raw),
        }
    }
}

/// The chains whose classifiers match `p` by the model's own definitions, and the MACs of the
/// first group's members (where a classified packet must be sent).
pub fn expected_by_model(fx: &Fixture, p: &Probe) -> (BTreeSet<u32>, BTreeSet<[u8; 6]>) {
    let (ethertype, bits) = if p.v6 { (Ethertype::IPv6, 128) } else { (Ethertype::IPv4, 32) };
    let host = |addr: [u8; 16]| Prefix { ethertype, addr, len: bits };
    let proto = if p.v6 && p.proto == 1 { 58 } else { p.proto };
    // The datapath keys protocols without ports with ports 0.
    let (sport, dport) = if p.has_ports() { (p.sport, p.dport) } else { (0, 0) };
    let (mut chains, mut macs) = (BTreeSet::new(), BTreeSet::new());
    for chain in &fx.model.port_chains {
        let hit = chain.flow_classifiers.iter().map(|&i| &fx.model.flow_classifiers[i]).any(|fc| {
            fc.logical_source_port == p.iface
                && fc.ethertype == ethertype
                && fc.protocol.is_none_or(|x| x == proto)
                && fc.source_prefix.contains(&host(p.src))
                && fc.destination_prefix.contains(&host(p.dst))
                && fc.source_ports.contains_port(sport)
                && fc.destination_ports.contains_port(dport)
        });
        if hit {
            chains.insert(chain.chain_id);
            let first = &fx.model.port_pair_groups[chain.port_pair_groups[0]];
            macs.extend(first.port_pairs.iter().map(|&pp| fx.mac_behind(&fx.model.port_pairs[pp].ingress)));
        }
    }
    (chains, macs)
}

/// Random choices a probe is built from (so that proptest shrinks the choices).
pub type Choices = (usize, u8, u8, [u8; 16], u8, [u8; 16], u8, u16, u8, u16, u8);

pub fn choices() -> impl proptest::strategy::Strategy<Value = Choices> {
    use proptest::prelude::*;
    (any::<usize>(), 0..16u8, 0..8u8, any::<[u8; 16]>(), 0..8u8, any::<[u8; 16]>(), 0..8u8, any::<u16>(), 0..8u8, any::<u16>(), 0..8u8)
}

/// An address by `mode`: the first / last address of `p`, the ones just outside it, a random one
/// inside, or anything. `bits` is 32 or 128; IPv4 addresses live in the first four bytes.
pub fn address(p: &Prefix, bits: u32, mode: u8, r: [u8; 16]) -> [u8; 16] {
    let width = if bits == 32 { 32 } else { 128 };
    let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
    let base = if width == 32 { u128::from(u32::from_be_bytes(p.addr[..4].try_into().expect("4"))) } else { u128::from_be_bytes(p.addr) };
    let host = if p.len == 0 { all } else { all >> p.len };
    let rnd = u128::from_be_bytes(r) & all;
    let v = match mode {
        0 => base,
        1 => base | host,
        2 => base.wrapping_sub(1) & all,
        3 => (base | host).wrapping_add(1) & all,
        4 | 5 => base | (rnd & host),
        _ => rnd,
    };
    let mut out = [0u8; 16];
    if width == 32 {
        out[..4].copy_from_slice(&u32::try_from(v).expect("32 bits").to_be_bytes());
    } else {
        out = v.to_be_bytes();
    }
    out
}

/// A port by `mode`: min, max, min - 1, max + 1 of `r`, one inside, or anything.
pub fn port(r: PortRange, mode: u8, rnd: u16) -> u16 {
    match mode {
        0 => r.min,
        1 => r.max,
        2 => r.min.wrapping_sub(1),
        3 => r.max.wrapping_add(1),
        4 | 5 => r.min + rnd % (r.max - r.min).saturating_add(1).max(1),
        _ => rnd,
    }
}
