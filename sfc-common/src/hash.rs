//! The flow hash that picks a group member. Kernel and userspace (`sfc explain`) must compute the
//! same value for the same packet, so it lives here, in plain integer code both can run.

// These run inside the BPF program too, where every call must be inlined (helper-free code
// is cheapest there, and the verifier sees one straight line).
#![expect(clippy::inline_always, reason = "inlined into the BPF program on purpose")]

use crate::maps::{FlowKey, LB_IP_DST, LB_IP_PROTO, LB_IP_SRC, LB_L4_DST, LB_L4_SRC};

const SEED: u32 = 0x5fc0_5fc0;

/// One word into a running hash.
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

/// The fingerprint of a packet (the loop guard's and the SF timing's: the same packet, the same
/// value at every hop) from four words of it. Each word goes through its own multiply by an odd
/// constant (a bijection), so packets that differ in one word always differ; the four products
/// are independent and `fmix` then spreads every bit over the low ones that sampling reads
/// (`fp % every`). murmur's `mix` chained over the words (the first version) gave the same
/// guarantees with a chain of dependent steps several times as long, on every packet.
#[inline(always)]
pub fn fingerprint([a, b, c, d]: [u32; 4]) -> u32 {
    fmix(a.wrapping_mul(0x9e37_79b1) ^ b.wrapping_mul(0x85eb_ca77) ^ c.wrapping_mul(0xc2b2_ae3d) ^ d.wrapping_mul(0x27d4_eb2f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_that_differ_in_one_word_have_other_fingerprints() {
        let base = [0x1234_0042, 0x001a_0000, 7, 0xdead_beef];
        let fp = fingerprint(base);
        for word in 0..4 {
            for bit in 0..32 {
                let mut w = base;
                w[word] ^= 1 << bit;
                assert_ne!(fingerprint(w), fp, "word {word} bit {bit}");
            }
        }
    }

    #[test]
    fn sampling_by_fingerprint_takes_about_one_packet_in_sixteen() {
        // Packets of one flow differ in the IPv4 id (the high half of the first word here, as
        // the program packs it) and in a sequence number (TCP bytes 4..8).
        let (mut by_id, mut by_seq) = ([0u32; 16], [0u32; 16]);
        for i in 0..16_000u32 {
            by_id[(fingerprint([i & 0xffff | 60 << 16, 0x0026_0000, 0, 0]) % 16) as usize] += 1;
            by_seq[(fingerprint([7 | 60 << 16, i.wrapping_mul(1448), 0x5010_01f5, 0]) % 16) as usize] += 1;
        }
        for (what, counts) in [("id", by_id), ("seq", by_seq)] {
            assert!(counts.iter().all(|c| (800..1200).contains(c)), "{what}: {counts:?}");
        }
    }
}
