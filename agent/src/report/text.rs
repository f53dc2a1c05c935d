//! The terminal summary: per workload tables, counters, faults, checks, and the verdict line.
//!
//! One function per section, each appending to the same string in the order `render` calls them.

use std::fmt::Write;

use crate::events::{Event, EventKind};
use crate::summary::{
    CheckResult, CopyCost, FaultRecord, MigrationReport, MigrationVerify, OpSummary, RollingReport,
    RunSummary, WorkloadSummary,
};
use crate::units::{fmt_count, fmt_us};

pub fn render(s: &RunSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o);
    header(&mut o, s);
    for w in &s.workloads {
        workload(&mut o, s, w);
    }
    if !s.faults.is_empty() {
        faults(&mut o, &s.faults);
    }
    if let Some(m) = &s.migration {
        migration(&mut o, m);
    }
    if !s.heal_failures.is_empty() {
        heal_failures(&mut o, &s.heal_failures);
    }
    if !s.checks.is_empty() {
        checks(&mut o, &s.checks, &s.events);
    }
    verdict(&mut o, s);
    o
}

/// The run's identity: scenario, seed, target, duration, shard and start, server.
fn header(o: &mut String, s: &RunSummary) {
    let _ = writeln!(
        o,
        "scenario {}  seed {}  target {}  ran {:.1}s of {:.1}s{}",
        s.scenario,
        s.seed,
        s.target,
        s.duration_secs,
        s.planned_duration_secs,
        if s.interrupted { "  (interrupted)" } else { "" }
    );
    if let Some(cpu) = s.generator_cpu_secs {
        let _ = writeln!(
            o,
            "agent CPU during the load {cpu:.2}s ({:.0}% of a core)",
            100.0 * cpu / s.duration_secs.max(1e-3)
        );
    }
    if let Some(x) = &s.shard {
        let _ = writeln!(
            o,
            "shard {x}{}",
            s.run_key
                .as_ref()
                .map(|k| format!(" of run {k}"))
                .unwrap_or_default()
        );
    }
    if let Some(x) = &s.start_sync {
        let _ = writeln!(
            o,
            "time zero {} ({}, target's clock; began {:.3} ms after it, ± {:.3} ms; waited {:.1}s)",
            s.started_at, x.mode, x.late_ms, x.uncertainty_ms, x.waited_secs
        );
    }
    if let Some(k) = &s.start_skew {
        let _ = writeln!(
            o,
            "start skew over {} runs: time zeros {:.3} ms apart, actual starts {:.3} ms apart (± {:.3} ms)",
            k.shards.len(),
            k.started_at_spread_ms,
            k.actual_spread_ms,
            k.uncertainty_ms
        );
    }
    if !s.server.version.is_empty() {
        let _ = writeln!(
            o,
            "server {} {} (redis_version {})",
            s.server.server_name, s.server.version, s.server.redis_version
        );
    }
}

/// One workload's table of operations, its pacing and its counters.
fn workload(o: &mut String, s: &RunSummary, w: &WorkloadSummary) {
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "workload {} ({}, {} clients, {})",
        w.id, w.kind, w.clients, w.model
    );
    let _ = writeln!(
        o,
        "  {:<14} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "op", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max", "errors"
    );
    for op in s.ops.iter().filter(|x| x.workload == w.id) {
        op_row(o, op);
    }
    pacing(o, w);
    let cs: Vec<String> = s
        .counters
        .iter()
        .filter(|c| c.workload == w.id)
        .map(|c| {
            if c.value.fract() == 0.0 {
                format!("{} {}", c.name, c.value)
            } else {
                format!("{} {:.3}", c.name, c.value)
            }
        })
        .collect();
    if !cs.is_empty() {
        let _ = writeln!(o, "  counters: {}", cs.join(", "));
    }
}

/// One operation's row, and its errors by kind when it had any.
fn op_row(o: &mut String, op: &OpSummary) {
    let l = &op.latency_us;
    let has = op.ok > 0;
    let f = |v: u64| if has { fmt_us(v as f64) } else { "-".into() };
    let _ = writeln!(
        o,
        "  {:<14} {:>10} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        op.op,
        fmt_count(op.count),
        op.rate_per_sec,
        f(l.p50),
        f(l.p90),
        f(l.p99),
        f(l.p999),
        f(l.max),
        fmt_count(op.errors)
    );
    if op.errors > 0 {
        let kinds: Vec<String> = op
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(o, "  {:<14} errors: {}", "", kinds.join(", "));
    }
}

/// How well the generator kept to its schedule.
fn pacing(o: &mut String, w: &WorkloadSummary) {
    if let Some(l) = &w.send_lag_us {
        let _ = writeln!(
            o,
            "  generator lag p50 {} p99 {} max {} (release − intended start, {} starts)",
            fmt_us(l.p50),
            fmt_us(l.p99),
            fmt_us(l.max),
            fmt_count(l.starts)
        );
    }
    if w.late_starts > 0 || w.dropped_starts > 0 {
        let _ = writeln!(
            o,
            "  pacing: {} late starts, {} dropped starts",
            fmt_count(w.late_starts),
            fmt_count(w.dropped_starts)
        );
    }
    if let Some(why) = &w.generator_bound {
        let _ = writeln!(
            o,
            "  GENERATOR-BOUND: the agent, not the server, set the pace: {why}"
        );
    }
}

/// The faults section: one line per fault, then what it did.
fn faults(o: &mut String, faults: &[FaultRecord]) {
    let _ = writeln!(o);
    let _ = writeln!(o, "faults");
    for f in faults {
        let when = match (f.injected_at_secs, f.healed_at_secs) {
            (Some(i), Some(h)) => format!("{i:.1}s → {h:.1}s"),
            (Some(i), None) => format!("{i:.1}s → not healed"),
            _ => "not injected".into(),
        };
        let _ = write!(
            o,
            "  #{} {} ({}) on {}: {}",
            f.index, f.name, f.kind, f.target, when
        );
        if let Some(sk) = &f.skipped {
            let _ = write!(o, "  skipped: {sk}");
        }
        if let Some(e) = &f.heal_error {
            let _ = write!(o, "  HEAL FAILED: {e}");
        }
        let _ = writeln!(o, "  errors {}", f.errors_during);
        if let Some(i) = &f.imitation {
            let _ = writeln!(o, "      {i}");
        }
        fault_effect(o, f);
    }
}

/// What one fault did: unavailability per workload, then its impact window (or p99 recovery).
fn fault_effect(o: &mut String, f: &FaultRecord) {
    for u in &f.unavailability {
        match u.window_secs {
            Some(w) => {
                let _ = writeln!(
                    o,
                    "      {} unavailable {:.2}s (first error at {:.2}s)",
                    u.workload, w, u.first_error_secs
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "      {} errors from {:.2}s, no success after",
                    u.workload, u.first_error_secs
                );
            }
        }
    }
    if let Some(i) = &f.impact {
        let _ = writeln!(
            o,
            "      impact window {:.0} ms (until {:.1}s{})",
            i.window_ms,
            i.until_secs,
            if i.recovered {
                ""
            } else {
                ", not back to normal before the load ended"
            }
        );
        for (k, n) in &i.safety {
            let _ = writeln!(o, "      inside it: {k} {n}");
        }
    } else if let Some(r) = f.p99_recovery_secs {
        let _ = writeln!(o, "      p99 back to normal {r:.1}s after heal");
    }
}

/// A cutover rehearsal: seed, canary lag, the switch, NOSCRIPT replies, the verify.
fn migration(o: &mut String, m: &MigrationReport) {
    let _ = writeln!(o, "\nmigration ({}) {}", m.mode, m.from_to);
    if m.seed_keys > 0 {
        let _ = writeln!(o, "  seed          {} keys", fmt_count(m.seed_keys));
    }
    if let Some(c) = &m.copy_cost {
        copy_cost(o, c);
    }
    let lag = |v: Option<f64>| v.map(|x| format!("{x:.1}ms")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        o,
        "  lag (canary)  p50 {}  p99 {}  max {}  ({} samples before the switch)",
        lag(m.lag.p50_ms),
        lag(m.lag.p99_ms),
        lag(m.lag.max_ms),
        m.lag.samples
    );
    if let Some(sw) = &m.switch {
        let _ = writeln!(
            o,
            "  switch        {} at {:.1}s{}{}",
            sw.procedure,
            sw.at_secs,
            sw.paused_ms
                .map(|p| format!(", writes paused {p:.0}ms"))
                .unwrap_or_default(),
            sw.behind_bytes
                .map(|b| format!(", destination {b} bytes behind"))
                .unwrap_or_default()
        );
        for st in &sw.steps {
            let _ = writeln!(
                o,
                "  step          {} `{}` at {:.1}s: {} in {:.1}s{}",
                st.at,
                st.command,
                st.started_secs,
                match (&st.error, st.exit) {
                    (Some(e), _) => e.clone(),
                    (None, Some(c)) => format!("exit {c}"),
                    (None, None) => "killed".into(),
                },
                st.secs,
                st.output
                    .lines()
                    .last()
                    .map(|l| format!(" — {l}"))
                    .unwrap_or_default()
            );
        }
        if let Some(r) = &sw.rolling {
            rolling(o, r);
        }
    }
    if let Some(b) = &m.switch_back {
        let _ = writeln!(
            o,
            "  switch back   at {:.1}s: the source took everything back in {:.0}ms, the destination's \
             writes stopped {:.0}ms; {}",
            b.at_secs,
            b.sync_ms,
            b.paused_ms,
            match &b.verify {
                Some(v) if v.error.is_none() => format!(
                    "every key compared: {} keys, {} differences",
                    v.keys_checked, v.differences
                ),
                Some(v) => format!("the compare failed: {}", v.error.clone().unwrap_or_default()),
                None => "the compare did not run".into(),
            }
        );
    }
    let _ = writeln!(
        o,
        "  NOSCRIPT after the switch: {}",
        m.noscript_after_switch
    );
    if let Some(v) = &m.verify {
        migration_verify(o, v);
    }
}

/// What the initial copy cost the source.
fn copy_cost(o: &mut String, c: &CopyCost) {
    let mib = |b: Option<u64>| {
        b.map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
            .unwrap_or_else(|| "?".into())
    };
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.2}ms")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        o,
        "  copy          {:.1}s, fork {}{}; memory {} + copy-on-write {} = peak {} of maxmemory {}",
        c.sync_secs,
        ms(c.fork_ms),
        if c.forked == Some(false) {
            " (no fork: a partial sync)"
        } else {
            ""
        },
        mib(c.used_memory),
        mib(c.cow_bytes),
        mib(c.peak_bytes),
        c.maxmemory
            .map(|m| mib(Some(m)))
            .unwrap_or_else(|| "unlimited".into())
    );
    let _ = writeln!(
        o,
        "                a read on the source meanwhile: p50 {}  p99 {}  max {}  ({} probes)",
        ms(c.probe_p50_ms),
        ms(c.probe_p99_ms),
        ms(c.probe_max_ms),
        c.probe_samples
    );
    if c.fits == Some(false) {
        let _ = writeln!(
            o,
            "  WARNING       the copy's peak does not fit under the source's maxmemory: on the real \
             source the copy evicts, refuses writes (OOM) or is killed; make room or size up first"
        );
    }
}

/// A rolling switch: the order, the batches, how long two sides took writes, the drain step.
fn rolling(o: &mut String, r: &RollingReport) {
    let _ = writeln!(
        o,
        "  roll          {}, writes {}: {} pods in {} batches over {:.1}s (copy stopped at {})",
        r.order,
        if r.stop_writes {
            "stopped until the last pod moved"
        } else {
            "never stopped"
        },
        r.pods,
        r.batches.len(),
        r.roll_secs,
        r.promoted_at_secs
            .map(|t| format!("{t:.1}s"))
            .unwrap_or_else(|| "-".into())
    );
    for b in &r.batches {
        let _ = writeln!(
            o,
            "    {:>6.1}s  {}/{} +{}",
            b.at_secs, b.workload, b.clients, b.pods
        );
    }
    let _ = writeln!(
        o,
        "  two sides     took writes for {:.0}ms after the copy stopped; READONLY replies: {}",
        r.two_sides_ms, r.readonly_replies
    );
    match (&r.drained, &r.drain_said) {
        (Some(n), said) => {
            let _ = writeln!(
                o,
                "  drain step    moved {n} messages left on the old side (the copy carried {} ids){}",
                r.copied_ids.unwrap_or(0),
                said.as_deref().map(|s| format!(": {s}")).unwrap_or_default()
            );
        }
        (None, _) => {
            let _ = writeln!(
                o,
                "  drain step    none: what the old side still holds stays there (a Dramatiq workload counts it as `left_behind`)"
            );
        }
    }
}

/// The key-by-key verify of a migrated copy.
fn migration_verify(o: &mut String, v: &MigrationVerify) {
    match &v.error {
        Some(e) => {
            let _ = writeln!(o, "  verify        could not run: {e}");
        }
        None => {
            let kinds: Vec<String> = v.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                o,
                "  verify        {} keys, {} differences{}",
                fmt_count(v.keys_checked),
                v.differences,
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", kinds.join(", "))
                }
            );
            for d in &v.first {
                let _ = writeln!(o, "      {d}");
            }
        }
    }
}

/// Heals that failed: the target may still be degraded.
fn heal_failures(o: &mut String, failures: &[String]) {
    let _ = writeln!(o, "\nHEAL FAILURES (the target may still be degraded):");
    for h in failures {
        let _ = writeln!(o, "  {h}");
    }
}

/// One line per check, PASS or FAIL.
fn checks(o: &mut String, checks: &[CheckResult], events: &[Event]) {
    let _ = writeln!(o);
    let _ = writeln!(o, "checks");
    for c in checks {
        let _ = writeln!(
            o,
            "  {} {:<40} {:<12} got {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.metric,
            c.condition,
            c.shown
        );
        if !c.passed {
            examples(o, &c.metric, events);
        }
    }
}

/// Under a failed counter check (`tasks.lost`), the first examples the oracle named
/// (`tasks: lost: message …`); the rest are in summary.json's events.
fn examples(o: &mut String, metric: &str, events: &[Event]) {
    let Some((w, counter)) = metric.split_once('.') else {
        return;
    };
    let prefix = format!("{w}: {counter}: ");
    let named: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Note)
        .filter_map(|e| e.detail.strip_prefix(prefix.as_str()))
        .collect();
    for d in named.iter().take(3) {
        let _ = writeln!(o, "       e.g. {d}");
    }
    if named.len() > 3 {
        let _ = writeln!(o, "       … {} more named in summary.json", named.len() - 3);
    }
}

/// The verdict line.
fn verdict(o: &mut String, s: &RunSummary) {
    let failed = s.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "verdict: {}  ({} of {} checks passed{})",
        s.verdict.name().to_uppercase(),
        s.checks.len() - failed,
        s.checks.len(),
        if s.heal_failures.is_empty() {
            ""
        } else {
            "; heal failures"
        }
    );
    if s.checks.is_empty() {
        let _ = writeln!(
            o,
            "  nothing was checked: no threshold, oracle or fault applies (add a threshold, or a \
             workload with an oracle, to judge this load)"
        );
    }
    // Why there is no verdict to trust: said on the lines right under it.
    for why in &s.incomplete {
        let _ = writeln!(o, "  incomplete: {why}");
    }
}
