//! Errors of the telemetry crate; each names the config key or the operation that failed.

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A `[metrics]` value is unusable; names the key.
    #[error("{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("building the OTLP {signal} exporter for {url}: {reason}")]
    Exporter { signal: &'static str, url: String, reason: String },
    #[error("building the Prometheus exporter: {0}")]
    Prometheus(String),
    #[error("binding the Prometheus endpoint on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("metrics.prometheus_listen needs a tokio runtime: call Telemetry::init from within one")]
    NoRuntime,
    #[error("flushing metrics: {0}")]
    Flush(String),
    #[error("shutting down the meter provider: {0}")]
    Shutdown(String),
    #[error("the chain trace export thread has stopped")]
    ExporterGone,
    #[error("chain trace export did not finish within {0:?}")]
    FlushTimeout(std::time::Duration),
    #[error("starting the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("installing the log subscriber: {0}")]
    Logging(String),
}
