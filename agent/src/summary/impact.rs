//! What each fault did, measured where it hurt. A fault's **impact window** runs from its
//! injection until every workload is back to normal: no errors and every operation's p99 within
//! 1.5× of its value before the first fault (at least 5 ms above it: timer and scheduling noise),
//! held for three slots in a row (300 ms), with the workload served again (a workload that completes nothing is not back). Windowed faults last at
//! least until their heal. The window ends on a slot boundary (100 ms resolution), so
//! `{during:<fault>}` is an exact union of slots.
//!
//! Per workload it also measures the unavailability the clients saw, at 10 ms resolution: from
//! the last success before the first failure to the first success of an operation sent after that
//! failure; the errors by kind inside the window; and what the safety oracles counted there.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{FaultRecord, Impact, Unavailability, WorkloadImpact};
use crate::metrics::{Collector, Interval, LatencyStats, NotServed, OpAcc, PULSE};
use crate::valkey::ErrorKind;

/// How long a workload must look normal to count as recovered: long enough not to be fooled by
/// one lucky slot, short enough that a later unrelated hiccup does not stretch the window.
const SETTLE: Duration = Duration::from_millis(300);
/// At the end of the load a shorter settled stretch is accepted, but not less than this.
pub const SETTLE_MIN: Duration = Duration::from_millis(200);
/// Slack on top of 1.5× the baseline p99 (timer and scheduling noise at sub-ms latencies).
const SLACK_US: f64 = 5000.0;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// An operation served at least this often before the first fault (ops/s) must be served again
/// for its workload to be back: 3 or more expected in a settled stretch, so one stretch without
/// it is not luck (a stalled consumer stops `fetch` and `e2e` while `enqueue` goes on).
const REGULAR_RATE: f64 = 10.0;

/// What a workload's plan intends at a time: a closed loop always works; an open model starts what
/// its schedule says (a workload whose schedule has ended is not expected to be served).
#[derive(Debug, Clone)]
pub enum Intent {
    Closed,
    Open(crate::plan::RateSchedule),
}

impl Intent {
    /// The plan's intent for each workload.
    pub fn of(plan: &crate::plan::Plan) -> Vec<Intent> {
        plan.workloads
            .iter()
            .map(|w| match &w.load {
                crate::plan::LoadModel::Closed => Intent::Closed,
                crate::plan::LoadModel::Open(s) => Intent::Open(s.clone()),
            })
            .collect()
    }

    /// Whether the plan means the workload to be working over `[from, to)` (seconds): at least
    /// one intended start.
    fn works(&self, from: Duration, to: Duration) -> bool {
        match self {
            Intent::Closed => true,
            Intent::Open(s) => {
                s.arrivals_until(to.as_secs_f64()) - s.arrivals_until(from.as_secs_f64()) >= 1.0
            }
        }
    }
}

/// Fill in every injected fault's impact (and the older per-fault fields from it); every
/// workload taken as a closed loop (always meant to be served).
pub fn analyse(faults: &mut [FaultRecord], c: &Collector, load_end_secs: f64) {
    analyse_with(faults, c, load_end_secs, &[]);
}

/// [`analyse`] with each workload's [`Intent`] (missing ones: closed loops).
pub fn analyse_with(
    faults: &mut [FaultRecord],
    c: &Collector,
    load_end_secs: f64,
    intents: &[Intent],
) {
    let load_end = Duration::from_secs_f64(load_end_secs);
    let first_inject = faults
        .iter()
        .filter_map(|f| f.injected_at_secs)
        .fold(f64::INFINITY, f64::min);
    let baseline_end = if first_inject.is_finite() {
        Duration::from_secs_f64(first_inject)
    } else {
        load_end
    };
    let before = c.window(Duration::ZERO, baseline_end);
    let base = Baseline {
        regular: before
            .iter()
            .map(|ops| {
                ops.iter()
                    .map(|a| a.ok() as f64 / secs(baseline_end).max(1e-3) >= REGULAR_RATE)
                    .collect()
            })
            .collect(),
        before,
        intents: (0..c.workloads.len())
            .map(|w| intents.get(w).cloned().unwrap_or(Intent::Closed))
            .collect(),
    };
    // Injections in time order: a fault's failures are searched until the next one.
    let mut starts: Vec<f64> = faults.iter().filter_map(|f| f.injected_at_secs).collect();
    starts.sort_by(f64::total_cmp);
    for f in faults.iter_mut() {
        let Some(inj) = f.injected_at_secs else {
            continue;
        };
        let next = starts
            .iter()
            .copied()
            .find(|s| *s > inj + 1e-9)
            .unwrap_or(f64::INFINITY);
        let heal = f.healed_at_secs.unwrap_or(load_end_secs).max(inj);
        f.impact = Some(measure(c, &base, inj, heal, next, load_end));
        let imp = f.impact.as_ref().expect("just set");
        f.errors_during = imp.workloads.iter().map(|w| w.errors).sum();
        f.p99_recovery_secs = Some(round3((imp.until_secs - heal).max(0.0)));
        f.unavailability = imp
            .workloads
            .iter()
            .filter_map(|w| {
                Some(Unavailability {
                    workload: w.workload.clone(),
                    first_error_secs: w.first_failure_secs?,
                    recovered_secs: w.first_success_after_secs,
                    window_secs: w.unavailable_ms.map(|ms| round3(ms / 1000.0)),
                })
            })
            .collect();
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Per-op p99 limits of one workload from its baseline: `None` where there is no baseline.
fn limits(before: &[OpAcc]) -> Vec<Option<f64>> {
    before
        .iter()
        .map(|a| {
            (a.ok() > 0).then(|| {
                let p99 = LatencyStats::of(&a.corrected).p99 as f64;
                (p99 * 1.5).max(p99 + SLACK_US)
            })
        })
        .collect()
}

/// The slots of workload `w` in `[from, to)`, summed per op, and their errors.
fn span(c: &Collector, slots: &[&Interval], w: usize) -> (Vec<OpAcc>, u64, u64) {
    let (from, to) = match (slots.first(), slots.last()) {
        (Some(a), Some(b)) => (a.start, b.end),
        _ => return (vec![], 0, 0),
    };
    let accs = c.window(from, to).swap_remove(w);
    let ok = accs.iter().map(|a| a.ok()).sum();
    let errors = accs.iter().map(|a| a.error_count()).sum();
    (accs, ok, errors)
}

/// What the time before the first fault says about each workload: per op, its figures and
/// whether it was served regularly; and what the plan intends.
struct Baseline {
    before: Vec<Vec<OpAcc>>,
    regular: Vec<Vec<bool>>,
    intents: Vec<Intent>,
}

/// Where a workload may be back: the heal, every slot boundary after it (100 ms grid), and every
/// cut, in time order, before the end of the load.
fn candidates(slots: &[&Interval], heal: Duration, load_end: Duration) -> Vec<Duration> {
    let mut out: Vec<Duration> = vec![heal];
    let step = crate::metrics::SLOT;
    let mut k = (heal.as_nanos() / step.as_nanos()) as u32 + 1;
    while step * k < load_end {
        out.push(step * k);
        k += 1;
    }
    out.extend(slots.iter().map(|s| s.start).filter(|t| *t > heal));
    out.sort();
    out.dedup();
    out
}

/// Whether workload `w` looks normal over `slots`, the operations meant to start in `during`: no
/// errors, p99 within its limit, and — when its plan means it to be working then and it was
/// served before — served again, every op that was served regularly included.
fn normal(
    c: &Collector,
    slots: &[&Interval],
    during: (Duration, Duration),
    w: usize,
    lim: &[Option<f64>],
    base: &Baseline,
) -> bool {
    let (accs, ok, errors) = span(c, slots, w);
    if errors > 0 {
        return false;
    }
    let working = base.intents[w].works(during.0, during.1);
    let served = base.before[w].iter().any(|a| a.ok() > 0);
    if working && served {
        if ok == 0 {
            return false;
        }
        let regular = &base.regular[w];
        let starved = accs
            .iter()
            .enumerate()
            .any(|(i, a)| regular.get(i).copied().unwrap_or(false) && a.ok() == 0);
        if starved {
            return false;
        }
    }
    accs.iter().zip(lim.iter()).all(|(a, l)| match l {
        Some(limit) if a.ok() > 0 => LatencyStats::of(&a.corrected).p99 as f64 <= *limit,
        _ => true,
    })
}

fn measure(
    c: &Collector,
    base: &Baseline,
    inj: f64,
    heal: f64,
    next: f64,
    load_end: Duration,
) -> Impact {
    let inj_d = Duration::from_secs_f64(inj);
    let heal_d = Duration::from_secs_f64(heal);
    let eps = Duration::from_micros(1);
    // Candidate recovery points: slot starts from the injection on.
    let slots: Vec<&Interval> = c
        .intervals
        .iter()
        .filter(|iv| iv.start + eps >= inj_d)
        .collect();
    let mut workloads = vec![];
    let mut until = heal_d.max(inj_d);
    let mut recovered = true;
    for (w, m) in c.workloads.iter().enumerate() {
        let before = &base.before;
        let lim = limits(&before[w]);
        let outages = m.counters.outages();
        let era = (
            inj_d,
            Duration::try_from_secs_f64(next).unwrap_or(Duration::MAX),
        );
        let times = Times {
            era,
            heal: heal_d,
            load_end,
        };
        let (back, blocked_by) = settled(c, &slots, &times, w, &lim, base, &outages);
        // Failures of operations sent after the workload had settled again are a later event,
        // not this fault's: only operations sent before then count (an in-flight operation of
        // the fault that fails late still does).
        let sent_before = back.map_or(f64::INFINITY, |b| secs(b + SETTLE));
        let pulse = pulse_window(c, w, inj, next.min(load_end.as_secs_f64()), sent_before);
        let back_at = match (back, pulse.recovered) {
            (Some(b), Some(r)) => Some(b.max(snap_up(c, r, inj_d))),
            (Some(b), None) if pulse.first_failure.is_none() => Some(b),
            (Some(_), None) => None,
            (None, _) => None,
        };
        match back_at {
            Some(b) => until = until.max(b),
            None => recovered = false,
        }
        // Errors by kind inside the window are filled in once the window is known.
        workloads.push((
            w,
            WorkloadImpact {
                workload: m.id.clone(),
                back_to_normal_secs: back_at.map(|b| round3(secs(b))),
                first_failure_secs: pulse.first_failure.map(round3),
                last_success_before_secs: pulse.last_success.map(round3),
                first_success_after_secs: pulse.recovered.map(round3),
                unavailable_ms: pulse.unavailable_ms,
                errors: 0,
                errors_by_kind: BTreeMap::new(),
                recover_within_secs: None,
                not_served: blocked_by.map(|o| match o.to {
                    Some(to) => format!("{} from {:.2}s to {:.2}s", o.what, secs(o.from), secs(to)),
                    None => format!("{} from {:.2}s, never served again", o.what, secs(o.from)),
                }),
                p99_before_us: before[w]
                    .iter()
                    .map(|a| LatencyStats::of(&a.corrected).p99)
                    .max()
                    .unwrap_or(0),
                p99_during_us: 0,
            },
        ));
    }
    if !recovered {
        until = until.max(load_end);
    }
    let window = c.window(inj_d, until.max(inj_d + eps));
    let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = vec![];
    for (w, mut wi) in workloads {
        for a in &window[w] {
            for k in ErrorKind::ALL {
                let n = a.errors[k.index()];
                if n > 0 {
                    *wi.errors_by_kind.entry(k.name().to_string()).or_insert(0) += n;
                    *errors_by_kind.entry(k.name().to_string()).or_insert(0) += n;
                }
            }
            wi.errors += a.error_count();
        }
        wi.p99_during_us = window[w]
            .iter()
            .map(|a| LatencyStats::of(&a.corrected).p99)
            .max()
            .unwrap_or(0);
        out.push(wi);
    }
    let mut safety = BTreeMap::new();
    for m in &c.workloads {
        for (d, n) in m.counters.between(inj_d, until) {
            if d.kind == crate::plan::CounterKind::Safety && n > 0 {
                safety.insert(format!("{}.{}", m.id, d.name), n);
            }
        }
    }
    Impact {
        until_secs: secs(until),
        window_ms: ((secs(until) - inj) * 1000.0).round(),
        recovered,
        workloads: out,
        errors_by_kind,
        safety,
    }
}

/// A fault's times: its era (from its injection to the next fault's), its heal, the load's end.
struct Times {
    era: (Duration, Duration),
    heal: Duration,
    load_end: Duration,
}

/// The first time from the heal on where workload `w` looks normal for a settled stretch and no
/// oracle found it not served (`None`: never before the load ended), and the last stretch an
/// oracle found not served that held it back. A stretch not served that began in the fault's era
/// is the fault's, even when it began after the workload first looked normal again: an orphaned
/// lock name shows only once its last holder's lost release can no longer land (a second later).
fn settled<'a>(
    c: &Collector,
    slots: &[&Interval],
    times: &Times,
    w: usize,
    lim: &[Option<f64>],
    base: &Baseline,
    outages: &'a [NotServed],
) -> (Option<Duration>, Option<&'a NotServed>) {
    let eps = Duration::from_micros(1);
    let (heal, load_end) = (times.heal, times.load_end);
    let ours = |o: &NotServed| o.from >= times.era.0 && o.from < times.era.1;
    let mut blocked_by = None;
    for t in candidates(slots, heal, load_end) {
        // The stretch is time, not the slots that happen to hold operations: a quiet stretch
        // counts (a workload that sends little has few slots).
        let settle_end = (t + SETTLE).min(load_end);
        if settle_end.saturating_sub(t) < SETTLE_MIN.min(SETTLE) {
            break;
        }
        // What the oracle found not served is not back, however its operations look.
        if let Some(o) = outages
            .iter()
            .find(|o| (o.from < settle_end || ours(o)) && o.to.is_none_or(|to| to > t))
        {
            blocked_by = Some(o);
            continue;
        }
        let stretch: Vec<&Interval> = slots
            .iter()
            .copied()
            .filter(|x| x.start + eps >= t && x.start < t + SETTLE)
            .collect();
        if normal(c, &stretch, (t, settle_end), w, lim, base) {
            return (Some(t), blocked_by);
        }
    }
    (None, blocked_by)
}

/// The first slot boundary at or after `t` seconds (and after `floor`).
fn snap_up(c: &Collector, t: f64, floor: Duration) -> Duration {
    let t = Duration::from_secs_f64(t);
    c.intervals
        .iter()
        .map(|iv| iv.end)
        .filter(|e| *e >= t && *e >= floor)
        .min()
        .unwrap_or(t)
}

struct PulseWindow {
    first_failure: Option<f64>,
    last_success: Option<f64>,
    recovered: Option<f64>,
    unavailable_ms: Option<f64>,
}

/// Unavailability from the outcome pulse: the first failure completing in `[inj, until)` of an
/// operation sent before `sent_before`, the last success completing before it, and the first
/// success of an operation sent after it.
fn pulse_window(c: &Collector, w: usize, inj: f64, until: f64, sent_before: f64) -> PulseWindow {
    let p = &c.pulses[w];
    let b = |t: f64| (t / PULSE.as_secs_f64()).floor().max(0.0) as usize;
    let t = |b: usize| b as f64 * PULSE.as_secs_f64();
    let mut out = PulseWindow {
        first_failure: None,
        last_success: None,
        recovered: None,
        unavailable_ms: None,
    };
    let end = b(until).min(p.by_end.len());
    let sent_limit = if sent_before.is_finite() {
        b(sent_before)
    } else {
        usize::MAX
    };
    let Some(f) = (b(inj)..end)
        .find(|i| p.by_end[*i].1 > 0 && (p.first_fail_sent_by_end[*i] as usize) < sent_limit)
    else {
        return out;
    };
    out.first_failure = Some(t(f));
    let last_ok = (0..f).rev().find(|i| p.by_end[*i].0 > 0);
    out.last_success = last_ok.map(|i| t(i + 1));
    // Sent strictly after the failure's 10 ms bucket: earlier sends may have succeeded before it.
    let rec = p
        .first_ok_end_by_sent
        .iter()
        .skip(f + 1)
        .copied()
        .filter(|e| *e != u32::MAX)
        .min();
    out.recovered = rec.map(|e| t(e as usize + 1));
    if let (Some(l), Some(r)) = (out.last_success.or(Some(t(f))), out.recovered) {
        out.unavailable_ms = Some(((r - l) * 1000.0).round());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::metrics::Sketch;
    use crate::plan::counter::{CounterDef, CounterKind};

    /// A safety counter for the workloads of these tables (`jobs.lost`).
    const LOST: &[CounterDef] = &[CounterDef {
        name: "lost",
        kind: CounterKind::Safety,
        help: "",
        covers: None,
    }];

    /// What one 100 ms slot of a lane holds: ten operations meant to start 10 ms apart.
    fn slot(sk: &Sketch, w: usize, op: usize, k: usize, c: char) {
        let ms = Duration::from_millis;
        for i in 0..10u64 {
            let at = ms(k as u64 * 100 + i * 10);
            let (latency, outcome) = match c {
                // Served: 1 ms each.
                '.' => (ms(1), Ok(())),
                // Slow: 80 ms each.
                's' => (ms(80), Ok(())),
                // Every operation fails fast: a timeout, a dropped connection.
                'x' => (ms(1), Err(ErrorKind::Timeout)),
                'c' => (ms(1), Err(ErrorKind::Connection)),
                // One failure (the first), nine served.
                '!' if i == 0 => (ms(1), Err(ErrorKind::Timeout)),
                '!' => (ms(1), Ok(())),
                // Every operation hangs and times out 250 ms after it was sent.
                'T' => (ms(250), Err(ErrorKind::Timeout)),
                // Nothing sent.
                '_' => return,
                // A safety violation counted at the slot's start, else served.
                'L' => {
                    if i == 0 {
                        sk.count(w, 0, 1, at);
                    }
                    (ms(1), Ok(()))
                }
                other => panic!("unknown slot {other:?}"),
            };
            sk.op(w, op, at, latency, outcome);
        }
    }

    /// `lanes`: `("<workload>.<op>", slots)`, one character per 100 ms slot from time zero (see
    /// [`slot`]); the load ends with the longest lane. `faults`: `(injected, healed)` seconds, a
    /// fault never injected as `None`. Slots are cut at every injection and heal, as the timeline
    /// does.
    fn run(lanes: &[(&str, &str)], faults: &[(Option<f64>, Option<f64>)]) -> Vec<FaultRecord> {
        run_with(lanes, faults, &[])
    }

    /// [`run`] with the workloads' intents (in the order their lanes first appear).
    fn run_with(
        lanes: &[(&str, &str)],
        faults: &[(Option<f64>, Option<f64>)],
        intents: &[Intent],
    ) -> Vec<FaultRecord> {
        run_blocked(lanes, faults, intents, &[])
    }

    /// [`run_with`] with stretches an oracle found a workload not served: `(workload index,
    /// from, to)` seconds, `to` `None` for never again.
    fn run_blocked(
        lanes: &[(&str, &str)],
        faults: &[(Option<f64>, Option<f64>)],
        intents: &[Intent],
        blocked: &[(usize, f64, Option<f64>)],
    ) -> Vec<FaultRecord> {
        let mut ids: Vec<(String, Vec<String>)> = vec![];
        for (name, _) in lanes {
            let (w, op) = name.split_once('.').expect("<workload>.<op>");
            match ids.iter_mut().find(|x| x.0 == w) {
                Some(x) => x.1.push(op.to_string()),
                None => ids.push((w.to_string(), vec![op.to_string()])),
            }
        }
        let ops: Vec<Vec<&str>> = ids
            .iter()
            .map(|x| x.1.iter().map(|s| s.as_str()).collect())
            .collect();
        let spec: Vec<(&str, &[&str], &'static [CounterDef])> = ids
            .iter()
            .zip(&ops)
            .map(|(x, o)| (x.0.as_str(), o.as_slice(), LOST))
            .collect();
        let sk = Sketch::new(&spec);
        for (inj, heal) in faults {
            for t in [inj, heal].into_iter().flatten() {
                sk.cut(Duration::from_secs_f64(*t));
            }
        }
        for (name, slots) in lanes {
            let (w, op) = name.split_once('.').expect("<workload>.<op>");
            let wi = ids.iter().position(|x| x.0 == w).expect("listed");
            let oi = ids[wi].1.iter().position(|o| o == op).expect("listed");
            for (k, c) in slots.chars().enumerate() {
                slot(&sk, wi, oi, k, c);
            }
        }
        for (w, from, to) in blocked {
            let d = Duration::from_secs_f64;
            sk.not_served(*w, d(*from), to.map(d));
        }
        let c = sk.finish();
        let load_end = lanes.iter().map(|l| l.1.len()).max().unwrap_or(0) as f64 / 10.0;
        let mut recs: Vec<FaultRecord> = faults
            .iter()
            .enumerate()
            .map(|(i, (inj, heal))| FaultRecord {
                inject_error: None,
                recover_within_secs: None,
                imitation: None,
                index: i,
                name: format!("f{i}"),
                kind: "latency".into(),
                target: String::new(),
                injected_at_secs: *inj,
                healed_at_secs: *heal,
                heal_error: None,
                skipped: None,
                unavailability: vec![],
                p99_recovery_secs: None,
                errors_during: 0,
                impact: None,
            })
            .collect();
        analyse_with(&mut recs, &c, load_end, intents);
        recs
    }

    fn opt(v: Option<f64>) -> String {
        v.map_or("-".into(), |v| format!("{v}"))
    }

    /// Each fault's impact: the window, then one line per workload.
    fn render(recs: &[FaultRecord]) -> String {
        let mut s = String::new();
        for f in recs {
            let Some(i) = &f.impact else {
                let _ = writeln!(s, "#{} no impact", f.index);
                continue;
            };
            let _ =
                writeln!(
                s,
                "#{} until {} ({} ms) {} errors {:?} safety {:?} p99_recovery {} errors_during {}",
                f.index,
                i.until_secs,
                i.window_ms,
                if i.recovered { "recovered" } else { "NOT recovered" },
                i.errors_by_kind,
                i.safety,
                opt(f.p99_recovery_secs),
                f.errors_during,
            );
            for w in &i.workloads {
                let _ = writeln!(
                    s,
                    "  {}: back {} fail {} last_ok {} ok_after {} unavailable {} errors {} p99 {}->{}",
                    w.workload,
                    opt(w.back_to_normal_secs),
                    opt(w.first_failure_secs),
                    opt(w.last_success_before_secs),
                    opt(w.first_success_after_secs),
                    opt(w.unavailable_ms),
                    w.errors,
                    w.p99_before_us,
                    w.p99_during_us,
                );
            }
        }
        s
    }

    fn check(lanes: &[(&str, &str)], faults: &[(Option<f64>, Option<f64>)], expect: &str) {
        let got = render(&run(lanes, faults));
        let want: Vec<&str> = expect.trim().lines().map(str::trim).collect();
        let have: Vec<&str> = got.trim().lines().map(str::trim).collect();
        assert_eq!(have, want, "\n{got}");
    }

    const SERVED: &str = "..............................";

    #[test]
    fn an_operation_served_regularly_must_be_served_again() {
        // A stalled consumer: enqueues go on, processing stops after the fault and never
        // resumes — the workload is not back, though it completes operations.
        check(
            &[
                ("tasks.enqueue", SERVED),
                ("tasks.e2e", "..........____________________"),
            ],
            &[(Some(1.0), Some(1.5))],
            "
            #0 until 3 (2000 ms) NOT recovered errors {} safety {} p99_recovery 1.5 errors_during 0
              tasks: back - fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000",
        );
        // The same consumer resuming at 2.0 s is back with it (at slot resolution, the settled
        // stretch that first holds its operations).
        check(
            &[
                ("tasks.enqueue", SERVED),
                ("tasks.e2e", "..........__________.........."),
            ],
            &[(Some(1.0), Some(1.5))],
            "
            #0 until 1.8 (800 ms) recovered errors {} safety {} p99_recovery 0.3 errors_during 0
              tasks: back 1.8 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000",
        );
    }

    #[test]
    fn a_quiet_workload_is_back_at_the_heal_though_it_has_few_slots() {
        // A cron producer: a burst every 5 s; the fault (2.0 s to 2.8 s) hurts nothing and the
        // next burst is after the end: back at the heal (not "never", for want of slots).
        let lanes = [("cron.enqueue", "._____________________________")];
        let intent = [Intent::Open(crate::plan::RateSchedule::constant(0.2))];
        let got = render(&run_with(&lanes, &[(Some(2.0), Some(2.8))], &intent));
        assert!(
            got.contains(" recovered ") && got.contains("cron: back 2.8 "),
            "{got}"
        );
        // One that failed during the fault is back only once it succeeds again (its next burst).
        let lanes = [(
            "cron.enqueue",
            "._________________________x________________________.",
        )];
        let got = render(&run_with(&lanes, &[(Some(2.0), Some(2.8))], &intent));
        assert!(got.contains("cron: back 5.2 fail 2.6 "), "{got}");
    }

    #[test]
    fn a_workload_its_plan_stops_is_not_expected_to_be_served() {
        // An open model that starts 100/s and drops to 0 at 1.2 s: nothing after is normal.
        let plan = crate::plan::RateSchedule {
            start: 100.0,
            stages: vec![
                (Duration::from_millis(1200), 100.0),
                (Duration::from_millis(10), 0.0),
            ],
        };
        let lanes = [
            ("fill.set", "............__________________"),
            ("cache.get", SERVED),
        ];
        let faults = [(Some(1.0), Some(1.5))];
        let got = render(&run_with(
            &lanes,
            &faults,
            &[Intent::Open(plan), Intent::Closed],
        ));
        assert!(
            got.contains(" recovered ") && got.contains("fill: back 1.5 "),
            "{got}"
        );
        // Taken as a closed loop (always meant to work), the same lanes never come back.
        let got = render(&run(&lanes, &faults));
        assert!(got.contains("NOT recovered"), "{got}");
    }

    #[test]
    fn a_fault_with_no_effect_lasts_until_its_heal() {
        check(
            &[("cache.get", SERVED)],
            &[(Some(1.0), Some(1.5))],
            "
            #0 until 1.5 (500 ms) recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back 1.5 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000",
        );
    }

    #[test]
    fn a_one_off_fault_with_no_effect_is_an_empty_window() {
        check(
            &[("cache.get", SERVED)],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1 (0 ms) recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back 1 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->0",
        );
    }

    #[test]
    fn a_window_off_the_slot_grid_starts_at_the_injection_cut() {
        // Injected at 1.05 and healed at 1.25: the cuts split slots 1.0 and 1.2; the window runs
        // to the heal cut.
        check(
            &[("cache.get", SERVED)],
            &[(Some(1.05), Some(1.25))],
            "
            #0 until 1.25 (200 ms) recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back 1.25 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000",
        );
    }

    #[test]
    fn errors_that_stop_end_the_window_where_the_workload_is_back() {
        // Failing 1.0–1.4; normal from 1.4 on. The first success after the failures completes
        // inside slot 1.4 (at 1.401, the 10 ms pulse says 1.41), so the window covers that slot.
        check(
            &[("cache.get", "..........xxxx................")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.5 (500 ms) recovered errors {\"timeout\": 40} safety {} p99_recovery 0.5 errors_during 40
              cache: back 1.5 fail 1 last_ok 1 ok_after 1.41 unavailable 410 errors 40 p99 1000->1000",
        );
    }

    #[test]
    fn errors_by_kind_are_counted_inside_the_window_only() {
        check(
            &[("cache.get", "..........xxcc..........x.....")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.5 (500 ms) recovered errors {\"connection\": 20, \"timeout\": 20} safety {} p99_recovery 0.5 errors_during 40
              cache: back 1.5 fail 1 last_ok 1 ok_after 1.41 unavailable 410 errors 40 p99 1000->1000",
        );
    }

    #[test]
    fn flapping_holds_the_window_past_the_last_error_unavailability_is_the_first_outage() {
        check(
            &[("cache.get", "..........x.x.................")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.3 (300 ms) recovered errors {\"timeout\": 20} safety {} p99_recovery 0.3 errors_during 20
              cache: back 1.3 fail 1 last_ok 1 ok_after 1.11 unavailable 110 errors 20 p99 1000->1000",
        );
    }

    #[test]
    fn operations_in_flight_at_the_injection_that_fail_later_are_the_faults() {
        // Sent at 0.9–0.99 (before the fault, so their slot is too), they hang and fail at
        // 1.15–1.24: the pulse sees the outage and the window covers it, though every slot from
        // the injection on is clean.
        check(
            &[("cache.get", ".........T....................")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.2 (200 ms) recovered errors {} safety {} p99_recovery 0.2 errors_during 0
              cache: back 1.2 fail 1.15 last_ok 1.15 ok_after 1.17 unavailable 20 errors 0 p99 1000->1000",
        );
    }

    #[test]
    fn a_p99_spike_lasts_until_latency_is_back_within_the_limit() {
        // Baseline p99 1 ms: the limit is 6 ms (1.5× or +5 ms); 80 ms operations exceed it.
        check(
            &[("cache.get", "..........sssss...............")],
            &[(Some(1.0), Some(1.2))],
            "
            #0 until 1.5 (500 ms) recovered errors {} safety {} p99_recovery 0.3 errors_during 0
              cache: back 1.5 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->80063",
        );
    }

    #[test]
    fn a_spike_on_one_op_holds_the_whole_workload() {
        check(
            &[
                ("cache.get", SERVED),
                ("cache.set", "..........sss................."),
            ],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.3 (300 ms) recovered errors {} safety {} p99_recovery 0.3 errors_during 0
              cache: back 1.3 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->80063",
        );
    }

    #[test]
    fn an_op_with_no_baseline_has_no_latency_limit() {
        // `del` is first sent during the fault: its latency cannot be judged against a baseline.
        check(
            &[
                ("cache.get", SERVED),
                ("cache.del", "__________ssssssssssssssssssss"),
            ],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1 (0 ms) recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back 1 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->0",
        );
    }

    #[test]
    fn a_workload_never_served_again_is_not_recovered() {
        // Nothing completes after the injection: not back, the window runs to the end of load.
        check(
            &[("cache.get", "..........____________________")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 3 (2000 ms) NOT recovered errors {} safety {} p99_recovery 2 errors_during 0
              cache: back - fail - last_ok - ok_after - unavailable - errors 0 p99 1000->0",
        );
        // Failing until the end: the failure is measured, a recovery never comes.
        check(
            &[("cache.get", "..........xxxxxxxxxxxxxxxxxxxx")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 3 (2000 ms) NOT recovered errors {\"timeout\": 200} safety {} p99_recovery 2 errors_during 200
              cache: back - fail 1 last_ok 1 ok_after - unavailable - errors 200 p99 1000->0",
        );
    }

    #[test]
    fn a_workload_its_oracle_found_not_served_is_not_back_until_served_again() {
        // Every operation looks normal (the blocked acquirers record nothing), but the lock
        // oracle found a name orphaned from 1.2 s: not back until it was granted again at 2.05 s.
        let lanes = [("coord.acquire", SERVED)];
        let faults = [(Some(1.0), Some(1.0))];
        let recs = run_blocked(&lanes, &faults, &[], &[(0, 1.2, Some(2.05))]);
        let i = recs[0].impact.as_ref().unwrap();
        assert!(i.recovered);
        assert_eq!(i.workloads[0].back_to_normal_secs, Some(2.1));
        let n = i.workloads[0].not_served.as_deref().unwrap();
        assert_eq!(n, "orphaned lock name k from 1.20s to 2.05s");
        // Never granted again: not recovered, however normal the rest looks.
        let recs = run_blocked(&lanes, &faults, &[], &[(0, 1.2, None)]);
        let i = recs[0].impact.as_ref().unwrap();
        assert!(!i.recovered);
        assert_eq!(i.workloads[0].back_to_normal_secs, None);
        let n = i.workloads[0].not_served.as_deref().unwrap();
        assert_eq!(n, "orphaned lock name k from 1.20s, never served again");
        // The correct twin: nothing found, back at the heal.
        let recs = run_blocked(&lanes, &faults, &[], &[]);
        let i = recs[0].impact.as_ref().unwrap();
        assert_eq!(i.workloads[0].back_to_normal_secs, Some(1.0));
        assert_eq!(i.workloads[0].not_served, None);
        // A stretch that ended before the heal does not hold the workload back.
        let recs = run_blocked(&lanes, &faults, &[], &[(0, 0.2, Some(0.6))]);
        let i = recs[0].impact.as_ref().unwrap();
        assert_eq!(i.workloads[0].back_to_normal_secs, Some(1.0));
        // One that began after the workload first looked normal again, before the next fault, is
        // still this fault's; one that began after the next fault is the next one's.
        let two = [(Some(1.0), Some(1.0)), (Some(2.0), Some(2.0))];
        let recs = run_blocked(&lanes, &two, &[], &[(0, 1.6, Some(1.85))]);
        let back = |r: &FaultRecord| r.impact.as_ref().unwrap().workloads[0].back_to_normal_secs;
        assert_eq!((back(&recs[0]), back(&recs[1])), (Some(1.9), Some(2.0)));
        let recs = run_blocked(&lanes, &two, &[], &[(0, 2.2, Some(2.75))]);
        assert_eq!((back(&recs[0]), back(&recs[1])), (Some(1.0), Some(2.8)));
    }

    #[test]
    fn one_workload_not_back_holds_the_window_to_the_end() {
        check(
            &[
                ("cache.get", "..........xx.................."),
                ("jobs.push", "..........xxxxxxxxxxxxxxxxxxxx"),
            ],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 3 (2000 ms) NOT recovered errors {\"timeout\": 220} safety {} p99_recovery 2 errors_during 220
              cache: back 1.3 fail 1 last_ok 1 ok_after 1.21 unavailable 210 errors 20 p99 1000->1000
              jobs: back - fail 1 last_ok 1 ok_after - unavailable - errors 200 p99 1000->0",
        );
    }

    #[test]
    fn a_blip_right_at_the_heal_is_the_faults() {
        // Healing drops connections: one failure in the heal's slot.
        check(
            &[("cache.get", "...............!..............")],
            &[(Some(1.0), Some(1.5))],
            "
            #0 until 1.6 (600 ms) recovered errors {\"timeout\": 1} safety {} p99_recovery 0.1 errors_during 1
              cache: back 1.6 fail 1.5 last_ok 1.5 ok_after 1.52 unavailable 20 errors 1 p99 1000->1000",
        );
    }

    #[test]
    fn a_later_unrelated_blip_does_not_stretch_the_window() {
        // Back to normal at the heal (1.5) and for a second after it; one failure at 2.5 is
        // not this fault's (the module's promise: a later hiccup does not stretch the window).
        check(
            &[("cache.get", ".........................!....")],
            &[(Some(1.0), Some(1.5))],
            "
            #0 until 1.5 (500 ms) recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back 1.5 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000",
        );
    }

    #[test]
    fn two_faults_in_a_row_each_get_their_own_failures() {
        check(
            &[("cache.get", "..........xxx.......xxx.......")],
            &[(Some(1.0), Some(1.0)), (Some(2.0), Some(2.0))],
            "
            #0 until 1.4 (400 ms) recovered errors {\"timeout\": 30} safety {} p99_recovery 0.4 errors_during 30
              cache: back 1.4 fail 1 last_ok 1 ok_after 1.31 unavailable 310 errors 30 p99 1000->1000
            #1 until 2.4 (400 ms) recovered errors {\"timeout\": 30} safety {} p99_recovery 0.4 errors_during 30
              cache: back 2.4 fail 2 last_ok 2 ok_after 2.31 unavailable 310 errors 30 p99 1000->1000",
        );
    }

    #[test]
    fn a_fault_does_not_take_the_next_faults_failures() {
        // The first fault did nothing; the second one's failures are searched from its own
        // injection, and the first's search stops there.
        check(
            &[("cache.get", "....................xxx.......")],
            &[(Some(1.0), Some(1.5)), (Some(2.0), Some(2.0))],
            "
            #0 until 1.5 (500 ms) recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back 1.5 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000
            #1 until 2.4 (400 ms) recovered errors {\"timeout\": 30} safety {} p99_recovery 0.4 errors_during 30
              cache: back 2.4 fail 2 last_ok 2 ok_after 2.31 unavailable 310 errors 30 p99 1000->1000",
        );
    }

    #[test]
    fn at_the_end_of_load_a_shorter_settle_is_accepted() {
        // Errors stop 200 ms before the end: two clean slots are enough there.
        check(
            &[("cache.get", "..........xxxxxxxxxxxxxxxxxx..")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 2.9 (1900 ms) recovered errors {\"timeout\": 180} safety {} p99_recovery 1.9 errors_during 180
              cache: back 2.9 fail 1 last_ok 1 ok_after 2.81 unavailable 1810 errors 180 p99 1000->1000",
        );
        // 100 ms before the end: one clean slot is not.
        check(
            &[("cache.get", "..........xxxxxxxxxxxxxxxxxxx.")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 3 (2000 ms) NOT recovered errors {\"timeout\": 190} safety {} p99_recovery 2 errors_during 190
              cache: back - fail 1 last_ok 1 ok_after 2.91 unavailable 1910 errors 190 p99 1000->1000",
        );
    }

    #[test]
    fn a_workload_with_no_baseline_is_judged_on_errors_only() {
        // `jobs` sends nothing before the fault: no latency limit, and it need not be served.
        // Its first success (sent at 1.3, 80 ms) completes at 1.38: the pulse says 1.39; with no
        // success before the failure, unavailability counts from the failure.
        check(
            &[
                ("cache.get", SERVED),
                ("jobs.push", "__________xxxsssssssssssssssss"),
            ],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.4 (400 ms) recovered errors {\"timeout\": 30} safety {} p99_recovery 0.4 errors_during 30
              cache: back 1 fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000
              jobs: back 1.4 fail 1 last_ok - ok_after 1.39 unavailable 390 errors 30 p99 0->80063",
        );
    }

    #[test]
    fn safety_counts_inside_the_window_are_the_faults() {
        // One loss at 1.2 (inside the window, which runs to 1.3) and one at 2.1 (after it).
        check(
            &[("jobs.push", "..........xxL........L........")],
            &[(Some(1.0), Some(1.0))],
            "
            #0 until 1.3 (300 ms) recovered errors {\"timeout\": 20} safety {\"jobs.lost\": 1} p99_recovery 0.3 errors_during 20
              jobs: back 1.3 fail 1 last_ok 1 ok_after 1.21 unavailable 210 errors 20 p99 1000->1000",
        );
    }

    #[test]
    fn an_unmeasured_heal_runs_to_the_end_of_load_and_a_skipped_fault_has_no_impact() {
        // No heal: the fault held until the end of the load, so nothing after it shows the
        // workload back to normal.
        check(
            &[("cache.get", SERVED)],
            &[(Some(1.0), None), (None, None)],
            "
            #0 until 3 (2000 ms) NOT recovered errors {} safety {} p99_recovery 0 errors_during 0
              cache: back - fail - last_ok - ok_after - unavailable - errors 0 p99 1000->1000
            #1 no impact",
        );
    }
}
