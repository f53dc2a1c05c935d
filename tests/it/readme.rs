//! The README is checked against the code: its complete scenarios compile, every subcommand it
//! names exists, its Quick start commands are cargo aliases of `.cargo/config.toml` that reach the
//! task runner, every `cargo xtask` task and `just` recipe it names exists, and the justfile is
//! one-liners calling the same tasks.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
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
    let complete: Vec<&String> = blocks
        .iter()
        .filter(|b| b.lines().any(|l| l.starts_with("duration =")))
        .collect();
    assert!(!complete.is_empty(), "the README has a complete scenario");
    for b in complete {
        if let Err(d) =
            valkey_chaos::scenario::compile::compile_str(std::path::Path::new("README.md"), b)
        {
            panic!("README scenario does not compile:\n{d}\n---\n{b}");
        }
    }
    // Fragments for each workload type compile inside a minimal scenario.
    for b in blocks.iter().filter(|b| b.starts_with("[workload.")) {
        let kind = b
            .trim_start_matches("[workload.")
            .split(']')
            .next()
            .unwrap();
        let mut b = b.clone();
        if kind == "plugin" {
            b = b.replace("../plugins", "../../plugins");
        }
        let text = format!("duration = \"1s\"\n[[workload]]\nid = \"w\"\ntype = \"{kind}\"\n{b}");
        let file = repo_root().join("scenarios/cutover/readme-fragment.toml");
        if let Err(d) = valkey_chaos::scenario::compile::compile_str(&file, &text) {
            panic!("README fragment [workload.{kind}] does not compile:\n{d}");
        }
    }
}

#[test]
fn readme_commands_exist() {
    let text = readme();
    let mut subs: Vec<String> = text
        .split("valkey-chaos ")
        .skip(1)
        .filter_map(|r| {
            r.split(|c: char| !c.is_ascii_lowercase() && c != '-')
                .next()
        })
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    subs.sort();
    subs.dedup();
    for s in [
        "run", "validate", "up", "plugin", "merge", "compat", "compare", "bench",
    ] {
        assert!(subs.iter().any(|x| x == s), "README does not mention {s}");
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
            "README names `just {w}`, the justfile has {recipes:?}"
        );
    }
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

    // Every `cargo NAME` the README puts in backticks or a shell block is cargo's own command or
    // an alias; every `cargo xtask TASK` is a task.
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
            "README names `cargo {name}`, neither cargo's nor an alias: {aliases:?}"
        );
        let expanded = expand_alias(&aliases, &words[1..]);
        if expanded.starts_with(&XTASK.map(String::from)) && expanded.len() > XTASK.len() {
            let task = expanded
                .get(XTASK.len())
                .filter(|t| !t.starts_with('-'))
                .or_else(|| expanded.get(XTASK.len() + 1))
                .unwrap_or_else(|| panic!("`{m}` names no task"));
            assert!(
                ["TASK", "RECIPE", "help"].contains(&task.as_str()) || tasks.contains(task),
                "README names xtask task {task:?}; the tasks are {tasks:?}"
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
