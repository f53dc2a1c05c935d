//! The README and the reference in `docs/` are checked against the code: their complete scenarios
//! and TOML fragments compile, every subcommand they name exists with the flags they give it, the
//! README's Quick start commands are cargo aliases of `.cargo/config.toml` that reach the task
//! runner, every `cargo xtask` task and `just` recipe they name exists, the justfile is one-liners
//! calling the same tasks, every relative link points at a file (and heading) that exists, and the
//! README fits on a screen or so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// README.md and every `docs/*.md`: (path relative to the repository root, text).
fn documents() -> Vec<(PathBuf, String)> {
    let root = repo_root();
    let mut paths = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("a docs/ folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    docs.sort();
    assert!(docs.len() >= 8, "docs/ has the reference pages: {docs:?}");
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root.join(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// The text outside fenced code blocks, each fenced line replaced by an empty line.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The lines of fenced code blocks.
fn fenced_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = vec![];
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push(line);
        }
    }
    out
}

fn toml_blocks(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => cur = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                out.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn readme_scenarios_compile() {
    let blocks = toml_blocks(&readme());
    let complete: Vec<&String> = blocks.iter().filter(|b| complete_scenario(b)).collect();
    assert!(!complete.is_empty(), "the README has a complete scenario");
    for (path, text) in documents() {
        let doc = path.display();
        for b in toml_blocks(&text) {
            if complete_scenario(&b) {
                if let Err(d) = valkey_chaos::scenario::compile::compile_str(&path, &b) {
                    panic!("{doc}: scenario does not compile:\n{d}\n---\n{b}");
                }
            } else if b.starts_with("[workload.") {
                // Fragments for each workload type compile inside a minimal scenario.
                compile_workload_fragment(&doc.to_string(), &b);
            } else {
                // Any other block ([[workload]], [[fault]], [migration], …) compiles after a
                // minimal scenario long enough for its timeline.
                let text = format!(
                    "duration = \"10m\"\n[[workload]]\nid = \"w\"\ntype = \"commands\"\n{b}"
                );
                let file = repo_root().join("scenarios/cutover/readme-fragment.toml");
                if let Err(d) = valkey_chaos::scenario::compile::compile_str(&file, &text) {
                    panic!(
                        "{doc}: TOML block does not compile in a minimal scenario:\n{d}\n---\n{b}"
                    );
                }
            }
        }
    }
}

/// A whole scenario: its top level (before the first table) sets `duration`; a `[[fault]]` block
/// that sets its own `duration` is a fragment.
fn complete_scenario(b: &str) -> bool {
    b.lines()
        .take_while(|l| !l.starts_with('['))
        .any(|l| l.starts_with("duration ="))
}

/// A `[workload.<kind>]` fragment inside a minimal scenario with one workload of that kind.
fn compile_workload_fragment(doc: &str, b: &str) {
    let kind = b
        .trim_start_matches("[workload.")
        .split(']')
        .next()
        .unwrap();
    let mut b = b.to_string();
    if kind == "plugin" {
        b = b.replace("../plugins", "../../plugins");
    }
    let text = format!("duration = \"1s\"\n[[workload]]\nid = \"w\"\ntype = \"{kind}\"\n{b}");
    let file = repo_root().join("scenarios/cutover/readme-fragment.toml");
    if let Err(d) = valkey_chaos::scenario::compile::compile_str(&file, &text) {
        panic!("{doc}: fragment [workload.{kind}] does not compile:\n{d}");
    }
}

/// The first lowercase word of each `valkey-chaos WORD` in `text`.
fn subcommands(text: &str) -> Vec<String> {
    text.split("valkey-chaos ")
        .skip(1)
        .filter_map(|r| {
            r.split(|c: char| !c.is_ascii_lowercase() && c != '-')
                .next()
        })
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_commands_exist() {
    let text = readme();
    let mut subs = subcommands(&text);
    for (_, doc) in documents() {
        subs.extend(subcommands(&doc));
    }
    subs.sort();
    subs.dedup();
    let in_readme = subcommands(&text);
    for s in [
        "run", "validate", "up", "plugin", "merge", "compat", "compare", "bench", "verify", "lag",
    ] {
        assert!(
            in_readme.iter().any(|x| x == s),
            "README does not mention {s}"
        );
    }
    for s in &subs {
        let o = agent(&[s.as_str(), "--help"], Duration::from_secs(20));
        assert_eq!(
            o.status.code(),
            Some(0),
            "`valkey-chaos {s} --help`: {}",
            show(&o)
        );
    }
    let just = std::fs::read_to_string(repo_root().join("justfile")).unwrap();
    let recipes: Vec<&str> = just
        .lines()
        .filter_map(|l| {
            l.split([' ', ':']).next().filter(|w| {
                !w.is_empty()
                    && !l.starts_with(' ')
                    && !l.starts_with('#')
                    && l.contains(':')
                    && !l.starts_with("set ")
                    && !l.starts_with("export")
            })
        })
        .collect();
    for (path, text) in documents() {
        for w in text
            .split("just ")
            .skip(1)
            .filter_map(|r| {
                r.split(|c: char| !c.is_ascii_lowercase() && c != '-')
                    .next()
            })
            .filter(|w| !w.is_empty())
        {
            assert!(
                recipes.contains(&w),
                "{} names `just {w}`, the justfile has {recipes:?}",
                path.display()
            );
        }
    }
}

/// Every command line the documents give: inline code spans and the lines of fenced blocks
/// (a shell prompt `$ ` and a trailing `# comment` dropped).
fn code_lines(text: &str) -> Vec<String> {
    let inline = prose(text)
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>();
    let fenced = fenced_lines(text).into_iter().map(|l| {
        let l = l.trim().trim_start_matches("$ ");
        l.split(" #").next().unwrap_or(l).trim().to_string()
    });
    inline.into_iter().chain(fenced).collect()
}

/// The `--long` flags in a command line (`[--out DIR]`, `--rate=0` and `--quiet]` included).
fn flags(line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|w| w.trim_start_matches(['[', '(']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .next()
                .unwrap_or(w)
                .to_string()
        })
        .filter(|f| f.len() > 2)
        .collect()
}

#[test]
fn documented_flags_exist() {
    // `--help` of each subcommand, asked once.
    let mut help: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut checked = 0;
    for (path, text) in documents() {
        for line in code_lines(&text) {
            let Some(rest) = line.strip_prefix("valkey-chaos ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let Some(sub) = words
                .first()
                .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            else {
                continue; // `valkey-chaos COMMAND --help`
            };
            let mut command = vec![sub.to_string()];
            if *sub == "plugin" {
                command.extend(words.get(1).map(|w| w.to_string()));
            }
            let text = help.entry(command.clone()).or_insert_with(|| {
                let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
                args.push("--help");
                let o = agent(&args, Duration::from_secs(20));
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "`valkey-chaos {}`: {}",
                    args.join(" "),
                    show(&o)
                );
                String::from_utf8_lossy(&o.stdout).into_owned()
            });
            for flag in flags(rest) {
                let known = text
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                    .any(|w| w == flag);
                assert!(
                    known,
                    "{}: `valkey-chaos {}` has no flag {flag} (in `{line}`):\n{text}",
                    path.display(),
                    command.join(" ")
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} flags found in the documents");
}

/// The `[alias]` table of `.cargo/config.toml`.
fn cargo_aliases() -> BTreeMap<String, String> {
    let path = repo_root().join(".cargo/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config["alias"]
        .as_table()
        .expect("[alias] is a table")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string alias").to_string()))
        .collect()
}

/// `cargo NAME ARGS…` with aliases expanded as cargo does (recursively, first word only).
fn expand_alias(aliases: &BTreeMap<String, String>, command: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = command.iter().map(|w| w.to_string()).collect();
    for _ in 0..8 {
        let Some(alias) = aliases.get(&words[0]) else {
            return words;
        };
        let rest = words.split_off(1);
        words = alias.split_whitespace().map(str::to_string).collect();
        words.extend(rest);
    }
    panic!("alias loop expanding {command:?}: {aliases:?}");
}

/// The task runner's tasks, from the binary itself.
pub fn xtask_tasks() -> Vec<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--list")
        .output()
        .expect("run xtask --list");
    assert!(o.status.success(), "{}", show(&o));
    let tasks: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(tasks.len() >= 10, "{tasks:?}");
    tasks
}

/// What `cargo xtask` must expand to: `cargo run` of the std-only binary of tests/.
const XTASK: [&str; 7] = [
    "run",
    "-q",
    "-p",
    "valkey-chaos-tests",
    "--bin",
    "xtask",
    "--",
];

#[test]
fn quick_start_commands_are_cargo_aliases_of_the_task_runner() {
    let text = readme();
    let section = text
        .split("\n## Quick start\n")
        .nth(1)
        .expect("a Quick start section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block in the Quick start");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["cargo chaos", "cargo suite"], "{block}");

    let aliases = cargo_aliases();
    let tasks = xtask_tasks();
    for (command, task) in commands.iter().zip(["chaos", "test"]) {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        assert!(
            aliases.contains_key(words[0]),
            "`{command}` is not an alias in .cargo/config.toml: {aliases:?}"
        );
        let expanded = expand_alias(&aliases, &words);
        let mut want: Vec<String> = XTASK.iter().map(|w| w.to_string()).collect();
        want.push(task.to_string());
        assert_eq!(expanded, want, "`{command}` expands to {expanded:?}");
        assert!(tasks.iter().any(|t| t == task), "{tasks:?}");
    }

    for (path, text) in documents() {
        cargo_mentions_exist(&path, &text, &aliases, &tasks);
    }
}

/// Every `cargo NAME` a document puts in backticks or a shell block is cargo's own command or an
/// alias; every `cargo xtask TASK` is a task.
fn cargo_mentions_exist(
    path: &Path,
    text: &str,
    aliases: &BTreeMap<String, String>,
    tasks: &[String],
) {
    let doc = path.display();
    let builtin = ["build", "clippy", "fmt", "install", "run", "test"];
    let shell_lines = text
        .lines()
        .filter(|l| l.starts_with("cargo "))
        .map(|l| format!("`{l}"));
    let mentions: Vec<String> = text
        .split("`cargo ")
        .skip(1)
        .map(|r| format!("`cargo {r}"))
        .chain(shell_lines)
        .collect();
    for m in &mentions {
        let words: Vec<&str> = m
            .trim_start_matches('`')
            .split(['`', '\n'])
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let name = words[1];
        assert!(
            builtin.contains(&name) || aliases.contains_key(name),
            "{doc} names `cargo {name}`, neither cargo's nor an alias: {aliases:?}"
        );
        let expanded = expand_alias(aliases, &words[1..]);
        if expanded.starts_with(&XTASK.map(String::from)) && expanded.len() > XTASK.len() {
            let task = expanded
                .get(XTASK.len())
                .filter(|t| !t.starts_with('-'))
                .or_else(|| expanded.get(XTASK.len() + 1))
                .unwrap_or_else(|| panic!("`{m}` names no task"));
            assert!(
                ["TASK", "RECIPE", "help"].contains(&task.as_str()) || tasks.contains(task),
                "{doc} names xtask task {task:?}; the tasks are {tasks:?}"
            );
        }
    }
}

#[test]
fn justfile_recipes_call_the_same_xtask_tasks() {
    let just = std::fs::read_to_string(repo_root().join("justfile")).unwrap();
    let tasks = xtask_tasks();
    let mut recipes = vec![];
    let mut lines = just.lines().peekable();
    while let Some(l) = lines.next() {
        let header = !l.is_empty() && !l.starts_with([' ', '#']) && l.ends_with(':');
        if !header {
            continue;
        }
        let name = l.split([' ', ':']).next().unwrap();
        let mut body = vec![];
        while let Some(b) = lines.next_if(|b| b.starts_with("    ")) {
            body.push(b.trim());
        }
        if name == "default" {
            continue;
        }
        let one_liner = [
            format!("cargo xtask {name}"),
            format!("cargo xtask {name} \"$@\""),
        ];
        assert!(
            body.len() == 1 && one_liner.contains(&body[0].to_string()),
            "recipe {name} should be the one line `cargo xtask {name}`: {body:?}"
        );
        recipes.push(name.to_string());
    }
    recipes.sort();
    let mut tasks = tasks;
    tasks.sort();
    assert_eq!(recipes, tasks, "every task has a recipe, and no more");
}

/// The README stays an overview that fits on a screen or so; the reference lives in docs/.
#[test]
fn readme_is_short() {
    let lines = readme().lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines (at most 250): move reference material to docs/"
    );
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped (`_` and `-` kept), spaces as
/// hyphens; a repeated heading gets `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose(text).lines() {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let Some(title) = line[hashes..]
            .strip_prefix(' ')
            .filter(|_| (1..=6).contains(&hashes))
        else {
            continue;
        };
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` outside code.
fn link_targets(text: &str) -> Vec<String> {
    let prose = prose(text);
    let outside_code: Vec<&str> = prose.split('`').step_by(2).collect();
    let mut out = vec![];
    for part in outside_code {
        for r in part.split("](").skip(1) {
            if let Some(target) = r.split(')').next() {
                out.push(target.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn relative_links_resolve() {
    let root = repo_root();
    let mut checked = 0;
    for (path, text) in documents() {
        let doc = path.display();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let resolved = if file.is_empty() {
                root.join(&path)
            } else {
                root.join(path.parent().unwrap_or(Path::new(""))).join(file)
            };
            assert!(
                resolved.exists(),
                "{doc}: the link ({target}) points at {}, which does not exist",
                resolved.display()
            );
            if !anchor.is_empty() {
                assert!(
                    resolved.extension().is_some_and(|x| x == "md"),
                    "{doc}: the link ({target}) has an anchor into a file that is not markdown"
                );
                let headings = anchors(&std::fs::read_to_string(&resolved).unwrap());
                assert!(
                    headings.contains(anchor),
                    "{doc}: the link ({target}) names no heading of {}; its anchors are {headings:?}",
                    resolved.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} relative links found");
}

#[test]
fn anchors_are_githubs() {
    let text = "# valkey-chaos\n```sh\n# a comment\n```\n## `compat` — what ECHO's clients rely on, on a managed Valkey\n### `type = \"rate_limit\"`\n## Set-up\n## Set-up\n";
    let want: BTreeSet<String> = [
        "valkey-chaos",
        "compat--what-echos-clients-rely-on-on-a-managed-valkey",
        "type--rate_limit",
        "set-up",
        "set-up-1",
    ]
    .map(String::from)
    .into();
    assert_eq!(anchors(text), want);
}
