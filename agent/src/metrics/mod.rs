//! Measurement: HdrHistogram recorders that workers write into without waiting, a collector that
//! cuts intervals (kept V2-encoded: the `.hlog` and exact per-phase percentiles come from them),
//! and named counters for the safety oracles.

pub mod hlog;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::Histogram;

use crate::plan::counter::{CounterDef, CounterKind};
use crate::valkey::ErrorKind;

/// Highest recordable latency: one hour in microseconds (larger values saturate).
pub const MAX_US: u64 = 3_600_000_000;
const STRIPES: usize = 8;
const NKINDS: usize = ErrorKind::ALL.len();

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Per-op accumulators of one stripe.
#[derive(Clone)]
pub struct OpAcc {
    pub corrected: Histogram<u64>,
    pub service: Histogram<u64>,
    pub errors: [u64; NKINDS],
}

impl OpAcc {
    fn new() -> Self {
        OpAcc {
            corrected: new_hist(),
            service: new_hist(),
            errors: [0; NKINDS],
        }
    }
    fn add(&mut self, o: &OpAcc) {
        let _ = self.corrected.add(&o.corrected);
        let _ = self.service.add(&o.service);
        for (a, b) in self.errors.iter_mut().zip(o.errors.iter()) {
            *a += b;
        }
    }
    fn reset(&mut self) {
        self.corrected.reset();
        self.service.reset();
        self.errors = [0; NKINDS];
    }
    pub fn ok(&self) -> u64 {
        self.corrected.len()
    }
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }
}

type Stripe = Mutex<Vec<OpAcc>>;

/// The declared counters of one workload (safety oracles, totals, figures), lock-free.
#[derive(Debug)]
pub struct Counters {
    defs: &'static [CounterDef],
    vals: Vec<AtomicU64>,
}

impl Counters {
    pub fn new(defs: &'static [CounterDef]) -> Arc<Counters> {
        Arc::new(Counters {
            defs,
            vals: defs.iter().map(|_| AtomicU64::new(0)).collect(),
        })
    }
    pub fn add(&self, idx: usize, n: u64) {
        self.vals[idx].fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, idx: usize, n: u64) {
        self.vals[idx].store(n, Ordering::Relaxed);
    }
    /// Set a [`CounterKind::Ratio`] counter (kept as the bits of an `f64`).
    pub fn set_ratio(&self, idx: usize, v: f64) {
        debug_assert_eq!(self.defs[idx].kind, CounterKind::Ratio);
        self.vals[idx].store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn max(&self, idx: usize, n: u64) {
        self.vals[idx].fetch_max(n, Ordering::Relaxed);
    }
    pub fn get(&self, idx: usize) -> u64 {
        self.vals[idx].load(Ordering::Relaxed)
    }
    /// The value of counter `idx` as a number (ratios decoded).
    pub fn value(&self, idx: usize) -> f64 {
        let raw = self.get(idx);
        match self.defs[idx].kind {
            CounterKind::Ratio => f64::from_bits(raw),
            _ => raw as f64,
        }
    }
    pub fn by_name(&self, name: &str) -> Option<f64> {
        self.defs
            .iter()
            .position(|d| d.name == name)
            .map(|i| self.value(i))
    }
    pub fn defs(&self) -> &'static [CounterDef] {
        self.defs
    }
    /// Every counter: (definition, value).
    pub fn snapshot(&self) -> Vec<(&'static CounterDef, f64)> {
        self.defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d, self.value(i)))
            .collect()
    }
}

/// The metrics of one workload: op names (growable for plugins), stripes, counters.
pub struct WorkloadMetrics {
    pub id: String,
    ops: RwLock<Vec<String>>,
    stripes: Vec<Stripe>,
    pub counters: Arc<Counters>,
    /// Open-model starts that began later than 1 ms after their intended time.
    pub late_starts: AtomicU64,
    /// Intended starts never issued because the run ended first.
    pub dropped_starts: AtomicU64,
    /// Counters and gauges declared at run time (plugins): name → (kind, value).
    custom: Mutex<std::collections::BTreeMap<String, (CounterKind, i64)>>,
    /// Picks operations for trace spans (set by the run when exporting traces).
    sampler: OnceLock<OpSampler>,
}

impl WorkloadMetrics {
    pub fn new(
        id: &str,
        ops: Vec<String>,
        counters: &'static [CounterDef],
    ) -> Arc<WorkloadMetrics> {
        let n = ops.len();
        Arc::new(WorkloadMetrics {
            id: id.to_string(),
            ops: RwLock::new(ops),
            stripes: (0..STRIPES)
                .map(|_| Mutex::new((0..n).map(|_| OpAcc::new()).collect()))
                .collect(),
            counters: Counters::new(counters),
            late_starts: AtomicU64::new(0),
            dropped_starts: AtomicU64::new(0),
            custom: Mutex::new(Default::default()),
            sampler: OnceLock::new(),
        })
    }

    /// Hand a fraction of this workload's operations to a trace exporter (first call wins).
    pub fn set_sampler(&self, s: OpSampler) {
        let _ = self.sampler.set(s);
    }

    /// Add to a run-time counter (created at 0 on first use).
    pub fn custom_add(&self, name: &str, v: i64) {
        self.custom
            .lock()
            .expect("custom lock")
            .entry(name.to_string())
            .or_insert((CounterKind::Total, 0))
            .1 += v;
    }

    /// Set a run-time gauge.
    pub fn custom_set(&self, name: &str, v: i64) {
        self.custom
            .lock()
            .expect("custom lock")
            .insert(name.to_string(), (CounterKind::Gauge, v));
    }

    pub fn custom_snapshot(&self) -> Vec<(String, CounterKind, i64)> {
        self.custom
            .lock()
            .expect("custom lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.0, v.1))
            .collect()
    }

    /// Index of `name`, adding it when new (plugins discover their commands as they go).
    pub fn op_index(&self, name: &str) -> usize {
        if let Some(i) = self
            .ops
            .read()
            .expect("ops lock")
            .iter()
            .position(|o| o == name)
        {
            return i;
        }
        let mut w = self.ops.write().expect("ops lock");
        if let Some(i) = w.iter().position(|o| o == name) {
            return i;
        }
        w.push(name.to_string());
        w.len() - 1
    }

    pub fn op_names(&self) -> Vec<String> {
        self.ops.read().expect("ops lock").clone()
    }

    /// A recorder for worker number `worker`.
    pub fn recorder(self: &Arc<Self>, worker: usize) -> Recorder {
        Recorder {
            m: self.clone(),
            stripe: worker % STRIPES,
            pick: AtomicU64::new(
                crate::rng::Rng::derive(0x07e1, &self.id, worker as u64).next_u64(),
            ),
        }
    }

    fn drain_into(&self, acc: &mut Vec<OpAcc>) {
        let n = self.ops.read().expect("ops lock").len();
        while acc.len() < n {
            acc.push(OpAcc::new());
        }
        for s in &self.stripes {
            let mut g = s.lock().expect("stripe lock");
            for (i, o) in g.iter_mut().enumerate() {
                if o.ok() > 0 || o.error_count() > 0 {
                    acc[i].add(o);
                    o.reset();
                }
            }
        }
    }
}

/// What a worker records into. Cheap to clone; never blocks on the collector for long.
pub struct Recorder {
    m: Arc<WorkloadMetrics>,
    stripe: usize,
    /// Sampling state (splitmix64 sequence) for trace spans.
    pick: AtomicU64,
}

impl Clone for Recorder {
    fn clone(&self) -> Recorder {
        Recorder {
            m: self.m.clone(),
            stripe: self.stripe,
            pick: AtomicU64::new(splitmix(self.pick.fetch_add(GAMMA, Ordering::Relaxed))),
        }
    }
}

impl Recorder {
    pub fn metrics(&self) -> &Arc<WorkloadMetrics> {
        &self.m
    }

    /// Record one operation: latency from its intended start (coordinated-omission corrected)
    /// and service time from the actual send.
    pub fn record(
        &self,
        op: usize,
        intended: Instant,
        sent: Instant,
        end: Instant,
        outcome: Result<(), ErrorKind>,
    ) {
        let lat = end.saturating_duration_since(intended).as_micros() as u64;
        let svc = end.saturating_duration_since(sent).as_micros() as u64;
        self.record_us(op, lat, svc, outcome);
        if let Some(s) = self.m.sampler.get() {
            if splitmix(self.pick.fetch_add(GAMMA, Ordering::Relaxed)) < s.threshold {
                s.offer(OpSample {
                    workload: s.workload,
                    op,
                    intended,
                    sent,
                    end,
                    outcome,
                });
            }
        }
    }

    pub fn record_us(
        &self,
        op: usize,
        latency_us: u64,
        service_us: u64,
        outcome: Result<(), ErrorKind>,
    ) {
        let mut g = self.m.stripes[self.stripe].lock().expect("stripe lock");
        if op >= g.len() {
            let n = self.m.ops.read().expect("ops lock").len().max(op + 1);
            while g.len() < n {
                g.push(OpAcc::new());
            }
        }
        let a = &mut g[op];
        match outcome {
            Ok(()) => {
                a.corrected.saturating_record(latency_us.max(1));
                a.service.saturating_record(service_us.max(1));
            }
            Err(k) => a.errors[k.index()] += 1,
        }
    }

    pub fn counter(&self, idx: usize, n: u64) {
        self.m.counters.add(idx, n);
    }
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One operation picked for a trace span.
#[derive(Debug, Clone, Copy)]
pub struct OpSample {
    /// Index of the workload in the plan.
    pub workload: usize,
    pub op: usize,
    pub intended: Instant,
    pub sent: Instant,
    pub end: Instant,
    pub outcome: Result<(), ErrorKind>,
}

/// Picks a fraction of a workload's operations and hands them over without waiting: when the
/// exporter falls behind, samples are dropped and counted.
pub struct OpSampler {
    workload: usize,
    /// Sample when the recorder's next random number is below this.
    threshold: u64,
    tx: tokio::sync::mpsc::Sender<OpSample>,
    dropped: Arc<AtomicU64>,
}

impl OpSampler {
    pub fn new(
        workload: usize,
        fraction: f64,
        tx: tokio::sync::mpsc::Sender<OpSample>,
        dropped: Arc<AtomicU64>,
    ) -> OpSampler {
        let threshold = if fraction >= 1.0 {
            u64::MAX
        } else {
            (fraction.max(0.0) * u64::MAX as f64) as u64
        };
        OpSampler {
            workload,
            threshold,
            tx,
            dropped,
        }
    }

    fn offer(&self, s: OpSample) {
        if self.tx.try_send(s).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One cut interval of one op, kept compactly.
#[derive(Clone)]
pub struct IntervalOp {
    pub workload: usize,
    pub op: usize,
    pub corrected: Vec<u8>,
    pub service: Vec<u8>,
    pub ok: u64,
    pub errors: [u64; NKINDS],
    pub max_us: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// One interval: [start, end) relative to the run start.
#[derive(Clone)]
pub struct Interval {
    pub start: Duration,
    pub end: Duration,
    pub ops: Vec<IntervalOp>,
}

/// Totals and intervals for every workload; owned by the run, fed by [`Collector::cut`].
pub struct Collector {
    pub workloads: Vec<Arc<WorkloadMetrics>>,
    pub totals: Vec<Vec<OpAcc>>,
    pub intervals: Vec<Interval>,
    pub started: Instant,
    pub started_wall: std::time::SystemTime,
    last_cut: Duration,
    scratch: Vec<Vec<OpAcc>>,
    ser: V2Serializer,
}

impl Collector {
    pub fn new(workloads: Vec<Arc<WorkloadMetrics>>, started: Instant) -> Collector {
        let n = workloads.len();
        Collector {
            workloads,
            totals: (0..n).map(|_| vec![]).collect(),
            intervals: vec![],
            started,
            started_wall: std::time::SystemTime::now(),
            last_cut: Duration::ZERO,
            scratch: (0..n).map(|_| vec![]).collect(),
            ser: V2Serializer::new(),
        }
    }

    /// Close the current interval at `now`.
    pub fn cut(&mut self, now: Instant) -> &Interval {
        let end = now
            .saturating_duration_since(self.started)
            .max(self.last_cut);
        let mut iv = Interval {
            start: self.last_cut,
            end,
            ops: vec![],
        };
        for (w, m) in self.workloads.iter().enumerate() {
            let acc = &mut self.scratch[w];
            m.drain_into(acc);
            let tot = &mut self.totals[w];
            while tot.len() < acc.len() {
                tot.push(OpAcc::new());
            }
            for (op, a) in acc.iter_mut().enumerate() {
                if a.ok() == 0 && a.error_count() == 0 {
                    continue;
                }
                tot[op].add(a);
                let mut c = Vec::new();
                let mut s = Vec::new();
                let _ = self.ser.serialize(&a.corrected, &mut c);
                let _ = self.ser.serialize(&a.service, &mut s);
                iv.ops.push(IntervalOp {
                    workload: w,
                    op,
                    corrected: c,
                    service: s,
                    ok: a.ok(),
                    errors: a.errors,
                    max_us: a.corrected.max(),
                    p50_us: a.corrected.value_at_quantile(0.5),
                    p99_us: a.corrected.value_at_quantile(0.99),
                });
                a.reset();
            }
        }
        self.last_cut = end;
        self.intervals.push(iv);
        self.intervals.last().expect("just pushed")
    }

    /// Sum of the intervals that lie within [from, to) (by interval start), per (workload, op).
    pub fn window(&self, from: Duration, to: Duration) -> Vec<Vec<OpAcc>> {
        let mut out: Vec<Vec<OpAcc>> = self
            .workloads
            .iter()
            .map(|m| (0..m.op_names().len()).map(|_| OpAcc::new()).collect())
            .collect();
        let mut de = hdrhistogram::serialization::Deserializer::new();
        for iv in self
            .intervals
            .iter()
            .filter(|iv| iv.start >= from && iv.start < to && iv.end > iv.start)
        {
            for o in &iv.ops {
                let dst = &mut out[o.workload];
                while dst.len() <= o.op {
                    dst.push(OpAcc::new());
                }
                if let Ok(h) = de.deserialize::<u64, _>(&mut &o.corrected[..]) {
                    let _ = dst[o.op].corrected.add(&h);
                }
                if let Ok(h) = de.deserialize::<u64, _>(&mut &o.service[..]) {
                    let _ = dst[o.op].service.add(&h);
                }
                for (a, b) in dst[o.op].errors.iter_mut().zip(o.errors.iter()) {
                    *a += b;
                }
            }
        }
        out
    }
}

/// Summary statistics of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LatencyStats {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub min: u64,
}

impl LatencyStats {
    pub fn of(h: &Histogram<u64>) -> LatencyStats {
        if h.is_empty() {
            return LatencyStats::default();
        }
        LatencyStats {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
            min: h.min(),
        }
    }
}
