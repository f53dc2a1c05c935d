//! When each operation is due. Open model: intended start times from the arrival-rate schedule,
//! dealt round-robin to the clients; a client that falls behind issues back to back and its
//! latency is measured from the intended time (coordinated-omission corrected). Closed model:
//! now, every time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::WorkloadMetrics;
use crate::plan::{LoadModel, RateSchedule};

/// A start counts as late when it begins this long after its intended time.
pub const LATE: Duration = Duration::from_millis(2);

/// The source of intended start times for one client.
pub struct Pacer {
    schedule: Option<RateSchedule>,
    /// Global index of this client's next batch.
    next: u64,
    stride: u64,
    per_batch: u64,
    start: Instant,
    end: Instant,
    metrics: Option<Arc<WorkloadMetrics>>,
}

impl Pacer {
    /// `per_batch` operations start together (a pipeline); `index` of `clients` clients.
    pub fn new(
        load: &LoadModel,
        index: u32,
        clients: u32,
        per_batch: usize,
        start: Instant,
        end: Instant,
        metrics: Option<Arc<WorkloadMetrics>>,
    ) -> Pacer {
        let schedule = match load {
            LoadModel::Closed => None,
            LoadModel::Open(s) => Some(s.clone()),
        };
        Pacer {
            schedule,
            next: index as u64,
            stride: clients.max(1) as u64,
            per_batch: per_batch.max(1) as u64,
            start,
            end,
            metrics,
        }
    }

    pub fn is_open(&self) -> bool {
        self.schedule.is_some()
    }

    fn due(&self, batch: u64) -> Option<Instant> {
        let s = self.schedule.as_ref()?;
        let t = s.time_of_arrival((batch * self.per_batch) as f64)?;
        let at = self.start + Duration::from_secs_f64(t);
        (at < self.end).then_some(at)
    }

    /// Wait for the next intended start. `None` when the run is over or cancelled.
    pub async fn next(&mut self, cancel: &CancellationToken) -> Option<Instant> {
        if cancel.is_cancelled() {
            self.count_dropped();
            return None;
        }
        if self.schedule.is_none() {
            return (Instant::now() < self.end).then(Instant::now);
        }
        let at = self.due(self.next)?;
        let now = Instant::now();
        if at > now {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = cancel.cancelled() => { self.count_dropped(); return None; }
            }
        } else if now.duration_since(at) > LATE {
            if let Some(m) = &self.metrics {
                m.late_starts.fetch_add(self.per_batch, Ordering::Relaxed);
            }
        }
        self.next += self.stride;
        Some(at)
    }

    /// Intended starts before the end that this client will never issue.
    fn count_dropped(&mut self) {
        let (Some(s), Some(m)) = (&self.schedule, &self.metrics) else {
            return;
        };
        let total = s.arrivals_until(self.end.saturating_duration_since(self.start).as_secs_f64());
        let first = (self.next * self.per_batch) as f64;
        if total > first {
            let batches = ((total - first) / (self.stride * self.per_batch) as f64).ceil() as u64;
            m.dropped_starts
                .fetch_add(batches * self.per_batch, Ordering::Relaxed);
        }
        self.schedule = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deals_arrivals_round_robin() {
        let start = Instant::now();
        let end = start + Duration::from_secs(1);
        let load = LoadModel::Open(RateSchedule::constant(10.0));
        let cancel = CancellationToken::new();
        let mut p = Pacer::new(&load, 1, 2, 1, start, end, None);
        let mut got = vec![];
        while let Some(t) = p.next(&cancel).await {
            got.push(t.duration_since(start).as_millis());
        }
        assert_eq!(got, vec![100, 300, 500, 700, 900]);
    }

    #[tokio::test(start_paused = true)]
    async fn counts_dropped_on_cancel() {
        let start = Instant::now();
        let end = start + Duration::from_secs(10);
        let m = WorkloadMetrics::new("w", vec!["op".into()], &[]);
        let load = LoadModel::Open(RateSchedule::constant(10.0));
        let cancel = CancellationToken::new();
        let mut p = Pacer::new(&load, 0, 1, 1, start, end, Some(m.clone()));
        for _ in 0..10 {
            p.next(&cancel).await.unwrap();
        }
        cancel.cancel();
        assert!(p.next(&cancel).await.is_none());
        assert_eq!(m.dropped_starts.load(Ordering::Relaxed), 90);
    }
}
