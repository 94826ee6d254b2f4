//! The dead-letter topic: records a stage could not decode go there with the reason, so
//! nothing is dropped silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{BusError, OutRecord, Producer, Record};

/// Header names on dead letters.
pub const REASON: &str = "cw.reason";
pub const SOURCE_TOPIC: &str = "cw.source.topic";
pub const SOURCE_PARTITION: &str = "cw.source.partition";
pub const SOURCE_OFFSET: &str = "cw.source.offset";
pub const STAGE: &str = "cw.stage";

/// Sends undecodable records to the dead-letter topic with the reason in a header.
pub struct DeadLetter {
    producer: Arc<dyn Producer>,
    topic: String,
    stage: String,
    sent: AtomicU64,
}

impl DeadLetter {
    pub fn new(producer: Arc<dyn Producer>, topic: impl Into<String>, stage: impl Into<String>) -> Self {
        DeadLetter { producer, topic: topic.into(), stage: stage.into(), sent: AtomicU64::new(0) }
    }

    /// Publish `record` unchanged (same key and value, original headers kept) with the reason
    /// and where it came from. Resolves once the dead letter is acknowledged, so the caller may
    /// then commit the original.
    pub async fn send(&self, record: &Record, reason: &str) -> Result<(), BusError> {
        let mut out = OutRecord::new(self.topic.clone(), record.key.clone().unwrap_or_default(), record.value.clone());
        out.headers = record.headers.clone();
        out.headers.push((REASON.into(), reason.as_bytes().to_vec()));
        out.headers.push((SOURCE_TOPIC.into(), record.topic.as_bytes().to_vec()));
        out.headers.push((SOURCE_PARTITION.into(), record.partition.to_string().into_bytes()));
        out.headers.push((SOURCE_OFFSET.into(), record.offset.to_string().into_bytes()));
        out.headers.push((STAGE.into(), self.stage.as_bytes().to_vec()));
        self.producer.publish(out).await?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        // The key is the connection id (raw segments), the chain id (chains) or the agent key: the
        // id an operator searches for.
        let key = record.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, %key, reason, "dead-lettered");
        Ok(())
    }

    /// Dead letters sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}
