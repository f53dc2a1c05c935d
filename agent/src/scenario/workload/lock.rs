//! Reads `[workload.lock]`.

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
) -> Option<(LockPlan, u32, LoadModel)> {
    let Some(k) = k else {
        w.missing(
            "lock",
            Some("add a [workload.lock] table (style, names, ttl, hold, …)".into()),
        );
        return None;
    };
    let style = match k
        .choice("style", &["redis-py", "set-nx-ex", "setnx-expire"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("set-nx-ex") => LockStyle::SetNxEx,
        Some("setnx-expire") => LockStyle::SetnxExpire,
        _ => LockStyle::RedisPy,
    };
    let clients = clients_of(w, Some(k), clients, 8);
    let names = k
        .uint("names", 1_000_000)
        .map(|v| v.value as u32)
        .unwrap_or(1)
        .max(1);
    let ttl = k
        .duration("ttl")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(10));
    if ttl < Duration::from_millis(1) {
        k.ctx.error(&k.span, "`ttl` must be at least 1ms", None);
    }
    let hold = k
        .dur_dist("hold")
        .unwrap_or(DurDist::Fixed(Duration::from_millis(20)));
    let blocking_timeout = k
        .duration("blocking_timeout")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(5));
    let retry_interval = k
        .duration("retry_interval")
        .map(|d| d.value)
        .unwrap_or(Duration::from_millis(100))
        .max(Duration::from_millis(1));
    let extend_every = k
        .duration("extend_every")
        .map(|d| d.value)
        .filter(|d| !d.is_zero());
    let fencing = k.bool("fencing").map(|b| b.value).unwrap_or(false);
    let think = k
        .duration("think")
        .map(|d| d.value)
        .unwrap_or(Duration::ZERO);
    let trace = k.str("trace").map(|s| PathBuf::from(s.value));
    let key_pattern = k.str("key_pattern").map(|s| s.value);
    let kload = read_load(k);
    let load = merge_load(w, load, kload, &k.span)?;
    Some((
        LockPlan {
            style,
            names,
            ttl,
            hold,
            blocking_timeout,
            retry_interval,
            extend_every,
            fencing,
            think,
            trace,
            key_pattern,
        },
        clients,
        load,
    ))
}
