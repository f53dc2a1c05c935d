//! Clocks: CLOCK_MONOTONIC in nanoseconds (what Python's `time.monotonic_ns()` reads, so traces
//! of the agent and of Python clients line up), wall-clock milliseconds and the process's CPU time.
//! A leaf.

use std::time::{SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC in nanoseconds: the clock Python's `time.monotonic_ns()` reads, so traces line up.
pub fn monotonic_ns() -> u64 {
    let ts = read(libc::CLOCK_MONOTONIC);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn read(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    ts
}

/// CPU seconds this process has used so far, every thread together (CLOCK_PROCESS_CPUTIME_ID).
pub fn process_cpu_secs() -> f64 {
    let ts = read(libc::CLOCK_PROCESS_CPUTIME_ID);
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Milliseconds since the Unix epoch (what Dramatiq stamps messages with).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `Instant` of a CLOCK_MONOTONIC reading (both count from the same clock on Linux; the
/// offset is measured now).
pub fn instant_of_mono(mono_ns: u64) -> std::time::Instant {
    let (now_i, now_m) = (std::time::Instant::now(), monotonic_ns());
    if mono_ns <= now_m {
        now_i
            .checked_sub(std::time::Duration::from_nanos(now_m - mono_ns))
            .unwrap_or(now_i)
    } else {
        now_i + std::time::Duration::from_nanos(mono_ns - now_m)
    }
}
