//! `ChainTraceExporter`: ships chains as OTLP/HTTP traces to `<otlp_endpoint>/v1/traces`.
//!
//! `submit` only converts and enqueues (bounded queue, never blocks the stage; a full queue
//! drops the chain and counts it); a dedicated thread batches and posts. Export a chain when it
//! closes or gains a violation: each export re-sends all its spans with the same ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use chainwatch_config::MetricsConfig;
use chainwatch_schemas::{Chain, Violation};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use crate::chain_traces::{LlmDetails, chain_to_spans_with};
use crate::error::TelemetryError;
use crate::otlp_endpoint;

/// Chains waiting for the export thread at most.
pub const DEFAULT_QUEUE_CHAINS: usize = 1024;
/// Spans per OTLP request at most.
const MAX_SPANS_PER_REQUEST: usize = 512;
/// Per-request HTTP timeout.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of the exporter (totals since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainTraceStats {
    pub chains_submitted: u64,
    /// Chains dropped because the queue was full.
    pub chains_dropped: u64,
    pub spans_exported: u64,
    pub export_requests: u64,
    pub export_failures: u64,
}

#[derive(Default)]
struct Counters {
    chains_submitted: AtomicU64,
    chains_dropped: AtomicU64,
    spans_exported: AtomicU64,
    export_requests: AtomicU64,
    export_failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ChainTraceStats {
        ChainTraceStats {
            chains_submitted: self.chains_submitted.load(Ordering::Relaxed),
            chains_dropped: self.chains_dropped.load(Ordering::Relaxed),
            spans_exported: self.spans_exported.load(Ordering::Relaxed),
            export_requests: self.export_requests.load(Ordering::Relaxed),
            export_failures: self.export_failures.load(Ordering::Relaxed),
        }
    }
}

enum Job {
    Spans(Vec<SpanData>),
    Flush(SyncSender<()>),
}

pub struct ChainTraceExporter {
    tx: Option<SyncSender<Job>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    url: String,
}

impl ChainTraceExporter {
    /// `None` when `[metrics].otlp_endpoint` is unset.
    pub fn from_config(cfg: &MetricsConfig, service_name: &str) -> Result<Option<Self>, TelemetryError> {
        otlp_endpoint::configured(cfg.otlp_endpoint.as_ref())
            .map(|base| Self::new(base, service_name, DEFAULT_QUEUE_CHAINS))
            .transpose()
    }

    /// Export to the OTLP/HTTP collector at `base_url` (e.g. `http://collector:4318`).
    pub fn new(base_url: &str, service_name: &str, queue_chains: usize) -> Result<Self, TelemetryError> {
        let url = otlp_endpoint::signal_url(base_url, "traces")?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter { signal: "traces", url: url.clone(), reason: e.to_string() })?;
        exporter.set_resource(&Resource::builder().with_service_name(service_name.to_string()).build());
        let (tx, rx) = mpsc::sync_channel(queue_chains.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("chain-trace-export".into())
            .spawn(move || export_loop(exporter, rx, thread_counters))
            .map_err(|e| TelemetryError::Thread("chain trace export", e))?;
        Ok(ChainTraceExporter { tx: Some(tx), counters, thread: Some(thread), url })
    }

    /// Where the spans are posted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queue `chain` (with its violations) for export. `false` when the queue was full (the
    /// chain is dropped and counted) or the export thread is gone.
    pub fn submit(&self, chain: &Chain, violations: &[Violation]) -> bool {
        self.submit_with(chain, violations, &HashMap::new())
    }

    /// As [`submit`](Self::submit), with LLM details (provider, response model, finish reasons)
    /// by step event id.
    pub fn submit_with(&self, chain: &Chain, violations: &[Violation], llm: &HashMap<String, LlmDetails>) -> bool {
        self.counters.chains_submitted.fetch_add(1, Ordering::Relaxed);
        let spans = chain_to_spans_with(chain, violations, llm);
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(Job::Spans(spans)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.chains_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Wait until everything submitted before this call was posted (successfully or not: see
    /// `stats().export_failures`). Blocks: use `spawn_blocking` inside a runtime.
    pub fn flush(&self, timeout: Duration) -> Result<ChainTraceStats, TelemetryError> {
        let tx = self.tx.as_ref().ok_or(TelemetryError::ExporterGone)?;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        tx.send(Job::Flush(ack_tx)).map_err(|_| TelemetryError::ExporterGone)?;
        match ack_rx.recv_timeout(timeout) {
            Ok(()) => Ok(self.stats()),
            Err(RecvTimeoutError::Timeout) => Err(TelemetryError::FlushTimeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(TelemetryError::ExporterGone),
        }
    }

    pub fn stats(&self) -> ChainTraceStats {
        self.counters.snapshot()
    }

    /// A source for [`TraceExportMetrics::register`](crate::stage_metrics::TraceExportMetrics::register).
    pub fn stats_source(&self) -> impl Fn() -> ChainTraceStats + Send + Sync + 'static {
        let counters = Arc::clone(&self.counters);
        move || counters.snapshot()
    }

    /// Post what is queued and stop the thread.
    pub fn shutdown(mut self) -> ChainTraceStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ChainTraceExporter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn export_loop(exporter: opentelemetry_otlp::SpanExporter, rx: Receiver<Job>, counters: Arc<Counters>) {
    let mut batch: Vec<SpanData> = Vec::new();
    let mut acks: Vec<SyncSender<()>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Take what is already queued, up to one request's worth.
        while let Some(job) = next.take() {
            match job {
                Job::Spans(spans) => batch.extend(spans),
                Job::Flush(ack) => acks.push(ack),
            }
            if batch.len() >= MAX_SPANS_PER_REQUEST || !acks.is_empty() {
                break;
            }
            next = rx.try_recv().ok();
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(MAX_SPANS_PER_REQUEST));
            let request = std::mem::replace(&mut batch, rest);
            let n = request.len() as u64;
            counters.export_requests.fetch_add(1, Ordering::Relaxed);
            match futures::executor::block_on(exporter.export(request)) {
                Ok(()) => {
                    counters.spans_exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.export_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, spans = n, "chain trace export failed");
                }
            }
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    let _ = exporter.shutdown();
}
