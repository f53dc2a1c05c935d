//! Oracles that miss nothing and cry wolf never: each planted bug fails the run every time, and
//! its correct counterpart passes every time — against a real Valkey.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const T: Duration = Duration::from_secs(120);

fn run_out(sc: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    agent(&args, T)
}

fn spawn_agent(args: &[&str]) -> Child {
    Command::new(agent_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent")
}

fn wait_bounded(mut c: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        if c.try_wait().expect("wait").is_some() {
            return c.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("agent did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two agents as shards 0/2 and 1/2 of one lock scenario on one server, then `merge`.
fn two_shards_then_merge(
    name: &str,
    lock: &str,
) -> (serde_json::Value, serde_json::Value, serde_json::Value, i32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topo = rt.block_on(start_single());
    let u = url(&topo);
    let dir = scratch(name);
    let sc = scenario(
        &dir,
        name,
        &format!(
            r#"
duration = "3s"
[[workload]]
id = "locks"
type = "lock"
[workload.lock]
style = "redis-py"
names = 1
clients = 2
retry_interval = "5ms"
blocking_timeout = "2s"
fencing = true
{lock}
"#
        ),
    );
    let (d0, d1, m) = (dir.join("s0"), dir.join("s1"), dir.join("merged"));
    let a0 = spawn_agent(&[
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--target",
        &u,
        "--shard",
        "0/2",
        "--out",
        d0.to_str().unwrap(),
    ]);
    let a1 = spawn_agent(&[
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--target",
        &u,
        "--shard",
        "1/2",
        "--out",
        d1.to_str().unwrap(),
    ]);
    let (o0, o1) = (wait_bounded(a0, T), wait_bounded(a1, T));
    assert!(o0.status.code().is_some_and(|c| c <= 1), "{}", show(&o0));
    assert!(o1.status.code().is_some_and(|c| c <= 1), "{}", show(&o1));
    let om = agent(
        &[
            "merge",
            d0.to_str().unwrap(),
            d1.to_str().unwrap(),
            "--out",
            m.to_str().unwrap(),
        ],
        T,
    );
    drop(topo);
    (
        summary(&d0),
        summary(&d1),
        summary(&m),
        om.status.code().unwrap_or(-1),
    )
}

#[test]
fn two_agents_holding_one_lock_at_once_are_caught_by_merge() {
    // A lock whose TTL is shorter than the hold: each agent has one client, so neither alone sees
    // two holders — their histories together do.
    let (s0, s1, m, code) = two_shards_then_merge("xlock-bad", "ttl = \"30ms\"\nhold = \"80ms\"");
    assert_eq!(
        counter(&s0, "locks", "violations"),
        0.0,
        "one client cannot overlap itself"
    );
    assert_eq!(counter(&s1, "locks", "violations"), 0.0);
    let v = counter(&m, "locks", "violations");
    assert!(v >= 1.0, "merge saw no overlap between the agents");
    assert!(counter(&m, "locks", "lost_while_held") >= 1.0);
    assert_eq!(code, 1, "the merged verdict fails");
    let notes = m["events"].to_string();
    assert!(
        notes.contains("histories of 2 agents checked together"),
        "{notes}"
    );
}

#[test]
fn two_agents_taking_turns_on_one_lock_pass_merge() {
    let (s0, s1, m, code) = two_shards_then_merge("xlock-good", "ttl = \"10s\"\nhold = \"5ms\"");
    for s in [&s0, &s1, &m] {
        assert_eq!(counter(s, "locks", "violations"), 0.0);
        assert_eq!(counter(s, "locks", "fencing_violations"), 0.0);
    }
    assert!(counter(&m, "locks", "checked") > 20.0);
    assert_eq!(code, 0);
}

/// A fixed-window limiter through 300 ms of round trip, its window key deleted every 100 ms
/// behind its back (or not).
fn limiter_under_latency(name: &str, window: &str, delete: bool) -> (serde_json::Value, i32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topo = rt.block_on(start_single());
    let u = url(&topo);
    let dir = scratch(name);
    let sc = scenario(
        &dir,
        name,
        &format!(
            r#"
duration = "6s"
[target]
key_prefix = "vc:"
timeout = "3s"
[[workload]]
id = "rl"
type = "rate_limit"
[workload.rate_limit]
limiter = "fixed-window"
limit = 5
window = "{window}"
keys = 1
clients = 20
rate_per_sec = 60
[[fault]]
name = "far"
type = "latency"
at = "10ms"
duration = "5900ms"
[fault.latency]
delay = "150ms"
direction = "both"
"#
        ),
    );
    let out = dir.join("out");
    let deleter = delete.then(|| {
        let t = topo.primary().addr();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut c = valkey_chaos::valkey::Conn::connect(t, &Default::default())
                    .await
                    .unwrap();
                for _ in 0..70 {
                    let _ = c
                        .request(&valkey_chaos::valkey::Cmd::new("DEL").arg("vc:rl:rl:0"))
                        .await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
    });
    let o = run_out(&sc, &out, &["--target", &u]);
    if let Some(d) = deleter {
        d.join().unwrap();
    }
    drop(topo);
    (summary(&out), o.status.code().unwrap_or(-1))
}

#[test]
fn a_limiter_whose_key_vanishes_is_caught_even_at_300ms_round_trips() {
    let (s, code) = limiter_under_latency("rl-deleted", "1s", true);
    assert!(counter(&s, "rl", "overshoot") >= 1.0, "no overshoot seen");
    assert!(counter(&s, "rl", "overshoot_checked") >= 1.0);
    assert_eq!(code, 1);
}

#[test]
fn a_correct_limiter_at_300ms_round_trips_and_a_1500ms_window_passes() {
    for window in ["1s", "1500ms"] {
        let (s, code) = limiter_under_latency(&format!("rl-ok-{}", window.len()), window, false);
        assert_eq!(counter(&s, "rl", "overshoot"), 0.0, "window {window}");
        assert!(
            counter(&s, "rl", "overshoot_checked") >= 1.0,
            "window {window}: nothing could be checked"
        );
        assert!(
            counter(&s, "rl", "rejected") >= 1.0,
            "window {window}: the limit was never hit"
        );
        assert_eq!(code, 0, "window {window}");
    }
}

#[tokio::test]
async fn a_stale_holders_plain_del_is_caught_and_every_lost_hold_counted() {
    let dir = scratch("stale-del");
    let sc = scenario(
        &dir,
        "stale",
        r#"
duration = "3s"
[[workload]]
id = "etl"
type = "lock"
[workload.lock]
style = "set-nx-ex"
names = 1
clients = 4
ttl = "20ms"
hold = "60ms"
retry_interval = "5ms"
"#,
    );
    let s = run_plan(&sc, None).await;
    let v = s.counter("etl", "violations").unwrap();
    let lost = s.counter("etl", "lost_while_held").unwrap();
    assert!(v >= 5.0, "violations {v}");
    assert!(
        lost >= v.min(s.counter("etl", "acquired").unwrap() / 2.0),
        "lost {lost} of {v} violations"
    );
    assert!(!s.passed());
}

#[tokio::test]
async fn seventy_retries_are_attempts_not_duplicates() {
    let dir = scratch("retries70");
    let sc = scenario(
        &dir,
        "r70",
        r#"
duration = "1s"
[[workload]]
id = "q"
type = "dramatiq"
[workload.dramatiq]
queue = "r70"
producers = 1
rate_per_sec = 4
consumers = 1
threads = 4
work = "0ms"
fail_fraction = 1.0
max_retries = 70
min_backoff = "1ms"
max_backoff = "3ms"
drain_timeout = "30s"
"#,
    );
    let s = run_plan(&sc, None).await;
    let c = |n| s.counter("q", n).unwrap();
    assert!(c("enqueued") >= 2.0);
    assert_eq!(c("dead_lettered"), c("enqueued"), "{:#?}", s.counters);
    assert!(c("delivered") >= 71.0 * c("enqueued"));
    assert_eq!(c("duplicated"), 0.0);
    assert!(s.passed(), "{:#?}", s.checks);
}

/// A Dramatiq workload where one worker dies mid-message at 1.5 s.
fn crash(ack: &str) -> (serde_json::Value, i32) {
    let dir = scratch(&format!("crash-{ack}"));
    let sc = scenario(
        &dir,
        "crash",
        &format!(
            r#"
duration = "3s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "early"
producers = 1
rate_per_sec = 40
consumers = 2
threads = 4
prefetch = 8
work = "400ms"
ack = "{ack}"
heartbeat_timeout = "1s"
maintenance_chance = 0.3
drain_timeout = "20s"
[[fault]]
type = "consumer-crash"
at = "1500ms"
restart_after = "500ms"
[fault.consumer-crash]
workload = "tasks"
[thresholds]
"tasks.redelivered" = "< 1000"
"#
        ),
    );
    let out = dir.join("out");
    let o = run_out(&sc, &out, &[]);
    (summary(&out), o.status.code().unwrap_or(-1))
}

#[test]
fn a_worker_that_acks_before_its_work_and_dies_loses_messages() {
    let (s, code) = crash("before-work");
    assert!(
        counter(&s, "tasks", "unfinished") >= 1.0,
        "acked, never processed"
    );
    assert_eq!(code, 1);
}

#[test]
fn a_worker_that_acks_after_its_work_and_dies_only_redelivers() {
    let (s, code) = crash("after-work");
    assert!(counter(&s, "tasks", "redelivered") >= 1.0);
    for n in ["unfinished", "lost", "duplicated", "stuck"] {
        assert_eq!(counter(&s, "tasks", n), 0.0, "{n}");
    }
    assert_eq!(code, 0);
}

/// A RESP proxy that answers Dramatiq's `ack` itself (nil, as the script does) and never passes
/// it on when `drop_acks`; everything else goes to the server, one request at a time.
async fn resp_proxy(upstream: std::net::SocketAddr, drop_acks: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cbuf, mut sbuf) = (Vec::new(), Vec::new());
                let mut chunk = vec![0u8; 65536];
                loop {
                    let n = match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    cbuf.extend_from_slice(&chunk[..n]);
                    while let Ok(Some((v, used))) = valkey_chaos::valkey::resp::parse(&cbuf) {
                        let raw: Vec<u8> = cbuf.drain(..used).collect();
                        let args = v.into_array().unwrap_or_default();
                        let word = |i: usize| {
                            args.get(i)
                                .and_then(|a| a.as_str())
                                .unwrap_or("")
                                .to_ascii_lowercase()
                        };
                        if drop_acks && word(0).starts_with("eval") && word(4) == "ack" {
                            if client.write_all(b"$-1\r\n").await.is_err() {
                                return;
                            }
                            continue;
                        }
                        if server.write_all(&raw).await.is_err() {
                            return;
                        }
                        let reply = loop {
                            if let Ok(Some((_, used))) = valkey_chaos::valkey::resp::parse(&sbuf) {
                                break sbuf.drain(..used).collect::<Vec<u8>>();
                            }
                            match server.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => sbuf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        if client.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

async fn through_proxy(drop_acks: bool) -> valkey_chaos::summary::RunSummary {
    let t = start_single().await;
    let port = resp_proxy(t.primary().addr(), drop_acks).await;
    let dir = scratch(&format!("ackproxy-{drop_acks}"));
    let sc = scenario(
        &dir,
        "acks",
        r#"
duration = "2s"
[[workload]]
id = "q"
type = "dramatiq"
[workload.dramatiq]
queue = "acks"
producers = 1
rate_per_sec = 50
consumers = 1
threads = 4
drain_timeout = "5s"
"#,
    );
    run_plan(&sc, Some(format!("redis://127.0.0.1:{port}"))).await
}

#[tokio::test]
async fn acks_that_never_reach_the_server_are_caught() {
    let s = through_proxy(true).await;
    let stuck = s.counter("q", "stuck").unwrap();
    assert!(stuck >= 10.0, "acked messages left in the ack set: {stuck}");
    assert!(!s.passed());
}

#[tokio::test]
async fn the_same_proxy_passing_acks_on_is_clean() {
    let s = through_proxy(false).await;
    for n in ["stuck", "lost", "duplicated", "unfinished"] {
        assert_eq!(s.counter("q", n), Some(0.0), "{n}");
    }
    assert!(s.passed(), "{:#?}", s.checks);
}

#[tokio::test]
async fn enqueues_that_time_out_are_tracked_as_ambiguous_not_dropped() {
    let dir = scratch("ambiguous");
    let sc = scenario(
        &dir,
        "amb",
        r#"
duration = "3s"
[target]
timeout = "200ms"
[[workload]]
id = "q"
type = "dramatiq"
[workload.dramatiq]
queue = "amb"
producers = 2
rate_per_sec = 100
consumers = 1
threads = 4
drain_timeout = "10s"
[[fault]]
type = "blackhole"
at = "1s"
duration = "600ms"
[thresholds]
"q.error_rate" = "< 50%"
"#,
    );
    let s = run_plan(&sc, None).await;
    let c = |n| s.counter("q", n).unwrap();
    assert!(c("ambiguous") >= 1.0, "{:#?}", s.counters);
    assert_eq!(c("lost"), 0.0);
    assert!(c("ambiguous_landed") <= c("ambiguous"));
}

#[tokio::test]
async fn a_primary_that_comes_back_empty_under_slow_handlers_fails_the_run() {
    let mut t = start_single().await;
    let u = url(&t);
    let dir = scratch("empty-restart");
    let sc = scenario(
        &dir,
        "empty",
        r#"
duration = "3s"
[target]
timeout = "500ms"
[[workload]]
id = "q"
type = "dramatiq"
[workload.dramatiq]
queue = "empty"
producers = 1
rate_per_sec = 20
consumers = 1
threads = 8
prefetch = 16
work = "2s"
drain_timeout = "40s"
"#,
    );
    let mut c = conn(&t).await;
    let run = tokio::spawn(async move { run_plan(&sc, Some(u)).await });
    // Once 2 s of messages (20/s, 2 s of work each) are enqueued, whenever the load started.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = cmd(&mut c, &["HLEN", "dramatiq:empty.msgs"]).await;
        if n.as_int().unwrap_or(0) >= 40 {
            break;
        }
        assert!(Instant::now() < deadline, "no 40 messages in 20s: {n:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    // Restarted with no persistence: everything it held is gone.
    t.kill_node(0);
    t.restart_node(0).await.unwrap();
    let s = run.await.unwrap();
    let c = |n| s.counter("q", n).unwrap();
    assert!(
        c("lost") + c("unfinished") >= 1.0,
        "messages vanished with the data and nobody noticed: {:#?}",
        s.counters
    );
    assert!(!s.passed());
}
