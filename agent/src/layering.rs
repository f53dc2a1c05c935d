//! The module layering, checked from the source: every `crate::<module>` a file names (in a `use`
//! or a path, outside comments) must be one its layer may import. `cargo xtask lint` runs this test.
//!
//! Read top to bottom: lower layers never import higher ones.
//! - leaves: `rng`, `clock`, `units`, `events` import nothing of the crate;
//! - `plan` is plain data (imports only leaves);
//! - `valkey` speaks RESP and starts servers (imports only leaves);
//! - `scenario` reads and compiles into a plan (no I/O: of `valkey` only the pure `url`);
//! - `metrics`, `summary`, `report`, `export` are data and functions of it (no `run`, `workload`,
//!   `fault`, `scenario`);
//! - `workload`, `fault`, `plugin` act on servers (never `run`);
//! - `run`, `merge`, `compat`, `compare`, `bench`, `cli` sit on top.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each top module may import (besides itself). `valkey::url` stands for that one submodule.
const ALLOWED: &[(&str, &[&str])] = &[
    ("rng", &[]),
    ("clock", &[]),
    ("units", &[]),
    ("events", &[]),
    ("control", &[]),
    ("history", &["clock"]),
    ("check", &["history", "plan"]),
    ("plan", &["rng", "units"]),
    ("valkey", &["rng", "clock", "units"]),
    ("scenario", &["plan", "rng", "units", "valkey::url"]),
    (
        "metrics",
        &["plan", "valkey", "rng", "clock", "units", "events"],
    ),
    (
        "summary",
        &[
            "plan", "metrics", "valkey", "events", "rng", "clock", "units",
        ],
    ),
    (
        "report",
        &["summary", "plan", "metrics", "events", "units", "valkey"],
    ),
    (
        "export",
        &[
            "summary", "plan", "metrics", "events", "units", "valkey", "rng",
        ],
    ),
    (
        "plugin",
        &[
            "metrics", "valkey", "rng", "clock", "units", "plan", "events",
        ],
    ),
    (
        "workload",
        &[
            "plan", "metrics", "valkey", "plugin", "events", "rng", "clock", "units", "control",
            "history", "check",
        ],
    ),
    (
        "fault",
        &[
            "plan", "valkey", "events", "summary", "metrics", "rng", "clock", "units", "control",
        ],
    ),
];

/// Top modules that may import anything below them.
const TOP: &[&str] = &[
    "run", "merge", "compat", "compare", "bench", "cli", "verify",
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::a` or `crate::a::b` named on a code line (comments stripped), with its line.
fn imports(text: &str) -> Vec<(usize, String, Option<String>)> {
    let mut out = vec![];
    let mut in_use_block = false;
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = &tail[name.len()..];
            let sub = after.strip_prefix("::").map(|s| {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            });
            if !name.is_empty() {
                out.push((n + 1, name.clone(), sub));
            }
            rest = &tail[name.len()..];
        }
        // `use super::{…}` and `use crate::{a, b}` blocks spanning lines.
        if code.contains("use crate::{") {
            in_use_block = !code.contains('}');
            for part in code.split("use crate::{").nth(1).unwrap_or("").split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((n + 1, name, None));
                }
            }
        } else if in_use_block {
            for part in code.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((n + 1, name, None));
                }
            }
            if code.contains('}') {
                in_use_block = false;
            }
        }
    }
    out
}

/// The layering violations in the agent's source, as `file:line: a imports b`.
pub fn violations(src: &Path) -> Vec<String> {
    let mut files = vec![];
    rs_files(src, &mut files);
    files.sort();
    let tops: BTreeSet<&str> = ALLOWED
        .iter()
        .map(|a| a.0)
        .chain(TOP.iter().copied())
        .collect();
    let mut out = vec![];
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source file");
        let Some((_, allowed)) = ALLOWED.iter().find(|a| a.0 == module) else {
            assert!(
                tops.contains(module.as_str()),
                "{}: module `{module}` has no layer: add it to layering.rs",
                rel.display()
            );
            continue;
        };
        for (line, name, sub) in imports(&text) {
            if name == module || name == "counters" || !tops.contains(name.as_str()) {
                // Itself, a crate-level macro, or not a module.
                continue;
            }
            let qualified = sub.as_ref().map(|s| format!("{name}::{s}"));
            let ok = allowed.contains(&name.as_str())
                || qualified.as_deref().is_some_and(|q| allowed.contains(&q));
            if !ok {
                out.push(format!(
                    "{}:{line}: `{module}` imports `{}`",
                    rel.display(),
                    qualified.unwrap_or(name)
                ));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let v = violations(&src);
    assert!(v.is_empty(), "layering violations:\n{}", v.join("\n"));
}

#[test]
fn the_checker_sees_a_violation() {
    let dir = std::env::temp_dir().join(format!("vc-layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plan")).unwrap();
    std::fs::write(
        dir.join("plan/mod.rs"),
        "// crate::run in a comment is fine\nuse crate::rng::Rng;\nuse crate::{units, run};\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("scenario.rs"),
        "fn f() { crate::valkey::url::TargetUrl::parse(\"\"); crate::valkey::conn::x(); }\n",
    )
    .unwrap();
    let v = violations(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        v,
        vec![
            "plan/mod.rs:3: `plan` imports `run`".to_string(),
            "scenario.rs:1: `scenario` imports `valkey::conn`".to_string(),
        ]
    );
}
