//! The kernel's side of `BPF_PROG_TEST_RUN` as the harnesses use it (the fixtures and the micro
//! benchmark): the verdict values of both program types and the context a run is given.

use sfc::model::AttachMode;

/// tc verdicts (`TC_ACT_*`).
pub const PASS: u32 = 0;
pub const DROP: u32 = 2;
pub const REDIRECT: u32 = 7;

/// XDP verdicts (`XDP_*`).
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// `struct __sk_buff` (include/uapi/linux/bpf.h): 192 bytes; `ifindex` follows `len`,
/// `pkt_type`, `mark`, `queue_mapping`, `protocol`, `vlan_present`, `vlan_tci`, `vlan_proto`,
/// `priority` and `ingress_ifindex` (ten `__u32`s). The kernel only accepts a few nonzero fields
/// (`convert___skb_to_skb`: `mark`, `priority`, `ingress_ifindex`, `ifindex`, `cb`, `tstamp`,
/// `wire_len`, `gso_segs`, `gso_size`, `hwtstamp`); `len` must stay 0, it is taken from the data.
const SKB_CTX_LEN: usize = 192;
const SKB_IFINDEX_OFFSET: usize = 40;
/// `struct xdp_md`: `data`, `data_end`, `data_meta`, `ingress_ifindex`, `rx_queue_index`,
/// `egress_ifindex` (six `__u32`s). The kernel reads `data` as the metadata length (0 here) and
/// `data_end` as the length of the frame's linear part: left at 0, the program sees an empty
/// frame.
const XDP_CTX_LEN: usize = 24;
const XDP_DATA_END_OFFSET: usize = 4;
const XDP_INGRESS_IFINDEX_OFFSET: usize = 12;

/// The context for one run of `mode`'s program on a packet of `len` bytes arriving on `ifindex`.
pub fn context(mode: AttachMode, ifindex: u32, len: usize) -> Vec<u8> {
    let put = |ctx: &mut Vec<u8>, at: usize, v: u32| ctx[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    match mode {
        AttachMode::Tc => {
            let mut ctx = vec![0u8; SKB_CTX_LEN];
            put(&mut ctx, SKB_IFINDEX_OFFSET, ifindex);
            ctx
        }
        AttachMode::Xdp => {
            let mut ctx = vec![0u8; XDP_CTX_LEN];
            put(&mut ctx, XDP_DATA_END_OFFSET, u32::try_from(len).unwrap_or(u32::MAX));
            put(&mut ctx, XDP_INGRESS_IFINDEX_OFFSET, ifindex);
            ctx
        }
    }
}
