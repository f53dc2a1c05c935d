//! The README is checked against the code: its complete scenarios compile, every subcommand it
//! names exists, and every `just` recipe it names is in the justfile.

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
