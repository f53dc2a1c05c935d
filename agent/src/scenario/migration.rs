//! Reads `[migration]`.

use crate::plan::migration::{Migration, Mode, Seed, Side};
use crate::scenario::reader::Obj;

fn side(t: &Obj, key: &'static str) -> Side {
    match t.str(key) {
        None => Side::Embedded,
        Some(s) if s.value == "embedded" => Side::Embedded,
        Some(s) => {
            if let Err(e) = crate::valkey::url::TargetUrl::parse(&s.value) {
                t.ctx.error(
                    &s.span,
                    e,
                    Some(format!(
                        "{key} = \"embedded\" (the agent starts it) or a redis:// / rediss:// URL"
                    )),
                );
            }
            Side::Url(s.value)
        }
    }
}

/// Read `[migration]`.
pub fn read(t: &Obj) -> Migration {
    let source = side(t, "source");
    let destination = side(t, "destination");
    let mode = match t
        .choice("mode", &["replicaof", "external"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("external") => Mode::External,
        _ => Mode::ReplicaOf,
    };
    if mode == Mode::External && (source == Side::Embedded || destination == Side::Embedded) {
        t.ctx.error(
            &t.span,
            "mode = \"external\" observes a migration a provider runs between two real servers",
            Some("give source and destination URLs, or use mode = \"replicaof\"".into()),
        );
    }
    let seed = t.table("seed").map(|s| {
        let keys = s
            .uint("keys", 10_000_000)
            .map(|k| k.value as u32)
            .unwrap_or(20_000);
        s.finish();
        Seed { keys }
    });
    let verify = t.bool("verify").map(|b| b.value).unwrap_or(true);
    Migration {
        source,
        destination,
        mode,
        seed,
        verify,
    }
}
