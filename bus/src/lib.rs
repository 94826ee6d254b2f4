//! The bus between chainwatch's stages: publish keyed records to a topic; consume topics as a
//! member of a consumer group; commit after processing (at least once).
//!
//! Two implementations share one interface and one conformance suite (`conformance`):
//! `KafkaBus` (librdkafka: idempotent producer, groups, manual commits) for distributed mode,
//! and `MemoryBus` (bounded, same semantics: keyed partitions, per-key order, group offsets)
//! for the embedded mode. Both place a key on the partition Java's Kafka client would choose
//! (`partitioner::partition_for`).

pub mod conformance;
pub mod deadletter;
mod error;
pub mod kafka;
pub mod memory;
pub mod partitioner;
mod record;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use deadletter::DeadLetter;
pub use error::BusError;
pub use kafka::KafkaBus;
pub use memory::MemoryBus;
pub use record::{Delivered, Header, OutRecord, Pending, Record};

/// A bus: topics of keyed, partitioned records, and consumer groups over them.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Create `name` with `partitions` partitions; an existing topic is left as it is.
    async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError>;
    /// Number of partitions of an existing topic.
    async fn partition_count(&self, topic: &str) -> Result<i32, BusError>;
    /// A producer; cheap to clone and share between tasks.
    fn producer(&self) -> Result<Arc<dyn Producer>, BusError>;
    /// Join `group` as a new member consuming `topics`.
    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError>;
    /// Which implementation this is ("kafka", "memory"), for logs and test names.
    fn kind(&self) -> &'static str;
}

/// Publishes keyed records.
#[async_trait]
pub trait Producer: Send + Sync {
    /// Enqueue one record. Records sent one after the other (each `send` awaited before the
    /// next) keep their order per key; `send` waits while the bus pushes back. The returned
    /// `Pending` resolves once the bus acknowledged the record (Kafka: written with acks=all
    /// by the idempotent producer; memory: appended to the partition's log) — only then may
    /// the caller commit the input that produced it. Many may be pending at once.
    async fn send(&self, record: OutRecord) -> Result<Pending, BusError>;

    /// `send`, then wait for the acknowledgement.
    async fn publish(&self, record: OutRecord) -> Result<Delivered, BusError> {
        self.send(record).await?.await
    }

    /// Wait until everything sent so far is acknowledged.
    async fn flush(&self, timeout: Duration) -> Result<(), BusError>;
}

/// A member of a consumer group. Records of one partition arrive in order; a partition is
/// consumed by one member at a time; after a rebalance the new owner resumes from the group's
/// committed offset, so what was processed but not committed is delivered again.
#[async_trait]
pub trait Consumer: Send {
    /// The next record of this member's partitions, or `None` if none came within `timeout`.
    async fn poll(&mut self, timeout: Duration) -> Result<Option<Record>, BusError>;
    /// Note that `record` (and everything before it in its partition) is processed and its
    /// output acknowledged. Takes effect at the next `commit`.
    fn mark_processed(&mut self, record: &Record) -> Result<(), BusError>;
    /// Commit what was marked processed; returns once the group accepted it.
    async fn commit(&mut self) -> Result<(), BusError>;
    /// The (topic, partition) pairs this member owns now.
    fn assignment(&self) -> Vec<(String, i32)>;
    /// Per owned partition: (topic, partition, records not yet consumed by this member), i.e.
    /// the partition's end offset minus this member's position. Kafka: from the watermarks of
    /// the last fetch (no broker round trip); partitions without a known position are left out.
    fn lag(&self) -> Vec<(String, i32, u64)>;
    /// Commit what was marked, then leave the group (its partitions go to the others).
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}

/// Build the bus the configuration asks for.
pub async fn from_config(cfg: &chainwatch_config::ChainwatchConfig) -> Result<Arc<dyn Bus>, BusError> {
    Ok(match cfg.bus.kind {
        chainwatch_config::BusKind::Memory => Arc::new(MemoryBus::new(cfg.bus.memory.clone())),
        chainwatch_config::BusKind::Kafka => Arc::new(KafkaBus::new(cfg.kafka.clone())?),
    })
}

/// Create every topic of the configuration (Kafka: with `kafka.partitions`).
pub async fn create_all_topics(bus: &dyn Bus, cfg: &chainwatch_config::ChainwatchConfig) -> Result<(), BusError> {
    let partitions = match cfg.bus.kind {
        chainwatch_config::BusKind::Memory => cfg.bus.memory.partitions as i32,
        chainwatch_config::BusKind::Kafka => cfg.kafka.partitions,
    };
    for topic in cfg.topics.all() {
        bus.create_topic(topic, partitions).await?;
    }
    Ok(())
}
