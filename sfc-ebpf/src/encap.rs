//! SFC-aware service functions (`correlation: mpls | nsh` on a port pair): the packet is sent
//! into the member with a header naming the chain (SPI) and the hop (SI = 255 - hop), and comes
//! back with the SI the function chose (it lowers it by one, RFC 8300, or more to skip hops).
//!
//! - MPLS: one label (bottom of stack, TTL 255), label = `(chain_id << 8) | SI` as
//!   networking-sfc encodes it (so a chain with MPLS members has an id below 4096).
//! - NSH (RFC 8300) over Ethernet (0x894F): base header (version 0, TTL 63, MD type 1 with 16
//!   bytes of fixed context, or MD type 2 with no TLVs), service path header (SPI 24 bits, SI 8).
//!
//! Pushing happens once the packet's way is decided, after the redirect helper (which only
//! notes the target), where the verifier has few states to walk: `push`, called by both entry
//! points. Removing happens before parsing, on the member's egress, in XDP only: tc's
//! `bpf_skb_adjust_room` refuses an skb whose protocol is not IP, so the loader runs XDP on those
//! interfaces (`IF_F_DECAP`). Steering then checks the SI against the flow (`steer`).

use aya_ebpf::{
    bindings::bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use sfc_common::{
    DropReason,
    maps::{DIR_FORWARD, ENCAP_MPLS, ENCAP_NSH, ETH_P_MPLS_UC, ETH_P_NSH, PP_F_ENCAP},
    trace::TV_MEMBER,
};

use crate::{
    ctx::PacketCtx,
    maps::{SFC_ENCAP, SFC_SCRATCH, Scratch, port_pair},
    parse::{load_u32, store_u32},
};

/// Header lengths: an MPLS label, NSH with MD type 1 (base, service path, 16 bytes of context),
/// NSH with MD type 2 and no TLVs.
pub const MPLS_LEN: usize = 4;
pub const NSH_MD1_LEN: usize = 24;
pub const NSH_MD2_LEN: usize = 8;
const ETH_HLEN: usize = 14;
/// NSH's next protocol: IPv4, IPv6.
const NSH_IPV4: u8 = 1;
const NSH_IPV6: u8 = 2;
/// The TTL a pushed NSH header starts with (RFC 8300's recommended default).
const NSH_TTL: u8 = 63;

/// What steering needs from a frame back from an SFC-aware member: the SPI (chain) and SI it
/// carried. Kept in `Scratch::decap` for the packet.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Decap {
    /// 1: the frame carried a header (then `spi` and `si` are its).
    pub on: u32,
    pub spi: u32,
    pub si: u32,
}

/// Pushes the header of the member this packet was just sent into (the steering note says
/// which), if it is SFC-aware. A BPF subprogram: verified once per program type.
#[inline(never)]
pub fn push<C: PacketCtx>(ctx: &C) -> Result<(), DropReason> {
    let Some(scratch) = SFC_SCRATCH.get_ptr_mut(0) else { return Ok(()) };
    // SAFETY: this CPU's element of a per-CPU array only this program touches.
    let scratch: &Scratch = unsafe { &*scratch };
    let n = &scratch.note;
    if n.verdict != TV_MEMBER || n.ifindex != ctx.ifindex() || u32::from(n.dir) != DIR_FORWARD {
        return Ok(());
    }
    if port_pair(n.port_pair).is_none_or(|pp| pp.flags & PP_F_ENCAP == 0) {
        return Ok(());
    }
    let Some(e) = SFC_ENCAP.get(n.port_pair) else { return Err(DropReason::EncapFailed) };
    let ethertype = ctx.load_u16(12).ok_or(DropReason::EncapFailed)?;
    let ipv6 = match ethertype {
        0x0800 => false,
        0x86dd => true,
        // A VLAN-tagged frame: the header would go between the tag and the IP packet, which no
        // member is told to expect.
        _ => return Err(DropReason::EncapFailed),
    };
    let (spi, si) = (n.chain_id, n.si);
    match e.kind {
        ENCAP_MPLS => {
            // 20-bit label (chain << 8 | SI), TC 0, bottom of stack, TTL 255.
            let label = (((spi & 0xfff) << 8) | u32::from(si)) << 12 | 1 << 8 | 0xff;
            ctx.push_header(ETH_P_MPLS_UC, &label.to_be_bytes())
        }
        ENCAP_NSH => {
            let next = if ipv6 { NSH_IPV6 } else { NSH_IPV4 };
            let sp = ((spi & 0x00ff_ffff) << 8 | u32::from(si)).to_be_bytes();
            if e.md_type == 2 {
                let h = nsh_base(NSH_MD2_LEN, 2, next, sp);
                ctx.push_header(ETH_P_NSH, &h)
            } else {
                let b = nsh_base(NSH_MD1_LEN, 1, next, sp);
                let mut h = [0u8; NSH_MD1_LEN];
                h[..8].copy_from_slice(&b);
                h[8..].copy_from_slice(&e.context);
                ctx.push_header(ETH_P_NSH, &h)
            }
        }
        _ => Err(DropReason::EncapFailed),
    }
}

/// NSH's base header and service path header: version 0, O 0, TTL, length in 4-byte words, MD
/// type, next protocol; then SPI and SI (`sp`).
#[inline(always)]
fn nsh_base(len: usize, md_type: u8, next: u8, sp: [u8; 4]) -> [u8; 8] {
    let words = (len / 4) as u8;
    [NSH_TTL >> 2, (NSH_TTL & 3) << 6 | words, md_type & 0xf, next, sp[0], sp[1], sp[2], sp[3]]
}

/// Reads and removes the header of a frame back from an SFC-aware member, into `d`. A frame
/// without one leaves `d` off. A BPF subprogram.
#[inline(never)]
#[expect(clippy::cast_possible_wrap, reason = "a header is 4, 8 or 24 bytes")]
pub fn pop(ctx: &XdpContext, decap: bool, d: &mut Decap) -> Result<(), DropReason> {
    d.on = 0;
    if !decap {
        return Ok(());
    }
    let mut h = [0u8; 12];
    // Ethertype and the first 10 bytes after it.
    // SAFETY: the helper writes at most 12 bytes into `h`, which lives across the call.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, 12, h.as_mut_ptr().cast(), 12) } != 0 {
        return Ok(());
    }
    let ethertype = u16::from_be_bytes([h[0], h[1]]);
    let (len, spi, si, ip) = match ethertype {
        ETH_P_MPLS_UC => {
            let label = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
            // One label (bottom of stack) with IP after it.
            if label & 1 << 8 == 0 {
                return Err(DropReason::EncapMismatch);
            }
            let value = label >> 12;
            (MPLS_LEN, value >> 8, value & 0xff, h[6] >> 4)
        }
        ETH_P_NSH => {
            let (ver, words, md, next) = (h[2] >> 6, h[3] & 0x3f, h[4] & 0xf, h[5]);
            let len = usize::from(words) * 4;
            // What sfc sent comes back: MD type 1 (with its context) or 2 without TLVs.
            if ver != 0 || !((md == 1 && len == NSH_MD1_LEN) || (md == 2 && len == NSH_MD2_LEN)) {
                return Err(DropReason::EncapMismatch);
            }
            let ip = match next {
                NSH_IPV4 => 4,
                NSH_IPV6 => 6,
                _ => return Err(DropReason::EncapMismatch),
            };
            (len, u32::from_be_bytes([0, h[6], h[7], h[8]]), u32::from(h[9]), ip)
        }
        _ => return Ok(()),
    };
    let inner: u16 = match ip {
        4 => 0x0800,
        6 => 0x86dd,
        _ => return Err(DropReason::EncapMismatch),
    };
    // The Ethernet addresses and the inner ethertype move forward over the header, then the
    // head follows them. Any frame with an IP packet behind the largest header is at least 38
    // bytes long: one constant bound serves the three lengths (the verifier needs constants).
    let data = ctx.data();
    if data + ETH_HLEN + NSH_MD1_LEN > ctx.data_end() {
        return Err(DropReason::EncapMismatch);
    }
    // SAFETY: bytes 0..38 are inside the frame (checked above); every write ends by byte 38.
    unsafe {
        let macs = *(data as *const [u8; 12]);
        let t = inner.to_be_bytes();
        match len {
            MPLS_LEN => {
                *((data + MPLS_LEN) as *mut [u8; 12]) = macs;
                *((data + MPLS_LEN + 12) as *mut [u8; 2]) = t;
            }
            NSH_MD2_LEN => {
                *((data + NSH_MD2_LEN) as *mut [u8; 12]) = macs;
                *((data + NSH_MD2_LEN + 12) as *mut [u8; 2]) = t;
            }
            _ => {
                *((data + NSH_MD1_LEN) as *mut [u8; 12]) = macs;
                *((data + NSH_MD1_LEN + 12) as *mut [u8; 2]) = t;
            }
        }
    }
    // SAFETY: the context pointer the kernel handed the program.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, len as i32) } != 0 {
        return Err(DropReason::EncapFailed);
    }
    d.on = 1;
    d.spi = spi;
    d.si = si;
    Ok(())
}

/// tc's part: a header is pushed with `bpf_skb_adjust_room` (the skb's protocol is IP then).
#[inline(always)]
#[expect(clippy::cast_possible_wrap, reason = "a header is 4, 8 or 24 bytes")]
pub fn push_tc(ctx: &TcContext, ethertype: u16, h: &[u8]) -> Result<(), DropReason> {
    ctx.adjust_room(h.len() as i32, BPF_ADJ_ROOM_MAC, 0).map_err(|_| DropReason::EncapFailed)?;
    ctx.store(12, &ethertype.to_be_bytes(), 0).map_err(|_| DropReason::EncapFailed)?;
    match h.len() {
        MPLS_LEN => store_n::<MPLS_LEN>(ctx, h),
        NSH_MD2_LEN => store_n::<NSH_MD2_LEN>(ctx, h),
        _ => store_n::<NSH_MD1_LEN>(ctx, h),
    }
}

#[inline(always)]
fn store_n<const N: usize>(ctx: &TcContext, h: &[u8]) -> Result<(), DropReason> {
    let mut b = [0u8; N];
    let n = h.len().min(N);
    b[..n].copy_from_slice(&h[..n]);
    ctx.store(ETH_HLEN, &b, 0).map_err(|_| DropReason::EncapFailed)
}

/// XDP's part: room at the head, the Ethernet addresses moved to it, then the ethertype and
/// the header.
#[inline(always)]
#[expect(clippy::cast_possible_wrap, reason = "a header is 4, 8 or 24 bytes")]
pub fn push_xdp(ctx: &XdpContext, ethertype: u16, h: &[u8]) -> Result<(), DropReason> {
    let len = h.len();
    // SAFETY: the context pointer the kernel handed the program.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(len as i32)) } != 0 {
        return Err(DropReason::EncapFailed);
    }
    let data = ctx.data();
    if data + ETH_HLEN + NSH_MD1_LEN > ctx.data_end() {
        // Shorter than any IP packet behind the largest header: never a chain packet, but the
        // verifier needs one bound for the three lengths.
        return Err(DropReason::EncapFailed);
    }
    // SAFETY: bytes 0..14 + 24 are inside the frame (checked above); `len` <= 24.
    unsafe {
        let from = match len {
            MPLS_LEN => data + MPLS_LEN,
            NSH_MD2_LEN => data + NSH_MD2_LEN,
            _ => data + NSH_MD1_LEN,
        };
        // The addresses move `len` bytes forward: all three words read before any is written.
        // Word loads and stores, not an array's copy, which is a call to `memmove`: a function
        // whose frame counts against the stack on kernels before 6.9 (see `sfc_tc_ingress`), at
        // the end of the XDP program's deepest chain of calls.
        let macs = [load_u32(from), load_u32(from + 4), load_u32(from + 8)];
        for (i, w) in macs.into_iter().enumerate() {
            store_u32(data + 4 * i, w);
        }
        *((data + 12) as *mut [u8; 2]) = ethertype.to_be_bytes();
        let out = (data + ETH_HLEN) as *mut u8;
        // Volatile reads, after the helper: LLVM would otherwise keep the header's bytes in
        // registers across `bpf_xdp_adjust_head`, spilled to the stack one slot each.
        for i in 0..len.min(NSH_MD1_LEN) {
            *out.add(i) = h.as_ptr().add(i).read_volatile();
        }
    }
    Ok(())
}
