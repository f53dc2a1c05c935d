//! The load phase: cut a metrics interval every `interval`, and exactly at every fault injection
//! and heal the timeline reports; show progress; feed the exporter; stop at the end or on Ctrl-C.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use crate::export::otlp::Exporter;
use crate::metrics::Collector;

/// When the load starts and ends, and how often intervals are cut.
pub struct Clock {
    pub start: Instant,
    pub end: Instant,
    pub interval: Duration,
}

/// How the load phase ended.
pub struct Ended {
    /// When the load stopped.
    pub at: Instant,
    /// Ctrl-C or SIGTERM stopped it early.
    pub interrupted: bool,
}

/// Run the interval loop until the end of the load or `shutdown`.
pub async fn run(
    collector: &mut Collector,
    clock: Clock,
    mut cuts: UnboundedReceiver<Instant>,
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
    let mut tick = tokio::time::interval_at((start + interval).into(), interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let iv = collector.cut(now.min(end));
                progress.update(iv, now.saturating_duration_since(start));
                if let Some(x) = exporter.as_mut() {
                    x.observe(collector);
                }
                if now >= end { break; }
            }
            _ = tokio::time::sleep_until(end.into()) => {
                collector.cut(end);
                break;
            }
            Some(at) = cuts.recv() => {
                // A fault was injected or healed: close the interval there.
                if at < end {
                    collector.cut(at);
                }
            }
            _ = shutdown.cancelled() => {
                interrupted = true;
                collector.cut(Instant::now());
                break;
            }
        }
    }
    progress.finish();
    Ended {
        at: Instant::now(),
        interrupted,
    }
}
