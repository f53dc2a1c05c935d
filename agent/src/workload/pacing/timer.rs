//! Precise waits for open-model starts.
//!
//! tokio's timers tick in whole milliseconds, so a start would leave up to a tick late and the
//! report would blame the server for the agent's own scheduling. Here each client arms a Linux
//! `timerfd` (a nanosecond hrtimer with no timer slack) registered with tokio's reactor, so the
//! worker thread is woken by the kernel directly, with no extra thread in between. It wakes a
//! little early, by an estimate of its own wake-up latency (the 75th percentile of what it has
//! seen, tracked online), and spins the rest: at most that estimate, never more than
//! [`MAX_EARLY`], and never more than the caller's spin budget (the pacer gives every workload
//! [`SPIN_BUDGET`] of a core: at high rates starts are not worth a spin each, and a wake-up
//! alone is within tens of microseconds).
//!
//! Measured on the project's 2-core VM (8 clients, 2,000 starts/s, idle): tokio's timer left
//! p50 1.1 ms late; a timerfd alone p50 ~40 µs (the VM's wake-up from idle) at 6 % of a core;
//! a shared timer thread ~50–70 µs at 11 %; a `yield_now` loop for the last 1.5 ms p50 0.3 µs
//! but 170 % CPU. Without a timerfd (not Linux, no descriptors left, a runtime without I/O) it
//! falls back to tokio's timer.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The most a wait wakes early (and so the most it spins).
pub const MAX_EARLY: Duration = Duration::from_micros(80);
/// The share of one core a workload's starts may spend spinning, all clients together.
pub const SPIN_BUDGET: f64 = 0.12;
/// Waits shorter than the early margin plus this are spun outright.
const SPIN_BELOW: Duration = Duration::from_micros(5);
/// Step of the wake-latency estimate (it moves 3 steps up per late wake, 1 down per early one:
/// it settles where a quarter of the wakes come later than it, the 75th percentile).
const STEP_NS: u64 = 500;

/// One client's precise sleeper.
pub struct PreciseSleep {
    fd: Option<AsyncFd<TimerFd>>,
    /// Creating the timerfd failed once: use tokio's timer from then on.
    coarse: bool,
    /// How early to wake, in nanoseconds (the wake-up latency estimate).
    early_ns: u64,
}

impl Default for PreciseSleep {
    fn default() -> Self {
        PreciseSleep::new()
    }
}

impl PreciseSleep {
    pub fn new() -> PreciseSleep {
        PreciseSleep {
            fd: None,
            coarse: false,
            early_ns: 30_000,
        }
    }

    /// Only tokio's timer (millisecond ticks; follows paused time in tests).
    pub fn coarse() -> PreciseSleep {
        PreciseSleep {
            fd: None,
            coarse: true,
            early_ns: 0,
        }
    }

    /// The current early-wake margin.
    pub fn early(&self) -> Duration {
        Duration::from_nanos(self.early_ns)
    }

    /// Return at `at` (never before it on the monotonic clock), as close after it as the CPU
    /// allows, spinning at most `max_spin` of it. Cancel-safe: dropping the future leaves the
    /// timer to be re-armed next time.
    pub async fn until(&mut self, at: Instant, max_spin: Duration) {
        if self.coarse {
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        let now = Instant::now();
        if at <= now {
            return;
        }
        let early = Duration::from_nanos(self.early_ns).min(max_spin);
        if at - now <= early + SPIN_BELOW {
            spin_until(at);
            return;
        }
        let wake_at = at - early;
        if !self.wait_fd(wake_at).await {
            tokio::time::sleep_until(wake_at.into()).await;
        }
        let late = Instant::now().saturating_duration_since(wake_at).as_nanos() as u64;
        self.early_ns = if late > self.early_ns {
            self.early_ns + 3 * STEP_NS
        } else {
            self.early_ns.saturating_sub(STEP_NS)
        }
        .min(MAX_EARLY.as_nanos() as u64);
        spin_until(at);
    }

    /// Wait on the timerfd until `wake_at`; false when there is none to wait on.
    async fn wait_fd(&mut self, wake_at: Instant) -> bool {
        if self.fd.is_none() {
            let registered = TimerFd::new().and_then(|t| {
                // SAFETY: the TimerFd owns its descriptor, open until it is dropped with the
                // AsyncFd, and always returns that same descriptor.
                unsafe { AsyncFd::register_with_interest(t, Interest::READABLE) }
                    .map_err(std::io::Error::from)
            });
            match registered {
                Ok(fd) => self.fd = Some(fd),
                Err(e) => {
                    tracing::debug!("no timerfd, pacing falls back to tokio's timer: {e}");
                    self.coarse = true;
                    return false;
                }
            }
        }
        let fd = self.fd.as_ref().expect("set above");
        if fd.get_ref().arm(wake_at).is_err() {
            return false;
        }
        // Each round either returns or clears a stale readiness left by an earlier wait.
        for _ in 0..64 {
            let Ok(mut guard) = fd.readable().await else {
                return false;
            };
            match guard.try_io(|inner| inner.get_ref().consume()) {
                Ok(Ok(())) => return true,
                Ok(Err(_)) => return false,
                Err(_would_block) => continue,
            }
        }
        false
    }
}

/// Busy-wait until `at` (callers keep this to tens of microseconds).
fn spin_until(at: Instant) {
    // Bounded twice: by the clock, and by a count far above what tens of microseconds take.
    for _ in 0..1_000_000u32 {
        if Instant::now() >= at {
            return;
        }
        std::hint::spin_loop();
    }
}

/// A non-blocking CLOCK_MONOTONIC timerfd.
struct TimerFd(RawFd);

impl TimerFd {
    fn new() -> std::io::Result<TimerFd> {
        // SAFETY: plain syscall; the descriptor is owned by the returned value.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(TimerFd(fd))
    }

    /// Fire once at `at` (absolute; `Instant` reads CLOCK_MONOTONIC on Linux). Re-arming
    /// discards an expiry not yet read.
    fn arm(&self, at: Instant) -> std::io::Result<()> {
        let now_i = Instant::now();
        let now_m = crate::clock::monotonic_ns();
        let target = if at >= now_i {
            now_m + (at - now_i).as_nanos() as u64
        } else {
            now_m.saturating_sub((now_i - at).as_nanos() as u64)
        }
        .max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (target / 1_000_000_000) as libc::time_t,
                tv_nsec: (target % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        let r = unsafe {
            libc::timerfd_settime(self.0, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Read the expiry count: `WouldBlock` when the timer has not fired.
    fn consume(&self) -> std::io::Result<()> {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer.
        let r = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_returns_before_the_deadline() {
        let mut s = PreciseSleep::new();
        let t0 = Instant::now();
        for i in 1..=40u64 {
            // Far, near and already-passed deadlines, in a mix.
            let at = t0 + Duration::from_micros(i * 700) - Duration::from_micros(i % 3 * 300);
            s.until(at, MAX_EARLY).await;
            assert!(Instant::now() >= at, "woke before deadline {i}");
        }
        assert!(s.early() <= MAX_EARLY);
        assert!(s.fd.is_some(), "used a timerfd");
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_the_next_one_working() {
        let mut s = PreciseSleep::new();
        let far = Instant::now() + Duration::from_secs(60);
        // Started and dropped before it fires (a cancelled start).
        let _ = tokio::time::timeout(Duration::from_millis(2), s.until(far, MAX_EARLY)).await;
        let at = Instant::now() + Duration::from_millis(3);
        s.until(at, Duration::ZERO).await;
        assert!(Instant::now() >= at);
    }
}
