//! Interoperation with the real Python libraries from the project venv (dramatiq 2.2.1, redis-py
//! 5.0.6; dramatiq 1.17.1 is not installed there, so only the 2.x contract is exercised): the agent
//! and Python clients work on the same keys of one test-owned Valkey, and each side is checked
//! against what the other observed. Python helpers live in tests/python/.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use valkey_chaos::valkey::{Conn, Value};

use crate::drain::run_drain;
use crate::support::*;

const NS: &str = "dramatiq";
/// The Python worker's record list and stop key.
const SEEN: &str = "py:seen";
const STOP: &str = "py:stop";
/// The top-level fields of a Dramatiq message, in encoding order.
const FIELDS: [&str; 7] = [
    "queue_name",
    "actor_name",
    "args",
    "kwargs",
    "options",
    "message_id",
    "message_timestamp",
];

// ---------------------------------------------------------------------------------------------
// Python helper processes

/// A Python helper process, output to files in the scratch dir. Killed and reaped on drop (and by
/// PR_SET_PDEATHSIG if the test thread dies), so a failing test leaves nothing running.
struct Py {
    child: Option<Child>,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Py {
    fn spawn(dir: &Path, name: &str, script: &str, args: &[&str]) -> Py {
        use std::os::unix::process::CommandExt;
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(python());
        cmd.arg(repo_root().join("tests/python").join(script))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {script}: {e}"));
        Py {
            child: Some(child),
            name: name.into(),
            stdout,
            stderr,
        }
    }

    fn logs(&self) -> String {
        let err = read(&self.stderr);
        let tail: Vec<&str> = err.lines().rev().take(40).collect();
        format!(
            "--- {} stdout:\n{}--- {} stderr (tail):\n{}",
            self.name,
            read(&self.stdout),
            self.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    fn stderr(&self) -> String {
        read(&self.stderr)
    }

    /// Panic (with its logs) if the process has already exited.
    fn assert_running(&mut self) {
        let st = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait python"));
        if let Some(st) = st {
            self.child = None;
            panic!("{} exited early with {st}\n{}", self.name, self.logs());
        }
    }

    /// Wait (bounded) for a successful exit; returns its stdout.
    fn finish(mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let status = loop {
            let c = self.child.as_mut().expect("still running");
            if let Some(s) = c.try_wait().expect("try_wait python") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                self.child = None;
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child = None;
        assert!(
            status.success(),
            "{} exited with {status}\n{}",
            self.name,
            self.logs()
        );
        read(&self.stdout)
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn p2s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Produce with real Dramatiq: `n` × `send()` then `delayed` × `send_with_options(delay=…)`.
/// Returns the message ids, in send order.
fn python_send(
    dir: &Path,
    url: &str,
    queue: &str,
    n: u32,
    delayed: u32,
    delay_ms: u32,
) -> Vec<String> {
    let ids = dir.join(format!("sent-{queue}.txt"));
    Py::spawn(
        dir,
        &format!("send-{queue}"),
        "dramatiq_send.py",
        &[
            url,
            queue,
            &n.to_string(),
            &delayed.to_string(),
            &delay_ms.to_string(),
            p2s(&ids),
        ],
    )
    .finish(Duration::from_secs(60));
    let v: Vec<String> = read(&ids).lines().map(str::to_string).collect();
    assert_eq!(
        v.len(),
        (n + delayed) as usize,
        "ids written by the producer"
    );
    v
}

/// A real Dramatiq worker on `queue` (see tests/python/dramatiq_worker.py), started and ready. In
/// mode `record` it works `work_ms`, then RPUSHes `<message_id> <retries>` to [`SEEN`]; it stops
/// once [`STOP`] is set.
async fn python_worker(
    dir: &Path,
    c: &mut Conn,
    url: &str,
    queue: &str,
    mode: &str,
    max_retries: u32,
    work_ms: u32,
) -> Py {
    let mut w = Py::spawn(
        dir,
        &format!("worker-{queue}"),
        "dramatiq_worker.py",
        &[
            url,
            queue,
            mode,
            SEEN,
            STOP,
            "120",
            &max_retries.to_string(),
            &work_ms.to_string(),
        ],
    );
    let ready = format!("{STOP}.ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while int(c, &["EXISTS", &ready]).await == 0 {
        w.assert_running();
        assert!(
            Instant::now() < deadline,
            "worker not ready in 30s\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w
}

/// Stop a worker started by [`python_worker`] and wait for its graceful exit.
async fn stop_worker(c: &mut Conn, w: Py) -> String {
    cmd(c, &["SET", STOP, "1"]).await;
    w.finish(Duration::from_secs(30))
}

/// Wait (bounded) until a file exists, i.e. a Python helper finished its setup.
fn wait_file(p: &Path, py: &mut Py) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        py.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} not ready in 30s\n{}",
            py.name,
            py.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Valkey and agent helpers

async fn int(c: &mut Conn, args: &[&str]) -> i64 {
    let v = cmd(c, args).await;
    v.as_int()
        .unwrap_or_else(|| panic!("{args:?}: not an int: {v:?}"))
}

fn strs(v: Value) -> Vec<String> {
    match v {
        Value::Map(kv) => kv
            .into_iter()
            .flat_map(|(k, v)| [k, v])
            .map(|x| x.as_str().expect("utf-8").to_string())
            .collect(),
        v => v
            .into_array()
            .expect("array reply")
            .iter()
            .map(|x| x.as_str().expect("utf-8").to_string())
            .collect(),
    }
}

async fn list(c: &mut Conn, key: &str) -> Vec<String> {
    strs(cmd(c, &["LRANGE", key, "0", "-1"]).await)
}

/// HGETALL as (field, value) pairs.
async fn hash(c: &mut Conn, key: &str) -> Vec<(String, String)> {
    let flat = strs(cmd(c, &["HGETALL", key]).await);
    flat.chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

async fn scan(c: &mut Conn, pattern: &str) -> Vec<String> {
    let mut keys = vec![];
    let mut cursor = "0".to_string();
    loop {
        let parts = cmd(c, &["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])
            .await
            .into_array()
            .expect("SCAN reply");
        let mut it = parts.into_iter();
        cursor = it
            .next()
            .and_then(|v| v.as_str().map(str::to_string))
            .expect("cursor");
        keys.extend(strs(it.next().expect("SCAN keys")));
        if cursor == "0" {
            return keys;
        }
    }
}

/// What the broker keys of one queue hold.
#[derive(Debug, PartialEq)]
struct Broker {
    ready: i64,
    ready_msgs: i64,
    delayed: i64,
    delayed_msgs: i64,
    /// Non-empty `<ns>:__acks__.*` sets (any broker, any queue).
    acks: Vec<(String, i64)>,
}

impl Broker {
    fn empty(&self) -> bool {
        self.ready == 0
            && self.ready_msgs == 0
            && self.delayed == 0
            && self.delayed_msgs == 0
            && self.acks.is_empty()
    }
}

async fn broker(c: &mut Conn, q: &str) -> Broker {
    let mut acks = vec![];
    for k in scan(c, &format!("{NS}:__acks__.*")).await {
        let n = int(c, &["SCARD", &k]).await;
        acks.push((k, n));
    }
    Broker {
        ready: int(c, &["LLEN", &format!("{NS}:{q}")]).await,
        ready_msgs: int(c, &["HLEN", &format!("{NS}:{q}.msgs")]).await,
        delayed: int(c, &["LLEN", &format!("{NS}:{q}.DQ")]).await,
        delayed_msgs: int(c, &["HLEN", &format!("{NS}:{q}.DQ.msgs")]).await,
        acks,
    }
}

/// Run the agent binary against `url` (bounded) and return its summary; it must exit 0.
fn run_agent(sc: &Path, url: &str, out: &Path) -> serde_json::Value {
    let o = agent(
        &["run", p2s(sc), "--target", url, "--out", p2s(out), "-q"],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    summary(out)
}

/// `<message_id> <retries>` lines (the Python worker's record list, the agent's dramatiq trace).
fn deliveries(lines: &[String]) -> Vec<(String, u64)> {
    lines
        .iter()
        .map(|l| {
            let (mid, r) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (mid.to_string(), r.trim().parse().expect("retries"))
        })
        .collect()
}

/// Ids that appear more than once.
fn dups<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter()
        .filter(|i| !seen.insert(*i))
        .cloned()
        .collect()
}

fn json(s: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn keys_of(m: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    m.keys().cloned().collect()
}

/// A believed hold of a lock or limiter slot: `<who> <key> <from_ns> <to_ns>` (CLOCK_MONOTONIC).
#[derive(Debug, Clone)]
struct Hold {
    who: String,
    key: String,
    from: u64,
    to: u64,
}

fn holds(p: &Path) -> Vec<Hold> {
    read(p)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad hold line {l:?} in {}", p.display());
            let h = Hold {
                who: f[0].into(),
                key: f[1].into(),
                from: f[2].parse().expect("from_ns"),
                to: f[3].parse().expect("to_ns"),
            };
            assert!(h.from <= h.to, "backwards hold {l:?}");
            h
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Agent produces, Dramatiq consumes

/// The agent produces (20% delayed by 1s) and a real Dramatiq 2.2.1 worker consumes: every message
/// the agent enqueued runs exactly once, delayed ones included, and the queue, delay queue and
/// acks sets end empty.
#[tokio::test]
async fn agent_produces_dramatiq_worker_consumes_each_once() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-produce");
    let sc = scenario(
        &dir,
        "produce",
        r#"
duration = "3s"
[[workload]]
id = "prod"
type = "dramatiq"
[workload.dramatiq]
namespace = "dramatiq"
queue = "interop"
actors = ["record"]
producers = 2
consumers = 0
rate_per_sec = 100
delay_fraction = 0.2
delay = "1s"
"#,
    );
    let s = run_agent(&sc, &u, &dir.join("out"));
    let enq = counter(&s, "prod", "enqueued") as usize;
    assert!(enq >= 200, "100/s for 3s enqueued only {enq}");

    // What the agent left in Valkey is exactly what a worker will read.
    let mut c = conn(&t).await;
    let ready = hash(&mut c, &format!("{NS}:interop.msgs")).await;
    let delayed = hash(&mut c, &format!("{NS}:interop.DQ.msgs")).await;
    let b = broker(&mut c, "interop").await;
    assert_eq!(b.ready, ready.len() as i64, "{b:?}");
    assert_eq!(b.delayed, delayed.len() as i64, "{b:?}");
    assert_eq!(ready.len() + delayed.len(), enq, "{b:?}");
    assert!(
        !delayed.is_empty() && delayed.len() < ready.len(),
        "delay_fraction 0.2: {} delayed of {enq}",
        delayed.len()
    );
    let mut sent = HashSet::new();
    for (q, entries) in [("interop", &ready), ("interop.DQ", &delayed)] {
        for (rid, body) in entries {
            let m = json(body);
            assert_eq!(keys_of(&m), FIELDS, "{body}");
            assert_eq!(m["queue_name"], *q, "{body}");
            assert_eq!(m["options"]["redis_message_id"], rid.as_str(), "{body}");
            assert_eq!(
                m["options"].get("eta").is_some(),
                q.ends_with(".DQ"),
                "{body}"
            );
            assert!(sent.insert(m["message_id"].as_str().unwrap().to_string()));
        }
    }

    let mut w = python_worker(&dir, &mut c, &u, "interop", "record", 0, 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = int(&mut c, &["LLEN", SEEN]).await as usize;
        assert!(n <= enq, "worker ran {n} > {enq} messages\n{}", w.logs());
        let b = broker(&mut c, "interop").await;
        if n == enq && b.empty() {
            break;
        }
        w.assert_running();
        assert!(
            Instant::now() < deadline,
            "not drained in 30s: ran {n}/{enq}, {b:?}\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = w.stderr();
    let out = stop_worker(&mut c, w).await;
    assert!(out.starts_with("dramatiq 2.2.1 redis 5.0.6"), "{out}");

    let runs = deliveries(&list(&mut c, SEEN).await);
    let ids: Vec<String> = runs.iter().map(|r| r.0.clone()).collect();
    assert_eq!(dups(&ids), Vec::<String>::new(), "ran twice");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), sent);
    assert!(
        runs.iter().all(|r| r.1 == 0),
        "no retries expected: {runs:?}"
    );
    let b = broker(&mut c, "interop").await;
    assert!(b.empty(), "{b:?}");
    assert!(
        !log.contains("Traceback") && !log.contains("ERROR"),
        "worker complained:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Dramatiq produces, agent consumes

/// Real Python producers (200 × `send()`, 20 × `send_with_options(delay=500)`), agent consumers
/// in consume-only mode: each of the 220 messages is acked exactly once, all decode, and the
/// queue, delay queue and every acks set end empty.
#[tokio::test]
async fn dramatiq_produces_agent_consumes_each_once() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-consume");
    let sent = python_send(&dir, &u, "interop", 200, 20, 500);
    let mut c = conn(&t).await;
    let b = broker(&mut c, "interop").await;
    assert_eq!((b.ready, b.delayed), (200, 20), "{b:?}");

    let trace = dir.join("trace.txt");
    let sc = scenario(
        &dir,
        "consume",
        &format!(
            r#"
duration = "2s"
[[workload]]
id = "cons"
type = "dramatiq"
[workload.dramatiq]
queue = "interop"
actors = ["record"]
producers = 0
consumers = 2
threads = 4
drain_timeout = "20s"
trace = "{}"
"#,
            p2s(&trace)
        ),
    );
    let s = run_agent(&sc, &u, &dir.join("out"));
    for (name, want) in [
        ("acked", 220.0),
        ("delivered", 220.0),
        ("duplicated", 0.0),
        ("undecodable", 0.0),
        ("missing_payloads", 0.0),
        ("dead_lettered", 0.0),
    ] {
        assert_eq!(counter(&s, "cons", name), want, "cons.{name}: {s:#}");
    }
    let runs = deliveries(&read(&trace).lines().map(str::to_string).collect::<Vec<_>>());
    let ids: Vec<String> = runs.iter().map(|r| r.0.clone()).collect();
    assert_eq!(dups(&ids), Vec::<String>::new(), "delivered twice");
    assert_eq!(
        ids.into_iter().collect::<HashSet<_>>(),
        sent.into_iter().collect::<HashSet<_>>()
    );
    assert!(runs.iter().all(|r| r.1 == 0), "{runs:?}");
    let b = broker(&mut c, "interop").await;
    assert!(b.empty(), "{b:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. Dead letters

/// XQ entries of queue `q`, checked for Dramatiq's layout: `<ns>:<q>.XQ` is a zset and
/// `.XQ.msgs` a hash with the same members, scored in epoch ms within [from, to], each body's
/// redis_message_id its member. Returns the parsed bodies.
async fn dead_letters(
    c: &mut Conn,
    q: &str,
    from: u64,
    to: u64,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let xq = format!("{NS}:{q}.XQ");
    let xm = format!("{xq}.msgs");
    assert_eq!(cmd(c, &["TYPE", &xq]).await.as_str(), Some("zset"), "{xq}");
    assert_eq!(cmd(c, &["TYPE", &xm]).await.as_str(), Some("hash"), "{xm}");
    for stray in [format!("{NS}:{q}.DQ.XQ"), format!("{NS}:{q}.DQ.XQ.msgs")] {
        assert_eq!(
            int(c, &["EXISTS", &stray]).await,
            0,
            "{stray} must not exist"
        );
    }
    let scored = strs(cmd(c, &["ZRANGE", &xq, "0", "-1", "WITHSCORES"]).await);
    let bodies: HashMap<String, String> = hash(c, &xm).await.into_iter().collect();
    let mut out = vec![];
    for p in scored.chunks(2) {
        let score: f64 = p[1].parse().expect("score");
        assert!(
            score >= from as f64 && score <= to as f64,
            "{xq} {}: score {score} outside [{from}, {to}]",
            p[0]
        );
        let body = bodies
            .get(&p[0])
            .unwrap_or_else(|| panic!("{xq} member {} has no body in {xm}", p[0]));
        let m = json(body);
        assert_eq!(m["options"]["redis_message_id"], p[0].as_str(), "{body}");
        assert_eq!(m["queue_name"], q, "{body}");
        out.push(m);
    }
    assert_eq!(out.len(), bodies.len(), "{xq} vs {xm}");
    out
}

/// Python sends `n` messages to `q` and a real Dramatiq worker whose actor always raises
/// (`max_retries`) dead-letters them all (bounded, 30 s); returns the XQ bodies.
async fn python_dead_letters(
    dir: &Path,
    c: &mut Conn,
    u: &str,
    q: &str,
    n: i64,
    max_retries: u32,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    python_send(dir, u, q, n as u32, 0, 0);
    let t0 = now_ms();
    let mut w = python_worker(dir, c, u, q, "fail", max_retries, 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = int(c, &["ZCARD", &format!("{NS}:{q}.XQ")]).await;
        let b = broker(c, q).await;
        if got == n && b.empty() {
            break;
        }
        w.assert_running();
        assert!(
            Instant::now() < deadline,
            "not dead-lettered in 30s: {got}/{n}, {b:?}\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_worker(c, w).await;
    dead_letters(c, q, t0, now_ms()).await
}

/// Dead letters land where Dramatiq puts them and look the same: the agent (fail_fraction 1,
/// max_retries 0: nacked on the first failure) and a real worker (actor always raises,
/// max_retries 0) each dead-letter 20 Python-produced messages; both leave `<ns>:<q>.XQ` (zset) +
/// `.XQ.msgs` (hash), bodies with the seven top-level keys in the same order and options holding
/// redis_message_id.
#[tokio::test]
async fn dead_letters_match_dramatiq() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-dead");
    let mut c = conn(&t).await;

    // The agent dead-letters.
    python_send(&dir, &u, "dl-agent", 20, 0, 0);
    let sc = scenario(
        &dir,
        "dead",
        r#"
duration = "1s"
[[workload]]
id = "dl"
type = "dramatiq"
[workload.dramatiq]
queue = "dl-agent"
producers = 0
consumers = 1
threads = 4
fail_fraction = 1.0
max_retries = 0
drain_timeout = "20s"
"#,
    );
    let t0 = now_ms();
    let s = run_agent(&sc, &u, &dir.join("out"));
    let t1 = now_ms();
    for (name, want) in [
        ("dead_lettered", 20.0),
        ("delivered", 20.0),
        ("acked", 0.0),
        ("retried", 0.0),
    ] {
        assert_eq!(counter(&s, "dl", name), want, "dl.{name}: {s:#}");
    }
    let agent_dl = dead_letters(&mut c, "dl-agent", t0, t1).await;
    assert_eq!(agent_dl.len(), 20);
    let b = broker(&mut c, "dl-agent").await;
    assert!(b.empty(), "{b:?}");

    // Dramatiq dead-letters.
    let py_dl = python_dead_letters(&dir, &mut c, &u, "dl-py", 20, 0).await;
    assert_eq!(py_dl.len(), 20);

    for m in py_dl.iter().chain(&agent_dl) {
        assert_eq!(keys_of(m), FIELDS, "{m:?}");
        assert_eq!(
            keys_of(m["options"].as_object().unwrap()),
            ["redis_message_id"],
            "the body as last enqueued: {m:?}"
        );
    }
}

/// After one retry, dead letters still match: agent-produced messages the agent retries once and
/// then dead-letters (fail_fraction 1, max_retries 1, Dramatiq's meaning) against
/// Python-produced ones a real worker retries once (max_retries 1). Both bodies are the promoted retry, options in the same order.
#[tokio::test]
async fn retried_dead_letters_match_dramatiq() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-dead-retried");
    let mut c = conn(&t).await;

    let sc = scenario(
        &dir,
        "dead-retried",
        r#"
duration = "1s"
[[workload]]
id = "dlr"
type = "dramatiq"
[workload.dramatiq]
queue = "dlr-agent"
actors = ["record"]
producers = 1
rate_per_sec = 20
consumers = 1
threads = 4
fail_fraction = 1.0
max_retries = 1
min_backoff = "10ms"
max_backoff = "50ms"
drain_timeout = "20s"
"#,
    );
    let t0 = now_ms();
    let s = run_agent(&sc, &u, &dir.join("out"));
    let t1 = now_ms();
    let enq = counter(&s, "dlr", "enqueued");
    assert!(enq >= 10.0, "{s:#}");
    for (name, want) in [
        ("dead_lettered", enq),
        ("retried", enq),
        ("delivered", 2.0 * enq),
        ("lost", 0.0),
        ("stuck", 0.0),
        ("duplicated", 0.0),
    ] {
        assert_eq!(counter(&s, "dlr", name), want, "dlr.{name}: {s:#}");
    }
    let agent_dl = dead_letters(&mut c, "dlr-agent", t0, t1).await;
    assert_eq!(agent_dl.len() as f64, enq);

    let py_dl = python_dead_letters(&dir, &mut c, &u, "dlr-py", 10, 1).await;
    assert_eq!(py_dl.len(), 10);

    let want = [
        "redis_message_id",
        "retries",
        "traceback",
        "requeue_timestamp",
    ];
    for m in py_dl.iter().chain(&agent_dl) {
        assert_eq!(keys_of(m), FIELDS, "{m:?}");
        let o = m["options"].as_object().unwrap();
        assert_eq!(keys_of(o), want, "{m:?}");
        assert_eq!(o["retries"], 1, "{m:?}");
        assert!(
            o["traceback"].as_str().unwrap().starts_with("Traceback"),
            "{m:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. One queue, both consumers

/// One queue, two kinds of consumer: agent producers enqueue while a real Dramatiq worker and
/// agent consumers both consume. Every enqueued message runs exactly once on one side or the other.
/// The agent's ledger only sees its own deliveries; with `shared_queue` it waits for the queue to
/// empty and counts the worker's share as taken by others, not lost.
///
/// Each side runs 4 threads of 100 ms work, 40/s each, and the producer enqueues 150/s: the queue
/// always holds a backlog, so neither side's idle poll backoff decides the split (with no work the
/// side that polls more often takes nearly all: Python 440, agent 10 once in CI) and each side
/// takes about half.
#[tokio::test]
async fn agent_and_dramatiq_share_a_queue() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-shared");
    let mut c = conn(&t).await;
    let mut w = python_worker(&dir, &mut c, &u, "interop", "record", 0, 100).await;

    let trace = dir.join("trace.txt");
    let sc = scenario(
        &dir,
        "shared",
        &format!(
            r#"
duration = "3s"
[[workload]]
id = "sh"
type = "dramatiq"
[workload.dramatiq]
queue = "interop"
actors = ["record"]
producers = 1
rate_per_sec = 150
consumers = 1
threads = 4
work = "100ms"
shared_queue = true
drain_timeout = "20s"
trace = "{}"
"#,
            p2s(&trace)
        ),
    );
    let s = run_agent(&sc, &u, &dir.join("out"));
    w.assert_running();
    let enq = counter(&s, "sh", "enqueued") as usize;
    assert!(enq >= 300, "150/s for 3s enqueued only {enq}");
    let agent_ids: Vec<String> =
        deliveries(&read(&trace).lines().map(str::to_string).collect::<Vec<_>>())
            .into_iter()
            .map(|(mid, r)| {
                assert_eq!(r, 0, "agent retried {mid}");
                mid
            })
            .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = int(&mut c, &["LLEN", SEEN]).await as usize;
        let b = broker(&mut c, "interop").await;
        if n + agent_ids.len() >= enq && b.empty() {
            break;
        }
        w.assert_running();
        assert!(
            Instant::now() < deadline,
            "not drained in 30s: python {n} + agent {} of {enq}, {b:?}\n{}",
            agent_ids.len(),
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_worker(&mut c, w).await;
    let py_ids: Vec<String> = deliveries(&list(&mut c, SEEN).await)
        .into_iter()
        .map(|(mid, r)| {
            assert_eq!(r, 0, "worker retried {mid}");
            mid
        })
        .collect();

    assert_eq!(
        dups(py_ids.iter().chain(&agent_ids)),
        Vec::<String>::new(),
        "ran twice"
    );
    assert_eq!(
        py_ids.len() + agent_ids.len(),
        enq,
        "every message exactly once"
    );
    assert!(
        py_ids.len() >= 20 && agent_ids.len() >= 20,
        "both sides should take a share: python {}, agent {}",
        py_ids.len(),
        agent_ids.len()
    );
    let b = broker(&mut c, "interop").await;
    assert!(b.empty(), "{b:?}");

    let n = |name| counter(&s, "sh", name) as usize;
    assert_eq!(n("delivered"), agent_ids.len(), "{s:#}");
    assert_eq!(n("acked"), agent_ids.len(), "{s:#}");
    assert_eq!(n("duplicated"), 0, "{s:#}");
    assert_eq!(n("unfinished"), 0, "{s:#}");
    // With shared_queue the agent waits for the queue to empty and counts what the Python
    // worker ran as taken by others, not lost.
    assert_eq!(n("lost"), 0, "{s:#}");
    assert_eq!(n("stuck"), 0, "{s:#}");
    assert_eq!(
        n("taken_by_others"),
        py_ids.len(),
        "agent taken_by_others vs messages the Python worker ran: {s:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5, 6. Locks and the concurrent rate limiter

/// Holds that overlap on the same key.
fn overlaps(all: &[Hold]) -> Vec<(Hold, Hold)> {
    let mut by_key: HashMap<&str, Vec<&Hold>> = HashMap::new();
    for h in all {
        by_key.entry(&h.key).or_default().push(h);
    }
    let mut bad = vec![];
    for v in by_key.values_mut() {
        v.sort_by_key(|h| h.from);
        let mut last: Option<&Hold> = None;
        for h in v.iter() {
            if let Some(l) = last {
                if h.from < l.to {
                    bad.push((l.clone(), (*h).clone()));
                }
                if h.to > l.to {
                    last = Some(h);
                }
            } else {
                last = Some(h);
            }
        }
    }
    bad
}

/// Times the holder of a key changed between a Python and an agent holder (either way).
fn handoffs(all: &[Hold]) -> usize {
    let mut by_key: HashMap<&str, Vec<&Hold>> = HashMap::new();
    for h in all {
        by_key.entry(&h.key).or_default().push(h);
    }
    by_key
        .values_mut()
        .map(|v| {
            v.sort_by_key(|h| h.from);
            v.windows(2)
                .filter(|p| p[0].who.starts_with("py") != p[1].who.starts_with("py"))
                .count()
        })
        .sum()
}

/// redis-py 5.0.6 `Lock` holders (4 threads) and the agent's redis-py-style lock clients (6)
/// compete for the same two keys at the same time: merging both sides' believed holds
/// (CLOCK_MONOTONIC, acquire reply → before release), no two holds of one key overlap, and both
/// sides held the locks many times, handing them to each other.
#[tokio::test]
async fn agent_and_redis_py_locks_exclude_each_other() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-locks");
    let (py_out, ready, stop, trace) = (
        dir.join("py.txt"),
        dir.join("py.ready"),
        dir.join("py.stop"),
        dir.join("agent.txt"),
    );
    let mut py = Py::spawn(
        &dir,
        "locks",
        "lock_holders.py",
        &[
            &u,
            "interop:lock:{n}",
            "2",
            "4",
            "60",
            p2s(&py_out),
            p2s(&ready),
            p2s(&stop),
        ],
    );
    wait_file(&ready, &mut py);
    let sc = scenario(
        &dir,
        "locks",
        &format!(
            r#"
duration = "3s"
[[workload]]
id = "lk"
type = "lock"
[workload.lock]
style = "redis-py"
key_pattern = "interop:lock:{{n}}"
names = 2
clients = 6
hold = {{ min = "5ms", max = "20ms" }}
retry_interval = "10ms"
trace = "{}"
"#,
            p2s(&trace)
        ),
    );
    // The Python side holds from before the agent starts until after it has finished.
    let s = run_agent(&sc, &u, &dir.join("out"));
    std::fs::write(&stop, "").unwrap();
    let out = py.finish(Duration::from_secs(30));
    for name in ["violations", "lost_while_held", "immortal_keys"] {
        assert_eq!(counter(&s, "lk", name), 0.0, "lk.{name}: {s:#}");
    }
    let agent = holds(&trace);
    let python = holds(&py_out);
    assert_eq!(
        agent.len() as f64,
        counter(&s, "lk", "acquired"),
        "one trace line per hold"
    );
    assert!(agent.iter().all(|h| h.who.starts_with("agent-")));
    let keys: HashSet<&str> = agent
        .iter()
        .chain(&python)
        .map(|h| h.key.as_str())
        .collect();
    assert_eq!(keys, HashSet::from(["interop:lock:0", "interop:lock:1"]));
    assert!(
        agent.len() >= 20 && python.len() >= 20,
        "both sides must hold: agent {}, python {} ({out})",
        agent.len(),
        python.len()
    );
    let all: Vec<Hold> = agent.into_iter().chain(python).collect();
    let bad = overlaps(&all);
    assert!(
        bad.is_empty(),
        "{} overlapping holds, first: {:?}",
        bad.len(),
        bad.first()
    );
    let hand = handoffs(&all);
    assert!(hand >= 10, "the two sides barely competed: {hand} handoffs");
}

/// Dramatiq `ConcurrentRateLimiter(limit=3)` holders in Python (4 threads) and the agent's
/// dramatiq-concurrent limiter (6 clients) share one key: sweeping over both sides' believed
/// holds, no more than 3 are ever held at once, both sides were admitted (and rejected), and the
/// counter ends at 0.
#[tokio::test]
async fn agent_and_dramatiq_concurrent_limiter_share_the_limit() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("interop-limiter");
    let (py_out, ready, stop, trace) = (
        dir.join("py.txt"),
        dir.join("py.ready"),
        dir.join("py.stop"),
        dir.join("agent.txt"),
    );
    let mut py = Py::spawn(
        &dir,
        "limiter",
        "limiter_holders.py",
        &[
            &u,
            "interop-conc",
            "3",
            "4",
            "60",
            p2s(&py_out),
            p2s(&ready),
            p2s(&stop),
        ],
    );
    wait_file(&ready, &mut py);
    let sc = scenario(
        &dir,
        "limiter",
        &format!(
            r#"
duration = "3s"
[[workload]]
id = "conc"
type = "rate_limit"
[workload.rate_limit]
limiter = "dramatiq-concurrent"
limit = 3
keys = 1
key_pattern = "interop-conc"
clients = 6
rate_per_sec = 400
hold = {{ min = "2ms", max = "10ms" }}
trace = "{}"
"#,
            p2s(&trace)
        ),
    );
    // The Python side holds from before the agent starts until after it has finished.
    let s = run_agent(&sc, &u, &dir.join("out"));
    std::fs::write(&stop, "").unwrap();
    let out = py.finish(Duration::from_secs(30));
    let py_rejected: u64 = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rejected="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("python stats: {out}"));
    assert_eq!(counter(&s, "conc", "overshoot"), 0.0, "{s:#}");
    let agent = holds(&trace);
    let python = holds(&py_out);
    assert_eq!(
        agent.len() as f64,
        counter(&s, "conc", "admitted"),
        "one trace line per hold"
    );
    assert!(agent.iter().chain(&python).all(|h| h.key == "interop-conc"));
    assert!(
        agent.len() >= 20 && python.len() >= 20,
        "both sides must be admitted: agent {}, python {} ({out})",
        agent.len(),
        python.len()
    );
    assert!(
        counter(&s, "conc", "rejected") > 0.0 && py_rejected > 0,
        "the limit never bit: agent rejected {}, python {py_rejected}",
        counter(&s, "conc", "rejected")
    );

    // Sweep: +1 at each start, -1 at each end (ends first on ties: a hold ending at t and one
    // starting at t do not coexist).
    let mut ev: Vec<(u64, i32, bool)> = vec![];
    for h in agent.iter().chain(&python) {
        let py = h.who == "py";
        ev.push((h.from, 1, py));
        ev.push((h.to, -1, py));
    }
    ev.sort_by_key(|e| (e.0, e.1));
    let (mut now, mut now_py, mut max, mut mixed) = (0i32, 0i32, 0i32, false);
    let mut worst = 0u64;
    for (t, d, py) in ev {
        now += d;
        if py {
            now_py += d;
        }
        if now > max {
            max = now;
            worst = t;
        }
        mixed |= now_py > 0 && now > now_py;
    }
    assert!(
        max <= 3,
        "{max} slots held at once (at monotonic {worst} ns), limit 3"
    );
    assert!(
        mixed,
        "python and the agent never held slots at the same time"
    );
    let left = cmd(&mut conn(&t).await, &["GET", "interop-conc"]).await;
    assert_eq!(left.as_str(), Some("0"), "every slot given back");
}

// ---------------------------------------------------------------------------------------------
// 7. After the cutover: `drain` moves what Dramatiq left on the old side

/// What `drain.json` says a queue moved.
fn drained(report: &serde_json::Value, queue: &str, field: &str) -> u64 {
    report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["queue"] == queue)
        .map(|q| q[field].as_u64().unwrap())
        .sum()
}

/// 100 messages real Dramatiq 2.2.1 enqueued on a Redis 7.0 source's database 1 after the copy
/// stopped: 80 ready, 10 delayed, 10 fetched by a worker that is gone from the source (its
/// heartbeat 2 minutes old), one of the ready ones already on the destination (the copy carried
/// it). `drain --dry-run` counts and writes nothing; `drain` moves the 99 others into Valkey's
/// database 1 and leaves the source's namespace empty; a second `drain` moves nothing; then a
/// real worker on the destination runs each of the 100 exactly once.
#[tokio::test]
async fn drain_moves_stranded_messages_and_a_real_worker_runs_each_once() {
    let src = start_bin(&crate::tls::redis_bin()).await;
    let dst = start_single().await;
    let (su, du) = (format!("{}/1", url(&src)), format!("{}/1", url(&dst)));
    let dir = scratch("interop-drain");
    let sent = python_send(&dir, &su, "interop", 90, 10, 500);
    let mut s = conn(&src).await;
    cmd(&mut s, &["SELECT", "1"]).await;
    let mut d = conn(&dst).await;
    cmd(&mut d, &["SELECT", "1"]).await;
    // A worker that fetched 10 and died: its ack set, its stale heartbeat.
    let gone = format!("{NS}:__acks__.gone-worker.interop");
    for _ in 0..10 {
        let rid = cmd(&mut s, &["RPOP", &format!("{NS}:interop")]).await;
        cmd(&mut s, &["SADD", &gone, rid.as_str().unwrap()]).await;
    }
    let stale = (now_ms() - 120_000).to_string();
    cmd(
        &mut s,
        &[
            "ZADD",
            &format!("{NS}:__heartbeats__"),
            &stale,
            "gone-worker",
        ],
    )
    .await;
    // The copy carried the first ready message.
    let first = strs(cmd(&mut s, &["LRANGE", &format!("{NS}:interop"), "0", "0"]).await);
    let payload = cmd(&mut s, &["HGET", &format!("{NS}:interop.msgs"), &first[0]]).await;
    cmd(
        &mut d,
        &[
            "HSET",
            &format!("{NS}:interop.msgs"),
            &first[0],
            payload.as_str().unwrap(),
        ],
    )
    .await;
    cmd(&mut d, &["RPUSH", &format!("{NS}:interop"), &first[0]]).await;
    let before = broker(&mut s, "interop").await;
    assert_eq!((before.ready, before.delayed), (80, 10), "{before:?}");

    // Dry: what would move, exit 1, nothing written.
    let (o, r) = run_drain(&dir, "dry", &su, &du, &["--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        (
            drained(&r, "interop", "ready"),
            drained(&r, "interop", "requeued"),
            drained(&r, "interop.DQ", "ready"),
            drained(&r, "interop", "already_there")
        ),
        (79, 10, 10, 1),
        "{r:#}"
    );
    assert_eq!(
        format!("{:?}", broker(&mut s, "interop").await),
        format!("{before:?}")
    );
    assert_eq!(int(&mut d, &["LLEN", &format!("{NS}:interop")]).await, 1);

    let (o, r) = run_drain(&dir, "moved", &su, &du, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        drained(&r, "interop", "ready") + drained(&r, "interop.DQ", "ready"),
        89
    );
    assert_eq!(drained(&r, "interop", "requeued"), 10, "{r:#}");
    let left = broker(&mut s, "interop").await;
    assert!(left.empty(), "the source keeps {left:?}");
    let (o, r) = run_drain(&dir, "again", &su, &du, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(r["queues"].as_array().unwrap().is_empty(), "{r:#}");

    let mut w = python_worker(&dir, &mut d, &du, "interop", "record", 0, 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = int(&mut d, &["LLEN", SEEN]).await as usize;
        let b = broker(&mut d, "interop").await;
        if n >= sent.len() && b.empty() {
            break;
        }
        w.assert_running();
        assert!(
            Instant::now() < deadline,
            "not drained in 30s: ran {n}/{}, {b:?}\n{}",
            sent.len(),
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = stop_worker(&mut d, w).await;
    assert!(out.starts_with("dramatiq 2.2.1 redis 5.0.6"), "{out}");
    let ids: Vec<String> = deliveries(&list(&mut d, SEEN).await)
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(dups(&ids), Vec::<String>::new(), "ran twice");
    assert_eq!(
        ids.into_iter().collect::<HashSet<_>>(),
        sent.into_iter().collect::<HashSet<_>>()
    );
}
