//! Faults against real processes: failover under load with Sentinel, proxy toxics that shift
//! latency or break connections, memory pressure with both eviction policies, idle timeouts,
//! and healing after Ctrl-C.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn killing_the_primary_fails_over_and_workloads_recover() {
    let dir = scratch("kill");
    let sc = scenario(
        &dir,
        "kill",
        r#"
duration = "14s"
[target]
timeout = "1s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "failover"
producers = 1
rate_per_sec = 50
consumers = 1
threads = 4
drain_timeout = "15s"
[[workload]]
id = "locks"
type = "lock"
[workload.lock]
names = 2
clients = 4
ttl = "5s"
hold = "10ms"
retry_interval = "20ms"

[[fault]]
name = "kill-primary"
type = "kill"
at = "3s"
node = "primary"
restart_after = "6s"

[thresholds]
"tasks.enqueue.count{after}" = "> 0"
"locks.acquire.count{after}" = "> 0"
"#,
    );
    let s = run_plan(&sc, None).await;
    let f = &s.faults[0];
    assert_eq!(f.kind, "kill");
    assert!(f.target.starts_with("primary"), "{f:?}");
    assert!(
        f.injected_at_secs.is_some() && f.healed_at_secs.is_some(),
        "{f:?}"
    );
    assert!(f.heal_error.is_none(), "{f:?}");
    // Sentinel promoted the replica and the workloads found it.
    assert!(
        s.events.iter().any(|e| e.detail.contains("to replica-1")),
        "{:#?}",
        s.events
    );
    let u = f
        .unavailability
        .iter()
        .find(|u| u.workload == "tasks")
        .unwrap_or_else(|| panic!("no unavailability measured: {f:?}"));
    let w = u.window_secs.expect("tasks recovered");
    assert!(w > 0.5 && w < 10.0, "unavailability {w}s");
    assert!(s.checks.iter().all(|c| c.passed), "{:#?}", s.checks);
    // The oracle reports what happened; async replication may lose acknowledged writes.
    assert!(s.counter("tasks", "enqueued").unwrap() > 200.0);
    assert_eq!(
        s.counter("tasks", "duplicated"),
        Some(0.0),
        "no duplicates expected from a kill with no in-flight acks lost"
    );
    assert!(s.counter("tasks", "lost").is_some());
}

#[tokio::test]
async fn latency_toxic_shifts_p50_and_disappears_after_heal() {
    let dir = scratch("latency");
    let sc = scenario(
        &dir,
        "latency",
        r#"
duration = "7s"
[[workload]]
id = "w"
type = "commands"
clients = 1
# Paced, not a closed loop: a 100 ms slot of fast GETs that joins the impact window after the
# heal adds 3 operations against 90 slow ones, not thousands that would move the p50.
rate_per_sec = 30
[workload.commands]
mix = { get = 1 }

[[fault]]
type = "latency"
at = "2s"
duration = "3s"
[fault.latency]
delay = "20ms"
direction = "upstream"

[thresholds]
"w.get.p50{before}" = "< 5ms"
"w.get.p50{during:0}" = ">= 14ms"
"w.get.p50{after}" = "< 5ms"
"#,
    );
    let s = run_plan(&sc, None).await;
    assert!(s.checks.iter().all(|c| c.passed), "{:#?}", s.checks);
    // The shift itself: 20ms ±30% over the p50 before the fault.
    let before = s
        .checks
        .iter()
        .find(|c| c.metric == "w.get.p50{before}")
        .unwrap()
        .value
        .unwrap();
    let during = s
        .checks
        .iter()
        .find(|c| c.metric == "w.get.p50{during:0}")
        .unwrap()
        .value
        .unwrap();
    let shift = during - before;
    assert!(
        (14_000.0..=26_000.0).contains(&shift),
        "p50 moved by {shift}us ({before} → {during})"
    );
    assert_eq!(s.faults[0].heal_error, None);
    assert!(
        s.faults[0].target.contains("via proxy"),
        "{:?}",
        s.faults[0]
    );
}

#[tokio::test]
async fn blackhole_times_out_and_reset_breaks_connections() {
    let dir = scratch("blackhole");
    let sc = scenario(
        &dir,
        "bh",
        r#"
duration = "8s"
[target]
timeout = "300ms"
[[workload]]
id = "w"
type = "commands"
clients = 2
# 100 ms between a client's starts: only a client stalled that long at the cut could have two.
rate_per_sec = 20
[workload.commands]
mix = { get = 1 }

[[fault]]
name = "hole"
type = "blackhole"
at = "1s"
duration = "2s"

[[fault]]
name = "rst"
type = "reset"
at = "4500ms"
duration = "1s"

[thresholds]
# Operations belong to the phase they were meant to start in: a request in flight when the
# blackhole starts (at most one per client) times out as a `before` operation.
"w.errors{before}" = "<= 2"
"w.error_rate{after}" = "< 1%"
"#,
    );
    let s = run_plan(&sc, None).await;
    let get = s.op("w", "get").unwrap();
    assert!(
        get.errors_by_kind.get("timeout").copied().unwrap_or(0) > 0,
        "{get:?}"
    );
    assert!(
        get.errors_by_kind.get("connection").copied().unwrap_or(0) > 0,
        "{get:?}"
    );
    assert!(s.checks.iter().all(|c| c.passed), "{:#?}", s.checks);
    assert!(s
        .faults
        .iter()
        .all(|f| f.healed_at_secs.is_some() && f.heal_error.is_none()));
}

fn memory_scenario(policy: &str) -> String {
    format!(
        r#"
duration = "9s"
[[workload]]
id = "tasks"
type = "dramatiq"
rate_per_sec = 300
stages = [{{ duration = "2s", target = 300 }}, {{ duration = "10ms", target = 0 }}]
[workload.dramatiq]
queue = "evict"
producers = 2
consumers = 2
threads = 8
consume_after = "7s"
drain_timeout = "15s"

# The cache starts writing after the broker went idle, so broker keys are the least recently used.
[[workload]]
id = "cache"
type = "commands"
clients = 4
stages = [{{ duration = "2500ms", target = 0 }}, {{ duration = "10ms", target = 3000 }}]
[workload.commands]
mix = {{ setex = 1 }}
keys = 10000000
value_bytes = 2000

[[fault]]
type = "memory"
at = "3s"
duration = "3s"
[fault.memory]
headroom = "256kb"
policy = "{policy}"
"#
    )
}

#[tokio::test]
async fn allkeys_lru_evicts_broker_keys_and_volatile_lru_does_not() {
    let dir = scratch("memory");
    let all = run_plan(
        &scenario(&dir, "allkeys", &memory_scenario("allkeys-lru")),
        None,
    )
    .await;
    let vol = run_plan(
        &scenario(&dir, "volatile", &memory_scenario("volatile-lru")),
        None,
    )
    .await;
    let bad = |s: &valkey_chaos::summary::RunSummary| {
        s.counter("tasks", "lost").unwrap()
            + s.counter("tasks", "stuck").unwrap()
            + s.counter("tasks", "missing_payloads").unwrap()
    };
    assert!(all.counter("tasks", "enqueued").unwrap() > 300.0);
    assert!(
        bad(&all) > 0.0,
        "allkeys-lru should have evicted broker keys: {:#?}",
        all.counters
    );
    assert_eq!(
        bad(&vol),
        0.0,
        "volatile-lru must not touch broker keys: {:#?}",
        vol.counters
    );
    assert_eq!(
        vol.counter("tasks", "acked"),
        vol.counter("tasks", "enqueued")
    );
    for s in [&all, &vol] {
        assert!(s.faults[0].heal_error.is_none(), "{:?}", s.faults[0]);
    }
}

#[tokio::test]
async fn idle_timeout_kills_idle_connections_and_the_next_command_fails() {
    let dir = scratch("idle");
    let sc = scenario(
        &dir,
        "idle",
        r#"
duration = "8s"
[[workload]]
id = "cron"
type = "commands"
clients = 1
rate_per_sec = 0.4
[workload.commands]
mix = { incr = 1 }

[[fault]]
type = "idle-timeout"
at = "500ms"
duration = "7s"
[fault.idle-timeout]
timeout = "1s"
"#,
    );
    let s = run_plan(&sc, None).await;
    let incr = s.op("cron", "incr").unwrap();
    assert!(
        incr.errors_by_kind.get("connection").copied().unwrap_or(0) >= 1,
        "the idle connection was closed by the server: {incr:?}"
    );
    assert!(incr.ok >= 1, "and the client reconnected: {incr:?}");
}

/// `CLIENT PAUSE ALL` holds every command, `CLIENT UNPAUSE` included, so the pause must end by
/// the server's own timeout at the fault's duration: a 600 ms pause of all clients holds reads
/// (a GET waits hundreds of ms) and is over well before the 1.6 s a `duration + 1 s` pause left.
#[tokio::test]
async fn client_pause_all_holds_reads_for_its_duration_not_longer() {
    let dir = scratch("pause-all");
    let sc = scenario(
        &dir,
        "pause-all",
        r#"
duration = "4s"
[[workload]]
id = "w"
type = "commands"
clients = 1
[workload.commands]
mix = { get = 1 }
[[fault]]
type = "client-pause"
at = "1s"
duration = "600ms"
[fault.client-pause]
mode = "all"
"#,
    );
    let s = run_plan(&sc, None).await;
    let f = &s.faults[0];
    assert_eq!(f.heal_error, None, "{f:?}");
    let held = f.healed_at_secs.unwrap() - f.injected_at_secs.unwrap();
    assert!((0.5..1.3).contains(&held), "paused for {held:.3}s: {f:?}");
    // Reads were held too (mode all), for about the pause.
    let get = s.op("w", "get").unwrap();
    assert!(get.latency_us.max >= 400_000, "{get:?}");
    assert!(get.latency_us.max < 1_300_000, "{get:?}");
    assert_eq!(get.errors, 0, "{get:?}");
}

#[tokio::test]
async fn ctrl_c_mid_fault_heals_server_configuration() {
    let t = start_single().await;
    let mut c = conn(&t).await;
    let mut before = vec![];
    for k in ["maxmemory", "maxmemory-policy", "timeout"] {
        before.push(cfg_get(&mut c, k).await);
    }
    let dir = scratch("heal");
    let sc = scenario(
        &dir,
        "heal",
        r#"
duration = "60s"
[[workload]]
id = "w"
type = "commands"
clients = 1
rate_per_sec = 50
[[fault]]
type = "memory"
at = "500ms"
duration = "50s"
[fault.memory]
maxmemory = "64mb"
policy = "allkeys-random"
[[fault]]
type = "idle-timeout"
at = "500ms"
duration = "50s"
[fault.idle-timeout]
timeout = "7s"
[[fault]]
type = "client-pause"
at = "1s"
duration = "50s"
[fault.client-pause]
mode = "write"
"#,
    );
    let mut child = std::process::Command::new(agent_bin())
        .args(["run", sc.to_str().unwrap(), "--target", &url(&t), "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the faults are in place (client-pause fires half a second after the others).
    let deadline = Instant::now() + Duration::from_secs(20);
    while cfg_get(&mut c, "maxmemory").await != "67108864"
        || cfg_get(&mut c, "timeout").await != "7"
    {
        assert!(Instant::now() < deadline, "faults never injected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And until writes are paused: a SET that does not answer within 300 ms.
    loop {
        let mut probe = conn(&t).await;
        if tokio::time::timeout(
            Duration::from_millis(300),
            cmd(&mut probe, &["SET", "vc:pause-probe", "1"]),
        )
        .await
        .is_err()
        {
            break;
        }
        assert!(Instant::now() < deadline, "writes never paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "agent did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = vec![
        cfg_get(&mut c, "maxmemory").await,
        cfg_get(&mut c, "maxmemory-policy").await,
        cfg_get(&mut c, "timeout").await,
    ];
    assert_eq!(after, before, "configuration restored after Ctrl-C");
    // Writes are no longer paused (the pause would hold them for another 45 s).
    assert!(
        tokio::time::timeout(
            Duration::from_secs(10),
            cmd(&mut c, &["SET", "vc:after-heal", "1"])
        )
        .await
        .is_ok(),
        "writes still paused"
    );
}

async fn cfg_get(c: &mut valkey_chaos::valkey::Conn, k: &str) -> String {
    let v = cmd(c, &["CONFIG", "GET", k]).await;
    v.into_array().unwrap()[1].as_str().unwrap().to_string()
}

/// Destructive faults against a non-local target are refused before any connection is made
/// (the `.invalid` host never resolves: nothing leaves the machine); `--skip-destructive` is
/// offered, and the double opt-in is required.
#[test]
fn destructive_faults_against_a_remote_target_are_refused() {
    let dir = scratch("refuse");
    let body = |allow: bool| {
        format!(
            "duration = \"5s\"\nallow_destructive = {allow}\n[[workload]]\nid = \"w\"\ntype = \"commands\"\nclients = 1\n[[fault]]\nname = \"stop-it\"\ntype = \"client-pause\"\nat = \"1s\"\nduration = \"1s\"\n"
        )
    };
    let remote = "redis://valkey.staging.invalid:6379";
    for (allow, flag) in [
        (false, None),
        (false, Some("--allow-destructive")),
        (true, None),
    ] {
        let sc = scenario(&dir, "refuse", &body(allow));
        let mut args = vec!["run", sc.to_str().unwrap(), "--target", remote, "-q"];
        args.extend(flag);
        let o = agent(&args, Duration::from_secs(20));
        assert_eq!(
            o.status.code(),
            Some(2),
            "allow={allow} flag={flag:?}: {}",
            show(&o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("refusing fault #0 \"stop-it\" (type client-pause)"),
            "{err}"
        );
        assert!(
            err.contains("allow_destructive = true")
                && err.contains("--allow-destructive")
                && err.contains("--skip-destructive"),
            "{err}"
        );
        assert!(!err.contains("running "), "no load may start: {err}");
    }
}

/// The lagging-replica scenario with or without its replication lag (the failover is the same).
fn lagging_failover(with_lag: bool) -> String {
    let text = std::fs::read_to_string(repo_root().join("scenarios/failover-lagging-replica.toml"))
        .expect("scenario");
    if with_lag {
        return text;
    }
    let a = text.find("[[fault]]\nname = \"lag\"").expect("lag fault");
    let b = text
        .find("[[fault]]\nname = \"failover\"")
        .expect("failover fault");
    format!("{}{}", &text[..a], &text[b..])
}

#[test]
fn a_lagging_replica_and_a_failover_lose_acknowledged_writes_and_fail() {
    let dir = scratch("lagging");
    let sc = scenario(&dir, "lagging", &lagging_failover(true));
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = summary(&out);
    let lost = counter(&s, "writes", "lost");
    let written = counter(&s, "writes", "written");
    // 3 s of lagging writes at 200 adds/s before the failover: hundreds never reached the replica.
    assert!(lost >= 50.0 && lost < written, "lost {lost} of {written}");
    let check = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "writes.lost")
        .expect("writes.lost is a check");
    assert_eq!(check["passed"], false);
    // The failover says the replica was behind, and an impact window holds the loss.
    let faults = s["faults"].as_array().unwrap();
    assert!(
        faults[1]["target"]
            .as_str()
            .unwrap()
            .contains("bytes behind"),
        "{}",
        faults[1]
    );
    let in_windows: f64 = faults
        .iter()
        .filter_map(|f| f["impact"]["safety"]["writes.lost"].as_f64())
        .sum();
    assert!(
        in_windows >= 1.0,
        "no impact window holds the lost writes: {faults:#?}"
    );
}

#[test]
fn the_same_failover_with_the_replica_in_sync_loses_nothing() {
    let dir = scratch("in-sync");
    let sc = scenario(&dir, "insync", &lagging_failover(false));
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    assert_eq!(counter(&s, "writes", "lost"), 0.0);
    assert!(counter(&s, "writes", "checked") > 1000.0);
    // The failover's impact window covers the primary change and every error it caused.
    let f = &s["faults"].as_array().unwrap()[0];
    assert!(
        f["target"].as_str().unwrap().contains("had everything"),
        "{f}"
    );
    let imp = &f["impact"];
    let changed_at = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "primary_changed")
        .map(|e| e["at_secs"].as_f64().unwrap())
        .expect("the primary changed");
    // A failover waits for the sentinels to name the new primary: the change is stamped then,
    // between the injection and the heal, not when it was next looked up.
    let (inj, heal) = (
        f["injected_at_secs"].as_f64().unwrap(),
        f["healed_at_secs"].as_f64().unwrap(),
    );
    assert!(
        inj <= changed_at && changed_at <= heal,
        "primary change at {changed_at}s, outside the failover ({inj}s to {heal}s)"
    );
    let until = imp["until_secs"].as_f64().unwrap();
    assert!(
        until >= changed_at,
        "impact ends at {until}s, before the primary change at {changed_at}s"
    );
    assert_eq!(imp["recovered"], true, "{imp}");
    let w = &imp["workloads"].as_array().unwrap()[0];
    let errors = op(&s, "writes", "add")["errors"].as_u64().unwrap();
    assert_eq!(
        w["errors"].as_u64().unwrap(),
        errors,
        "every error of the run falls inside the failover's impact window: {imp}"
    );
    if errors > 0 {
        let un = w["unavailable_ms"]
            .as_f64()
            .expect("unavailability measured");
        assert!(un > 0.0 && un < 10_000.0, "{imp}");
    }
}

#[test]
fn a_crashed_consumer_is_redelivered_not_duplicated() {
    let dir = scratch("consumer-crash");
    let sc = scenario(
        &dir,
        "crash",
        r#"
duration = "6s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "crash"
producers = 1
rate_per_sec = 100
consumers = 2
threads = 4
prefetch = 8
work = "100ms"
heartbeat_timeout = "1s"
maintenance_chance = 0.2
drain_timeout = "20s"

[[fault]]
name = "worker-dies"
type = "consumer-crash"
at = "2s"
restart_after = "1s"
[fault.consumer-crash]
workload = "tasks"
consumer = 0

[thresholds]
"tasks.redelivered" = "< 100"
"#,
    );
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    let c = |n| counter(&s, "tasks", n);
    assert!(
        c("redelivered") >= 1.0,
        "the crashed worker's messages came back"
    );
    for n in ["duplicated", "lost", "unfinished", "stuck", "resurrected"] {
        assert_eq!(c(n), 0.0, "{n}");
    }
    assert_eq!(c("acked"), c("enqueued"), "every message ended");
    let notes: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|d| d.contains("consumer 0") && d.contains("crashed holding")),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|d| d.contains("redelivered") && d.contains("fault #0")),
        "{notes:#?}"
    );
}
