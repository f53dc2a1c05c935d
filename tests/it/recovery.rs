//! No false PASS: a run killed half-way, a workload that never comes back after a fault, a lock
//! name orphaned by a failover, a consumer that stops fetching — each planted against real
//! servers and caught every run, each beside a correct twin that passes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const T: Duration = Duration::from_secs(120);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The checks of a summary whose metric starts with `prefix`.
fn checks_of<'a>(sum: &'a serde_json::Value, prefix: &str) -> Vec<&'a serde_json::Value> {
    sum["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metric"].as_str().unwrap().starts_with(prefix))
        .collect()
}

/// A run the platform team would kill half-way (what Kubernetes sends when a Job's pod goes).
fn long_writes(seconds: u32) -> String {
    format!(
        r#"
name = "killed"
duration = "{seconds}s"
[[workload]]
id = "writes"
type = "set"
clients = 2
rate_per_sec = 100
"#
    )
}

#[tokio::test]
async fn sigterm_mid_run_is_incomplete_never_a_pass_and_writes_what_it_has() {
    let t = start_single().await;
    let dir = scratch("sigterm");
    let sc = scenario(&dir, "killed", &long_writes(30));
    let out = dir.join("out");
    let mut child = Command::new(agent_bin())
        .args(["run", s(&sc), "--target", &url(&t), "-q", "--out", s(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once its load is on the server (a few hundred writes in).
    let mut c = conn(&t).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys = cmd(&mut c, &["DBSIZE"]).await.as_int().unwrap_or(0);
        let members = cmd(&mut c, &["SCARD", "vc:writes:set:0"])
            .await
            .as_int()
            .unwrap_or_default();
        if keys > 0 && members >= 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the load never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("INCOMPLETE"), "{stdout}");
    // The partial results are written, and say why there is no verdict.
    let sum = summary(&out);
    assert_eq!(sum["verdict"], "incomplete");
    assert_eq!(sum["interrupted"], true);
    let why = sum["incomplete"].to_string();
    assert!(why.contains("interrupted after"), "{why}");
    assert!(counter(&sum, "writes", "written") >= 50.0);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("type=\"incomplete\""), "{junit}");
}

#[tokio::test]
async fn the_same_run_left_to_finish_passes() {
    let t = start_single().await;
    let dir = scratch("sigterm-twin");
    let sc = scenario(&dir, "finished", &long_writes(3));
    let out = dir.join("out");
    let o = agent(
        &["run", s(&sc), "--target", &url(&t), "-q", "--out", s(&out)],
        T,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let sum = summary(&out);
    assert_eq!(sum["verdict"], "pass");
    assert!(sum.get("incomplete").is_none(), "{}", sum["incomplete"]);
}

#[test]
fn a_run_that_checks_nothing_says_so_under_its_verdict() {
    let dir = scratch("nothing-checked");
    let sc = scenario(
        &dir,
        "unchecked",
        r#"
name = "unchecked"
duration = "2s"
[[workload]]
id = "reads"
type = "commands"
clients = 1
rate_per_sec = 20
[workload.commands]
mix = { get = 1 }
"#,
    );
    let o = agent(&["run", s(&sc), "-q"], T);
    // A plain load passes (as k6 without thresholds), and says nothing was judged.
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    assert!(stdout.contains("nothing was checked"), "{stdout}");
    // The same load with one threshold is judged, and does not say so.
    let sc = scenario(
        &dir,
        "checked",
        r#"
name = "checked"
duration = "2s"
[[workload]]
id = "reads"
type = "commands"
clients = 1
rate_per_sec = 20
[workload.commands]
mix = { get = 1 }
[thresholds]
"reads.error_rate" = "< 1%"
"#,
    );
    let o = agent(&["run", s(&sc), "-q"], T);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("nothing was checked"));
}

/// Reads and writes through the agent's proxy, 20 ms slower from 2 s to 4 s.
fn paused_load() -> String {
    r#"
name = "refused-after-heal"
duration = "16s"
[target]
timeout = "500ms"
[[workload]]
id = "cache"
type = "commands"
clients = 4
rate_per_sec = 200
[workload.commands]
mix = { get = 4, set = 1 }
keys = 100
[[fault]]
name = "slow"
type = "latency"
at = "2s"
duration = "2s"
[fault.latency]
delay = "20ms"
[thresholds]
"cache.get.p99{before}" = "< 1s"
"#
    .to_string()
}

/// Run `paused_load` against a server of the test's own; with `refuse`, the server turns every
/// client away from the middle of the fault on (`maxclients` at the test's own connection, then
/// every other client killed): a server that never takes its clients back after the fault heals.
async fn refused_after_heal(refuse: bool) -> (std::process::Output, serde_json::Value) {
    let t = start_single().await;
    let dir = scratch(if refuse { "refused" } else { "refused-twin" });
    let sc = scenario(&dir, "refused", &paused_load());
    let out = dir.join("out");
    let child = Command::new(agent_bin())
        .args(["run", s(&sc), "--target", &url(&t), "-q", "--out", s(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = conn(&t).await;
    // Time zero is within a few ms of the first write; the fault lasts from 2 s to 4 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cmd(&mut c, &["DBSIZE"]).await.as_int().unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the load never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    if refuse {
        cmd(&mut c, &["CONFIG", "SET", "maxclients", "1"]).await;
        cmd(
            &mut c,
            &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
        )
        .await;
    }
    let o = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + T;
        let mut child = child;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "agent did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    cmd(&mut c, &["CONFIG", "SET", "maxclients", "10000"]).await;
    (o, summary(&out))
}

#[tokio::test]
async fn a_server_that_refuses_clients_after_a_fault_heals_fails_recovery() {
    let (o, sum) = refused_after_heal(true).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let rec = checks_of(&sum, "cache.recovery{after:slow}");
    assert_eq!(rec.len(), 1, "{:#}", sum["checks"]);
    assert_eq!(rec[0]["passed"], false);
    let shown = rec[0]["shown"].as_str().unwrap();
    assert!(
        shown.contains("not back to normal before the load ended"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_same_fault_on_a_healthy_server_recovers_and_passes() {
    let (o, sum) = refused_after_heal(false).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let rec = checks_of(&sum, "cache.recovery{after:slow}");
    assert_eq!(rec.len(), 1, "{:#}", sum["checks"]);
    assert_eq!(rec[0]["passed"], true);
    assert!(rec[0]["value"].as_f64().unwrap() < 10.0);
}

/// Redis-py style locks on 2 names, 16 clients holding 100 ms each (so both names are held at
/// nearly every instant), over a failover whose replica is 10 s behind when it is promoted: it
/// holds lock keys whose releases it never received (and a release or an
/// acquire caught by the switch loses its reply), so names stay set, held by nobody, until their
/// TTL. With a long TTL acquirers are blocked past the end of the load; with a short one, briefly.
fn failover_locks(ttl: &str) -> String {
    format!(
        r#"
name = "orphans"
seed = 5
duration = "20s"
[target]
timeout = "1s"
[[workload]]
id = "coord"
type = "lock"
[workload.lock]
style = "redis-py"
names = 2
clients = 16
ttl = "{ttl}"
hold = "100ms"
blocking_timeout = "2s"
retry_interval = "20ms"
[[fault]]
name = "lag"
type = "replication-lag"
at = "2s"
duration = "8s"
[fault.replication-lag]
delay = "10s"
[[fault]]
name = "failover"
type = "failover"
at = "5s"
[fault.failover]
mode = "coordinated"
sync_timeout = "300ms"
"#
    )
}

fn run_out(name: &str, text: &str) -> (std::process::Output, serde_json::Value) {
    let dir = scratch(name);
    let sc = scenario(&dir, name, text);
    let out = dir.join("out");
    let o = agent(&["run", s(&sc), "-q", "--out", s(&out)], T);
    (o, summary(&out))
}

#[test]
fn a_lock_orphaned_by_a_failover_until_a_long_ttl_fails_recovery() {
    let (o, sum) = run_out("orphans", &failover_locks("60s"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        counter(&sum, "coord", "orphaned") >= 1.0,
        "{:#}",
        sum["counters"]
    );
    assert!(counter(&sum, "coord", "orphaned_ms") >= 5000.0);
    // Nobody holds it, so no two holders either: the oracle tells an orphan from an overlap.
    assert_eq!(counter(&sum, "coord", "violations"), 0.0);
    let rec = checks_of(&sum, "coord.recovery{after:failover}");
    assert_eq!(rec.len(), 1, "{:#}", sum["checks"]);
    assert_eq!(rec[0]["passed"], false, "{}", rec[0]);
    // The other name's grants look normal: what holds the workload back is the orphan, named.
    let shown = rec[0]["shown"].as_str().unwrap();
    assert!(shown.contains("orphaned lock name"), "{shown}");
    let notes = sum["events"].to_string();
    assert!(notes.contains("orphaned lock name"), "{notes}");
}

#[test]
fn the_same_failover_with_a_short_ttl_recovers() {
    let (o, sum) = run_out("orphans-twin", &failover_locks("1s"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let rec = checks_of(&sum, "coord.recovery{after:failover}");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0]["passed"], true, "{}", rec[0]);
    // Whatever was orphaned expired within the TTL (plus a retry or two).
    let longest_possible = 2000.0 * counter(&sum, "coord", "orphaned").max(1.0);
    assert!(counter(&sum, "coord", "orphaned_ms") <= longest_possible);
}

/// Dramatiq producers and consumers; at 3 s every consumer stalls for 3 s, resuming only when
/// `resume` (else the planted bug: alive, heart-beating, never fetching again).
fn stalled(resume: bool) -> String {
    format!(
        r#"
name = "stalled"
duration = "16s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "stall"
producers = 1
rate_per_sec = 50
consumers = 2
threads = 2
drain_timeout = "5s"
[[fault]]
name = "stall"
type = "consumer-stall"
at = "3s"
duration = "3s"
[fault.consumer-stall]
workload = "tasks"
resume = {resume}
"#
    )
}

#[test]
fn a_consumer_that_stays_alive_but_never_fetches_again_fails() {
    let (o, sum) = run_out("stalled", &stalled(false));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let rec = checks_of(&sum, "tasks.recovery{after:stall}");
    assert_eq!(rec.len(), 1, "{:#}", sum["checks"]);
    assert_eq!(rec[0]["passed"], false, "{}", rec[0]);
    // Enqueues went on the whole time: the workload was busy, just not consuming.
    let enq = op(&sum, "tasks", "enqueue")["ok"].as_u64().unwrap();
    assert!(enq > 500, "{enq} enqueues");
}

#[test]
fn a_consumer_that_resumes_after_the_stall_passes() {
    let (o, sum) = run_out("stalled-twin", &stalled(true));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let rec = checks_of(&sum, "tasks.recovery{after:stall}");
    assert_eq!(rec[0]["passed"], true, "{}", rec[0]);
    assert_eq!(counter(&sum, "tasks", "lost"), 0.0);
}

/// Every workload of every gate scenario is judged: by a safety oracle of its own, by a recovery
/// check after a fault, or — a plain command mix or a plugin, which have no oracle — by a
/// whole-run bound on its errors. None runs unjudged.
#[test]
fn every_gate_workload_is_judged_by_safety_recovery_or_its_errors() {
    use valkey_chaos::plan::{CounterKind, MetricPath};
    let dir = repo_root().join("scenarios/cutover");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    for f in files {
        let plan = valkey_chaos::scenario::load_plain(&f).unwrap();
        for w in &plan.workloads {
            let safety = w
                .kind
                .counters()
                .iter()
                .any(|c| c.kind == CounterKind::Safety);
            let errors = plan.thresholds.iter().any(|t| {
                t.workload == w.id
                    && t.phase.is_none()
                    && matches!(&t.path, MetricPath::Counter(c) if c == "errors" || c == "error_rate")
            });
            assert!(
                safety || !plan.faults.is_empty() || errors,
                "{}: workload {:?} is not judged: no safety oracle, no fault to recover from, \
                 no bound on its errors",
                f.display(),
                w.id
            );
        }
    }
}
