//! The Kafka bus through librdkafka (`rdkafka`): idempotent producer with acks=all and
//! Java-compatible murmur2 partitioning, consumer groups with manual commits of the offsets
//! the stage marked processed (at least once), topic creation, TLS/SASL passed through.
//!
//! Offsets: `enable.auto.commit=false` and `enable.auto.offset.store=false`. A stage marks a
//! record processed once its output was acknowledged (`store_offset`), and `commit` commits the
//! stored offsets synchronously. Before partitions are revoked in a rebalance, the stored
//! offsets are committed too, so the next owner starts where this member stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chainwatch_config::{AssignmentStrategy, KafkaConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientContext, Offset, Timestamp};

use crate::{Bus, BusError, Consumer, Delivered, OutRecord, Pending, Producer, Record};

/// Counters of the Kafka bus (one set per `KafkaBus`).
#[derive(Debug, Default)]
pub struct KafkaBusStats {
    pub published: AtomicU64,
    pub publish_errors: AtomicU64,
    /// Sends that waited because librdkafka's local queue was full (back-pressure).
    pub queue_full_waits: AtomicU64,
    pub consumed: AtomicU64,
    pub commits: AtomicU64,
    /// Marks for partitions this member no longer owned (the new owner gets those records).
    pub stale_marks: AtomicU64,
    pub revocations: AtomicU64,
}

pub struct KafkaBus {
    cfg: KafkaConfig,
    producer: Arc<KafkaProducer>,
    stats: Arc<KafkaBusStats>,
}

impl KafkaBus {
    pub fn new(cfg: KafkaConfig) -> Result<Self, BusError> {
        let stats = Arc::new(KafkaBusStats::default());
        let mut pc = client_config(&cfg);
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            // Java's default partitioner for keyed records: murmur2 (see partitioner.rs).
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", cfg.message_timeout_ms.to_string())
            .set("linger.ms", "5")
            .set("compression.type", "lz4");
        apply_passthrough(&mut pc, &cfg);
        let producer: FutureProducer = pc.create().map_err(|e| config_error(&cfg, e))?;
        Ok(KafkaBus { producer: Arc::new(KafkaProducer { inner: producer, stats: stats.clone() }), cfg, stats })
    }

    pub fn stats(&self) -> &KafkaBusStats {
        &self.stats
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }
}

fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in cfg.client_properties() {
        c.set(k, v);
    }
    c
}

/// `[kafka.properties]` go last, so they can override anything chainwatch sets.
fn apply_passthrough(c: &mut ClientConfig, cfg: &KafkaConfig) {
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
}

fn config_error(cfg: &KafkaConfig, e: KafkaError) -> BusError {
    BusError::KafkaConfig(format!("{e} (brokers {:?}; check the [kafka] section)", cfg.brokers))
}

#[async_trait]
impl Bus for KafkaBus {
    async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = {
            let mut c = client_config(&self.cfg);
            apply_passthrough(&mut c, &self.cfg);
            c.create().map_err(|e| config_error(&self.cfg, e))?
        };
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(self.cfg.replication_factor));
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics([&topic], &opts).await?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(BusError::Topic { topic: t, reason: code.to_string() }),
            }
        }
        // Wait until the metadata shows the topic with its partitions (brokers create lazily).
        for _ in 0..100 {
            if let Ok(n) = self.partition_count(name).await
                && n >= 1
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BusError::Topic { topic: name.into(), reason: "not visible in metadata 10 s after creation".into() })
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, BusError> {
        let producer = self.producer.inner.clone();
        let topic_owned = topic.to_string();
        let md = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(Some(&topic_owned), Duration::from_secs(5))
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))??;
        let t = md.topics().iter().find(|t| t.name() == topic).ok_or_else(|| BusError::UnknownTopic(topic.into()))?;
        if let Some(err) = t.error() {
            return Err(BusError::Topic { topic: topic.into(), reason: format!("{err:?}") });
        }
        Ok(t.partitions().len() as i32)
    }

    fn producer(&self) -> Result<Arc<dyn Producer>, BusError> {
        Ok(self.producer.clone())
    }

    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        let mut c = client_config(&self.cfg);
        // A consumer of several topics joins them by key (the chain builder: semantic and
        // process events, both keyed by node): it must own the same partition numbers of each,
        // which only the range assignor guarantees. One-topic groups use the configured one.
        let strategy = if topics.len() > 1 {
            AssignmentStrategy::Range.librdkafka_name()
        } else {
            self.cfg.assignment_strategy.librdkafka_name()
        };
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", strategy)
            .set("session.timeout.ms", self.cfg.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", self.cfg.heartbeat_interval_ms.to_string())
            .set("fetch.wait.max.ms", "100");
        apply_passthrough(&mut c, &self.cfg);
        let context = CommitBeforeRevoke { stats: self.stats.clone() };
        let consumer: StreamConsumer<CommitBeforeRevoke> =
            c.create_with_context(context).map_err(|e| config_error(&self.cfg, e))?;
        consumer.subscribe(topics)?;
        Ok(Box::new(KafkaConsumer { inner: Arc::new(consumer), stats: self.stats.clone(), marked: false }))
    }

    fn kind(&self) -> &'static str {
        "kafka"
    }
}

struct KafkaProducer {
    inner: FutureProducer,
    stats: Arc<KafkaBusStats>,
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&self, record: OutRecord) -> Result<Pending, BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(KHeader { key: k, value: Some(v) });
        }
        let mut fr = FutureRecord::to(&record.topic).key(&record.key).payload(&record.value).headers(headers);
        // Enqueue now (so call order is produce order); wait while librdkafka's queue is full.
        let delivery = loop {
            match self.inner.send_result(fr) {
                Ok(d) => break d,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.stats.queue_full_waits.fetch_add(1, Ordering::Relaxed);
                    fr = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    self.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(BusError::Kafka(e));
                }
            }
        };
        let stats = self.stats.clone();
        Ok(Pending(Box::pin(async move {
            match delivery.await {
                Ok(Ok(d)) => {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    Ok(Delivered { partition: d.partition, offset: d.offset })
                }
                Ok(Err((e, _))) => {
                    stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                    Err(BusError::Kafka(e))
                }
                Err(_) => Err(BusError::Closed),
            }
        })))
    }

    async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let p = self.inner.clone();
        tokio::task::spawn_blocking(move || p.flush(timeout)).await.map_err(|e| BusError::Other(e.to_string()))??;
        Ok(())
    }
}

/// Commits what was stored before partitions leave this member.
struct CommitBeforeRevoke {
    stats: Arc<KafkaBusStats>,
}

impl ClientContext for CommitBeforeRevoke {}

impl ConsumerContext for CommitBeforeRevoke {
    fn pre_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.stats.revocations.fetch_add(1, Ordering::Relaxed);
            match base_consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "commit before revoke failed; records may be delivered again"),
            }
        }
    }
}

struct KafkaConsumer {
    inner: Arc<StreamConsumer<CommitBeforeRevoke>>,
    stats: Arc<KafkaBusStats>,
    marked: bool,
}

/// The (low, high) watermarks librdkafka last saw for a partition (from fetch responses; no
/// broker round trip, unlike `fetch_watermarks`), or None before the first fetch. rdkafka 0.39
/// does not wrap `rd_kafka_get_watermark_offsets`.
fn cached_watermarks<C: rdkafka::consumer::ConsumerContext>(c: &StreamConsumer<C>, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `c`; the topic is a valid NUL-terminated string
    // for the duration of the call; low and high are valid, writable i64s.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(c.client().native_ptr(), topic.as_ptr(), partition, &mut low, &mut high)
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low.max(0), high))
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, timeout: Duration) -> Result<Option<Record>, BusError> {
        let msg = match tokio::time::timeout(timeout, self.inner.recv()).await {
            Err(_) => return Ok(None),
            Ok(r) => r?,
        };
        let headers = msg
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        let timestamp_ms = match msg.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
            Timestamp::NotAvailable => 0,
        };
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Record {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp_ms,
        }))
    }

    fn mark_processed(&mut self, record: &Record) -> Result<(), BusError> {
        // rd_kafka_offset_store stores offset + 1: the next record to read.
        match self.inner.store_offset(&record.topic, record.partition, record.offset) {
            Ok(()) => {
                self.marked = true;
                Ok(())
            }
            Err(KafkaError::StoreOffset(_)) => {
                // Not assigned to us any more: the new owner will deliver it again.
                self.stats.stale_marks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        /// A commit slower than this is logged (it holds the member's records back).
        const SLOW_COMMIT: Duration = Duration::from_millis(500);
        if !self.marked {
            return Ok(());
        }
        let c = self.inner.clone();
        let started = std::time::Instant::now();
        let r = tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync))
            .await
            .map_err(|e| BusError::Other(e.to_string()))?;
        let took = started.elapsed();
        if took > SLOW_COMMIT {
            tracing::warn!(ms = took.as_millis() as u64, "offset commit slow: the consumer waited for the group coordinator");
        }
        match r {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                self.marked = false;
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // A rebalance took the partitions: the records go to the new owner (at least once).
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::UnknownMemberId,
            )) => {
                self.stats.stale_marks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn lag(&self) -> Vec<(String, i32, u64)> {
        let Ok(positions) = self.inner.position() else { return Vec::new() };
        positions
            .elements()
            .iter()
            .filter_map(|e| {
                let (low, high) = cached_watermarks(&self.inner, e.topic(), e.partition())?;
                // Nothing consumed from it yet: everything from the start counts (an
                // approximation when the group resumes from a committed offset).
                let pos = match e.offset() {
                    Offset::Offset(pos) => pos,
                    _ => low,
                };
                Some((e.topic().to_string(), e.partition(), u64::try_from(high - pos).unwrap_or(0)))
            })
            .collect()
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.inner
            .assignment()
            .map(|tpl| tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect())
            .unwrap_or_default()
    }

    async fn close(mut self: Box<Self>) -> Result<(), BusError> {
        let r = self.commit().await;
        let c = self.inner.clone();
        drop(self);
        // Dropping the last handle closes the consumer: it leaves the group (librdkafka's
        // rd_kafka_consumer_close) so the others are rebalanced at once, not after a timeout.
        tokio::task::spawn_blocking(move || {
            c.unsubscribe();
            drop(c);
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?;
        r
    }
}
