//! `merge`: several agents' outputs (each a directory with `summary.json` and `latency.hlog`) into
//! one judged summary, with exact percentiles: every interval histogram of every agent is added
//! per tag (`<workload>.<op>` corrected latency, `<workload>.<op>.service` service time).
//!
//! How the figures combine (kept simple on purpose):
//! - counts, ok, errors (by kind), clients, late and dropped starts add up; rates are the total
//!   count over the longest duration; duration and planned duration are the longest;
//! - counters add up, except `*_max` (the largest) and `*_min` (the smallest);
//! - the series is summed per interval, aligned on each run's own start, with p50/p99/max from the
//!   merged interval histograms;
//! - faults, events and heal failures are kept per input, labelled with the input's directory;
//! - thresholds: the union of the inputs' checks plus `--threshold`s, re-evaluated on whole-run
//!   metrics. A phase metric (`…{during:0}`) needs each run's own fault timeline and is not
//!   re-evaluated: it passes only if it passed in every input that had it;
//! - a sharded run (summaries with a `shard`, from `run --shard`) merges whole: shards `0..n` of
//!   one `n`, each exactly once, else a usage error (exit 2) that names the missing or duplicate
//!   shard.
//!
//! The merged output has its own `latency.hlog`, so merges can be merged again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::metrics::{new_hist, LatencyStats};
use crate::plan::{MetricPath, Stat, Threshold};
use crate::run::events::{Event, EventKind};
use crate::summary::{
    CheckResult, CounterValue, OpSummary, RunSummary, SeriesPoint, WorkloadSummary,
};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A problem with one input file.
    #[error("{}: {msg}", path.display())]
    Input { path: PathBuf, msg: String },
    /// A problem with the arguments.
    #[error("{0}")]
    Usage(String),
}

fn bad(path: &Path, msg: impl Into<String>) -> MergeError {
    MergeError::Input {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// One agent's output, read from disk.
pub struct Input {
    pub summary_path: PathBuf,
    pub hlog_path: PathBuf,
    /// Short name for labels: the directory name.
    pub label: String,
    pub summary: RunSummary,
    hlog: Vec<u8>,
}

/// A merged run: the summary and the merged interval log.
pub struct Merged {
    pub summary: RunSummary,
    pub hlog: Vec<u8>,
}

/// Read an agent's output: a directory, or its `summary.json` / `latency.hlog`.
pub fn load(path: &Path) -> Result<Input, MergeError> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file() {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        return Err(bad(
            path,
            "no such directory or file (expected an agent's --out directory)",
        ));
    };
    let summary_path = dir.join("summary.json");
    let hlog_path = dir.join("latency.hlog");
    let text = std::fs::read(&summary_path).map_err(|e| {
        bad(
            &summary_path,
            format!("cannot read it ({e}): is this an agent's --out directory?"),
        )
    })?;
    let summary: RunSummary = serde_json::from_slice(&text)
        .map_err(|e| bad(&summary_path, format!("not a valkey-chaos summary: {e}")))?;
    let hlog =
        std::fs::read(&hlog_path).map_err(|e| bad(&hlog_path, format!("cannot read it ({e})")))?;
    let label = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Input {
        summary_path,
        hlog_path,
        label,
        summary,
        hlog,
    })
}

/// Load every input and merge them.
pub fn merge_paths(paths: &[PathBuf], thresholds: &[String]) -> Result<Merged, MergeError> {
    let inputs = paths
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    merge(inputs, thresholds)
}

/// Write `summary.json`, `latency.hlog`, `report.html` and `junit.xml` into `dir`.
pub fn write_outputs(dir: &Path, m: &Merged) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(&m.summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)?;
    std::fs::write(dir.join("latency.hlog"), &m.hlog)?;
    std::fs::write(
        dir.join("report.html"),
        crate::report::html::render(&m.summary),
    )?;
    std::fs::write(
        dir.join("junit.xml"),
        crate::report::junit::render(&m.summary),
    )?;
    Ok(())
}

/// Merge several agents' outputs of one scenario.
pub fn merge(mut inputs: Vec<Input>, thresholds: &[String]) -> Result<Merged, MergeError> {
    let Some(first) = inputs.first() else {
        return Err(MergeError::Usage("nothing to merge".into()));
    };
    let scenario = first.summary.scenario.clone();
    let mut run_ids: HashMap<&str, &Path> = HashMap::new();
    for i in &inputs {
        if i.summary.scenario != scenario {
            return Err(bad(
                &i.summary_path,
                format!(
                    "scenario {:?} differs from {:?} in {}: merge combines shards of one scenario",
                    i.summary.scenario,
                    scenario,
                    first.summary_path.display()
                ),
            ));
        }
        if let Some(other) = run_ids.insert(&i.summary.run_id, &i.summary_path) {
            return Err(bad(
                &i.summary_path,
                format!(
                    "the same run (run_id {}) as {}: give each agent's output once",
                    i.summary.run_id,
                    other.display()
                ),
            ));
        }
    }
    // A sharded run merges whole: shards 0..n of one n, each once (else exit 2 naming the gap).
    let shards: Vec<(String, Option<String>)> = inputs
        .iter()
        .map(|i| {
            (
                i.summary_path.display().to_string(),
                i.summary.shard.clone(),
            )
        })
        .collect();
    crate::shard::check_complete(&shards).map_err(MergeError::Usage)?;
    // Labels: directory names, or whole paths when two directories share a name.
    let mut seen = std::collections::HashSet::new();
    if !inputs.iter().all(|i| seen.insert(i.label.clone())) {
        for i in &mut inputs {
            i.label = i
                .summary_path
                .parent()
                .unwrap_or(Path::new("."))
                .display()
                .to_string();
        }
    }
    let many = inputs.len() > 1;
    let tagged = |label: &str, s: &str| {
        if many {
            format!("[{label}] {s}")
        } else {
            s.to_string()
        }
    };
    let interval = inputs
        .iter()
        .map(|i| i.summary.interval_secs)
        .fold(0.0, f64::max)
        .max(1e-3);
    let duration = inputs
        .iter()
        .map(|i| i.summary.duration_secs)
        .fold(0.0, f64::max);

    // Ops: sums, in order of first appearance.
    let mut ops: Vec<OpSummary> = vec![];
    for i in &inputs {
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
    let tag_of: HashMap<String, usize> = ops
        .iter()
        .enumerate()
        .map(|(n, o)| (format!("{}.{}", o.workload, o.op), n))
        .collect();

    // Series from the summaries: ok and errors per interval (errors are not in the .hlog).
    let mut series: BTreeMap<(u64, usize), SeriesPoint> = BTreeMap::new();
    let bucket = |start: f64| (start / interval).round().max(0.0) as u64;
    for i in &inputs {
        for p in &i.summary.series {
            let Some(&n) = tag_of.get(&format!("{}.{}", p.workload, p.op)) else {
                continue;
            };
            series
                .entry((bucket(p.start_secs), n))
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

    // The interval logs: group every histogram by (interval, tag), add, and re-emit.
    struct Entry<'a> {
        input: usize,
        start: f64,
        end: f64,
        b64: &'a str,
    }
    let mut groups: BTreeMap<(u64, &str), Vec<Entry>> = BTreeMap::new();
    let mut base_time: Option<Duration> = None;
    for (n, i) in inputs.iter().enumerate() {
        for e in IntervalLogIterator::new(&i.hlog) {
            match e {
                Ok(LogEntry::Interval(h)) => {
                    let tag = h.tag().map(|t| t.as_str()).unwrap_or("");
                    let start = h.start_timestamp().as_secs_f64();
                    groups.entry((bucket(start), tag)).or_default().push(Entry {
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
    let mut totals: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
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
            scratch.reset();
            for e in entries {
                let bytes = base64_decode(e.b64);
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
                *samples.entry((e.input, *tag)).or_default() += h.len();
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
            let total = totals.entry(tag).or_insert_with(new_hist);
            let _ = total.add(&scratch);
            if let Some(&n) = tag_of.get(*tag) {
                let start = entries
                    .iter()
                    .map(|e| e.start)
                    .fold(f64::INFINITY, f64::min);
                let end = entries.iter().map(|e| e.end).fold(0.0, f64::max);
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
            let start = entries
                .iter()
                .map(|e| e.start)
                .fold(f64::INFINITY, f64::min);
            let end = entries.iter().map(|e| e.end).fold(0.0, f64::max);
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

    // Every op's successful count must match its samples in the logs.
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

    for o in &mut ops {
        let tag = format!("{}.{}", o.workload, o.op);
        o.error_rate = o.errors as f64 / o.count.max(1) as f64;
        o.rate_per_sec = (o.count as f64 / duration.max(1e-3) * 10.0).round() / 10.0;
        o.latency_us = totals
            .get(tag.as_str())
            .map(LatencyStats::of)
            .unwrap_or_default();
        o.service_us = totals
            .get(format!("{tag}.service").as_str())
            .map(LatencyStats::of)
            .unwrap_or_default();
    }

    // Workloads and counters.
    let mut workloads: Vec<WorkloadSummary> = vec![];
    let mut counters: Vec<CounterValue> = vec![];
    for i in &inputs {
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
                Some(m) => m.value = combine_counter(&c.name, m.value, c.value),
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

    // Faults, events, heal failures: per input, labelled.
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
    let mut heal_failures = vec![];
    for i in &inputs {
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
        for h in &i.summary.heal_failures {
            heal_failures.push(tagged(&i.label, h));
        }
    }
    events.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));

    let mut targets: Vec<&str> = vec![];
    for i in &inputs {
        if !targets.contains(&i.summary.target.as_str()) {
            targets.push(&i.summary.target);
        }
    }
    let s0 = &inputs[0].summary;
    let mut summary = RunSummary {
        scenario,
        seed: s0.seed,
        verdict: String::new(),
        duration_secs: duration,
        planned_duration_secs: inputs
            .iter()
            .map(|i| i.summary.planned_duration_secs)
            .fold(0.0, f64::max),
        interrupted: inputs.iter().any(|i| i.summary.interrupted),
        run_id: format!(
            "merge:{}",
            inputs
                .iter()
                .map(|i| i.summary.run_id.as_str())
                .collect::<Vec<_>>()
                .join("+")
        ),
        shard: None,
        started_at: inputs
            .iter()
            .map(|i| i.summary.started_at.clone())
            .min()
            .unwrap_or_default(),
        target: targets.join(", "),
        server: inputs
            .iter()
            .map(|i| &i.summary.server)
            .find(|s| !s.version.is_empty())
            .cloned()
            .unwrap_or_default(),
        workloads,
        ops,
        counters,
        checks: vec![],
        faults,
        events,
        heal_failures,
        interval_secs: interval,
        series: series.into_values().collect(),
    };

    // Thresholds: the inputs' checks (once each), then the extra ones.
    let mut wanted: Vec<(String, String, Vec<bool>)> = vec![];
    for i in &inputs {
        for c in &i.summary.checks {
            match wanted
                .iter_mut()
                .find(|w| w.0 == c.metric && w.1 == c.condition)
            {
                Some(w) => w.2.push(c.passed),
                None => wanted.push((c.metric.clone(), c.condition.clone(), vec![c.passed])),
            }
        }
    }
    let mut checks = vec![];
    for (metric, condition, passes) in wanted {
        if metric.contains('{') {
            let k = passes.iter().filter(|p| **p).count();
            checks.push(CheckResult {
                metric,
                condition,
                value: None,
                passed: k == passes.len(),
                shown: format!(
                    "not re-evaluated by merge ({k} of {} runs passed)",
                    passes.len()
                ),
            });
            continue;
        }
        checks.push(match threshold(&metric, &condition, &summary) {
            Ok(t) => crate::check::evaluate(&[t], &summary, None).remove(0),
            Err(e) => CheckResult {
                metric,
                condition,
                value: None,
                passed: false,
                shown: format!("cannot re-evaluate: {e}"),
            },
        });
    }
    for text in thresholds {
        let (metric, condition) = split_threshold(text)?;
        if metric.contains('{') {
            return Err(MergeError::Usage(format!(
                "--threshold {text:?}: phase metrics ({{…}}) need each run's fault timeline and \
                 are not re-evaluated by merge; use a whole-run metric"
            )));
        }
        let t = threshold(metric, condition, &summary)
            .map_err(|e| MergeError::Usage(format!("--threshold {text:?}: {e}")))?;
        checks.extend(crate::check::evaluate(&[t], &summary, None));
    }
    summary.checks = checks;
    let failed = summary.checks.iter().any(|c| !c.passed) || !summary.heal_failures.is_empty();
    summary.verdict = if failed { "fail" } else { "pass" }.into();
    Ok(Merged {
        summary,
        hlog: out_log,
    })
}

/// `*_max` keeps the largest, `*_min` the smallest, everything else adds up.
pub fn combine_counter(name: &str, a: f64, b: f64) -> f64 {
    if name.ends_with("_max") {
        a.max(b)
    } else if name.ends_with("_min") {
        a.min(b)
    } else {
        a + b
    }
}

/// `'cache.get.p99 < 5ms'` → (`cache.get.p99`, `< 5ms`).
fn split_threshold(text: &str) -> Result<(&str, &str), MergeError> {
    let text = text.trim();
    let at = text
        .find(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '=')
        .ok_or_else(|| {
            MergeError::Usage(format!(
                "--threshold {text:?}: write 'METRIC COND', e.g. 'cache.get.p99 < 5ms'"
            ))
        })?;
    let (m, c) = text.split_at(at);
    Ok((m.trim(), c.trim()))
}

/// A whole-run threshold, read against the merged summary (`<wl>.<op>.<stat>` or `<wl>.<counter>`).
fn threshold(metric: &str, condition: &str, s: &RunSummary) -> Result<Threshold, String> {
    let (wl, rest) = metric
        .split_once('.')
        .ok_or("write <workload>.<op>.<stat> or <workload>.<counter>")?;
    if !s.workloads.iter().any(|w| w.id == wl) {
        let ids: Vec<&str> = s.workloads.iter().map(|w| w.id.as_str()).collect();
        return Err(format!(
            "no workload {wl:?} in the merged runs (workloads: {})",
            ids.join(", ")
        ));
    }
    let path = match rest.rsplit_once('.') {
        Some((op, stat)) => {
            let stat = Stat::parse(stat).ok_or_else(|| {
                format!(
                    "unknown statistic {stat:?} (stats: {})",
                    Stat::NAMES.join(", ")
                )
            })?;
            if s.op(wl, op).is_none() {
                let ops: Vec<&str> = s
                    .ops
                    .iter()
                    .filter(|o| o.workload == wl)
                    .map(|o| o.op.as_str())
                    .collect();
                return Err(format!(
                    "`{wl}` has no operation {op:?} (operations: {})",
                    ops.join(", ")
                ));
            }
            MetricPath::Op {
                op: op.to_string(),
                stat,
            }
        }
        None => {
            let known = rest == "errors"
                || rest == "error_rate"
                || s.counters
                    .iter()
                    .any(|c| c.workload == wl && c.name == rest);
            if !known {
                let names: Vec<&str> = ["errors", "error_rate"]
                    .into_iter()
                    .chain(
                        s.counters
                            .iter()
                            .filter(|c| c.workload == wl)
                            .map(|c| c.name.as_str()),
                    )
                    .collect();
                return Err(format!(
                    "unknown counter {rest:?} of `{wl}` (counters: {})",
                    names.join(", ")
                ));
            }
            MetricPath::Counter(rest.to_string())
        }
    };
    let latency = matches!(&path, MetricPath::Op { stat, .. } if stat.is_latency());
    let ratio = matches!(
        &path,
        MetricPath::Op {
            stat: Stat::ErrorRate,
            ..
        }
    ) || matches!(&path, MetricPath::Counter(c) if c.ends_with("_rate") || c == "efficiency");
    let (op, value) = crate::scenario::compile::parse_condition(condition, latency, ratio)
        .map_err(|e| format!("bad condition {condition:?}: {e}"))?;
    Ok(Threshold {
        metric: metric.to_string(),
        workload: wl.to_string(),
        path,
        phase: None,
        op,
        value,
        condition: condition.to_string(),
    })
}

/// Standard base64 (the `.hlog` encoding); None on a bad character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_combine_by_name() {
        assert_eq!(combine_counter("lost", 1.0, 2.0), 3.0);
        assert_eq!(combine_counter("queue_depth_max", 7.0, 3.0), 7.0);
        assert_eq!(combine_counter("fairness_min", 7.0, 3.0), 3.0);
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*").is_none());
    }

    #[test]
    fn thresholds_read_against_the_merged_summary() {
        let s = crate::report::html::tests::sample();
        let t = threshold("q<1>.get.p99", "< 5ms", &s).unwrap();
        assert_eq!(t.value, 5000.0);
        let t = threshold("q<1>.error_rate", "< 1%", &s).unwrap();
        assert_eq!(t.value, 0.01);
        assert!(threshold("q<1>.violations", "== 0", &s).is_ok());
        assert!(threshold("nope.get.p99", "< 5ms", &s)
            .unwrap_err()
            .contains("no workload"));
        assert!(threshold("q<1>.put.p99", "< 5ms", &s)
            .unwrap_err()
            .contains("no operation"));
        assert!(threshold("q<1>.get.p98", "< 5ms", &s)
            .unwrap_err()
            .contains("unknown statistic"));
        assert!(threshold("q<1>.get.p99", "< 5", &s)
            .unwrap_err()
            .contains("unit"));
        assert_eq!(split_threshold("a.b.p99<5ms").unwrap(), ("a.b.p99", "<5ms"));
    }
}
