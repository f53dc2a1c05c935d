//! Sharding: one scenario split across N agents (a Kubernetes Indexed Job, or N machines) so that
//! the shards together make the scenario's load and `merge` judges them as one run.
//!
//! [`apply`] turns a compiled plan into shard `index` of `count`. It is a pure function of the
//! plan and the shard; what it changes and what it deliberately leaves alone:
//!
//! - **Rates** are divided exactly: every [`RateSchedule`]'s start and stage targets are `/count`.
//! - **Clients, plugin VUs, Dramatiq producers and consumers** are dealt out: shard `i` gets
//!   `c / count` plus one if `i < c % count`, so the shards add up to the original. Every shard
//!   keeps at least one of each that the scenario has (a shard must be able to carry its share
//!   of the rate), so **`count` must not exceed the smallest of them** for the totals to stay
//!   exact; when it does, a note says by how much the total grew.
//! - **Rate-limiter bursts** are dealt out the same way (no minimum: the sizes add up exactly).
//! - **Keys are not changed.** Locks and rate limiters exist to be contended across processes,
//!   a Dramatiq fleet shares its queue, and the commands key space may be shared: every shard
//!   uses the scenario's `key_prefix` and key names. Rate-limiter `limit`s stay as written — they
//!   are the server-side limiter's configuration, which all shards share.
//! - **Dramatiq workloads with consumers** get `shared_queue = true`: a shard's consumers take
//!   messages other shards enqueued, so a shard's ledger counts the messages it enqueued and
//!   nobody here delivered as `taken_by_others`, not `lost` (see `deploy/README.md` for the
//!   distributed loss figure).
//! - **Seeds** differ per shard (shard 0 keeps the scenario's): otherwise every shard would draw
//!   the same message ids, broker ids and key sequence.
//! - **Server faults** (the destructive kinds: failover, kill, pause, memory, …) run on shard 0
//!   only — N agents failing over one primary at once is not the scenario. Network faults work
//!   through each agent's own proxy and run on every shard. Phase thresholds (`{during:…}`,
//!   `{before}`, `{after}`) that depend on a fault a shard no longer has are dropped there:
//!   shard 0, which injected the fault and knows its timeline, judges them, and `merge` keeps
//!   its verdict.
//! - **Trace files** (`trace = "…"`) get a `.shard<i>` suffix so agents on one machine do not
//!   overwrite each other's.
//! - **Thresholds are left alone.** A count, a rate or an additive counter compared with a
//!   non-zero bound (`x.get.count > 100000`, `x.get.rate >= 500`, `x.acquired > 50`) is a
//!   whole-run figure: a shard's verdict on it is not the run's. [`apply`] returns a note for
//!   each; `merge` re-evaluates every whole-run threshold on the summed figures, and its verdict
//!   is the one that counts. Latency, ratios and `== 0` safety counters mean the same per shard.

use std::path::{Path, PathBuf};

use crate::plan::shard::{share, Shard};
use crate::plan::{
    LoadModel, MetricPath, Phase, Plan, RateSchedule, Stat, Threshold, WorkloadKind,
};

/// [`share`] for a number of clients: at least 1 when the scenario has any.
fn clients(total: u32, s: Shard) -> u32 {
    if total == 0 {
        0
    } else {
        (share(u64::from(total), s.index, s.count) as u32).max(1)
    }
}

fn scale(r: &mut RateSchedule, count: u32) {
    let n = f64::from(count);
    r.start /= n;
    for (_, to) in &mut r.stages {
        *to /= n;
    }
}

/// `locks.trace` → `locks.shard1.trace`; `holds` → `holds.shard1`.
fn trace_path(p: &Path, index: u32) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match p.extension() {
        Some(e) => format!("{stem}.shard{index}.{}", e.to_string_lossy()),
        None => format!("{stem}.shard{index}"),
    };
    p.with_file_name(name)
}

/// Whether a threshold reads a figure that adds up over shards and is compared with a bound a
/// single shard's share would not meet (or would meet too easily).
pub fn whole_run(t: &Threshold, plan: &Plan) -> bool {
    if t.value == 0.0 {
        return false;
    }
    match &t.path {
        MetricPath::Op { stat, .. } => matches!(stat, Stat::Count | Stat::Rate | Stat::Errors),
        MetricPath::Counter(c) if c == "errors" => true,
        MetricPath::Counter(c) if c == "error_rate" => false,
        MetricPath::Counter(c) => plan
            .workloads
            .iter()
            .find(|w| w.id == t.workload)
            .and_then(|w| crate::plan::counter::find(w.kind.counters(), c))
            .is_some_and(|d| d.kind.additive()),
    }
}

/// Make `plan` shard `index` of `count` (see the module docs). Returns notes for the person
/// running it: thresholds whose per-shard verdict is not the run's, totals that grew, faults
/// and thresholds left to shard 0.
pub fn apply(plan: &mut Plan, s: Shard) -> Vec<String> {
    let (index, count) = (s.index, s.count);
    plan.shard = Some(s);
    let mut notes = vec![];
    if count == 1 {
        return notes;
    }
    if index > 0 {
        plan.seed = crate::rng::Rng::derive(plan.seed, "shard", u64::from(index)).next_u64();
    }
    let grew = |what: &str, id: &str, total: u32| {
        format!(
            "{id}: {count} shards but only {total} {what}: every shard runs at least one, so \
             the shards together run {count}, not {total}"
        )
    };
    for w in &mut plan.workloads {
        if let LoadModel::Open(r) = &mut w.load {
            scale(r, count);
        }
        match &mut w.kind {
            WorkloadKind::Dramatiq(d) => {
                for (what, n) in [
                    ("producers", &mut d.producers),
                    ("consumers", &mut d.consumers),
                ] {
                    if *n > 0 && *n < count {
                        notes.push(grew(what, &w.id, *n));
                    }
                    *n = clients(*n, s);
                }
                if d.consumers > 0 {
                    d.shared_queue = true;
                }
                if let Some(t) = &mut d.trace {
                    *t = trace_path(t, index);
                }
                // As compiled: the producers plus every consumer thread.
                w.clients = d.producers + d.consumers * d.threads;
                continue;
            }
            WorkloadKind::RateLimit(r) => {
                if let Some((every, size)) = r.bursts {
                    let mine = share(size, index, count);
                    r.bursts = (mine > 0).then_some((every, mine));
                }
                if let Some(t) = &mut r.trace {
                    *t = trace_path(t, index);
                }
            }
            WorkloadKind::Lock(l) => {
                if let Some(t) = &mut l.trace {
                    *t = trace_path(t, index);
                }
            }
            WorkloadKind::Commands(_) | WorkloadKind::Plugin(_) | WorkloadKind::Set(_) => {}
        }
        let what = if matches!(w.kind, WorkloadKind::Plugin(_)) {
            "VUs"
        } else {
            "clients"
        };
        if w.clients > 0 && w.clients < count {
            notes.push(grew(what, &w.id, w.clients));
        }
        w.clients = clients(w.clients, s);
    }

    // Server faults happen once, from shard 0.
    let mut removed = vec![];
    if index > 0 {
        plan.faults.retain(|f| {
            let keep = !f.kind.destructive();
            if !keep {
                removed.push(f.index);
            }
            keep
        });
    }
    if !removed.is_empty() {
        notes.push(format!(
            "server faults ({}) run on shard 0 only",
            removed
                .iter()
                .map(|i| format!("#{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        plan.thresholds.retain(|t| {
            let depends = match &t.phase {
                None => false,
                Some(Phase::During(i) | Phase::AfterFault(i)) => removed.contains(i),
                Some(Phase::Before | Phase::After) => true,
            };
            if depends {
                notes.push(format!(
                    "{} {}: judged by shard 0, which injects the fault it depends on",
                    t.metric, t.condition
                ));
            }
            !depends
        });
    }
    for t in plan.thresholds.iter().filter(|t| whole_run(t, plan)) {
        notes.push(format!(
            "{} {}: a whole-run figure; this shard's verdict on it is not the run's, \
             `valkey-chaos merge` of all {count} shards judges it",
            t.metric, t.condition
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"
name = "mixed"
seed = 5
duration = "10s"

[[workload]]
id = "cache"
type = "commands"
clients = 10
stages = [{ duration = "5s", target = 900 }, { duration = "5s", target = 300 }]
rate_per_sec = 30

[[workload]]
id = "jobs"
type = "dramatiq"
[workload.dramatiq]
queue = "q"
producers = 3
consumers = 3
threads = 4
rate_per_sec = 100
trace = "/tmp/jobs.ids"

[[workload]]
id = "pings"
type = "rate_limit"
[workload.rate_limit]
limit = 50
clients = 7
rate_per_sec = 70
bursts = { every = "2s", size = 11 }

[[workload]]
id = "etl"
type = "lock"
[workload.lock]
clients = 5

[[fault]]
type = "failover"
at = "3s"

[[fault]]
name = "slow"
type = "latency"
at = "5s"
duration = "2s"
[fault.latency]
delay = "20ms"

[thresholds]
"cache.get.p99" = "< 5ms"
"cache.get.count" = "> 1000"
"cache.get.rate" = ">= 50"
"jobs.lost" = "== 0"
"etl.acquired" = "> 10"
"cache.get.p99{during:0}" = "< 50ms"
"cache.get.p99{during:slow}" = "< 80ms"
"cache.get.p99{after}" = "< 10ms"
"#;

    fn plan() -> Plan {
        crate::scenario::compile::compile_str(Path::new("mixed.toml"), SCENARIO)
            .unwrap_or_else(|d| panic!("{d}"))
    }

    fn rate(p: &Plan, w: usize) -> RateSchedule {
        match &p.workloads[w].load {
            LoadModel::Open(r) => r.clone(),
            LoadModel::Closed => panic!("closed"),
        }
    }

    #[test]
    fn one_shard_changes_nothing() {
        let mut p = plan();
        assert!(apply(&mut p, Shard::new(0, 1).unwrap()).is_empty());
        assert_eq!(p.seed, 5);
        assert_eq!(p.workloads[0].clients, 10);
        assert_eq!(rate(&p, 0), rate(&plan(), 0));
        assert_eq!(p.faults.len(), 2);
    }

    #[test]
    fn totals_split_exactly() {
        let orig = plan();
        let n = 3;
        let shards: Vec<(Plan, Vec<String>)> = (0..n)
            .map(|i| {
                let mut p = plan();
                let notes = apply(&mut p, Shard::new(i, n).unwrap());
                (p, notes)
            })
            .collect();
        for (w, ow) in orig.workloads.iter().enumerate() {
            let clients: u32 = shards.iter().map(|s| s.0.workloads[w].clients).sum();
            assert_eq!(clients, ow.clients, "{}", ow.id);
            if let LoadModel::Open(o) = &ow.load {
                let start: f64 = shards.iter().map(|s| rate(&s.0, w).start).sum();
                assert!((start - o.start).abs() < 1e-9);
                for (k, (d, to)) in o.stages.iter().enumerate() {
                    let sum: f64 = shards.iter().map(|s| rate(&s.0, w).stages[k].1).sum();
                    assert!((sum - to).abs() < 1e-9);
                    assert!(shards.iter().all(|s| rate(&s.0, w).stages[k].0 == *d));
                }
            }
        }
        let dram = |p: &Plan| match &p.workloads[1].kind {
            WorkloadKind::Dramatiq(d) => d.clone(),
            _ => unreachable!(),
        };
        let producers: u32 = shards.iter().map(|s| dram(&s.0).producers).sum();
        assert_eq!(producers, 3);
        assert!(shards.iter().all(|s| dram(&s.0).shared_queue));
        assert_eq!(
            dram(&shards[2].0).trace.unwrap(),
            PathBuf::from("/tmp/jobs.shard2.ids")
        );
        assert!(shards.iter().all(|s| dram(&s.0).consumers == 1));
        assert!(!shards[0]
            .1
            .iter()
            .any(|n| n.contains("every shard runs at least one")));
        // 3 consumers over 4 shards: every shard still consumes, and says so.
        let mut p = plan();
        let notes = apply(&mut p, Shard::new(3, 4).unwrap());
        assert_eq!(dram(&p).consumers, 1);
        assert!(
            notes.iter().any(|n| n.contains("only 3 consumers")),
            "{notes:?}"
        );
        let bursts: u64 = shards
            .iter()
            .map(|s| match &s.0.workloads[2].kind {
                WorkloadKind::RateLimit(r) => {
                    assert_eq!(r.limit, 50, "the limiter's limit is shared, not split");
                    r.bursts.map(|b| b.1).unwrap_or(0)
                }
                _ => unreachable!(),
            })
            .sum();
        assert_eq!(bursts, 11);
        // Seeds differ, keys do not.
        assert_eq!(shards[0].0.seed, 5);
        assert_ne!(shards[1].0.seed, shards[2].0.seed);
        assert_ne!(shards[1].0.seed, 5);
        assert!(shards.iter().all(|s| s.0.key_prefix == orig.key_prefix));
    }

    #[test]
    fn server_faults_and_their_phases_stay_on_shard_zero() {
        let mut p0 = plan();
        let mut p1 = plan();
        let n0 = apply(&mut p0, Shard::new(0, 2).unwrap());
        let n1 = apply(&mut p1, Shard::new(1, 2).unwrap());
        assert_eq!(p0.faults.len(), 2);
        assert_eq!(p0.thresholds.len(), plan().thresholds.len());
        assert_eq!(p1.faults.len(), 1);
        assert_eq!(p1.faults[0].name, "slow");
        let metrics: Vec<&str> = p1.thresholds.iter().map(|t| t.metric.as_str()).collect();
        assert!(!metrics.contains(&"cache.get.p99{during:0}"));
        assert!(!metrics.contains(&"cache.get.p99{after}"));
        assert!(metrics.contains(&"cache.get.p99{during:slow}"));
        assert!(n1.iter().any(|n| n.contains("run on shard 0 only")));
        assert!(!n0.iter().any(|n| n.contains("shard 0 only")));
    }

    #[test]
    fn whole_run_thresholds_are_noted_not_changed() {
        let mut p = plan();
        let before = p.thresholds.clone();
        let notes = apply(&mut p, Shard::new(0, 2).unwrap());
        assert_eq!(p.thresholds, before);
        let flagged: Vec<&str> = notes
            .iter()
            .filter(|n| n.contains("whole-run figure"))
            .map(|n| n.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            flagged,
            ["cache.get.count", "cache.get.rate", "etl.acquired"]
        );
    }
}
