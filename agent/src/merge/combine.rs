//! The combining steps of `merge`: operations, the series, the interval logs (exact percentiles
//! by adding histograms), workloads and counters (by their declared kind), and the timelines.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::error::{bad, MergeError};
use super::input::Input;
use crate::events::{Event, EventKind};
use crate::metrics::{new_hist, LatencyStats};
use crate::summary::{CounterValue, FaultRecord, OpSummary, SeriesPoint, WorkloadSummary};

/// The time frame of the merged run.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// The longest interval of the inputs (series and logs are bucketed by it).
    pub interval: f64,
    /// The longest duration of the inputs.
    pub duration: f64,
}

impl Frame {
    pub fn of(inputs: &[Input]) -> Frame {
        Frame {
            interval: inputs
                .iter()
                .map(|i| i.summary.interval_secs)
                .fold(0.0, f64::max)
                .max(1e-3),
            duration: inputs
                .iter()
                .map(|i| i.summary.duration_secs)
                .fold(0.0, f64::max),
        }
    }
    fn bucket(&self, start: f64) -> u64 {
        (start / self.interval).round().max(0.0) as u64
    }
}

/// Operations summed, in order of first appearance (latencies are filled in from the logs).
pub fn ops(inputs: &[Input]) -> Vec<OpSummary> {
    let mut ops: Vec<OpSummary> = vec![];
    for i in inputs {
        for o in &i.summary.ops {
            match ops
                .iter_mut()
                .find(|m| m.workload == o.workload && m.op == o.op)
            {
                Some(m) => {
                    m.count += o.count;
                    m.ok += o.ok;
                    m.errors += o.errors;
                    for (k, v) in &o.errors_by_kind {
                        *m.errors_by_kind.entry(k.clone()).or_default() += v;
                    }
                }
                None => ops.push(o.clone()),
            }
        }
    }
    ops
}

fn tag_index(ops: &[OpSummary]) -> HashMap<String, usize> {
    ops.iter()
        .enumerate()
        .map(|(n, o)| (format!("{}.{}", o.workload, o.op), n))
        .collect()
}

/// The series from the summaries: ok and errors per interval (errors are not in the `.hlog`).
pub fn series(
    inputs: &[Input],
    ops: &[OpSummary],
    frame: Frame,
) -> BTreeMap<(u64, usize), SeriesPoint> {
    let tag_of = tag_index(ops);
    let mut series: BTreeMap<(u64, usize), SeriesPoint> = BTreeMap::new();
    for i in inputs {
        for p in &i.summary.series {
            let Some(&n) = tag_of.get(&format!("{}.{}", p.workload, p.op)) else {
                continue;
            };
            series
                .entry((frame.bucket(p.start_secs), n))
                .and_modify(|m| {
                    m.start_secs = m.start_secs.min(p.start_secs);
                    m.end_secs = m.end_secs.max(p.end_secs);
                    m.ok += p.ok;
                    m.errors += p.errors;
                    m.p50_us = m.p50_us.max(p.p50_us);
                    m.p99_us = m.p99_us.max(p.p99_us);
                    m.max_us = m.max_us.max(p.max_us);
                })
                .or_insert_with(|| p.clone());
        }
    }
    series
}

/// The merged interval log and the whole-run histogram per tag.
pub struct Logs {
    pub hlog: Vec<u8>,
    pub totals: BTreeMap<String, Histogram<u64>>,
}

/// One interval histogram of one input's log, still encoded.
struct Entry<'a> {
    input: usize,
    start: f64,
    end: f64,
    b64: &'a str,
}

/// Every input's interval histograms grouped by (merged interval, tag), and the earliest base time.
type Groups<'a> = BTreeMap<(u64, &'a str), Vec<Entry<'a>>>;

/// Group every histogram of every input's log by (interval, tag), add them, re-emit them, and
/// put their exact percentiles into the series. Checks that each log holds as many samples as
/// its summary says (the two must come from the same run).
pub fn logs(
    inputs: &[Input],
    ops: &[OpSummary],
    series: &mut BTreeMap<(u64, usize), SeriesPoint>,
    frame: Frame,
    scenario: &str,
) -> Result<Logs, MergeError> {
    let (groups, base_time) = read_groups(inputs, frame)?;
    let tag_of = tag_index(ops);
    let mut totals: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut samples: HashMap<(usize, &str), u64> = HashMap::new();
    let mut out_log: Vec<u8> = vec![];
    {
        let mut ser = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        let base = SystemTime::UNIX_EPOCH + base_time.unwrap_or_default();
        builder
            .add_comment(&format!(
                "valkey-chaos merge scenario={scenario} runs={}",
                inputs.len()
            ))
            .with_start_time(base)
            .with_base_time(base)
            .with_max_value_divisor(1000.0);
        let mut w = builder
            .begin_log_with(&mut out_log, &mut ser)
            .map_err(|e| MergeError::Usage(format!("cannot write the merged log: {e}")))?;
        let mut de = Deserializer::new();
        let mut scratch = new_hist();
        for ((b, tag), entries) in &groups {
            sum_into(&mut scratch, &mut de, inputs, tag, entries, &mut samples)?;
            let total = totals.entry(tag.to_string()).or_insert_with(new_hist);
            let _ = total.add(&scratch);
            let start = entries
                .iter()
                .map(|e| e.start)
                .fold(f64::INFINITY, f64::min);
            let end = entries.iter().map(|e| e.end).fold(0.0, f64::max);
            if let Some(&n) = tag_of.get(*tag) {
                let p = series.entry((*b, n)).or_insert_with(|| SeriesPoint {
                    workload: ops[n].workload.clone(),
                    op: ops[n].op.clone(),
                    start_secs: start,
                    end_secs: end,
                    ok: scratch.len(),
                    errors: 0,
                    p50_us: 0,
                    p99_us: 0,
                    max_us: 0,
                });
                if !scratch.is_empty() {
                    p.p50_us = scratch.value_at_quantile(0.5);
                    p.p99_us = scratch.value_at_quantile(0.99);
                    p.max_us = scratch.max();
                }
            }
            if let Some(t) = Tag::new(tag) {
                w.write_histogram(
                    &scratch,
                    Duration::from_secs_f64(start.max(0.0)),
                    Duration::from_secs_f64((end - start).max(0.0)),
                    Some(t),
                )
                .map_err(|e| MergeError::Usage(format!("cannot write the merged log: {e}")))?;
            }
        }
    }
    same_run(inputs, &samples)?;
    Ok(Logs {
        hlog: out_log,
        totals,
    })
}

/// Read every input's interval log into groups by (merged interval, tag).
fn read_groups(
    inputs: &[Input],
    frame: Frame,
) -> Result<(Groups<'_>, Option<Duration>), MergeError> {
    let mut groups: Groups = BTreeMap::new();
    let mut base_time: Option<Duration> = None;
    for (n, i) in inputs.iter().enumerate() {
        for e in IntervalLogIterator::new(&i.hlog) {
            match e {
                Ok(LogEntry::Interval(h)) => {
                    let tag = h.tag().map(|t| t.as_str()).unwrap_or("");
                    let start = h.start_timestamp().as_secs_f64();
                    groups
                        .entry((frame.bucket(start), tag))
                        .or_default()
                        .push(Entry {
                            input: n,
                            start,
                            end: start + h.duration().as_secs_f64(),
                            b64: h.encoded_histogram(),
                        });
                }
                Ok(LogEntry::BaseTime(t)) | Ok(LogEntry::StartTime(t)) => {
                    base_time = Some(base_time.map_or(t, |b| b.min(t)));
                }
                Err(e) => {
                    return Err(bad(
                        &i.hlog_path,
                        format!("not an HdrHistogram interval log ({e:?})"),
                    ))
                }
            }
        }
    }
    Ok((groups, base_time))
}

/// Decode and add one group's histograms into `scratch`, counting each input's samples per tag.
fn sum_into<'a>(
    scratch: &mut Histogram<u64>,
    de: &mut Deserializer,
    inputs: &[Input],
    tag: &'a str,
    entries: &[Entry<'_>],
    samples: &mut HashMap<(usize, &'a str), u64>,
) -> Result<(), MergeError> {
    scratch.reset();
    for e in entries {
        let bytes = crate::metrics::hlog::base64_decode(e.b64);
        let h: Histogram<u64> = bytes
            .and_then(|b| de.deserialize(&mut b.as_slice()).ok())
            .ok_or_else(|| {
                bad(
                    &inputs[e.input].hlog_path,
                    format!(
                        "a histogram of {tag:?} at {:.3}s cannot be decoded",
                        e.start
                    ),
                )
            })?;
        *samples.entry((e.input, tag)).or_default() += h.len();
        scratch.add(&h).map_err(|err| {
            bad(
                &inputs[e.input].hlog_path,
                format!(
                    "cannot add the histogram of {tag:?} at {:.3}s: {err:?}",
                    e.start
                ),
            )
        })?;
    }
    Ok(())
}

/// Every op's successful count must match its samples in the logs.
fn same_run(inputs: &[Input], samples: &HashMap<(usize, &str), u64>) -> Result<(), MergeError> {
    for (n, i) in inputs.iter().enumerate() {
        for o in &i.summary.ops {
            let tag = format!("{}.{}", o.workload, o.op);
            for t in [tag.clone(), format!("{tag}.service")] {
                let got = samples.get(&(n, t.as_str())).copied().unwrap_or(0);
                if got != o.ok {
                    return Err(bad(
                        &i.hlog_path,
                        format!(
                            "{got} samples for {t} but {} says {} successful {} ops: \
                             the log and the summary are not from the same run",
                            i.summary_path.display(),
                            o.ok,
                            o.op
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Rates over the merged duration and latencies from the merged histograms.
pub fn finish_ops(ops: &mut [OpSummary], totals: &BTreeMap<String, Histogram<u64>>, frame: Frame) {
    for o in ops {
        let tag = format!("{}.{}", o.workload, o.op);
        o.error_rate = o.errors as f64 / o.count.max(1) as f64;
        o.rate_per_sec = (o.count as f64 / frame.duration.max(1e-3) * 10.0).round() / 10.0;
        o.latency_us = totals.get(&tag).map(LatencyStats::of).unwrap_or_default();
        o.service_us = totals
            .get(&format!("{tag}.service"))
            .map(LatencyStats::of)
            .unwrap_or_default();
    }
}

/// Workloads (clients and starts add up) and counters (combined by their declared kind).
pub fn workloads_and_counters(
    inputs: &[Input],
    ops: &[OpSummary],
) -> (Vec<WorkloadSummary>, Vec<CounterValue>) {
    let mut workloads: Vec<WorkloadSummary> = vec![];
    let mut counters: Vec<CounterValue> = vec![];
    for i in inputs {
        for w in &i.summary.workloads {
            match workloads.iter_mut().find(|m| m.id == w.id) {
                Some(m) => {
                    m.clients += w.clients;
                    m.late_starts += w.late_starts;
                    m.dropped_starts += w.dropped_starts;
                }
                None => workloads.push(w.clone()),
            }
        }
        for c in &i.summary.counters {
            match counters
                .iter_mut()
                .find(|m| m.workload == c.workload && m.name == c.name)
            {
                Some(m) => m.value = c.kind.combine(m.value, c.value),
                None => counters.push(c.clone()),
            }
        }
    }
    for w in &mut workloads {
        let (count, errors) = ops
            .iter()
            .filter(|o| o.workload == w.id)
            .fold((0, 0), |a, o| (a.0 + o.count, a.1 + o.errors));
        w.errors = errors;
        w.error_rate = errors as f64 / count.max(1) as f64;
    }
    (workloads, counters)
}

/// Faults and events, kept per input and labelled with it (heal failures follow from the faults).
pub struct Timelines {
    pub faults: Vec<FaultRecord>,
    pub events: Vec<Event>,
}

pub fn timelines(inputs: &[Input]) -> Timelines {
    let many = inputs.len() > 1;
    let tagged = |label: &str, s: &str| {
        if many {
            format!("[{label}] {s}")
        } else {
            s.to_string()
        }
    };
    let mut faults = vec![];
    let mut events = vec![Event {
        at_secs: 0.0,
        kind: EventKind::Note,
        detail: format!(
            "merged {} runs: {}",
            inputs.len(),
            inputs
                .iter()
                .map(|i| format!(
                    "{} (seed {}, run {})",
                    i.label, i.summary.seed, i.summary.run_id
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }];
    for i in inputs {
        for f in &i.summary.faults {
            let mut f = f.clone();
            if many {
                f.name = format!("{} [{}]", f.name, i.label);
            }
            faults.push(f);
        }
        for e in &i.summary.events {
            let mut e = e.clone();
            e.detail = tagged(&i.label, &e.detail);
            events.push(e);
        }
    }
    events.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    Timelines { faults, events }
}
