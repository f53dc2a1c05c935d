//! Thresholds: `"cache.get.p99{during:failover}" = "< 5ms"` → [`Threshold`]. The one parser for
//! every place a threshold is written — the scenario's `[thresholds]`, `run --threshold`, and
//! `merge --threshold` (against what the merged runs contain). What a name may refer to is a
//! [`Catalog`], built from a plan or from a summary.

use crate::plan::counter::CounterKind;
use crate::plan::{CmpOp, FaultPlan, MetricPath, Phase, Stat, Threshold, WorkloadPlan};
use crate::scenario::diag::suggest;

/// What metric names can refer to.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub workloads: Vec<CatalogWorkload>,
    /// Fault names in `[[fault]]` order (`{during:<name or index>}`).
    pub faults: Vec<String>,
}

/// One workload's operations and counters.
#[derive(Debug, Clone)]
pub struct CatalogWorkload {
    pub id: String,
    pub ops: Vec<String>,
    /// Operation names only known at run time (plugins): any op name is accepted.
    pub open_ops: bool,
    pub counters: Vec<(String, CounterKind)>,
}

impl Catalog {
    /// What a compiled scenario's metrics are.
    pub fn of_plan(workloads: &[WorkloadPlan], faults: &[FaultPlan]) -> Catalog {
        Catalog {
            workloads: workloads
                .iter()
                .map(|w| CatalogWorkload {
                    id: w.id.clone(),
                    ops: w.kind.ops(),
                    open_ops: w.kind.open_ops(),
                    counters: w
                        .kind
                        .counters()
                        .iter()
                        .map(|d| (d.name.to_string(), d.kind))
                        .collect(),
                })
                .collect(),
            faults: faults.iter().map(|f| f.name.clone()).collect(),
        }
    }
}

/// Which half of `metric = condition` a problem is in (so a scenario error points at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Metric,
    Condition,
}

/// A threshold that cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdError {
    pub part: Part,
    pub message: String,
    pub hint: Option<String>,
}

fn err(part: Part, message: String, hint: Option<String>) -> ThresholdError {
    ThresholdError {
        part,
        message,
        hint,
    }
}

/// Parse `metric` (e.g. `cache.get.p99{after}`) and `condition` (e.g. `< 5ms`).
pub fn parse(metric: &str, condition: &str, cat: &Catalog) -> Result<Threshold, ThresholdError> {
    let (metric_part, phase) = split_phase(metric, cat)?;
    let parts: Vec<&str> = metric_part.split('.').collect();
    let wl = find_workload(metric, parts[0], cat)?;
    let (path, kind) = match parts.len() {
        2 => {
            let kind = counter_kind(metric, wl, parts[1])?;
            (MetricPath::Counter(parts[1].to_string()), Some(kind))
        }
        3 => (op_path(metric, wl, parts[1], parts[2])?, None),
        _ => {
            return Err(err(
                Part::Metric,
                format!("cannot read metric {metric:?}"),
                Some("write <workload>.<op>.<stat> or <workload>.<counter>".into()),
            ))
        }
    };
    let (op, value) = condition_of(metric, condition, &path, kind)?;
    Ok(Threshold {
        metric: metric.to_string(),
        workload: wl.id.clone(),
        path,
        phase,
        op,
        value,
        condition: condition.to_string(),
    })
}

/// `cache.get.p99{after}` → (`cache.get.p99`, the phase).
fn split_phase<'m>(
    metric: &'m str,
    cat: &Catalog,
) -> Result<(&'m str, Option<Phase>), ThresholdError> {
    match metric.split_once('{') {
        Some((m, rest)) => {
            let Some(inner) = rest.strip_suffix('}') else {
                return Err(err(
                    Part::Metric,
                    format!("unclosed phase in {metric:?}"),
                    Some("write metric{before}, metric{during:<fault>} or metric{after}".into()),
                ));
            };
            Ok((m, Some(parse_phase(inner, cat)?)))
        }
        None => Ok((metric, None)),
    }
}

/// The workload a metric's first part names.
fn find_workload<'c>(
    metric: &str,
    id: &str,
    cat: &'c Catalog,
) -> Result<&'c CatalogWorkload, ThresholdError> {
    cat.workloads.iter().find(|w| w.id == id).ok_or_else(|| {
        let ids: Vec<&str> = cat.workloads.iter().map(|w| w.id.as_str()).collect();
        let hint = suggest(id, ids.iter().copied())
            .map(|g| format!("did you mean `{g}`?"))
            .unwrap_or_else(|| format!("workload ids: {}", ids.join(", ")));
        err(
            Part::Metric,
            format!("unknown metric {metric:?}: no workload {id:?}"),
            Some(hint),
        )
    })
}

/// `<workload>.<counter>`: what kind of counter `c` is (errors and error_rate are built in).
fn counter_kind(
    metric: &str,
    wl: &CatalogWorkload,
    c: &str,
) -> Result<CounterKind, ThresholdError> {
    match c {
        "errors" => return Ok(CounterKind::Total),
        "error_rate" => return Ok(CounterKind::Ratio),
        _ => {}
    }
    if let Some((_, k)) = wl.counters.iter().find(|(n, _)| n == c) {
        return Ok(*k);
    }
    let known: Vec<&str> = ["errors", "error_rate"]
        .into_iter()
        .chain(wl.counters.iter().map(|(n, _)| n.as_str()))
        .collect();
    let hint = if wl.ops.iter().any(|o| o == c) {
        format!("`{c}` is an operation: add a stat, e.g. {}.{c}.p99", wl.id)
    } else if let Some(g) = suggest(c, known.iter().copied()) {
        format!("did you mean `{g}`?")
    } else {
        format!(
            "counters of `{}`: {}; or <op>.<stat> with ops {}",
            wl.id,
            known.join(", "),
            wl.ops.join(", ")
        )
    };
    Err(err(
        Part::Metric,
        format!("unknown metric {metric:?}"),
        Some(hint),
    ))
}

/// `<workload>.<op>.<stat>`: the operation must be the workload's (unless its ops are open).
fn op_path(
    metric: &str,
    wl: &CatalogWorkload,
    op: &str,
    stat: &str,
) -> Result<MetricPath, ThresholdError> {
    if !wl.open_ops && !wl.ops.iter().any(|o| o == op) {
        let hint = suggest(op, wl.ops.iter().map(|s| s.as_str()))
            .map(|g| format!("did you mean `{g}`?"))
            .unwrap_or_else(|| format!("operations of `{}`: {}", wl.id, wl.ops.join(", ")));
        return Err(err(
            Part::Metric,
            format!(
                "unknown metric {metric:?}: `{}` has no operation {op:?}",
                wl.id
            ),
            Some(hint),
        ));
    }
    let Some(stat) = Stat::parse(stat) else {
        let hint = suggest(stat, Stat::NAMES.iter().copied())
            .map(|g| format!("did you mean `{g}`?"))
            .unwrap_or_else(|| format!("stats: {}", Stat::NAMES.join(", ")));
        return Err(err(
            Part::Metric,
            format!("unknown statistic {stat:?} in {metric:?}"),
            Some(hint),
        ));
    };
    Ok(MetricPath::Op {
        op: op.to_string(),
        stat,
    })
}

/// The condition, read in the metric's unit: latency, ratio or plain number.
fn condition_of(
    metric: &str,
    condition: &str,
    path: &MetricPath,
    kind: Option<CounterKind>,
) -> Result<(CmpOp, f64), ThresholdError> {
    let is_latency = matches!(path, MetricPath::Op { stat, .. } if stat.is_latency());
    let is_ratio = matches!(
        path,
        MetricPath::Op {
            stat: Stat::ErrorRate,
            ..
        }
    ) || kind == Some(CounterKind::Ratio);
    parse_condition(condition, is_latency, is_ratio).map_err(|e| {
        err(
            Part::Condition,
            format!("bad condition {condition:?} for {metric:?}: {e}"),
            Some(if is_latency {
                "e.g. \"< 5ms\" or \"<= 250us\"".into()
            } else if is_ratio {
                "e.g. \"< 1%\" or \"<= 0.01\"".into()
            } else {
                "e.g. \"== 0\" or \">= 100\"".into()
            }),
        )
    })
}

fn parse_phase(inner: &str, cat: &Catalog) -> Result<Phase, ThresholdError> {
    match inner {
        "before" => Ok(Phase::Before),
        "after" => Ok(Phase::After),
        x if x.starts_with("during:") || x.starts_with("after:") => {
            let (which, sel) = x.split_once(':').expect("checked above");
            sel.parse::<usize>()
                .ok()
                .filter(|i| *i < cat.faults.len())
                .or_else(|| cat.faults.iter().position(|f| f == sel))
                .map(|i| {
                    if which == "during" {
                        Phase::During(i)
                    } else {
                        Phase::AfterFault(i)
                    }
                })
                .ok_or_else(|| {
                    err(
                        Part::Metric,
                        format!("no fault {sel:?} for phase {which}:{sel}"),
                        Some(if cat.faults.is_empty() {
                            "this scenario has no [[fault]]".into()
                        } else {
                            format!("faults: {} (or their 0-based index)", cat.faults.join(", "))
                        }),
                    )
                })
        }
        _ => Err(err(
            Part::Metric,
            format!("unknown phase {{{inner}}}"),
            Some(
                "phases are {before}, {during:<fault name or index>}, {after}, {after:<fault>}"
                    .into(),
            ),
        )),
    }
}

/// `'cache.get.p99 < 5ms'` (a command-line threshold) → (`cache.get.p99`, `< 5ms`).
pub fn split(text: &str) -> Result<(&str, &str), String> {
    let text = text.trim();
    let at = text
        .find(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '=')
        .ok_or_else(|| {
            format!("--threshold {text:?}: write 'METRIC COND', e.g. 'cache.get.p99 < 5ms'")
        })?;
    let (m, c) = text.split_at(at);
    Ok((m.trim(), c.trim()))
}

/// A command-line threshold (`--threshold 'METRIC COND'`), read against `cat`.
pub fn parse_flag(text: &str, cat: &Catalog) -> Result<Threshold, String> {
    let (metric, cond) = split(text)?;
    parse(metric, cond, cat).map_err(|e| {
        format!(
            "--threshold {:?}: {}{}",
            text.trim(),
            e.message,
            e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
        )
    })
}

/// Parse `< 5ms`: latency values in microseconds, ratios as fractions.
pub fn parse_condition(s: &str, latency: bool, ratio: bool) -> Result<(CmpOp, f64), String> {
    let s = s.trim();
    let (op, rest) = [
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("==", CmpOp::Eq),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ]
    .iter()
    .find_map(|(p, op)| s.strip_prefix(p).map(|r| (*op, r.trim())))
    .ok_or("it must start with <, <=, >, >= or ==")?;
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '_'))
        .unwrap_or(rest.len());
    let (num, unit) = rest.split_at(split);
    let n: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{num:?} is not a number"))?;
    let unit = unit.trim();
    let value = match unit {
        "" if latency => return Err("a latency needs a unit (us, ms, s)".into()),
        "" => n,
        "%" if ratio => n / 100.0,
        "ns" if latency => n / 1000.0,
        "us" | "µs" if latency => n,
        "ms" if latency => n * 1000.0,
        "s" if latency => n * 1_000_000.0,
        u => return Err(format!("unit {u:?} does not fit this metric")),
    };
    Ok((op, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog {
            workloads: vec![CatalogWorkload {
                id: "cache".into(),
                ops: vec!["get".into(), "set".into()],
                open_ops: false,
                counters: vec![
                    ("lost".into(), CounterKind::Safety),
                    ("efficiency".into(), CounterKind::Ratio),
                ],
            }],
            faults: vec!["failover".into()],
        }
    }

    #[test]
    fn conditions() {
        assert_eq!(
            parse_condition("<= 250us", true, false).unwrap(),
            (CmpOp::Le, 250.0)
        );
        assert_eq!(
            parse_condition("== 0", false, false).unwrap(),
            (CmpOp::Eq, 0.0)
        );
        assert!(parse_condition("~ 3", false, false).is_err());
        assert!(parse_condition("< 3%", false, false).is_err());
    }

    #[test]
    fn kinds_decide_units_and_phases_resolve() {
        let t = parse("cache.efficiency", "> 90%", &cat()).unwrap();
        assert_eq!(t.value, 0.9);
        let e = parse("cache.lost", "< 1%", &cat()).unwrap_err();
        assert_eq!(e.part, Part::Condition);
        let t = parse("cache.get.p99{during:failover}", "< 5ms", &cat()).unwrap();
        assert_eq!(t.phase, Some(Phase::During(0)));
        assert_eq!(t.value, 5000.0);
        let e = parse("cache.gte.p99", "< 5ms", &cat()).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `get`?"));
        let e = parse_flag("cache.get.p99", &cat()).unwrap_err();
        assert!(e.contains("METRIC COND"), "{e}");
        assert!(parse_flag("cache.get.p99<5ms", &cat()).is_ok());
    }
}
