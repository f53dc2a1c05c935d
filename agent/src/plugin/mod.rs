//! The WASM plugin host: one WIT contract (`plugins/wit`), wasmtime components, one store and
//! instance per virtual user from a shared pre-linked `InstancePre`, the pooling allocator,
//! WASI with nothing granted, epoch-based CPU budgets that yield to tokio, memory caps, and an
//! on-disk cache of compiled components.
//!
//! The contract's generated types are in `bindings.rs`, shared by this loader and by `host.rs`
//! (what a plugin can call).

pub(crate) mod bindings;
mod host;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use host::{VuLimits, VuState};

/// The contract version this agent implements.
pub const CONTRACT: &str = "valkey-chaos:plugin@0.1.0";
/// Epoch tick: the granularity of CPU budgets.
pub const TICK: Duration = Duration::from_millis(1);

/// Why a plugin cannot be used; always names the plugin.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {cause}")]
pub struct PluginError {
    pub plugin: String,
    pub cause: String,
}

fn err(plugin: &str, cause: impl Into<String>) -> PluginError {
    PluginError {
        plugin: plugin.to_string(),
        cause: cause.into(),
    }
}

/// What `describe()` said.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub params: Vec<(String, String)>,
}

/// A compiled, type-checked plugin ready to instantiate VUs.
pub struct Plugin {
    pub name: String,
    pub path: PathBuf,
    pub engine: Engine,
    pub pre: bindings::ScenarioPre<VuState>,
    pub compiled_from_cache: bool,
    pub compile_time: Duration,
}

/// The engine: pooling sized for `max_vus`, epoch interruption, memory ceiling per VU.
pub fn engine(max_vus: u32, memory_cap: u64) -> Result<Engine, String> {
    let mut cfg = Config::new();
    cfg.epoch_interruption(true);
    let n = max_vus.max(1) + 2; // + a probe instance
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(memory_cap as usize);
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&cfg).map_err(|e| format!("cannot create the wasm engine: {e}"))?;
    start_ticker(&engine);
    Ok(engine)
}

/// One thread per engine advances the epoch every [`TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        })
        .expect("cannot start the epoch thread");
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VALKEY_CHAOS_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("valkey-chaos").join("plugins")
}

/// Read, compile (or load from the cache), check against the contract, and pre-link.
pub fn load(path: &Path, engine: &Engine) -> Result<Plugin, PluginError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let bytes = std::fs::read(path)
        .map_err(|e| err(&name, format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(err(
            &name,
            format!("{} is not a WebAssembly file", path.display()),
        ));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(err(&name, format!("{} is a core wasm module, not a component: build it with `cargo build --target wasm32-wasip2` (see plugins/README.md)", path.display())));
    }
    let t0 = Instant::now();
    let (component, cached) = compile_cached(&name, &bytes, engine)?;
    check_contract(&name, &component, engine)?;
    let mut linker: Linker<VuState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| err(&name, format!("cannot link WASI: {e}")))?;
    bindings::Scenario::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .map_err(|e| err(&name, format!("cannot link the host API: {e}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| err(&name, format!("does not fit {CONTRACT}: {e:#}")))?;
    let pre = bindings::ScenarioPre::new(pre).map_err(|e| {
        err(
            &name,
            format!("missing or wrong exports for {CONTRACT}: {e:#}"),
        )
    })?;
    Ok(Plugin {
        name,
        path: path.to_path_buf(),
        engine: engine.clone(),
        pre,
        compiled_from_cache: cached,
        compile_time: t0.elapsed(),
    })
}

fn compile_cached(
    name: &str,
    bytes: &[u8],
    engine: &Engine,
) -> Result<(Component, bool), PluginError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let key = format!(
        "{}-{:016x}.cwasm",
        sha1_smol::Sha1::from(bytes).digest(),
        h.finish()
    );
    let file = cache_dir().join(key);
    if file.is_file() {
        // SAFETY: only files this agent wrote (keyed by content and engine hash) are loaded.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &file) } {
            return Ok((c, true));
        }
    }
    let compiled = engine
        .precompile_component(bytes)
        .map_err(|e| err(name, format!("cannot compile: {e:#}")))?;
    if std::fs::create_dir_all(file.parent().expect("cache file has a parent")).is_ok() {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &compiled).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
    // SAFETY: bytes we just produced with this engine.
    let c = unsafe { Component::deserialize(engine, &compiled) }
        .map_err(|e| err(name, format!("cannot load compiled code: {e:#}")))?;
    Ok((c, false))
}

/// Versions of our package the component imports or exports: a clear message for a mismatch.
fn check_contract(name: &str, c: &Component, engine: &Engine) -> Result<(), PluginError> {
    let ty = c.component_type();
    let mut ours = vec![];
    for (n, _) in ty.imports(engine) {
        ours.push(n.to_string());
    }
    let mut exports = vec![];
    for (n, _) in ty.exports(engine) {
        exports.push(n.to_string());
    }
    let version_of = |n: &str| {
        n.strip_prefix("valkey-chaos:plugin/")
            .and_then(|r| r.split_once('@'))
            .map(|(_, v)| v.to_string())
    };
    for n in ours.iter().chain(exports.iter()) {
        if let Some(v) = version_of(n) {
            if !v.starts_with("0.1.") {
                return Err(err(name, format!("plugin built for valkey-chaos:plugin@{v}, agent speaks @0.1.0 (rebuild it against plugins/wit of this agent)")));
            }
        }
    }
    for n in &ours {
        if n.starts_with("wasi:sockets") || n.starts_with("wasi:filesystem") {
            // Linked but nothing is granted: note it, the calls will fail inside the sandbox.
            tracing::info!(plugin = name, import = %n, "plugin imports a WASI interface that grants nothing here");
        }
    }
    if !exports
        .iter()
        .any(|e| e.starts_with("valkey-chaos:plugin/vu@0.1."))
    {
        return Err(err(name, format!("missing export valkey-chaos:plugin/vu@0.1.x (exports: {}); implement the Scenario trait and use export_scenario!", if exports.is_empty() { "none".into() } else { exports.join(", ") })));
    }
    Ok(())
}

/// Measured per-VU cost of a plugin: instantiate time and resident memory.
#[derive(Debug, Clone)]
pub struct Cost {
    pub instantiate_us: f64,
    pub rss_per_vu_kib: f64,
}

/// `plugin check`: describe() plus the measured cost of `n` VUs (no Valkey: commands are rejected).
pub async fn check(path: &Path, n: u32) -> Result<(Plugin, Info, Cost), PluginError> {
    let engine = engine(n + 1, 64 << 20).map_err(|e| err(&path.display().to_string(), e))?;
    let p = load(path, &engine)?;
    let info = describe(&p).await?;
    let rss0 = rss_kib();
    let mut stores = vec![];
    let t0 = Instant::now();
    for i in 0..n {
        let mut store = new_store(&p, VuState::offline(&p.name, i));
        let inst = p
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| err(&p.name, format!("cannot instantiate: {e:#}")))?;
        stores.push((store, inst));
    }
    let dt = t0.elapsed();
    let rss1 = rss_kib();
    let cost = Cost {
        instantiate_us: dt.as_secs_f64() * 1e6 / n.max(1) as f64,
        rss_per_vu_kib: rss1.saturating_sub(rss0) as f64 / n.max(1) as f64,
    };
    Ok((p, info, cost))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

/// A store for one VU with the memory cap and the CPU-budget policy installed.
pub fn new_store(p: &Plugin, state: VuState) -> Store<VuState> {
    let mut store = Store::new(&p.engine, state);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_callback(|mut cx| {
        let vu = cx.data_mut();
        if vu.ticks_left == 0 {
            vu.budget_exceeded = true;
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        vu.ticks_left -= 1;
        // A tick that passed while the VU awaited the host (a Valkey reply) found the deadline
        // behind on its return to wasm: the plugin did not hold the thread, so no need to yield
        // (a yield costs a reschedule and a fiber switch per command).
        if vu.wasm_since.elapsed() < TICK {
            return Ok(wasmtime::UpdateDeadline::Continue(1));
        }
        Ok(wasmtime::UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store.set_epoch_deadline(1);
    store
}

/// Before calling an export: give it `ticks` of budget, starting now.
pub fn arm(store: &mut Store<VuState>, ticks: u64) {
    let vu = store.data_mut();
    vu.ticks_left = ticks;
    vu.wasm_since = Instant::now();
    store.set_epoch_deadline(1);
}

/// Call describe() on a probe instance.
pub async fn describe(p: &Plugin) -> Result<Info, PluginError> {
    let mut store = new_store(p, VuState::offline(&p.name, u32::MAX));
    arm(&mut store, 5000);
    let inst = p
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| err(&p.name, format!("cannot instantiate: {e:#}")))?;
    let d = inst
        .valkey_chaos_plugin_vu()
        .call_describe(&mut store)
        .await
        .map_err(|e| err(&p.name, format!("describe() trapped: {e:#}")))?;
    Ok(Info {
        name: d.name,
        version: d.version,
        params: d.params,
    })
}

pub type SharedPlugin = Arc<Plugin>;
