//! Mutations for the randomized test.

use rand::{Rng as _, rngs::SmallRng};

/// A random mutation of a random packet of `corpus`: bytes overwritten (biased to the headers
/// and to values that steer the parser), bit flips, truncation, random bytes appended, random
/// bytes after an Ethernet header, or an entirely random frame. Never shorter than 14 bytes.
pub fn mutate(rng: &mut SmallRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    // Fields worth hitting on purpose (ethertypes, VLAN TPIDs, IP version, next headers).
    const MAGIC: &[u8] = &[0x08, 0x00, 0x86, 0xdd, 0x81, 0x88, 0xa8, 0x45, 0x4f, 0x60, 0, 6, 17, 43, 44, 51, 60, 0xff];
    let mut p = corpus[rng.random_range(0..corpus.len())].clone();
    match rng.random_range(0..10) {
        // A handful of random bytes overwritten, biased to the headers.
        0..=3 => {
            for _ in 0..rng.random_range(1..=6) {
                let limit = p.len().min(if rng.random_bool(0.8) { 80 } else { usize::MAX });
                let i = rng.random_range(0..limit);
                p[i] = if rng.random_bool(0.3) { MAGIC[rng.random_range(0..MAGIC.len())] } else { rng.random() };
            }
        }
        // Bit flips.
        4..=5 => {
            for _ in 0..rng.random_range(1..=4) {
                let i = rng.random_range(0..p.len());
                p[i] ^= 1 << rng.random_range(0..8);
            }
        }
        // Truncation.
        6 => p.truncate(rng.random_range(14..=p.len())),
        // Random bytes appended.
        7 => {
            for _ in 0..rng.random_range(1..200) {
                p.push(rng.random());
            }
        }
        // Random bytes after a valid Ethernet header with a chosen ethertype.
        8 => {
            let et: u16 = [0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806][rng.random_range(0..5)];
            p.truncate(12);
            p.extend_from_slice(&et.to_be_bytes());
            for _ in 0..rng.random_range(0..120) {
                p.push(rng.random());
            }
        }
        // Entirely random frame.
        _ => p = (0..rng.random_range(14..300)).map(|_| rng.random()).collect(),
    }
    p
}
