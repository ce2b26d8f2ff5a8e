//! Transport checksums a local sender left to "hardware", completed before an XDP redirect.
//!
//! A TCP or UDP packet generated on this host and sent through a veth carries `CHECKSUM_PARTIAL`:
//! its checksum field holds only the pseudo-header sum, and the skb says where the real sum must
//! go. tc redirects keep the skb and with it that note; an XDP redirect turns the frame into an
//! `xdp_frame`, the note is lost, and the receiver would see a wrong checksum (TCP through a
//! native XDP chain on veth stalls for exactly this reason). So the XDP path completes the sum.
//!
//! XDP cannot read `ip_summed`, but a partial checksum is recognisable: the field equals the
//! folded pseudo-header sum. Completing a checksum that was already complete and happens to look
//! like that (1 in 65,535) writes back the value it had, so the test needs no certainty.
//!
//! SCTP offloads a `CRC32c` instead, left as zero; computing it here would cost a table walk per
//! byte. Such packets are dropped and counted (`checksum_offload`), see `sfc_common::DropReason`.

use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use sfc_common::{
    DropReason,
    limits::{CSUM_CHUNK, MAX_CSUM_CHUNKS},
    maps::FlowKey,
};

use crate::{
    maps::SFC_CSUM_BUF,
    parse::{FRAG_NONE, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, Parsed},
};

/// Offset of the checksum field in the transport header.
const TCP_CHECK: usize = 16;
const UDP_CHECK: usize = 6;
const SCTP_CHECK: usize = 8;
/// Deepest transport header whose checksum is completed: Ethernet, two VLAN tags, IPv6 and
/// 1,024 bytes of extension headers.
const MAX_L4_OFF: usize = 14 + 8 + 40 + 1024;

#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The pseudo-header sum of RFC 793 / RFC 8200 in memory byte order (as the checksum field is
/// read): IPv4 addresses are the first 4 of the 16 key bytes, the rest are zero and add nothing.
#[inline(always)]
fn pseudo_header(key: &FlowKey, l4_len: u16) -> u64 {
    let mut sum = 0u64;
    for i in 0..8 {
        sum += u64::from(u16::from_ne_bytes([key.src[2 * i], key.src[2 * i + 1]]));
        sum += u64::from(u16::from_ne_bytes([key.dst[2 * i], key.dst[2 * i + 1]]));
    }
    sum += u64::from(u16::from_ne_bytes(l4_len.to_be_bytes()));
    sum += u64::from(u16::from_ne_bytes([0, key.proto]));
    sum
}

/// Completes the transport checksum of `p` if the sender left it to offload. Packets whose
/// lengths do not add up are left as they are (the receiver's checks deal with them). A BPF
/// subprogram: verified on its own instead of multiplying the caller's states.
#[inline(never)]
pub fn complete(ctx: &XdpContext, p: &Parsed, key: &FlowKey) -> Result<(), DropReason> {
    let check = match key.proto {
        IPPROTO_TCP => TCP_CHECK,
        IPPROTO_UDP => UDP_CHECK,
        IPPROTO_SCTP => SCTP_CHECK,
        _ => return Ok(()),
    };
    // Fragments are never checksum-offloaded (the stack sums a packet before it fragments it).
    // Headers deeper than MAX_L4_OFF (long IPv6 extension header chains) are not looked into:
    // the verifier only accepts packet offsets it can bound.
    // A transport segment too short to hold its checksum field (the IP length says so, whatever
    // padding follows) has no checksum to complete: the bytes there are not the packet's.
    if p.frag != FRAG_NONE || usize::from(p.l4_len) < check + 2 || usize::from(p.l4_off) > MAX_L4_OFF {
        return Ok(());
    }
    let field = ctx.data() + usize::from(p.l4_off) + check;
    if field + 4 > ctx.data_end() {
        return Ok(());
    }
    if key.proto == IPPROTO_SCTP {
        let crc = unsafe { *(field as *const [u8; 4]) };
        return if crc == [0; 4] { Err(DropReason::ChecksumOffload) } else { Ok(()) };
    }
    let have = unsafe { *(field as *const u16) };
    if have != fold(pseudo_header(key, p.l4_len)) || (key.proto == IPPROTO_UDP && have == 0) {
        return Ok(());
    }
    let Some(sum) = l4_sum(ctx, u32::from(p.l4_off), u32::from(p.l4_len)) else {
        return Ok(());
    };
    let mut new = !fold(sum);
    if key.proto == IPPROTO_UDP && new == 0 {
        new = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    if field + 2 <= ctx.data_end() {
        unsafe { *(field as *mut u16) = new };
    }
    Ok(())
}

/// One's complement sum of `len` bytes at `off` (the transport header with its partial checksum,
/// and the payload), in chunks copied to a scratch buffer. A BPF subprogram: its loop is
/// verified once, not once per caller. `None` when the bytes are not all there or longer than
/// `MAX_CSUM_CHUNKS` chunks.
#[inline(never)]
fn l4_sum(ctx: &XdpContext, off: u32, len: u32) -> Option<u64> {
    let buf = SFC_CSUM_BUF.get_ptr_mut(0)?;
    let buf = unsafe { &mut *buf };
    let mut sum = 0u64;
    let mut done = 0u32;
    for _ in 0..MAX_CSUM_CHUNKS {
        if done >= len {
            return Some(sum);
        }
        let n = (len - done).min(CSUM_CHUNK as u32);
        // LLVM knows 0 < n <= CSUM_CHUNK here and drops the checks; the verifier, which lost
        // track of `len - done`, needs them for the helpers' sizes (see `steer::forward`).
        let n = unsafe { core::ptr::read_volatile(&raw const n) };
        if n == 0 || n > CSUM_CHUNK as u32 {
            return None;
        }
        // Zero the bytes up to the next multiple of 4 (bpf_csum_diff sums whole words); trailing
        // zeros add nothing and every chunk starts at an even offset.
        let pad = (n as usize) & !3 & (CSUM_CHUNK * 2 - 1);
        if pad + 4 <= buf.len() {
            buf[pad..pad + 4].copy_from_slice(&[0; 4]);
        }
        let r = unsafe { bpf_xdp_load_bytes(ctx.ctx, off + done, buf.as_mut_ptr().cast(), n) };
        if r != 0 {
            return None;
        }
        let words = (n + 3) & !3;
        let s = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, buf.as_mut_ptr().cast(), words, 0) };
        if s < 0 {
            return None;
        }
        sum += s as u64 & 0xffff_ffff;
        done += n;
    }
    (done >= len).then_some(sum)
}
