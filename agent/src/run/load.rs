//! The load phase: collect what the workers recorded every slot (closing slots once their
//! operations are in), show progress and feed the exporter every interval, stop at the end or on
//! Ctrl-C. Phase boundaries are cut by the fault timeline itself (`metrics::Timebase::cut_now`).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use crate::export::otlp::Exporter;
use crate::metrics::{Collector, SLOT};

/// When the load starts and ends, and how often progress is shown.
pub struct Clock {
    pub start: Instant,
    pub end: Instant,
    pub interval: Duration,
}

/// How the load phase ended.
pub struct Ended {
    /// When the load really began (time zero, or later when this agent woke up late).
    pub began: Instant,
    /// When the load stopped.
    pub at: Instant,
    /// Ctrl-C or SIGTERM stopped it early.
    pub interrupted: bool,
    /// CPU seconds the agent used from `began` to `at` (every thread).
    pub cpu_secs: f64,
}

/// Run the collection loop until the end of the load or `shutdown`.
pub async fn run(
    collector: &mut Collector,
    clock: Clock,
    shutdown: &CancellationToken,
    mut progress: Progress,
    mut exporter: Option<&mut Exporter>,
) -> Ended {
    let Clock {
        start,
        end,
        interval,
    } = clock;
    tokio::time::sleep_until(start.into()).await;
    let began = Instant::now();
    let cpu0 = crate::clock::process_cpu_secs();
    let mut slots = tokio::time::interval_at((start + SLOT).into(), SLOT);
    slots.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = tokio::time::interval_at((start + interval).into(), interval);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = None;
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = slots.tick() => {
                collector.drain(Instant::now());
            }
            _ = report.tick() => {
                let now = Instant::now();
                progress.update(collector.closed_since(shown), now.saturating_duration_since(start));
                shown = collector.last_seq().or(shown);
                if let Some(x) = exporter.as_mut() {
                    x.observe(collector);
                }
            }
            _ = tokio::time::sleep_until(end.into()) => break,
            _ = shutdown.cancelled() => {
                interrupted = true;
                break;
            }
        }
    }
    collector.drain(Instant::now());
    progress.finish();
    Ended {
        began,
        at: Instant::now(),
        interrupted,
        cpu_secs: crate::clock::process_cpu_secs() - cpu0,
    }
}
