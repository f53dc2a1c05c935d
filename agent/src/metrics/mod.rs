//! Measurement: HdrHistogram recorders that workers write into without waiting, and a collector
//! that keeps them as slots of time (V2-encoded: the `.hlog`, the series and exact per-phase
//! percentiles come from them), plus the declared counters of the safety oracles.
//!
//! **Every operation belongs to the slot in which it was meant to start** — its intended start in
//! the open model, its send time in the closed model — whatever its completion time. Slots are
//! [`SLOT`] long and are also cut exactly at every fault injection and heal ([`Timebase::cut_now`]),
//! so a phase (`before`, `during:<fault>`, `after`) is an exact union of slots and its histograms
//! are exact. A slot is closed ([`Collector::drain`]) once it ended more than a grace period ago;
//! an operation that completes later still lands in its own slot (the closed slot is re-encoded
//! with it), so nothing is moved to the phase in which it happened to complete.

pub mod hlog;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

use crate::plan::counter::{CounterDef, CounterKind};
use crate::valkey::ErrorKind;

/// Highest recordable latency: one hour in microseconds (larger values saturate).
pub const MAX_US: u64 = 3_600_000_000;
/// The width of a slot: the resolution of phases and fault impact windows.
pub const SLOT: Duration = Duration::from_millis(100);
/// How long after its end a slot stays open for operations still in flight.
pub const GRACE: Duration = Duration::from_secs(1);
/// The resolution of the outcome pulse that unavailability windows are measured from.
pub const PULSE: Duration = Duration::from_millis(10);
const STRIPES: usize = 8;
const NKINDS: usize = ErrorKind::ALL.len();

/// A histogram covering the whole range (for totals and merges).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// A histogram that grows with the values it sees (small for the short latencies of one slot).
fn slot_hist() -> Histogram<u64> {
    Histogram::new(3).expect("valid histogram precision")
}

/// Per-op accumulators.
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
    fn small() -> Self {
        OpAcc {
            corrected: slot_hist(),
            service: slot_hist(),
            errors: [0; NKINDS],
        }
    }
    pub fn add(&mut self, o: &OpAcc) {
        let _ = self.corrected.add(&o.corrected);
        let _ = self.service.add(&o.service);
        self.add_errors(&o.errors);
    }
    fn add_errors(&mut self, errors: &[u64; NKINDS]) {
        for (a, b) in self.errors.iter_mut().zip(errors.iter()) {
            *a += b;
        }
    }
    pub fn ok(&self) -> u64 {
        self.corrected.len()
    }
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }
    fn is_empty(&self) -> bool {
        self.ok() == 0 && self.error_count() == 0
    }
}

/// Raw (latency, service) pairs a recording accumulator keeps before it needs histograms.
const RAW_MAX: usize = 512;

/// What one stripe gathers for one op of one slot between two drains. A slot's share of a
/// stripe is often a handful of operations (at 15,000 ops/s with 2 s latencies, ~10 per stripe
/// per slot over 20 slots in flight), and a histogram that grew to a 2 s value holds 11,000
/// counters (90 KiB) however few values it has: with 8 stripes × the slots in flight × ops × 2,
/// that was most of the agent's heap at 10,000 plugin VUs. So the first [`RAW_MAX`] values are
/// kept as they are (µs fit in `u32`: [`MAX_US`] < 2³²) and histograms start only past them.
#[derive(Default)]
struct RecAcc {
    raw: Vec<(u32, u32)>,
    hist: Option<Box<OpAcc>>,
    errors: [u64; NKINDS],
}

impl RecAcc {
    fn ok(&mut self, latency_us: u64, service_us: u64) {
        let (l, s) = (latency_us.clamp(1, MAX_US), service_us.clamp(1, MAX_US));
        if self.hist.is_none() && self.raw.len() < RAW_MAX {
            self.raw.push((l as u32, s as u32));
            return;
        }
        let h = self.hist.get_or_insert_with(|| Box::new(OpAcc::small()));
        // Slot histograms grow with what they see (a saturating record would clamp).
        for (rl, rs) in self.raw.drain(..) {
            let _ = h.corrected.record(rl as u64);
            let _ = h.service.record(rs as u64);
        }
        let _ = h.corrected.record(l);
        let _ = h.service.record(s);
    }

    /// Add everything gathered into `dst`.
    fn add_to(&self, dst: &mut OpAcc) {
        if let Some(h) = &self.hist {
            let _ = dst.corrected.add(&h.corrected);
            let _ = dst.service.add(&h.service);
        }
        for &(l, s) in &self.raw {
            let _ = dst.corrected.record(l as u64);
            let _ = dst.service.record(s as u64);
        }
        dst.add_errors(&self.errors);
    }

    fn is_empty(&self) -> bool {
        self.raw.is_empty()
            && self.hist.as_ref().is_none_or(|h| h.ok() == 0)
            && self.errors.iter().all(|&e| e == 0)
    }

    /// Empty it for reuse; the histograms go (a spare should not hold 90 KiB for a handful).
    fn reset(&mut self) {
        self.raw.clear();
        self.hist = None;
        self.errors = [0; NKINDS];
    }
}

// ---------------------------------------------------------------------------------------------
// Time: slots

/// A slot: grid cell `grid` (of [`SLOT`]), part `sub` of it when fault cuts split the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotKey {
    pub grid: u32,
    pub sub: u16,
}

/// Maps instants to slots: a fixed grid from the run start plus the exact instants of fault
/// injections and heals. Shared by every recorder and the fault timeline.
pub struct Timebase {
    start: Instant,
    /// Offsets of the extra cuts from the start, in order.
    cuts: RwLock<Vec<Duration>>,
}

impl Timebase {
    pub fn new(start: Instant) -> Arc<Timebase> {
        Arc::new(Timebase {
            start,
            cuts: RwLock::new(vec![]),
        })
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Cut a slot boundary now (a fault is about to be injected, or was just healed). Taken
    /// under the lock recorders read, so every operation meant to start after the returned
    /// instant lands after the cut.
    pub fn cut_now(&self) -> Instant {
        let mut cuts = self.cuts.write().expect("cuts lock");
        let now = Instant::now();
        let off = now.saturating_duration_since(self.start);
        if cuts.last().is_none_or(|l| off > *l) && !off.is_zero() {
            cuts.push(off);
        }
        now
    }

    /// The slot of an operation meant to start at `t`.
    pub fn key(&self, t: Instant) -> SlotKey {
        let off = t.saturating_duration_since(self.start);
        self.key_of(off, &self.cuts.read().expect("cuts lock"))
    }

    fn key_of(&self, off: Duration, cuts: &[Duration]) -> SlotKey {
        let grid = (off.as_nanos() / SLOT.as_nanos()).min(u32::MAX as u128) as u32;
        let cell_start = SLOT * grid;
        let sub = cuts
            .iter()
            .filter(|c| **c > cell_start && **c <= off)
            .count()
            .min(u16::MAX as usize) as u16;
        SlotKey { grid, sub }
    }

    /// `[from, to)` of a slot, relative to the start.
    pub fn bounds(&self, k: SlotKey) -> (Duration, Duration) {
        let cell_start = SLOT * k.grid;
        let cell_end = cell_start + SLOT;
        let cuts = self.cuts.read().expect("cuts lock");
        let inside: Vec<Duration> = cuts
            .iter()
            .copied()
            .filter(|c| *c > cell_start && *c < cell_end)
            .collect();
        let from = if k.sub == 0 {
            cell_start
        } else {
            inside
                .get(k.sub as usize - 1)
                .copied()
                .unwrap_or(cell_start)
        };
        let to = inside.get(k.sub as usize).copied().unwrap_or(cell_end);
        (from, to.max(from))
    }
}

// ---------------------------------------------------------------------------------------------
// Counters

/// The declared counters of one workload (safety oracles, totals, figures), lock-free. Safety
/// counters also remember when they counted (per slot grid cell), for fault impact windows.
#[derive(Debug)]
pub struct Counters {
    defs: &'static [CounterDef],
    vals: Vec<AtomicU64>,
    /// (grid cell, counter) → count, for counts added with a time.
    timed: Mutex<BTreeMap<(u32, usize), u64>>,
    start: OnceLock<Instant>,
    /// Stretches an oracle found the workload not served (`check::Outage`), from the start.
    outages: Mutex<Vec<NotServed>>,
}

/// A stretch an oracle found the workload not served although its recorded operations may look
/// normal (an orphaned lock name), as offsets from the run start; `to` is `None` when it never
/// ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServed {
    pub from: Duration,
    pub to: Option<Duration>,
    pub what: String,
}

impl Counters {
    pub fn new(defs: &'static [CounterDef]) -> Arc<Counters> {
        Arc::new(Counters {
            defs,
            vals: defs.iter().map(|_| AtomicU64::new(0)).collect(),
            timed: Mutex::new(BTreeMap::new()),
            start: OnceLock::new(),
            outages: Mutex::new(vec![]),
        })
    }
    /// An oracle found the workload not served from `from` to `to` (`None`: it never ended).
    pub fn not_served(&self, from: Instant, to: Option<Instant>, what: String) {
        let Some(start) = self.start.get() else {
            return;
        };
        let since = |t: Instant| t.saturating_duration_since(*start);
        self.outages.lock().expect("outages lock").push(NotServed {
            from: since(from),
            to: to.map(since),
            what,
        });
    }
    /// The stretches oracles found the workload not served.
    pub fn outages(&self) -> Vec<NotServed> {
        self.outages.lock().expect("outages lock").clone()
    }
    pub fn add(&self, idx: usize, n: u64) {
        self.vals[idx].fetch_add(n, Ordering::Relaxed);
    }
    /// Add `n` that happened at `at` (so a fault's impact window can say what it counted).
    pub fn add_at(&self, idx: usize, n: u64, at: Instant) {
        self.add(idx, n);
        if n == 0 {
            return;
        }
        let Some(start) = self.start.get() else {
            return;
        };
        let grid = (at.saturating_duration_since(*start).as_nanos() / SLOT.as_nanos()) as u32;
        *self
            .timed
            .lock()
            .expect("timed lock")
            .entry((grid, idx))
            .or_insert(0) += n;
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
    /// What was added with a time inside `[from, to)` (offsets from the run start), by counter.
    pub fn between(&self, from: Duration, to: Duration) -> Vec<(&'static CounterDef, u64)> {
        let g0 = (from.as_nanos() / SLOT.as_nanos()) as u32;
        let g1 = to
            .as_nanos()
            .div_ceil(SLOT.as_nanos())
            .min(u32::MAX as u128) as u32;
        let mut out: BTreeMap<usize, u64> = BTreeMap::new();
        for ((g, i), n) in self.timed.lock().expect("timed lock").iter() {
            if *g >= g0 && *g < g1 {
                *out.entry(*i).or_insert(0) += n;
            }
        }
        out.into_iter().map(|(i, n)| (&self.defs[i], n)).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Recording

/// One stripe: the accumulators of the slots its workers recorded into since the last drain,
/// and the outcome pulse.
#[derive(Default)]
struct Stripe {
    open: Vec<(SlotKey, Vec<RecAcc>)>,
    spare: Vec<Vec<RecAcc>>,
    /// (completion bucket) → (ok, errors); (send bucket) → earliest ok completion bucket.
    pulse: Vec<PulseMark>,
}

impl Stripe {
    /// The accumulators of slot `key` and the pulse, the slot opened (from a spare) if this
    /// stripe has none yet.
    fn slot(&mut self, key: SlotKey) -> (&mut Vec<RecAcc>, &mut Vec<PulseMark>) {
        let pos = match self.open.iter().rposition(|(k, _)| *k == key) {
            Some(p) => p,
            None => {
                let accs = self.spare.pop().unwrap_or_default();
                self.open.push((key, accs));
                self.open.len() - 1
            }
        };
        (&mut self.open[pos].1, &mut self.pulse)
    }
}

#[derive(Clone, Copy, Debug)]
struct PulseMark {
    end: u32,
    sent: u32,
    ok: bool,
}

/// Open-model starts of some clients: how late each was released, in nanoseconds.
struct StartStripe {
    /// Every start: release − intended start.
    lag: Histogram<u64>,
    /// Starts whose client was idle, waiting for them: the generator's own lateness.
    waited: Histogram<u64>,
    /// Starts whose client was still busy with earlier operations when they came due.
    behind: u64,
}

impl StartStripe {
    fn new() -> StartStripe {
        let h = || Histogram::new(2).expect("valid histogram precision");
        StartStripe {
            lag: h(),
            waited: h(),
            behind: 0,
        }
    }
}

/// The send lag of a workload's open-model starts (release − intended start), in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SendLagStats {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Open-model starts (batches: a pipeline is one start).
    pub starts: u64,
    /// Starts whose client was still busy with earlier operations when they came due.
    pub behind: u64,
    /// p99 of the starts the client was idle for: the generator's own timing (CPU, timers).
    pub waited_p99: f64,
}

/// The metrics of one workload: op names (growable for plugins), stripes, counters.
pub struct WorkloadMetrics {
    pub id: String,
    ops: RwLock<Vec<String>>,
    stripes: Vec<Mutex<Stripe>>,
    starts: Vec<Mutex<StartStripe>>,
    timebase: OnceLock<Arc<Timebase>>,
    pub counters: Arc<Counters>,
    /// Open-model starts that began later than 2 ms after their intended time.
    pub late_starts: AtomicU64,
    /// Intended starts never issued because the run ended first.
    pub dropped_starts: AtomicU64,
    /// Counters and gauges declared at run time (plugins): name → (kind, value).
    custom: Mutex<BTreeMap<String, (CounterKind, i64)>>,
    /// Picks operations for trace spans (set by the run when exporting traces).
    sampler: OnceLock<OpSampler>,
}

impl WorkloadMetrics {
    pub fn new(
        id: &str,
        ops: Vec<String>,
        counters: &'static [CounterDef],
    ) -> Arc<WorkloadMetrics> {
        Arc::new(WorkloadMetrics {
            id: id.to_string(),
            ops: RwLock::new(ops),
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(Stripe::default()))
                .collect(),
            starts: (0..STRIPES)
                .map(|_| Mutex::new(StartStripe::new()))
                .collect(),
            timebase: OnceLock::new(),
            counters: Counters::new(counters),
            late_starts: AtomicU64::new(0),
            dropped_starts: AtomicU64::new(0),
            custom: Mutex::new(Default::default()),
            sampler: OnceLock::new(),
        })
    }

    /// Attach the run's timebase (the collector does, before any recording).
    fn attach(&self, tb: Arc<Timebase>) {
        let _ = self.counters.start.set(tb.start());
        let _ = self.timebase.set(tb);
    }

    fn timebase(&self) -> &Timebase {
        self.timebase
            .get()
            .expect("workload metrics are attached to a collector before recording")
    }

    /// One open-model start of client `client`: released `lag` after its intended start;
    /// `behind` when the client was still busy when it came due.
    pub fn record_start(&self, client: usize, lag: Duration, behind: bool) {
        let ns = (lag.as_nanos().min(u64::MAX as u128) as u64).min(MAX_US * 1000);
        let mut g = self.starts[client % STRIPES]
            .lock()
            .expect("start stripe lock");
        let _ = g.lag.record(ns);
        if behind {
            g.behind += 1;
        } else {
            let _ = g.waited.record(ns);
        }
    }

    /// The send lag of the open-model starts so far; `None` when there were none (closed model).
    pub fn send_lag(&self) -> Option<SendLagStats> {
        let mut lag = Histogram::<u64>::new(2).expect("valid histogram precision");
        let mut waited = lag.clone();
        let mut behind = 0;
        for s in &self.starts {
            let g = s.lock().expect("start stripe lock");
            let _ = lag.add(&g.lag);
            let _ = waited.add(&g.waited);
            behind += g.behind;
        }
        if lag.is_empty() {
            return None;
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Some(SendLagStats {
            p50: us(lag.value_at_quantile(0.5)),
            p99: us(lag.value_at_quantile(0.99)),
            max: us(lag.max()),
            starts: lag.len(),
            behind,
            waited_p99: if waited.is_empty() {
                0.0
            } else {
                us(waited.value_at_quantile(0.99))
            },
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
    /// and service time from the actual send. It belongs to the slot of `intended`.
    pub fn record(
        &self,
        op: usize,
        intended: Instant,
        sent: Instant,
        end: Instant,
        outcome: Result<(), ErrorKind>,
    ) {
        self.record_all(intended, sent, end, std::iter::once((op, outcome)));
    }

    /// Record the operations of one pipeline — same intended start, send and completion — under
    /// one lock of the stripe.
    pub fn record_all(
        &self,
        intended: Instant,
        sent: Instant,
        end: Instant,
        ops: impl IntoIterator<Item = (usize, Result<(), ErrorKind>)>,
    ) {
        let lat = end.saturating_duration_since(intended).as_micros() as u64;
        let svc = end.saturating_duration_since(sent).as_micros() as u64;
        let tb = self.m.timebase();
        let (end_b, sent_b) = (pulse_bucket(tb.start, end), pulse_bucket(tb.start, sent));
        let sampler = self.m.sampler.get();
        let mut g = self.m.stripes[self.stripe].lock().expect("stripe lock");
        let (accs, pulse) = g.slot(tb.key(intended));
        for (op, outcome) in ops {
            self.add(accs, op, lat, svc, outcome);
            pulse.push(PulseMark {
                end: end_b,
                sent: sent_b,
                ok: outcome.is_ok(),
            });
            if let Some(s) = sampler {
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
    }

    /// Record a measured duration that began at `began` (an end-to-end latency, a plugin's own
    /// histogram): it belongs to the slot of `began`; it is not an operation of the server, so
    /// it does not count for availability.
    pub fn record_us(
        &self,
        op: usize,
        began: Instant,
        latency_us: u64,
        service_us: u64,
        outcome: Result<(), ErrorKind>,
    ) {
        self.store(op, began, latency_us, service_us, outcome);
    }

    fn store(
        &self,
        op: usize,
        intended: Instant,
        latency_us: u64,
        service_us: u64,
        outcome: Result<(), ErrorKind>,
    ) {
        let key = self.m.timebase().key(intended);
        let mut g = self.m.stripes[self.stripe].lock().expect("stripe lock");
        let (accs, _) = g.slot(key);
        self.add(accs, op, latency_us, service_us, outcome);
    }

    fn add(
        &self,
        accs: &mut Vec<RecAcc>,
        op: usize,
        latency_us: u64,
        service_us: u64,
        outcome: Result<(), ErrorKind>,
    ) {
        if op >= accs.len() {
            let n = self.m.ops.read().expect("ops lock").len().max(op + 1);
            accs.resize_with(n, RecAcc::default);
        }
        let a = &mut accs[op];
        match outcome {
            Ok(()) => a.ok(latency_us, service_us),
            Err(k) => a.errors[k.index()] += 1,
        }
    }

    pub fn counter(&self, idx: usize, n: u64) {
        self.m.counters.add(idx, n);
    }
}

fn pulse_bucket(start: Instant, t: Instant) -> u32 {
    (t.saturating_duration_since(start).as_nanos() / PULSE.as_nanos()).min(u32::MAX as u128) as u32
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

// ---------------------------------------------------------------------------------------------
// Collecting

/// One closed slot of one op, kept compactly.
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

impl IntervalOp {
    fn encode(ser: &mut V2Serializer, workload: usize, op: usize, a: &OpAcc) -> IntervalOp {
        let mut c = Vec::new();
        let mut s = Vec::new();
        let _ = ser.serialize(&a.corrected, &mut c);
        let _ = ser.serialize(&a.service, &mut s);
        IntervalOp {
            workload,
            op,
            corrected: c,
            service: s,
            ok: a.ok(),
            errors: a.errors,
            max_us: a.corrected.max(),
            p50_us: a.corrected.value_at_quantile(0.5),
            p99_us: a.corrected.value_at_quantile(0.99),
        }
    }

    fn decode(&self, de: &mut Deserializer) -> OpAcc {
        let mut a = OpAcc::small();
        if let Ok(h) = de.deserialize::<u64, _>(&mut &self.corrected[..]) {
            let _ = a.corrected.add(&h);
        }
        if let Ok(h) = de.deserialize::<u64, _>(&mut &self.service[..]) {
            let _ = a.service.add(&h);
        }
        a.errors = self.errors;
        a
    }
}

/// One closed slot: `[start, end)` relative to the run start, by intended start.
#[derive(Clone)]
pub struct Interval {
    pub start: Duration,
    pub end: Duration,
    pub ops: Vec<IntervalOp>,
    /// Closing order (0, 1, …): what readers that follow the run have already seen.
    pub seq: u64,
}

/// Outcomes of one workload over time at [`PULSE`] resolution.
#[derive(Default, Clone)]
pub struct Pulse {
    /// Per completion bucket: (ok, failed).
    pub by_end: Vec<(u32, u32)>,
    /// Per send bucket: the earliest completion bucket of an operation sent then that succeeded.
    pub first_ok_end_by_sent: Vec<u32>,
    /// Per completion bucket: the earliest send bucket of an operation that failed then (so a
    /// failure can be told apart by when its operation was sent).
    pub first_fail_sent_by_end: Vec<u32>,
}

impl Pulse {
    fn mark(&mut self, m: PulseMark) {
        let need = m.end.max(m.sent) as usize + 1;
        if need > 50_000_000 {
            return;
        }
        if self.by_end.len() < need {
            self.by_end.resize(need, (0, 0));
            self.first_ok_end_by_sent.resize(need, u32::MAX);
            self.first_fail_sent_by_end.resize(need, u32::MAX);
        }
        let e = &mut self.by_end[m.end as usize];
        if m.ok {
            e.0 += 1;
            let f = &mut self.first_ok_end_by_sent[m.sent as usize];
            *f = (*f).min(m.end);
        } else {
            e.1 += 1;
            let f = &mut self.first_fail_sent_by_end[m.end as usize];
            *f = (*f).min(m.sent);
        }
    }
}

/// Totals, closed slots and pulses for every workload; owned by the run, fed by
/// [`Collector::drain`].
pub struct Collector {
    pub workloads: Vec<Arc<WorkloadMetrics>>,
    /// Whole-run accumulators per (workload, op): every recorded operation exactly once.
    pub totals: Vec<Vec<OpAcc>>,
    /// Closed slots, in time order.
    pub intervals: Vec<Interval>,
    pub pulses: Vec<Pulse>,
    pub started: Instant,
    pub started_wall: std::time::SystemTime,
    pub timebase: Arc<Timebase>,
    /// Operations that completed after their slot was closed (the slot was re-encoded).
    pub late: u64,
    pending: BTreeMap<SlotKey, Vec<Vec<OpAcc>>>,
    closed: std::collections::HashMap<SlotKey, usize>,
    next_seq: u64,
    ser: V2Serializer,
}

impl Collector {
    pub fn new(workloads: Vec<Arc<WorkloadMetrics>>, started: Instant) -> Collector {
        let n = workloads.len();
        let timebase = Timebase::new(started);
        for w in &workloads {
            w.attach(timebase.clone());
        }
        Collector {
            workloads,
            totals: (0..n).map(|_| vec![]).collect(),
            intervals: vec![],
            pulses: (0..n).map(|_| Pulse::default()).collect(),
            started,
            started_wall: std::time::SystemTime::now(),
            timebase,
            late: 0,
            pending: BTreeMap::new(),
            closed: Default::default(),
            next_seq: 0,
            ser: V2Serializer::new(),
        }
    }

    /// Collect what the workers recorded, and close every slot that ended more than [`GRACE`]
    /// before `now`. Returns how many slots were closed.
    pub fn drain(&mut self, now: Instant) -> usize {
        self.collect();
        let horizon = now.saturating_duration_since(self.started);
        let due: Vec<SlotKey> = self
            .pending
            .keys()
            .copied()
            .filter(|k| self.timebase.bounds(*k).1 + GRACE <= horizon)
            .collect();
        for k in &due {
            self.close(*k);
        }
        due.len()
    }

    /// Collect and close every slot (the run is over).
    pub fn finish(&mut self) {
        self.collect();
        let all: Vec<SlotKey> = self.pending.keys().copied().collect();
        for k in all {
            self.close(k);
        }
    }

    fn collect(&mut self) {
        let mut de = Deserializer::new();
        for (w, m) in self.workloads.iter().enumerate() {
            let nops = m.ops.read().expect("ops lock").len();
            let tot = &mut self.totals[w];
            while tot.len() < nops {
                tot.push(OpAcc::new());
            }
            for s in &m.stripes {
                let (open, pulse) = {
                    let mut g = s.lock().expect("stripe lock");
                    (std::mem::take(&mut g.open), std::mem::take(&mut g.pulse))
                };
                for p in pulse {
                    self.pulses[w].mark(p);
                }
                let mut spare = vec![];
                for (key, mut accs) in open {
                    for (op, a) in accs.iter().enumerate() {
                        if a.is_empty() {
                            continue;
                        }
                        while tot.len() <= op {
                            tot.push(OpAcc::new());
                        }
                        a.add_to(&mut tot[op]);
                    }
                    if let Some(&i) = self.closed.get(&key) {
                        // Completed after its slot was closed: re-encode that slot with it.
                        self.late += 1;
                        let late: Vec<OpAcc> = accs
                            .iter()
                            .map(|a| {
                                let mut o = OpAcc::small();
                                a.add_to(&mut o);
                                o
                            })
                            .collect();
                        patch(&mut self.intervals[i], w, &late, &mut de, &mut self.ser);
                    } else {
                        let slot = self
                            .pending
                            .entry(key)
                            .or_insert_with(|| self.workloads.iter().map(|_| vec![]).collect());
                        let dst = &mut slot[w];
                        for (op, a) in accs.iter().enumerate() {
                            if a.is_empty() {
                                continue;
                            }
                            while dst.len() <= op {
                                dst.push(OpAcc::small());
                            }
                            a.add_to(&mut dst[op]);
                        }
                    }
                    for a in accs.iter_mut() {
                        a.reset();
                    }
                    spare.push(accs);
                }
                if !spare.is_empty() {
                    let mut g = s.lock().expect("stripe lock");
                    g.spare.extend(spare);
                    g.spare.truncate(8);
                }
            }
        }
    }

    fn close(&mut self, key: SlotKey) {
        let Some(slot) = self.pending.remove(&key) else {
            return;
        };
        let (start, end) = self.timebase.bounds(key);
        let mut iv = Interval {
            start,
            end,
            ops: vec![],
            seq: self.next_seq,
        };
        self.next_seq += 1;
        for (w, accs) in slot.iter().enumerate() {
            for (op, a) in accs.iter().enumerate() {
                if !a.is_empty() {
                    iv.ops.push(IntervalOp::encode(&mut self.ser, w, op, a));
                }
            }
        }
        // Slots close in time order except when a late one arrives: keep the vector sorted.
        let pos = self.intervals.partition_point(|x| x.start <= start);
        if pos < self.intervals.len() {
            for i in self.closed.values_mut() {
                if *i >= pos {
                    *i += 1;
                }
            }
        }
        self.intervals.insert(pos, iv);
        self.closed.insert(key, pos);
    }

    /// Slots closed after the one numbered `seq` (all with `None`), in time order.
    pub fn closed_since(&self, seq: Option<u64>) -> impl Iterator<Item = &Interval> {
        self.intervals
            .iter()
            .filter(move |iv| seq.is_none_or(|s| iv.seq > s))
    }

    /// The number of the last slot closed, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.next_seq.checked_sub(1)
    }

    /// Sum of the closed slots within `[from, to)` (by slot start), per (workload, op).
    pub fn window(&self, from: Duration, to: Duration) -> Vec<Vec<OpAcc>> {
        // Growing histograms: a full-range one is ~370 KiB to allocate and zero per op.
        let mut out: Vec<Vec<OpAcc>> = self
            .workloads
            .iter()
            .map(|m| (0..m.op_names().len()).map(|_| OpAcc::small()).collect())
            .collect();
        let mut de = Deserializer::new();
        for iv in self.intervals.iter().filter(|iv| {
            // Slot starts are exact cut offsets; windows come back through f64 seconds.
            let eps = Duration::from_micros(1);
            iv.start + eps >= from && iv.start + eps < to && iv.end > iv.start
        }) {
            for o in &iv.ops {
                let dst = &mut out[o.workload];
                while dst.len() <= o.op {
                    dst.push(OpAcc::small());
                }
                dst[o.op].add(&o.decode(&mut de));
            }
        }
        out
    }

    /// The closed slots grouped into windows of `width` (for the series and the report).
    pub fn coarse(&self, width: Duration) -> Vec<Interval> {
        let mut out: Vec<Interval> = vec![];
        let mut de = Deserializer::new();
        let mut ser = V2Serializer::new();
        let mut accs: BTreeMap<(usize, usize), OpAcc> = BTreeMap::new();
        let mut cur: Option<(u128, Interval)> = None;
        for iv in &self.intervals {
            let b = iv.start.as_nanos() / width.as_nanos().max(1);
            if cur.as_ref().is_none_or(|c| c.0 != b) {
                if let Some((_, done)) = cur.take() {
                    out.push(with_ops(done, &mut accs, &mut ser));
                }
                cur = Some((
                    b,
                    Interval {
                        start: iv.start,
                        end: iv.end,
                        ops: vec![],
                        seq: iv.seq,
                    },
                ));
            }
            let c = &mut cur.as_mut().expect("set above").1;
            c.end = c.end.max(iv.end);
            for o in &iv.ops {
                accs.entry((o.workload, o.op))
                    .or_insert_with(OpAcc::small)
                    .add(&o.decode(&mut de));
            }
        }
        if let Some((_, done)) = cur {
            out.push(with_ops(done, &mut accs, &mut ser));
        }
        out
    }
}

/// `iv` with the accumulated ops encoded into it (the accumulators are emptied).
fn with_ops(
    mut iv: Interval,
    accs: &mut BTreeMap<(usize, usize), OpAcc>,
    ser: &mut V2Serializer,
) -> Interval {
    for ((w, op), a) in std::mem::take(accs) {
        iv.ops.push(IntervalOp::encode(ser, w, op, &a));
    }
    iv
}

/// Add one workload's late accumulators into a closed slot, re-encoding the ops they touch.
fn patch(
    iv: &mut Interval,
    w: usize,
    accs: &[OpAcc],
    de: &mut Deserializer,
    ser: &mut V2Serializer,
) {
    for (op, a) in accs.iter().enumerate() {
        if a.is_empty() {
            continue;
        }
        match iv.ops.iter_mut().find(|o| o.workload == w && o.op == op) {
            Some(o) => {
                let mut merged = o.decode(de);
                merged.add(a);
                *o = IntervalOp::encode(ser, w, op, &merged);
            }
            None => iv.ops.push(IntervalOp::encode(ser, w, op, a)),
        }
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

/// Test-only: a [`Collector`] over hand-made operations at chosen offsets from the run start,
/// for the unit tables of the verdict logic (`summary::impact`, `summary::check`).
#[cfg(test)]
pub(crate) struct Sketch {
    c: Collector,
    recs: Vec<Recorder>,
}

#[cfg(test)]
impl Sketch {
    /// Workloads as `(id, ops, counter definitions)`.
    pub(crate) fn new(workloads: &[(&str, &[&str], &'static [CounterDef])]) -> Sketch {
        let metrics: Vec<Arc<WorkloadMetrics>> = workloads
            .iter()
            .map(|(id, ops, defs)| {
                WorkloadMetrics::new(id, ops.iter().map(|o| o.to_string()).collect(), defs)
            })
            .collect();
        let recs = metrics.iter().map(|m| m.recorder(0)).collect();
        Sketch {
            c: Collector::new(metrics, Instant::now()),
            recs,
        }
    }

    /// Cut a slot boundary at `at`, as a fault's injection or heal does (before recording
    /// operations meant to start around it).
    pub(crate) fn cut(&self, at: Duration) {
        let mut cuts = self.c.timebase.cuts.write().expect("cuts lock");
        if !at.is_zero() && !cuts.contains(&at) {
            cuts.push(at);
            cuts.sort();
        }
    }

    /// One operation of workload `w`: meant to start and sent at `at`, completed `latency` later.
    pub(crate) fn op(
        &self,
        w: usize,
        op: usize,
        at: Duration,
        latency: Duration,
        outcome: Result<(), ErrorKind>,
    ) {
        let t = self.c.started + at;
        self.recs[w].record(op, t, t, t + latency, outcome);
    }

    /// Counter `idx` of workload `w` counted `n` at `at`.
    pub(crate) fn count(&self, w: usize, idx: usize, n: u64, at: Duration) {
        self.c.workloads[w]
            .counters
            .add_at(idx, n, self.c.started + at);
    }

    /// An oracle found workload `w` not served from `from` to `to` (`None`: never again).
    pub(crate) fn not_served(&self, w: usize, from: Duration, to: Option<Duration>) {
        let at = |d: Duration| self.c.started + d;
        self.c.workloads[w].counters.not_served(
            at(from),
            to.map(at),
            "orphaned lock name k".into(),
        );
    }

    /// Close every slot and hand the collector over.
    pub(crate) fn finish(mut self) -> Collector {
        self.c.finish();
        self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_land_in_the_slot_of_their_intended_start() {
        let start = Instant::now();
        let m = WorkloadMetrics::new("w", vec!["get".into()], &[]);
        let mut c = Collector::new(vec![m.clone()], start);
        let rec = m.recorder(0);
        // Meant at 50ms (slot 0), completed at 750ms: slot 0, latency 700ms.
        let t = |ms: u64| start + Duration::from_millis(ms);
        rec.record(0, t(50), t(60), t(750), Ok(()));
        rec.record(0, t(150), t(150), t(151), Ok(()));
        rec.record(0, t(160), t(160), t(170), Err(ErrorKind::Timeout));
        c.finish();
        assert_eq!(c.intervals.len(), 2);
        assert_eq!(c.intervals[0].start, Duration::ZERO);
        assert_eq!(c.intervals[0].ops[0].ok, 1);
        assert!(c.intervals[0].ops[0].max_us >= 699_000);
        assert_eq!(c.intervals[1].start, Duration::from_millis(100));
        assert_eq!(c.intervals[1].ops[0].ok, 1);
        assert_eq!(c.intervals[1].ops[0].errors.iter().sum::<u64>(), 1);
        assert_eq!(c.totals[0][0].ok(), 2);
        // The pulse saw one failure at 170ms.
        assert_eq!(c.pulses[0].by_end[17], (0, 1));
    }

    #[test]
    fn cuts_split_slots_exactly_and_late_operations_patch_their_slot() {
        let start = Instant::now() - Duration::from_secs(5);
        let m = WorkloadMetrics::new("w", vec!["get".into()], &[]);
        let mut c = Collector::new(vec![m.clone()], start);
        let rec = m.recorder(0);
        let cut = c.timebase.cut_now();
        let before = cut - Duration::from_micros(10);
        rec.record(0, before, before, cut + Duration::from_millis(1), Ok(()));
        rec.record(0, cut, cut, cut + Duration::from_millis(1), Ok(()));
        c.drain(Instant::now() + Duration::from_secs(10));
        let n = c.intervals.len();
        assert_eq!(n, 2, "one slot on each side of the cut");
        assert_eq!(c.intervals[1].start, cut.duration_since(start));
        // Completes after its slot was closed: it still lands there.
        rec.record(0, before, before, Instant::now(), Ok(()));
        c.finish();
        assert_eq!(c.intervals.len(), 2);
        assert_eq!(c.intervals[0].ops[0].ok, 2);
        assert_eq!(c.late, 1);
        let w = c.window(Duration::ZERO, cut.duration_since(start));
        assert_eq!(w[0][0].ok(), 2);
    }

    #[test]
    fn raw_values_and_histograms_record_the_same_slot() {
        // Below, at and past the point where a stripe's accumulator switches from raw values
        // to histograms, the slot and the totals hold exactly what direct recording would.
        for n in [1usize, RAW_MAX - 1, RAW_MAX, RAW_MAX + 1, 3 * RAW_MAX + 7] {
            let start = Instant::now();
            let m = WorkloadMetrics::new("w", vec!["get".into()], &[]);
            let mut c = Collector::new(vec![m.clone()], start);
            let rec = m.recorder(0);
            let mut want_c = new_hist();
            let mut want_s = new_hist();
            for i in 0..n as u64 {
                let intended = start + Duration::from_micros(i % 50);
                let sent = intended + Duration::from_micros(i * 7 % 300);
                let end = sent + Duration::from_micros(1 + i * 7919 % 2_000_000);
                rec.record(0, intended, sent, end, Ok(()));
                want_c.record((end - intended).as_micros() as u64).unwrap();
                want_s.record((end - sent).as_micros() as u64).unwrap();
            }
            rec.record(0, start, start, start, Err(ErrorKind::Timeout));
            c.finish();
            let got = &c.totals[0][0];
            assert_eq!(got.corrected, want_c, "n = {n}");
            assert_eq!(got.service, want_s, "n = {n}");
            assert_eq!(got.error_count(), 1);
            let w = c.window(Duration::ZERO, Duration::from_millis(100));
            assert_eq!(w[0][0].ok(), n as u64);
            assert_eq!(w[0][0].corrected.max(), want_c.max());
            assert_eq!(
                w[0][0].corrected.value_at_quantile(0.99),
                want_c.value_at_quantile(0.99)
            );
        }
    }
}
