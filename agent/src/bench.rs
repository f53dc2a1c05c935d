//! `valkey-chaos bench`: the agent measured against peers in the same run, on the same fresh
//! Valkey: redis-benchmark (commands, also per CPU-second), Python Dramatiq `actor.send`
//! (enqueue per CPU-second), redis-py `Lock` (lock cycles), the native workload (plugins), a
//! direct connection (proxy); plus the agent's own figures with an absolute target: pacing
//! accuracy on an idle server, send lag, memory per native client and per plugin VU.
//! Every scenario is compiled from TOML text like a user's; nothing here is a timed assertion.
//! On a shared machine the figures move from run to run: repeat the bench and read ranges.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::summary::RunSummary;
use crate::valkey::embedded::{self, Topology, TopologySpec};

/// One figure: what the agent did, what a peer did (if any), its target and whether it is met.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub group: &'static str,
    pub name: String,
    pub agent: String,
    pub peer: String,
    /// agent ÷ peer, when there is a peer.
    pub ratio: Option<f64>,
    /// The number the target is about (the ratio, or the agent's own figure).
    pub value: Option<f64>,
    pub target: String,
    /// None when the figure could not be measured (a peer missing, a run failed).
    pub met: Option<bool>,
    pub note: String,
}

/// What a row's value must be.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn text(self, unit: &str) -> String {
        match self {
            Target::AtLeast(x) => format!("≥ {x}{unit}"),
            Target::AtMost(x) => format!("≤ {x}{unit}"),
        }
    }
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtLeast(x) => v >= x,
            Target::AtMost(x) => v <= x,
        }
    }
}

impl Row {
    fn new(group: &'static str, name: impl Into<String>) -> Row {
        Row {
            group,
            name: name.into(),
            agent: "-".into(),
            peer: "-".into(),
            ratio: None,
            value: None,
            target: String::new(),
            met: None,
            note: String::new(),
        }
    }
    /// A comparison with a peer: the ratio is the value.
    fn ratio(mut self, agent: String, peer: String, ratio: f64, t: Target) -> Row {
        self.agent = agent;
        self.peer = peer;
        self.ratio = Some(ratio);
        self.value = Some(ratio);
        self.target = t.text("×");
        self.met = Some(t.met(ratio));
        self
    }
    /// The agent's own figure against an absolute target.
    fn own(mut self, agent: String, value: f64, t: Target, unit: &str) -> Row {
        self.agent = agent;
        self.value = Some(value);
        self.target = t.text(unit);
        self.met = Some(t.met(value));
        self
    }
    /// Could not be measured.
    fn missing(mut self, t: Target, unit: &str, why: impl Into<String>) -> Row {
        self.target = t.text(unit);
        self.note = why.into();
        self
    }
    fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
}

/// The groups of rows `--only` can pick.
pub const GROUPS: &[&str] = &[
    "pacing", "commands", "dramatiq", "lock", "plugin", "memory", "proxy", "headroom",
];

fn rusage(who: i32) -> libc::rusage {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    unsafe { libc::getrusage(who, &mut u) };
    u
}

fn secs_of(u: &libc::rusage) -> f64 {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU seconds of the children waited for so far.
fn children_cpu_secs() -> f64 {
    secs_of(&rusage(libc::RUSAGE_CHILDREN))
}

async fn run_toml(text: &str, url: &str) -> Result<RunSummary, String> {
    let plan = crate::scenario::compile::compile_str(Path::new("bench.toml"), text)
        .map_err(|d| d.to_string())?;
    let opts = crate::run::RunOptions {
        target: crate::run::TargetChoice::Url(url.to_string()),
        quiet: true,
        ..Default::default()
    };
    let out = crate::run::run(&plan, &opts, CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    Ok(out.summary)
}

/// A run and the CPU this process spent on it.
/// A run and the CPU the agent spent while its load ran (not set-up, drain or checks: what a
/// peer's figure covers too).
async fn run_cpu(text: &str, url: &str) -> Result<(RunSummary, f64), String> {
    let s = run_toml(text, url).await?;
    let cpu = s
        .generator_cpu_secs
        .ok_or("the run reported no generator CPU")?;
    Ok((s, cpu))
}

fn total_ops(s: &RunSummary, w: &str, ops: &[&str]) -> u64 {
    s.ops
        .iter()
        .filter(|o| o.workload == w && (ops.is_empty() || ops.contains(&o.op.as_str())))
        .map(|o| o.ok)
        .sum()
}

fn python() -> Option<PathBuf> {
    embedded::tools_file("venv/bin/python").or_else(|| embedded::which("python3"))
}

/// redis-benchmark's SET+GET rate (ops/s) and the CPU seconds it used.
fn redis_benchmark(port: u16, clients: u32, pipeline: u32, n: u64) -> Result<(f64, f64), String> {
    let bin = embedded::which("redis-benchmark")
        .ok_or("redis-benchmark not found (`cargo xtask setup` installs Debian's redis-tools)")?;
    let c0 = children_cpu_secs();
    let out = Command::new(bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            &clients.to_string(),
            "-P",
            &pipeline.to_string(),
            "-n",
            &n.to_string(),
            "-d",
            "100",
            "-r",
            "10000",
            "-t",
            "set,get",
            "--csv",
        ])
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let cpu = children_cpu_secs() - c0;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",…  — combine SET and GET as the time to do n of each.
    let mut secs = 0.0;
    let mut seen = 0;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').map(|x| x.trim_matches('"')).collect();
        if let Some(rps) = f.get(1).and_then(|r| r.parse::<f64>().ok()) {
            secs += n as f64 / rps;
            seen += 1;
        }
    }
    if seen == 0 {
        return Err(format!("cannot read redis-benchmark output: {text}"));
    }
    Ok(((seen as f64 * n as f64) / secs, cpu))
}

fn commands_toml(clients: u32, pipeline: u32, secs: u64) -> String {
    format!("duration = \"{secs}s\"\n[[workload]]\nid = \"c\"\ntype = \"commands\"\nclients = {clients}\n[workload.commands]\nmix = {{ get = 1, set = 1 }}\nkeys = 10000\nvalue_bytes = 100\npipeline = {pipeline}\n")
}

fn fmt_rate(x: f64) -> String {
    format!("{x:.0}")
}

/// Run every comparison (or the `only` groups); rows that need a missing peer say so instead
/// of failing the bench.
pub async fn run(
    secs: u64,
    plugin_dir: Option<&Path>,
    only: &[String],
) -> Result<Vec<Row>, String> {
    let want = |g: &str| only.is_empty() || only.iter().any(|o| o == g);
    let bin = embedded::locate_valkey(None)?;
    let topo = Topology::start(&bin, TopologySpec::default()).await?;
    let port = topo.primary().port;
    let url = topo.primary_url();
    let mut rows = vec![];
    if want("pacing") {
        rows.extend(pacing(secs, &url).await?);
    }
    if want("commands") {
        rows.extend(commands(secs, port, &url).await?);
    }
    if want("dramatiq") {
        rows.push(dramatiq(secs, &url).await?);
    }
    if want("lock") {
        rows.push(lock(secs, &url).await?);
    }
    let hello = plugin_dir
        .map(|d| d.join("hello.wasm"))
        .filter(|p| p.is_file());
    if want("plugin") {
        rows.push(plugin(secs, &url, hello.as_deref()).await?);
    }
    if want("memory") {
        rows.extend(memory(secs, &url, hello.as_deref()).await?);
    }
    if want("proxy") {
        rows.push(proxy(secs, &topo, &url).await?);
    }
    drop(topo);
    if want("headroom") {
        rows.push(headroom(secs).await);
    }
    Ok(rows)
}

/// The headroom search on ECHO's typical day against the embedded Valkey 9.x (every check and
/// `p99 < 5ms` on every operation): the sustainable multiple, the ops/s it means, what bounded it.
async fn headroom(secs: u64) -> Row {
    let t = Target::AtLeast(1.0);
    let row = Row::new("headroom", "typical day on embedded Valkey 9.x, p99 < 5ms");
    let scenario = PathBuf::from("scenarios/cutover/01-typical-day.toml");
    if !scenario.is_file() {
        return row.missing(t, "×", "run from the repository root (scenarios/cutover/)");
    }
    let o = crate::headroom::Options {
        scenario,
        slos: vec!["p99 < 5ms".into()],
        duration: Some(std::time::Duration::from_secs(secs.max(5))),
        seed: None,
        max_multiple: 64.0,
        precision: 0.05,
        max_steps: 12,
        run: crate::run::RunOptions {
            quiet: true,
            ..Default::default()
        },
    };
    match crate::headroom::search(&o, tokio_util::sync::CancellationToken::new()).await {
        Ok(r) => {
            let steps = r.steps.len();
            match (r.headroom, r.headroom_per_sec()) {
                (Some(m), Some(ops)) => row
                    .own(format!("{m:.2}x ({ops:.0} offered ops/s)"), m, t, "×")
                    .note(format!("{steps} steps; bounded by the {}", r.limit.name())),
                _ => row.missing(t, "×", format!("no step passed ({})", r.limit.name())),
            }
        }
        Err(e) => row.missing(t, "×", format!("the search failed: {e}")),
    }
}

/// Open model on an idle server: how much the generator adds to the measured latency.
async fn pacing(secs: u64, url: &str) -> Result<Vec<Row>, String> {
    let mut rows = vec![];
    for rate in [2_000u32, 20_000] {
        let toml = format!("duration = \"{secs}s\"\n[[workload]]\nid = \"g\"\ntype = \"commands\"\nclients = 8\nrate_per_sec = {rate}\n[workload.commands]\nmix = {{ get = 1 }}\nkeys = 10000\n");
        let (s, cpu) = run_cpu(&toml, url).await?;
        let op = s.op("g", "get").ok_or("no get op in the pacing run")?;
        let w = s.workloads.first().ok_or("no workload in the pacing run")?;
        let added = op.latency_us.p50 as f64 - op.service_us.p50 as f64;
        let late = format!(
            "late starts {}, dropped {}, agent CPU {:.0}% of a core",
            w.late_starts,
            w.dropped_starts,
            100.0 * cpu / s.duration_secs
        );
        rows.push(
            Row::new(
                "pacing",
                format!("pacing {rate}/s, 8 clients, idle server: corrected p50 − service p50"),
            )
            .own(
                format!(
                    "{added:.0}us (corrected p50 {}us, service p50 {}us)",
                    op.latency_us.p50, op.service_us.p50
                ),
                added,
                Target::AtMost(50.0),
                " us",
            )
            .note(late),
        );
        match &w.send_lag_us {
            Some(l) => rows.push(
                Row::new("pacing", format!("pacing {rate}/s: send lag p99"))
                    .own(
                        format!(
                            "p99 {:.0}us (p50 {:.1}us, max {:.0}us)",
                            l.p99, l.p50, l.max
                        ),
                        l.p99,
                        Target::AtMost(200.0),
                        " us",
                    )
                    .note(format!(
                        "{} starts, {} found their client busy; p99 of the others {:.0}us",
                        l.starts, l.behind, l.waited_p99
                    )),
            ),
            None => rows.push(
                Row::new("pacing", format!("pacing {rate}/s: send lag p99")).missing(
                    Target::AtMost(200.0),
                    " us",
                    "no send lag recorded",
                ),
            ),
        }
    }
    Ok(rows)
}

/// Raw throughput against redis-benchmark, and operations per generator CPU-second.
async fn commands(secs: u64, port: u16, url: &str) -> Result<Vec<Row>, String> {
    let mut rows = vec![];
    for p in [1u32, 16] {
        // Agent and peer take turns, twice each, and each keeps its better run: the server and
        // the machine warm up and wander, and neither side should get only the cold or the
        // noisy turn.
        let (mut agent, mut agent_per_cpu) = (0f64, 0f64);
        let mut peer_runs: Vec<Result<(f64, f64), String>> = vec![];
        for _ in 0..2 {
            let (s, cpu) = run_cpu(&commands_toml(50, p, secs), url).await?;
            let ops = total_ops(&s, "c", &[]) as f64;
            agent = agent.max(ops / s.duration_secs);
            agent_per_cpu = agent_per_cpu.max(ops / cpu.max(1e-6));
            let n = ((ops / 2.0) as u64).max(10_000);
            peer_runs.push(
                redis_benchmark(port, 50, p, n)
                    .map(|(rate, cpu)| (rate, (2 * n) as f64 / cpu.max(1e-6))),
            );
        }
        let name = format!("commands GET/SET, 50 clients, P={p}");
        let t = Target::AtLeast(1.05);
        let peer_best = peer_runs.into_iter().reduce(|a, b| match (a, b) {
            (Ok(x), Ok(y)) => Ok((x.0.max(y.0), x.1.max(y.1))),
            (Err(e), _) | (_, Err(e)) => Err(e),
        });
        match peer_best.expect("two runs") {
            Ok((peer, peer_per_cpu)) => {
                rows.push(Row::new("commands", name.clone()).ratio(
                    format!("{} ops/s", fmt_rate(agent)),
                    format!("{} ops/s (redis-benchmark)", fmt_rate(peer)),
                    agent / peer,
                    t,
                ));
                rows.push(
                    Row::new("commands", format!("{name}: ops per generator CPU-second"))
                        .ratio(
                            format!("{} ops/cpu-s", fmt_rate(agent_per_cpu)),
                            format!("{} ops/cpu-s (redis-benchmark)", fmt_rate(peer_per_cpu)),
                            agent_per_cpu / peer_per_cpu,
                            Target::AtLeast(1.0),
                        )
                        .note(format!(
                            "CPU per op: agent {:.2}us, redis-benchmark {:.2}us (every op recorded in HdrHistograms with its intended start)",
                            1e6 / agent_per_cpu,
                            1e6 / peer_per_cpu
                        )),
                );
            }
            Err(e) => rows.push(
                Row::new("commands", name)
                    .missing(t, "×", e)
                    .note(format!("agent {} ops/s", fmt_rate(agent))),
            ),
        }
    }
    Ok(rows)
}

/// Dramatiq enqueue: agent producers vs Python `actor.send`, per CPU-second of each process.
async fn dramatiq(secs: u64, url: &str) -> Result<Row, String> {
    let t = Target::AtLeast(20.0);
    let name = "Dramatiq enqueue, per CPU-second";
    let (s, agent_cpu) = run_cpu(&format!("duration = \"{secs}s\"\n[[workload]]\nid = \"q\"\ntype = \"dramatiq\"\n[workload.dramatiq]\nqueue = \"bench\"\nproducers = 8\nconsumers = 0\npayload_bytes = 300\n"), url).await?;
    let enq = total_ops(&s, "q", &["enqueue"]) as f64;
    let agent_rate = enq / s.duration_secs;
    let per_cpu = enq / agent_cpu.max(1e-6);
    let py_send = r#"
import sys, time, resource, dramatiq
from dramatiq.brokers.redis import RedisBroker
b = RedisBroker(url=sys.argv[1]); dramatiq.set_broker(b)
@dramatiq.actor(queue_name="benchpy")
def process_chunk(x): pass
n = int(sys.argv[2]); payload = "x" * 300
t0 = time.time(); r0 = resource.getrusage(resource.RUSAGE_SELF)
for i in range(n): process_chunk.send(payload)
r1 = resource.getrusage(resource.RUSAGE_SELF); t1 = time.time()
print(n / (t1 - t0), n / ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)))
"#;
    let Some(py) = python() else {
        return Ok(Row::new("dramatiq", name).missing(
            t,
            "×",
            "no Python venv (cargo xtask setup)",
        ));
    };
    let o = match Command::new(&py)
        .args(["-c", py_send, url, "5000"])
        .output()
    {
        Ok(o) => o,
        Err(e) => return Ok(Row::new("dramatiq", name).missing(t, "×", e.to_string())),
    };
    if !o.status.success() {
        let why = String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        return Ok(Row::new("dramatiq", name).missing(t, "×", why));
    }
    let v: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let (py_wall, py_cpu) = (
        v.first().copied().unwrap_or(0.0),
        v.get(1).copied().unwrap_or(0.0),
    );
    Ok(Row::new("dramatiq", name)
        .ratio(
            format!("{per_cpu:.0}/cpu-s ({agent_rate:.0}/s wall, 8 producers)"),
            format!("{py_cpu:.0}/cpu-s ({py_wall:.0}/s wall, actor.send loop)"),
            per_cpu / py_cpu.max(1e-6),
            t,
        )
        .note(format!(
            "wall ratio {:.1}×; CPU per enqueue: agent {:.1}us, Python {:.1}us",
            agent_rate / py_wall.max(1e-6),
            1e6 / per_cpu.max(1e-6),
            1e6 / py_cpu.max(1e-6)
        )))
}

/// Lock cycles: agent vs redis-py `Lock` in one thread.
async fn lock(secs: u64, url: &str) -> Result<Row, String> {
    let lock_toml = |clients: u32| {
        format!("duration = \"{secs}s\"\n[[workload]]\nid = \"l\"\ntype = \"lock\"\n[workload.lock]\nstyle = \"redis-py\"\nnames = {clients}\nclients = {clients}\nttl = \"10s\"\nhold = \"0s\"\nretry_interval = \"1ms\"\n")
    };
    let s1 = run_toml(&lock_toml(1), url).await?;
    let s32 = run_toml(&lock_toml(32), url).await?;
    let one = s1.counter("l", "acquired").unwrap_or(0.0) / s1.duration_secs;
    let many = s32.counter("l", "acquired").unwrap_or(0.0) / s32.duration_secs;
    let py_lock = r#"
import sys, time, redis
r = redis.Redis.from_url(sys.argv[1]); n = 0; end = time.time() + float(sys.argv[2])
while time.time() < end:
    l = r.lock("vc:bench:pylock", timeout=10, sleep=0.001)
    l.acquire(); l.release(); n += 1
print(n / float(sys.argv[2]))
"#;
    let py = python()
        .and_then(|py| {
            Command::new(py)
                .args(["-c", py_lock, url, "3"])
                .output()
                .ok()
        })
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        });
    let t = Target::AtLeast(10.0);
    let name = "lock acquire+release cycles";
    let agent = format!("{many:.0}/s with 32 clients ({one:.0}/s with 1)");
    Ok(match py {
        Some(p) => Row::new("lock", name)
            .ratio(
                agent,
                format!("{p:.0}/s (redis-py Lock, 1 thread)"),
                many / p.max(1e-6),
                t,
            )
            .note(format!("1 client vs 1 thread: {:.1}×", one / p.max(1e-6))),
        None => Row::new("lock", name).missing(t, "×", "redis-py not available"),
    })
}

/// The hello plugin (SET+GET per iteration) against the same mix natively.
async fn plugin(secs: u64, url: &str, hello: Option<&Path>) -> Result<Row, String> {
    let t = Target::AtLeast(0.8);
    let name = "plugin GET/SET vs native, 16 VUs/clients";
    let Some(h) = hello else {
        return Ok(Row::new("plugin", name).missing(
            t,
            "×",
            "hello.wasm not built (cargo xtask plugins)",
        ));
    };
    let native = run_toml(&commands_toml(16, 1, secs), url).await?;
    let nat = total_ops(&native, "c", &[]) as f64 / native.duration_secs;
    let plug = run_toml(&plugin_toml(h, 16, secs), url).await?;
    let pl = total_ops(&plug, "p", &["set", "get"]) as f64 / plug.duration_secs;
    let cost = crate::plugin::check(h, 200)
        .await
        .map_err(|e| e.to_string())?
        .2;
    Ok(Row::new("plugin", name)
        .ratio(
            format!("{pl:.0} ops/s (hello.wasm)"),
            format!("{nat:.0} ops/s (commands)"),
            pl / nat.max(1e-6),
            t,
        )
        .note(format!(
            "per VU: {:.1} us to instantiate, {:.0} KiB (plugin check, no connection)",
            cost.instantiate_us, cost.rss_per_vu_kib
        )))
}

fn plugin_toml(h: &Path, vus: u32, secs: u64) -> String {
    format!("duration = \"{secs}s\"\n[[workload]]\nid = \"p\"\ntype = \"plugin\"\n[workload.plugin]\npath = {:?}\nvus = {vus}\n", h.display().to_string())
}

/// Peak resident memory (KiB) of the agent running `toml` in a child process.
fn child_peak_rss(toml: &str, url: &str, tag: &str) -> Result<(u64, RunSummary), String> {
    let dir = std::env::temp_dir().join(format!("vc-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("mem.toml");
    std::fs::write(&file, toml).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("run")
        .arg(&file)
        .args(["--target", url, "--quiet", "--out"])
        .arg(dir.join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Not the child's `ru_maxrss`: Linux carries the parent's resident size at fork over into it
    // (this bench process is hundreds of MiB by now), so the child's own high-water mark is read
    // from /proc while it runs (VmHWM only grows; the last reading is its peak).
    let mut child = child;
    let mut peak_kib = 0u64;
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(st) => break st,
            None if std::time::Instant::now() > give_up => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the memory run ({tag}) did not finish in 600 s"));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    let summary: RunSummary = std::fs::read(dir.join("out").join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("the memory run ({tag}) wrote no summary (exit status {status})"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if peak_kib == 0 {
        return Err(format!(
            "could not read the memory run's VmHWM ({tag}): no /proc?"
        ));
    }
    Ok((peak_kib, summary))
}

/// A live process's peak resident set (VmHWM in /proc/<pid>/status), KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Memory per native client and per plugin VU: peak RSS of a child agent with many clients,
/// less the same with few, per client.
async fn memory(secs: u64, url: &str, hello: Option<&Path>) -> Result<Vec<Row>, String> {
    let mut rows = vec![];
    let d = secs.min(5);
    let raise = async {
        let route = crate::valkey::Route::direct(
            url.trim_start_matches("redis://").to_string(),
            Default::default(),
        );
        let mut c = crate::valkey::Client::new(std::sync::Arc::new(route));
        c.request(
            &crate::valkey::Cmd::new("CONFIG")
                .arg("SET")
                .arg("maxclients")
                .arg("19000"),
        )
        .await
    };
    let _ = raise.await;
    let (n_native, few) = (2_000u32, 10u32);
    let base = tokio::task::spawn_blocking({
        let (t, u) = (commands_toml(few, 1, d), url.to_string());
        move || child_peak_rss(&t, &u, "native-few")
    });
    let (base_kib, _) = base.await.map_err(|e| e.to_string())??;
    let many = tokio::task::spawn_blocking({
        let (t, u) = (commands_toml(n_native, 1, d), url.to_string());
        move || child_peak_rss(&t, &u, "native-many")
    });
    let (many_kib, s) = many.await.map_err(|e| e.to_string())??;
    let per = many_kib.saturating_sub(base_kib) as f64 / (n_native - few) as f64;
    rows.push(
        Row::new(
            "memory",
            format!("memory per native client ({n_native} commands clients)"),
        )
        .own(
            format!("{per:.1} KiB per client (peak RSS {} MiB)", many_kib / 1024),
            per,
            Target::AtMost(50.0),
            " KiB",
        )
        .note(format!(
            "{few} clients: {} MiB; {} ops/s",
            base_kib / 1024,
            fmt_rate(total_ops(&s, "c", &[]) as f64 / s.duration_secs)
        )),
    );
    let t = Target::AtMost(500.0);
    let name = "10,000 plugin VUs (hello.wasm): peak RSS";
    let Some(h) = hello else {
        rows.push(Row::new("memory", name).missing(
            t,
            " MiB",
            "hello.wasm not built (cargo xtask plugins)",
        ));
        return Ok(rows);
    };
    let base = tokio::task::spawn_blocking({
        let (t, u) = (plugin_toml(h, few, d), url.to_string());
        move || child_peak_rss(&t, &u, "vu-few")
    });
    let (base_kib, _) = base.await.map_err(|e| e.to_string())??;
    let many = tokio::task::spawn_blocking({
        let (t, u) = (plugin_toml(h, 10_000, d), url.to_string());
        move || child_peak_rss(&t, &u, "vu-many")
    });
    let (many_kib, s) = many.await.map_err(|e| e.to_string())??;
    let mib = many_kib as f64 / 1024.0;
    let per = many_kib.saturating_sub(base_kib) as f64 / (10_000 - few) as f64;
    let iters = s.counter("p", "iterations").unwrap_or(0.0);
    rows.push(
        Row::new("memory", name)
            .own(
                format!("{mib:.0} MiB ({per:.1} KiB per VU)"),
                mib,
                t,
                " MiB",
            )
            .note(format!(
                "{few} VUs: {} MiB; {:.0} iterations/s with 10,000 VUs",
                base_kib / 1024,
                iters / s.duration_secs
            )),
    );
    Ok(rows)
}

/// Proxy overhead: one client, GET, direct vs through the fault proxy with no toxic.
async fn proxy(secs: u64, topo: &Topology, url: &str) -> Result<Row, String> {
    let proxy = crate::fault::proxy::Proxy::start(topo.primary().addr())
        .await
        .map_err(|e| e.to_string())?;
    let one_get = format!("duration = \"{secs}s\"\n[[workload]]\nid = \"g\"\ntype = \"commands\"\nclients = 1\n[workload.commands]\nmix = {{ get = 1 }}\n");
    // Side by side, not one after the other: a lone closed loop on a VM spends most of its
    // latency waking an idle CPU, and whichever run has company wakes faster (run alone, the
    // proxied loop, with its extra threads busy, came out 200 µs *faster* than direct).
    let via_url = format!("redis://{}", proxy.listen);
    let (direct, via) = tokio::join!(run_toml(&one_get, url), run_toml(&one_get, &via_url));
    let (direct, via) = (direct?, via?);
    let (d, v) = (
        &direct.op("g", "get").ok_or("no get op")?.service_us,
        &via.op("g", "get").ok_or("no get op")?.service_us,
    );
    let added = v.p50 as f64 - d.p50 as f64;
    let mut r = Row::new("proxy", "fault proxy overhead (0 ms toxic), added at p50").own(
        format!("p50 {}us p99 {}us via proxy", v.p50, v.p99),
        added,
        Target::AtMost(50.0),
        " us",
    );
    r.peer = format!("p50 {}us p99 {}us direct", d.p50, d.p99);
    Ok(r.note(format!(
        "added: p50 {}us, p99 {}us",
        v.p50 as i64 - d.p50 as i64,
        v.p99 as i64 - d.p99 as i64
    )))
}

/// The table `cargo xtask bench` prints.
pub fn render(rows: &[Row]) -> String {
    let mut o = String::from(
        "benchmark (same machine, same fresh Valkey, one run; on a shared machine repeat it and read ranges)\n",
    );
    for r in rows {
        let verdict = match r.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not measured",
        };
        o.push_str(&format!("\n{}\n  agent  {}\n", r.name, r.agent));
        if r.peer != "-" {
            o.push_str(&format!("  peer   {}\n", r.peer));
        }
        let value = match (r.ratio, r.value) {
            (Some(x), _) => format!("ratio {x:.2}×"),
            (None, Some(v)) => format!("value {v:.1}"),
            _ => "-".into(),
        };
        o.push_str(&format!("  {value}   target {}   {verdict}\n", r.target));
        if !r.note.is_empty() {
            o.push_str(&format!("  note   {}\n", r.note));
        }
    }
    let met = rows.iter().filter(|r| r.met == Some(true)).count();
    o.push_str(&format!("\n{met} of {} targets met\n", rows.len()));
    o
}
