//! Exporters that send a run to outside systems while it happens and after it ends. They read
//! the collector's intervals and the summary; workers never wait on them, and an unreachable
//! destination never blocks or fails a run.
//!
//! - [`otlp`]: OpenTelemetry over OTLP (gRPC or HTTP/protobuf): a trace per run (root, phase,
//!   fault and sampled operation spans) and metrics fed at interval cuts.

pub mod otlp;
