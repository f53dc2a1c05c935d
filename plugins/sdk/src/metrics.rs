//! Plugin-defined metrics: declare in `setup`, record by handle afterwards.
//!
//! Declaring sends the name once; recording sends only a small id, so it is
//! cheap enough for every iteration. Every VU declares the same names; the
//! host aggregates by name. Suggested names: `<what>_<unit>[_total]`, e.g.
//! `cache_hits_total`, `lock_wait_nanoseconds`.

use std::time::Duration;

use crate::__private::bindings::valkey_chaos::plugin::metrics::{self as raw, MetricKind};

/// A monotonically increasing count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counter(u32);

/// A value that is set, not accumulated (e.g. a ratio, a queue length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gauge(u32);

/// A distribution of values, in nanoseconds for durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Histogram(u32);

/// Declares a counter.
pub fn counter(name: &str) -> Counter {
    Counter(raw::declare(name, MetricKind::Counter))
}

/// Declares a gauge.
pub fn gauge(name: &str) -> Gauge {
    Gauge(raw::declare(name, MetricKind::Gauge))
}

/// Declares a histogram (values in nanoseconds when they are durations).
pub fn histogram(name: &str) -> Histogram {
    Histogram(raw::declare(name, MetricKind::Histogram))
}

impl Counter {
    /// Adds 1.
    pub fn inc(self) {
        raw::emit(self.0, 1);
    }

    /// Adds `delta` (saturating at `i64::MAX`).
    pub fn add(self, delta: u64) {
        raw::emit(self.0, i64::try_from(delta).unwrap_or(i64::MAX));
    }
}

impl Gauge {
    /// Sets the gauge to `value`.
    pub fn set(self, value: i64) {
        raw::emit(self.0, value);
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(self, value: i64) {
        raw::emit(self.0, value);
    }

    /// Records a duration in nanoseconds (saturating at `i64::MAX`).
    pub fn record_duration(self, duration: Duration) {
        raw::emit(
            self.0,
            i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX),
        );
    }
}
