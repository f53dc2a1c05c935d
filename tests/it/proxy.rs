//! The RESP-aware fault proxy against real servers, toxic by toxic, as a client sees it: an
//! injected error carries the very text the engine itself sends (Redis 7.0, Valkey 8.1, 9.x), a
//! dropped reply's command did run, the idle reaper closes what idled past its timeout and spares
//! the rest, per-command latency holds the writes it names and not the reads, and a flip sends
//! new connections to another server.

use std::path::Path;
use std::time::{Duration, Instant};

use valkey_chaos::fault::proxy::{Act, Proxy, RespOptions, RespToxic};
use valkey_chaos::fault::replies::Engine;
use valkey_chaos::plan::protocol::{AfterDrop, CommandClass, CommandFilter, ErrorCode};
use valkey_chaos::valkey::{Cmd, Conn, ConnectOptions, Error, ErrorKind, Value};

use crate::support::*;
use crate::tls::redis_bin;

fn opts(timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        lib_info: None,
        timeout,
        ..Default::default()
    }
}

async fn connect(addr: std::net::SocketAddr) -> Conn {
    Conn::connect(addr, &opts(Duration::from_secs(3)))
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

async fn send(c: &mut Conn, args: &[&str]) -> Result<Value, Error> {
    let mut cmd = Cmd::new(args[0]);
    for a in &args[1..] {
        cmd.push(*a);
    }
    c.request(&cmd).await
}

/// The error text a server answers `args` with (it must be an error).
async fn refusal(c: &mut Conn, args: &[&str]) -> String {
    match send(c, args).await {
        Err(e) => e.msg,
        Ok(v) => panic!("{args:?} succeeded: {v:?}"),
    }
}

fn only(commands: &[&str]) -> CommandFilter {
    CommandFilter {
        commands: commands.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

async fn resp_proxy(t: &Topology) -> Proxy {
    let addr = t.primary().addr();
    let engine = Engine::detect(addr, &opts(Duration::from_secs(3))).await;
    assert!(engine.is_some(), "cannot ask {addr} which engine it is");
    Proxy::start_resp(
        addr,
        RespOptions {
            engine,
            seed: 7,
            ..Default::default()
        },
    )
    .await
    .expect("start the RESP proxy")
}

/// What the proxy answers `args` with while an `error` toxic of `code` acts on `SET`/`EVALSHA`.
async fn injected(p: &Proxy, code: ErrorCode, args: &[&str]) -> String {
    p.add(RespToxic {
        id: 1,
        act: Act::Error {
            code,
            filter: only(&["SET", "EVALSHA"]),
            reply: p.error_reply(code),
        },
    });
    let mut c = connect(p.listen).await;
    let text = refusal(&mut c, args).await;
    p.remove(1);
    // Healed: the same connection is served again.
    assert_eq!(
        send(&mut c, &["SET", "vc:proxy:after", "1"]).await.ok(),
        Some(Value::Simple("OK".into()))
    );
    text
}

async fn same_texts_as(bin: &Path) {
    let a = start_bin(bin).await;
    let b = start_bin(bin).await;
    let mut direct = conn(&a).await;
    let mut replica = conn(&b).await;
    let port = a.primary().addr().port().to_string();
    cmd(&mut replica, &["REPLICAOF", "127.0.0.1", &port]).await;
    let p = resp_proxy(&a).await;

    let sha = "ffffffffffffffffffffffffffffffffffffffff";
    let real = refusal(&mut direct, &["EVALSHA", sha, "0"]).await;
    assert_eq!(
        injected(&p, ErrorCode::NoScript, &["EVALSHA", sha, "0"]).await,
        real,
        "{}",
        bin.display()
    );

    let real = refusal(&mut replica, &["SET", "vc:proxy:k", "v"]).await;
    assert!(real.starts_with("READONLY"), "{real}");
    assert_eq!(
        injected(&p, ErrorCode::ReadOnly, &["SET", "vc:proxy:k", "v"]).await,
        real
    );

    // BUSY: a script spinning past busy-reply-threshold, seen from a second connection.
    cmd(
        &mut direct,
        &["CONFIG", "SET", "busy-reply-threshold", "100"],
    )
    .await;
    let addr = a.primary().addr();
    let spin = tokio::spawn(async move {
        let mut c = connect(addr).await;
        let body = "local t = redis.call('TIME') \
            local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + 3000000 \
            repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop \
            return 1";
        let _ = send(&mut c, &["EVAL", body, "0"]).await;
    });
    let mut real = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = send(&mut direct, &["GET", "vc:proxy:k"]).await {
            real = e.msg;
            break;
        }
    }
    let _ = send(&mut direct, &["SCRIPT", "KILL"]).await;
    spin.await.unwrap();
    assert!(real.starts_with("BUSY"), "{real:?}");
    assert_eq!(
        injected(&p, ErrorCode::Busy, &["SET", "vc:proxy:k", "v"]).await,
        real
    );

    cmd(
        &mut direct,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    )
    .await;
    cmd(&mut direct, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let real = refusal(&mut direct, &["SET", "vc:proxy:k", "v"]).await;
    cmd(&mut direct, &["CONFIG", "SET", "maxmemory", "0"]).await;
    assert!(real.starts_with("OOM"), "{real}");
    assert_eq!(
        injected(&p, ErrorCode::Oom, &["SET", "vc:proxy:k", "v"]).await,
        real
    );
}

#[tokio::test]
async fn injected_errors_carry_each_engines_own_text() {
    same_texts_as(&redis_bin()).await;
    same_texts_as(&valkey8_bin()).await;
    same_texts_as(&valkey_bin()).await;
}

#[tokio::test]
async fn a_dropped_reply_leaves_its_command_done_and_the_client_unsure() {
    let t = start_single().await;
    let p = resp_proxy(&t).await;
    let mut direct = conn(&t).await;
    for (then, kind) in [
        (AfterDrop::Close, ErrorKind::Connection),
        (AfterDrop::Hang, ErrorKind::Timeout),
    ] {
        p.add(RespToxic {
            id: 2,
            act: Act::DropReply {
                filter: only(&["INCR"]),
                then,
            },
        });
        let mut c = Conn::connect(p.listen, &opts(Duration::from_millis(500)))
            .await
            .expect("connect through the proxy");
        // A read the filter does not name is served.
        assert!(send(&mut c, &["GET", "vc:proxy:n"]).await.is_ok());
        let e = send(&mut c, &["INCR", "vc:proxy:n"]).await.unwrap_err();
        assert_eq!(e.kind, kind, "{then:?}: {e}");
        assert!(e.is_ambiguous(), "{then:?}: {e}");
        p.remove(2);
        let n = cmd(&mut direct, &["GET", "vc:proxy:n"]).await;
        let want = if then == AfterDrop::Close { "1" } else { "2" };
        assert_eq!(n.as_str(), Some(want), "the INCR ran on the server");
    }
}

#[tokio::test]
async fn the_idle_reaper_closes_idle_connections_and_spares_busy_ones() {
    let t = start_single().await;
    let p = resp_proxy(&t).await;
    p.add(RespToxic {
        id: 3,
        act: Act::IdleReap(Duration::from_millis(600)),
    });
    let mut idle = connect(p.listen).await;
    let mut busy = connect(p.listen).await;
    let mut short = connect(p.listen).await;
    assert!(send(&mut idle, &["PING"]).await.is_ok());
    // Busy: a command every 100 ms for 1.8 s; short: idle 100 ms at a time.
    for _ in 0..18 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(send(&mut busy, &["PING"]).await.is_ok(), "busy was reaped");
        assert!(
            send(&mut short, &["GET", "x"]).await.is_ok(),
            "short was reaped"
        );
    }
    let e = send(&mut idle, &["PING"]).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Connection, "{e}");
    p.remove(3);
    let mut again = connect(p.listen).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        send(&mut again, &["PING"]).await.is_ok(),
        "reaped after the heal"
    );
}

#[tokio::test]
async fn command_latency_holds_the_writes_it_names_not_the_reads() {
    let t = start_single().await;
    let p = resp_proxy(&t).await;
    p.add(RespToxic {
        id: 4,
        act: Act::Latency {
            filter: CommandFilter {
                class: Some(CommandClass::Writes),
                ..Default::default()
            },
            delay: Duration::from_millis(300),
            jitter: Duration::ZERO,
        },
    });
    let mut c = connect(p.listen).await;
    let mut slowest_read = Duration::ZERO;
    for i in 0..5 {
        let t0 = Instant::now();
        assert!(send(&mut c, &["SET", "vc:proxy:w", &i.to_string()])
            .await
            .is_ok());
        let write = t0.elapsed();
        assert!(
            write >= Duration::from_millis(300),
            "a write took {write:?}"
        );
        let t0 = Instant::now();
        assert!(send(&mut c, &["GET", "vc:proxy:w"]).await.is_ok());
        slowest_read = slowest_read.max(t0.elapsed());
    }
    assert!(
        slowest_read < Duration::from_millis(300),
        "{slowest_read:?}"
    );
}

#[tokio::test]
async fn a_flip_sends_new_connections_to_the_other_server() {
    let a = start_single().await;
    let b = start_single().await;
    cmd(&mut conn(&a).await, &["SET", "vc:proxy:who", "a"]).await;
    cmd(&mut conn(&b).await, &["SET", "vc:proxy:who", "b"]).await;
    let p = resp_proxy(&a).await;
    let mut old = connect(p.listen).await;
    let who = send(&mut old, &["GET", "vc:proxy:who"]).await.unwrap();
    assert_eq!(who.as_str(), Some("a"));
    p.repoint(b.primary().addr());
    // The live connection is closed (the client reconnects), the new one lands on b.
    let e = send(&mut old, &["GET", "vc:proxy:who"]).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Connection, "{e}");
    let mut new = connect(p.listen).await;
    let who = send(&mut new, &["GET", "vc:proxy:who"]).await.unwrap();
    assert_eq!(who.as_str(), Some("b"));
}

/// A Dramatiq workload whose broker scripts (`EVALSHA`: enqueue, fetch, ack) are answered
/// `reply` for 1.5 s, its client swallowing `swallow` (a planted bug) or nothing. Consumers that
/// met the errors restart with Dramatiq's backoff: the load leaves 5.5 s to see them back.
fn refused_broker(reply: &str, swallow: &str) -> String {
    format!(
        r#"
duration = "8s"
recover_within = "5s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "refused"
producers = 1
rate_per_sec = 60
consumers = 2
threads = 4
work = "1ms"
drain_timeout = "20s"
swallow_errors = [{swallow}]
[[fault]]
name = "refused"
type = "error"
at = "1s"
duration = "1500ms"
[fault.error]
reply = "{reply}"
commands = ["EVALSHA"]
"#
    )
}

#[tokio::test]
async fn an_error_on_the_broker_is_an_error_and_a_client_that_swallows_it_loses_messages() {
    let dir = scratch("proxy-broker");
    // Each row of docs/workloads.md's reaction table: the reply, the kind the agent records it
    // as, and whether redis-py raises a ConnectionError for it (Dramatiq then retries the ack).
    let rows = [
        ("LOADING", "loading", true, ""),
        ("NOAUTH", "auth", true, ""),
        ("OOM", "oom", false, ""),
        ("BUSY", "busy", false, ""),
        ("MASTERDOWN", "masterdown", false, ""),
        ("MISCONF", "other", false, ""),
        ("READONLY", "readonly", false, ""),
        ("LOADING", "loading", true, "\"LOADING\""),
    ];
    for (reply, kind, retried, swallow) in rows {
        let sc = scenario(&dir, "broker", &refused_broker(reply, swallow));
        let s = run_plan(&sc, None).await;
        let c = |n| s.counter("tasks", n).unwrap();
        let errors: u64 = s
            .ops
            .iter()
            .filter(|o| o.workload == "tasks")
            .map(|o| o.errors_by_kind.get(kind).copied().unwrap_or(0))
            .sum();
        if swallow.is_empty() {
            // The correct client: the refusals are errors, and nothing acknowledged is lost.
            assert!(errors > 0, "{reply}: no {reply} error seen: {:#?}", s.ops);
            assert_eq!(c("lost"), 0.0, "{reply}: {:#?}", s.counters);
            assert_eq!(c("duplicated"), 0.0, "{reply}: {:#?}", s.counters);
            // Dramatiq retries an ack refused with LOADING or NOAUTH (redis-py raises a
            // ConnectionError) and drops one refused with OOM, BUSY, … (a ResponseError): that
            // message stays in the worker's ack set, which the ack_failed check reports — when
            // an ack met the window.
            let allowed: &[&str] = if retried { &[] } else { &["tasks.ack_failed"] };
            assert!(
                s.checks
                    .iter()
                    .all(|k| k.passed || allowed.contains(&k.metric.as_str())),
                "{reply}: {:#?}",
                s.checks
            );
        } else {
            // Taking LOADING for success: enqueues that never ran count as acknowledged.
            assert!(c("lost") > 0.0, "{:#?}", s.counters);
            assert!(s.checks.iter().any(|k| !k.passed), "{:#?}", s.checks);
        }
    }
}

/// Replies of the broker's scripts dropped (the command ran, the client never heard): an
/// enqueue that may have landed is counted ambiguous, never lost, and the ledger finds out
/// whether it landed.
#[tokio::test]
async fn a_dropped_enqueue_reply_is_ambiguous_never_lost() {
    let dir = scratch("proxy-drop-enqueue");
    let sc = scenario(
        &dir,
        "drop",
        r#"
duration = "8s"
recover_within = "5s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "dropped"
producers = 1
rate_per_sec = 60
consumers = 0
drain_timeout = "5s"
[[fault]]
name = "drop"
type = "drop-reply"
at = "1s"
duration = "1s"
[fault.drop-reply]
commands = ["EVALSHA"]
rate = 0.5
"#,
    );
    let s = run_plan(&sc, None).await;
    let c = |n| s.counter("tasks", n).unwrap();
    assert!(c("ambiguous") > 0.0, "{:#?}", s.counters);
    // The command ran before its reply was dropped: every ambiguous enqueue landed.
    assert_eq!(c("ambiguous_landed"), c("ambiguous"), "{:#?}", s.counters);
    assert_eq!(c("lost"), 0.0, "{:#?}", s.counters);
}

/// A fetch whose reply is lost moved messages into its worker's ack set that the worker never
/// saw; Dramatiq restarts the consumer with the same broker id, whose heartbeat keeps them there.
/// The consumers start on a backlog while every broker reply is dropped, so the first fetch
/// takes a full prefetch: those messages are **stranded** (still in Valkey, never delivered) —
/// not stuck, not lost.
#[tokio::test]
async fn a_fetch_that_loses_its_reply_strands_what_it_took_in_its_live_worker() {
    let dir = scratch("proxy-strand");
    let sc = scenario(
        &dir,
        "strand",
        r#"
duration = "8s"
recover_within = "5s"
[[workload]]
id = "tasks"
type = "dramatiq"
[workload.dramatiq]
queue = "stranded"
producers = 1
rate_per_sec = 60
consumers = 1
threads = 4
prefetch = 8
work = "1ms"
consume_after = "2s"
drain_timeout = "30s"
[[fault]]
name = "drop"
type = "drop-reply"
at = "1500ms"
duration = "1500ms"
[fault.drop-reply]
commands = ["EVALSHA"]
[thresholds]
"tasks.stranded" = "<= 8"
"#,
    );
    let s = run_plan(&sc, None).await;
    let c = |n| s.counter("tasks", n).unwrap();
    assert!(c("stranded") > 0.0, "{:#?}", s.counters);
    for n in ["stuck", "lost", "unfinished", "duplicated"] {
        assert_eq!(c(n), 0.0, "{n}: {:#?}", s.counters);
    }
    assert!(s.checks.iter().all(|k| k.passed), "{:#?}", s.checks);
    assert!(
        s.events
            .iter()
            .any(|e| e.detail.contains("never delivered") && e.detail.contains("heartbeat")),
        "{:#?}",
        s.events
    );
}

/// Memory pressure through the proxy on a shared server: the agent's own keys with a TTL are
/// evicted to make room (`volatile-lru`), keys it did not write — with a TTL too — never are.
#[tokio::test]
async fn memory_pressure_evicts_only_the_agents_own_keys() {
    let t = start_single().await;
    let mut c = conn(&t).await;
    for i in 0..200 {
        cmd(&mut c, &["SET", &format!("theirs:{i}"), "x", "EX", "600"]).await;
    }
    let dir = scratch("proxy-pressure");
    let sc = scenario(
        &dir,
        "pressure",
        r#"
duration = "6s"
recover_within = "3s"
[[workload]]
id = "cache"
type = "commands"
clients = 2
rate_per_sec = 200
[workload.commands]
mix = { setex = 1 }
keys = 100000
value_bytes = 100
[[fault]]
name = "memory"
type = "memory-pressure"
at = "2s"
duration = "1500ms"
[fault.memory-pressure]
policy = "volatile-lru"
"#,
    );
    let s = run_plan(&sc, Some(url(&t))).await;
    let note = s
        .events
        .iter()
        .find(|e| e.detail.contains("of the agent's keys evicted"))
        .unwrap_or_else(|| panic!("{:#?}", s.events));
    let evicted: u64 = note
        .detail
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(evicted > 0, "{}", note.detail);
    for i in 0..200 {
        let v = cmd(&mut c, &["EXISTS", &format!("theirs:{i}")]).await;
        assert_eq!(v, Value::Int(1), "theirs:{i} was evicted: {}", note.detail);
    }
}

/// The proxy's command table (`plan::command_table`: what is a read, a write, a script, where
/// the keys are) is Valkey 8.1's own: every row against what `COMMAND` says, both ways.
#[tokio::test]
async fn the_command_table_is_what_valkey_8_1_says() {
    use valkey_chaos::plan::command_table::{self as table, TABLE};
    let t = start_bin(&valkey8_bin()).await;
    let mut c = conn(&t).await;
    let all = cmd(&mut c, &["COMMAND"])
        .await
        .into_array()
        .expect("COMMAND");
    fn flags(v: &Value) -> u16 {
        let names = [
            ("write", table::WRITE),
            ("readonly", table::READONLY),
            ("denyoom", table::DENYOOM),
            ("loading", table::LOADING),
            ("stale", table::STALE),
            ("allow_busy", table::ALLOW_BUSY),
            ("no_auth", table::NO_AUTH),
            ("pubsub", table::PUBSUB),
            ("blocking", table::BLOCKING),
            ("movablekeys", table::MOVABLE),
        ];
        let got: Vec<String> = v
            .clone()
            .into_array()
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        names
            .iter()
            .filter(|(n, _)| got.iter().any(|g| g == n))
            .map(|(_, b)| *b)
            .fold(0, |a, b| a | b)
    }
    fn int(v: &Value) -> i32 {
        match v {
            Value::Int(i) => *i as i32,
            other => panic!("not an integer: {other:?}"),
        }
    }
    let mut seen = 0;
    let mut check = |e: &[Value]| {
        let name = e[0].as_str().expect("name").to_ascii_lowercase();
        let row = table::lookup(&name).unwrap_or_else(|| panic!("{name} is not in the table"));
        assert_eq!(
            (row.1 & !table::SCRIPT, row.2, row.3, row.4),
            (flags(&e[2]), int(&e[3]), int(&e[4]), int(&e[5])),
            "{name}"
        );
        seen += 1;
    };
    for entry in &all {
        let e = entry.clone().into_array().expect("an entry");
        check(&e);
        for sub in e
            .get(9)
            .cloned()
            .and_then(Value::into_array)
            .unwrap_or_default()
        {
            check(&sub.into_array().expect("a subcommand"));
        }
    }
    assert_eq!(seen, TABLE.len(), "rows the server does not have");
    for s in [
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "fcall",
        "fcall_ro",
    ] {
        assert!(table::lookup(s).unwrap().1 & table::SCRIPT != 0, "{s}");
    }
}
