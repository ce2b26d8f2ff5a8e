//! The flow hash that picks a group member. Kernel and userspace (`sfc explain`) must compute the
//! same value for the same packet, so it lives here, in plain integer code both can run.

// These run inside the BPF program too, where every call must be inlined (helper-free code
// is cheapest there, and the verifier sees one straight line).
#![expect(clippy::inline_always, reason = "inlined into the BPF program on purpose")]

use crate::maps::{FlowKey, LB_IP_DST, LB_IP_PROTO, LB_IP_SRC, LB_L4_DST, LB_L4_SRC};

const SEED: u32 = 0x5fc0_5fc0;

/// One word into a running hash (also the loop guard's packet fingerprint in sfc-ebpf).
#[inline(always)]
pub fn mix(h: u32, w: u32) -> u32 {
    // murmur3's per-word step: cheap, and every input bit reaches every output bit after fmix.
    let k = w.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
    (h ^ k).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// The finishing step of a hash built with `mix`.
#[inline(always)]
pub fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline(always)]
fn word(b: &[u8; 16], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Hash of the fields of `key` selected by `fields` (`LB_*` bits).
#[inline(always)]
pub fn flow_hash(key: &FlowKey, fields: u32) -> u32 {
    let mut h = SEED;
    if fields & LB_IP_SRC != 0 {
        h = mix(h, word(&key.src, 0));
        h = mix(h, word(&key.src, 4));
        h = mix(h, word(&key.src, 8));
        h = mix(h, word(&key.src, 12));
    }
    if fields & LB_IP_DST != 0 {
        h = mix(h, word(&key.dst, 0));
        h = mix(h, word(&key.dst, 4));
        h = mix(h, word(&key.dst, 8));
        h = mix(h, word(&key.dst, 12));
    }
    if fields & LB_IP_PROTO != 0 {
        h = mix(h, u32::from(key.proto));
    }
    if fields & LB_L4_SRC != 0 {
        h = mix(h, u32::from(u16::from_be_bytes(key.sport)));
    }
    if fields & LB_L4_DST != 0 {
        h = mix(h, u32::from(u16::from_be_bytes(key.dport)) << 16);
    }
    fmix(h)
}
