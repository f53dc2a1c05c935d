//! Agents on separate hosts, for real: the target and three agents each in a network namespace
//! of its own, with its own address on a bridge (in a fourth namespace, so the host's network is
//! never touched). The shards meet at the start barrier on the target, one agent's host is cut
//! off mid-run and dies, and the merge names the shard that went missing while the other two
//! are merged whole. Needs root (CI and the development machines run as root); where network
//! namespaces cannot be created the test says so and does nothing else.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support;

const SUBNET: &str = "10.213.0";
const TARGET_IP: &str = "10.213.0.1";
const AGENTS: u32 = 3;
const T: Duration = Duration::from_secs(90);

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

fn ip_ok(args: &[&str]) {
    let o = ip(args);
    assert!(o.status.success(), "ip {args:?}: {}", support::show(&o));
}

/// Namespaces, links and processes of the test; all removed on drop, also after a panic.
struct Net {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Net {
    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    /// A namespace; `Err` when this machine does not allow creating one.
    fn add_ns(&mut self, host: &str) -> Result<String, String> {
        let name = self.ns(host);
        let o = ip(&["netns", "add", &name]);
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        self.namespaces.push(name.clone());
        ip_ok(&["-n", &name, "link", "set", "lo", "up"]);
        Ok(name)
    }

    /// Host `host` gets `addr` on a veth whose other end is on the bridge.
    fn plug(&self, host: &str, addr: &str) {
        let (ns, sw) = (self.ns(host), self.ns("s"));
        let (dev, peer) = (
            format!("{}{host}", self.prefix),
            format!("{}p{host}", self.prefix),
        );
        ip_ok(&[
            "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", &peer, "netns", &sw,
        ]);
        ip_ok(&["-n", &sw, "link", "set", &peer, "master", "br0"]);
        ip_ok(&["-n", &sw, "link", "set", &peer, "up"]);
        ip_ok(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &dev]);
        ip_ok(&["-n", &ns, "link", "set", &dev, "up"]);
    }

    /// Cut host `host` off the network (its cable, on the bridge side).
    fn unplug(&self, host: &str) {
        let peer = format!("{}p{host}", self.prefix);
        ip_ok(&["-n", &self.ns("s"), "link", "set", &peer, "down"]);
    }

    /// `program args` inside host `host`'s namespace.
    fn spawn(&mut self, host: &str, program: &Path, args: &[&str]) -> usize {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(host)])
            .arg(program)
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("VALKEY_CHAOS_SHARDS")
            .env_remove("VALKEY_CHAOS_RUN_KEY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.children.push(c.spawn().expect("ip netns exec"));
        self.children.len() - 1
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace removes its veth ends, and with them their peers.
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Collect a child's stderr on a thread of its own.
fn capture(c: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    let err = c.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut g = b.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
    buf
}

/// Wait (bounded) for a child to exit; its exit code.
fn wait(c: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = c.try_wait().expect("try_wait") {
            return s.code();
        }
        assert!(Instant::now() < deadline, "a process overran {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenario(dir: &Path) -> std::path::PathBuf {
    support::scenario(
        dir,
        "hosts",
        r#"
name = "hosts"
seed = 21
duration = "6s"

[[workload]]
id = "w"
type = "commands"
clients = 6
rate_per_sec = 300
[workload.commands]
mix = { get = 4, set = 1 }
keys = 100

[thresholds]
"w.error_rate" = "< 1%"
"w.get.p99" = "< 2s"
"#,
    )
}

#[test]
fn agents_on_separate_hosts_meet_and_a_lost_host_is_named() {
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIPPED: no `ip` (iproute2) here; .ci/setup installs it");
        return;
    }
    let mut net = Net {
        prefix: format!("vc{}", std::process::id()),
        namespaces: vec![],
        children: vec![],
    };
    if let Err(e) = net.add_ns("s") {
        eprintln!("SKIPPED: network namespaces cannot be created here ({e}); this test needs root");
        return;
    }
    let sw = net.ns("s");
    ip_ok(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
    ip_ok(&["-n", &sw, "link", "set", "br0", "up"]);
    net.add_ns("t").expect("target namespace");
    net.plug("t", TARGET_IP);
    for i in 0..AGENTS {
        let h = format!("a{i}");
        net.add_ns(&h).expect("agent namespace");
        net.plug(&h, &format!("{SUBNET}.{}", 10 + i));
    }

    // The target listens on its own address, in its own namespace.
    let valkey = support::valkey_bin();
    let server = net.spawn(
        "t",
        &valkey,
        &[
            "--port",
            "6379",
            "--bind",
            TARGET_IP,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ],
    );
    let server_log = capture(&mut net.children[server]);
    // Reachable from the agents' hosts (and only through the bridge).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns("a0"),
                "redis-cli",
                "-h",
                TARGET_IP,
                "PING",
            ])
            .output()
            .expect("redis-cli");
        if String::from_utf8_lossy(&o.stdout).trim() == "PONG" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the target never answered across the bridge: {}\nserver: {}",
            support::show(&o),
            server_log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let dir = support::scratch("netns");
    let sc = scenario(&dir).display().to_string();
    let target = format!("redis://{TARGET_IP}:6379");
    let agent = support::agent_bin();
    let mut logs = vec![];
    let mut idx = vec![];
    for i in 0..AGENTS {
        let (shard, out) = (format!("{i}/{AGENTS}"), dir.join(i.to_string()));
        let out = out.display().to_string();
        let k = net.spawn(
            &format!("a{i}"),
            &agent,
            &[
                "run",
                "-q",
                "--target",
                &target,
                "--shard",
                &shard,
                "--run-key",
                "hosts",
                "--barrier-timeout",
                "30s",
                "--out",
                &out,
                &sc,
            ],
        );
        logs.push(capture(&mut net.children[k]));
        idx.push(k);
    }
    // Every agent passed the barrier; then the load runs.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !logs.iter().all(|l| {
        l.lock()
            .unwrap()
            .contains("shards met at vc:barrier:hosts:hosts:3")
    }) {
        assert!(
            Instant::now() < deadline,
            "the agents never met: {:#?}",
            logs.iter()
                .map(|l| l.lock().unwrap().clone())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Mid-run (time zero is at most a second after the barrier; the load lasts 6 s), host a2
    // loses its network and dies with it.
    std::thread::sleep(Duration::from_secs(3));
    net.unplug("a2");
    let lost = &mut net.children[idx[2]];
    let _ = lost.kill();
    let _ = lost.wait();

    for i in 0..2 {
        let code = wait(&mut net.children[idx[i]], T);
        assert_eq!(
            code,
            Some(0),
            "shard {i}/{AGENTS}:\n{}",
            logs[i].lock().unwrap()
        );
    }
    assert!(
        !dir.join("2/summary.json").exists(),
        "the lost host wrote nothing"
    );

    let merged = dir.join("merged");
    let p = |x: &Path| x.display().to_string();
    let o = support::agent(
        &[
            "merge",
            "--out",
            &p(&merged),
            &p(&dir.join("0")),
            &p(&dir.join("1")),
            &p(&dir.join("2")),
        ],
        T,
    );
    // The lost host's share never ran: the merged run is incomplete.
    assert_eq!(o.status.code(), Some(4), "{}", support::show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shard 2/3 is missing"),
        "{}",
        support::show(&o)
    );
    let (s0, s1, m) = (
        support::summary(&dir.join("0")),
        support::summary(&dir.join("1")),
        support::summary(&merged),
    );
    assert_eq!(s0["started_at"], s1["started_at"], "one time zero");
    // Only the missing shard fails the verdict; the other two are complete and merged.
    let failed: Vec<&serde_json::Value> = m["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["metric"], "shard 2/3");
    for (i, s) in [&s0, &s1].into_iter().enumerate() {
        assert_eq!(s["interrupted"], false, "shard {i}");
        assert_eq!(s["duration_secs"], s["planned_duration_secs"], "shard {i}");
        let complete = m["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["metric"] == format!("shard {i}/3"))
            .unwrap();
        assert_eq!(complete["passed"], true, "{complete}");
    }
    for op in ["get", "set"] {
        let n = |s: &serde_json::Value, f: &str| support::op(s, "w", op)[f].as_u64().unwrap();
        assert_eq!(n(&m, "count"), n(&s0, "count") + n(&s1, "count"), "{op}");
        assert_eq!(n(&m, "errors"), 0, "{op}: the surviving hosts lost nothing");
        assert!(n(&s0, "count") > 0 && n(&s1, "count") > 0);
    }
    drop(net);
}
