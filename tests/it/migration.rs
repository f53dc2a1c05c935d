//! The cutover rehearsed against real servers: Debian's Redis 7.0 as the source, Valkey 9.x and
//! 8.1 (what managed Valkey runs today) as destinations replicating it; the documented switch
//! loses nothing, a hurried one with a lagging link loses acknowledged writes and says how many.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

const T: Duration = Duration::from_secs(180);

fn rehearsal(procedure: &str, lag: bool) -> String {
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
name = "rehearsal"
duration = "16s"
[target]
timeout = "2s"
[migration]
source = "embedded"
destination = "embedded"
[migration.seed]
keys = 3000

[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "rehearsal"
producers = 1
rate_per_sec = 40
consumers = 1
threads = 4
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
fencing = true

[[workload]]
id = "writes"
type = "set"
clients = 4
rate_per_sec = 150
{lag_fault}
[[fault]]
name = "cutover"
type = "switch"
at = "4s"
[fault.switch]
procedure = "{procedure}"

[thresholds]
"tasks.redelivered" = "< 100"
"tasks.resurrected" = "< 100"
"#
    )
}

fn run(dir: &Path, text: &str, valkey: &Path) -> (serde_json::Value, i32) {
    let valkey = valkey.to_str().unwrap();
    let (o, out) = run_scenario(
        dir,
        "rehearsal",
        text,
        &["-q", "--valkey-server", valkey],
        T,
    );
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", show(&o));
    (summary(&out), o.status.code().unwrap())
}

fn pause_and_drain_loses_nothing(valkey: &Path, want: &str) {
    let dir = scratch(&format!("rehearse-ok-{}", want.replace('.', "")));
    let (s, code) = run(&dir, &rehearsal("pause-and-drain", false), valkey);
    let m = &s["migration"];
    let from_to = m["from_to"].as_str().unwrap();
    assert!(from_to.starts_with("redis 7.0"), "{from_to}");
    assert!(from_to.contains(&format!("valkey {want}")), "{from_to}");
    assert_eq!(code, 0, "{:#}", s["checks"]);
    assert_eq!(counter(&s, "writes", "lost"), 0.0);
    assert_eq!(counter(&s, "tasks", "lost"), 0.0);
    assert_eq!(counter(&s, "coord", "violations"), 0.0);
    let sw = &m["switch"];
    assert_eq!(sw["procedure"], "pause-and-drain");
    assert_eq!(sw["behind_bytes"], 0, "{sw}");
    assert!(sw["paused_ms"].as_f64().unwrap() < 5000.0);
    assert!(m["lag"]["samples"].as_u64().unwrap() >= 3, "{m}");
    // The copy is whole: every seed key identical on both sides.
    let v = &m["verify"];
    assert!(v["keys_checked"].as_u64().unwrap() >= 1000, "{v}");
    assert_eq!(v["differences"], 0, "{v}");
    // The switch's window is measured: the workloads' unavailability, in the impact window.
    let f = s["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "switch")
        .unwrap();
    assert!(f["impact"]["window_ms"].as_f64().is_some(), "{f}");
    for w in f["impact"]["workloads"].as_array().unwrap() {
        if let Some(ms) = w["unavailable_ms"].as_f64() {
            assert!(ms < 5000.0, "{w}");
        }
    }
    // Dramatiq and the lock live on EVALSHA: the destination's script cache starts empty.
    assert!(m["noscript_after_switch"].as_u64().unwrap() >= 1, "{m}");
}

fn repoint_only_with_lag_loses_writes(valkey: &Path, want: &str) {
    let dir = scratch(&format!("rehearse-lossy-{}", want.replace('.', "")));
    let (s, code) = run(&dir, &rehearsal("repoint-only", true), valkey);
    assert_eq!(code, 1);
    let lost = counter(&s, "writes", "lost");
    assert!(lost >= 100.0, "lost {lost}");
    let sw = &s["migration"]["switch"];
    assert_eq!(sw["procedure"], "repoint-only");
    assert!(sw["behind_bytes"].as_i64().unwrap() > 0, "{sw}");
    let lost_check = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "writes.lost")
        .unwrap();
    assert_eq!(lost_check["passed"], false);
    assert_eq!(lost_check["value"].as_f64().unwrap(), lost);
}

#[test]
fn redis7_to_valkey9_pause_and_drain_loses_nothing() {
    pause_and_drain_loses_nothing(&valkey_bin(), "9.");
}

#[test]
fn redis7_to_valkey81_pause_and_drain_loses_nothing() {
    pause_and_drain_loses_nothing(&valkey8_bin(), "8.1.");
}

#[test]
fn redis7_to_valkey9_repoint_only_with_lag_loses_acknowledged_writes() {
    repoint_only_with_lag_loses_writes(&valkey_bin(), "9.");
}

#[test]
fn redis7_to_valkey81_repoint_only_with_lag_loses_acknowledged_writes() {
    repoint_only_with_lag_loses_writes(&valkey8_bin(), "8.1.");
}

#[test]
fn a_switch_without_a_migration_is_a_scenario_error() {
    let dir = scratch("switch-alone");
    let e = refused_scenario(
        &dir,
        "alone",
        r#"
duration = "2s"
[[workload]]
id = "w"
type = "commands"
[[fault]]
type = "switch"
at = "1s"
"#,
    );
    assert!(
        e.contains("alone.toml:6:1") && e.contains("no [migration]"),
        "{e}"
    );
}

/// A Redis 7.0 source of the test's own, holding 20,000 keys, with `maxmemory` set to `limit`
/// of what it uses (`None`: unlimited); the rehearsal copies it into Valkey under a read-only
/// load. What the report says the copy cost.
async fn copy_cost(name: &str, limit: Option<f64>) -> (serde_json::Value, String) {
    let src = start_bin(&crate::tls::redis_bin()).await;
    let mut c = conn(&src).await;
    cmd(
        &mut c,
        &[
            "EVAL",
            "for i = 1, 20000 do redis.call('SET', 'k' .. i, string.rep('x', 100)) end",
            "0",
        ],
    )
    .await;
    let info = cmd(&mut c, &["INFO", "memory"]).await;
    let used: f64 =
        valkey_chaos::valkey::embedded::parse_info(info.as_str().unwrap(), "used_memory")
            .unwrap()
            .parse()
            .unwrap();
    if let Some(f) = limit {
        let max = ((used * f) as u64).to_string();
        cmd(&mut c, &["CONFIG", "SET", "maxmemory", &max]).await;
    }
    let dir = scratch(name);
    let text = format!(
        r#"
name = "copy-cost"
duration = "3s"
[migration]
source = "{}"
destination = "embedded"
verify = false
[[workload]]
id = "reads"
type = "commands"
clients = 2
rate_per_sec = 50
[workload.commands]
mix = {{ get = 1 }}
"#,
        url(&src)
    );
    let valkey = valkey_bin();
    let extra = ["--valkey-server", valkey.to_str().unwrap()];
    let (o, out) = run_scenario(&dir, "copy-cost", &text, &extra, T);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", show(&o));
    let s = summary(&out);
    (
        s["migration"]["copy_cost"].clone(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[tokio::test]
async fn the_initial_copy_reports_its_fork_and_a_peak_that_fits() {
    let (c, text) = copy_cost("copy-cost-fits", Some(4.0)).await;
    assert_eq!(c["forked"], true, "{c:#}");
    assert!(c["fork_ms"].as_f64().is_some_and(|f| f > 0.0), "{c:#}");
    let used = c["used_memory"].as_u64().unwrap();
    assert!(used > 2_000_000, "20,000 keys of 100 bytes: {c:#}");
    assert_eq!(
        c["peak_bytes"].as_u64(),
        Some(used + c["cow_bytes"].as_u64().unwrap())
    );
    assert_eq!(c["fits"], true, "{c:#}");
    assert!(c["probe_samples"].as_u64().unwrap() > 0, "{c:#}");
    assert!(
        text.contains("copy-on-write") && !text.contains("does not fit"),
        "{text}"
    );
}

#[tokio::test]
async fn an_initial_copy_whose_peak_exceeds_maxmemory_is_warned_about() {
    // maxmemory below what the source holds: the peak (held + copied) cannot fit.
    let (c, text) = copy_cost("copy-cost-tight", Some(0.9)).await;
    assert_eq!(c["fits"], false, "{c:#}");
    assert!(
        c["peak_bytes"].as_u64().unwrap() > c["maxmemory"].as_u64().unwrap(),
        "{c:#}"
    );
    assert!(
        text.contains("does not fit under the source's maxmemory"),
        "{text}"
    );
}

/// Broker and set load across a switch at 4 s (the way-back and external rehearsals).
const LOAD: &str = r#"
[[workload]]
id = "tasks"
type = "dramatiq"
db = 1
[workload.dramatiq]
queue = "moving"
producers = 1
rate_per_sec = 40
consumers = 1
threads = 4
drain_timeout = "20s"

[[workload]]
id = "writes"
type = "set"
clients = 4
rate_per_sec = 100

[[fault]]
name = "cutover"
type = "switch"
at = "4s"
"#;

/// A rehearsal with a way back: the documented switch at 4 s, back to the source at 9 s.
fn with_way_back(source: &str) -> String {
    format!(
        r#"
name = "way-back"
duration = "21s"
[target]
timeout = "2s"
[migration]
source = "{source}"
destination = "embedded"
[migration.seed]
keys = 2000

{LOAD}
[[fault]]
name = "rollback"
type = "switch-back"
at = "9s"

[thresholds]
"tasks.redelivered" = "< 100"
"tasks.resurrected" = "< 100"
"tasks.stranded" = "< 100"
"#
    )
}

#[test]
fn the_way_back_into_redis_7_is_refused_before_the_load_with_the_reason() {
    let dir = scratch("way-back-refused");
    let valkey = valkey8_bin();
    let extra = ["--valkey-server", valkey.to_str().unwrap()];
    let (o, out) = run_scenario(&dir, "way-back", &with_way_back("embedded"), &extra, T);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        e.contains("switch-back") && e.contains("Can't handle RDB format version 11"),
        "{e}"
    );
    assert!(!out.join("summary.json").exists(), "no load ran");
}

#[tokio::test]
async fn a_way_back_from_valkey_9_into_valkey_8_1_loses_nothing_and_compares_every_key() {
    let src = start_bin(&valkey8_bin()).await;
    let dir = scratch("way-back-ok");
    let valkey = valkey_bin();
    let extra = ["--valkey-server", valkey.to_str().unwrap()];
    let (o, out) = run_scenario(&dir, "way-back", &with_way_back(&url(&src)), &extra, T);
    let s = summary(&out);
    assert_eq!(o.status.code(), Some(0), "{}\n{:#}", show(&o), s["checks"]);
    let b = &s["migration"]["switch_back"];
    let v = &b["verify"];
    assert_eq!(v["differences"], 0, "{b:#}");
    // Every key, not the seed's prefix the final verify compares: the broker's and the set's
    // keys too (seed keys with a TTL only expire between the two, so the final count is lower).
    let seed_only = s["migration"]["verify"]["keys_checked"].as_u64().unwrap();
    assert!(
        v["keys_checked"].as_u64().unwrap() > seed_only + 3,
        "{seed_only}: {b:#}"
    );
    assert!(b["at_secs"].as_f64().unwrap() >= 9.0, "{b:#}");
    for (w, c) in [
        ("tasks", "lost"),
        ("tasks", "left_behind"),
        ("writes", "lost"),
    ] {
        assert_eq!(counter(&s, w, c), 0.0, "{w}.{c}");
    }
    assert_eq!(
        check(&s, "migration.switch_back.differences")["passed"],
        true
    );
    // Served by the source again: the final reads found every acknowledged write there.
    assert!(counter(&s, "writes", "checked") > 500.0);
}

/// A provider's migration played by the test: Valkey replicating Redis 7.0, both started here;
/// the rehearsal observes it (`mode = "external"`) and its switch runs the team's `steps`.
async fn external(name: &str, steps: &str) -> (serde_json::Value, std::process::Output) {
    let src = start_bin(&crate::tls::redis_bin()).await;
    let dst = start_bin(&valkey_bin()).await;
    let mut d = conn(&dst).await;
    let port = src.primary().port.to_string();
    cmd(&mut d, &["REPLICAOF", "127.0.0.1", &port]).await;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        let i = cmd(&mut d, &["INFO", "replication"]).await;
        let i = i.as_str().unwrap_or_default();
        if valkey_chaos::valkey::embedded::parse_info(i, "master_link_status").as_deref()
            == Some("up")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = format!(
        r#"
name = "external"
duration = "16s"
[target]
timeout = "2s"
[migration]
source = "{}"
destination = "{}"
mode = "external"
{steps}
{LOAD}
[thresholds]
"tasks.redelivered" = "< 100"
"tasks.resurrected" = "< 100"
"tasks.stranded" = "< 100"
"#,
        url(&src),
        url(&dst)
    );
    let (o, out) = run_scenario(&scratch(name), "external", &text, &[], T);
    (summary(&out), o)
}

/// The provider's "stop the migration", as a team's step would call it: the destination (from
/// the step's environment) stops replicating.
fn stop_migration_step() -> String {
    format!(
        r#"
[[migration.step]]
at = "before-pause"
command = "echo stopping writers; echo source $VC_SOURCE"
[[migration.step]]
at = "at-promotion"
command = ["{}", "-c", "import os, redis; h, p = os.environ['VC_DESTINATION'].rsplit(':', 1); print('promoted', redis.Redis(host=h, port=int(p)).replicaof('NO', 'ONE'))"]
timeout = "30s"
[[migration.step]]
at = "after"
command = "echo clients on $VC_DESTINATION"
"#,
        python().display()
    )
}

#[tokio::test]
async fn an_external_migration_is_switched_by_the_teams_own_steps_and_loses_nothing() {
    let (s, o) = external("external-steps", &stop_migration_step()).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{:#}", show(&o), s["checks"]);
    let sw = &s["migration"]["switch"];
    let steps = sw["steps"].as_array().unwrap();
    let at: Vec<&str> = steps.iter().map(|x| x["at"].as_str().unwrap()).collect();
    assert_eq!(at, ["before-pause", "at-promotion", "after"], "{sw:#}");
    assert!(steps.iter().all(|x| x["exit"] == 0), "{sw:#}");
    assert!(
        steps[1]["output"]
            .as_str()
            .unwrap()
            .contains("promoted b'OK'"),
        "{sw:#}"
    );
    assert!(steps[2]["output"]
        .as_str()
        .unwrap()
        .contains("clients on 127.0.0.1:"));
    // The canary written before the pause reached the destination: it had everything.
    assert_eq!(sw["behind_bytes"], 0, "{sw:#}");
    for (w, c) in [("tasks", "lost"), ("writes", "lost")] {
        assert_eq!(counter(&s, w, c), 0.0, "{w}.{c}");
    }
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("step          at-promotion"), "{text}");
}

#[tokio::test]
async fn a_failing_step_stops_the_switch_and_the_run_does_not_pass() {
    let steps = r#"
[[migration.step]]
at = "at-promotion"
command = "echo the provider said no >&2; exit 3"
"#;
    let (s, o) = external("external-step-fails", steps).await;
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    let sw = &s["migration"]["switch"];
    assert_eq!(sw["steps"][0]["exit"], 3, "{sw:#}");
    assert!(sw["steps"][0]["output"]
        .as_str()
        .unwrap()
        .contains("the provider said no"));
    let said = s.to_string();
    assert!(said.contains("the switch stops here"), "{said}");
}

#[test]
fn an_external_switch_without_a_promotion_step_is_a_scenario_error() {
    let dir = scratch("external-no-step");
    let e = refused_scenario(
        &dir,
        "external",
        r#"
duration = "10s"
[migration]
source = "redis://127.0.0.1:6390"
destination = "redis://127.0.0.1:6391"
mode = "external"
[[workload]]
id = "w"
type = "commands"
[[fault]]
name = "cutover"
type = "switch"
at = "4s"
"#,
    );
    assert!(
        e.contains("external.toml:10:1") && e.contains("at-promotion"),
        "{e}"
    );
}
