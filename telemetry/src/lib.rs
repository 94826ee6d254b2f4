//! chainwatch-telemetry: observability for chainwatch itself and for the chains it builds.
//!
//! - [`metrics`]: [`Telemetry::init`] installs the meter provider (OTLP/HTTP exporter and/or a
//!   Prometheus scrape endpoint from `[metrics]`); [`stage_metrics`] has one typed instrument set
//!   per stage, fed from the stats snapshots the stages already keep.
//! - [`chain_traces`]: a `Chain` (+ its violations) as OTLP spans following the OpenTelemetry
//!   GenAI semantic conventions; [`trace_exporter`] ships them over OTLP/HTTP.
//! - [`logs`]: the tracing subscriber (JSON when piped) and the span field names.
//! - [`status_line`] and [`progress`]: terminal-only live status and progress bars.
//!
//! A stage registers the counters it already keeps (push style: publish a snapshot from its
//! loop; the instruments read the latest one at each collection / scrape):
//!
//! ```no_run
//! use chainwatch_telemetry::{ParserMetrics, ParserSnapshot, SharedSnapshot, Telemetry};
//! # async fn f(cfg: chainwatch_config::MetricsConfig) -> Result<(), chainwatch_telemetry::TelemetryError> {
//! let telemetry = Telemetry::init(&cfg, "chainwatch-parser")?; // inside the tokio runtime
//! let shared = SharedSnapshot::new(ParserSnapshot::default());
//! let _metrics = ParserMetrics::register(&telemetry.meter("chainwatch.parser"), "worker-0", shared.source());
//! // in the worker loop, after each batch:
//! shared.publish(ParserSnapshot { segments_in: 10, events_out: 3, ..Default::default() });
//! // at exit:
//! tokio::task::spawn_blocking(move || telemetry.shutdown()).await.ok();
//! # Ok(()) }
//! ```
//!
//! The CLI exports chains as traces (when a chain closes or gets a violation):
//!
//! ```no_run
//! # fn f(cfg: &chainwatch_config::MetricsConfig, chain: &chainwatch_schemas::Chain,
//! #      violations: &[chainwatch_schemas::Violation]) -> Result<(), chainwatch_telemetry::TelemetryError> {
//! if let Some(exporter) = chainwatch_telemetry::ChainTraceExporter::from_config(cfg, "chainwatch")? {
//!     exporter.submit(chain, violations); // never blocks; a full queue drops and counts
//!     exporter.flush(std::time::Duration::from_secs(10))?; // e.g. at the end of `chainwatch parse`
//! }
//! # Ok(()) }
//! ```

pub mod chain_traces;
pub mod error;
pub mod logs;
pub mod metrics;
mod otlp_endpoint;
pub mod progress;
mod prometheus_endpoint;
mod sql_sanitize;
pub mod stage_metrics;
pub mod status_line;
pub mod trace_exporter;

pub use chain_traces::{LlmDetails, chain_to_spans, chain_to_spans_with, span_id_for_event, trace_id_for_chain};
pub use error::TelemetryError;
pub use metrics::Telemetry;
/// The meter type [`Telemetry::meter`] hands out (so callers need not depend on `opentelemetry`).
pub use opentelemetry::metrics::Meter;
pub use stage_metrics::{
    BusMetrics, ChainMetrics, ChainSnapshot, ParserMetrics, ParserSnapshot, PartitionLag, PolicyMetrics, PolicySnapshot,
    PolicyWorkerMetrics, ProbeMetrics, ProbeSnapshot, SharedSnapshot, TraceExportMetrics,
};
pub use trace_exporter::{ChainTraceExporter, ChainTraceStats};
