//! Reads `[workload.commands]`.

use crate::plan::*;
use crate::scenario::reader::Obj;

/// Read `[workload.commands]`.
pub fn read(_w: &Obj, k: Option<&Obj>) -> Option<CommandsPlan> {
    let Some(k) = k else {
        return Some(CommandsPlan {
            mix: vec![(CommandKind::Get, 9), (CommandKind::Set, 1)],
            keys: 10_000,
            value_bytes: 100,
            pipeline: 1,
        });
    };
    let mut mix = vec![];
    let mut ok = true;
    if let Some(m) = k.table("mix") {
        for (name, v) in m.entries() {
            let Some(kind) = CommandKind::parse(&name.value) else {
                let names: Vec<&str> = CommandKind::ALL.iter().map(|c| c.name()).collect();
                let hint = crate::scenario::diag::suggest(&name.value, names.iter().copied())
                    .map(|g| format!("did you mean `{g}`?"))
                    .unwrap_or_else(|| format!("supported: {}", names.join(", ")));
                k.ctx.error(
                    &name.span,
                    format!("unknown command {:?} in `mix`", name.value),
                    Some(hint),
                );
                ok = false;
                continue;
            };
            match crate::scenario::reader::scalar_to_string(v.get_ref())
                .and_then(|s| s.parse::<u32>().ok())
            {
                Some(w) if w > 0 => mix.push((kind, w)),
                _ => {
                    k.ctx.error(
                        &v.span(),
                        format!("the weight of {:?} must be a positive integer", name.value),
                        None,
                    );
                    ok = false;
                }
            }
        }
        if mix.is_empty() && ok {
            k.ctx.error(
                &m.span,
                "`mix` is empty",
                Some("e.g. mix = { get = 9, set = 1 }".into()),
            );
            ok = false;
        }
    } else {
        mix = vec![(CommandKind::Get, 9), (CommandKind::Set, 1)];
    }
    let keys = k
        .uint("keys", 1 << 40)
        .map(|v| v.value)
        .unwrap_or(10_000)
        .max(1);
    let value_bytes = k
        .uint("value_bytes", 512 << 20)
        .map(|v| v.value as usize)
        .unwrap_or(100);
    let pipeline = k
        .uint("pipeline", 10_000)
        .map(|v| v.value as usize)
        .unwrap_or(1)
        .max(1);
    ok.then_some(CommandsPlan {
        mix,
        keys,
        value_bytes,
        pipeline,
    })
}
