//! `ParserWorker`: a member of the parser consumer group. Consumes `cw.raw.segments` (raw
//! segments and connection events, keyed by connection id), drives the connection FSMs and
//! publishes one `SemanticEvent` per exchange to `cw.semantic.events` (key = node).
//!
//! Delivery contract:
//! - A record that cannot be decoded goes to the dead-letter topic with the reason; it is
//!   marked processed only once the dead letter is acknowledged.
//! - A record is marked processed only after every event it produced is acknowledged by the
//!   bus; offsets are committed every `commit_every` records, when idle, and at `close`.
//! - After a restart (or a rebalance), the new owner resumes from the committed offset with
//!   empty FSMs. An exchange whose records all come after that offset is rebuilt whole and gets
//!   the same deterministic event id as before (conn_id + the client stream offset its request
//!   started at), so a replayed complete event is a duplicate by id that downstream dedupes.
//!   An exchange whose start lies before that offset is seen from the middle: the protocol
//!   drivers join mid-stream and emit it flagged partial (response without request, unknown
//!   HPACK state, ...). A complete event is therefore never published twice under two ids.
//! - `close` commits what was marked and leaves the group without flushing the FSMs: open
//!   exchanges are not published as partial, the next owner rebuilds them from the commit.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chainwatch_bus::{Bus, BusError, Consumer, DeadLetter, OutRecord, Pending, Producer, Record};
use chainwatch_config::{ChainwatchConfig, ParserConfig};
use chainwatch_schemas::codec::record_name;
use chainwatch_schemas::{AvroRecord, CodecError, ConnectionEvent, RawSegment};

use crate::connection::{ConnectionTable, ParsedExchange};
use crate::events::{ExchangeHook, NoHook, to_event_with};

/// Where a worker reads and writes, and how often it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub group: String,
    pub input_topic: String,
    pub output_topic: String,
    pub deadletter_topic: String,
    /// Commit after this many processed records (and whenever a poll comes back empty).
    pub commit_every: usize,
    pub poll_timeout: Duration,
}

impl WorkerConfig {
    /// Topics and group from the configuration.
    pub fn from_config(cfg: &ChainwatchConfig) -> Self {
        WorkerConfig {
            group: cfg.parser.group.clone(),
            input_topic: cfg.topics.raw_segments.clone(),
            output_topic: cfg.topics.semantic_events.clone(),
            deadletter_topic: cfg.topics.deadletter.clone(),
            commit_every: cfg.parser.commit_every.max(1),
            poll_timeout: Duration::from_millis(200),
        }
    }
}

/// What went wrong with the bus or with encoding output; the worker stops on it (what was not
/// committed is delivered again to the next owner).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("encoding a semantic event: {0}")]
    Encode(#[from] CodecError),
}

/// Counters of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub records: u64,
    pub segments: u64,
    /// Captured payload bytes of those segments.
    pub payload_bytes: u64,
    pub connection_events: u64,
    pub events_published: u64,
    pub dead_letters: u64,
    pub commits: u64,
}

/// One member of the parser consumer group.
pub struct ParserWorker {
    consumer: Box<dyn Consumer>,
    producer: Arc<dyn Producer>,
    dead: DeadLetter,
    table: ConnectionTable,
    hook: Box<dyn ExchangeHook + Send>,
    cfg: WorkerConfig,
    since_commit: usize,
    stats: WorkerStats,
}

impl ParserWorker {
    /// Join the group on `bus` with the `[parser]` bounds.
    pub async fn join(bus: &dyn Bus, parser: &ParserConfig, cfg: WorkerConfig) -> Result<Self, WorkerError> {
        let consumer = bus.consumer(&cfg.group, &[cfg.input_topic.as_str()]).await?;
        let producer = bus.producer()?;
        let dead = DeadLetter::new(producer.clone(), cfg.deadletter_topic.clone(), "parser");
        Ok(ParserWorker {
            consumer,
            producer,
            dead,
            table: ConnectionTable::new(parser),
            hook: Box::new(NoHook),
            cfg,
            since_commit: 0,
            stats: WorkerStats::default(),
        })
    }

    /// Let the next layer see every exchange (with its bodies) before its event is published.
    pub fn with_hook(mut self, hook: Box<dyn ExchangeHook + Send>) -> Self {
        self.hook = hook;
        self
    }

    /// Records not yet consumed, per owned (topic, partition).
    pub fn lag(&self) -> Vec<(String, i32, u64)> {
        self.consumer.lag()
    }

    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    pub fn table(&self) -> &ConnectionTable {
        &self.table
    }

    /// Poll once and handle what came. Returns whether a record was handled; an empty poll
    /// evicts idle connections (by the wall clock) and commits.
    pub async fn step(&mut self) -> Result<bool, WorkerError> {
        let Some(record) = self.consumer.poll(self.cfg.poll_timeout).await? else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let evicted = self.table.evict_idle(now);
            self.publish(&evicted).await?;
            self.commit().await?;
            return Ok(false);
        };
        self.handle(&record).await?;
        Ok(true)
    }

    /// Handle records until `stop` resolves; commits on the way out (does not leave the group).
    pub async fn run_until(&mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), WorkerError> {
        let mut stop = std::pin::pin!(stop);
        loop {
            if futures_poll_ready(stop.as_mut()) {
                break;
            }
            self.step().await?;
        }
        self.commit().await
    }

    /// Commit what was marked and leave the group (see the module doc: FSMs are not flushed).
    pub async fn close(self) -> Result<(), WorkerError> {
        self.producer.flush(Duration::from_secs(10)).await?;
        self.consumer.close().await?;
        Ok(())
    }

    async fn handle(&mut self, record: &Record) -> Result<(), WorkerError> {
        self.stats.records += 1;
        let exchanges = match decode(&record.value) {
            Ok(Input::Segment(s)) => {
                self.stats.segments += 1;
                self.stats.payload_bytes += s.payload.len() as u64;
                self.table.on_segment(&s)
            }
            Ok(Input::Connection(c)) => {
                self.stats.connection_events += 1;
                self.table.on_connection_event(&c)
            }
            Err(reason) => {
                self.dead.send(record, &reason).await?;
                self.stats.dead_letters += 1;
                Vec::new()
            }
        };
        self.publish(&exchanges).await?;
        // Only now: every output of this record is acknowledged.
        self.consumer.mark_processed(record)?;
        self.since_commit += 1;
        if self.since_commit >= self.cfg.commit_every {
            self.commit().await?;
        }
        Ok(())
    }

    /// Send every event, then wait for all acknowledgements.
    async fn publish(&mut self, exchanges: &[ParsedExchange]) -> Result<(), WorkerError> {
        let mut pending: Vec<Pending> = Vec::with_capacity(exchanges.len());
        for ex in exchanges {
            let event = to_event_with(ex, self.hook.as_mut());
            let value = event.encode()?;
            let out = OutRecord::new(self.cfg.output_topic.clone(), event.node.clone(), value)
                .with_header("cw.event_id", event.event_id.clone());
            pending.push(self.producer.send(out).await?);
        }
        for p in pending {
            p.await?;
            self.stats.events_published += 1;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), WorkerError> {
        if self.since_commit > 0 {
            self.consumer.commit().await?;
            self.since_commit = 0;
            self.stats.commits += 1;
        }
        Ok(())
    }
}

/// A record of the raw-segments topic.
enum Input {
    Segment(RawSegment),
    Connection(ConnectionEvent),
}

/// Decode by writer schema name; the error is the dead-letter reason.
fn decode(value: &[u8]) -> Result<Input, String> {
    let name = record_name(value).map_err(|e| format!("undecodable record: {e}"))?;
    if name == RawSegment::NAME {
        RawSegment::decode(value).map(Input::Segment).map_err(|e| format!("bad RawSegment: {e}"))
    } else if name == ConnectionEvent::NAME {
        ConnectionEvent::decode(value)
            .map(Input::Connection)
            .map_err(|e| format!("bad ConnectionEvent: {e}"))
    } else {
        Err(format!("unexpected record {name} (RawSegment or ConnectionEvent expected)"))
    }
}

/// Whether `f` is ready now (without waiting).
fn futures_poll_ready<F: std::future::Future<Output = ()>>(f: std::pin::Pin<&mut F>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.poll(&mut cx).is_ready()
}
