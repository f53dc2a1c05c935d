//! The foundation through the real binary: counts that match the server's, coordinated-omission
//! correction under a real stall, exit codes, and no orphans after Ctrl-C or SIGKILL.

use std::time::{Duration, Instant};

use crate::support::*;

fn commandstat(info: &str, cmd: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn summary_counts_match_info_commandstats() {
    let t = start_single().await;
    let dir = scratch("counts");
    let sc = scenario(
        &dir,
        "counts",
        r#"
duration = "2s"
[[workload]]
id = "cache"
type = "commands"
clients = 4
[workload.commands]
mix = { get = 3, set = 1, incr = 1 }
keys = 100
pipeline = 4
"#,
    );
    let mut c = conn(&t).await;
    cmd(&mut c, &["CONFIG", "RESETSTAT"]).await;
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "--target",
            &url(&t),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    let info = cmd(&mut c, &["INFO", "commandstats"])
        .await
        .as_str()
        .unwrap()
        .to_string();
    for name in ["get", "set", "incr"] {
        let ours = op(&s, "cache", name)["count"].as_u64().unwrap();
        assert!(ours > 100, "{name}: only {ours} ops");
        assert_eq!(
            ours,
            commandstat(&info, name),
            "{name}: summary vs INFO commandstats\n{info}"
        );
        assert_eq!(op(&s, "cache", name)["errors"].as_u64(), Some(0));
    }
    // The interval log is readable by the hdrhistogram crate, with one tag per op.
    let log = std::fs::read(out.join("latency.hlog")).unwrap();
    let mut tags = std::collections::BTreeSet::new();
    let mut total = 0;
    let mut de = hdrhistogram::serialization::Deserializer::new();
    for e in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(h)) = e {
            let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            let hist: hdrhistogram::Histogram<u64> = de
                .deserialize(&mut base64_decode(h.encoded_histogram()).as_slice())
                .unwrap();
            if tag == "cache.get" {
                total += hist.len();
            }
            tags.insert(tag);
        }
    }
    assert!(
        tags.contains("cache.get") && tags.contains("cache.set.service"),
        "{tags:?}"
    );
    assert_eq!(total, op(&s, "cache", "get")["ok"].as_u64().unwrap());
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = vec![];
    let mut buf = 0u32;
    let mut bits = 0;
    for ch in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == ch).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn a_server_stall_shows_in_corrected_latency_not_in_service_time() {
    let dir = scratch("stall");
    let sc = scenario(
        &dir,
        "stall",
        r#"
duration = "4s"
[[workload]]
id = "w"
type = "commands"
clients = 1
rate_per_sec = 200
[workload.commands]
mix = { get = 1 }
keys = 10

[[fault]]
type = "debug-sleep"
at = "1500ms"
duration = "600ms"

[thresholds]
"w.get.p99{during:0}" = "> 100ms"
"w.get.p50{before}" = "< 50ms"
"#,
    );
    let s = run_plan(&sc, None).await;
    let get = s.op("w", "get").unwrap();
    assert!(get.count > 600, "{get:?}");
    assert!(
        get.latency_us.p99 > 300_000,
        "corrected p99 should include the 600ms stall: {:?}",
        get.latency_us
    );
    assert!(get.latency_us.max >= 450_000, "{:?}", get.latency_us);
    assert!(
        get.service_us.p99 < 100_000,
        "service time p99 should not: {:?}",
        get.service_us
    );
    assert!(s.checks.iter().all(|c| c.passed), "{:#?}", s.checks);
    assert_eq!(s.faults[0].kind, "debug-sleep");
    assert!(s.faults[0].healed_at_secs.is_some());
}

#[tokio::test]
async fn exit_codes_mean_pass_fail_usage_and_unreachable() {
    let t = start_single().await;
    let dir = scratch("exits");
    let body = |threshold: &str| {
        format!(
            "duration = \"1s\"\n[[workload]]\nid = \"w\"\ntype = \"commands\"\nclients = 2\n[workload.commands]\nmix = {{ get = 1 }}\n[thresholds]\n{threshold}\n"
        )
    };
    let pass = scenario(&dir, "pass", &body("\"w.get.count\" = \"> 0\""));
    let fail = scenario(&dir, "fail", &body("\"w.get.count\" = \"== 0\""));
    let bad = scenario(
        &dir,
        "bad",
        "duration = \"1s\"\n[[workload]]\nid = \"w\"\ntype = \"nope\"\n",
    );
    let u = url(&t);
    let o = agent(
        &["run", pass.to_str().unwrap(), "--target", &u, "-q"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("verdict: PASS"),
        "{}",
        show(&o)
    );
    let o = agent(
        &["run", fail.to_str().unwrap(), "--target", &u, "-q"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("FAIL w.get.count"),
        "{}",
        show(&o)
    );
    let o = agent(
        &["run", bad.to_str().unwrap(), "--target", &u, "-q"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("bad.toml:4:8: unknown `workload.type` \"nope\""),
        "{}",
        show(&o)
    );
    let o = agent(
        &[
            "run",
            pass.to_str().unwrap(),
            "--threshold",
            "w.nope.p99 < 1ms",
            "--target",
            &u,
            "-q",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let port = valkey_chaos::valkey::embedded::free_port();
    let dead = format!("redis://127.0.0.1:{port}");
    let o = agent(
        &["run", pass.to_str().unwrap(), "--target", &dead, "-q"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("refused"),
        "{err}"
    );
}

fn wait_children(pid: u32, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = children_of(pid);
        if c.len() >= n {
            return c;
        }
        assert!(Instant::now() < deadline, "agent {pid} started only {c:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const LONG: &str = r#"
duration = "60s"
[topology]
replicas = 1
sentinels = 3
[[workload]]
id = "w"
type = "commands"
clients = 2
rate_per_sec = 100
"#;

#[test]
fn ctrl_c_stops_every_process_and_writes_partial_results() {
    let dir = scratch("ctrlc");
    let sc = scenario(&dir, "long", LONG);
    let out = dir.join("out");
    let mut child = std::process::Command::new(agent_bin())
        .args([
            "run",
            sc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let kids = wait_children(pid, 5);
    // Wait for the load to start (the agent says so on stderr), then let it run a little.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !line.starts_with("running ") {
        line.clear();
        assert!(Instant::now() < deadline, "the load never started");
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            panic!("agent exited before the load started");
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "agent did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    // Stopped half-way: never a pass (exit 4, incomplete), the partial results written.
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    for k in &kids {
        assert!(!alive(*k), "server {k} outlived the agent");
    }
    let s = summary(&out);
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["verdict"], "incomplete");
    assert!(s["duration_secs"].as_f64().unwrap() < 30.0);
    assert!(op(&s, "w", "get")["count"].as_u64().unwrap() > 10);
}

#[test]
fn sigkill_of_the_agent_takes_its_servers_down() {
    let dir = scratch("sigkill");
    let sc = scenario(&dir, "long", LONG);
    let mut child = std::process::Command::new(agent_bin())
        .args(["run", sc.to_str().unwrap(), "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let kids = wait_children(child.id(), 5);
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while kids.iter().any(|k| alive(*k)) {
        assert!(
            Instant::now() < deadline,
            "servers {kids:?} outlived a SIGKILLed agent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
