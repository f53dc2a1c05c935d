//! OpenTelemetry over OTLP (gRPC or HTTP/protobuf).
//!
//! Traces: one root span per run (`run <scenario>`); after the run, a child span per phase
//! (`phase before`, `phase during:<fault>`, `phase after`, the same windows the per-phase
//! thresholds use) and per fault (`fault <name>`, inject → heal); during the run, sampled
//! operation spans named after the operation (`GET`) with the OpenTelemetry database attributes.
//! Observed events become span events on the root.
//!
//! Metrics (fed at interval cuts from the collector, never per sample on the hot path):
//! `valkey_chaos_operation_duration_seconds` (base-2 exponential histogram of the latency from
//! the intended start), `valkey_chaos_operations_total{workload,op,outcome}`,
//! `valkey_chaos_errors_total{workload,op,kind}`, and each workload counter by its declared kind:
//! `valkey_chaos_safety_<name>_total{workload}` for safety counters, `valkey_chaos_<name>_total`
//! for other totals, `valkey_chaos_<name>{workload}` gauges for levels (max, min, ratios).
//!
//! The SDK's batch span processor and periodic reader run on threads of their own; the OTLP
//! transports need a Tokio reactor, so every export is polled inside the run's runtime and
//! bounded by [`EXPORT_TIMEOUT`]. A collector that is down costs one warning line on stderr.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Collector, OpSample, OpSampler, WorkloadMetrics};
use crate::plan::counter::CounterKind;
use crate::plan::fault::ParamValue;
use crate::plan::Plan;
use crate::summary::{FaultRecord, RunSummary};
use crate::valkey::ErrorKind;

/// Fraction of operations that get a span when `--trace-sample` is not given.
pub const DEFAULT_TRACE_SAMPLE: f64 = 0.01;
/// Upper bound of one export call (connect, send, retries).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound of the final flush and shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often metrics are pushed and span batches sent.
const PUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Sampled operations waiting to become spans; beyond this they are dropped and counted.
const OP_QUEUE: usize = 4096;
const DURATION: &str = "valkey_chaos_operation_duration_seconds";

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// `grpc`, `http` or `http/protobuf` (the values of `OTEL_EXPORTER_OTLP_PROTOCOL` we support).
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Protocol::Grpc),
            "http" | "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Err("OTLP http/json is not supported: use grpc or http/protobuf".into()),
            other => Err(format!(
                "unknown OTLP protocol {other:?}: use grpc or http/protobuf"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL`, when set: `http/json` falls back to `http/protobuf` (same
/// port and paths) and an unknown value to gRPC, each with a warning.
pub fn protocol_from_env() -> Option<Protocol> {
    let v = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").ok()?;
    if v.trim().is_empty() {
        return None;
    }
    match Protocol::parse(&v) {
        Ok(p) => Some(p),
        Err(_) if v.trim().eq_ignore_ascii_case("http/json") => {
            eprintln!("warning: OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported; using http/protobuf");
            Some(Protocol::HttpProtobuf)
        }
        Err(e) => {
            eprintln!("warning: OTEL_EXPORTER_OTLP_PROTOCOL: {e}; using grpc");
            Some(Protocol::Grpc)
        }
    }
}

/// Parse a sampling fraction in [0, 1].
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not within 0..=1"))
    }
}

/// Maps run instants to wall-clock times.
#[derive(Clone, Copy)]
struct Clock {
    at: Instant,
    wall: SystemTime,
    start: Instant,
}

impl Clock {
    fn wall(&self, i: Instant) -> SystemTime {
        if i >= self.at {
            self.wall + (i - self.at)
        } else {
            self.wall - (self.at - i)
        }
    }
    /// `secs` after the run start.
    fn rel(&self, secs: f64) -> SystemTime {
        self.wall(self.start + Duration::from_secs_f64(secs.max(0.0)))
    }
}

/// Export failures: the first one prints a warning line, the rest are only counted.
#[derive(Debug)]
struct Health {
    endpoint: String,
    warned: AtomicBool,
    failures: AtomicU64,
}

impl Health {
    fn failed(&self, what: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "warning: OTLP export to {} failed ({what}); the run goes on, telemetry may be incomplete",
                self.endpoint
            );
        }
    }
}

/// Polls a future inside the run's Tokio runtime, whichever thread polls it.
struct InRuntime<F> {
    rt: tokio::runtime::Handle,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.rt.enter();
        this.fut.as_mut().poll(cx)
    }
}

async fn in_runtime<F: Future<Output = OTelSdkResult>>(
    rt: &tokio::runtime::Handle,
    health: &Health,
    fut: F,
) -> OTelSdkResult {
    let bounded = async move {
        match tokio::time::timeout(EXPORT_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(OTelSdkError::Timeout(EXPORT_TIMEOUT)),
        }
    };
    let r = InRuntime {
        rt: rt.clone(),
        fut: Box::pin(bounded),
    }
    .await;
    if let Err(e) = &r {
        health.failed(e);
    }
    r
}

/// The OTLP span exporter, run in our runtime with a bounded time.
#[derive(Debug)]
struct Traces {
    inner: opentelemetry_otlp::SpanExporter,
    rt: tokio::runtime::Handle,
    health: Arc<Health>,
}

impl SpanExporter for Traces {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        in_runtime(&self.rt, &self.health, self.inner.export(batch)).await
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// The OTLP metric exporter, run in our runtime with a bounded time.
struct Metrics {
    inner: opentelemetry_otlp::MetricExporter,
    rt: tokio::runtime::Handle,
    health: Arc<Health>,
}

impl PushMetricExporter for Metrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        in_runtime(&self.rt, &self.health, self.inner.export(metrics)).await
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Metric instruments, fed from the collector's intervals.
struct Instruments {
    meter: Meter,
    duration: Histogram<f64>,
    operations: Counter<u64>,
    errors: Counter<u64>,
    counters: HashMap<&'static str, Counter<u64>>,
    gauges: HashMap<&'static str, Gauge<f64>>,
}

/// A run being exported. Created by [`Exporter::start`] before the load starts; ended by
/// [`Exporter::finish`] once the summary is built (dropping it shuts down in the background).
pub struct Exporter {
    tracer: SdkTracer,
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    root: Context,
    clock: Clock,
    inst: Instruments,
    /// The last slot of the collector already fed into the instruments.
    fed: Option<u64>,
    /// Last seen value of each workload counter.
    last_counters: Vec<Vec<f64>>,
    op_task: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    dropped: Arc<AtomicU64>,
    health: Arc<Health>,
}

/// Where to export and how much (`--otlp`, `--otlp-protocol`, `--trace-sample`).
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    pub endpoint: String,
    pub protocol: Protocol,
    /// Fraction of operations exported as trace spans.
    pub trace_sample: f64,
}

/// Where the operations go, for `server.address` / `server.port`.
pub struct Server {
    pub host: String,
    pub port: u16,
}

/// The endpoint as a URL: `None` when it is empty or `OTEL_SDK_DISABLED=true`; `host:port` means
/// plain http, as collectors listen by default.
fn endpoint_url(endpoint: &str) -> Option<String> {
    let endpoint = Some(endpoint.trim()).filter(|s| !s.is_empty())?;
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    Some(if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    })
}

/// The run's root span, started at time zero (`at`, on the wall clock).
fn root_span(tracer: &SdkTracer, plan: &Plan, run_id: String, at: SystemTime) -> Context {
    let root_span = tracer
        .span_builder(format!("run {}", plan.name))
        .with_kind(SpanKind::Internal)
        .with_start_time(at)
        .with_attributes([
            KeyValue::new("valkey_chaos.scenario", plan.name.clone()),
            KeyValue::new("valkey_chaos.run_id", run_id),
            KeyValue::new("valkey_chaos.seed", plan.seed.to_string()),
        ])
        .start(tracer);
    Context::new().with_span(root_span)
}

impl Instruments {
    /// The fixed instruments; counters and gauges are made as workloads report them.
    fn new(meter: Meter) -> Instruments {
        Instruments {
            duration: meter
                .f64_histogram(DURATION)
                .with_unit("s")
                .with_description(
                    "Latency of successful operations from their intended start (coordinated-omission corrected)",
                )
                .build(),
            operations: meter
                .u64_counter("valkey_chaos_operations_total")
                .with_description("Completed operations by outcome (ok, error)")
                .build(),
            errors: meter
                .u64_counter("valkey_chaos_errors_total")
                .with_description("Failed operations by error kind")
                .build(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
            meter,
        }
    }
}

/// Give every workload a sampler feeding a task that turns the samples into spans under
/// `root`; the token stops the task.
fn spawn_op_spans(
    sample: f64,
    collector: &Collector,
    dropped: &Arc<AtomicU64>,
    tracer: &SdkTracer,
    root: &Context,
    clock: Clock,
    server: Server,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(OP_QUEUE);
    for (i, m) in collector.workloads.iter().enumerate() {
        m.set_sampler(OpSampler::new(i, sample, tx.clone(), dropped.clone()));
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(op_spans(OpSpans {
        rx,
        stop: stop.clone(),
        tracer: tracer.clone(),
        root: root.clone(),
        clock,
        workloads: collector.workloads.clone(),
        server,
    }));
    (stop, task)
}

impl Exporter {
    /// Start exporting to `opts.endpoint`; `None` when it is empty, when the SDK is disabled,
    /// or when the exporter cannot be built (a warning says why; the run goes on).
    pub fn start(
        opts: &OtlpOptions,
        plan: &Plan,
        collector: &Collector,
        server: Server,
        start: Instant,
        run_key: Option<&str>,
    ) -> Option<Exporter> {
        let endpoint = endpoint_url(&opts.endpoint)?;
        let endpoint = endpoint.as_str();
        let protocol = opts.protocol;
        let sample = opts.trace_sample;
        let health = Arc::new(Health {
            endpoint: endpoint.to_string(),
            warned: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        });
        let run_id = crate::summary::build::run_id(plan.seed, collector.started_wall);
        let resource = resource(plan, &run_id, run_key);
        let (tracer_provider, meter_provider) =
            match providers(endpoint, protocol, resource, &health) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("warning: OTLP export to {endpoint} disabled: {e}");
                    return None;
                }
            };
        let tracer = tracer_provider.tracer("valkey-chaos");
        // Spans are placed on time zero's clock: behind a start barrier, the instant every shard
        // shares (the target's clock), so all agents' phases and faults line up in a trace view.
        let clock = Clock {
            at: collector.started,
            wall: collector.started_wall,
            start,
        };
        let root = root_span(&tracer, plan, run_id, clock.wall(start));
        let inst = Instruments::new(meter_provider.meter("valkey-chaos"));
        // Sampled operation spans: workers hand samples over without waiting.
        let dropped = Arc::new(AtomicU64::new(0));
        let op_task = (sample > 0.0)
            .then(|| spawn_op_spans(sample, collector, &dropped, &tracer, &root, clock, server));
        eprintln!(
            "exporting OpenTelemetry traces and metrics to {endpoint} ({}, {}% of operations traced)",
            protocol.name(),
            sample * 100.0
        );
        Some(Exporter {
            tracer,
            tracer_provider: Some(tracer_provider),
            meter_provider: Some(meter_provider),
            root,
            clock,
            inst,
            fed: None,
            last_counters: collector.workloads.iter().map(|_| vec![]).collect(),
            op_task,
            dropped,
            health,
        })
    }

    /// Feed the intervals cut since the last call (and the workload counters) into the metrics.
    pub fn observe(&mut self, c: &Collector) {
        let mut de = hdrhistogram::serialization::Deserializer::new();
        let mut names: Vec<Option<Vec<String>>> = vec![None; c.workloads.len()];
        for iv in c.closed_since(self.fed) {
            for o in &iv.ops {
                let m = &c.workloads[o.workload];
                let ops = names[o.workload].get_or_insert_with(|| m.op_names());
                let op = ops.get(o.op).cloned().unwrap_or_default();
                let wl = KeyValue::new("workload", m.id.clone());
                let opk = KeyValue::new("op", op);
                let base = [wl.clone(), opk.clone()];
                if o.ok > 0 {
                    if let Ok(h) = de.deserialize::<u64, _>(&mut &o.corrected[..]) {
                        for v in h.iter_recorded() {
                            let secs = h.median_equivalent(v.value_iterated_to()) as f64 / 1e6;
                            for _ in 0..v.count_at_value() {
                                self.inst.duration.record(secs, &base);
                            }
                        }
                    }
                    self.inst.operations.add(
                        o.ok,
                        &[wl.clone(), opk.clone(), KeyValue::new("outcome", "ok")],
                    );
                }
                let errors: u64 = o.errors.iter().sum();
                if errors > 0 {
                    self.inst.operations.add(
                        errors,
                        &[wl.clone(), opk.clone(), KeyValue::new("outcome", "error")],
                    );
                    for k in ErrorKind::ALL {
                        let n = o.errors[k.index()];
                        if n > 0 {
                            self.inst.errors.add(
                                n,
                                &[wl.clone(), opk.clone(), KeyValue::new("kind", k.name())],
                            );
                        }
                    }
                }
            }
        }
        self.fed = c.last_seq().or(self.fed);

        for (wi, m) in c.workloads.iter().enumerate() {
            let wl = [KeyValue::new("workload", m.id.clone())];
            let last = &mut self.last_counters[wi];
            for (i, (def, v)) in m.counters.snapshot().into_iter().enumerate() {
                if last.len() <= i {
                    last.push(0.0);
                }
                let name = def.name;
                if def.kind.is_level() {
                    let meter = &self.inst.meter;
                    self.inst
                        .gauges
                        .entry(name)
                        .or_insert_with(|| meter.f64_gauge(format!("valkey_chaos_{name}")).build())
                        .record(v, &wl);
                } else if v > last[i] {
                    let meter = &self.inst.meter;
                    let metric = match def.kind {
                        CounterKind::Safety => format!("valkey_chaos_safety_{name}_total"),
                        _ => format!("valkey_chaos_{name}_total"),
                    };
                    self.inst
                        .counters
                        .entry(name)
                        .or_insert_with(|| meter.u64_counter(metric).build())
                        .add((v - last[i]) as u64, &wl);
                }
                last[i] = v;
            }
        }
    }

    /// After the summary is built: the last intervals, the phase and fault spans, the events,
    /// the end of the root span, then a bounded flush and shutdown.
    pub async fn finish(mut self, summary: &RunSummary, plan: &Plan, c: &Collector) {
        self.observe(c);
        if let Some((stop, task)) = self.op_task.take() {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        let now = self.clock.wall(Instant::now());
        let load_end = summary.duration_secs;

        // Phases, the windows per-phase thresholds read.
        if !plan.faults.is_empty() {
            for (label, phase, w) in crate::summary::phase::all(&summary.faults, load_end) {
                let w = w.clamp(load_end);
                let mut attrs = vec![KeyValue::new("valkey_chaos.phase", label.clone())];
                if let crate::plan::Phase::During(i) = phase {
                    attrs.push(KeyValue::new("fault.index", i as i64));
                }
                self.child(
                    format!("phase {label}"),
                    self.clock.rel(w.from),
                    self.clock.rel(w.to),
                    attrs,
                    None,
                );
            }
        }
        for f in &summary.faults {
            let Some(at) = f.injected_at_secs else {
                let reason = f.skipped.clone().unwrap_or_default();
                self.root.span().add_event_with_timestamp(
                    "fault_skipped",
                    self.clock.rel(0.0),
                    vec![
                        KeyValue::new("fault.name", f.name.clone()),
                        KeyValue::new("fault.kind", f.kind.clone()),
                        KeyValue::new("valkey_chaos.detail", reason),
                    ],
                );
                continue;
            };
            let end = f.healed_at_secs.map(|h| self.clock.rel(h)).unwrap_or(now);
            let mut attrs = fault_attrs(f);
            if let Some(fp) = plan.faults.iter().find(|p| p.index == f.index) {
                attrs.extend(fault_params(fp));
            }
            let status = f.heal_error.as_ref().map(|e| {
                attrs.push(KeyValue::new("error.type", "heal_failed"));
                Status::error(e.clone())
            });
            self.child(
                format!("fault {}", f.name),
                self.clock.rel(at),
                end,
                attrs,
                status,
            );
        }

        // The root: observed events, the outcome, the end.
        let root = self.root.span();
        for e in &summary.events {
            let name = serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "event".into());
            root.add_event_with_timestamp(
                name,
                self.clock.rel(e.at_secs),
                vec![KeyValue::new("valkey_chaos.detail", e.detail.clone())],
            );
        }
        root.set_attributes([
            KeyValue::new("valkey_chaos.verdict", summary.verdict.name()),
            KeyValue::new("valkey_chaos.target", summary.target.clone()),
            KeyValue::new("valkey_chaos.interrupted", summary.interrupted),
            KeyValue::new(
                "valkey_chaos.op_spans_dropped",
                self.dropped.load(Ordering::Relaxed) as i64,
            ),
        ]);
        if !summary.passed() {
            let failed = summary.checks.iter().filter(|c| !c.passed).count();
            root.set_status(Status::error(format!(
                "verdict fail: {failed} checks failed, {} heal failures",
                summary.heal_failures.len()
            )));
        }
        root.end_with_timestamp(now);
        self.shutdown().await;
    }

    fn child(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        from: SystemTime,
        to: SystemTime,
        attrs: Vec<KeyValue>,
        status: Option<Status>,
    ) {
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(from)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &self.root);
        if let Some(s) = status {
            span.set_status(s);
        }
        span.end_with_timestamp(to.max(from));
    }

    /// Flush and stop both providers off the runtime's threads, bounded in time.
    async fn shutdown(&mut self) {
        let tp = self.tracer_provider.take();
        let mp = self.meter_provider.take();
        let traces = tokio::task::spawn_blocking(move || {
            if let Some(tp) = tp {
                let _ = tp.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            }
        });
        let metrics = tokio::task::spawn_blocking(move || {
            if let Some(mp) = mp {
                let _ = mp.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            }
        });
        let both = async {
            let _ = traces.await;
            let _ = metrics.await;
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1), both)
            .await
            .is_err()
        {
            self.health.failed(&"the final flush timed out");
        }
    }
}

impl Drop for Exporter {
    /// An exporter dropped without `finish` (a run that failed half-way) shuts down on a
    /// thread of its own: never block the runtime.
    fn drop(&mut self) {
        if let Some((stop, _)) = self.op_task.take() {
            stop.cancel();
        }
        let tp = self.tracer_provider.take();
        let mp = self.meter_provider.take();
        if tp.is_some() || mp.is_some() {
            let _ = std::thread::Builder::new()
                .name("otlp-shutdown".into())
                .spawn(move || {
                    if let Some(tp) = tp {
                        let _ = tp.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
                    }
                    if let Some(mp) = mp {
                        let _ = mp.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
                    }
                });
        }
    }
}

/// `service.name` (unless the environment names one), `service.instance.id` (the run id: one per
/// agent and run), the scenario, run id, seed, the shard (`valkey_chaos.shard.index` and
/// `.count`) and the run key its shards share, and whatever `OTEL_RESOURCE_ATTRIBUTES` adds.
fn resource(plan: &Plan, run_id: &str, run_key: Option<&str>) -> Resource {
    let detected = Resource::builder().build();
    let unnamed = detected
        .get(&Key::from_static_str("service.name"))
        .map(|v| v.as_str().starts_with("unknown_service"))
        .unwrap_or(true);
    let mut b = Resource::builder();
    if unnamed {
        b = b.with_service_name("valkey-chaos");
    }
    let mut attrs = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if detected
        .get(&Key::from_static_str("service.instance.id"))
        .is_none()
    {
        attrs.push(KeyValue::new("service.instance.id", run_id.to_string()));
    }
    attrs.extend([
        KeyValue::new("valkey_chaos.scenario", plan.name.clone()),
        KeyValue::new("valkey_chaos.run_id", run_id.to_string()),
        KeyValue::new("valkey_chaos.seed", plan.seed.to_string()),
    ]);
    if let Some(s) = plan.shard {
        attrs.push(KeyValue::new(
            "valkey_chaos.shard.index",
            i64::from(s.index),
        ));
        attrs.push(KeyValue::new(
            "valkey_chaos.shard.count",
            i64::from(s.count),
        ));
    }
    if let Some(k) = run_key {
        attrs.push(KeyValue::new("valkey_chaos.run_key", k.to_string()));
    }
    b.with_attributes(attrs).build()
}

fn providers(
    endpoint: &str,
    protocol: Protocol,
    resource: Resource,
    health: &Arc<Health>,
) -> Result<(SdkTracerProvider, SdkMeterProvider), String> {
    use opentelemetry_otlp::{MetricExporter, SpanExporter as OtlpSpans};
    let (spans, metrics) = match protocol {
        Protocol::Grpc => (
            OtlpSpans::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .with_temporality(Temporality::Cumulative)
                .build(),
        ),
        Protocol::HttpProtobuf => {
            // The generic endpoint gets the per-signal paths, as OTEL_EXPORTER_OTLP_ENDPOINT does.
            let base = endpoint.trim_end_matches('/');
            (
                OtlpSpans::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(format!("{base}/v1/traces"))
                    .with_timeout(EXPORT_TIMEOUT)
                    .build(),
                MetricExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(format!("{base}/v1/metrics"))
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_temporality(Temporality::Cumulative)
                    .build(),
            )
        }
    };
    let spans = spans.map_err(|e| e.to_string())?;
    let metrics = metrics.map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| "no async runtime to export from".to_string())?;

    let processor = BatchSpanProcessor::builder(Traces {
        inner: spans,
        rt: rt.clone(),
        health: health.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(8192)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(PUSH_INTERVAL)
            .build(),
    )
    .build();
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(processor)
        .with_max_events_per_span(1024)
        .build();

    let reader = PeriodicReader::builder(Metrics {
        inner: metrics,
        rt,
        health: health.clone(),
    })
    .with_interval(PUSH_INTERVAL)
    .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .with_view(|i: &Instrument| {
            (i.name() == DURATION)
                .then(|| {
                    Stream::builder()
                        .with_aggregation(Aggregation::Base2ExponentialHistogram {
                            max_size: 160,
                            max_scale: 20,
                            record_min_max: true,
                        })
                        .build()
                        .ok()
                })
                .flatten()
        })
        .build();
    Ok((tracer_provider, meter_provider))
}

fn fault_attrs(f: &FaultRecord) -> Vec<KeyValue> {
    let mut v = vec![
        KeyValue::new("fault.kind", f.kind.clone()),
        KeyValue::new("fault.target", f.target.clone()),
        KeyValue::new("fault.index", f.index as i64),
        KeyValue::new("fault.name", f.name.clone()),
        KeyValue::new("valkey_chaos.errors_during", f.errors_during as i64),
    ];
    if let Some(r) = f.p99_recovery_secs {
        v.push(KeyValue::new("valkey_chaos.p99_recovery_seconds", r));
    }
    for u in &f.unavailability {
        if let Some(w) = u.window_secs {
            v.push(KeyValue::new(
                format!("valkey_chaos.unavailable_seconds.{}", u.workload),
                w,
            ));
        }
    }
    v
}

/// A fault's parameters as `fault.<name>` attributes (durations in seconds).
fn fault_params(f: &crate::plan::FaultPlan) -> Vec<KeyValue> {
    let secs = |d: Duration| d.as_secs_f64();
    let mut v = vec![
        KeyValue::new("fault.at_seconds", secs(f.at)),
        KeyValue::new("fault.node", f.node.name().to_string()),
    ];
    if let Some(d) = f.duration {
        v.push(KeyValue::new("fault.duration_seconds", secs(d)));
    }
    if let Some(e) = f.every {
        v.push(KeyValue::new("fault.every_seconds", secs(e)));
    }
    for (name, value) in f.kind.params() {
        let key = format!("fault.{name}");
        v.push(match value {
            ParamValue::Bool(b) => KeyValue::new(key, b),
            ParamValue::Int(i) => KeyValue::new(key, i),
            ParamValue::Secs(s) => KeyValue::new(key, s),
            ParamValue::Text(t) => KeyValue::new(key, t),
        });
    }
    v
}

struct OpSpans {
    rx: mpsc::Receiver<OpSample>,
    stop: CancellationToken,
    tracer: SdkTracer,
    root: Context,
    clock: Clock,
    workloads: Vec<Arc<WorkloadMetrics>>,
    server: Server,
}

/// Turn sampled operations into spans until stopped, then drain what is queued.
async fn op_spans(mut s: OpSpans) {
    let mut names: Vec<Vec<String>> = s.workloads.iter().map(|m| m.op_names()).collect();
    loop {
        let sample = tokio::select! {
            x = s.rx.recv() => match x { Some(x) => x, None => break },
            _ = s.stop.cancelled() => break,
        };
        op_span(&s, &mut names, &sample);
    }
    while let Ok(sample) = s.rx.try_recv() {
        op_span(&s, &mut names, &sample);
    }
}

/// One operation span per the OpenTelemetry database conventions.
fn op_span(s: &OpSpans, names: &mut [Vec<String>], o: &OpSample) {
    let Some(m) = s.workloads.get(o.workload) else {
        return;
    };
    if o.op >= names[o.workload].len() {
        names[o.workload] = m.op_names();
    }
    let op = names[o.workload]
        .get(o.op)
        .map(|n| n.to_ascii_uppercase())
        .unwrap_or_else(|| "UNKNOWN".into());
    let mut attrs = vec![
        KeyValue::new("db.system.name", "valkey"),
        KeyValue::new("db.operation.name", op.clone()),
        KeyValue::new("server.address", s.server.host.clone()),
        KeyValue::new("server.port", s.server.port as i64),
        KeyValue::new("valkey_chaos.workload", m.id.clone()),
        KeyValue::new(
            "valkey_chaos.start_delay_seconds",
            o.sent.saturating_duration_since(o.intended).as_secs_f64(),
        ),
    ];
    if let Err(k) = o.outcome {
        attrs.push(KeyValue::new("error.type", k.name()));
    }
    let mut span = s
        .tracer
        .span_builder(op)
        .with_kind(SpanKind::Client)
        .with_start_time(s.clock.wall(o.sent))
        .with_attributes(attrs)
        .start_with_context(&s.tracer, &s.root);
    if let Err(k) = o.outcome {
        span.set_status(Status::error(k.name()));
    }
    span.end_with_timestamp(s.clock.wall(o.end.max(o.sent)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_fractions_parse() {
        assert_eq!(Protocol::parse("grpc"), Ok(Protocol::Grpc));
        assert_eq!(Protocol::parse("http"), Ok(Protocol::HttpProtobuf));
        assert_eq!(Protocol::parse("HTTP/protobuf"), Ok(Protocol::HttpProtobuf));
        assert!(Protocol::parse("http/json")
            .unwrap_err()
            .contains("not supported"));
        assert!(Protocol::parse("smtp").is_err());
        assert_eq!(parse_fraction("0.01"), Ok(0.01));
        assert!(parse_fraction("1.5").is_err());
        assert!(parse_fraction("x").is_err());
    }
}
