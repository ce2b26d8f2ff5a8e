//! Transport checksums of test frames: what a sender with checksum offload leaves in them
//! (`offloaded`), and whether a frame's TCP/UDP checksum is right (`transport_ok`). Written here
//! from the RFCs rather than taken from the datapath, so the two can be checked against each
//! other.

const ETH_LEN: usize = 14;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// Where a frame's transport header is, and what its checksum covers.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub proto: u8,
    /// Offset of the transport header in the frame.
    pub off: usize,
    /// Transport header and payload, as the IP header counts them.
    pub len: usize,
    /// The pseudo-header's one's complement sum (not folded).
    pub pseudo: u32,
}

impl Transport {
    /// Offset of the checksum field (TCP or UDP only).
    pub fn check_off(&self) -> Option<usize> {
        match self.proto {
            TCP => Some(self.off + 16),
            UDP => Some(self.off + 6),
            _ => None,
        }
    }
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    u16::try_from(s).unwrap_or(0)
}

/// The transport of an Ethernet frame with up to two VLAN tags, IPv4 or IPv6 with hop-by-hop,
/// routing and destination options headers; `None` for anything else or when lengths do not
/// add up.
pub fn transport(frame: &[u8]) -> Option<Transport> {
    let mut off = ETH_LEN;
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        ethertype = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
        off += 4;
    }
    let ip = frame.get(off..)?;
    let (proto, l4_off, len, addrs) = match ethertype {
        0x0800 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            (*ip.get(9)?, off + ihl, total.checked_sub(ihl)?, ip.get(12..20)?)
        }
        0x86dd => {
            let payload = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let (mut next, mut ext) = (*ip.get(6)?, 0usize);
            while matches!(next, 0 | 43 | 60) {
                let h = ip.get(40 + ext..40 + ext + 2)?;
                next = h[0];
                ext += (usize::from(h[1]) + 1) * 8;
            }
            (next, off + 40 + ext, payload.checked_sub(ext)?, ip.get(8..40)?)
        }
        _ => return None,
    };
    if l4_off + len > frame.len() {
        return None;
    }
    let pseudo = sum16(addrs) + u32::from(proto) + u32::try_from(len).ok()?;
    Some(Transport { proto, off: l4_off, len, pseudo })
}

/// `frame` as a sender that offloads its TCP/UDP checksum leaves it (`CHECKSUM_PARTIAL`): the
/// checksum field holds the folded pseudo-header sum.
pub fn offloaded(frame: &[u8]) -> Vec<u8> {
    let t = transport(frame).expect("a TCP/UDP test frame");
    let at = t.check_off().expect("TCP or UDP");
    let mut v = frame.to_vec();
    v[at..at + 2].copy_from_slice(&fold(t.pseudo).to_be_bytes());
    v
}

/// Whether the frame's TCP/UDP checksum is correct (a UDP checksum of 0, "none", counts as
/// correct); `None` when the frame has no TCP/UDP transport this module can find.
pub fn transport_ok(frame: &[u8]) -> Option<bool> {
    let t = transport(frame)?;
    let at = t.check_off()?;
    if t.proto == UDP && frame[at..at + 2] == [0, 0] {
        return Some(true);
    }
    Some(fold(t.pseudo + sum16(&frame[t.off..t.off + t.len])) == 0xffff)
}
