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
//!
//! The same source check keeps functions short: no function outside `#[cfg(test)]` code is longer
//! than [`MAX_FN_LINES`] (see [`long_functions`]).

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
    "run", "merge", "compat", "compare", "bench", "cli", "verify", "headroom", "drain",
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

/// The longest a function in the agent's source (outside `#[cfg(test)]` code) may be, counted
/// from its `fn` line to its closing brace: a longer one is split into named pieces.
pub const MAX_FN_LINES: usize = 120;

/// A function longer than the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongFn {
    /// The file, relative to `src`, with `/` separators.
    pub file: String,
    /// 1-based line of the `fn`.
    pub line: usize,
    pub name: String,
    pub lines: usize,
}

impl std::fmt::Display for LongFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} fn {} ({} lines)",
            self.file, self.line, self.name, self.lines
        )
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The name of the function a line starts, if it does: `[pub[(…)]] [const] [async] [unsafe]
/// [extern "…"] fn name`.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    if let Some(r) = rest.strip_prefix("pub") {
        rest = match r.strip_prefix('(') {
            Some(r) => r.split_once(')')?.1,
            None => r,
        }
        .trim_start();
    }
    for q in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(q).unwrap_or(rest).trim_start();
    }
    if let Some(r) = rest.strip_prefix("extern ") {
        let r = r.trim_start();
        rest = match r.strip_prefix('"') {
            Some(r) => r.split_once('"')?.1.trim_start(),
            None => r,
        };
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|n| !n.is_empty())
}

/// The line (index) that closes the item opened at `start`: the first line after it at the same
/// indentation that starts with `}` (rustfmt's layout). `None` for an item that ends with `;`
/// before any body opens (a declaration), or when no such line follows.
fn item_end(lines: &[&str], start: usize) -> Option<usize> {
    let ind = indent(lines[start]);
    let mut j = start;
    loop {
        let t = lines.get(j)?.split("//").next().unwrap_or("").trim_end();
        if t.ends_with('{') {
            break;
        }
        if t.ends_with(';') {
            return None;
        }
        // A body on the signature's last line: `fn f() {}`.
        if t.ends_with('}') && t.contains('{') {
            return Some(j);
        }
        j += 1;
    }
    (j + 1..lines.len())
        .find(|&k| indent(lines[k]) == ind && lines[k].trim_start().starts_with('}'))
}

/// Every function longer than `max` lines in one file's text, outside `#[cfg(test)]` items, as
/// `(line, name, length)`.
fn long_fns_in(text: &str, max: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("#[cfg(test)]") {
            // Skip the item the attribute is on (after any further attributes).
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            i = match (j < lines.len()).then(|| item_end(&lines, j)) {
                Some(Some(end)) => end + 1,
                _ => j + 1,
            };
            continue;
        }
        if let Some(name) = fn_name(lines[i]) {
            if let Some(end) = item_end(&lines, i) {
                let n = end - i + 1;
                if n > max {
                    out.push((i + 1, name.to_string(), n));
                }
            }
        }
        i += 1;
    }
    out
}

/// Every function in the agent's source longer than `max` lines (`layering.rs`, test-only, is
/// not looked at), in file order.
pub fn long_functions(src: &Path, max: usize) -> Vec<LongFn> {
    let mut files = vec![];
    rs_files(src, &mut files);
    files.sort();
    let mut out = vec![];
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let file = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if file == "layering.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source file");
        for (line, name, lines) in long_fns_in(&text, max) {
            out.push(LongFn {
                file: file.clone(),
                line,
                name,
                lines,
            });
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

#[test]
fn functions_are_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let offenders: Vec<String> = long_functions(&src, MAX_FN_LINES)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "functions longer than {MAX_FN_LINES} lines (split them into named pieces):\n{}",
        offenders.join("\n")
    );
}

/// Inside a folder, arrows point one way: no file reaches back to itself through the files it
/// imports — siblings (`super::sibling::…`), or the folder's `mod.rs` (`super::Item`, which
/// points at every child `mod.rs` names outside its `mod` declarations). A type both sides need
/// goes into a leaf file of its own. Returns each loop as text.
pub fn folder_breaks(src: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        // Node 0 is the folder's mod.rs; then its children (files, and folders with a mod.rs).
        let mut nodes: Vec<(String, PathBuf)> = vec![("mod".into(), dir.join("mod.rs"))];
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p.clone());
                if p.join("mod.rs").exists() {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    nodes.push((name, p.join("mod.rs")));
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let n = p.file_stem().unwrap().to_string_lossy().into_owned();
                if n != "mod" {
                    nodes.push((n, p));
                }
            }
        }
        if dir == src || !dir.join("mod.rs").exists() {
            continue;
        }
        nodes[1..].sort();
        let index = |n: &str| nodes.iter().position(|x| x.0 == n && x.0 != "mod");
        let mut edges: Vec<(usize, usize)> = vec![];
        for (i, (_, path)) in nodes.iter().enumerate() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let named = if i == 0 {
                child_paths(&text)
            } else {
                super_paths(&text)
            };
            for (_, target) in named {
                let j = match (i, index(&target)) {
                    (0, Some(j)) => j,
                    (0, None) => continue,
                    (_, Some(j)) => j,
                    (_, None) => 0,
                };
                if j != i && !edges.contains(&(i, j)) {
                    edges.push((i, j));
                }
            }
        }
        let rel = dir.strip_prefix(src).unwrap_or(&dir).display().to_string();
        let mut loops: BTreeSet<Vec<usize>> = BTreeSet::new();
        for start in 0..nodes.len() {
            if let Some(mut path) = loop_from(start, &edges) {
                // One loop, whichever file it is seen from: start it at its first node.
                path.pop();
                let k = (0..path.len()).min_by_key(|k| path[*k]).unwrap_or(0);
                path.rotate_left(k);
                path.push(path[0]);
                loops.insert(path);
            }
        }
        for path in loops {
            {
                let names: Vec<&str> = path.iter().map(|n| nodes[*n].0.as_str()).collect();
                out.push(format!(
                    "{rel}/: a loop: {} (move what both need into a leaf file)",
                    names.join(" → ")
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The shortest path of `edges` from `start` back to it, if any (breadth first).
fn loop_from(start: usize, edges: &[(usize, usize)]) -> Option<Vec<usize>> {
    let mut prev: std::collections::HashMap<usize, usize> = Default::default();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &(_, m) in edges.iter().filter(|e| e.0 == n) {
            if m == start {
                let mut path = vec![start, n];
                let mut cur = n;
                while let Some(&p) = prev.get(&cur) {
                    path.insert(1, p);
                    cur = p;
                }
                path.dedup();
                path.push(start);
                return Some(path);
            }
            if m != start && !prev.contains_key(&m) {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

/// Every `child::…` a folder's `mod.rs` names on a non-test code line (its `mod child;`
/// declarations are not imports), with its line.
fn child_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    for (n, line) in non_test_lines(text) {
        let code = line.split("//").next().unwrap_or("").trim_start();
        if code.starts_with("pub mod ")
            || code.starts_with("mod ")
            || code.starts_with("pub(crate) mod ")
        {
            continue;
        }
        // A word that starts a path (`child::…`, not `x::child::…` nor `child: T`).
        let b = code.as_bytes();
        let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut i = 0;
        while i < b.len() {
            if is_word(b[i]) && (i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b':')) {
                let start = i;
                while i < b.len() && is_word(b[i]) {
                    i += 1;
                }
                if code[i..].starts_with("::") {
                    out.push((n, code[start..i].to_string()));
                }
            } else {
                i += 1;
            }
        }
    }
    out
}

/// The lines of a file outside its `#[cfg(test)]` items, 1-based.
fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            i = match (j < lines.len()).then(|| item_end(&lines, j)) {
                Some(Some(end)) => end + 1,
                _ => j + 1,
            };
            continue;
        }
        out.push((i + 1, lines[i]));
        i += 1;
    }
    out
}

/// Every `super::name` on a non-test code line of a file, with its line (inside a `use super::{…}`
/// block too); `super::super::…` is not looked at.
fn super_paths(text: &str) -> Vec<(usize, String)> {
    let lines = non_test_lines(text);
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '*')
            .collect()
    };
    let mut out = vec![];
    for (i, (n, line)) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(k) = rest.find("super::") {
            let tail = &rest[k + "super::".len()..];
            if let Some(group) = tail.strip_prefix('{') {
                // `use super::{a, b::c}`, possibly over several lines.
                let mut body = group.to_string();
                let mut j = i;
                while !body.contains('}') && j + 1 < lines.len() {
                    j += 1;
                    body.push_str(lines[j].1);
                }
                for part in body.split('}').next().unwrap_or("").split(',') {
                    let name = ident(part.trim());
                    if !name.is_empty() {
                        out.push((*n, name));
                    }
                }
            } else if !tail.starts_with("super::") {
                let name = ident(tail);
                if !name.is_empty() {
                    out.push((*n, name));
                }
            }
            rest = tail;
        }
    }
    out
}

#[test]
fn no_loops_inside_a_folder() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let breaks = folder_breaks(&src);
    assert!(breaks.is_empty(), "{}", breaks.join("\n"));
}

#[test]
fn the_folder_checker_sees_loops() {
    let dir = std::env::temp_dir().join(format!("vc-folders-{}", std::process::id()));
    let (f, g) = (dir.join("f"), dir.join("g"));
    std::fs::create_dir_all(&f).unwrap();
    std::fs::create_dir_all(&g).unwrap();
    // f: a and b import each other; mod.rs calls c, and c imports mod.rs's Env.
    std::fs::write(
        f.join("mod.rs"),
        "pub mod a;\npub mod b;\npub mod c;\npub struct Env;\nfn go() { c::run() }\n",
    )
    .unwrap();
    std::fs::write(f.join("a.rs"), "use super::b::x;\n").unwrap();
    std::fs::write(f.join("b.rs"), "use super::{a::y};\n").unwrap();
    std::fs::write(
        f.join("c.rs"),
        "use super::Env;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    )
    .unwrap();
    // g: children import mod.rs's types, mod.rs only declares them: no loop.
    std::fs::write(g.join("mod.rs"), "pub mod d;\npub struct Env;\n").unwrap();
    std::fs::write(g.join("d.rs"), "use super::Env;\n").unwrap();
    let v = folder_breaks(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let want = [
        "f/: a loop: a → b → a (move what both need into a leaf file)",
        "f/: a loop: mod → c → mod (move what both need into a leaf file)",
    ];
    assert_eq!(v, want);
}

#[test]
fn the_checker_sees_a_long_function() {
    let body = |n: usize| vec!["    let _ = 1;"; n];
    let mut lines = vec!["pub(crate) async fn planted(", "    a: u32,", ") -> u32 {"];
    lines.extend(body(10));
    lines.extend(["    a", "}", "fn short() {}", "fn decl();", "impl X {"]);
    lines.push("    fn at_limit() {");
    lines.extend(body(8));
    lines.extend([
        "    }",
        "}",
        "#[cfg(test)]",
        "#[allow(unused)]",
        "mod tests {",
    ]);
    lines.push("    fn long_test() {");
    lines.extend(body(30));
    lines.extend(["    }", "}", "/// after the tests", "fn late() {"]);
    lines.extend(body(11));
    lines.push("}");
    let text = lines.join("\n");
    // planted: lines 1..=15; at_limit: 10 lines (not over); long_test: test code; late: lines
    // 67..=79, after the tests.
    assert_eq!(
        long_fns_in(&text, 10),
        vec![(1, "planted".to_string(), 15), (67, "late".to_string(), 13)]
    );
    let dir = std::env::temp_dir().join(format!("vc-fnlen-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/mod.rs"), &text).unwrap();
    let long = long_functions(&dir, 10);
    std::fs::remove_dir_all(&dir).unwrap();
    let shown: Vec<String> = long.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        shown,
        vec![
            "run/mod.rs:1 fn planted (15 lines)".to_string(),
            "run/mod.rs:67 fn late (13 lines)".to_string(),
        ]
    );
}
