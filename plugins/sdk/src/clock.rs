//! Host time: a monotonic clock and a sleep that parks only this VU.
//!
//! Prefer these to `std::time`: the host can virtualise them in tests, and
//! they add no WASI imports.

use std::time::Duration;

use crate::__private::bindings::valkey_chaos::plugin::clock as raw;

/// A point on the host's monotonic clock; only differences are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// The current time.
pub fn now() -> Instant {
    Instant(raw::now())
}

/// Parks this VU for `duration`; other VUs keep running. Note that the host's
/// iteration latency includes the sleep.
pub fn sleep(duration: Duration) {
    raw::sleep(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
}

impl Instant {
    /// Nanoseconds since the clock's (arbitrary) origin.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since `earlier`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time since this instant.
    pub fn elapsed(self) -> Duration {
        now().duration_since(self)
    }
}
