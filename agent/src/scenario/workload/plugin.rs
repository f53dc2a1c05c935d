//! Reads `[workload.plugin]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plan::*;
use crate::scenario::load::clients_of;
use crate::scenario::reader::{scalar_to_string, Obj};

pub fn read(
    w: &Obj,
    k: Option<&Obj>,
    clients: Option<u32>,
    file: &Path,
) -> Option<(PluginPlan, u32)> {
    let Some(k) = k else {
        w.missing(
            "plugin",
            Some("add a [workload.plugin] table with path = \"….wasm\"".into()),
        );
        return None;
    };
    let path = k.req_str(
        "path",
        "path = \"plugins/target/wasm32-wasip2/release/hello.wasm\"",
    );
    let vus = k.uint("vus", 100_000).map(|v| v.value as u32);
    let clients = match (vus, clients) {
        (Some(v), None) => v.max(1),
        _ => clients_of(w, None, clients, 1),
    };
    let mut params = vec![];
    if let Some(t) = k.table("params") {
        for (name, v) in t.entries() {
            match scalar_to_string(v.get_ref()) {
                Some(s) => params.push((name.value, s)),
                None => t.ctx.error(
                    &v.span(),
                    format!(
                        "plugin parameter {:?} must be a string, number or boolean",
                        name.value
                    ),
                    Some("params are passed to setup() as strings".into()),
                ),
            }
        }
    }
    let budget = k
        .duration("budget")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(1));
    let memory = match k.str("memory") {
        Some(m) => match crate::units::parse_bytes(&m.value) {
            Some(b) if b >= 1 << 20 => b,
            _ => {
                k.ctx.error(
                    &m.span,
                    format!("memory {:?} is not a size of at least 1mb", m.value),
                    Some("e.g. memory = \"64mb\"".into()),
                );
                64 << 20
            }
        },
        None => 64 << 20,
    };
    let replace_on_trap = k
        .choice("on_trap", &["replace", "stop"])
        .map(|s| s.value == "replace")
        .unwrap_or(true);
    let max_restarts = k
        .uint("max_restarts", 1_000_000)
        .map(|v| v.value as u32)
        .unwrap_or(10);
    let path = path?.value;
    // Relative paths: from the scenario file's directory, else from the working directory.
    let p = PathBuf::from(&path);
    let path = match file.parent().map(|d| d.join(&p)) {
        Some(q) if !p.is_absolute() && q.exists() => q,
        _ => p,
    };
    Some((
        PluginPlan {
            path,
            params,
            budget,
            memory,
            replace_on_trap,
            max_restarts,
        },
        clients,
    ))
}
