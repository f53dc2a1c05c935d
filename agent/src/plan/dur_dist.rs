//! Durations drawn per use (a job's work, a lock's hold): fixed, uniform or exponential,
//! sampled from the worker's seeded RNG.

use std::time::Duration;

/// A duration that is fixed or drawn per use: "20ms", { min = "10ms", max = "30ms" } (uniform)
/// or { mean = "20ms" } (exponential).
#[derive(Debug, Clone, PartialEq)]
pub enum DurDist {
    Fixed(Duration),
    Uniform(Duration, Duration),
    Exp(Duration),
}

impl DurDist {
    pub fn sample(&self, rng: &mut crate::rng::Rng) -> Duration {
        match self {
            DurDist::Fixed(d) => *d,
            DurDist::Uniform(a, b) => {
                *a + Duration::from_secs_f64((*b - *a).as_secs_f64() * rng.unit())
            }
            DurDist::Exp(m) => {
                Duration::from_secs_f64(-m.as_secs_f64() * (1.0 - rng.unit()).ln()).min(*m * 20)
            }
        }
    }
    pub fn max_hint(&self) -> Duration {
        match self {
            DurDist::Fixed(d) => *d,
            DurDist::Uniform(_, b) => *b,
            DurDist::Exp(m) => *m * 5,
        }
    }
}
