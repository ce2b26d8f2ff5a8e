//! The one packet parser: a bounds-checked cursor over Ethernet, VLAN tags, IPv4 (with options),
//! IPv6 (with a bounded walk of extension headers) and the transport ports. Every read goes
//! through `Cursor::take`, so no other file does pointer arithmetic on packet data.

use core::mem::size_of;

use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    vlan::VlanHdr,
};
use sfc_common::{
    limits::{MAX_IPV6_EXT_HEADERS, MAX_VLAN_DEPTH},
    maps::{FAMILY_V4, FAMILY_V6, FlowKey},
};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;

pub use sfc_common::proto::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use sfc_common::proto::{IPPROTO_UDPLITE, carries_ports};
// IPv6 extension headers walked to find the transport header.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DSTOPTS: u8 = 60;

/// Why a packet was not parsed into a flow key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not IPv4/IPv6 (ARP, LLDP, ...): none of sfc's business.
    NotIp,
    /// Shorter than its headers claim, bogus lengths, or deeper than the walk bounds.
    Malformed,
}

/// A bounds-checked read position in the packet.
pub struct Cursor {
    pos: usize,
    end: usize,
}

impl Cursor {
    #[inline(always)]
    pub fn new(start: usize, end: usize) -> Self {
        Self { pos: start, end }
    }

    /// Returns a pointer to a `T` at the cursor and moves past it, if the packet holds one.
    #[inline(always)]
    pub fn take<T>(&mut self) -> Result<*const T, ParseError> {
        let p = self.pos;
        if p + size_of::<T>() > self.end {
            return Err(ParseError::Malformed);
        }
        self.pos = p + size_of::<T>();
        Ok(p as *const T)
    }

    /// How far the cursor is from `start`. Computed through memory: otherwise LLVM packs the
    /// offset into a wider register by shifting the packet pointer itself, which the verifier
    /// refuses ("pointer arithmetic with <<= operator prohibited").
    #[inline(always)]
    pub fn offset(&self, start: usize) -> u16 {
        let off = (self.pos - start) as u16;
        unsafe { core::ptr::read_volatile(&raw const off) }
    }

    /// Moves past `n` bytes; `n` must already be bounded by the caller (verifier).
    #[inline(always)]
    pub fn skip(&mut self, n: usize) -> Result<(), ParseError> {
        if self.pos + n > self.end {
            return Err(ParseError::Malformed);
        }
        self.pos += n;
        Ok(())
    }
}

/// `Parsed::frag`: not a fragment.
pub const FRAG_NONE: u8 = 0;
/// The first fragment (offset 0, more to come): carries the ports.
pub const FRAG_FIRST: u8 = 1;
/// A later fragment: no transport header.
pub const FRAG_LATER: u8 = 2;

/// What steering needs to know about a packet besides its flow key.
pub struct Parsed {
    /// Ethertype of the IP header (after any VLAN tags), host order.
    pub ethertype: u16,
    /// `FRAG_*`.
    pub frag: u8,
    /// IP identification of a fragment (IPv4 16 bits, IPv6 32 bits).
    pub frag_id: u32,
    /// IPv4 TTL or IPv6 hop limit (loop guard).
    pub ttl: u8,
    /// Offset of the IP header from the frame's start (for the MTU check before an XDP
    /// redirect). Offsets, not pointers: a packet pointer kept in a struct the compiler may
    /// return in registers ends up shifted, which the verifier refuses.
    pub ip_off: u16,
    /// Offset of the transport header (for completing a checksum before an XDP redirect), and its
    /// length from the IP header (0 when the IP header does not say, as for BIG TCP).
    pub l4_off: u16,
    pub l4_len: u16,
    /// What tells this packet from the other packets of its flow, across routing service
    /// functions (the loop guard's fingerprint, see steer.rs): the IPv4 identification, the
    /// transport length, and transport bytes 4 to 16 (sequence numbers, ICMP id and sequence,
    /// the first payload bytes), checksums left out since offloads may complete them on the way.
    pub fp: u32,
    /// TCP flags (0 for other protocols and later fragments): FIN and RST start a flow's close.
    pub tcp_flags: u8,
}

/// Parses the frame between `start` and `end`, filling `key` (which the caller has zeroed).
#[inline(always)]
pub fn parse(start: usize, end: usize, key: &mut FlowKey) -> Result<Parsed, ParseError> {
    let mut c = Cursor::new(start, end);
    let eth = c.take::<EthHdr>()?;
    let mut ethertype = u16::from_be(unsafe { (*eth).ether_type });
    for _ in 0..MAX_VLAN_DEPTH {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let vlan = c.take::<VlanHdr>()?;
        ethertype = u16::from_be(unsafe { (*vlan).ether_type });
    }
    let ip_off = c.offset(start);
    let proto = match ethertype {
        ETH_P_IP => parse_ipv4(&mut c, key)?,
        ETH_P_IPV6 => parse_ipv6(&mut c, key)?,
        ETH_P_8021Q | ETH_P_8021AD => return Err(ParseError::Malformed), // deeper than the bound
        _ => return Err(ParseError::NotIp),
    };
    key.proto = proto.proto;
    let l4_off = c.offset(start);
    if proto.has_ports && proto.frag != FRAG_LATER {
        let ports = c.take::<[u8; 4]>()?;
        let ports = unsafe { *ports };
        key.sport = [ports[0], ports[1]];
        key.dport = [ports[2], ports[3]];
    }
    // Masked so the verifier can bound the reads after it (a variable packet offset must stay
    // below 64 KiB with the constant added); a transport header that deep does not exist.
    let l4 = start + usize::from(l4_off & 0x3fff);
    // The id and the length are 16 bits each: one word.
    let fp = fingerprint(l4, end, proto.proto, proto.frag == FRAG_LATER, proto.id_word | u32::from(proto.l4_len) << 16);
    // Byte 13 of a TCP header: the flags.
    let tcp_flags = if proto.proto == IPPROTO_TCP && proto.frag != FRAG_LATER { (word_at(l4 + 12, end) >> 16) as u8 } else { 0 };
    Ok(Parsed {
        ethertype,
        frag: proto.frag,
        frag_id: proto.frag_id,
        ttl: proto.ttl,
        ip_off,
        l4_off,
        l4_len: proto.l4_len,
        fp,
        tcp_flags,
    })
}

/// The big-endian word at `at`, or 0 past the end of the packet (a short packet is fingerprinted
/// by what it has).
#[inline(always)]
fn word_at(at: usize, end: usize) -> u32 {
    if at + 4 > end {
        return 0;
    }
    // SAFETY: `at + 4 <= end`, checked above: the word is inside the packet.
    u32::from_be(unsafe { load_u32(at) })
}

/// The four bytes at packet address `at` as one load, in memory order (`u32::from_ne_bytes` of
/// them). A packet word is at any alignment (the IPv4 addresses of an untagged frame are 2 mod
/// 4), so Rust's loads would be four byte loads and their shifts (`read_unaligned` on a target
/// without misaligned access): 12 of them per flow key and 12 per fingerprint. BPF's own load
/// has no alignment rule for packet data where the CPU has none (the verifier allows it unless
/// the program asks for strict alignment), and sfc's programs are built for `x86_64`.
///
/// # Safety
/// `at..at + 4` is inside the packet, as checked against `data_end` where the verifier sees it.
#[inline(always)]
pub unsafe fn load_u32(at: usize) -> u32 {
    let v: u64;
    // SAFETY: the caller's bounds; the instruction only reads those four bytes (and zero-extends
    // them into the register).
    unsafe {
        core::arch::asm!("{0} = *(u32 *)({1} + 0)", lateout(reg) v, in(reg) at, options(pure, readonly, nostack, preserves_flags));
    }
    v as u32
}

/// `load_u32`'s store: the four bytes of `v` (in memory order) at packet address `at`, as one
/// store.
///
/// # Safety
/// `at..at + 4` is inside the packet and writable, as checked against `data_end` where the
/// verifier sees it.
#[inline(always)]
pub unsafe fn store_u32(at: usize, v: u32) {
    // SAFETY: the caller's bounds; the instruction only writes those four bytes.
    unsafe {
        core::arch::asm!("*(u32 *)({0} + 0) = {1}", in(reg) at, in(reg) u64::from(v), options(nostack, preserves_flags));
    }
}

/// `Parsed::fp` of the packet whose transport header starts at `l4`: protocol `proto`, `later`
/// a later fragment (no transport header), `id_len` the IP identification (0 for IPv6) in the
/// low half and the transport length in the high half.
#[inline(always)]
fn fingerprint(l4: usize, end: usize, proto: u8, later: bool, id_len: u32) -> u32 {
    let mut w1 = word_at(l4 + 4, end);
    let mut w2 = word_at(l4 + 8, end);
    match proto {
        // UDP's checksum is the low half of bytes 4..8; SCTP's CRC32c is bytes 8..12.
        IPPROTO_UDP | IPPROTO_UDPLITE if !later => w1 &= 0xffff_0000,
        IPPROTO_SCTP if !later => w2 = 0,
        _ => {}
    }
    let w3 = word_at(l4 + 12, end);
    sfc_common::hash::fingerprint([id_len, w1, w2, w3])
}

/// `parse` of the frames most packets are, for the hit path (`fast::hop`): untagged IPv4 without
/// options and not a fragment, or untagged IPv6 without extension headers, with four bytes after
/// the IP header (a transport with ports has them there; ICMP's header is longer). The key is
/// written whole, a word at a time, zone included, so it needs no zeroing first; every field
/// equals what `parse` (on a zeroed key) and steering's `key.zone` give. `None`: any other frame,
/// for `parse`.
#[inline(always)]
pub fn plain(start: usize, end: usize, key: &mut FlowKey, zone: u32) -> Option<Parsed> {
    let mut c = Cursor::new(start, end);
    let eth = c.take::<EthHdr>().ok()?;
    // SAFETY: `take` checked that the header is inside the packet (also below).
    let ethertype = u16::from_be(unsafe { (*eth).ether_type });
    let k = (&raw mut *key).cast::<u32>();
    let put = |i: usize, word: u32| {
        // SAFETY: word `i` (< 11) of the key (44 bytes, 4-aligned: asserted below); a `FlowKey`
        // is integers and byte arrays, so any bytes are one. Volatile: LLVM would merge the zero
        // words into a call to `memset` (see `mem`).
        unsafe { k.add(i).write_volatile(word) };
    };
    // The transport's first word, its length as the IP header counts it, the IPv4 id, the
    // protocol and the TTL; the key's words but the ports' and the zone's written.
    let (l4, l4_len, id, proto, ttl) = match ethertype {
        ETH_P_IP => {
            let ip = c.take::<Ipv4Hdr>().ok()?;
            // SAFETY: as above.
            let ip = unsafe { &*ip };
            // Version 4, 20 bytes: no options. Fragment offset 0 and no more fragments.
            if ip.vihl != 0x45 || ip.frags[0] & 0x3f != 0 || ip.frags[1] != 0 {
                return None;
            }
            let l4 = c.take::<[u8; 4]>().ok()?;
            let at = &raw const *ip as usize;
            // SAFETY: the addresses are inside the header `take` checked.
            let (src, dst) = unsafe { (load_u32(at + 12), load_u32(at + 16)) };
            for (i, word) in [src, 0, 0, 0, dst, 0, 0, 0].into_iter().enumerate() {
                put(i, word);
            }
            put(9, u32::from_ne_bytes([ip.proto, FAMILY_V4, 0, 0]));
            let l4_len = u16::from_be_bytes(ip.tot_len).saturating_sub(Ipv4Hdr::LEN as u16);
            (l4, l4_len, u32::from(u16::from_be_bytes(ip.id)), ip.proto, ip.ttl)
        }
        ETH_P_IPV6 => {
            let ip = c.take::<Ipv6Hdr>().ok()?;
            // SAFETY: as above.
            let ip = unsafe { &*ip };
            if ip.vcf[0] >> 4 != 6
                || matches!(ip.next_hdr, IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_AH | IPV6_FRAGMENT)
            {
                return None;
            }
            let l4 = c.take::<[u8; 4]>().ok()?;
            let at = &raw const *ip as usize;
            for i in 0..8 {
                // SAFETY: the addresses (bytes 8..40) are inside the header `take` checked.
                put(i, unsafe { load_u32(at + 8 + 4 * i) });
            }
            put(9, u32::from_ne_bytes([ip.next_hdr, FAMILY_V6, 0, 0]));
            (l4, u16::from_be_bytes(ip.payload_len), 0, ip.next_hdr, ip.hop_limit)
        }
        _ => return None,
    };
    // SAFETY: `take` checked the four bytes.
    put(8, if carries_ports(proto) { unsafe { load_u32(l4 as usize) } } else { 0 });
    put(10, zone);
    let l4_off = c.offset(start) - 4;
    let l4 = l4 as usize;
    // The id and the length are 16 bits each: one word.
    let fp = fingerprint(l4, end, proto, false, id | u32::from(l4_len) << 16);
    let tcp_flags = if proto == IPPROTO_TCP { (word_at(l4 + 12, end) >> 16) as u8 } else { 0 };
    Some(Parsed { ethertype, frag: FRAG_NONE, frag_id: id, ttl, ip_off: EthHdr::LEN as u16, l4_off, l4_len, fp, tcp_flags })
}

/// `plain` writes a `FlowKey` as 11 words in its field order.
const _: () = {
    assert!(size_of::<FlowKey>() == 11 * 4 && align_of::<FlowKey>() >= 4);
    assert!(core::mem::offset_of!(FlowKey, dst) == 16 && core::mem::offset_of!(FlowKey, sport) == 32);
    assert!(core::mem::offset_of!(FlowKey, dport) == 34 && core::mem::offset_of!(FlowKey, proto) == 36);
    assert!(core::mem::offset_of!(FlowKey, family) == 37 && core::mem::offset_of!(FlowKey, zone) == 40);
};

#[expect(clippy::struct_field_names, reason = "`l4_len` is named as the `Parsed` field it fills")]
struct L4 {
    proto: u8,
    /// The protocol carries ports (read unless this is a later fragment).
    has_ports: bool,
    frag: u8,
    frag_id: u32,
    ttl: u8,
    /// Transport header and payload, as the IP header counts them.
    l4_len: u16,
    /// IPv4 identification (0 for IPv6), for the fingerprint.
    id_word: u32,
}


#[inline(always)]
fn parse_ipv4(c: &mut Cursor, key: &mut FlowKey) -> Result<L4, ParseError> {
    let ip = c.take::<Ipv4Hdr>()?;
    let ip = unsafe { &*ip };
    let ihl = usize::from(ip.vihl & 0x0f) * 4;
    if ip.vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
        return Err(ParseError::Malformed);
    }
    // IP options: skip them (bounded: ihl <= 60).
    c.skip(ihl - Ipv4Hdr::LEN)?;
    key.family = FAMILY_V4;
    key.src[..4].copy_from_slice(&ip.src_addr);
    key.dst[..4].copy_from_slice(&ip.dst_addr);
    // Later fragments carry no transport header; steering maps them to their first fragment.
    let frags = u16::from_be_bytes(ip.frags);
    let (offset, more) = (frags & 0x1fff, frags & 0x2000 != 0);
    let frag = if offset != 0 { FRAG_LATER } else if more { FRAG_FIRST } else { FRAG_NONE };
    Ok(L4 {
        proto: ip.proto,
        has_ports: carries_ports(ip.proto),
        frag,
        frag_id: u32::from(u16::from_be_bytes(ip.id)),
        ttl: ip.ttl,
        l4_len: u16::from_be_bytes(ip.tot_len).saturating_sub(ihl as u16),
        id_word: u32::from(u16::from_be_bytes(ip.id)),
    })
}

#[inline(always)]
fn parse_ipv6(c: &mut Cursor, key: &mut FlowKey) -> Result<L4, ParseError> {
    let ip = c.take::<Ipv6Hdr>()?;
    let start = c.pos;
    let ip = unsafe { &*ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    key.family = FAMILY_V6;
    // Addresses are copied after the walk: held across it they would be spilled byte by byte.
    let mut next = ip.next_hdr;
    let mut frag = FRAG_NONE;
    let mut frag_id = 0;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                let h = unsafe { *c.take::<[u8; 2]>()? };
                next = h[0];
                // (hdr_ext_len + 1) * 8 bytes in all, 2 already read.
                c.skip(usize::from(h[1]) * 8 + 6)?;
            }
            IPV6_AH => {
                let h = unsafe { *c.take::<[u8; 2]>()? };
                next = h[0];
                // (payload_len + 2) * 4 bytes in all, 2 already read.
                c.skip(usize::from(h[1]) * 4 + 6)?;
            }
            IPV6_FRAGMENT => {
                let h = unsafe { *c.take::<[u8; 8]>()? };
                next = h[0];
                let off = u16::from_be_bytes([h[2], h[3]]);
                frag = if off & 0xfff8 != 0 {
                    FRAG_LATER
                } else if off & 1 != 0 {
                    FRAG_FIRST
                } else {
                    FRAG_NONE
                };
                frag_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                if frag == FRAG_LATER {
                    // The rest is payload of the fragmented packet, not headers.
                    break;
                }
            }
            _ => break,
        }
    }
    // Still an extension header after the bound: we cannot find the transport header.
    if frag != FRAG_LATER
        && matches!(next, IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_AH | IPV6_FRAGMENT)
    {
        return Err(ParseError::Malformed);
    }
    // SAFETY: the key's arrays, and the header's inside the packet (its bounds were checked
    // with the header's); byte arrays, so any alignment, and the packet is not the key.
    unsafe {
        crate::mem::copy(&raw mut key.src, &raw const ip.src_addr);
        crate::mem::copy(&raw mut key.dst, &raw const ip.dst_addr);
    }
    // Extension headers are part of the payload length, not of the transport's.
    let ext = c.offset(start);
    let l4_len = u16::from_be_bytes(ip.payload_len).saturating_sub(ext);
    Ok(L4 { proto: next, has_ports: carries_ports(next), frag, frag_id, ttl: ip.hop_limit, l4_len, id_word: 0 })
}
