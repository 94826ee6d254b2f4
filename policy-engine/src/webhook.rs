//! The optional violation webhook: POSTs each violation's OCSF Detection Finding JSON (the same
//! bytes as on cw.violations) to `policy.webhook.url`, off the bus path. `offer` never waits:
//! it puts the JSON on a bounded queue (full = dropped and counted) that one background task
//! drains in order. A 5xx answer or a connection error/timeout is retried with doubling backoff
//! up to `max_retries`; any other non-2xx answer (4xx, a redirect) is not retried, counted and
//! logged with its status. The bearer token is sent as a sensitive header and never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chainwatch_config::WebhookConfig;
use chainwatch_schemas::Violation;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ocsf::to_ocsf_json;

/// The longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("policy.webhook.url {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("policy.webhook: building the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("policy.webhook.ca_file {path:?}: {message}")]
    CaFile { path: std::path::PathBuf, message: String },
}

/// Counters of one sink (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Violations put on the queue.
    pub queued: u64,
    /// Violations dropped because the queue was full (or the sender had stopped).
    pub dropped_queue_full: u64,
    /// Violations the endpoint answered with 2xx.
    pub delivered: u64,
    /// Violations the endpoint refused with a non-retryable status (4xx, 3xx); not retried.
    pub rejected: u64,
    /// Violations given up after `max_retries` retries (5xx, connection errors, timeouts).
    pub gave_up: u64,
    /// Retries made (each retry of each violation counts once).
    pub retries: u64,
}

impl WebhookStats {
    /// Queued but not settled yet (in the queue or in flight).
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.delivered + self.rejected + self.gave_up)
    }
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    dropped_queue_full: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    gave_up: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WebhookStats {
        WebhookStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// Where and how to POST (shared by the sender task; the token never reaches a log line).
struct Target {
    client: reqwest::Client,
    url: reqwest::Url,
    /// scheme://host:port only, for log lines (a path may carry a secret).
    origin: String,
    bearer_token: Option<String>,
    max_retries: u32,
    backoff: Duration,
}

/// The running sink: a bounded queue and the task that posts from it.
pub struct WebhookSink {
    tx: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
    origin: String,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink").field("origin", &self.origin).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// The sink `cfg` describes, started on the current tokio runtime; `None` when no URL is set.
    pub fn from_config(cfg: &WebhookConfig) -> Result<Option<Self>, WebhookError> {
        let Some(url) = cfg.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let bad = |message: String| WebhookError::Url { url: url.to_string(), message };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(bad("must be http:// or https://".into()));
        }
        if parsed.host_str().is_none() {
            return Err(bad("has no host".into()));
        }
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| WebhookError::CaFile { path: path.clone(), message: e.to_string() })?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| WebhookError::CaFile { path: path.clone(), message: e.to_string() })?;
            builder = builder.add_root_certificate(ca);
        }
        let client = builder
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            // A redirect is answered as a refusal: following it could hand the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookError::Client)?;
        let origin = parsed.origin().ascii_serialization();
        let target = Target {
            client,
            url: parsed,
            origin: origin.clone(),
            bearer_token: cfg.bearer_token.clone().filter(|t| !t.is_empty()),
            max_retries: cfg.max_retries,
            backoff: Duration::from_millis(cfg.retry_backoff_ms),
        };
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(deliver_all(rx, target, counters.clone()));
        Ok(Some(WebhookSink { tx, counters, task, origin }))
    }

    /// Queues one violation's OCSF JSON; never waits. False when it was dropped (queue full).
    pub fn offer(&self, ocsf_json: Vec<u8>) -> bool {
        match self.tx.try_send(ocsf_json) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                let dropped = self.counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed) + 1;
                // One line per power of two, not one per violation.
                if dropped.is_power_of_two() {
                    tracing::warn!(webhook = %self.origin, dropped, "webhook queue full: violations dropped");
                }
                false
            }
        }
    }

    /// Queues `v` as OCSF JSON (what `offer` takes, encoded here).
    pub fn offer_violation(&self, v: &Violation) -> bool {
        match serde_json::to_vec(&to_ocsf_json(v)) {
            Ok(json) => self.offer(json),
            Err(e) => {
                tracing::warn!(error = %e, violation_id = %v.violation_id, "encoding a violation for the webhook");
                self.counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn stats(&self) -> WebhookStats {
        self.counters.snapshot()
    }

    /// The endpoint's scheme://host:port (what log lines name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Stops taking violations and waits up to `grace` for the queue to drain; what is still
    /// pending then is abandoned (`stats().pending()` says how many).
    pub async fn close(self, grace: Duration) -> WebhookStats {
        let WebhookSink { tx, counters, mut task, origin } = self;
        drop(tx);
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let s = counters.snapshot();
            tracing::warn!(webhook = %origin, abandoned = s.pending(), "webhook queue not drained at shutdown");
        }
        counters.snapshot()
    }
}

/// The sender task: one POST at a time, in queue order, until the queue is closed and empty.
async fn deliver_all(mut rx: mpsc::Receiver<Vec<u8>>, target: Target, counters: Arc<Counters>) {
    while let Some(body) = rx.recv().await {
        deliver(&target, &counters, body).await;
    }
}

/// Whether an answer or an error is worth another try.
enum Outcome {
    Delivered,
    Refused(reqwest::StatusCode),
    Retryable(String),
}

async fn deliver(target: &Target, counters: &Counters, body: Vec<u8>) {
    let mut attempt: u32 = 0;
    loop {
        match post_once(target, &body).await {
            Outcome::Delivered => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Outcome::Refused(status) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(webhook = %target.origin, status = status.as_u16(), "webhook refused a violation; not retried");
                return;
            }
            Outcome::Retryable(why) if attempt >= target.max_retries => {
                counters.gave_up.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(webhook = %target.origin, attempts = attempt + 1, last = %why, "webhook delivery given up");
                return;
            }
            Outcome::Retryable(why) => {
                let wait = backoff(target.backoff, attempt);
                tracing::debug!(webhook = %target.origin, attempt = attempt + 1, why = %why, wait_ms = wait.as_millis() as u64, "webhook retry");
                counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

async fn post_once(target: &Target, body: &[u8]) -> Outcome {
    let mut request = target
        .client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    if let Some(token) = &target.bearer_token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Outcome::Delivered,
        Ok(response) if response.status().is_server_error() => Outcome::Retryable(format!("status {}", response.status().as_u16())),
        Ok(response) => Outcome::Refused(response.status()),
        // without_url: the error text names no URL (a path may carry a secret).
        Err(e) => Outcome::Retryable(e.without_url().to_string()),
    }
}

/// `base` doubled per earlier retry, at most `MAX_BACKOFF`.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 0), Duration::from_millis(100));
        assert_eq!(backoff(b, 3), Duration::from_millis(800));
        assert_eq!(backoff(b, 40), MAX_BACKOFF);
    }

    #[test]
    fn no_url_no_sink_and_other_schemes_or_a_bad_ca_file_are_refused() {
        assert!(WebhookSink::from_config(&WebhookConfig::default()).unwrap().is_none());
        let ftp = WebhookConfig { url: Some("ftp://siem.example.com/x".into()), ..WebhookConfig::default() };
        let err = WebhookSink::from_config(&ftp).unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
        let ca = WebhookConfig {
            url: Some("https://siem.example.com/x".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..WebhookConfig::default()
        };
        let err = WebhookSink::from_config(&ca).unwrap_err().to_string();
        assert!(err.contains("ca_file") && err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
