//! `ChainWorker`: a member of the chain-builder consumer group (`cw-chains`). Consumes
//! `cw.semantic.events` and `cw.proc.events` (Avro), feeds the `ChainBuilder`, and publishes
//! every chain upsert and closing to `cw.chains` keyed by chain id (a compacted topic: the last
//! version wins).
//!
//! Delivery contract (as the parser workers):
//! - A record that cannot be decoded goes to the dead-letter topic with the reason.
//! - Records are handled in batches of `commit_every`: after a batch (or an empty poll) the
//!   builder's upserts and closings are published, every acknowledgement is awaited, and only
//!   then are the batch's records marked processed and committed (at least once).
//! - When no record comes, the watermark advances by the wall time elapsed since the last
//!   record (processing time stands in for event time), so idle chains close.
//! - After a restart the builder starts empty from the committed offset: chains open at the
//!   crash are rebuilt from the replayed events with the same chain ids where their first
//!   event is replayed (ids derive from the agent key and the first event id); rebuilding
//!   from the compacted `cw.chains` topic is not done yet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, BusError, Consumer, DeadLetter, OutRecord, Pending, Producer, Record};
use chainwatch_config::ChainwatchConfig;
use chainwatch_schemas::codec::record_name;
use chainwatch_schemas::{AvroRecord, Chain, CodecError, ProcessEvent, SemanticEvent};

use crate::builder::ChainBuilder;

/// Where the worker reads and writes, and how often it publishes and commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainWorkerConfig {
    pub group: String,
    pub semantic_topic: String,
    pub proc_topic: String,
    pub output_topic: String,
    pub deadletter_topic: String,
    /// Publish and commit after this many records (and whenever a poll comes back empty).
    pub commit_every: usize,
    /// ... or once this long has passed since the last publish while records keep coming, so
    /// a busy stream does not hold a chain's upsert back (the violation waits on it).
    pub max_publish_delay: Duration,
    pub poll_timeout: Duration,
}

impl ChainWorkerConfig {
    pub fn from_config(cfg: &ChainwatchConfig) -> Self {
        ChainWorkerConfig {
            group: cfg.chain.group.clone(),
            semantic_topic: cfg.topics.semantic_events.clone(),
            proc_topic: cfg.topics.proc_events.clone(),
            output_topic: cfg.topics.chains.clone(),
            deadletter_topic: cfg.topics.deadletter.clone(),
            commit_every: 500,
            max_publish_delay: Duration::from_millis(100),
            poll_timeout: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainWorkerError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("encoding a chain: {0}")]
    Encode(#[from] CodecError),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainWorkerStats {
    pub records: u64,
    pub semantic_events: u64,
    pub process_events: u64,
    pub chains_published: u64,
    pub dead_letters: u64,
    pub commits: u64,
}

/// One member of the chain-builder consumer group.
pub struct ChainWorker {
    consumer: Box<dyn Consumer>,
    producer: Arc<dyn Producer>,
    dead: DeadLetter,
    builder: ChainBuilder,
    cfg: ChainWorkerConfig,
    /// Handled, not yet marked: their output is published at the next flush.
    unmarked: Vec<Record>,
    last_record_at: Instant,
    last_flush_at: Instant,
    stats: ChainWorkerStats,
}

impl ChainWorker {
    pub async fn join(bus: &dyn Bus, builder: ChainBuilder, cfg: ChainWorkerConfig) -> Result<Self, ChainWorkerError> {
        let consumer = bus.consumer(&cfg.group, &[cfg.semantic_topic.as_str(), cfg.proc_topic.as_str()]).await?;
        let producer = bus.producer()?;
        let dead = DeadLetter::new(producer.clone(), cfg.deadletter_topic.clone(), "chain");
        Ok(ChainWorker {
            consumer,
            producer,
            dead,
            builder,
            cfg,
            unmarked: Vec::new(),
            last_record_at: Instant::now(),
            last_flush_at: Instant::now(),
            stats: ChainWorkerStats::default(),
        })
    }

    /// Records not yet consumed, per owned (topic, partition).
    pub fn lag(&self) -> Vec<(String, i32, u64)> {
        self.consumer.lag()
    }

    pub fn stats(&self) -> ChainWorkerStats {
        self.stats
    }

    pub fn builder(&self) -> &ChainBuilder {
        &self.builder
    }

    /// Poll once. Returns whether a record was handled; an empty poll advances the watermark
    /// by the idle wall time, publishes and commits.
    pub async fn step(&mut self) -> Result<bool, ChainWorkerError> {
        let Some(record) = self.consumer.poll(self.cfg.poll_timeout).await? else {
            let max = self.builder.max_event_ns();
            if max != i64::MIN {
                let idle = i64::try_from(self.last_record_at.elapsed().as_nanos()).unwrap_or(i64::MAX);
                let closed = self.builder.advance_watermark(max.saturating_add(idle));
                self.publish(&closed).await?;
            }
            self.flush().await?;
            return Ok(false);
        };
        self.last_record_at = Instant::now();
        self.handle(record).await?;
        if self.unmarked.len() >= self.cfg.commit_every || self.last_flush_at.elapsed() >= self.cfg.max_publish_delay {
            self.flush().await?;
        }
        Ok(true)
    }

    /// Handle records until `stop` resolves, then publish and commit what was handled.
    pub async fn run_until(&mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), ChainWorkerError> {
        let mut stop = std::pin::pin!(stop);
        loop {
            if poll_ready(stop.as_mut()) {
                break;
            }
            self.step().await?;
        }
        self.flush().await
    }

    /// Publish and commit what was handled, then leave the group.
    pub async fn close(mut self) -> Result<(), ChainWorkerError> {
        self.flush().await?;
        self.producer.flush(Duration::from_secs(10)).await?;
        self.consumer.close().await?;
        Ok(())
    }

    async fn handle(&mut self, record: Record) -> Result<(), ChainWorkerError> {
        self.stats.records += 1;
        match decode(&record.value) {
            Ok(Input::Semantic(ev)) => {
                self.stats.semantic_events += 1;
                self.builder.ingest_event(*ev);
            }
            Ok(Input::Process(ev)) => {
                self.stats.process_events += 1;
                self.builder.push_process(&ev);
            }
            Err(reason) => {
                self.dead.send(&record, &reason).await?;
                self.stats.dead_letters += 1;
            }
        }
        self.unmarked.push(record);
        Ok(())
    }

    /// Publish the builder's upserts and closings, await them, then mark and commit.
    async fn flush(&mut self) -> Result<(), ChainWorkerError> {
        self.last_flush_at = Instant::now();
        let mut chains = self.builder.take_updates();
        chains.extend(self.builder.advance_watermark(i64::MIN));
        self.publish(&chains).await?;
        if self.unmarked.is_empty() {
            return Ok(());
        }
        for r in std::mem::take(&mut self.unmarked) {
            self.consumer.mark_processed(&r)?;
        }
        self.consumer.commit().await?;
        self.stats.commits += 1;
        Ok(())
    }

    async fn publish(&mut self, chains: &[Chain]) -> Result<(), ChainWorkerError> {
        let mut pending: Vec<Pending> = Vec::with_capacity(chains.len());
        for c in chains {
            let out = OutRecord::new(self.cfg.output_topic.clone(), c.chain_id.clone(), c.encode()?)
                .with_header("cw.chain_version", c.version.to_string());
            pending.push(self.producer.send(out).await?);
        }
        for p in pending {
            p.await?;
            self.stats.chains_published += 1;
        }
        Ok(())
    }
}

enum Input {
    Semantic(Box<SemanticEvent>),
    Process(Box<ProcessEvent>),
}

/// Decode by writer schema name; the error is the dead-letter reason.
fn decode(value: &[u8]) -> Result<Input, String> {
    let name = record_name(value).map_err(|e| format!("undecodable record: {e}"))?;
    if name == SemanticEvent::NAME {
        SemanticEvent::decode(value)
            .map(|e| Input::Semantic(Box::new(e)))
            .map_err(|e| format!("bad SemanticEvent: {e}"))
    } else if name == ProcessEvent::NAME {
        ProcessEvent::decode(value).map(|e| Input::Process(Box::new(e))).map_err(|e| format!("bad ProcessEvent: {e}"))
    } else {
        Err(format!("unexpected record {name} (SemanticEvent or ProcessEvent expected)"))
    }
}

fn poll_ready<F: std::future::Future<Output = ()>>(f: std::pin::Pin<&mut F>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.poll(&mut cx).is_ready()
}
