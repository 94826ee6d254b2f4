//! `PolicyWorker`: a member of the `cw-policy` consumer group. Consumes `cw.chains` (Avro
//! `Chain`, keyed by chain id), evaluates micro-batches (up to `batch_size` records or
//! `batch_interval_ms`, whichever first) with the `PolicyEngine`, and publishes every new or
//! updated violation as OCSF JSON to `cw.violations` keyed by chain id, and, when
//! `policy.webhook.url` is set, hands the same JSON to the webhook sink (a bounded queue and its
//! own task: a slow or dead endpoint never slows the bus path; see `webhook`).
//!
//! Delivery contract: records of a micro-batch are marked processed and committed only after
//! every violation they produced is acknowledged by the bus (and undecodable records only after
//! their dead letter is). After a restart the new owner re-evaluates from the committed offset
//! with an empty dedupe state, so a violation may be published again with the same
//! `violation_id` (downstream dedupes by id and version).

use std::sync::Arc;
use std::time::Duration;

use chainwatch_bus::{Bus, BusError, Consumer, DeadLetter, OutRecord, Pending, Producer, Record};
use chainwatch_config::{ChainwatchConfig, WebhookConfig};
use chainwatch_schemas::{AvroRecord, Chain, Violation};

use crate::engine::{EngineError, PolicyEngine};
use crate::ocsf::to_ocsf_json;
use crate::webhook::{WebhookError, WebhookSink, WebhookStats};

/// How long `close` waits for the webhook queue to drain.
const WEBHOOK_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Where the worker reads and writes, and how it batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWorkerConfig {
    pub group: String,
    pub input_topic: String,
    pub output_topic: String,
    pub deadletter_topic: String,
    pub batch_size: usize,
    pub batch_interval: Duration,
    /// The optional webhook (no URL = none).
    pub webhook: WebhookConfig,
}

impl PolicyWorkerConfig {
    pub fn from_config(cfg: &ChainwatchConfig) -> Self {
        PolicyWorkerConfig {
            group: cfg.policy.group.clone(),
            input_topic: cfg.topics.chains.clone(),
            output_topic: cfg.topics.violations.clone(),
            deadletter_topic: cfg.topics.deadletter.clone(),
            batch_size: cfg.policy.batch_size.max(1),
            batch_interval: Duration::from_millis(cfg.policy.batch_interval_ms.max(1)),
            webhook: cfg.policy.webhook.clone(),
        }
    }
}

/// What stops the worker (uncommitted input is delivered again to the next owner).
#[derive(Debug, thiserror::Error)]
pub enum PolicyWorkerError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("policy engine: {0}")]
    Engine(#[from] EngineError),
    #[error("encoding a violation as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Webhook(#[from] WebhookError),
}

/// Counters of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyWorkerStats {
    pub records: u64,
    pub chains: u64,
    pub batches: u64,
    pub violations_published: u64,
    pub dead_letters: u64,
    pub commits: u64,
    /// The webhook's counters (all zero without a webhook).
    pub webhook: WebhookStats,
}

/// Sees each evaluated micro-batch: how long the evaluation took and the violations it gave
/// (new ones and new versions), e.g. for latency and violations-by-policy metrics.
pub type BatchObserver = Box<dyn FnMut(Duration, &[Violation]) + Send>;

/// One member of the policy consumer group.
pub struct PolicyWorker {
    consumer: Box<dyn Consumer>,
    producer: Arc<dyn Producer>,
    dead: DeadLetter,
    engine: PolicyEngine,
    webhook: Option<WebhookSink>,
    observer: Option<BatchObserver>,
    cfg: PolicyWorkerConfig,
    stats: PolicyWorkerStats,
}

impl PolicyWorker {
    /// Join the group on `bus`, evaluating with `engine`.
    pub async fn join(bus: &dyn Bus, engine: PolicyEngine, cfg: PolicyWorkerConfig) -> Result<Self, PolicyWorkerError> {
        let consumer = bus.consumer(&cfg.group, &[cfg.input_topic.as_str()]).await?;
        let producer = bus.producer()?;
        let dead = DeadLetter::new(producer.clone(), cfg.deadletter_topic.clone(), "policy");
        let webhook = WebhookSink::from_config(&cfg.webhook)?;
        Ok(PolicyWorker { consumer, producer, dead, engine, webhook, observer: None, cfg, stats: PolicyWorkerStats::default() })
    }

    /// Call `observer` after every evaluated micro-batch.
    pub fn set_batch_observer(&mut self, observer: BatchObserver) {
        self.observer = Some(observer);
    }

    /// Records not yet consumed, per owned (topic, partition).
    pub fn lag(&self) -> Vec<(String, i32, u64)> {
        self.consumer.lag()
    }

    pub fn stats(&self) -> PolicyWorkerStats {
        let mut s = self.stats;
        if let Some(w) = &self.webhook {
            s.webhook = w.stats();
        }
        s
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// Collect one micro-batch, evaluate it, publish, mark and commit. Returns the number of
    /// records handled (0 when nothing came within the batch interval).
    pub async fn step(&mut self) -> Result<usize, PolicyWorkerError> {
        let deadline = tokio::time::Instant::now() + self.cfg.batch_interval;
        let mut records: Vec<Record> = Vec::new();
        while records.len() < self.cfg.batch_size {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left).await? {
                Some(r) => records.push(r),
                None => break,
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        self.stats.records += records.len() as u64;
        let mut chains: Vec<Chain> = Vec::with_capacity(records.len());
        for r in &records {
            match Chain::decode(&r.value) {
                Ok(c) => chains.push(c),
                Err(e) => {
                    self.dead.send(r, &format!("bad Chain: {e}")).await?;
                    self.stats.dead_letters += 1;
                }
            }
        }
        self.stats.chains += chains.len() as u64;
        let started = std::time::Instant::now();
        let violations = self.engine.evaluate(&chains).await?;
        if let Some(observe) = &mut self.observer {
            observe(started.elapsed(), &violations);
        }
        self.publish(&violations).await?;
        // Only now: every output of these records is acknowledged.
        for r in &records {
            self.consumer.mark_processed(r)?;
        }
        self.consumer.commit().await?;
        self.stats.commits += 1;
        self.stats.batches += 1;
        Ok(records.len())
    }

    /// Handle micro-batches until `stop` resolves.
    pub async fn run_until(&mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), PolicyWorkerError> {
        let mut stop = std::pin::pin!(stop);
        loop {
            if poll_ready(stop.as_mut()) {
                return Ok(());
            }
            self.step().await?;
        }
    }

    /// Flush, leave the group, and give the webhook queue a grace period to drain.
    pub async fn close(self) -> Result<(), PolicyWorkerError> {
        self.producer.flush(Duration::from_secs(10)).await?;
        self.consumer.close().await?;
        if let Some(w) = self.webhook {
            w.close(WEBHOOK_CLOSE_GRACE).await;
        }
        Ok(())
    }

    async fn publish(&mut self, violations: &[Violation]) -> Result<(), PolicyWorkerError> {
        let mut pending: Vec<Pending> = Vec::with_capacity(violations.len());
        let mut for_webhook: Vec<Vec<u8>> = Vec::new();
        for v in violations {
            let value = serde_json::to_vec(&to_ocsf_json(v))?;
            if self.webhook.is_some() {
                for_webhook.push(value.clone());
            }
            let out = OutRecord::new(self.cfg.output_topic.clone(), v.chain_id.clone(), value)
                .with_header("cw.violation_id", v.violation_id.clone())
                .with_header("cw.violation_version", v.version.to_string());
            pending.push(self.producer.send(out).await?);
        }
        for p in pending {
            p.await?;
            self.stats.violations_published += 1;
        }
        // After the bus acknowledged them; `offer` never waits (a full queue drops and counts).
        if let Some(w) = &self.webhook {
            for json in for_webhook {
                w.offer(json);
            }
        }
        Ok(())
    }
}

/// Whether `f` is ready now (without waiting).
fn poll_ready<F: std::future::Future<Output = ()>>(f: std::pin::Pin<&mut F>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.poll(&mut cx).is_ready()
}
