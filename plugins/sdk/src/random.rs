//! This VU's random stream, seeded by the host from the run seed and the VU id,
//! so a run with the same seed makes the same choices.
//!
//! Prefer it to other sources (`HashMap`'s seed, `getrandom`): those are not
//! reproducible and add WASI imports.

use crate::__private::bindings::valkey_chaos::plugin::random as raw;

/// A uniformly random `u64`.
pub fn next_u64() -> u64 {
    raw::next_u64()
}

/// A uniform integer in `[low, high)`; `low` when the range is empty.
pub fn range(low: u64, high: u64) -> u64 {
    if high <= low {
        low
    } else {
        raw::range(low, high)
    }
}

/// A uniform integer in `[0, n)`; 0 when `n` is 0.
pub fn below(n: u64) -> u64 {
    range(0, n)
}

/// A uniform `f64` in `[0, 1)`.
pub fn unit() -> f64 {
    unit_from(next_u64())
}

/// `true` with probability `p` (clamped to `[0, 1]`).
pub fn chance(p: f64) -> bool {
    unit() < p
}

/// `len` random bytes.
pub fn bytes(len: u32) -> Vec<u8> {
    raw::bytes(len)
}

/// A random element of `items`, `None` when empty.
pub fn pick<T>(items: &[T]) -> Option<&T> {
    items.get(usize::try_from(below(items.len() as u64)).ok()?)
}

/// A 128-bit random token as 32 lowercase hex digits (e.g. a lock owner).
pub fn token() -> String {
    format!("{:016x}{:016x}", next_u64(), next_u64())
}

/// A popularity rank in `[0, n)` drawn from a Zipf-like (power-law)
/// distribution with exponent `s`: rank 0 is the most popular.
/// `s = 0` is uniform, `s = 1` is classic Zipf, larger `s` is more skewed.
/// Uses a continuous approximation: O(1) time and no table, for any `n`.
pub fn zipf(n: u64, s: f64) -> u64 {
    zipf_from_unit(n, s, unit())
}

fn unit_from(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Inverse CDF of the density `x^-s` on `[1, n + 1)`, floored to a rank.
fn zipf_from_unit(n: u64, s: f64, u: f64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let top = n as f64 + 1.0;
    let x = if (s - 1.0).abs() < 1e-9 {
        top.powf(u)
    } else {
        let e = 1.0 - s;
        (1.0 + u * (top.powf(e) - 1.0)).powf(1.0 / e)
    };
    // `as` saturates and maps NaN to 0; clamp float error at the top end.
    ((x as u64).saturating_sub(1)).min(n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(n: u64, s: f64, draws: u32) -> Vec<u32> {
        let mut h = vec![0u32; n as usize];
        for i in 0..draws {
            let u = (f64::from(i) + 0.5) / f64::from(draws); // evenly spread quantiles
            h[zipf_from_unit(n, s, u) as usize] += 1;
        }
        h
    }

    #[test]
    fn zipf_stays_in_range_at_the_edges() {
        for s in [0.0, 0.5, 1.0, 1.2, 3.0] {
            for u in [0.0, 1e-12, 0.5, 1.0 - 1e-16, 0.999_999_999_999] {
                assert!(zipf_from_unit(1000, s, u) < 1000, "s={s} u={u}");
            }
        }
        assert_eq!(zipf_from_unit(0, 1.0, 0.3), 0);
        assert_eq!(zipf_from_unit(1, 1.0, 0.3), 0);
        assert_eq!(zipf_from_unit(10, f64::NAN, 0.3), 0);
    }

    #[test]
    fn zipf_zero_is_uniform() {
        let h = histogram(10, 0.0, 10_000);
        assert!(h.iter().all(|&c| c == 1000), "{h:?}");
    }

    #[test]
    fn zipf_one_is_skewed_towards_rank_zero() {
        let h = histogram(1000, 1.0, 100_000);
        // P(rank 0) = ln 2 / ln 1001 ~ 10 %, P(rank 1) = ln 1.5 / ln 1001 ~ 5.9 %
        assert!((9_500..10_500).contains(&h[0]), "{}", h[0]);
        assert!(h[0] > h[1] && h[1] > h[2] && h[2] > h[10] && h[10] > h[999]);
        let top_10: u32 = h[..10].iter().sum();
        assert!(
            top_10 > 30_000,
            "top 1% of keys should take a third of the reads: {top_10}"
        );
    }

    #[test]
    fn unit_is_in_range() {
        assert_eq!(unit_from(0), 0.0);
        assert!(unit_from(u64::MAX) < 1.0);
    }
}
