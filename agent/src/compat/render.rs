//! A [`Report`] as the terminal table (with one explained line per row worth reading) and as
//! JSON. Pure functions of the report.

use std::fmt::Write;

use serde_json::{json, Value};

use super::outcome::Outcome;
use super::report::{Report, Side};
use super::row::{Row, Status};
use crate::plan::rollback;

impl Report {
    /// The terminal table and the lines under it.
    pub fn render(&self) -> String {
        text(self)
    }
    /// The same report as pretty-printed JSON (`--json`, `compat.json`).
    pub fn to_json(&self) -> String {
        json(self)
    }
}

/// Width of a baseline/candidate cell in the table.
const CELL: usize = 38;

pub(super) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn side_line(role: &str, s: &Side) -> String {
    let provider = match s.provider {
        Some(p) => format!(", {p}"),
        None => String::new(),
    };
    format!("{role:<10} {} ({}{provider})", s.label, s.server())
}

/// The rows worth a line under the table: all that matter, then every other difference,
/// failure, refusal and warning, each with its one-line explanation.
fn explained(r: &Report) -> Vec<String> {
    let line = |label: &str, row: &Row| match &row.note {
        Some(n) => format!("{label:<10} {}: {n} — {}", row.name, row.explanation),
        None => format!("{label:<10} {}: {}", row.name, row.explanation),
    };
    let mut out: Vec<String> = r
        .rows
        .iter()
        .filter(|x| x.matters)
        .map(|x| line("matters", x))
        .collect();
    out.extend(
        r.rows
            .iter()
            .filter(|x| {
                !x.matters
                    && matches!(
                        x.status,
                        Status::Different | Status::Failed | Status::Forbidden | Status::Warning
                    )
            })
            .map(|x| line(x.status.name(), x)),
    );
    out
}

pub(super) fn text(r: &Report) -> String {
    let mut o = String::new();
    let with_base = r.baseline.is_some();
    if let Some(b) = &r.baseline {
        let _ = writeln!(o, "{}", side_line("baseline", b));
    }
    let _ = writeln!(o, "{}", side_line("candidate", &r.candidate));
    if let Some(v) = r.way_back() {
        let _ = writeln!(o, "{}", way_back_line(&v));
    }
    let _ = writeln!(o);
    let w = r
        .rows
        .iter()
        .map(|x| x.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    if with_base {
        let _ = writeln!(
            o,
            "{:<w$}  {:<CELL$}  {:<CELL$}  status",
            "check", "baseline", "candidate"
        );
    } else {
        let _ = writeln!(o, "{:<w$}  {:<CELL$}  status", "check", "candidate");
    }
    for row in &r.rows {
        let c = clip(&row.candidate.cell(), CELL);
        let mark = if row.matters { "  <-" } else { "" };
        let status = row.status.name();
        if with_base {
            let b = row
                .baseline
                .as_ref()
                .map(Outcome::cell)
                .unwrap_or_else(|| "-".into());
            let b = clip(&b, CELL);
            let _ = writeln!(
                o,
                "{:<w$}  {b:<CELL$}  {c:<CELL$}  {status}{mark}",
                row.name
            );
        } else {
            let _ = writeln!(o, "{:<w$}  {c:<CELL$}  {status}{mark}", row.name);
        }
    }
    let _ = writeln!(o);
    for l in explained(r) {
        let _ = writeln!(o, "{l}");
    }
    let bad = r.rows.iter().filter(|x| x.matters).count();
    if bad == 0 {
        let different = if with_base {
            format!(
                ", {} different",
                r.rows
                    .iter()
                    .filter(|x| x.status == Status::Different)
                    .count()
            )
        } else {
            String::new()
        };
        let _ = writeln!(o, "compat: pass ({} checks{different})", r.rows.len());
    } else {
        let _ = writeln!(o, "compat: fail ({bad} of {} checks matter)", r.rows.len());
    }
    o
}

/// Whether the cutover can be undone by replicating the candidate back into the baseline.
fn way_back_line(v: &rollback::Verdict) -> String {
    let source = if v.tested_here {
        "tried with these versions"
    } else {
        "from the published RDB formats"
    };
    if v.possible {
        let unless = v
            .unless
            .as_ref()
            .map(|u| format!("; closes if {u}"))
            .unwrap_or_default();
        format!(
            "way back   open by replication: {}{unless} ({source})",
            v.reason
        )
    } else {
        format!(
            "way back   closed by replication: {}; once writes reach the candidate a rollback is a \
             dump and restore key by key ({source})",
            v.reason
        )
    }
}

fn side_json(s: &Side) -> Value {
    json!({
        "url": s.label,
        "server_name": s.server_name,
        "version": s.version,
        "provider": s.provider.map(|p| p.id()),
    })
}

pub(super) fn json(r: &Report) -> String {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            json!({
                "name": row.name,
                "weight": row.weight.name(),
                "status": row.status.name(),
                "matters": row.matters,
                "baseline": row.baseline.as_ref().map(Outcome::cell),
                "candidate": row.candidate.cell(),
                "explanation": row.explanation,
                "note": row.note,
            })
        })
        .collect();
    let v = json!({
        "verdict": if r.failed() { "fail" } else { "pass" },
        "error_text_matters": r.policy.error_text_matters,
        "baseline": r.baseline.as_ref().map(side_json),
        "candidate": side_json(&r.candidate),
        "way_back": r.way_back().map(|v| json!({
            "possible": v.possible,
            "reason": v.reason,
            "unless": v.unless,
            "tested_here": v.tested_here,
        })),
        "matters": r.rows.iter().filter(|x| x.matters).map(|x| x.name).collect::<Vec<_>>(),
        "rows": rows,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::super::{compare, Check, Policy, Probe, Refusal};
    use super::*;
    use crate::plan::provider::Provider;

    fn side(label: &str, name: &str, version: &str, probes: Vec<Probe>) -> Side {
        Side {
            label: label.into(),
            server_name: Some(name.into()),
            version: Some(version.into()),
            provider: None,
            probes,
        }
    }

    fn report() -> Report {
        let p = |check, outcome| Probe {
            check,
            outcome,
            warning: None,
        };
        let base = vec![
            p(Check::Eval, Outcome::Ok("ok".into())),
            p(
                Check::BusyScript,
                Outcome::Ok("BUSY Redis is busy running a script.".into()),
            ),
            p(Check::KeysInScript, Outcome::Ok("3 keys".into())),
        ];
        let cand = vec![
            p(Check::Eval, Outcome::Ok("ok".into())),
            p(
                Check::BusyScript,
                Outcome::Ok("BUSY Valkey is busy running a script.".into()),
            ),
            p(
                Check::KeysInScript,
                Outcome::Forbidden(Refusal {
                    command: "KEYS".into(),
                    provider: Some(Provider::ElastiCache),
                    reply: "ERR unknown command 'keys'".into(),
                }),
            ),
        ];
        let rows = compare(Some(&base), &cand, Policy::default());
        let mut c = side("rediss://db.example:6379", "valkey", "8.1.8", cand);
        c.provider = Some(Provider::ElastiCache);
        Report {
            baseline: Some(side("redis://old:6379", "redis", "7.0.15", base)),
            candidate: c,
            rows,
            policy: Policy::default(),
        }
    }

    #[test]
    fn text_table_explains_what_matters_and_what_differs() {
        let t = report().render();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "baseline   redis://old:6379 (redis 7.0.15)");
        assert_eq!(
            lines[1],
            "candidate  rediss://db.example:6379 (valkey 8.1.8, ElastiCache)"
        );
        // Valkey 8.1 sends RDB 11, Redis 7.0 loads up to 10.
        assert!(
            lines[2].starts_with("way back   closed by replication: valkey 8.1.8 sends RDB 11")
                && lines[2].contains("tried with these versions"),
            "{t}"
        );
        let row = |name: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(&format!("{name}  ")))
                .unwrap_or_else(|| panic!("{name}:\n{t}"))
        };
        assert!(row("eval").ends_with("same"));
        assert!(row("busy script error").ends_with("different"), "{t}");
        let k = row("keys in script");
        assert!(
            k.contains("3 keys") && k.contains("forbidden: KEYS (ElastiCache)"),
            "{t}"
        );
        assert!(k.ends_with("  forbidden  <-"), "{t}");
        let matters = lines.iter().find(|l| l.starts_with("matters ")).unwrap();
        assert!(
            matters.contains("keys in script: forbidden by the target: KEYS")
                && matters.contains("Dramatiq"),
            "{matters}"
        );
        let diff = lines.iter().find(|l| l.starts_with("different ")).unwrap();
        assert!(diff.contains("busy script error: ") && diff.contains("Redis is busy"));
        assert_eq!(
            *lines.last().unwrap(),
            "compat: fail (1 of 3 checks matter)"
        );
        assert!(!t.contains("eval: "), "same rows get no line:\n{t}");
    }

    #[test]
    fn json_carries_sides_rows_and_verdict() {
        let v: Value = serde_json::from_str(&report().to_json()).expect("valid JSON");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["error_text_matters"], false);
        assert_eq!(v["matters"], json!(["keys in script"]));
        assert_eq!(v["baseline"]["server_name"], "redis");
        assert_eq!(v["candidate"]["version"], "8.1.8");
        assert_eq!(v["candidate"]["provider"], "elasticache");
        assert_eq!(v["candidate"]["url"], "rediss://db.example:6379");
        assert_eq!(v["way_back"]["possible"], false);
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let k = &rows[2];
        assert_eq!(k["name"], "keys in script");
        assert_eq!(k["weight"], "behaviour");
        assert_eq!(k["status"], "forbidden");
        assert_eq!(k["matters"], true);
        assert_eq!(k["baseline"], "3 keys");
        assert_eq!(k["candidate"], "forbidden: KEYS (ElastiCache)");
        assert!(k["explanation"].as_str().unwrap().contains("KEYS"));
        assert_eq!(rows[1]["weight"], "error-text");
        assert_eq!(rows[0]["note"], Value::Null);
    }

    #[test]
    fn clips_cells() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
