//! `verify` (keyspace diff) and `lag` (replication lag by canary) against real servers: a Debian
//! Redis 7.0 source with every type, really replicated (`REPLICAOF`, link up, offsets equal) into
//! a Valkey 9.x and a Valkey 8.1 destination, then promoted and changed one difference per kind.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use valkey_chaos::valkey::embedded::{free_port, parse_info};
use valkey_chaos::valkey::{Cmd, Conn, Value};

use crate::support::*;
use crate::tls::redis_bin;

const AGENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Run a pipeline of commands; every reply must be a success.
async fn pipe(c: &mut Conn, cmds: Vec<Cmd>) {
    for part in cmds.chunks(1000) {
        for (i, r) in c
            .pipeline(part)
            .await
            .expect("pipeline")
            .into_iter()
            .enumerate()
        {
            if let Err(e) = r {
                panic!(
                    "{:?}: {e}",
                    part[i].args().first().map(|a| String::from_utf8_lossy(a))
                );
            }
        }
    }
}

fn int(v: Value) -> i64 {
    v.as_int()
        .unwrap_or_else(|| panic!("not an integer: {v:?}"))
}

/// The keys planted below, and their expected counts.
const STRINGS: usize = 2000;
const SMALL: usize = 200;

/// Fill the source with every type: strings (binary keys and values too), strings with TTL,
/// hashes, lists, sets (intset and listpack), sorted sets with fractional and infinite scores, a
/// stream with consumer groups and pending entries, and one big key per collection type (bigger
/// than a read chunk, so chunked reads and cursor walks run). Returns the key count.
async fn populate(c: &mut Conn) -> i64 {
    let mut cmds = vec![];
    for i in 0..STRINGS {
        cmds.push(
            Cmd::new("SET")
                .arg(format!("str:{i}"))
                .arg(format!("value-{i}")),
        );
    }
    for i in 0..SMALL {
        let mut key = b"bin:\xff\x00\n".to_vec();
        key.extend_from_slice(i.to_string().as_bytes());
        let value: Vec<u8> = (0..=255u8).cycle().skip(i).take(300).collect();
        cmds.push(Cmd::new("SET").arg(key).arg(value));
    }
    for i in 0..300 {
        cmds.push(
            Cmd::new("SET")
                .arg(format!("ttl:{i}"))
                .arg(format!("t{i}"))
                .arg("EX")
                .arg(3600u64),
        );
    }
    for i in 0..SMALL {
        let k = format!("hash:{i}");
        let mut h = Cmd::new("HSET").arg(k.as_str());
        for f in 0..5 {
            h.push(format!("f{f}")).push(format!("v{f}-{i}"));
        }
        cmds.push(h);
        if i % 10 == 0 {
            cmds.push(Cmd::new("EXPIRE").arg(k.as_str()).arg(7200u64));
        }
        let mut l = Cmd::new("RPUSH").arg(format!("list:{i}"));
        for e in 0..10 {
            l.push(format!("e{}", e % 7));
        }
        cmds.push(l);
        let mut s = Cmd::new("SADD").arg(format!("set:{i}"));
        for m in 0..6 {
            if i % 2 == 0 {
                s.push(format!("{}", m * 1000 + i));
            } else {
                s.push(format!("m{m}-{i}"));
            }
        }
        cmds.push(s);
        cmds.push(
            Cmd::new("ZADD")
                .arg(format!("zset:{i}"))
                .arg("0.1")
                .arg("m0")
                .arg("-2.5")
                .arg("m1")
                .arg("+inf")
                .arg("m2")
                .arg("-inf")
                .arg("m3")
                .arg("1e-300")
                .arg("m4")
                .arg("0.3333333333333333")
                .arg("m5")
                .arg(i as u64)
                .arg("m6"),
        );
    }
    for i in 0..20 {
        for j in 1..=30 {
            cmds.push(
                Cmd::new("XADD")
                    .arg(format!("stream:{i}"))
                    .arg(format!("1000-{j}"))
                    .arg("f")
                    .arg(format!("v{j}"))
                    .arg("g")
                    .arg(vec![0u8, 255]),
            );
        }
    }
    cmds.push(
        Cmd::new("XGROUP")
            .arg("CREATE")
            .arg("stream:0")
            .arg("g")
            .arg("0"),
    );
    cmds.push(
        Cmd::new("XGROUP")
            .arg("CREATE")
            .arg("stream:0")
            .arg("h")
            .arg("$"),
    );
    cmds.push(
        Cmd::new("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("alice")
            .arg("COUNT")
            .arg(5u64)
            .arg("STREAMS")
            .arg("stream:0")
            .arg(">"),
    );
    let mut h = Cmd::new("HSET").arg("big:hash");
    let mut l = Cmd::new("RPUSH").arg("big:list");
    let mut s = Cmd::new("SADD").arg("big:set");
    let mut z = Cmd::new("ZADD").arg("big:zset");
    for i in 0..3000u64 {
        h.push(format!("f{i}")).push(format!("v{i}"));
        l.push(format!("e{i}"));
        s.push(format!("m{i}"));
        z.push(i as f64 / 7.0).push(format!("m{i}"));
        if i < 2500 {
            cmds.push(
                Cmd::new("XADD")
                    .arg("big:stream")
                    .arg(format!("{}-0", i + 1))
                    .arg("n")
                    .arg(i),
            );
        }
    }
    cmds.extend([h, l, s, z]);
    pipe(c, cmds).await;
    int(cmd(c, &["DBSIZE"]).await)
}

fn repl(info: &Value, field: &str) -> Option<String> {
    parse_info(info.as_str().unwrap_or_default(), field)
}

/// Make `dst` a replica of `src` and wait (bounded) until its link is up and its offset equals
/// the source's.
async fn replicate(dst: &Topology, src: &Topology) {
    let mut d = conn(dst).await;
    let mut s = conn(src).await;
    let port = src.primary().port.to_string();
    cmd(&mut d, &["REPLICAOF", "127.0.0.1", &port]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    for _ in 0..1200 {
        let si = cmd(&mut s, &["INFO", "replication"]).await;
        let di = cmd(&mut d, &["INFO", "replication"]).await;
        let up = repl(&di, "master_link_status").as_deref() == Some("up");
        let (mo, ro) = (
            repl(&si, "master_repl_offset"),
            repl(&di, "slave_repl_offset"),
        );
        if up && mo.is_some() && mo == ro {
            return;
        }
        last = format!("link up {up}, source offset {mo:?}, replica offset {ro:?}");
        assert!(Instant::now() < deadline, "replica did not sync: {last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica did not sync: {last}");
}

fn read_json(dir: &Path, name: &str) -> Json {
    let p = dir.join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("valid JSON")
}

fn verify(args: &[&str], out: &Path) -> (std::process::Output, Json) {
    let mut a = vec!["verify", "--quiet", "--out", out.to_str().unwrap()];
    a.extend_from_slice(args);
    let o = agent(&a, AGENT_TIMEOUT);
    let j = read_json(out, "verify.json");
    (o, j)
}

/// (key, kind) of every listed difference, sorted.
fn listed(j: &Json) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = j["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn detail<'a>(j: &'a Json, key: &str) -> &'a str {
    j["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == key)
        .unwrap_or_else(|| panic!("{key} not listed: {j:#}"))["description"]
        .as_str()
        .unwrap()
}

/// Writes a server has taken (its dirty counter): a read-only verify leaves it unchanged.
async fn writes(c: &mut Conn) -> i64 {
    let v = cmd(c, &["INFO", "persistence"]).await;
    repl(&v, "rdb_changes_since_last_save")
        .and_then(|x| x.parse().ok())
        .expect("rdb_changes_since_last_save")
}

async fn verify_migration(dest_bin: &Path, dest_version: &str, tag: &str) {
    let src = start_bin(&redis_bin()).await;
    let dst = start_bin(dest_bin).await;
    let mut s = conn(&src).await;
    let n = populate(&mut s).await;
    assert!(n > 3000, "{n} keys");
    replicate(&dst, &src).await;
    let mut d = conn(&dst).await;
    cmd(&mut d, &["REPLICAOF", "NO", "ONE"]).await;
    let (su, du) = (url(&src), url(&dst));
    let dir = scratch(&format!("verify-{tag}"));

    // Identical: every key, extra keys looked for, at the default rate limit, small batches.
    let (o, j) = verify(
        &["--source", &su, "--destination", &du, "--batch", "200"],
        &dir.join("same"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("IDENTICAL"),
        "{}",
        show(&o)
    );
    assert_eq!(j["verdict"], "identical", "{j:#}");
    assert_eq!(j["keys_checked"], n, "{j:#}");
    assert_eq!(j["identical"], n, "{j:#}");
    assert_eq!(j["destination_keys_scanned"], n, "{j:#}");
    assert_eq!(j["differences_total"], 0, "{j:#}");
    assert_eq!(j["extra_keys"], "checked");
    assert_eq!(j["source"]["server"], "redis");
    assert!(
        j["source"]["version"].as_str().unwrap().starts_with("7.0."),
        "{j:#}"
    );
    assert_eq!(j["destination"]["server"], "valkey");
    assert!(
        j["destination"]["version"]
            .as_str()
            .unwrap()
            .starts_with(dest_version),
        "{j:#}"
    );

    // A sample of the identical pair.
    let (o, j) = verify(
        &[
            "--source",
            &su,
            "--destination",
            &du,
            "--sample",
            "300",
            "--rate",
            "0",
        ],
        &dir.join("same-sample"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("RANDOMKEY"), "{text}");
    assert!(text.contains("extra keys   not looked for"), "{text}");
    assert_eq!(j["mode"], "sample");
    assert_eq!(j["extra_keys"], "skipped: sample");
    assert_eq!(j["sample"]["distinct"], 300, "{j:#}");
    assert_eq!(j["keys_checked"], 300, "{j:#}");

    // One difference per kind on the destination.
    cmd(&mut d, &["DEL", "str:7"]).await;
    cmd(&mut d, &["HSET", "hash:3", "f2", "changed"]).await;
    cmd(&mut d, &["DEL", "list:5"]).await;
    let mut rev = vec!["RPUSH", "list:5"];
    let elems: Vec<String> = (0..10).rev().map(|e| format!("e{}", e % 7)).collect();
    rev.extend(elems.iter().map(String::as_str));
    cmd(&mut d, &rev).await;
    cmd(&mut d, &["ZADD", "zset:4", "42", "m1"]).await;
    cmd(&mut d, &["HSET", "big:hash", "f2999", "changed"]).await;
    cmd(&mut d, &["LSET", "big:list", "2600", "changed"]).await;
    cmd(&mut d, &["XGROUP", "SETID", "stream:0", "g", "0"]).await;
    let pttl = |v: Value| int(v);
    let t9 = pttl(cmd(&mut d, &["PTTL", "ttl:9"]).await);
    cmd(&mut d, &["PEXPIRE", "ttl:9", &(t9 + 60_000).to_string()]).await;
    cmd(&mut d, &["PERSIST", "ttl:10"]).await;
    // Within the 2 s tolerance: not a difference.
    let t11 = pttl(cmd(&mut d, &["PTTL", "ttl:11"]).await);
    cmd(&mut d, &["PEXPIRE", "ttl:11", &(t11 - 500).to_string()]).await;
    cmd(&mut d, &["SET", "extra:key", "only here"]).await;

    let (ws, wd) = (writes(&mut s).await, writes(&mut d).await);
    let (o, j) = verify(
        &["--source", &su, "--destination", &du, "--rate", "0"],
        &dir.join("different"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    // Read-only on both sides.
    assert_eq!(writes(&mut s).await, ws, "verify wrote to the source");
    assert_eq!(writes(&mut d).await, wd, "verify wrote to the destination");
    let mut want: Vec<(String, String)> = [
        ("big:hash", "value"),
        ("big:list", "value"),
        ("extra:key", "extra"),
        ("hash:3", "value"),
        ("list:5", "value"),
        ("str:7", "missing"),
        ("stream:0", "value"),
        ("ttl:10", "ttl"),
        ("ttl:9", "ttl"),
        ("zset:4", "value"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    want.sort();
    assert_eq!(listed(&j), want, "{j:#}");
    assert_eq!(j["verdict"], "different");
    assert_eq!(j["differences_total"], 10);
    let kinds = &j["differences_by_kind"];
    assert_eq!(
        (
            &kinds["missing"],
            &kinds["extra"],
            &kinds["value"],
            &kinds["ttl"],
            &kinds["type"],
            &kinds["changed-during-verify"],
            &kinds["unreadable"]
        ),
        (
            &1.into(),
            &1.into(),
            &6.into(),
            &2.into(),
            &0.into(),
            &0.into(),
            &0.into()
        ),
        "{j:#}"
    );
    assert_eq!(j["keys_checked"], n);
    assert!(detail(&j, "hash:3").contains(r#"field "f2""#), "{j:#}");
    assert!(detail(&j, "list:5").contains("different order"), "{j:#}");
    assert!(
        detail(&j, "zset:4").contains(r#"member "m1": score -2.5 on source, 42"#),
        "{j:#}"
    );
    assert!(detail(&j, "big:list").contains("index 2600"), "{j:#}");
    assert!(
        detail(&j, "stream:0").contains(r#"consumer group "g""#),
        "{j:#}"
    );
    assert!(
        detail(&j, "ttl:10").contains("none on destination"),
        "{j:#}"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("differences  10: missing 1, extra 1, value 6, ttl 2"),
        "{text}"
    );
    for (k, _) in &want {
        assert!(text.contains(k.as_str()), "{k} not printed:\n{text}");
    }
    assert!(!text.contains("ttl:11"), "{text}");

    // --match restricts both scans.
    let (o, j) = verify(
        &[
            "--source",
            &su,
            "--destination",
            &du,
            "--rate",
            "0",
            "--match",
            "hash:*",
        ],
        &dir.join("match"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(j["keys_checked"], SMALL, "{j:#}");
    assert_eq!(j["destination_keys_scanned"], SMALL, "{j:#}");
    assert_eq!(
        listed(&j),
        vec![("hash:3".to_string(), "value".to_string())]
    );

    // A sample of the changed pair reports only planted differences (never extra keys).
    let (o, j) = verify(
        &[
            "--source",
            &su,
            "--destination",
            &du,
            "--rate",
            "0",
            "--sample",
            "1000",
        ],
        &dir.join("sample"),
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    assert_eq!(j["keys_checked"], 1000, "{j:#}");
    for d in listed(&j) {
        assert!(
            want.contains(&d) && d.1 != "extra",
            "unexpected {d:?}: {j:#}"
        );
    }
    assert_eq!(
        o.status.code() == Some(1),
        j["differences_total"].as_u64().unwrap() > 0
    );
}

#[tokio::test]
async fn verify_redis7_to_valkey9_identical_then_each_difference() {
    verify_migration(&valkey_bin(), "9.", "v9").await;
}

#[tokio::test]
async fn verify_redis7_to_valkey81_identical_then_each_difference() {
    verify_migration(&valkey8_bin(), "8.1.", "v81").await;
}

/// `vc:lag:*` keys on a server (there must be none after a lag run).
async fn canaries(t: &Topology) -> Vec<String> {
    let mut c = conn(t).await;
    let v = cmd(
        &mut c,
        &["SCAN", "0", "MATCH", "vc:lag:*", "COUNT", "10000"],
    )
    .await;
    let mut parts = v.into_array().unwrap().into_iter();
    let _cursor = parts.next();
    parts
        .next()
        .and_then(Value::into_array)
        .unwrap_or_default()
        .iter()
        .map(Value::to_string)
        .collect()
}

#[tokio::test]
async fn lag_through_a_valkey_replica_of_redis7() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_single().await;
    replicate(&dst, &src).await;
    let dir = scratch("lag-replica");
    let o = agent(
        &[
            "lag",
            "--source",
            &url(&src),
            "--destination",
            &url(&dst),
            "--duration",
            "2s",
            "--interval",
            "200ms",
            "--out",
            dir.to_str().unwrap(),
        ],
        AGENT_TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("the destination is a replica of the source"),
        "{text}"
    );
    assert!(text.contains("#1 "), "a line per sample:\n{text}");
    let j = read_json(&dir, "lag.json");
    assert_eq!(j["verdict"], "ok", "{j:#}");
    assert_eq!(j["replication"], "replica-up", "{j:#}");
    assert_eq!(j["lost"], 0, "{j:#}");
    let sent = j["sent"].as_u64().unwrap();
    assert!(sent >= 3, "{j:#}");
    assert_eq!(j["arrived"].as_u64(), Some(sent), "{j:#}");
    let samples = j["samples"].as_array().unwrap();
    assert_eq!(samples.len() as u64, sent);
    for s in samples {
        let lag = s["lag_ms"].as_f64().expect("every canary arrived");
        assert!(lag <= j["max_lag_ms"].as_f64().unwrap(), "{s}");
        assert!(s["source_offset"].as_i64().is_some(), "offsets shown: {s}");
    }
    assert!(j["lag_ms"]["p99"].as_f64().is_some(), "{j:#}");
    assert_eq!(
        j["replication_end"]["destination"]["role"], "slave",
        "{j:#}"
    );
    assert_eq!(
        canaries(&src).await,
        Vec::<String>::new(),
        "canary left behind"
    );
}

#[tokio::test]
async fn lag_without_replication_exits_1_and_says_why() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_single().await;
    let dir = scratch("lag-none");
    let o = agent(
        &[
            "lag",
            "--source",
            &url(&src),
            "--destination",
            &url(&dst),
            "--duration",
            "1s",
            "--interval",
            "200ms",
            "--max-lag",
            "300ms",
            "--out",
            dir.to_str().unwrap(),
        ],
        AGENT_TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("never reached the destination within 300ms"),
        "{text}"
    );
    assert!(
        text.contains("the destination is not a replica (role master)"),
        "{text}"
    );
    let j = read_json(&dir, "lag.json");
    assert_eq!(j["verdict"], "lagging");
    assert_eq!(j["replication"], "not-replica");
    assert_eq!(j["arrived"], 0);
    assert!(j["lost"].as_u64().unwrap() >= 1, "{j:#}");
    assert_eq!(j["lost"], j["sent"]);
    assert!(j["samples"][0]["lag_ms"].is_null(), "{j:#}");
    assert_eq!(
        canaries(&src).await,
        Vec::<String>::new(),
        "canary left behind"
    );
    assert_eq!(
        canaries(&dst).await,
        Vec::<String>::new(),
        "lag wrote to the destination"
    );
}

#[tokio::test]
async fn verify_and_lag_name_an_unreachable_address_and_refuse_bad_usage() {
    let live = start_single().await;
    let lu = url(&live);
    let port = free_port();
    let dead = format!("redis://127.0.0.1:{port}");
    for (cmdname, args, side) in [
        (
            "verify",
            ["--source", dead.as_str(), "--destination", lu.as_str()],
            "source",
        ),
        (
            "verify",
            ["--source", lu.as_str(), "--destination", dead.as_str()],
            "destination",
        ),
        (
            "lag",
            ["--source", lu.as_str(), "--destination", dead.as_str()],
            "destination",
        ),
    ] {
        let mut a = vec![cmdname];
        a.extend_from_slice(&args);
        if cmdname == "lag" {
            a.extend_from_slice(&["--duration", "1s"]);
        }
        let o = agent(&a, AGENT_TIMEOUT);
        assert_eq!(o.status.code(), Some(3), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{side} redis://127.0.0.1:{port} unreachable"))
                && err.contains(&format!("127.0.0.1:{port}: Connection refused")),
            "{err}"
        );
    }
    for bad in [
        vec![
            "verify",
            "--source",
            "http://x",
            "--destination",
            lu.as_str(),
        ],
        vec![
            "verify",
            "--source",
            lu.as_str(),
            "--destination",
            lu.as_str(),
            "--sample",
            "0",
        ],
        vec!["verify", "--source", lu.as_str()],
        vec![
            "lag",
            "--source",
            lu.as_str(),
            "--destination",
            lu.as_str(),
            "--interval",
            "0s",
        ],
    ] {
        let o = agent(&bad, AGENT_TIMEOUT);
        assert_eq!(o.status.code(), Some(2), "{bad:?}\n{}", show(&o));
        assert!(!o.stderr.is_empty(), "{bad:?}: a message");
    }
}

/// A connection to `db` of a server.
async fn conn_db(t: &Topology, db: u32) -> Conn {
    let mut c = conn(t).await;
    cmd(&mut c, &["SELECT", &db.to_string()]).await;
    c
}

/// One expiry time for every planted TTL of the process, so servers planted at different moments
/// hold equal TTLs.
fn expire_at() -> u64 {
    static AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        now.as_secs() + 3600
    })
}

/// ECHO's layout (its code builds `REDIS_URL + "/1"` and `"/2"`): 50 app keys in DB 0 (caches,
/// rate limits, some with a TTL), 30 Dramatiq keys in DB 1 (the broker's queue, its messages,
/// results), 30 pipeline coordination keys in DB 2 (counters and locks). Only `dbs` are written;
/// the same content every time, so two servers planted alike are identical.
async fn plant_echo(t: &Topology, dbs: &[u32]) {
    for &db in dbs {
        let mut c = conn_db(t, db).await;
        let mut cmds = vec![];
        match db {
            0 => {
                for i in 0..40 {
                    cmds.push(
                        Cmd::new("SET")
                            .arg(format!("cache:project:{i}"))
                            .arg(format!("{{\"id\":{i}}}")),
                    );
                }
                for i in 0..10 {
                    cmds.push(
                        Cmd::new("SET")
                            .arg(format!("rate:ip:10.0.0.{i}"))
                            .arg(i as u64)
                            .arg("EXAT")
                            .arg(expire_at()),
                    );
                }
            }
            1 => {
                let mut msgs = Cmd::new("HSET").arg("dramatiq:default.msgs");
                let mut queue = Cmd::new("RPUSH").arg("dramatiq:default");
                for i in 0..30 {
                    msgs.push(format!("msg-{i}")).push(format!(
                        "{{\"actor_name\":\"task_{}\",\"message_id\":\"msg-{i}\"}}",
                        i % 4
                    ));
                    queue.push(format!("msg-{i}"));
                }
                cmds.extend([msgs, queue]);
                cmds.push(
                    Cmd::new("ZADD")
                        .arg("dramatiq:__heartbeats__")
                        .arg(1u64)
                        .arg("worker-a"),
                );
                for i in 0..27 {
                    cmds.push(
                        Cmd::new("SET")
                            .arg(format!("dramatiq:results:msg-{i}"))
                            .arg(format!("result-{i}")),
                    );
                }
            }
            2 => {
                for i in 0..20 {
                    cmds.push(
                        Cmd::new("INCRBY")
                            .arg(format!("coord:conversation:{i}:pending"))
                            .arg(i as u64 + 1),
                    );
                }
                for i in 0..10 {
                    cmds.push(
                        Cmd::new("SET")
                            .arg(format!("coord:lock:conversation:{i}"))
                            .arg("owner")
                            .arg("EXAT")
                            .arg(expire_at()),
                    );
                }
            }
            _ => {
                for i in 0..4 {
                    cmds.push(Cmd::new("SET").arg(format!("stray:{db}:{i}")).arg("x"));
                }
            }
        }
        pipe(&mut c, cmds).await;
    }
}

/// The JSON line of database `db`.
fn database(j: &Json, db: u64) -> &Json {
    j["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["db"] == db)
        .unwrap_or_else(|| panic!("db {db} not listed: {j:#}"))
}

/// The planted bug (a copy of DB 0 only, what a tool that migrates one database leaves) and its
/// correct twin (every database copied), then `--db` and a URL's `/N` narrowing it.
#[tokio::test]
async fn verify_checks_every_database_echo_uses_not_only_db_0() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_bin(&valkey_bin()).await;
    plant_echo(&src, &[0, 1, 2]).await;
    plant_echo(&dst, &[0]).await;
    let (su, du) = (url(&src), url(&dst));
    let dir = scratch("verify-dbs");

    // DB 0 matches, the broker (DB 1) and the coordination (DB 2) are missing: DIFFERENT.
    let (o, j) = verify(
        &["--source", &su, "--destination", &du, "--show", "100"],
        &dir.join("db0-only"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("databases    0, 1, 2: every database holding keys on either side"),
        "{text}"
    );
    assert!(
        text.contains("db 1: 30 keys on the source, none on the destination"),
        "{text}"
    );
    assert!(
        text.contains("db 2: 30 keys on the source, none on the destination"),
        "{text}"
    );
    assert!(text.contains("db1   dramatiq:default.msgs"), "{text}");
    assert!(
        text.contains("DIFFERENT: 60 keys differ; db 1, db 2 on one side only (exit 1)"),
        "{text}"
    );
    assert_eq!(j["verdict"], "different", "{j:#}");
    assert_eq!(j["database_selection"], "info-keyspace");
    assert_eq!(j["databases"].as_array().unwrap().len(), 3, "{j:#}");
    for (db, keys, only_on, differ) in [
        (0, 50, Json::Null, 0),
        (1, 30, "source".into(), 30),
        (2, 30, "source".into(), 30),
    ] {
        let d = database(&j, db);
        assert_eq!(
            (
                &d["source_keys"],
                &d["destination_keys"],
                &d["only_on"],
                &d["keys_checked"],
                &d["differences"],
                &d["complete"]
            ),
            (
                &keys.into(),
                &(if db == 0 { 50 } else { 0 }).into(),
                &only_on,
                &keys.into(),
                &differ.into(),
                &true.into()
            ),
            "db {db}: {j:#}"
        );
    }
    assert_eq!(j["keys_checked"], 110, "{j:#}");
    assert_eq!(j["differences_by_kind"]["missing"], 60, "{j:#}");
    assert_eq!(j["databases_on_one_side"], 2, "{j:#}");
    assert_eq!(j["differences_total"], 62, "{j:#}");
    let broker = j["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "dramatiq:default.msgs")
        .unwrap_or_else(|| panic!("the broker's messages not listed: {j:#}"));
    assert_eq!(
        (&broker["db"], &broker["kind"]),
        (&1.into(), &"missing".into()),
        "{j:#}"
    );

    // A sample, and --no-extra: the databases on one side still make it DIFFERENT.
    for (tag, extra) in [
        ("sample", ["--sample", "5"]),
        ("no-extra", ["--no-extra", "--batch=50"]),
    ] {
        let mut a = vec![
            "--source",
            su.as_str(),
            "--destination",
            du.as_str(),
            "--rate",
            "0",
        ];
        a.extend_from_slice(&extra);
        let (o, j) = verify(&a, &dir.join(tag));
        assert_eq!(o.status.code(), Some(1), "{tag}: {}", show(&o));
        assert_eq!(j["databases_on_one_side"], 2, "{tag}: {j:#}");
    }

    // --db 0 compares DB 0 only: IDENTICAL.
    let (o, j) = verify(
        &["--source", &su, "--destination", &du, "--db", "0"],
        &dir.join("db0"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("databases    0: as --db asked"), "{text}");
    assert!(
        text.contains("IDENTICAL: every checked key matches (exit 0)"),
        "{text}"
    );
    assert_eq!(j["database_selection"], "db-flags");
    assert_eq!(j["databases"].as_array().unwrap().len(), 1, "{j:#}");
    assert_eq!(j["keys_checked"], 50, "{j:#}");

    // A source URL's /1: DB 1 only, against the destination URL's database (none: DB 0), as
    // each URL names its own database.
    let (o, j) = verify(
        &["--source", &format!("{su}/1"), "--destination", &du],
        &dir.join("url1"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(j["database_selection"], "url");
    assert_eq!(j["databases"].as_array().unwrap().len(), 1, "{j:#}");
    assert_eq!(
        (
            &j["databases"][0]["db"],
            &j["databases"][0]["destination_db"]
        ),
        (&1.into(), &0.into())
    );
    assert_eq!(j["keys_checked"], 30, "{j:#}");
    assert_eq!(j["differences_by_kind"]["missing"], 30, "{j:#}");
    // Both URLs /1: DB 1 against DB 1, on the source only.
    let (o, j) = verify(
        &[
            "--source",
            &format!("{su}/1"),
            "--destination",
            &format!("{du}/1"),
        ],
        &dir.join("url11"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(j["databases"][0]["only_on"], "source", "{j:#}");

    // --db together with a URL's database: a usage error that says so.
    let o = agent(
        &[
            "verify",
            "--source",
            &format!("{su}/1"),
            "--destination",
            &du,
            "--db",
            "1",
        ],
        AGENT_TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--db cannot be combined with a database in the URL (--source names /1)"),
        "{err}"
    );

    // The correct twin: every database copied. IDENTICAL, a line per database.
    plant_echo(&dst, &[1, 2]).await;
    let (o, j) = verify(&["--source", &su, "--destination", &du], &dir.join("all"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for line in [
        "db 0         50 keys on the source, 50 on the destination: 50 checked, none differ",
        "db 1         30 keys on the source, 30 on the destination: 30 checked, none differ",
        "db 2         30 keys on the source, 30 on the destination: 30 checked, none differ",
        "IDENTICAL: every checked key matches (exit 0)",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert_eq!(j["verdict"], "identical", "{j:#}");
    assert_eq!(j["keys_checked"], 110, "{j:#}");
    assert_eq!(j["destination_keys_scanned"], 110, "{j:#}");
    assert_eq!(j["databases_on_one_side"], 0, "{j:#}");

    // A database on the destination only (DB 3) is a difference even with --no-extra, which
    // never scans the destination.
    plant_echo(&dst, &[3]).await;
    let (o, j) = verify(
        &["--source", &su, "--destination", &du, "--no-extra"],
        &dir.join("dst-only"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("db 3: 4 keys on the destination, none on the source"),
        "{text}"
    );
    assert!(
        text.contains("DIFFERENT: db 3 on one side only (exit 1)"),
        "{text}"
    );
    assert_eq!(j["differences_by_kind"]["extra"], 0, "{j:#}");
    assert_eq!(database(&j, 3)["only_on"], "destination", "{j:#}");
    // Its twin: DB 3 left out with --db, identical.
    let (o, _) = verify(
        &[
            "--source",
            &su,
            "--destination",
            &du,
            "--no-extra",
            "--db",
            "0",
            "--db",
            "1",
            "--db",
            "2",
        ],
        &dir.join("dst-only-narrowed"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

/// Ctrl-C before the end with no difference found: not proven identical, exit 4.
#[tokio::test]
async fn an_interrupted_verify_is_incomplete_and_exits_4() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_bin(&valkey_bin()).await;
    plant_echo(&src, &[0, 1, 2]).await;
    plant_echo(&dst, &[0, 1, 2]).await;
    let dir = scratch("verify-interrupted");
    // 20 keys/s over 220 keys: about 11 s, stopped after 1.5 s.
    let child = std::process::Command::new(agent_bin())
        .args([
            "verify",
            "--quiet",
            "--source",
            &url(&src),
            "--destination",
            &url(&dst),
            "--rate",
            "20",
            "--batch",
            "10",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn agent");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().expect("agent output"))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("INCOMPLETE: interrupted after"), "{text}");
    assert!(text.contains("no difference so far (exit 4)"), "{text}");
    let j = read_json(&dir, "verify.json");
    assert_eq!(j["verdict"], "incomplete", "{j:#}");
    assert_eq!(j["interrupted"], true, "{j:#}");
    assert!(j["keys_checked"].as_u64().unwrap() < 110, "{j:#}");
    assert_eq!(database(&j, 2)["complete"], false, "{j:#}");
}

/// `vc:lag:*` keys in `db` of a server.
async fn canaries_in(t: &Topology, db: u32) -> Vec<String> {
    scan_canaries(&mut conn_db(t, db).await).await
}

/// A 2 s `lag` run (a canary every 200 ms, lost after 500 ms) writing `lag.json` to `out`.
fn lag_args(src: &str, dst: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let out = out.to_str().unwrap();
    let mut a = vec![
        "lag",
        "--source",
        src,
        "--destination",
        dst,
        "--duration",
        "2s",
        "--interval",
        "200ms",
        "--max-lag",
        "500ms",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a.into_iter().map(str::to_string).collect()
}

/// [`agent`] off the test's runtime, so tasks of the test (a copier) go on meanwhile.
async fn agent_off_runtime(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        agent(&a, AGENT_TIMEOUT)
    })
    .await
    .expect("agent task")
}

/// The correct twin: a real replica carries every database, so each database's canary arrives.
#[tokio::test]
async fn lag_watches_a_canary_in_every_database_of_a_replicated_source() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_single().await;
    plant_echo(&src, &[0, 1, 2]).await;
    replicate(&dst, &src).await;
    let dir = scratch("lag-dbs-replica");
    let (su, du) = (url(&src), url(&dst));
    let a = lag_args(&su, &du, &dir, &[]);
    let o = agent_off_runtime(a).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("databases    0, 1, 2: every database holding keys on the source"),
        "{text}"
    );
    for db in 0..3 {
        assert!(
            text.contains(&format!("db{db} ")),
            "a line per sample of db {db}:\n{text}"
        );
    }
    let j = read_json(&dir, "lag.json");
    assert_eq!(j["verdict"], "ok", "{j:#}");
    assert_eq!(j["database_selection"], "info-keyspace");
    let dbs = j["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 3, "{j:#}");
    for d in dbs {
        assert_eq!(d["status"], "ok", "{j:#}");
        assert!(d["arrived"].as_u64().unwrap() >= 3, "{j:#}");
        assert_eq!(d["arrived"], d["sent"], "{j:#}");
    }
    let samples = j["samples"].as_array().unwrap();
    assert_eq!(samples.len() as u64, j["sent"].as_u64().unwrap(), "{j:#}");
    for db in 0..3u64 {
        assert!(
            samples.iter().any(|s| s["db"] == db),
            "no sample of db {db}: {j:#}"
        );
    }
    for db in 0..3 {
        assert_eq!(
            canaries_in(&src, db).await,
            Vec::<String>::new(),
            "canary left behind in db {db}"
        );
    }
}

/// The planted bug: a migration tool that copies only DB 0 (here a loop copying the source's
/// DB 0 canary into the destination's DB 0). DB 0's canary arrives, DB 2's never does: lagging,
/// and the report says which database.
#[tokio::test]
async fn lag_names_the_database_a_db_0_only_copy_never_replicates() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_single().await;
    plant_echo(&src, &[0, 2]).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let copier = {
        let (mut s, mut d) = (conn_db(&src, 0).await, conn_db(&dst, 0).await);
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                for k in scan_canaries(&mut s).await {
                    if let Some(v) = s
                        .request(&Cmd::new("GET").arg(k.as_str()))
                        .await
                        .ok()
                        .and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
                    {
                        cmd(
                            &mut d,
                            &["SET", &k, &String::from_utf8_lossy(&v), "EX", "60"],
                        )
                        .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let dir = scratch("lag-db0-only");
    let (su, du) = (url(&src), url(&dst));
    let a = lag_args(&su, &du, &dir, &[]);
    let o = agent_off_runtime(a).await;
    stop.cancel();
    copier.await.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("never reached the destination within 500ms (db 2 not replicated)"),
        "{text}"
    );
    let j = read_json(&dir, "lag.json");
    assert_eq!(j["verdict"], "lagging", "{j:#}");
    let status = |db: u64| database(&j, db)["status"].as_str().unwrap().to_string();
    assert_eq!(
        (status(0), status(2)),
        ("ok".into(), "not-replicated".into()),
        "{j:#}"
    );
    assert_eq!(database(&j, 2)["arrived"], 0, "{j:#}");
    for db in [0, 2] {
        assert_eq!(
            canaries_in(&src, db).await,
            Vec::<String>::new(),
            "canary left behind in db {db}"
        );
    }
    assert_eq!(
        canaries_in(&dst, 2).await,
        Vec::<String>::new(),
        "lag wrote to the destination"
    );
}

/// `vc:lag:*` keys in a connection's database.
async fn scan_canaries(c: &mut Conn) -> Vec<String> {
    let v = cmd(c, &["SCAN", "0", "MATCH", "vc:lag:*", "COUNT", "10000"]).await;
    let mut parts = v.into_array().unwrap().into_iter();
    let _cursor = parts.next();
    parts
        .next()
        .and_then(Value::into_array)
        .unwrap_or_default()
        .iter()
        .map(Value::to_string)
        .collect()
}

/// Not a replica at all, with the databases from `--db 0 --db 2`: both reported as not
/// replicated, and no canary written anywhere else.
#[tokio::test]
async fn lag_reports_each_listed_database_of_a_destination_that_is_no_replica() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_single().await;
    let dir = scratch("lag-dbs-none");
    let (su, du) = (url(&src), url(&dst));
    let a = lag_args(&su, &du, &dir, &["--db", "0", "--db", "2"]);
    let o = agent_off_runtime(a).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("databases    0, 2: as --db asked"), "{text}");
    assert!(
        text.contains("(db 0 not replicated, db 2 not replicated)"),
        "{text}"
    );
    let j = read_json(&dir, "lag.json");
    assert_eq!(j["database_selection"], "db-flags");
    for db in [0, 2] {
        assert_eq!(database(&j, db)["status"], "not-replicated", "{j:#}");
        assert_eq!(
            canaries_in(&src, db as u32).await,
            Vec::<String>::new(),
            "canary left behind in db {db}"
        );
    }
    assert_eq!(j["databases"].as_array().unwrap().len(), 2, "{j:#}");
    // --db with a URL's database: a usage error.
    let o = agent(
        &[
            "lag",
            "--source",
            &format!("{su}/2"),
            "--destination",
            &du,
            "--db",
            "2",
            "--duration",
            "1s",
        ],
        AGENT_TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

/// Every database's connections authenticate as the first one did: a password in the source URL,
/// `VALKEY_PASSWORD` for the destination.
#[tokio::test]
async fn verify_authenticates_in_every_database() {
    let src = start_bin(&redis_bin()).await;
    let dst = start_bin(&valkey_bin()).await;
    plant_echo(&src, &[0, 1, 2]).await;
    plant_echo(&dst, &[0, 1, 2]).await;
    cmd(
        &mut conn(&src).await,
        &["CONFIG", "SET", "requirepass", "s3cret"],
    )
    .await;
    cmd(
        &mut conn(&dst).await,
        &["CONFIG", "SET", "requirepass", "d3st"],
    )
    .await;
    let su = url(&src).replace("redis://", "redis://:s3cret@");
    let dir = scratch("verify-dbs-auth");
    let o = agent_env(
        &[
            "verify",
            "--quiet",
            "--source",
            &su,
            "--destination",
            &url(&dst),
            "--out",
            dir.to_str().unwrap(),
        ],
        &[("VALKEY_PASSWORD", "d3st")],
        AGENT_TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let j = read_json(&dir, "verify.json");
    assert_eq!(j["databases"].as_array().unwrap().len(), 3, "{j:#}");
    assert_eq!(j["keys_checked"], 110, "{j:#}");
    assert!(!j.to_string().contains("s3cret"), "password shown: {j:#}");
    // Without the destination's password: refused, and said so (exit 3).
    let o = agent(
        &["verify", "--source", &su, "--destination", &url(&dst)],
        AGENT_TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
}
