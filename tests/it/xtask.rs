//! The task runner behind `cargo chaos` / `cargo suite` (tests/xtask/main.rs): what each task runs,
//! in order, with the gate's scenario globs expanded exactly as the shell did; usage errors exit 2.
//! Exit-code pass-through and PATH are unit-tested in the binary itself.

use std::process::{Command, Output};

use crate::support::*;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("CARGO")
        .output()
        .expect("run xtask")
}

/// The steps a dry run prints, one command line each.
fn steps(args: &[&str]) -> Vec<String> {
    let mut a = vec!["--dry-run"];
    a.extend(args);
    let o = xtask(&a);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("xtask: "))
        .map(str::to_string)
        .collect()
}

/// `scenarios/cutover/*.toml` whose names start with one of `prefixes` (all when empty), sorted.
fn cutover(prefixes: &[&str]) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("scenarios/cutover"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") && !n.starts_with('.'))
        .filter(|n| prefixes.is_empty() || prefixes.iter().any(|p| n.starts_with(p)))
        .map(|n| format!("scenarios/cutover/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn chaos_quick_runs_setup_plugins_release_build_then_the_gate_subset() {
    let files = cutover(&["01-", "03-", "04-", "07-"]);
    assert_eq!(files.len(), 4, "{files:?}");
    let got = steps(&["chaos-quick"]);
    assert_eq!(
        got,
        [
            "bash .ci/setup".to_string(),
            "(cd plugins && cargo build --release --target wasm32-wasip2 -q)".into(),
            "cargo build --release -q -p valkey-chaos".into(),
            format!(
                "./target/release/valkey-chaos run {} --duration 15s --out out/chaos-quick",
                files.join(" ")
            ),
        ]
    );
    // The alias's own spelling (`cargo chaos-quick --dry-run`) and a target, as `TARGET=` too.
    let got = steps(&["chaos-quick", "TARGET=rediss://h:6380/?insecure=true"]);
    assert!(
        got[3].ends_with(" --out out/chaos-quick --target 'rediss://h:6380/?insecure=true'"),
        "{got:?}"
    );
}

#[test]
fn chaos_runs_every_cutover_scenario_with_a_target_and_extra_arguments() {
    let files = cutover(&[]);
    assert!(files.len() >= 7, "{files:?}");
    // Against a target, the managed versions replace the scenarios that need the server.
    let managed: Vec<String> = files
        .iter()
        .map(|f| {
            let m = f.replace("scenarios/cutover/", "scenarios/cutover/managed/");
            if repo_root().join(&m).is_file() {
                m
            } else {
                f.clone()
            }
        })
        .collect();
    let replaced = managed.iter().filter(|m| m.contains("/managed/")).count();
    assert_eq!(replaced, 3, "{managed:?}");
    let got = steps(&["chaos", "redis://127.0.0.1:1", "--", "--seed", "5"]);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got[3],
        format!(
            "./target/release/valkey-chaos run {} --out out/chaos --target redis://127.0.0.1:1 --seed 5",
            managed.join(" ")
        )
    );
    let o = xtask(&["--dry-run", "chaos", "redis://127.0.0.1:1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "chaos: scenarios/cutover/managed/03-failover-under-load.toml runs in place of \
             scenarios/cutover/03-failover-under-load.toml"
        ),
        "{err}"
    );
    // Without a target the gate is the embedded one, whole.
    let got = steps(&["chaos"]);
    assert!(got[3].contains(&files.join(" ")), "{got:?}");
}

#[test]
fn test_and_ci_run_setup_once_and_pass_filters_to_the_harness() {
    let got = steps(&["test", "--", "shard::"]);
    assert_eq!(
        got,
        [
            "bash .ci/setup",
            "(cd plugins && cargo build --release --target wasm32-wasip2 -q)",
            "cargo build -p valkey-chaos -q",
            "cargo test --workspace -q -- --test-threads 2 shard::",
        ]
    );
    let got = steps(&["test", "-p", "valkey-chaos-tests", "--test", "it"]);
    assert_eq!(
        got[3],
        "cargo test -p valkey-chaos-tests --test it -q -- --test-threads 2"
    );
    let got = steps(&["ci"]);
    assert_eq!(
        got,
        [
            "bash .ci/setup",
            "cargo fmt --all -- --check",
            "cargo clippy --workspace --all-targets -q -- -D warnings",
            "cargo test -q -p valkey-chaos --lib layering",
            "(cd plugins && cargo fmt --all -- --check)",
            "(cd plugins && cargo build --release --target wasm32-wasip2 -q)",
            "cargo build -p valkey-chaos -q",
            "cargo test --workspace -q -- --test-threads 2",
        ]
    );
    assert_eq!(
        steps(&["up", "1", "3"]).last().unwrap(),
        "cargo run --release -q -p valkey-chaos -- up --replicas 1 --sentinels 3"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    for (args, says) in [
        (&["no-such-task"][..], "unknown task"),
        (&["chaos", "a", "b"], "usage: chaos"),
        (&["chaos-quick", "--seed"], "usage: chaos"),
        (&["up", "one"], "is not a count"),
        (&["lint", "x"], "takes no arguments"),
        (&["--bogus"], "unknown option"),
    ] {
        let o = xtask(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            show(&o)
        );
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("xtask: bash"),
            "{args:?} ran a step: {}",
            show(&o)
        );
    }
    let help = xtask(&["help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for task in crate::readme::xtask_tasks() {
        assert!(text.contains(&format!("\n  {task} ")), "{task} in\n{text}");
    }
}
