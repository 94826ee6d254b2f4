//! The meter provider for chainwatch's own metrics: OTLP/HTTP push when
//! `[metrics].otlp_endpoint` is set, a Prometheus scrape endpoint when
//! `[metrics].prometheus_listen` is set, both, or neither (instruments are then no-ops).
//!
//! Export interval: the SDK default (60 s), overridable with `OTEL_METRIC_EXPORT_INTERVAL` (ms).

use std::net::SocketAddr;

use chainwatch_config::MetricsConfig;
use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::error::TelemetryError;
use crate::otlp_endpoint;
use crate::prometheus_endpoint::PrometheusEndpoint;

/// chainwatch's metrics pipeline for one process. Keep it alive for the life of the process;
/// call [`Telemetry::shutdown`] at exit to push the last values.
pub struct Telemetry {
    provider: SdkMeterProvider,
    prometheus: Option<PrometheusEndpoint>,
    otlp_metrics_url: Option<String>,
    service_name: String,
}

impl Telemetry {
    /// Install the exporters `cfg` asks for. `service_name` becomes the `service.name` resource
    /// attribute (e.g. `chainwatch-parser`). With `prometheus_listen` set this must run inside a
    /// tokio runtime (the scrape endpoint is a task on it); the address is bound before returning.
    pub fn init(cfg: &MetricsConfig, service_name: &str) -> Result<Telemetry, TelemetryError> {
        let resource = Resource::builder().with_service_name(service_name.to_string()).build();
        let mut builder = SdkMeterProvider::builder().with_resource(resource);
        let mut otlp_metrics_url = None;
        if let Some(base) = otlp_endpoint::configured(cfg.otlp_endpoint.as_ref()) {
            let url = otlp_endpoint::signal_url(base, "metrics")?;
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .build()
                .map_err(|e| TelemetryError::Exporter { signal: "metrics", url: url.clone(), reason: e.to_string() })?;
            builder = builder.with_reader(PeriodicReader::builder(exporter).build());
            otlp_metrics_url = Some(url);
        }
        let mut prometheus = None;
        if let Some(listen) = cfg.prometheus_listen.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let addr: SocketAddr = listen.parse().map_err(|e| TelemetryError::Config {
                key: "metrics.prometheus_listen",
                reason: format!("{listen:?} is not an address:port ({e}), e.g. 0.0.0.0:9464"),
            })?;
            let registry = prometheus::Registry::new();
            let reader = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()
                .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
            builder = builder.with_reader(reader);
            prometheus = Some(PrometheusEndpoint::start(addr, registry)?);
        }
        Ok(Telemetry {
            provider: builder.build(),
            prometheus,
            otlp_metrics_url,
            service_name: service_name.to_string(),
        })
    }

    /// As [`Telemetry::init`], or `None` when `[metrics]` configures no exporter (then the
    /// stages register nothing and pay nothing).
    pub fn from_config(cfg: &MetricsConfig, service_name: &str) -> Result<Option<Telemetry>, TelemetryError> {
        let prometheus = cfg.prometheus_listen.as_deref().is_some_and(|s| !s.trim().is_empty());
        if otlp_endpoint::configured(cfg.otlp_endpoint.as_ref()).is_none() && !prometheus {
            return Ok(None);
        }
        Telemetry::init(cfg, service_name).map(Some)
    }

    /// A meter whose instrumentation scope names the stage (e.g. `chainwatch.parser`).
    pub fn meter(&self, scope: &'static str) -> Meter {
        let scope = InstrumentationScope::builder(scope).with_version(env!("CARGO_PKG_VERSION")).build();
        self.provider.meter_with_scope(scope)
    }

    /// The underlying provider, e.g. to install it globally with
    /// `opentelemetry::global::set_meter_provider(t.provider().clone())`.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Where the Prometheus endpoint listens (the bound address, so port 0 resolves).
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(PrometheusEndpoint::local_addr)
    }

    /// The URL metrics are pushed to, if any.
    pub fn otlp_metrics_url(&self) -> Option<&str> {
        self.otlp_metrics_url.as_deref()
    }

    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// Collect and push now (blocks until the OTLP exporter answered). Call it from a blocking
    /// context (`tokio::task::spawn_blocking`) when inside a runtime.
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        self.provider.force_flush().map_err(|e| TelemetryError::Flush(e.to_string()))
    }

    /// Push the last values and stop the exporters and the scrape endpoint.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.prometheus.take();
        self.provider.shutdown().map_err(|e| TelemetryError::Shutdown(e.to_string()))
    }
}
