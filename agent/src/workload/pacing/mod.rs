//! When each operation is due. Open model: intended start times from the arrival-rate schedule,
//! dealt round-robin to the clients; a client that falls behind issues back to back and its
//! latency is measured from the intended time (coordinated-omission corrected). Closed model:
//! now, every time.
//!
//! Open-model waits are precise to tens of microseconds ([`timer`]), and every start's **send
//! lag** (release − intended start) goes into the workload's send-lag histogram, marked by
//! whether the client was still busy when the start came due: the summary tells the
//! generator's own lateness from a server that kept clients busy.

pub mod timer;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::WorkloadMetrics;
use crate::plan::{LoadModel, RateSchedule};
pub use timer::PreciseSleep;

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
    /// This client's index (which send-lag stripe it records into).
    index: u32,
    sleep: PreciseSleep,
    /// This client's previous intended start (its period sets the spin budget).
    last: Option<Instant>,
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
            index,
            sleep: PreciseSleep::new(),
            last: None,
        }
    }

    /// Wait with tokio's millisecond timer only (it follows paused time in tests).
    pub fn coarse(mut self) -> Pacer {
        self.sleep = PreciseSleep::coarse();
        self
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
        // Still busy with earlier operations when this start came due?
        let behind = at <= Instant::now();
        if !behind {
            // All clients together spin at most SPIN_BUDGET of a core: this client's share of
            // its period.
            let max_spin = self
                .last
                .map(|l| {
                    at.saturating_duration_since(l)
                        .mul_f64(timer::SPIN_BUDGET / self.stride as f64)
                })
                .unwrap_or(timer::MAX_EARLY);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => { self.count_dropped(); return None; }
                _ = self.sleep.until(at, max_spin) => {}
            }
        }
        self.last = Some(at);
        if let Some(m) = &self.metrics {
            let lag = Instant::now().saturating_duration_since(at);
            if lag > LATE {
                m.late_starts.fetch_add(self.per_batch, Ordering::Relaxed);
            }
            m.record_start(self.index as usize, lag, behind);
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
        let mut p = Pacer::new(&load, 1, 2, 1, start, end, None).coarse();
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
        let mut p = Pacer::new(&load, 0, 1, 1, start, end, Some(m.clone())).coarse();
        for _ in 0..10 {
            p.next(&cancel).await.unwrap();
        }
        cancel.cancel();
        assert!(p.next(&cancel).await.is_none());
        assert_eq!(m.dropped_starts.load(Ordering::Relaxed), 90);
    }

    #[tokio::test]
    async fn open_starts_are_released_on_time_and_their_lag_recorded() {
        let start = Instant::now();
        let end = start + Duration::from_millis(40);
        let m = WorkloadMetrics::new("w", vec!["op".into()], &[]);
        let load = LoadModel::Open(RateSchedule::constant(1000.0));
        let cancel = CancellationToken::new();
        let mut p = Pacer::new(&load, 0, 1, 1, start, end, Some(m.clone()));
        let mut n = 0;
        while let Some(at) = p.next(&cancel).await {
            assert!(Instant::now() >= at, "released before its intended start");
            assert_eq!(at.duration_since(start), Duration::from_millis(n));
            n += 1;
        }
        assert_eq!(n, 40);
        let lag = m
            .send_lag()
            .expect("open-model starts record their send lag");
        assert_eq!(lag.starts, 40);
    }

    #[tokio::test]
    async fn closed_model_records_no_send_lag() {
        let start = Instant::now();
        let end = start + Duration::from_millis(5);
        let m = WorkloadMetrics::new("w", vec!["op".into()], &[]);
        let cancel = CancellationToken::new();
        let mut p = Pacer::new(&LoadModel::Closed, 0, 1, 1, start, end, Some(m.clone()));
        for _ in 0..10 {
            p.next(&cancel).await;
        }
        assert!(m.send_lag().is_none());
    }
}
