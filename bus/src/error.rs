//! Errors of the bus.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
    #[error("publish to {topic} timed out after {waited_ms} ms waiting for space (back-pressure)")]
    Backpressure { topic: String, waited_ms: u64 },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka configuration: {0}")]
    KafkaConfig(String),
    #[error("the bus is closed")]
    Closed,
    #[error("{0}")]
    Other(String),
}
