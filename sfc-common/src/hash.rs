//! The flow hash that picks a group member, and the packet fingerprint. Kernel and userspace
//! (`sfc explain`) must compute the same flow hash for the same packet, so it lives here, in
//! plain integer code both can run; the fingerprint lives with it and is tested here.

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
/// constant (a bijection), so packets that differ in one word always differ. A multiply passes
/// a change of the top bit on unmixed (`(x ^ 1 << 31) * k == x * k ^ 1 << 31`), so each product
/// is rotated by its own amount before the xor: top-bit changes in two words land on different
/// bits and cannot cancel. `fmix` then spreads every bit over the low ones that sampling reads
/// (`fp % every`). murmur's `mix` chained over the words (the first version) had a chain of
/// dependent steps several times as long, on every packet.
#[inline(always)]
pub fn fingerprint([a, b, c, d]: [u32; 4]) -> u32 {
    let lanes = a.wrapping_mul(0x9e37_79b1)
        ^ b.wrapping_mul(0x85eb_ca77).rotate_left(8)
        ^ c.wrapping_mul(0xc2b2_ae3d).rotate_left(16)
        ^ d.wrapping_mul(0x27d4_eb2f).rotate_left(24);
    fmix(lanes)
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
    fn changes_of_the_top_bit_in_two_words_do_not_cancel() {
        let base = [0x1234_0042, 0x001a_0000, 7, 0xdead_beef];
        let fp = fingerprint(base);
        for i in 0..4 {
            for j in i + 1..4 {
                let mut w = base;
                w[i] ^= 1 << 31;
                w[j] ^= 1 << 31;
                assert_ne!(fingerprint(w), fp, "words {i} and {j}");
            }
        }
    }

    #[test]
    fn sampling_by_fingerprint_takes_about_one_packet_in_sixteen() {
        // The words as the program reads them: the IPv4 id in the low half of the first, the
        // transport length in its high half. UDP (64-byte frames, length 26: bytes 4..8 are
        // the UDP length and the masked checksum, the payload after) with ids counting up; TCP
        // (a 1,448-byte segment, length 1,480) with its sequence number going up by 1,448 in
        // bytes 4..8, the acknowledgement after, and id 0 (a stack that sets DF may).
        let (mut udp, mut tcp) = ([0u32; 16], [0u32; 16]);
        for i in 0..16_000u32 {
            udp[(fingerprint([i & 0xffff | 26 << 16, 26 << 16, 0, 0]) % 16) as usize] += 1;
            tcp[(fingerprint([1480 << 16, i.wrapping_mul(1448), 0x0000_0001, 0x5010_01f5]) % 16) as usize] += 1;
        }
        for (what, counts) in [("udp", udp), ("tcp", tcp)] {
            assert!(counts.iter().all(|c| (800..1200).contains(c)), "{what}: {counts:?}");
        }
        // The bench's sender (`xtask/src/bench/udp.rs`): those UDP frames, ids 0..1024 in turn.
        let sampled = (0..1024u32).filter(|i| fingerprint([i | 26 << 16, 26 << 16, 0, 0]).is_multiple_of(16)).count();
        assert!((40..90).contains(&sampled), "{sampled} of the bench's 1,024 frames sampled");
    }
}
