//! Scenario file → [`Plan`]: resolve defaults and cross-references, report every problem at once.
//! Never touches the network.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::diag::{suggest, Diagnostics, Source};
use super::reader::{At, Ctx, Obj};
use crate::fault::FaultPlan;
use crate::plan::*;
use crate::valkey::embedded::TopologySpec;
use crate::workload;

const TYPES: &[&str] = &["commands", "dramatiq", "lock", "rate_limit", "plugin"];

/// Compile one scenario text. `file` is used for messages and to resolve relative plugin paths.
pub fn compile_str(file: &Path, text: &str) -> Result<Plan, Diagnostics> {
    let src = Source { file, text };
    let (doc, parse_errors) = DeTable::parse_recoverable(text);
    if !parse_errors.is_empty() {
        let diags = parse_errors
            .iter()
            .map(|e| {
                let off = e.span().map(|s| s.start).unwrap_or(0);
                src.diag(
                    off,
                    format!("TOML syntax: {}", e.message().trim()),
                    Some("fix the TOML syntax first".into()),
                )
            })
            .collect();
        return Err(Diagnostics(diags));
    }
    let ctx = Ctx::new(src);
    let root = Obj::new(&ctx, doc.get_ref(), doc.span(), "");
    let plan = compile_root(&root, file);
    root.finish();
    let diags = ctx.diags.into_inner();
    match plan {
        Some(p) if diags.is_empty() => Ok(p),
        _ => Err(Diagnostics(diags)),
    }
}

fn compile_root(root: &Obj, file: &Path) -> Option<Plan> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    let name = root.str("name").map(|s| s.value).unwrap_or(stem);
    let _ = root.str("description");
    let seed = root
        .uint("seed", u64::MAX >> 1)
        .map(|s| s.value)
        .unwrap_or(1);
    let duration = root.duration("duration");
    if duration.is_none() && !root.has("duration") {
        root.missing("duration", Some("add e.g. duration = \"30s\"".into()));
    }
    if let Some(d) = &duration {
        if d.value.is_zero() {
            root.ctx
                .error(&d.span, "`duration` must be more than 0s", None);
        }
    }
    let allow_destructive = root
        .bool("allow_destructive")
        .map(|b| b.value)
        .unwrap_or(false);

    let mut target_url = None;
    let mut key_prefix = "vc:".to_string();
    let mut request_timeout = Duration::from_secs(2);
    if let Some(t) = root.table("target") {
        if let Some(u) = t.str("url") {
            if let Err(e) = crate::valkey::target::TargetUrl::parse(&u.value) {
                t.ctx.error(
                    &u.span,
                    e,
                    Some("write redis://[user:password@]host:port[/db] or rediss://…".into()),
                );
            }
            target_url = Some(u.value);
        }
        if let Some(p) = t.str("key_prefix") {
            key_prefix = p.value;
        }
        if let Some(d) = t.duration("timeout") {
            request_timeout = d.value;
        }
        t.finish();
    }
    let mut topology = TopologySpec::default();
    if let Some(t) = root.table("topology") {
        if let Some(r) = t.uint("replicas", 5) {
            topology.replicas = r.value as u8;
        }
        if let Some(s) = t.uint("sentinels", 5) {
            topology.sentinels = s.value as u8;
        }
        t.finish();
    }

    let mut workloads = vec![];
    let mut ids: HashSet<String> = HashSet::new();
    // Workloads that failed to compile: thresholds on them are not reported again.
    let mut broken: HashSet<String> = HashSet::new();
    let wl_objs = root.tables("workload");
    if wl_objs.is_empty() && !root.has("workload") {
        root.missing(
            "workload",
            Some("add at least one [[workload]] section with an `id` and a `type`".into()),
        );
    }
    for w in wl_objs {
        let wid = w.table_str("id");
        let compiled = compile_workload(&w, file);
        if compiled.is_none() {
            broken.extend(wid);
        }
        if let Some(wp) = compiled {
            if !ids.insert(wp.id.clone()) {
                w.ctx.error(
                    &w.span,
                    format!("duplicate workload id {:?}", wp.id),
                    Some("every [[workload]] needs its own id".into()),
                );
            }
            workloads.push(wp);
        }
        w.finish();
    }

    let mut faults: Vec<FaultPlan> = vec![];
    for f in root.tables("fault") {
        if let Some(fp) = crate::fault::read(&f, faults.len()) {
            faults.push(fp);
        }
        f.finish();
    }
    if let Some(d) = &duration {
        for f in &faults {
            if f.at >= d.value {
                root.ctx.error(
                    &f.span,
                    format!(
                        "fault {:?} starts at {:?}, after the run ends ({:?})",
                        f.name, f.at, d.value
                    ),
                    Some("lower `at` or raise `duration`".into()),
                );
            }
        }
    }
    // Faults that need replicas or sentinels grow the embedded topology.
    let need = crate::fault::topology_needs(&faults);
    topology.replicas = topology.replicas.max(need.replicas);
    topology.sentinels = topology.sentinels.max(need.sentinels);

    let mut thresholds = vec![];
    if let Some(t) = root.table("thresholds") {
        for (k, v) in t.entries() {
            if broken.contains(k.value.split(['.', '{']).next().unwrap_or("")) {
                continue;
            }
            if let Some(th) = compile_threshold(t.ctx, &k, v, &workloads, &faults) {
                thresholds.push(th);
            }
        }
    }

    Some(Plan {
        name,
        source: file.to_path_buf(),
        seed,
        duration: duration?.value,
        target_url,
        key_prefix,
        topology,
        request_timeout,
        workloads,
        faults,
        thresholds,
        allow_destructive,
    })
}

fn compile_workload(w: &Obj, file: &Path) -> Option<WorkloadPlan> {
    let id = w.req_str("id", "give each workload a short id such as id = \"cache\"");
    if let Some(id) = &id {
        let ok = !id.value.is_empty()
            && id
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            w.ctx.error(
                &id.span,
                format!(
                    "workload id {:?} must be lowercase letters, digits, '_' or '-'",
                    id.value
                ),
                Some("ids appear in metric names like <id>.<op>.p99".into()),
            );
        }
    }
    let ty = w.choice("type", TYPES);
    if ty.is_none() && !w.has("type") {
        w.missing("type", Some(format!("one of: {}", TYPES.join(", "))));
    }
    // A table named after another type is a mistake worth naming.
    for other in TYPES {
        if ty.as_ref().is_none_or(|t| t.value == *other) {
            continue;
        }
        if let Some(v) = w.raw(other) {
            let hint = match &ty {
                Some(t) => format!(
                    "this workload has type = \"{}\": put its settings in [workload.{}]",
                    t.value, t.value
                ),
                None => "set `type` to match the table".into(),
            };
            w.ctx.error(
                &v.span(),
                format!("[workload.{other}] does not match the workload's type"),
                Some(hint),
            );
        }
    }
    let clients = w.uint("clients", 100_000).map(|c| c.value as u32);
    let load = read_load(w, None);
    let ty = ty?;
    let kt: &'static str = TYPES.iter().find(|t| **t == ty.value).copied()?;
    let kobj = w.table(kt);
    let (kind, clients, load) = match kt {
        "commands" => {
            let k = kobj.as_ref();
            (
                WorkloadKind::Commands(workload::commands::read(w, k)?),
                clients.unwrap_or(10),
                load?,
            )
        }
        "dramatiq" => {
            let k = kobj.as_ref();
            let (p, load) = workload::dramatiq::read(w, k, load)?;
            let c = p.producers + p.consumers * p.threads;
            (WorkloadKind::Dramatiq(p), c, load)
        }
        "lock" => {
            let k = kobj.as_ref();
            let (p, c, load) = workload::lock::read(w, k, clients, load)?;
            (WorkloadKind::Lock(p), c, load)
        }
        "rate_limit" => {
            let k = kobj.as_ref();
            let (p, c, load) = workload::rate_limit::read(w, k, clients, load)?;
            (WorkloadKind::RateLimit(p), c, load)
        }
        "plugin" => {
            let k = kobj.as_ref();
            let (p, c) = workload::plugin::read(w, k, clients, file)?;
            (WorkloadKind::Plugin(p), c, load?)
        }
        _ => return None,
    };
    if let Some(k) = kobj {
        k.finish();
    }
    Some(WorkloadPlan {
        id: id?.value,
        clients,
        load,
        kind,
    })
}

/// Read `rate_per_sec` / `stages` from `obj` (a workload or its kind table). `Some(Closed)` when absent.
pub fn read_load(obj: &Obj, _fallback: Option<LoadModel>) -> Option<LoadModel> {
    let rate = obj.num("rate_per_sec");
    let stages_v = obj.raw("stages");
    let mut stages = vec![];
    let mut ok = true;
    if let Some(v) = stages_v {
        match v.get_ref() {
            DeValue::Array(arr) => {
                for item in arr.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            let s =
                                Obj::new(obj.ctx, t, item.span(), format!("{}.stages", obj.path));
                            let d = s.duration("duration");
                            let target = s.num("target");
                            if d.is_none() && !s.has("duration") {
                                s.missing(
                                    "duration",
                                    Some(
                                        "each stage is { duration = \"10s\", target = 1000 }"
                                            .into(),
                                    ),
                                );
                            }
                            if target.is_none() && !s.has("target") {
                                s.missing(
                                    "target",
                                    Some(
                                        "each stage is { duration = \"10s\", target = 1000 }"
                                            .into(),
                                    ),
                                );
                            }
                            if let Some(t) = &target {
                                if t.value < 0.0 {
                                    obj.ctx.error(
                                        &t.span,
                                        "a stage target must not be negative",
                                        None,
                                    );
                                }
                            }
                            match (d, target) {
                                (Some(d), Some(t)) if !d.value.is_zero() => {
                                    stages.push((d.value, t.value))
                                }
                                (Some(d), Some(_)) => {
                                    obj.ctx
                                        .error(&d.span, "a stage must last more than 0s", None)
                                }
                                _ => ok = false,
                            }
                            s.finish();
                        }
                        _ => {
                            obj.ctx.error(
                                &item.span(),
                                "each stage must be a table { duration = \"10s\", target = 1000 }",
                                None,
                            );
                            ok = false;
                        }
                    }
                }
            }
            _ => {
                obj.ctx.error(
                    &v.span(),
                    "`stages` must be an array of { duration, target } tables",
                    None,
                );
                ok = false;
            }
        }
    }
    if let Some(r) = &rate {
        if r.value <= 0.0 {
            obj.ctx.error(
                &r.span,
                format!("`rate_per_sec` must be more than 0, got {}", r.value),
                Some("omit it for a closed loop".into()),
            );
            return None;
        }
    }
    if !ok {
        return None;
    }
    Some(match (rate, stages.is_empty()) {
        (None, true) => LoadModel::Closed,
        (Some(r), true) => LoadModel::Open(RateSchedule::constant(r.value)),
        (r, false) => LoadModel::Open(RateSchedule {
            start: r.map(|r| r.value).unwrap_or(0.0),
            stages,
        }),
    })
}

/// Merge the load model given at workload level with one given in the kind's table.
pub fn merge_load(
    w: &Obj,
    at_workload: Option<LoadModel>,
    in_kind: Option<LoadModel>,
    span: &std::ops::Range<usize>,
) -> Option<LoadModel> {
    match (at_workload?, in_kind?) {
        (LoadModel::Closed, k) => Some(k),
        (l, LoadModel::Closed) => Some(l),
        _ => {
            w.ctx.error(
                span,
                "the rate is set both on the workload and in its type table",
                Some("set `rate_per_sec`/`stages` once".into()),
            );
            None
        }
    }
}

fn compile_threshold(
    ctx: &Ctx,
    key: &At<String>,
    v: &toml::Spanned<DeValue>,
    workloads: &[WorkloadPlan],
    faults: &[FaultPlan],
) -> Option<Threshold> {
    let DeValue::String(cond) = v.get_ref() else {
        ctx.error(
            &v.span(),
            format!(
                "threshold {:?} must be a condition string like \"< 5ms\"",
                key.value
            ),
            None,
        );
        return None;
    };
    let (metric_part, phase) = match key.value.split_once('{') {
        Some((m, rest)) => {
            let Some(inner) = rest.strip_suffix('}') else {
                ctx.error(
                    &key.span,
                    format!("unclosed phase in {:?}", key.value),
                    Some("write metric{before}, metric{during:<fault>} or metric{after}".into()),
                );
                return None;
            };
            let phase = match inner {
                "before" => Phase::Before,
                "after" => Phase::After,
                x if x.starts_with("during:") => {
                    let sel = &x["during:".len()..];
                    let idx = sel
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < faults.len())
                        .or_else(|| faults.iter().position(|f| f.name == sel));
                    match idx {
                        Some(i) => Phase::During(i),
                        None => {
                            let names: Vec<&str> = faults.iter().map(|f| f.name.as_str()).collect();
                            ctx.error(
                                &key.span,
                                format!("no fault {sel:?} for phase during:{sel}"),
                                Some(if names.is_empty() {
                                    "this scenario has no [[fault]]".into()
                                } else {
                                    format!("faults: {} (or their 0-based index)", names.join(", "))
                                }),
                            );
                            return None;
                        }
                    }
                }
                _ => {
                    ctx.error(
                        &key.span,
                        format!("unknown phase {{{inner}}}"),
                        Some("phases are {before}, {during:<fault name or index>}, {after}".into()),
                    );
                    return None;
                }
            };
            (m, Some(phase))
        }
        None => (key.value.as_str(), None),
    };
    let parts: Vec<&str> = metric_part.split('.').collect();
    let Some(wl) = workloads.iter().find(|w| w.id == parts[0]) else {
        let ids: Vec<&str> = workloads.iter().map(|w| w.id.as_str()).collect();
        let hint = suggest(parts[0], ids.iter().copied())
            .map(|g| format!("did you mean `{g}`?"))
            .unwrap_or_else(|| format!("workload ids: {}", ids.join(", ")));
        ctx.error(
            &key.span,
            format!("unknown metric {:?}: no workload {:?}", key.value, parts[0]),
            Some(hint),
        );
        return None;
    };
    let path = match parts.len() {
        2 => {
            let c = parts[1];
            let known: Vec<&str> = ["errors", "error_rate"]
                .into_iter()
                .chain(wl.kind.counters().iter().copied())
                .collect();
            if !known.contains(&c) {
                let ops = wl.kind.ops();
                let hint = if ops.iter().any(|o| o == c) {
                    format!("`{c}` is an operation: add a stat, e.g. {}.{c}.p99", wl.id)
                } else {
                    format!(
                        "counters of `{}`: {}; or <op>.<stat> with ops {}",
                        wl.id,
                        known.join(", "),
                        ops.join(", ")
                    )
                };
                ctx.error(
                    &key.span,
                    format!("unknown metric {:?}", key.value),
                    Some(hint),
                );
                return None;
            }
            MetricPath::Counter(c.to_string())
        }
        3 => {
            let (op, stat) = (parts[1], parts[2]);
            let ops = wl.kind.ops();
            if !wl.kind.open_ops() && !ops.iter().any(|o| o == op) {
                let hint = suggest(op, ops.iter().map(|s| s.as_str()))
                    .map(|g| format!("did you mean `{g}`?"))
                    .unwrap_or_else(|| format!("operations of `{}`: {}", wl.id, ops.join(", ")));
                ctx.error(
                    &key.span,
                    format!(
                        "unknown metric {:?}: `{}` has no operation {op:?}",
                        key.value, wl.id
                    ),
                    Some(hint),
                );
                return None;
            }
            let Some(stat) = Stat::parse(stat) else {
                let hint = suggest(stat, Stat::NAMES.iter().copied())
                    .map(|g| format!("did you mean `{g}`?"))
                    .unwrap_or_else(|| format!("stats: {}", Stat::NAMES.join(", ")));
                ctx.error(
                    &key.span,
                    format!("unknown statistic {stat:?} in {:?}", key.value),
                    Some(hint),
                );
                return None;
            };
            MetricPath::Op {
                op: op.to_string(),
                stat,
            }
        }
        _ => {
            ctx.error(
                &key.span,
                format!("cannot read metric {:?}", key.value),
                Some("write <workload>.<op>.<stat> or <workload>.<counter>".into()),
            );
            return None;
        }
    };
    let is_latency = matches!(&path, MetricPath::Op { stat, .. } if stat.is_latency());
    let is_ratio = matches!(
        &path,
        MetricPath::Op {
            stat: Stat::ErrorRate,
            ..
        }
    ) || matches!(&path, MetricPath::Counter(c) if c == "error_rate" || c.ends_with("_rate") || c == "efficiency");
    let (op, value) = match parse_condition(cond, is_latency, is_ratio) {
        Ok(x) => x,
        Err(e) => {
            ctx.error(
                &v.span(),
                format!("bad condition {:?} for {:?}: {e}", cond.as_ref(), key.value),
                Some(if is_latency {
                    "e.g. \"< 5ms\" or \"<= 250us\"".into()
                } else if is_ratio {
                    "e.g. \"< 1%\" or \"<= 0.01\"".into()
                } else {
                    "e.g. \"== 0\" or \">= 100\"".into()
                }),
            );
            return None;
        }
    };
    Some(Threshold {
        metric: key.value.clone(),
        workload: wl.id.clone(),
        path,
        phase,
        op,
        value,
        condition: cond.to_string(),
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

/// A `--threshold 'METRIC COND'` from the command line, compiled against a plan.
pub fn extra_threshold(plan: &Plan, text: &str) -> Result<Threshold, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '=')
        .ok_or_else(|| {
            format!("--threshold {text:?}: write 'METRIC COND', e.g. 'cache.get.p99 < 5ms'")
        })?;
    let (metric, cond) = text.split_at(split);
    let doc = format!("{:?} = {:?}\n", metric.trim(), cond.trim());
    let file = Path::new("--threshold");
    let (table, errs) = DeTable::parse_recoverable(&doc);
    if !errs.is_empty() {
        return Err(format!("--threshold {text:?}: cannot read it"));
    }
    let ctx = Ctx::new(Source { file, text: &doc });
    let mut out = None;
    for (k, v) in table.get_ref().iter() {
        let key = At {
            value: k.get_ref().to_string(),
            span: k.span(),
        };
        out = compile_threshold(&ctx, &key, v, &plan.workloads, &plan.faults);
    }
    let diags = ctx.diags.into_inner();
    match (out, diags.first()) {
        (Some(t), None) => Ok(t),
        (_, Some(d)) => Err(format!(
            "--threshold {text:?}: {}{}",
            d.message,
            d.hint
                .as_ref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        )),
        (None, None) => Err(format!("--threshold {text:?}: cannot read it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match compile_str(Path::new("t.toml"), text) {
            Ok(_) => vec![],
            Err(d) => {
                d.0.iter()
                    .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                    .collect()
            }
        }
    }

    const GOOD: &str = r#"
name = "cache-smoke"
seed = 7
duration = "10s"
[[workload]]
id = "cache"
type = "commands"
clients = 50
rate_per_sec = 20000
[workload.commands]
mix = { get = 9, set = 1 }
keys = 10000
value_bytes = 100
pipeline = 1
[thresholds]
"cache.get.p99" = "< 5ms"
"cache.error_rate" = "< 1%"
"#;

    #[test]
    fn compiles_the_contract_example() {
        let p = compile_str(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(p.name, "cache-smoke");
        assert_eq!(p.seed, 7);
        assert_eq!(p.workloads[0].clients, 50);
        assert_eq!(
            p.workloads[0].load,
            LoadModel::Open(RateSchedule::constant(20000.0))
        );
        assert_eq!(p.thresholds[0].value, 5000.0);
        assert_eq!(p.thresholds[1].value, 0.01);
    }

    #[test]
    fn reports_all_errors_at_once_with_positions() {
        let text = GOOD
            .replace("clients = 50", "clinets = 50")
            .replace("duration = \"10s\"", "duration = \"10 parsecs\"")
            .replace("\"cache.get.p99\"", "\"cache.gte.p99\"")
            .replace("keys = 10000", "keys = -3");
        let e = errs(&text);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e.iter()
                .any(|m| m.starts_with("4:12: `duration` is not a duration")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("8:1: unknown key `workload.clinets`")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("keys") && m.contains("between 0")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.contains("no operation \"gte\"")),
            "{e:#?}"
        );
    }

    #[test]
    fn hints_suggest_the_near_name() {
        let d = compile_str(
            Path::new("t.toml"),
            &GOOD.replace("clients = 50", "clinets = 50"),
        )
        .unwrap_err();
        assert_eq!(d.0[0].hint.as_deref(), Some("did you mean `clients`?"));
    }

    #[test]
    fn bad_rates_and_types() {
        let e = errs(&GOOD.replace("rate_per_sec = 20000", "rate_per_sec = 0"));
        assert!(
            e.iter()
                .any(|m| m.contains("`rate_per_sec` must be more than 0")),
            "{e:#?}"
        );
        let e = errs(&GOOD.replace("type = \"commands\"", "type = \"comands\""));
        assert!(
            e.iter()
                .any(|m| m.contains("unknown `workload.type` \"comands\"")),
            "{e:#?}"
        );
        let e = errs(&GOOD.replace("\"< 5ms\"", "\"< 5\""));
        assert!(e.iter().any(|m| m.contains("needs a unit")), "{e:#?}");
        let e = errs("duration = \"1s\"\n");
        assert!(e.iter().any(|m| m.contains("missing `workload`")), "{e:#?}");
        let e = errs("duration = \"1s\n");
        assert!(e.iter().any(|m| m.contains("TOML syntax")), "{e:#?}");
    }

    #[test]
    fn stages_compile() {
        let p = compile_str(Path::new("t.toml"), &GOOD.replace("rate_per_sec = 20000", "stages = [{ duration = \"10s\", target = 1000 }, { duration = \"20s\", target = 5000 }]")).unwrap();
        let LoadModel::Open(s) = &p.workloads[0].load else {
            panic!()
        };
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.start, 0.0);
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
}
