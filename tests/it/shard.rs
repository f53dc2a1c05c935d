//! Sharded runs: `shard::apply` keeps the scenario's totals, two agents with `--shard 0/2` and
//! `1/2` on one Valkey merge into one verdict for the whole load, and the Helm chart in `deploy/`
//! has the shape (and shell scripts) that do that on Kubernetes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use valkey_chaos::plan::Shard;
use valkey_chaos::plan::{LoadModel, Plan, WorkloadKind};
use valkey_chaos::scenario::shard;

use crate::support;

/// Every scenario shipped in `scenarios/` that compiles on its own.
fn shipped_plans() -> Vec<(PathBuf, Plan)> {
    let root = support::repo_root().join("scenarios");
    let mut files = vec![];
    for dir in [root.clone(), root.join("cutover")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "toml") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            valkey_chaos::scenario::load_plain(&p)
                .ok()
                .map(|plan| (p, plan))
        })
        .collect()
}

/// (clients, producers, consumers) of a workload.
fn people(p: &Plan, w: usize) -> [u32; 3] {
    let wl = &p.workloads[w];
    match &wl.kind {
        WorkloadKind::Dramatiq(d) => [wl.clients, d.producers, d.consumers],
        _ => [wl.clients, 0, 0],
    }
}

fn rates(p: &Plan, w: usize) -> Vec<f64> {
    match &p.workloads[w].load {
        LoadModel::Closed => vec![],
        LoadModel::Open(r) => std::iter::once(r.start)
            .chain(r.stages.iter().map(|s| s.1))
            .collect(),
    }
}

#[test]
fn apply_splits_shipped_scenarios_exactly() {
    let plans = shipped_plans();
    assert!(plans.len() >= 3, "too few scenarios compiled: {plans:?}");
    for (path, orig) in &plans {
        for n in 1..=4u32 {
            let shards: Vec<Plan> = (0..n)
                .map(|i| {
                    let mut p = orig.clone();
                    shard::apply(&mut p, Shard::new(i, n).unwrap());
                    p
                })
                .collect();
            for w in 0..orig.workloads.len() {
                let id = &orig.workloads[w].id;
                let want = people(orig, w);
                let mut got = [0u32; 3];
                for s in &shards {
                    for (g, v) in got.iter_mut().zip(people(s, w)) {
                        *g += v;
                    }
                }
                let dramatiq = matches!(orig.workloads[w].kind, WorkloadKind::Dramatiq(_));
                // Clients of the other kinds; producers and consumers of Dramatiq (its clients
                // follow from them).
                let counted = if dramatiq { 1..3 } else { 0..1 };
                for k in counted {
                    // Exact up to `n` = the count; beyond it every shard keeps one.
                    let expect = match want[k] {
                        0 => 0,
                        c if n <= c => c,
                        _ => n,
                    };
                    assert_eq!(got[k], expect, "{} {id} #{k} over {n}", path.display());
                }
                let want_rates = rates(orig, w);
                for (k, r) in want_rates.iter().enumerate() {
                    let sum: f64 = shards.iter().map(|s| rates(s, w)[k]).sum();
                    assert!(
                        (sum - r).abs() < 1e-6 * r.max(1.0),
                        "{} {id} rate #{k} over {n}: {sum} != {r}",
                        path.display()
                    );
                }
            }
            // Keys are shared; server faults happen once.
            assert!(shards.iter().all(|s| s.key_prefix == orig.key_prefix));
            let server = |p: &Plan| p.faults.iter().filter(|f| f.kind.destructive()).count();
            assert_eq!(server(&shards[0]), server(orig));
            assert!(shards[1..].iter().all(|s| server(s) == 0));
        }
    }
}

/// Spawn the agent with a clean sharding environment plus `env`.
pub(crate) fn spawn_agent(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut c = Command::new(support::agent_bin());
    c.args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("VALKEY_CHAOS_SHARDS")
        .env_remove("VALKEY_CHAOS_RUN_KEY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("spawn agent")
}

/// Wait for an agent (bounded), killing it when it overruns.
pub(crate) fn finish(child: std::process::Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    let mut child = child;
    while child.try_wait().expect("wait agent").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("agent output");
            panic!("agent did not finish in {timeout:?}\n{}", support::show(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("agent output")
}

const RATE: f64 = 400.0;
const SECS: f64 = 3.0;

fn sharded_scenario(dir: &Path) -> PathBuf {
    support::scenario(
        dir,
        "sharded",
        &format!(
            r#"
name = "sharded"
seed = 3
duration = "{SECS}s"

[target]
key_prefix = "shardtest:"

[[workload]]
id = "cache"
type = "commands"
clients = 4
rate_per_sec = {RATE}
[workload.commands]
mix = {{ get = 9, set = 1 }}
keys = 1000

[thresholds]
"cache.get.p99" = "< 2s"
"cache.error_rate" = "< 1%"
# A whole-run figure: about 1080 gets in all, about 540 per shard.
"cache.get.count" = "> 800"
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merge_into_one_verdict() {
    let t0 = Instant::now();
    let topo = support::start_single().await;
    let url = support::url(&topo);
    let dir = support::scratch("shard-merge");
    let sc = sharded_scenario(&dir);
    let (out0, out1, merged) = (dir.join("0"), dir.join("1"), dir.join("merged"));
    let s = |p: &Path| p.display().to_string();
    let (sc, o0, o1) = (s(&sc), s(&out0), s(&out1));
    // Shard 0 by flag, shard 1 the way an Indexed Job pod is told.
    let a0 = spawn_agent(
        &[
            "run", "-q", "--target", &url, "--shard", "0/2", "--out", &o0, &sc,
        ],
        &[],
    );
    let a1 = spawn_agent(
        &["run", "-q", "--target", &url, "--out", &o1, &sc],
        &[("JOB_COMPLETION_INDEX", "1"), ("VALKEY_CHAOS_SHARDS", "2")],
    );
    let (r0, r1) = (
        finish(a0, Duration::from_secs(60)),
        finish(a1, Duration::from_secs(60)),
    );
    for (i, r) in [&r0, &r1].into_iter().enumerate() {
        // Each shard misses the whole-run count on its own (exit 1) and says why.
        assert_eq!(r.status.code(), Some(1), "shard {i}\n{}", support::show(r));
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains("cache.get.count > 800: a whole-run figure"),
            "{err}"
        );
    }
    let (s0, s1) = (support::summary(&out0), support::summary(&out1));
    assert_eq!(s0["shard"], "0/2");
    assert_eq!(s1["shard"], "1/2");
    // They met at the start barrier: one time zero.
    assert_eq!(s0["started_at"], s1["started_at"]);
    assert_eq!(s0["start_sync"]["mode"], "barrier");
    assert_eq!(s1["run_key"], "sharded:2");
    assert_ne!(s0["seed"], s1["seed"], "shards draw different streams");
    assert_eq!(s0["workloads"][0]["clients"], 2);

    // Only one shard: the merged run is incomplete (exit 4) and names the missing one (the
    // other is merged).
    let lone = dir.join("lone");
    let m = support::agent(
        &["merge", "--out", &s(&lone), &o0, &s(&dir.join("never"))],
        Duration::from_secs(30),
    );
    assert_eq!(m.status.code(), Some(4), "{}", support::show(&m));
    assert!(
        String::from_utf8_lossy(&m.stderr).contains("shard 1/2 is missing"),
        "{}",
        support::show(&m)
    );
    let ls = support::summary(&lone);
    let gap = ls["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "shard 1/2")
        .expect("a check names the missing shard");
    assert_eq!(gap["passed"], false, "{gap}");
    assert_eq!(gap["origin"], "shard");
    assert!(
        gap["shown"]
            .as_str()
            .unwrap()
            .starts_with("missing: no output of this shard"),
        "{gap}"
    );
    assert_eq!(
        support::op(&ls, "cache", "get")["count"],
        support::op(&s0, "cache", "get")["count"],
        "shard 0 is merged"
    );
    let junit = std::fs::read_to_string(lone.join("junit.xml")).unwrap();
    assert!(
        junit.contains("name=\"shard 1/2 present\"") && junit.contains("type=\"shard\""),
        "{junit}"
    );

    // Both: one verdict on the whole load.
    let m = support::agent(
        &["merge", "--out", &s(&merged), &o0, &o1],
        Duration::from_secs(30),
    );
    assert_eq!(m.status.code(), Some(0), "{}", support::show(&m));
    let ms = support::summary(&merged);
    assert_eq!(ms["verdict"], "pass");
    assert!(ms.get("shard").is_none(), "a merge is the whole run");
    assert_eq!(ms["workloads"][0]["clients"], 4);
    let total: f64 = ["get", "set"]
        .iter()
        .map(|o| support::op(&ms, "cache", o)["count"].as_f64().unwrap())
        .sum();
    let want = RATE * SECS;
    assert!(
        (total - want).abs() <= want * 0.1,
        "merged {total} operations, expected about {want} (open model, {RATE}/s for {SECS}s)"
    );
    let part = |s: &serde_json::Value| -> f64 {
        ["get", "set"]
            .iter()
            .map(|o| support::op(s, "cache", o)["count"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(part(&s0) + part(&s1), total);
    let count = ms["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "cache.get.count")
        .expect("the count check is judged again");
    assert_eq!(count["passed"], true, "{count}");
    eprintln!("two shards and their merge: {:.1?}", t0.elapsed());
}

// --- the Helm chart ---

fn deploy() -> PathBuf {
    support::repo_root().join("deploy")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The YAML documents of a rendered file, split on `---` lines.
fn documents(text: &str) -> Vec<String> {
    text.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n").to_string())
        .filter(|d| d.contains("kind:"))
        .collect()
}

fn kind_named<'a>(docs: &'a [String], kind: &str, name_suffix: &str) -> &'a str {
    docs.iter()
        .find(|d| {
            d.contains(&format!("\nkind: {kind}\n"))
                && d.lines()
                    .any(|l| l.starts_with("  name: ") && l.ends_with(name_suffix))
        })
        .unwrap_or_else(|| panic!("no {kind} named *{name_suffix} in\n{docs:#?}"))
}

/// The `|` block under the first `args:` of a document (a container's shell script).
fn script(doc: &str) -> String {
    let mut lines = doc.lines().skip_while(|l| l.trim() != "args:").skip(1);
    let first = lines.next().expect("args: then a block");
    assert!(first.trim_start().starts_with("- |"), "{first}");
    let indent = first.len() - first.trim_start().len() + 2;
    let mut out = String::new();
    for l in lines {
        if !l.trim().is_empty() && l.len() - l.trim_start().len() < indent {
            break;
        }
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

#[test]
fn chart_templates_have_the_indexed_job_shape() {
    let chart = deploy().join("helm/valkey-chaos");
    let jobs = read(&chart.join("templates/jobs.yaml"));
    for want in [
        "kind: Job",
        "completionMode: Indexed",
        "completions: {{ $n }}",
        "parallelism: {{ $n }}",
        "--shard \"${JOB_COMPLETION_INDEX}/{{ $n }}\"",
        "--out \"${out}\"",
        "--skip-destructive",
        "--allow-destructive",
        "--barrier-timeout {{ .Values.barrierTimeout | squote }}",
        "name: VALKEY_CHAOS_RUN_KEY",
        "secretKeyRef:",
        "name: REDIS_URL",
        "name: VALKEY_PASSWORD",
        "name: OTEL_EXPORTER_OTLP_ENDPOINT",
        "configMap:",
        "valkey-chaos merge",
        "restartPolicy: Never",
    ] {
        assert!(jobs.contains(want), "templates/jobs.yaml lacks {want:?}");
    }
    let values = read(&chart.join("values.yaml"));
    assert!(values.contains("\nallowDestructive: false\n"));
    assert!(values.contains("\nagents: "));
    assert!(read(&chart.join("Chart.yaml")).contains("apiVersion: v2"));
    let dockerfile = read(&deploy().join("Dockerfile"));
    assert!(dockerfile.contains("AS build") && dockerfile.contains("-slim"));
    assert!(read(&deploy().join("README.md")).contains("helm install"));
}

#[test]
fn chart_barrier_timeout_reaches_the_agents_and_is_checked() {
    let chart = deploy().join("helm/valkey-chaos");
    let template = |value: &str| {
        Command::new(crate::chart::helm())
            .args(["template", "chaos"])
            .arg(&chart)
            .args([
                "--set",
                "target.url=redis://valkey.staging.svc:6379",
                "--set",
                &format!("barrierTimeout={value}"),
            ])
            .output()
            .expect("helm template")
    };
    let o = template("90s");
    assert_eq!(o.status.code(), Some(0), "{}", support::show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("--barrier-timeout '90s'"),
        "{}",
        support::show(&o)
    );
    let o = template("soon");
    assert_ne!(o.status.code(), Some(0), "{}", support::show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("barrierTimeout"),
        "{}",
        support::show(&o)
    );
}

#[test]
fn rendered_chart_has_the_right_shape() {
    let text = read(&deploy().join("helm/rendered/default.yaml"));
    let docs = documents(&text);
    let agents = kind_named(&docs, "Job", "-agents");
    for want in [
        "completionMode: Indexed",
        "completions: 4\n",
        "parallelism: 4\n",
        "--shard \"${JOB_COMPLETION_INDEX}/4\"",
        "--out \"${out}\"",
        "out=\"/results/example/${i}\"",
        "--skip-destructive",
        "--target \"${REDIS_URL}\"",
        "--barrier-timeout '5m'",
        "name: VALKEY_CHAOS_RUN_KEY\n              value: \"chaos-valkey-chaos-example\"",
        "restartPolicy: Never",
        "persistentVolumeClaim:",
    ] {
        assert!(
            agents.contains(want),
            "agents Job lacks {want:?}:\n{agents}"
        );
    }
    assert!(!agents.contains("--allow-destructive"));
    // The password comes from the Secret, never from a literal.
    let pw = agents
        .split("- name: VALKEY_PASSWORD")
        .nth(1)
        .expect("VALKEY_PASSWORD env");
    assert!(pw.trim_start().starts_with("valueFrom:\n"), "{pw}");
    assert!(pw.contains("secretKeyRef:"));
    assert!(agents.contains("configMap:\n            name: chaos-valkey-chaos-scenarios"));
    let merge = kind_named(&docs, "Job", "-merge");
    assert!(merge.contains("valkey-chaos merge"));
    assert!(merge.contains("claimName: chaos-valkey-chaos-results"));
    let _ = kind_named(&docs, "Secret", "-target");
    let _ = kind_named(&docs, "PersistentVolumeClaim", "-results");
    // The chart's default scenario compiles.
    let cm = kind_named(&docs, "ConfigMap", "-scenarios");
    let toml: String = cm
        .lines()
        .skip_while(|l| !l.ends_with(".toml: |"))
        .skip(1)
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    valkey_chaos::scenario::compile::compile_str(Path::new("values.yaml"), &toml)
        .unwrap_or_else(|d| panic!("the chart's default scenario: {d}"));

    let other = read(&deploy().join("helm/rendered/emptydir-destructive.yaml"));
    let docs = documents(&other);
    let agents = kind_named(&docs, "Job", "-agents");
    for want in [
        "completions: 8\n",
        "--shard \"${JOB_COMPLETION_INDEX}/8\"",
        "--allow-destructive",
        "--tls-ca /etc/valkey-chaos/tls/ca.crt",
        "emptyDir: {}",
        "name: valkey-staging\n",
        "name: chaos-scenarios\n",
        "value: \"http://otel-collector.observability:4317\"",
    ] {
        assert!(
            agents.contains(want),
            "agents Job lacks {want:?}:\n{agents}"
        );
    }
    assert!(!agents.contains("--skip-destructive"));
    assert!(
        !other.contains("\nkind: Secret\n"),
        "existingSecret is used as is"
    );
    assert!(
        !other.contains("-merge\n"),
        "no merge Job without a shared claim"
    );

    // The committed rendering matches the chart (set-up installs helm; no helm is a failure).
    let helm = crate::chart::helm();
    let o = Command::new("bash")
        .arg(deploy().join("helm/render.sh"))
        .arg("--check")
        .env("HELM", &helm)
        .output()
        .expect("render.sh --check");
    assert!(o.status.success(), "{}", support::show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("deploy/helm/rendered is up to date"),
        "{}",
        support::show(&o)
    );
}

/// The chart's agent and merge scripts, run as the pods would run them (dash, the real agent,
/// JOB_COMPLETION_INDEX), with /results and /scenarios moved into a scratch directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_scripts_run_shards_and_merge() {
    let t0 = Instant::now();
    let text = read(&deploy().join("helm/rendered/default.yaml"));
    let docs = documents(&text);
    let dir = support::scratch("shard-chart");
    let (results, scenarios) = (dir.join("results"), dir.join("scenarios"));
    std::fs::create_dir_all(&scenarios).unwrap();
    sharded_scenario(&scenarios);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(support::agent_bin(), bin.join("valkey-chaos")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let relocate = |s: String| {
        s.replace("/results", &results.display().to_string())
            .replace("/scenarios", &scenarios.display().to_string())
    };
    let agent = relocate(script(kind_named(&docs, "Job", "-agents")));
    let merge = relocate(script(kind_named(&docs, "Job", "-merge")));
    assert!(agent.contains("--shard \"${JOB_COMPLETION_INDEX}/4\""));

    let topo = support::start_single().await;
    let url = support::url(&topo);
    let sh = |script: &str, index: Option<u32>| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(script)
            .env("PATH", &path)
            .env("REDIS_URL", &url)
            .env("VALKEY_CHAOS_SHARDS", "4")
            .env("VALKEY_CHAOS_RUN_KEY", "chaos-valkey-chaos-example")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(i) = index {
            c.env("JOB_COMPLETION_INDEX", i.to_string());
        }
        c.spawn().expect("sh")
    };
    let pods: Vec<_> = (0..4).map(|i| sh(&agent, Some(i))).collect();
    for (i, p) in pods.into_iter().enumerate() {
        let o = finish(p, Duration::from_secs(90));
        // A failed check (exit 1) still succeeds the pod: the merge judges.
        assert_eq!(o.status.code(), Some(0), "pod {i}\n{}", support::show(&o));
        let code = read(&results.join(format!("example/{i}/exit-code")));
        assert_eq!(
            code.trim(),
            "1",
            "pod {i}: the whole-run count fails per shard"
        );
    }
    let o = finish(sh(&merge, None), Duration::from_secs(60));
    let log = support::show(&o);
    assert_eq!(o.status.code(), Some(0), "{log}");
    assert!(log.contains("distributed verdict: exit 0"), "{log}");
    let ms = support::summary(&results.join("example/merged"));
    assert_eq!(ms["verdict"], "pass");
    assert_eq!(ms["workloads"][0]["clients"], 4);

    // The four shards met at one barrier (run key from the environment, as the pods get it).
    let zeros: std::collections::BTreeSet<String> = (0..4)
        .map(|i| {
            support::summary(&results.join(format!("example/{i}")))["started_at"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(zeros.len(), 1, "one time zero: {zeros:?}");

    // A shard that never finished: the merged run is incomplete (exit 4), naming it.
    std::fs::remove_dir_all(results.join("example/2")).unwrap();
    let quick = merge.replace("deadline=$(( $(date +%s) + 3600 ))", "deadline=0");
    let o = finish(sh(&quick, None), Duration::from_secs(60));
    let log = support::show(&o);
    assert_eq!(o.status.code(), Some(4), "{log}");
    assert!(log.contains("agent 2: exit none"), "{log}");
    assert!(log.contains("shard 2/4 is missing"), "{log}");
    assert!(log.contains("distributed verdict: exit 4"), "{log}");
    eprintln!("chart scripts, 4 shards and merges: {:.1?}", t0.elapsed());
}
