//! Reads `[migration]`.

use std::time::Duration;

use crate::plan::migration::{Migration, Mode, Seed, Side, Step, StepPoint};
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
    let steps = t.tables("step").into_iter().filter_map(read_step).collect();
    Migration {
        source,
        destination,
        mode,
        seed,
        verify,
        steps,
    }
}

/// One `[[migration.step]]`: `at`, `command` (a string for `sh -c`, or an argv array), `timeout`.
fn read_step(s: Obj) -> Option<Step> {
    let at = s
        .choice("at", StepPoint::NAMES)
        .and_then(|a| StepPoint::parse(&a.value));
    if at.is_none() && !s.has("at") {
        s.missing(
            "at",
            Some(format!("one of: {}", StepPoint::NAMES.join(", "))),
        );
    }
    let command = match s.raw("command").map(|v| v.get_ref()) {
        Some(toml::de::DeValue::String(c)) => Some(vec!["sh".into(), "-c".into(), c.to_string()]),
        Some(_) => s.str_list("command").map(|l| l.value),
        None => {
            s.missing(
                "command",
                Some("command = \"doctl databases migration stop …\" (run by sh -c), or an argv array".into()),
            );
            None
        }
    };
    let timeout = s
        .duration("timeout")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(120));
    s.finish();
    let command = command.filter(|c| !c.is_empty())?;
    Some(Step {
        at: at?,
        command,
        timeout,
    })
}
