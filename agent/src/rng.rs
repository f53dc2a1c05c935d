//! Deterministic randomness: every worker derives its stream from (seed, workload, index).

/// xoshiro256** seeded through splitmix64. Same seed, same sequence, on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        Rng {
            s: [
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
            ],
        }
    }

    /// The stream of worker `index` of workload `workload` in a run seeded with `seed`.
    pub fn derive(seed: u64, workload: &str, index: u64) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in workload.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        let mut x = seed ^ h.rotate_left(17) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng::new(splitmix(&mut x))
    }

    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in [0, n) (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Printable random bytes (values that are readable in MONITOR and logs).
    pub fn alnum(&mut self, len: usize) -> Vec<u8> {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| A[self.below(A.len() as u64) as usize])
            .collect()
    }

    /// A random (version 4) UUID string, lowercase and hyphenated, like Python's `str(uuid4())`.
    pub fn uuid4(&mut self) -> String {
        let mut b = [0u8; 36];
        self.uuid4_into(&mut b).to_string()
    }

    /// [`Rng::uuid4`] written into `out` (no allocation; the same draws).
    pub fn uuid4_into<'a>(&mut self, out: &'a mut [u8; 36]) -> &'a str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let mut j = 0;
        for (i, x) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[j] = b'-';
                j += 1;
            }
            out[j] = HEX[(x >> 4) as usize];
            out[j + 1] = HEX[(x & 15) as usize];
            j += 2;
        }
        std::str::from_utf8(out).expect("hex digits and hyphens")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn deterministic_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::derive(7, "cache", 1).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::derive(7, "cache", 1).next_u64(),
            Rng::derive(7, "cache", 2).next_u64()
        );
        let u = Rng::new(1).uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }
}
