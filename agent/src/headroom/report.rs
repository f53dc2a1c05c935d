//! `headroom`'s output: the curve as a table, the one number, and `headroom.json`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use super::{fmt_multiple, Limit, Report};
use crate::units::{fmt_count, fmt_us};

/// The terminal text: what was searched, one row per step (in multiple order), the result.
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "headroom of {} against {} ({})",
        r.scenario, r.target, r.server
    );
    let _ = writeln!(
        o,
        "SLO: {} — and every check of the scenario (safety, recovery, thresholds)",
        if r.slos.is_empty() {
            "none beyond the scenario's".to_string()
        } else {
            r.slos.join(", ")
        }
    );
    let _ = writeln!(
        o,
        "\n  {:>8} {:>11} {:>11} {:>9} {:>9} {:>7}  verdict",
        "multiple", "offered/s", "done/s", "p50", "p99", "errors"
    );
    let mut steps: Vec<_> = r.steps.iter().collect();
    steps.sort_by(|a, b| a.multiple.total_cmp(&b.multiple));
    for s in steps {
        let _ = writeln!(
            o,
            "  {:>7}x {:>11} {:>11} {:>9} {:>9} {:>7}  {}{}",
            fmt_multiple(s.multiple),
            fmt_count(s.offered_per_sec.round() as u64),
            fmt_count(s.done_per_sec.round() as u64),
            fmt_us(s.p50_us as f64),
            fmt_us(s.p99_us as f64),
            s.errors,
            s.verdict.name(),
            match (&s.generator_bound, s.failed.first()) {
                (Some(g), _) => format!(" (GENERATOR-BOUND: {g})"),
                (None, Some(f)) if !s.passed() => format!(" ({f})"),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{}", result_line(r));
    o
}

/// The one number, and what bounded it.
pub fn result_line(r: &Report) -> String {
    let why = match r.limit {
        Limit::Server => "the server broke a check just above it",
        Limit::Generator => {
            "the generator, not the server, set the pace: a lower bound (shard the load, or run a \
             bigger agent)"
        }
        Limit::Ceiling => "every step up to --max-multiple passed: a lower bound",
        Limit::Steps => "--max-steps ran out before --precision: the bound is coarser",
        Limit::Interrupted => "interrupted: incomplete",
    };
    match (r.headroom, r.headroom_per_sec()) {
        (Some(m), Some(ops)) => format!(
            "headroom: {}x the scenario's load ({} offered ops/s) with every check holding; {why}",
            fmt_multiple(m),
            fmt_count(ops.round() as u64)
        ),
        _ if r.limit == Limit::Generator => format!(
            "headroom: unknown — the generator could not keep even {}x of the scenario's load on \
             this machine; {why}",
            fmt_multiple(
                r.steps
                    .iter()
                    .map(|s| s.multiple)
                    .fold(f64::INFINITY, f64::min)
            )
        ),
        _ => format!(
            "headroom: below {}x — not even the smallest load tried holds every check; {why}",
            fmt_multiple(
                r.steps
                    .iter()
                    .map(|s| s.multiple)
                    .fold(f64::INFINITY, f64::min)
            )
        ),
    }
}

/// `headroom.json`.
pub fn to_json(r: &Report) -> Json {
    json!({
        "scenario": r.scenario,
        "target": r.target,
        "server": r.server,
        "slo": r.slos,
        "base_offered_per_sec": r.base_offered_per_sec,
        "headroom": r.headroom,
        "headroom_offered_per_sec": r.headroom_per_sec(),
        "limit": r.limit.name(),
        "steps": r.steps.iter().map(|s| json!({
            "multiple": s.multiple,
            "offered_per_sec": s.offered_per_sec,
            "done_per_sec": s.done_per_sec,
            "p50_us": s.p50_us,
            "p99_us": s.p99_us,
            "errors": s.errors,
            "verdict": s.verdict.name(),
            "failed": s.failed,
            "generator_bound": s.generator_bound,
        })).collect::<Vec<_>>(),
    })
}

/// Write `headroom.json` into `dir`.
pub fn write(dir: &Path, r: &Report) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join("headroom.json");
    let text = serde_json::to_string_pretty(&to_json(r)).map_err(std::io::Error::other)?;
    std::fs::write(&p, text + "\n")?;
    Ok(p)
}
