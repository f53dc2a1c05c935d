//! The load model as written: `rate_per_sec`, `stages` and `clients`, at workload level or in the
//! kind's table (not both).

use toml::de::DeValue;

use crate::plan::{LoadModel, RateSchedule};
use crate::scenario::reader::Obj;

/// Read `rate_per_sec` / `stages` from `obj` (a workload or its kind table). `Some(Closed)` when absent.
pub fn read_load(obj: &Obj) -> Option<LoadModel> {
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

/// Read `clients` from the kind table or the workload (not both).
pub fn clients_of(w: &Obj, k: Option<&Obj>, at_workload: Option<u32>, default: u32) -> u32 {
    let in_kind = k
        .and_then(|k| k.uint("clients", 100_000))
        .map(|c| c.value as u32);
    match (at_workload, in_kind) {
        (Some(_), Some(_)) => {
            w.ctx.error(
                &w.span,
                "`clients` is set both on the workload and in its type table",
                Some("set it once".into()),
            );
            default
        }
        (Some(c), None) | (None, Some(c)) => c.max(1),
        (None, None) => default,
    }
}
