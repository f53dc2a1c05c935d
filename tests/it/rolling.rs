//! The rolling switch (`procedure = "rolling"`) against real servers, Redis 7.0 → Valkey: pods
//! move to the destination batch by batch while the others still use the source. In the
//! documented order (writes stopped until the last pod moved, then a drain) nothing is lost and
//! nothing is left on the old side; in the hurried order (the copy stopped, writes going on, the
//! API's pods rolling after the workers') messages are stranded on the old side and named; the
//! drain step moves them and the workers deliver them; rolling before the stop meets `READONLY`.

use std::time::Duration;

use crate::support::*;

const T: Duration = Duration::from_secs(180);

/// A rehearsal whose API pods (the producers) roll 3 s after everything else.
fn rolling(stop_writes: bool, drain: bool, order: &str, with_set: bool) -> String {
    let set = if with_set {
        r#"
[[workload]]
id = "writes"
type = "set"
clients = 4
rate_per_sec = 100
"#
    } else {
        ""
    };
    format!(
        r#"
name = "rolling"
duration = "21s"
[target]
timeout = "2s"
[migration]
source = "embedded"
destination = "embedded"

[[workload]]
id = "tasks"
type = "dramatiq"
db = 1
[workload.dramatiq]
queue = "rolling"
producers = 2
rate_per_sec = 40
consumers = 2
threads = 4
drain_timeout = "20s"
{set}
[[fault]]
name = "cutover"
type = "switch"
at = "4s"
[fault.switch]
procedure = "rolling"
order = "{order}"
stop_writes = {stop_writes}
drain = {drain}
batch = "100%"
every = "1s"

[[fault.switch.rollout]]
workload = "tasks"
clients = "producers"
start = "3s"
batch = "1"

[thresholds]
"tasks.redelivered" = "< 100"
"tasks.resurrected" = "< 100"
"#
    )
}

fn run(name: &str, text: &str) -> (serde_json::Value, i32, String) {
    let valkey = valkey_bin();
    let extra = ["--valkey-server", valkey.to_str().unwrap()];
    let (o, out) = run_scenario(&scratch(name), "rolling", text, &extra, T);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", show(&o));
    (
        summary(&out),
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn roll(s: &serde_json::Value) -> &serde_json::Value {
    &s["migration"]["switch"]["rolling"]
}

#[test]
fn the_documented_rolling_order_loses_and_strands_nothing() {
    let (s, code, _) = run("rolling-ok", &rolling(true, true, "stop-first", true));
    assert_eq!(code, 0, "{:#}", s["checks"]);
    let r = roll(&s);
    // 2 producers one by one from 3 s, 2 consumers and 4 set pods at once.
    assert_eq!(r["pods"], 8, "{r:#}");
    assert_eq!(r["batches"].as_array().unwrap().len(), 4, "{r:#}");
    let last = r["batches"][3]["at_secs"].as_f64().unwrap();
    let first = r["batches"][0]["at_secs"].as_f64().unwrap();
    assert!((3.5..6.0).contains(&(last - first)), "{r:#}");
    // Writes stayed stopped until the last pod moved: the old side took none after the stop,
    // and the drain step found nothing the copy had not carried.
    assert_eq!(r["two_sides_ms"].as_f64(), Some(0.0), "{r:#}");
    assert_eq!(r["drained"], 0, "{r:#}");
    let paused = s["migration"]["switch"]["paused_ms"].as_f64().unwrap();
    assert!(paused >= 3500.0, "writes paused {paused} ms");
    for c in ["left_behind", "lost", "stuck"] {
        assert_eq!(counter(&s, "tasks", c), 0.0, "tasks.{c}");
    }
    assert!(counter(&s, "tasks", "checked") > 300.0);
    assert_eq!(counter(&s, "writes", "lost"), 0.0);
    assert_eq!(check(&s, "tasks.left_behind")["passed"], true);
}

#[test]
fn the_hurried_rolling_order_strands_messages_on_the_old_side_and_names_them() {
    let (s, code, text) = run(
        "rolling-hurried",
        &rolling(false, false, "stop-first", false),
    );
    assert_eq!(code, 1, "{:#}", s["checks"]);
    let left = counter(&s, "tasks", "left_behind");
    // 40 messages a second from producers that stay on the old side 3 to 4 s after the stop.
    assert!(left >= 60.0, "left behind {left}");
    // Left behind, not lost: every one was found on the source.
    assert_eq!(counter(&s, "tasks", "lost"), 0.0);
    let c = check(&s, "tasks.left_behind");
    assert_eq!(c["passed"], false);
    assert_eq!(c["value"].as_f64(), Some(left));
    let r = roll(&s);
    let two = r["two_sides_ms"].as_f64().unwrap();
    assert!(
        two >= 2500.0,
        "the old side took writes for {two} ms: {r:#}"
    );
    assert!(r["drained"].is_null(), "{r:#}");
    // Named: the report's notes and the text under the failed check.
    let named = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("tasks: left_behind: message "))
        })
        .count();
    assert!(named >= 1, "{:#}", s["events"]);
    assert!(
        text.contains("FAIL tasks.left_behind") && text.contains("e.g. message "),
        "{text}"
    );
}

#[test]
fn the_drain_step_moves_what_the_hurried_order_stranded_and_the_workers_deliver_it() {
    let (s, code, _) = run(
        "rolling-drained",
        &rolling(false, true, "stop-first", false),
    );
    let r = roll(&s);
    let drained = r["drained"].as_u64().unwrap();
    assert!(drained >= 60, "drained {drained}: {r:#}");
    assert!(r["copied_ids"].as_u64().is_some(), "{r:#}");
    assert_eq!(counter(&s, "tasks", "left_behind"), 0.0);
    assert_eq!(counter(&s, "tasks", "lost"), 0.0);
    // Writes were never stopped: an ack a worker sent to the old side just after the copy
    // stopped is lost to the new one, where its message stays in the worker's ack set (stuck,
    // redelivered once that worker is gone). It races with the stop, so it may or may not
    // happen; nothing else may fail.
    let failed: Vec<&str> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["metric"].as_str().unwrap())
        .collect();
    assert!(
        failed.iter().all(|m| *m == "tasks.stuck"),
        "{:#}",
        s["checks"]
    );
    assert_eq!(code, i32::from(!failed.is_empty()));
}

#[test]
fn rolling_before_the_copy_stops_meets_a_read_only_destination() {
    let (s, _, _) = run("rolling-first", &rolling(false, true, "roll-first", false));
    let r = roll(&s);
    let ro = r["readonly_replies"].as_u64().unwrap();
    assert!(ro >= 1, "{r:#}");
    assert_eq!(r["order"], "roll-first");
    // The moved pods wrote nothing to the replica: nothing lost, nothing left behind.
    assert_eq!(counter(&s, "tasks", "lost"), 0.0);
    assert_eq!(counter(&s, "tasks", "left_behind"), 0.0);
}

#[test]
fn a_rollout_group_for_no_workload_is_a_scenario_error() {
    let dir = scratch("rolling-unknown");
    let text = rolling(true, true, "stop-first", false).replace(
        "workload = \"tasks\"\nclients = \"producers\"",
        "workload = \"api\"\nclients = \"producers\"",
    );
    let e = refused_scenario(&dir, "rolling", &text);
    assert!(
        e.contains("rolling.toml:") && e.contains("no workload \"api\""),
        "{e}"
    );
}
