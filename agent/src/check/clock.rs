//! How a history's entries' times are compared: exactly, on one host's monotonic clock, or on
//! Unix time within an assumed skew when the entries come from several hosts.

use crate::history::Entry;

/// How entries' times are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Every entry comes from one host: CLOCK_MONOTONIC, exact.
    Mono,
    /// Entries from several hosts: Unix time, trusted to within `tolerance_ns` (an overlap or a
    /// window edge closer than that cannot be told).
    Wall { tolerance_ns: u64 },
}

/// Wall-clock skew assumed between hosts when histories from several are checked together.
pub const SKEW_NS: u64 = 10_000_000;

impl Clock {
    /// The clock for these entries.
    pub fn of(entries: &[Entry]) -> Clock {
        let mut hosts = entries.iter().map(|e| e.host.as_str());
        match hosts.next() {
            Some(h) if hosts.all(|x| x == h) && !h.is_empty() => Clock::Mono,
            None => Clock::Mono,
            _ => Clock::Wall {
                tolerance_ns: SKEW_NS,
            },
        }
    }

    /// An entry's time on this clock.
    pub fn at(&self, e: &Entry) -> u64 {
        match self {
            Clock::Mono => e.mono,
            Clock::Wall { .. } => e.wall,
        }
    }

    /// A `sent` or `aux` time (recorded on CLOCK_MONOTONIC) of an entry, on this clock.
    pub fn related(&self, e: &Entry, mono: u64) -> u64 {
        match self {
            Clock::Mono => mono,
            Clock::Wall { .. } => e.wall.saturating_sub(e.mono.saturating_sub(mono)),
        }
    }

    pub fn tolerance(&self) -> u64 {
        match self {
            Clock::Mono => 0,
            Clock::Wall { tolerance_ns } => *tolerance_ns,
        }
    }
}
