//! A fast multiply-rotate hash over 8 bytes at a time: for tables keyed by short codes fixed at
//! construction, where SipHash's flooding resistance buys nothing, and, seeded at random and
//! finished with [`mix`], for the pacer's scope fingerprints.

use std::hash::Hasher;

const MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher; [`Default`] starts from zero, [`FoldHasher::seeded`] from a key.
#[derive(Default, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

impl FoldHasher {
    /// A hasher keyed by `seed`.
    pub(crate) fn seeded(seed: u64) -> Self {
        FoldHasher(seed)
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(MULTIPLIER);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(MULTIPLIER);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A final mix (murmur3's), so that close inputs do not give close fingerprints.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}
