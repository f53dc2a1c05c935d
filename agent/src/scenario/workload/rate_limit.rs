//! Reads `[workload.rate_limit]`.

use std::path::PathBuf;
use std::time::Duration;

use crate::plan::*;
use crate::scenario::load::{clients_of, merge_load, read_load};
use crate::scenario::reader::Obj;

pub fn read(
    w: &Obj,
    k: Option<&Obj>,
    clients: Option<u32>,
    load: Option<LoadModel>,
) -> Option<(RateLimitPlan, u32, LoadModel)> {
    let Some(k) = k else {
        w.missing(
            "rate_limit",
            Some("add a [workload.rate_limit] table (limiter, limit, window, …)".into()),
        );
        return None;
    };
    let limiter = match k
        .choice("limiter", Limiter::NAMES)
        .map(|s| s.value)
        .as_deref()
    {
        Some("sliding-log") => Limiter::SlidingLog,
        Some("dramatiq-concurrent") => Limiter::DramatiqConcurrent,
        Some("dramatiq-window") => Limiter::DramatiqWindow,
        Some("dramatiq-bucket") => Limiter::DramatiqBucket,
        Some("check-then-incr") => Limiter::CheckThenIncr,
        _ => Limiter::FixedWindow,
    };
    let limit = k
        .uint("limit", 1 << 40)
        .map(|v| v.value)
        .unwrap_or(100)
        .max(1);
    let window = k
        .duration("window")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(1));
    if limiter == Limiter::DramatiqWindow && window.subsec_nanos() != 0 {
        k.ctx.error(
            &k.span,
            "dramatiq-window counts whole seconds: give `window` in seconds",
            None,
        );
    }
    if window.is_zero() {
        k.ctx.error(&k.span, "`window` must be more than 0s", None);
    }
    let keys = k
        .uint("keys", 1_000_000)
        .map(|v| v.value as u32)
        .unwrap_or(1)
        .max(1);
    let bursts = k.table("bursts").and_then(|b| {
        let every = b.duration("every");
        let size = b.uint("size", 10_000_000);
        b.finish();
        match (every, size) {
            (Some(e), Some(s)) if !e.value.is_zero() => Some((e.value, s.value)),
            _ => {
                w.ctx.error(
                    &k.span,
                    "`bursts` needs every = \"5s\" and size = 1000",
                    None,
                );
                None
            }
        }
    });
    let hold = k
        .dur_dist("hold")
        .unwrap_or(DurDist::Fixed(Duration::from_millis(10)));
    let key_pattern = k.str("key_pattern").map(|s| s.value);
    let trace = k.str("trace").map(|s| PathBuf::from(s.value));
    let clients = clients_of(w, Some(k), clients, 10);
    let kload = read_load(k);
    let load = merge_load(w, load, kload, &k.span)?;
    Some((
        RateLimitPlan {
            limiter,
            limit,
            window,
            keys,
            bursts,
            hold,
            key_pattern,
            trace,
        },
        clients,
        load,
    ))
}
