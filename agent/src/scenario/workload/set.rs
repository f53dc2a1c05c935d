//! Reads `[workload.set]`.

use crate::plan::*;
use crate::scenario::load::{clients_of, merge_load, read_load};
use crate::scenario::reader::Obj;

pub fn read(
    w: &Obj,
    k: Option<&Obj>,
    clients: Option<u32>,
    load: Option<LoadModel>,
) -> Option<(SetPlan, u32, LoadModel)> {
    let (keys, key_pattern, cleanup, clients, kload) = match k {
        Some(k) => (
            k.uint("keys", 1_000_000)
                .map(|v| v.value as u32)
                .unwrap_or(4)
                .max(1),
            k.str("key_pattern").map(|s| s.value),
            k.bool("cleanup").map(|b| b.value).unwrap_or(true),
            clients_of(w, Some(k), clients, 4),
            read_load(k),
        ),
        None => (
            4,
            None,
            true,
            clients_of(w, None, clients, 4),
            Some(LoadModel::Closed),
        ),
    };
    let span = k.map(|k| k.span.clone()).unwrap_or_else(|| w.span.clone());
    let load = merge_load(w, load, kload, &span)?;
    Some((
        SetPlan {
            keys,
            key_pattern,
            cleanup,
        },
        clients,
        load,
    ))
}
