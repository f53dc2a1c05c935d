//! One judge: a run and a merge hand their evidence to the same builder, so `merge` of a single
//! run's output must give the run's own counters, checks and verdict — whatever the run holds
//! (history-checked oracles, phase thresholds, a rehearsal's verify), passed or failed.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const T: Duration = Duration::from_secs(180);

/// A rehearsal with every kind of evidence: a history-checked lock and limiter, a ledger, a set,
/// phase thresholds on the switch, and the copy verified at the end.
fn scenario_text(procedure: &str, lag: bool) -> String {
    let lag_fault = if lag {
        r#"
[[fault]]
name = "congested-link"
type = "replication-lag"
at = "1s"
duration = "6s"
[fault.replication-lag]
delay = "10s"
"#
    } else {
        ""
    };
    format!(
        r#"
name = "one-judge"
duration = "16s"
[target]
timeout = "2s"
[migration]
source = "embedded"
destination = "embedded"
[migration.seed]
keys = 500

[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "judge"
producers = 1
rate_per_sec = 30
consumers = 1
threads = 2
drain_timeout = "20s"

[[workload]]
id = "coord"
type = "lock"
[workload.lock]
names = 2
clients = 4
ttl = "2s"
hold = "5ms"
retry_interval = "20ms"

[[workload]]
id = "limits"
type = "rate_limit"
[workload.rate_limit]
limiter = "fixed-window"
limit = 5
window = "1s"
keys = 1
clients = 4
rate_per_sec = 20

[[workload]]
id = "writes"
type = "set"
clients = 2
rate_per_sec = 100
{lag_fault}
[[fault]]
name = "cutover"
type = "switch"
at = "4s"
[fault.switch]
procedure = "{procedure}"

[thresholds]
"tasks.redelivered" = "< 100"
"writes.add.p99{{before}}" = "< 2s"
"coord.acquire.error_rate{{during:cutover}}" = "< 100%"
"limits.errors{{after}}" = "< 1000"
"#
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run the scenario, then merge its output alone; returns (run summary, run exit, merged
/// summary, merge exit).
fn run_then_merge(name: &str, text: &str) -> (Value, i32, Value, i32) {
    let dir = scratch(name);
    let sc = scenario(&dir, "one-judge", text);
    let (out, merged) = (dir.join("out"), dir.join("merged"));
    let o = agent(&["run", s(&sc), "-q", "--out", s(&out)], T);
    let run_code = o.status.code().unwrap_or(-1);
    assert!(run_code == 0 || run_code == 1, "{}", show(&o));
    let m = agent(&["merge", "--out", s(&merged), s(&out)], T);
    let merge_code = m.status.code().unwrap_or(-1);
    (summary(&out), run_code, summary(&merged), merge_code)
}

/// `(metric, condition, passed, value to the microsecond)` of every check, in the run's order.
fn checks(s: &Value) -> Vec<(String, String, bool, Option<i64>)> {
    let mut v: Vec<_> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["metric"].as_str().unwrap().to_string(),
                c["condition"].as_str().unwrap().to_string(),
                c["passed"].as_bool().unwrap(),
                c["value"].as_f64().map(|x| (x * 1e6).round() as i64),
            )
        })
        .collect();
    v.sort();
    v
}

fn counters(s: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = s["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["workload"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
                c["value"].to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn assert_judged_alike(run: &Value, run_code: i32, merged: &Value, merge_code: i32) {
    assert_eq!(counters(merged), counters(run), "counters");
    assert_eq!(checks(merged), checks(run), "checks");
    assert_eq!(merged["verdict"], run["verdict"]);
    assert_eq!(merge_code, run_code, "exit codes");
    // Every kind of evidence was there to judge.
    let metrics: Vec<String> = checks(run).into_iter().map(|c| c.0).collect();
    for want in [
        "coord.violations",
        "coord.checked",
        "limits.overshoot",
        "limits.overshoot_checked",
        "writes.lost",
        "writes.add.p99{before}",
        "coord.acquire.error_rate{during:cutover}",
        "migration.verify.differences",
    ] {
        assert!(
            metrics.iter().any(|m| m == want),
            "no {want} in {metrics:?}"
        );
    }
}

#[test]
fn merging_one_clean_run_gives_its_counters_checks_and_verdict() {
    let (run, rc, merged, mc) =
        run_then_merge("judge-clean", &scenario_text("pause-and-drain", false));
    assert_eq!(rc, 0, "{:#}", run["checks"]);
    assert_judged_alike(&run, rc, &merged, mc);
}

#[test]
fn merging_one_lossy_run_gives_its_counters_checks_and_verdict() {
    let (run, rc, merged, mc) = run_then_merge("judge-lossy", &scenario_text("repoint-only", true));
    assert_eq!(
        rc, 1,
        "a hurried switch over a lagging link fails: {:#}",
        run["checks"]
    );
    assert_judged_alike(&run, rc, &merged, mc);
}
