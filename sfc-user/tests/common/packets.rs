//! Test packets: built with etherparse's `PacketBuilder`, plus small byte-level helpers for what
//! it does not build (long IPv6 extension header chains, bogus header fields, truncation).

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpAuthHeader, IpFragOffset, IpHeaders,
    IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, PacketBuilder, PacketBuilderStep, VlanId,
};

/// The sender's MAC and the MAC it addresses (its gateway, or whatever the host would switch to).
pub const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x01];
pub const GW_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01];

const PAYLOAD: &[u8] = b"sfc fixture payload";
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const IPV6_NEXT_HEADER: usize = 6;
const IPV6_DSTOPTS: u8 = 60;

/// Transport of a test packet.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    /// TCP SYN.
    Tcp(u16, u16),
    /// TCP ACK with sequence number `.2` (a data segment).
    TcpAck(u16, u16, u32),
    /// TCP FIN+ACK with sequence number `.2`.
    TcpFin(u16, u16, u32),
    /// TCP RST with sequence number `.2`.
    TcpRst(u16, u16, u32),
    Udp(u16, u16),
    /// ICMP (v4 or v6 by address family) echo request.
    Echo,
}

fn vlan(id: u16) -> VlanId {
    VlanId::try_new(id).expect("vlan id")
}

/// Adds the transport header and payload to an IP builder step and serializes the packet.
fn finish(step: PacketBuilderStep<IpHeaders>, l4: L4, v6: bool) -> Vec<u8> {
    finish_with(step, l4, v6, PAYLOAD)
}

fn finish_with(step: PacketBuilderStep<IpHeaders>, l4: L4, v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    match l4 {
        L4::Tcp(s, d) => step.tcp(s, d, 1000, 64_240).syn().write(&mut v, payload),
        L4::TcpAck(s, d, seq) => step.tcp(s, d, seq, 64_240).ack(1).write(&mut v, payload),
        L4::TcpFin(s, d, seq) => step.tcp(s, d, seq, 64_240).ack(1).fin().write(&mut v, payload),
        L4::TcpRst(s, d, seq) => step.tcp(s, d, seq, 64_240).rst().write(&mut v, payload),
        L4::Udp(s, d) => step.udp(s, d).write(&mut v, payload),
        L4::Echo if v6 => step.icmpv6_echo_request(7, 1).write(&mut v, payload),
        L4::Echo => step.icmpv4_echo_request(7, 1).write(&mut v, payload),
    }
    .expect("building a packet");
    v
}

/// `n` bytes of payload that are not all alike (so a checksum over them means something).
pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| u8::try_from((i * 7 + i / 256) % 251).unwrap_or(0)).collect()
}

/// IPv4 packet carrying `payload`.
pub fn v4_payload(src: [u8; 4], dst: [u8; 4], l4: L4, payload: &[u8]) -> Vec<u8> {
    let h = ipv4_header(src, dst);
    finish_with(PacketBuilder::ethernet2(HOST_MAC, GW_MAC).ip(IpHeaders::Ipv4(h, Ipv4Extensions::default())), l4, false, payload)
}

/// IPv6 packet carrying `payload`.
pub fn v6_payload(src: [u8; 16], dst: [u8; 16], l4: L4, payload: &[u8]) -> Vec<u8> {
    let h = Ipv6Header { hop_limit: 64, source: src, destination: dst, ..Ipv6Header::default() };
    finish_with(PacketBuilder::ethernet2(HOST_MAC, GW_MAC).ip(IpHeaders::Ipv6(h, Ipv6Extensions::default())), l4, true, payload)
}

/// IPv4 packet.
pub fn v4(src: [u8; 4], dst: [u8; 4], l4: L4) -> Vec<u8> {
    v4_with(ipv4_header(src, dst), l4)
}

/// IPv4 packet of protocol `proto` with `payload` as its transport bytes (protocols the builder
/// has no header for: SCTP, GRE, ...).
pub fn v4_proto(src: [u8; 4], dst: [u8; 4], proto: IpNumber, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, GW_MAC)
        .ip(IpHeaders::Ipv4(ipv4_header(src, dst), Ipv4Extensions::default()))
        .write(&mut v, proto, payload)
        .expect("building a packet");
    v
}

/// IPv6 packet of next header `proto` with `payload` as its transport bytes.
pub fn v6_proto(src: [u8; 16], dst: [u8; 16], proto: IpNumber, payload: &[u8]) -> Vec<u8> {
    let h = Ipv6Header { hop_limit: 64, source: src, destination: dst, ..Ipv6Header::default() };
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, GW_MAC)
        .ip(IpHeaders::Ipv6(h, Ipv6Extensions::default()))
        .write(&mut v, proto, payload)
        .expect("building a packet");
    v
}

/// SCTP common header (ports, verification tag, checksum left 0) and a little chunk data.
pub fn sctp(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = sctp_offloaded(sport, dport);
    let crc = crc32c(&v);
    v[8..12].copy_from_slice(&crc.to_le_bytes());
    v
}

/// An SCTP common header and payload as a sender that offloads the `CRC32c` leaves it: zero.
pub fn sctp_offloaded(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    v.extend_from_slice(PAYLOAD);
    v
}

/// `CRC32c` (Castagnoli, reflected), as SCTP stores it (RFC 9260 appendix B: least significant
/// byte first).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// IPv4 packet with the given TTL.
/// Sets the TTL of an untagged IPv4 frame and fixes its header checksum.
pub fn set_ipv4_ttl(frame: &mut [u8], ttl: u8) {
    frame[ETH_LEN + 8] = ttl;
    fix_ipv4_checksum(frame);
}

/// Sets the identification of an untagged IPv4 frame and fixes its header checksum.
pub fn set_ipv4_id(frame: &mut [u8], id: u16) {
    frame[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&id.to_be_bytes());
    fix_ipv4_checksum(frame);
}

fn fix_ipv4_checksum(frame: &mut [u8]) {
    frame[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&[0, 0]);
    let ihl = usize::from(frame[ETH_LEN] & 0x0f) * 4;
    let mut sum = 0u32;
    for w in frame[ETH_LEN..ETH_LEN + ihl].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(u16::try_from(sum).unwrap_or(0));
    frame[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&csum.to_be_bytes());
}

pub fn v4_ttl(src: [u8; 4], dst: [u8; 4], ttl: u8, l4: L4) -> Vec<u8> {
    let mut h = ipv4_header(src, dst);
    h.time_to_live = ttl;
    v4_with(h, l4)
}

/// IPv4 packet with a given header (options, fragment fields).
pub fn v4_with(h: Ipv4Header, l4: L4) -> Vec<u8> {
    finish(PacketBuilder::ethernet2(HOST_MAC, GW_MAC).ip(IpHeaders::Ipv4(h, Ipv4Extensions::default())), l4, false)
}

pub fn ipv4_header(src: [u8; 4], dst: [u8; 4]) -> Ipv4Header {
    // Lengths, protocol and checksum are filled in by the builder.
    Ipv4Header::new(0, 64, IpNumber::TCP, src, dst).expect("ipv4 header")
}

/// IPv6 packet (with extension headers `ext`).
pub fn v6_with(src: [u8; 16], dst: [u8; 16], ext: Ipv6Extensions, l4: L4) -> Vec<u8> {
    let h = Ipv6Header { hop_limit: 64, source: src, destination: dst, ..Ipv6Header::default() };
    finish(PacketBuilder::ethernet2(HOST_MAC, GW_MAC).ip(IpHeaders::Ipv6(h, ext)), l4, true)
}

pub fn v6(src: [u8; 16], dst: [u8; 16], l4: L4) -> Vec<u8> {
    v6_with(src, dst, Ipv6Extensions::default(), l4)
}

/// 802.1Q-tagged IPv4 TCP packet.
pub fn v4_vlan(vid: u16, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, GW_MAC)
        .single_vlan(vlan(vid))
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64_240)
        .syn()
        .write(&mut v, PAYLOAD)
        .expect("building a packet");
    v
}

/// Double-tagged (802.1ad outer, 802.1Q inner) IPv4 TCP packet.
pub fn v4_qinq(outer: u16, inner: u16, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, GW_MAC)
        .double_vlan(vlan(outer), vlan(inner))
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64_240)
        .syn()
        .write(&mut v, PAYLOAD)
        .expect("building a packet");
    v
}

/// An extra 802.1Q tag inserted after the MAC addresses (three tags on a double-tagged frame).
pub fn push_vlan(pkt: &[u8], vid: u16) -> Vec<u8> {
    let mut v = pkt[..12].to_vec();
    v.extend_from_slice(&0x8100u16.to_be_bytes());
    v.extend_from_slice(&vid.to_be_bytes());
    v.extend_from_slice(&pkt[12..]);
    v
}

/// IPv4 header with `n` bytes of options (NOPs ending in End of Options List).
pub fn ipv4_header_with_options(src: [u8; 4], dst: [u8; 4], n: usize) -> Ipv4Header {
    let mut h = ipv4_header(src, dst);
    let mut opts = vec![1u8; n]; // NOP
    if let Some(last) = opts.last_mut() {
        *last = 0; // EOL
    }
    h.options = Ipv4Options::try_from(opts.as_slice()).expect("ipv4 options (multiple of 4, at most 40)");
    h
}

/// IPv4 fragment header fields: `offset` in 8-byte units.
pub fn ipv4_fragment(src: [u8; 4], dst: [u8; 4], id: u16, offset: u16, more: bool) -> Ipv4Header {
    let mut h = ipv4_header(src, dst);
    h.identification = id;
    h.more_fragments = more;
    h.fragment_offset = IpFragOffset::try_new(offset).expect("fragment offset");
    h
}

/// A later IPv4 fragment: IP header and payload bytes only (no transport header).
pub fn v4_later_fragment(src: [u8; 4], dst: [u8; 4], proto: IpNumber, id: u16, offset: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, GW_MAC)
        .ip(IpHeaders::Ipv4(ipv4_fragment(src, dst, id, offset, false), Ipv4Extensions::default()))
        .write(&mut v, proto, &[0x5a; 64])
        .expect("building a packet");
    v
}

/// IPv6 extension headers: hop-by-hop options and destination options (one each).
pub fn hbh_and_dstopts() -> Ipv6Extensions {
    // PadN option filling the 6 bytes after next-header/length; next headers are set on write.
    let padn = [1u8, 4, 0, 0, 0, 0];
    Ipv6Extensions {
        hop_by_hop_options: Some(Ipv6RawExtHeader::new_raw(IpNumber::TCP, &padn).expect("hbh")),
        destination_options: Some(Ipv6RawExtHeader::new_raw(IpNumber::TCP, &padn).expect("dstopts")),
        ..Ipv6Extensions::default()
    }
}

/// IPv6 authentication header (its length is counted in 4-byte units, unlike the others).
pub fn auth_header() -> Ipv6Extensions {
    Ipv6Extensions {
        auth: Some(IpAuthHeader::new(IpNumber::TCP, 0x100, 1, &[0xab; 12]).expect("ah")),
        ..Ipv6Extensions::default()
    }
}

/// IPv6 fragment header, `offset` in 8-byte units.
pub fn ipv6_fragment(id: u32, offset: u16, more: bool) -> Ipv6Extensions {
    let off = IpFragOffset::try_new(offset).expect("fragment offset");
    Ipv6Extensions {
        fragment: Some(Ipv6FragmentHeader::new(IpNumber::TCP, off, more, id)),
        ..Ipv6Extensions::default()
    }
}

/// A later IPv6 fragment: headers up to the fragment header, then payload bytes.
pub fn v6_later_fragment(src: [u8; 16], dst: [u8; 16], id: u32, offset: u16) -> Vec<u8> {
    let h = Ipv6Header { hop_limit: 64, source: src, destination: dst, ..Ipv6Header::default() };
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, GW_MAC)
        .ip(IpHeaders::Ipv6(h, ipv6_fragment(id, offset, false)))
        .write(&mut v, IpNumber::TCP, &[0x5a; 64])
        .expect("building a packet");
    v
}

/// An IPv6 packet (no extension headers, no VLAN) with `n` 8-byte destination-options headers
/// chained in front of its transport header.
pub fn with_ipv6_ext_chain(pkt: &[u8], n: usize) -> Vec<u8> {
    let ip = ETH_LEN;
    let transport = ip + IPV6_LEN;
    let last_next = pkt[ip + IPV6_NEXT_HEADER];
    let mut v = pkt[..transport].to_vec();
    v[ip + IPV6_NEXT_HEADER] = IPV6_DSTOPTS;
    for i in 0..n {
        let next = if i + 1 == n { last_next } else { IPV6_DSTOPTS };
        v.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // hdr_ext_len 0: 8 bytes, PadN
    }
    v.extend_from_slice(&pkt[transport..]);
    let plen = u16::from_be_bytes([v[ip + 4], v[ip + 5]]) + u16::try_from(8 * n).expect("small");
    v[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
    v
}

/// An untagged IPv6 packet whose only extension header is a fragment header, with a
/// destination-options header inserted right after it (in the fragmentable part).
pub fn with_dstopts_after_fragment(pkt: &[u8]) -> Vec<u8> {
    let frag = ETH_LEN + IPV6_LEN;
    assert_eq!(pkt[ETH_LEN + IPV6_NEXT_HEADER], 44, "expects a fragment header first");
    let after = frag + 8;
    let mut v = pkt[..after].to_vec();
    let last_next = v[frag];
    v[frag] = IPV6_DSTOPTS;
    v.extend_from_slice(&[last_next, 0, 1, 4, 0, 0, 0, 0]);
    v.extend_from_slice(&pkt[after..]);
    let plen = u16::from_be_bytes([v[ETH_LEN + 4], v[ETH_LEN + 5]]) + 8;
    v[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&plen.to_be_bytes());
    v
}

/// `pkt` (untagged IPv6, fragment header first) with the fragment header's next header set.
pub fn with_fragment_next_header(pkt: &[u8], next: u8) -> Vec<u8> {
    let mut v = pkt.to_vec();
    v[ETH_LEN + IPV6_LEN] = next;
    v
}

/// Byte offset of the IPv4 version/IHL byte in an untagged frame.
pub const IPV4_VIHL: usize = ETH_LEN;

/// `pkt` (untagged IPv4) with its version/IHL byte replaced.
pub fn with_vihl(pkt: &[u8], vihl: u8) -> Vec<u8> {
    let mut v = pkt.to_vec();
    v[IPV4_VIHL] = vihl;
    v
}

/// `pkt` with its (outermost) ethertype replaced.
pub fn with_ethertype(pkt: &[u8], ethertype: u16) -> Vec<u8> {
    let mut v = pkt.to_vec();
    v[12..14].copy_from_slice(&ethertype.to_be_bytes());
    v
}

/// IPv4 with IHL 15 (a 60-byte header) in a frame that ends before those 60 bytes.
pub fn ipv4_header_longer_than_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let p = v4(src, dst, L4::Tcp(40_000, 80));
    let mut v = with_vihl(&p, 0x4f);
    v.truncate(ETH_LEN + IPV4_LEN + 20);
    v
}

/// `pkt` (untagged IPv4) with the IP total length field set to `len`.
pub fn with_ipv4_total_len(pkt: &[u8], len: u16) -> Vec<u8> {
    let mut v = pkt.to_vec();
    v[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&len.to_be_bytes());
    v
}

/// Ethernet frame with nothing after the header.
pub fn bare_ethernet(ethertype: u16) -> Vec<u8> {
    let mut v = GW_MAC.to_vec();
    v.extend_from_slice(&HOST_MAC);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v
}

/// Ethernet header and an 802.1Q tag whose inner ethertype is `ethertype`, and nothing else.
pub fn bare_vlan(ethertype: u16) -> Vec<u8> {
    let mut v = bare_ethernet(0x8100);
    v.extend_from_slice(&100u16.to_be_bytes());
    v.extend_from_slice(&ethertype.to_be_bytes());
    v
}

/// ARP request.
pub fn arp(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let a = ArpPacket::new(ArpHardwareId::ETHERNET, EtherType::IPV4, ArpOperation::REQUEST, &HOST_MAC, &sender, &[0; 6], &target)
        .expect("arp");
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, [0xff; 6]).arp(a).write(&mut v).expect("building a packet");
    v
}

/// `pkt` with its Ethernet destination replaced: what a redirect to an SF must produce.
pub fn with_dst_mac(pkt: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut v = pkt.to_vec();
    v[..6].copy_from_slice(&mac);
    v
}

/// `pkt` with its Ethernet source replaced: a frame a VM sent from its own MAC.
pub fn with_src_mac(pkt: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut v = pkt.to_vec();
    v[6..12].copy_from_slice(&mac);
    v
}
