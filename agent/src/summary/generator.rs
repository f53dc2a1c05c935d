//! Was the generator, not the server, the bottleneck? Judged from an open-model workload's send
//! lag (how late its starts were released). Two ways the agent itself sets the pace:
//!
//! - **too little concurrency**: most starts found their client still busy with earlier
//!   operations, so they were issued back to back, late: the rate needs more clients than it
//!   has (or the server is slow for the whole run — either way the offered load was not what was
//!   asked for). A fault that stalls the server for part of a run leaves most starts on time and
//!   is not flagged: its lateness is the server's, and the corrected latency shows it.
//! - **too little CPU**: starts the clients were idle and waiting for still left late (p99 above
//!   [`WAITED_P99_US`]): the agent could not run its timers and clients in time.

use crate::metrics::SendLagStats;
use crate::units::fmt_us as fmt;

/// Above this p99 (µs) of the waited-for starts, the agent's own timing is the bottleneck.
pub const WAITED_P99_US: f64 = 1000.0;
/// Above this fraction of starts found their client busy, concurrency is the bottleneck.
pub const BEHIND_FRACTION: f64 = 0.5;

/// Why the generator set the pace (with what to do), or `None` when it kept up.
pub fn bound(lag: &SendLagStats, clients: u32) -> Option<String> {
    if lag.starts == 0 {
        return None;
    }
    let behind = lag.behind as f64 / lag.starts as f64;
    if behind > BEHIND_FRACTION {
        return Some(format!(
            "{:.0}% of starts found their client still busy with the previous operation \
             (generator lag p99 {}): {clients} clients cannot carry this rate at this latency; \
             give it more clients, a lower rate, or spread it over more agents",
            behind * 100.0,
            fmt(lag.p99)
        ));
    }
    if lag.waited_p99 > WAITED_P99_US {
        return Some(format!(
            "starts left late although their clients were idle (p99 {}): the agent lacked CPU \
             to run its timers; lower the rate, run fewer clients per agent, or use more agents",
            fmt(lag.waited_p99)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(starts: u64, behind: u64, p99: f64, waited_p99: f64) -> SendLagStats {
        SendLagStats {
            p50: 1.0,
            p99,
            max: p99,
            starts,
            behind,
            waited_p99,
        }
    }

    #[test]
    fn flags_the_generator_only_when_it_set_the_pace() {
        assert_eq!(bound(&lag(1000, 3, 40.0, 40.0), 8), None);
        // A stall of the server: a minority of starts late.
        assert_eq!(bound(&lag(1000, 100, 900_000.0, 60.0), 8), None);
        let busy = bound(&lag(1000, 990, 500_000.0, 0.0), 1).unwrap();
        assert!(busy.contains("more clients"), "{busy}");
        let cpu = bound(&lag(1000, 0, 4000.0, 4000.0), 8).unwrap();
        assert!(cpu.contains("lacked CPU"), "{cpu}");
        assert_eq!(bound(&SendLagStats::default(), 8), None);
    }
}
