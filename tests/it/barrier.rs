//! The start barrier and what it buys: shards of one run wait for each other on the target and
//! share one time zero (also a given `--start-at`), a shard that never comes is named, the
//! barrier's protocol holds against stale and duplicate registrations, every shard says who it is
//! to an OTLP receiver, and `merge` judges phase thresholds on the merged slots the way one agent
//! judges them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use valkey_chaos::plan::{Plan, Shard};
use valkey_chaos::run::barrier;
use valkey_chaos::run::RunError;
use valkey_chaos::run::StartOptions;
use valkey_chaos::valkey::{Conn, ConnectOptions, Route, Value};

use crate::shard::{finish, spawn_agent};
use crate::support::{self, check, cmd};

const T: Duration = Duration::from_secs(90);

fn p(x: &Path) -> String {
    x.display().to_string()
}

/// A small open-model load, `secs` long.
fn small(dir: &Path, name: &str, secs: u32) -> PathBuf {
    support::scenario(
        dir,
        name,
        &format!(
            r#"
name = "{name}"
seed = 5
duration = "{secs}s"

[[workload]]
id = "w"
type = "commands"
clients = 2
rate_per_sec = 100
[workload.commands]
mix = {{ get = 1 }}
keys = 10

[thresholds]
"w.error_rate" = "< 1%"
"#
        ),
    )
}

/// The target's clock, in µs since the epoch.
async fn server_time(c: &mut Conn) -> i64 {
    let v = cmd(c, &["TIME"]).await.into_array().unwrap();
    v[0].as_int().unwrap() * 1_000_000 + v[1].as_int().unwrap()
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

fn started(s: &serde_json::Value) -> SystemTime {
    humantime::parse_rfc3339_weak(s["started_at"].as_str().unwrap()).unwrap()
}

/// Poll until `HEXISTS key field` (bounded).
async fn until_registered(c: &mut Conn, key: &str, field: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while cmd(c, &["HEXISTS", key, field]).await != Value::Int(1) {
        assert!(
            Instant::now() < deadline,
            "{field} never registered at {key}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exists(c: &mut Conn, key: &str) -> bool {
    cmd(c, &["EXISTS", key]).await == Value::Int(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_shard_is_waited_for_and_both_share_time_zero() {
    let topo = support::start_single().await;
    let url = support::url(&topo);
    let mut c = support::conn(&topo).await;
    let dir = support::scratch("barrier-late");
    let sc = p(&small(&dir, "late", 2));
    let (o0, o1) = (dir.join("0"), dir.join("1"));
    let key = "vc:barrier:late-run:late:2";
    let args = |shard: &'static str, out: &Path| -> Vec<String> {
        [
            "run",
            "-q",
            "--target",
            &url,
            "--shard",
            shard,
            "--run-key",
            "late-run",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([p(out), sc.clone()])
        .collect()
    };
    let a0args = args("0/2", &o0);
    let a0 = spawn_agent(&a0args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    // Shard 1 comes only once shard 0 is waiting, and after the target's clock read `late`.
    until_registered(&mut c, key, "shard:0").await;
    let late = server_time(&mut c).await;
    let a1args = args("1/2", &o1);
    let a1 = spawn_agent(&a1args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let (r0, r1) = (finish(a0, T), finish(a1, T));
    for (i, r) in [&r0, &r1].into_iter().enumerate() {
        assert_eq!(r.status.code(), Some(0), "shard {i}\n{}", support::show(r));
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains(&format!("shard {i}/2: all 2 shards met at {key}")),
            "{err}"
        );
    }
    let (s0, s1) = (support::summary(&o0), support::summary(&o1));
    assert_eq!(s0["started_at"], s1["started_at"], "one time zero");
    assert!(
        micros(started(&s0)) > late,
        "time zero {} was fixed before shard 1 arrived (target clock {late} µs)",
        s0["started_at"]
    );
    for (i, s) in [&s0, &s1].into_iter().enumerate() {
        let sync = &s["start_sync"];
        assert_eq!(sync["mode"], "barrier");
        assert_eq!(sync["key"], key);
        assert_eq!(sync["arrived"], serde_json::json!([0, 1]));
        assert_eq!(s["run_key"], "late-run:late:2");
        assert_eq!(s["shard_index"], i);
        assert_eq!(s["shard_count"], 2);
        assert!(sync["late_ms"].as_f64().unwrap() >= 0.0);
    }
    // Shard 0 waited from before `late` to the start, shard 1 from after it.
    assert!(
        s0["start_sync"]["waited_secs"].as_f64() > s1["start_sync"]["waited_secs"].as_f64(),
        "{} vs {}",
        s0["start_sync"],
        s1["start_sync"]
    );
    assert!(
        !exists(&mut c, key).await,
        "the barrier is deleted at the end"
    );

    // The merge sees no skew between the time zeros.
    let m = dir.join("merged");
    let o = support::agent(&["merge", "--out", &p(&m), &p(&o0), &p(&o1)], T);
    assert_eq!(o.status.code(), Some(0), "{}", support::show(&o));
    let ms = support::summary(&m);
    assert_eq!(ms["start_skew"]["started_at_spread_ms"], 0.0);
    assert!(ms["start_skew"]["actual_spread_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(ms["started_at"], s0["started_at"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("start skew over 2 runs: time zeros 0.000 ms apart"),
        "{}",
        support::show(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_never_arrives_is_named_when_the_barrier_times_out() {
    let topo = support::start_single().await;
    let url = support::url(&topo);
    let mut c = support::conn(&topo).await;
    let dir = support::scratch("barrier-timeout");
    let sc = p(&small(&dir, "lonely", 1));
    let key = "vc:barrier:t1:lonely:3";
    let run = |i: u32, timeout: &str| {
        let out = p(&dir.join(i.to_string()));
        let shard = format!("{i}/3");
        spawn_agent(
            &[
                "run",
                "-q",
                "--target",
                &url,
                "--shard",
                &shard,
                "--barrier-timeout",
                timeout,
                "--out",
                &out,
                &sc,
            ],
            &[("VALKEY_CHAOS_RUN_KEY", "t1")],
        )
    };
    // Shard 0 waits longest; shard 1 comes once shard 0 is there and gives up first.
    let a0 = run(0, "8s");
    until_registered(&mut c, key, "shard:0").await;
    let a1 = run(1, "2s");
    let (r1, r0) = (finish(a1, T), finish(a0, T));
    for (i, r, within, left) in [(0, &r0, "8s", "; gave up before: 1/3"), (1, &r1, "2s", "")] {
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(3), "shard {i}\n{}", support::show(r));
        let want = format!(
            "start barrier {key}: shard 2/3 never arrived within {within} \
             (arrived: 0/3, 1/3{left})"
        );
        assert!(err.contains(&want), "{want:?} not in\n{err}");
        assert!(!dir.join(i.to_string()).join("summary.json").exists());
    }
    assert!(
        !exists(&mut c, key).await,
        "agents that gave up leave nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_is_time_zero_on_the_targets_clock() {
    let topo = support::start_single().await;
    let url = support::url(&topo);
    let mut c = support::conn(&topo).await;
    let dir = support::scratch("barrier-start-at");
    let sc = p(&small(&dir, "at", 1));
    // Eight seconds from now on the target's clock, to the millisecond: both agents must be up
    // and connected before then, even on a loaded machine.
    let at = UNIX_EPOCH + Duration::from_millis((server_time(&mut c).await / 1000 + 8000) as u64);
    let text = humantime::format_rfc3339_millis(at).to_string();
    let run = |i: u32| {
        let out = p(&dir.join(i.to_string()));
        let shard = format!("{i}/2");
        spawn_agent(
            &[
                "run",
                "-q",
                "--target",
                &url,
                "--shard",
                &shard,
                "--start-at",
                &text,
                "--out",
                &out,
                &sc,
            ],
            &[],
        )
    };
    let (a0, a1) = (run(0), run(1));
    for (i, r) in [finish(a0, T), finish(a1, T)].iter().enumerate() {
        assert_eq!(r.status.code(), Some(0), "shard {i}\n{}", support::show(r));
        let s = support::summary(&dir.join(i.to_string()));
        assert_eq!(
            s["started_at"],
            humantime::format_rfc3339_micros(at).to_string(),
            "shard {i}"
        );
        assert_eq!(s["start_sync"]["mode"], "start-at");
    }
    // A time already past is refused (exit 2), on the target's clock.
    let past = humantime::format_rfc3339_millis(at - Duration::from_secs(60)).to_string();
    let o = support::agent(
        &["run", "-q", "--target", &url, "--start-at", &past, &sc],
        T,
    );
    assert_eq!(o.status.code(), Some(2), "{}", support::show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has already passed on the target's clock"),
        "{}",
        support::show(&o)
    );
}

fn plan_of(shard: Shard) -> Plan {
    let mut plan = valkey_chaos::scenario::compile::compile_str(
        Path::new("proto.toml"),
        "name = \"proto\"\nduration = \"1s\"\n[[workload]]\nid = \"w\"\ntype = \"commands\"\nclients = 2\nrate_per_sec = 10\n",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    valkey_chaos::scenario::shard::apply(&mut plan, shard);
    plan
}

fn opts(timeout: Duration) -> StartOptions {
    StartOptions {
        run_key: Some("proto".into()),
        timeout,
        ..Default::default()
    }
}

/// The barrier's protocol in-process, against a real server: a live agent's index cannot be
/// taken, an agent that stops leaves nothing behind, an earlier run's barrier is cleared, and a
/// dead agent's registration does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_barrier_protocol_survives_duplicates_and_stale_runs() {
    let topo = support::start_single().await;
    let mut c = support::conn(&topo).await;
    let route = Route::direct(
        topo.primary().addr().to_string(),
        ConnectOptions {
            timeout: Duration::from_secs(2),
            lib_info: None,
            ..Default::default()
        },
    );
    let key = "vc:barrier:proto:proto:2";
    let (p0, p1) = (
        plan_of(Shard::new(0, 2).unwrap()),
        plan_of(Shard::new(1, 2).unwrap()),
    );

    // Two live agents cannot both be shard 0/2; the one waiting is stopped and clears up.
    let stop = CancellationToken::new();
    let waiting = {
        let (route, plan, stop) = (route.clone(), p0.clone(), stop.clone());
        tokio::spawn(async move {
            barrier::meet(&route, &plan, &opts(Duration::from_secs(30)), &stop)
                .await
                .map(|m| m.is_some())
        })
    };
    until_registered(&mut c, key, "shard:0").await;
    let e = barrier::meet(
        &route,
        &p0,
        &opts(Duration::from_secs(30)),
        &CancellationToken::new(),
    )
    .await
    .err()
    .expect("a second shard 0/2 is refused");
    assert!(
        matches!(&e, RunError::Runtime(m) if m.contains("shard 0/2 is already taken by another live agent")),
        "{e}"
    );
    stop.cancel();
    let first = waiting.await.unwrap();
    assert!(
        matches!(&first, Err(RunError::Runtime(m)) if m.contains("stopped while waiting at the start barrier")),
        "{:?}",
        first.as_ref().err().map(ToString::to_string)
    );
    assert!(!exists(&mut c, key).await, "a stopped agent leaves nothing");

    // An earlier run's finished barrier (a start in the past) is cleared: the new run meets.
    let now = server_time(&mut c).await;
    let old = (now - 60_000_000).to_string();
    let gone = format!("old|{old}|elsewhere pid 1");
    cmd(
        &mut c,
        &[
            "HSET", key, "start", &old, "shard:0", &gone, "shard:1", &gone,
        ],
    )
    .await;
    let other = {
        let (route, plan) = (route.clone(), p1.clone());
        tokio::spawn(async move {
            barrier::meet(
                &route,
                &plan,
                &opts(Duration::from_secs(30)),
                &CancellationToken::new(),
            )
            .await
        })
    };
    let m0 = barrier::meet(
        &route,
        &p0,
        &opts(Duration::from_secs(30)),
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .expect("a barrier");
    let m1 = other
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a barrier");
    assert_eq!(m0.wall, m1.wall, "one time zero");
    assert!(micros(m0.wall) > now, "not the earlier run's start");
    assert_eq!(m0.sync.arrived, [0, 1]);
    m0.leave().await;
    assert!(exists(&mut c, key).await, "shard 1 is still registered");
    m1.leave().await;
    assert!(
        !exists(&mut c, key).await,
        "the last to leave deletes the barrier"
    );

    // A registration nobody refreshed (its agent died waiting) does not complete the barrier.
    let dead = format!("dead|{}|elsewhere pid 1", now - 30_000_000);
    cmd(&mut c, &["HSET", key, "shard:1", &dead]).await;
    let e = barrier::meet(
        &route,
        &p0,
        &opts(Duration::from_secs(1)),
        &CancellationToken::new(),
    )
    .await
    .err()
    .expect("shard 1 is not really there");
    assert!(
        matches!(&e, RunError::Runtime(m) if m.contains("shard 1/2 never arrived within 1s (arrived: 0/2)")),
        "{e}"
    );
    assert!(!exists(&mut c, key).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shard_names_itself_to_the_otlp_receiver() {
    let stop = CancellationToken::new();
    let (sink, endpoint) = crate::otlp::grpc_receiver(stop.clone()).await;
    let topo = support::start_single().await;
    let url = support::url(&topo);
    let dir = support::scratch("barrier-otlp");
    let sc = p(&small(&dir, "named", 1));
    let run = |i: u32| {
        let out = p(&dir.join(i.to_string()));
        let shard = format!("{i}/2");
        spawn_agent(
            &[
                "run",
                "-q",
                "--target",
                &url,
                "--shard",
                &shard,
                "--run-key",
                "otel",
                "--otlp",
                &endpoint,
                "--trace-sample",
                "0.01",
                "--out",
                &out,
                &sc,
            ],
            &[],
        )
    };
    let (a0, a1) = (run(0), run(1));
    let (r0, r1) = (finish(a0, T), finish(a1, T));
    stop.cancel();
    let mut run_ids = vec![];
    for (i, r) in [&r0, &r1].into_iter().enumerate() {
        assert_eq!(r.status.code(), Some(0), "shard {i}\n{}", support::show(r));
        run_ids.push(
            support::summary(&dir.join(i.to_string()))["run_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (traces, _) = crate::otlp::spans(&sink);
    let (metrics, _) = crate::otlp::metrics(&sink);
    assert!(!traces.is_empty() && !metrics.is_empty(), "nothing arrived");
    let mut seen = std::collections::BTreeSet::new();
    for r in traces.iter().chain(&metrics) {
        let index = crate::otlp::attr_int(r, "valkey_chaos.shard.index");
        assert_eq!(crate::otlp::attr_int(r, "valkey_chaos.shard.count"), 2);
        assert_eq!(
            crate::otlp::attr_str(r, "valkey_chaos.run_key"),
            "otel:named:2"
        );
        let id = crate::otlp::attr_str(r, "valkey_chaos.run_id");
        assert_eq!(id, run_ids[index as usize], "shard {index}");
        assert_eq!(crate::otlp::attr_str(r, "service.instance.id"), id);
        seen.insert(index);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0, 1]);
}

/// One scenario with a server fault (shard 0 only) and a network fault (every shard), and phase
/// thresholds on both.
fn phased(dir: &Path) -> PathBuf {
    support::scenario(
        dir,
        "phased",
        r#"
name = "phased"
seed = 9
duration = "7s"

[[workload]]
id = "w"
type = "commands"
# Enough clients that 30 ms per round trip does not saturate them (16 per shard).
clients = 32
rate_per_sec = 400
[workload.commands]
mix = { get = 1 }
keys = 100

[[fault]]
name = "stall"
type = "debug-sleep"
at = "1s"
duration = "400ms"

[[fault]]
name = "slow"
type = "latency"
at = "4500ms"
duration = "1s"
[fault.latency]
delay = "30ms"

[thresholds]
"w.get.p99{during:stall}" = "> 100ms"
"w.get.count{during:stall}" = "> 0"
"w.get.rate{during:stall}" = "> 0"
"w.get.p50{during:slow}" = "> 25ms"
"w.get.rate{during:slow}" = "> 0"
"w.get.p99{before}" = "< 500ms"
"w.errors{after}" = "== 0"
"#,
    )
}

fn value(s: &serde_json::Value, metric: &str) -> f64 {
    let c = check(s, metric);
    c["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{metric} was not evaluated: {c}"))
}

/// `a` and `b` agree within `rel` of `b` (plus `abs`).
fn near(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= b.abs() * rel + abs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_phase_thresholds_match_a_single_agent_of_the_same_load() {
    let dir = support::scratch("barrier-phases");
    let sc = p(&phased(&dir));
    // One agent making the whole load.
    let single_t = support::start_single().await;
    let single = dir.join("single");
    let o = support::agent(
        &[
            "run",
            "-q",
            "--target",
            &support::url(&single_t),
            "--out",
            &p(&single),
            &sc,
        ],
        T,
    );
    assert_eq!(o.status.code(), Some(0), "{}", support::show(&o));
    drop(single_t);
    // Two shards through the barrier, on a server of their own.
    let topo = support::start_single().await;
    let url = support::url(&topo);
    let run = |i: u32| {
        let out = p(&dir.join(i.to_string()));
        let shard = format!("{i}/2");
        spawn_agent(
            &[
                "run", "-q", "--target", &url, "--shard", &shard, "--out", &out, &sc,
            ],
            &[],
        )
    };
    let (a0, a1) = (run(0), run(1));
    for (i, r) in [finish(a0, T), finish(a1, T)].iter().enumerate() {
        assert_eq!(r.status.code(), Some(0), "shard {i}\n{}", support::show(r));
    }
    let merged = dir.join("merged");
    let o = support::agent(
        &[
            "merge",
            "--out",
            &p(&merged),
            &p(&dir.join("0")),
            &p(&dir.join("1")),
            "--threshold",
            "w.get.p90{during:stall} > 0ms",
        ],
        T,
    );
    assert_eq!(o.status.code(), Some(0), "{}", support::show(&o));
    let (s, s0, s1, m) = (
        support::summary(&single),
        support::summary(&dir.join("0")),
        support::summary(&dir.join("1")),
        support::summary(&merged),
    );
    // Shard 1 did not inject the stall and does not judge it; the merge does, on both shards.
    assert!(s1["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c["metric"].as_str().unwrap().contains("stall")));
    let stall_count = "w.get.count{during:stall}";
    let (c0, cm) = (value(&s0, stall_count), value(&m, stall_count));
    assert!(
        near(cm, 2.0 * c0, 0.3, 0.0),
        "merged {stall_count} {cm}: shard 1's slots inside shard 0's stall window count too \
         (shard 0 alone: {c0})"
    );
    for metric in [
        "w.get.p99{during:stall}",
        stall_count,
        "w.get.rate{during:stall}",
        "w.get.p50{during:slow}",
        "w.get.rate{during:slow}",
        "w.get.p99{before}",
        "w.errors{after}",
    ] {
        let c = check(&m, metric);
        assert_eq!(c["passed"], true, "{c}");
        assert!(
            !c["shown"].as_str().unwrap().contains("not re-evaluated"),
            "{c}"
        );
    }
    // Within noise of one agent making the whole load. (A phase's count and median follow the
    // length of its impact window, which is measured and varies with the machine's load; the
    // rate, the stall's tail and the toxic's median do not.)
    let pairs = [
        ("w.get.p99{during:stall}", 0.3, 30_000.0),
        ("w.get.rate{during:stall}", 0.2, 10.0),
        ("w.get.p50{during:slow}", 0.25, 5_000.0),
        ("w.get.rate{during:slow}", 0.2, 10.0),
    ];
    for (metric, rel, abs) in pairs {
        let (one, merged) = (value(&s, metric), value(&m, metric));
        eprintln!("{metric}: merged {merged}, one agent {one}");
        assert!(
            near(merged, one, rel, abs),
            "{metric}: merged {merged} vs one agent {one}"
        );
    }
    assert_eq!(value(&m, "w.errors{after}"), 0.0);
    let flag = check(&m, "w.get.p90{during:stall}");
    assert_eq!(flag["passed"], true, "{flag}");
}
