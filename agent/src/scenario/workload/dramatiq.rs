//! Reads `[workload.dramatiq]`.

use std::time::Duration;

use crate::plan::protocol::ErrorCode;
use crate::plan::*;
use crate::scenario::load::{merge_load, read_load};
use crate::scenario::reader::Obj;

pub fn read(
    w: &Obj,
    k: Option<&Obj>,
    load: Option<LoadModel>,
) -> Option<(DramatiqPlan, LoadModel)> {
    let Some(k) = k else {
        w.missing(
            "dramatiq",
            Some("add a [workload.dramatiq] table (queue, actors, producers, consumers, …)".into()),
        );
        return None;
    };
    let plan = read_plan(k);
    if plan.producers == 0 && plan.consumers == 0 {
        k.ctx.error(
            &k.span,
            "a dramatiq workload needs producers or consumers",
            Some("producers = 0 consumes only, consumers = 0 produces only".into()),
        );
    }
    let kload = read_load(k);
    let load = merge_load(w, load, kload, &k.span)?;
    Some((plan, load))
}

/// Every setting of the table with its default, read in a fixed order: the order of the keys
/// read is the order of the diagnostics.
fn read_plan(k: &Obj) -> DramatiqPlan {
    let (namespace, queue, actors) = read_queue(k);
    let producers = count(k, "producers", 10_000, 1);
    let consumers = count(k, "consumers", 1_000, 1);
    let threads = count(k, "threads", 10_000, 8).max(1);
    let prefetch = count(k, "prefetch", 65_535, threads * 2).max(1);
    let work = k
        .dur_dist("work")
        .unwrap_or(DurDist::Fixed(Duration::from_millis(5)));
    let payload_bytes = k
        .uint("payload_bytes", 16 << 20)
        .map(|v| v.value as usize)
        .unwrap_or(300);
    let delay_fraction = fraction(k, "delay_fraction", 0.0);
    let delay = duration(k, "delay", Duration::from_secs(2));
    let fail_fraction = fraction(k, "fail_fraction", 0.0);
    let max_retries = count(k, "max_retries", 1000, 20);
    let min_backoff = duration(k, "min_backoff", Duration::from_secs(15));
    let max_backoff = duration(k, "max_backoff", Duration::from_secs(7 * 86400));
    let version = match k
        .choice("dramatiq_version", &["1", "2"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("1") => 1,
        _ => 2,
    };
    let drain_timeout = duration(k, "drain_timeout", Duration::from_secs(30));
    let consume_after = duration(k, "consume_after", Duration::ZERO);
    let trace = k.str("trace").map(|s| std::path::PathBuf::from(s.value));
    let shared_queue = k.bool("shared_queue").map(|b| b.value).unwrap_or(false);
    let heartbeat_timeout =
        duration(k, "heartbeat_timeout", Duration::from_secs(60)).max(Duration::from_millis(100));
    let ack_before_work = k
        .choice("ack", &["after-work", "before-work"])
        .is_some_and(|a| a.value == "before-work");
    let maintenance_chance = fraction(k, "maintenance_chance", 0.001);
    let swallow_errors = read_swallow(k);
    DramatiqPlan {
        namespace,
        queue,
        actors,
        producers,
        consumers,
        threads,
        prefetch,
        work,
        payload_bytes,
        delay_fraction,
        delay,
        fail_fraction,
        max_retries,
        min_backoff,
        max_backoff,
        version,
        drain_timeout,
        consume_after,
        trace,
        shared_queue,
        heartbeat_timeout,
        maintenance_chance,
        ack_before_work,
        swallow_errors,
    }
}

/// `swallow_errors`: the error replies a planted-bug client takes for success (those the
/// agent's clients tell apart).
fn read_swallow(k: &Obj) -> Vec<ErrorCode> {
    const CAN: [ErrorCode; 7] = [
        ErrorCode::Loading,
        ErrorCode::ReadOnly,
        ErrorCode::Busy,
        ErrorCode::Oom,
        ErrorCode::NoScript,
        ErrorCode::MasterDown,
        ErrorCode::NoAuth,
    ];
    let Some(l) = k.str_list("swallow_errors") else {
        return vec![];
    };
    let mut out = vec![];
    for name in &l.value {
        match ErrorCode::parse(name).filter(|c| CAN.contains(c)) {
            Some(c) => out.push(c),
            None => k.ctx.error(
                &l.span,
                format!("{name:?} is not an error the client can swallow"),
                Some(format!(
                    "one of: {}",
                    CAN.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
                )),
            ),
        }
    }
    out
}

/// Namespace, queue and actors: where messages go and who handles them.
fn read_queue(k: &Obj) -> (String, String, Vec<String>) {
    let namespace = k
        .str("namespace")
        .map(|s| s.value)
        .unwrap_or_else(|| "dramatiq".into());
    let queue = k
        .str("queue")
        .map(|s| s.value)
        .unwrap_or_else(|| "default".into());
    if queue.ends_with(".DQ") || queue.ends_with(".XQ") || queue.is_empty() {
        k.ctx.error(
            &k.span,
            format!("queue {queue:?} must be a plain queue name (no .DQ/.XQ suffix)"),
            None,
        );
    }
    let actors = k
        .str_list("actors")
        .map(|a| a.value)
        .unwrap_or_else(|| vec!["process_chunk".into()]);
    if actors.is_empty() {
        k.ctx.error(
            &k.span,
            "`actors` is empty",
            Some("name at least one actor, e.g. actors = [\"process_chunk\"]".into()),
        );
    }
    (namespace, queue, actors)
}

/// An unsigned count up to `max`, or `default`.
fn count(k: &Obj, key: &'static str, max: u64, default: u32) -> u32 {
    k.uint(key, max).map(|v| v.value as u32).unwrap_or(default)
}

/// A duration, or `default`.
fn duration(k: &Obj, key: &'static str, default: Duration) -> Duration {
    k.duration(key).map(|d| d.value).unwrap_or(default)
}

/// A fraction in 0..=1, or `default`.
fn fraction(k: &Obj, key: &'static str, default: f64) -> f64 {
    k.fraction(key).map(|v| v.value).unwrap_or(default)
}
