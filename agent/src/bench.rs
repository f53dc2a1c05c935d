//! `valkey-chaos bench`: throughput and overhead measured against peers in the same run, on the
//! same fresh Valkey: redis-benchmark (commands), Python Dramatiq `actor.send` (enqueue),
//! redis-py `Lock` (lock cycles), the native workload (plugins), a direct connection (proxy).
//! Every scenario is compiled from TOML text like a user's; nothing here is a timed assertion.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::summary::RunSummary;
use crate::valkey::embedded::{self, Topology, TopologySpec};

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub agent: String,
    pub peer: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub note: String,
}

fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
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

fn redis_benchmark(port: u16, clients: u32, pipeline: u32, n: u64) -> Result<f64, String> {
    let bin = embedded::which("redis-benchmark")
        .ok_or("redis-benchmark not found (`cargo xtask setup` installs Debian's redis-tools)")?;
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
    Ok((seen as f64 * n as f64) / secs)
}

fn commands_toml(clients: u32, pipeline: u32, secs: u64) -> String {
    format!("duration = \"{secs}s\"\n[[workload]]\nid = \"c\"\ntype = \"commands\"\nclients = {clients}\n[workload.commands]\nmix = {{ get = 1, set = 1 }}\nkeys = 10000\nvalue_bytes = 100\npipeline = {pipeline}\n")
}

/// Run every comparison; rows that need a missing peer say so instead of failing the bench.
pub async fn run(secs: u64, plugin_dir: Option<&Path>) -> Result<Vec<Row>, String> {
    let bin = embedded::locate_valkey(None)?;
    let topo = Topology::start(&bin, TopologySpec::default()).await?;
    let port = topo.primary().port;
    let url = topo.primary_url();
    let mut rows = vec![];

    for p in [1u32, 16] {
        let s = run_toml(&commands_toml(50, p, secs), &url).await?;
        let agent = total_ops(&s, "c", &[]) as f64 / s.duration_secs;
        let n = ((agent * secs as f64) as u64 / 2).max(10_000);
        let row = match redis_benchmark(port, 50, p, n) {
            Ok(peer) => Row {
                name: format!("commands GET/SET, 50 clients, P={p}"),
                agent: format!("{agent:.0} ops/s"),
                peer: format!("{peer:.0} ops/s (redis-benchmark)"),
                ratio: Some(agent / peer),
                target: "≥ 1.0×".into(),
                note: String::new(),
            },
            Err(e) => Row {
                name: format!("commands P={p}"),
                agent: format!("{agent:.0} ops/s"),
                peer: "-".into(),
                ratio: None,
                target: "≥ 1.0×".into(),
                note: e,
            },
        };
        rows.push(row);
    }

    // Dramatiq enqueue: agent producers vs Python actor.send, per CPU-second of each process.
    let c0 = cpu_secs();
    let s = run_toml(&format!("duration = \"{secs}s\"\n[[workload]]\nid = \"q\"\ntype = \"dramatiq\"\n[workload.dramatiq]\nqueue = \"bench\"\nproducers = 8\nconsumers = 0\npayload_bytes = 300\n"), &url).await?;
    let agent_cpu = cpu_secs() - c0;
    let enq = total_ops(&s, "q", &["enqueue"]) as f64;
    let agent_rate = enq / s.duration_secs;
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
    rows.push(match python() {
        Some(py) => match Command::new(&py)
            .args(["-c", py_send, &url, "5000"])
            .output()
        {
            Ok(o) if o.status.success() => {
                let t = String::from_utf8_lossy(&o.stdout);
                let v: Vec<f64> = t
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let (py_wall, py_cpu) = (
                    v.first().copied().unwrap_or(0.0),
                    v.get(1).copied().unwrap_or(0.0),
                );
                let per_cpu = enq / agent_cpu.max(1e-6);
                Row {
                    name: "Dramatiq enqueue (per CPU-second)".into(),
                    agent: format!("{per_cpu:.0}/cpu-s ({agent_rate:.0}/s wall, 8 producers)"),
                    peer: format!("{py_cpu:.0}/cpu-s ({py_wall:.0}/s wall, actor.send loop)"),
                    ratio: Some(per_cpu / py_cpu.max(1e-6)),
                    target: "≥ 20× per core".into(),
                    note: format!("wall ratio {:.1}×", agent_rate / py_wall.max(1e-6)),
                }
            }
            Ok(o) => Row {
                name: "Dramatiq enqueue".into(),
                agent: format!("{agent_rate:.0}/s"),
                peer: "-".into(),
                ratio: None,
                target: "≥ 20×".into(),
                note: String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_string(),
            },
            Err(e) => Row {
                name: "Dramatiq enqueue".into(),
                agent: format!("{agent_rate:.0}/s"),
                peer: "-".into(),
                ratio: None,
                target: "≥ 20×".into(),
                note: e.to_string(),
            },
        },
        None => Row {
            name: "Dramatiq enqueue".into(),
            agent: format!("{agent_rate:.0}/s"),
            peer: "-".into(),
            ratio: None,
            target: "≥ 20×".into(),
            note: "no Python venv (cargo xtask setup)".into(),
        },
    });

    // Lock cycles: agent vs redis-py Lock in one thread.
    let lock_toml = |clients: u32| {
        format!("duration = \"{secs}s\"\n[[workload]]\nid = \"l\"\ntype = \"lock\"\n[workload.lock]\nstyle = \"redis-py\"\nnames = {clients}\nclients = {clients}\nttl = \"10s\"\nhold = \"0s\"\nretry_interval = \"1ms\"\n")
    };
    let s1 = run_toml(&lock_toml(1), &url).await?;
    let s32 = run_toml(&lock_toml(32), &url).await?;
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
                .args(["-c", py_lock, &url, "3"])
                .output()
                .ok()
        })
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        });
    rows.push(Row {
        name: "lock acquire+release cycles".into(),
        agent: format!("{many:.0}/s with 32 clients ({one:.0}/s with 1)"),
        peer: py
            .map(|p| format!("{p:.0}/s (redis-py Lock, 1 thread)"))
            .unwrap_or_else(|| "-".into()),
        ratio: py.map(|p| many / p.max(1e-6)),
        target: "≥ 10×".into(),
        note: py
            .map(|p| format!("1 client vs 1 thread: {:.1}×", one / p.max(1e-6)))
            .unwrap_or_default(),
    });

    // Plugin vs native: the hello plugin (SET+GET per iteration) and the same mix natively.
    let hello = plugin_dir
        .map(|d| d.join("hello.wasm"))
        .filter(|p| p.is_file());
    match hello {
        Some(h) => {
            let native = run_toml(&commands_toml(16, 1, secs), &url).await?;
            let nat = total_ops(&native, "c", &[]) as f64 / native.duration_secs;
            let plug = run_toml(&format!("duration = \"{secs}s\"\n[[workload]]\nid = \"p\"\ntype = \"plugin\"\n[workload.plugin]\npath = {:?}\nvus = 16\n", h.display().to_string()), &url).await?;
            let pl = total_ops(&plug, "p", &["set", "get"]) as f64 / plug.duration_secs;
            let cost = crate::plugin::check(&h, 200)
                .await
                .map_err(|e| e.to_string())?
                .2;
            rows.push(Row {
                name: "plugin GET/SET vs native, 16 VUs/clients".into(),
                agent: format!("{pl:.0} ops/s (hello.wasm)"),
                peer: format!("{nat:.0} ops/s (commands)"),
                ratio: Some(pl / nat.max(1e-6)),
                target: "≥ 0.8×".into(),
                note: format!(
                    "per VU: {:.1} us to instantiate, {:.0} KiB",
                    cost.instantiate_us, cost.rss_per_vu_kib
                ),
            });
        }
        None => rows.push(Row {
            name: "plugin vs native".into(),
            agent: "-".into(),
            peer: "-".into(),
            ratio: None,
            target: "≥ 0.8×".into(),
            note: "hello.wasm not built (cargo xtask plugins)".into(),
        }),
    }

    // Proxy overhead: one client, GET, direct vs through the fault proxy with no toxic.
    let proxy = crate::fault::proxy::Proxy::start(topo.primary().addr())
        .await
        .map_err(|e| e.to_string())?;
    let one_get = format!("duration = \"{secs}s\"\n[[workload]]\nid = \"g\"\ntype = \"commands\"\nclients = 1\n[workload.commands]\nmix = {{ get = 1 }}\n");
    let direct = run_toml(&one_get, &url).await?;
    let via = run_toml(&one_get, &format!("redis://{}", proxy.listen)).await?;
    let (d, v) = (
        &direct.op("g", "get").expect("get op").service_us,
        &via.op("g", "get").expect("get op").service_us,
    );
    rows.push(Row {
        name: "fault proxy overhead (0 ms toxic)".into(),
        agent: format!("p50 {}us p99 {}us via proxy", v.p50, v.p99),
        peer: format!("p50 {}us p99 {}us direct", d.p50, d.p99),
        ratio: None,
        target: "≤ 50 us added at p50".into(),
        note: format!(
            "added: p50 {}us, p99 {}us",
            v.p50 as i64 - d.p50 as i64,
            v.p99 as i64 - d.p99 as i64
        ),
    });
    drop(topo);
    Ok(rows)
}

/// The table `cargo xtask bench` prints.
pub fn render(rows: &[Row]) -> String {
    let mut o = String::from("benchmark (same machine, same fresh Valkey, one run)\n");
    for r in rows {
        o.push_str(&format!(
            "\n{}\n  agent  {}\n  peer   {}\n  ratio  {}   target {}\n",
            r.name,
            r.agent,
            r.peer,
            r.ratio
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(|| "-".into()),
            r.target
        ));
        if !r.note.is_empty() {
            o.push_str(&format!("  note   {}\n", r.note));
        }
    }
    o
}
