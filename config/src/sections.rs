//! The configuration sections, one struct per stage; every field has a documented default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::load::{ConfigError, bad};

/// The whole configuration (chainwatch.toml).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChainwatchConfig {
    pub node: NodeConfig,
    pub bus: BusConfig,
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub probe: ProbeConfig,
    pub parser: ParserConfig,
    pub chain: ChainConfig,
    pub policy: PolicyConfig,
    pub storage: StorageConfig,
    pub sql: SqlConfig,
    pub metrics: MetricsConfig,
}

impl ChainwatchConfig {
    /// Checks that parse cannot express; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bus.memory.partitions == 0 {
            return Err(bad("bus.memory.partitions", "must be at least 1"));
        }
        if self.bus.memory.max_records_per_partition == 0 {
            return Err(bad("bus.memory.max_records_per_partition", "must be at least 1"));
        }
        if self.bus.kind == BusKind::Kafka && self.kafka.brokers.trim().is_empty() {
            return Err(bad("kafka.brokers", "must name at least one broker (host:port) when bus.kind = \"kafka\""));
        }
        if self.kafka.partitions < 1 {
            return Err(bad("kafka.partitions", "must be at least 1"));
        }
        if self.kafka.replication_factor < 1 {
            return Err(bad("kafka.replication_factor", "must be at least 1"));
        }
        if self.probe.chunk_bytes == 0 || self.probe.chunk_bytes > 16 * 1024 {
            return Err(bad("probe.chunk_bytes", "must be between 1 and 16384"));
        }
        if self.probe.per_call_cap_bytes < self.probe.chunk_bytes {
            return Err(bad("probe.per_call_cap_bytes", "must be at least probe.chunk_bytes"));
        }
        if self.chain.idle_gap_secs == 0 {
            return Err(bad("chain.idle_gap_secs", "must be at least 1"));
        }
        if !(self.policy.routine_sample_rate > 0.0 && self.policy.routine_sample_rate <= 1.0) {
            return Err(bad("policy.routine_sample_rate", "must be in (0, 1]"));
        }
        let webhook = &self.policy.webhook;
        if let Some(url) = &webhook.url
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            return Err(bad("policy.webhook.url", "must be an http:// or https:// URL"));
        }
        if webhook.timeout_ms == 0 {
            return Err(bad("policy.webhook.timeout_ms", "must be at least 1"));
        }
        if webhook.queue_capacity == 0 {
            return Err(bad("policy.webhook.queue_capacity", "must be at least 1"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id stamped on every record; empty = the host name.
    pub id: String,
}


impl NodeConfig {
    /// The configured id, or the host name, or "localhost".
    pub fn resolved_id(&self) -> String {
        if !self.id.is_empty() {
            return self.id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// All stages in one process on the in-memory bus (embedded mode, the default).
    #[default]
    Memory,
    /// Apache Kafka (or any Kafka-protocol broker) through librdkafka.
    Kafka,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    pub kind: BusKind,
    pub memory: MemoryBusConfig,
}

/// The in-memory bus: same semantics as Kafka (keyed partitions, groups), bounded.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryBusConfig {
    /// Partitions per topic.
    pub partitions: u32,
    /// Records kept per partition before publishers wait (back-pressure).
    pub max_records_per_partition: usize,
    /// Bytes kept per partition before publishers wait (back-pressure).
    pub max_bytes_per_partition: usize,
    /// How long a publisher waits for space before the publish fails (counted).
    pub publish_timeout_ms: u64,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        MemoryBusConfig {
            partitions: 8,
            max_records_per_partition: 65_536,
            max_bytes_per_partition: 64 * 1024 * 1024,
            publish_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AssignmentStrategy {
    Range,
    Roundrobin,
    #[default]
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// librdkafka's name for `partition.assignment.strategy`.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::Roundrobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }
}

/// Kafka through librdkafka. TLS and SASL settings pass through; any other librdkafka property
/// can be set in `[kafka.properties]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// bootstrap.servers: comma-separated host:port.
    pub brokers: String,
    pub client_id: String,
    /// Partitions for topics chainwatch creates (bounds the useful number of parser workers).
    pub partitions: i32,
    pub replication_factor: i32,
    /// Create missing topics at start.
    pub create_topics: bool,
    pub assignment_strategy: AssignmentStrategy,
    pub session_timeout_ms: u32,
    pub heartbeat_interval_ms: u32,
    /// How long the producer may wait for the broker's acknowledgement.
    pub message_timeout_ms: u32,
    /// plaintext, ssl, sasl_plaintext, sasl_ssl.
    pub security_protocol: String,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    pub ssl_ca_location: Option<String>,
    pub ssl_certificate_location: Option<String>,
    pub ssl_key_location: Option<String>,
    pub ssl_key_password: Option<String>,
    /// Any librdkafka property, passed through as is (applied last).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            client_id: "chainwatch".into(),
            partitions: 12,
            replication_factor: 1,
            create_topics: true,
            assignment_strategy: AssignmentStrategy::default(),
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 1_000,
            message_timeout_ms: 30_000,
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The librdkafka client properties these settings stand for (security included).
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("bootstrap.servers".to_string(), self.brokers.clone()),
            ("client.id".to_string(), self.client_id.clone()),
            ("security.protocol".to_string(), self.security_protocol.clone()),
        ];
        let optional = [
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
            ("ssl.certificate.location", &self.ssl_certificate_location),
            ("ssl.key.location", &self.ssl_key_location),
            ("ssl.key.password", &self.ssl_key_password),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                p.push((k.to_string(), v.clone()));
            }
        }
        p
    }
}

/// Topic names (the defaults are the contract in schemas::topics).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    pub raw_segments: String,
    pub proc_events: String,
    pub semantic_events: String,
    pub chains: String,
    pub violations: String,
    pub deadletter: String,
    /// Internal to the chain builder: fragments and claims between its members.
    pub chain_stitch: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            raw_segments: "cw.raw.segments".into(),
            proc_events: "cw.proc.events".into(),
            semantic_events: "cw.semantic.events".into(),
            chains: "cw.chains".into(),
            violations: "cw.violations".into(),
            deadletter: "cw.deadletter".into(),
            chain_stitch: "cw.chains.stitch".into(),
        }
    }
}

impl TopicsConfig {
    pub fn all(&self) -> [&str; 7] {
        [
            &self.raw_segments,
            &self.proc_events,
            &self.semantic_events,
            &self.chains,
            &self.violations,
            &self.deadletter,
            &self.chain_stitch,
        ]
    }
}

/// The probe (layer 1): what to watch and how much to capture.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Watch every process on the host (expensive; selectors are better).
    pub watch_all: bool,
    /// comm patterns (glob) to watch, with their descendants.
    pub watch_comm: Vec<String>,
    /// Executable path patterns (glob) to watch, with their descendants.
    pub watch_exe: Vec<String>,
    /// cgroup v2 paths to watch.
    pub watch_cgroups: Vec<String>,
    /// Kubernetes pod uids to watch.
    pub watch_pods: Vec<String>,
    /// Only these remote or local ports (empty = all).
    pub watch_ports: Vec<u16>,
    /// Payload chunk size in the ring buffer (at most 16 KiB).
    pub chunk_bytes: usize,
    /// Bytes captured per syscall or SSL call; the rest becomes a GAP record.
    pub per_call_cap_bytes: usize,
    /// Ring buffer size in bytes (a power of two).
    pub ring_buffer_bytes: usize,
    /// Attach TLS uprobes system-wide instead of to watched processes only.
    pub tls_system_wide: bool,
    /// How the socket calls are hooked: "libc" (uprobes on libc's wrappers in watched processes
    /// only; unwatched processes pay nothing; misses raw syscalls: static binaries, Go,
    /// io_uring), "tracepoints" (syscall tracepoints: every call whatever the program is built
    /// with, but every task on the host pays the traced syscall path) or "auto" (tracepoints
    /// with watch_all, libc otherwise).
    pub syscall_hooks: SyscallHooks,
    /// Events waiting for the bus before the probe counts and drops them.
    pub max_pending_events: usize,
    /// Per-process uprobes as perf events on named tracefs uprobe events (detached at once);
    /// false, or no writable tracefs: one kernel uprobe each (~9 detached a second).
    pub uprobe_events: bool,
    /// Without `uprobe_events`: uprobe links of exited processes waiting to be closed past
    /// which a newly watched process gets no uprobes until the backlog drains (counted as the
    /// loss `uprobes_deferred`); 0 = a quarter of the open-file limit, at most 32,768.
    pub max_detach_backlog: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            watch_all: false,
            watch_comm: vec![],
            watch_exe: vec![],
            watch_cgroups: vec![],
            watch_pods: vec![],
            watch_ports: vec![],
            chunk_bytes: 16 * 1024,
            per_call_cap_bytes: 256 * 1024,
            ring_buffer_bytes: 16 * 1024 * 1024,
            tls_system_wide: false,
            syscall_hooks: SyscallHooks::Auto,
            max_pending_events: 65_536,
            uprobe_events: true,
            max_detach_backlog: 0,
        }
    }
}

/// `probe.syscall_hooks`: how the probe hooks the socket calls.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyscallHooks {
    /// "tracepoints" with watch_all, "libc" otherwise.
    #[default]
    Auto,
    /// Per-process uprobes on libc's socket-call wrappers.
    Libc,
    /// The global syscall tracepoints.
    Tracepoints,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContentCapture {
    /// No message content is published.
    Off,
    /// Content with PII and secrets masked.
    #[default]
    Redacted,
    /// Content as sent (explicit opt-in).
    Full,
}

/// Parser workers (layer 2).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ParserConfig {
    pub group: String,
    /// Buffered bytes per connection and direction before the FSM drops and resynchronises.
    pub max_buffer_bytes: usize,
    /// Body bytes kept per message for the semantics layer.
    pub max_body_bytes: usize,
    /// Open connections per worker; the least recently used is evicted beyond this.
    pub max_connections: usize,
    /// A connection with no bytes for this long is evicted.
    pub idle_timeout_secs: u64,
    pub content_capture: ContentCapture,
    /// Key for PII fingerprints (HMAC-SHA256); set it per deployment, e.g. from a secret.
    pub fingerprint_key: String,
    /// Extra protobuf descriptor sets (.binpb) for gRPC decoding.
    pub descriptor_sets: Vec<PathBuf>,
    /// Commit offsets after this many records (and on idle).
    pub commit_every: usize,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            group: "cw-parsers".into(),
            max_buffer_bytes: 4 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            max_connections: 65_536,
            idle_timeout_secs: 300,
            content_capture: ContentCapture::default(),
            fingerprint_key: String::new(),
            descriptor_sets: vec![],
            commit_every: 1_000,
        }
    }
}

/// Chain builder (layer 3).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    pub group: String,
    /// A chain closes when no event arrives for this long (event time, past the watermark).
    pub idle_gap_secs: u64,
    /// How late an event may arrive and still join its chain.
    pub allowed_lateness_secs: u64,
    pub max_steps: usize,
    pub max_depth: usize,
    pub max_open_chains: usize,
    /// Price per million tokens, per model: `[chain.prices."gpt-4o"] input = 2.5, output = 10.0`.
    pub prices: BTreeMap<String, ModelPrice>,
    /// The label (Kubernetes namespace by default) that names an agent's team.
    pub team_label: String,
    /// Where a chain worker keeps the checkpoint of its state (one file per consumer group and
    /// assigned partitions); unset = `<storage.data_dir>/chain-checkpoints`.
    pub checkpoint_dir: Option<PathBuf>,
    /// How often a chain worker checkpoints its state and then commits its input offsets, ms;
    /// 0 = no checkpoint (a restarted worker starts empty from the committed offsets).
    pub checkpoint_interval_ms: u64,
    /// This chain worker's name in its group for cross-member stitching (its records on the
    /// stitch topic, its own consumer group `<group>-stitch-<member_id>` there); unset =
    /// `<host name>-<pid>`. Must differ between members; a stable one (the pod's name) keeps
    /// the stitch group's offsets across restarts.
    pub member_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            group: "cw-chains".into(),
            idle_gap_secs: 60,
            allowed_lateness_secs: 10,
            max_steps: 1_000,
            max_depth: 16,
            max_open_chains: 100_000,
            prices: BTreeMap::new(),
            team_label: "namespace".into(),
            checkpoint_dir: None,
            checkpoint_interval_ms: 1_000,
            member_id: None,
        }
    }
}

/// Policy engine (layers 4 and 5).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub group: String,
    /// Directory of policy files; the built-in pack is used when empty.
    pub policies_dir: Option<PathBuf>,
    /// Reference tables: allowed_destinations, agent_profiles (CSV or TOML).
    pub reference_dir: Option<PathBuf>,
    /// Chains evaluated together in one micro-batch.
    pub batch_size: usize,
    pub batch_interval_ms: u64,
    /// Optional webhook that receives every violation's OCSF JSON.
    pub webhook: WebhookConfig,
    /// Share of routine chains stored in full (1 in 100 by default).
    pub routine_sample_rate: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            group: "cw-policy".into(),
            policies_dir: None,
            reference_dir: None,
            batch_size: 1_000,
            batch_interval_ms: 500,
            webhook: WebhookConfig::default(),
            routine_sample_rate: 0.01,
        }
    }
}

/// The violation webhook: an HTTP POST of each violation's OCSF JSON, off the bus path.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL the violations are POSTed to (http:// or https://); unset = no webhook.
    pub url: Option<String>,
    /// PEM file of a CA to trust for an https:// URL, besides the system's; unset = system only.
    pub ca_file: Option<std::path::PathBuf>,
    /// Bearer token sent as `Authorization: Bearer ...` (better from the environment).
    pub bearer_token: Option<String>,
    /// Timeout of one POST, ms.
    pub timeout_ms: u64,
    /// Violations waiting to be posted; when full, new ones are dropped and counted.
    pub queue_capacity: usize,
    /// Retries of a POST after a 5xx answer or a connection error (4xx is never retried).
    pub max_retries: u32,
    /// Wait before the first retry, ms; doubled for each further retry.
    pub retry_backoff_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            ca_file: None,
            bearer_token: None,
            timeout_ms: 5_000,
            queue_capacity: 10_000,
            max_retries: 5,
            retry_backoff_ms: 500,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Chain tables and violations (Parquet, partitioned by day) for `chainwatch sql`.
    pub data_dir: PathBuf,
    /// How often a long-running writer (`chainwatch run`) merges the part files of closed
    /// (earlier) days, in seconds; 0 = never.
    pub compaction_interval_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: PathBuf::from("chainwatch-data"), compaction_interval_secs: 3_600 }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// HTTP endpoint for SQL (dashboards); empty = off.
    pub http_listen: Option<String>,
    /// Bearer token the HTTP endpoint requires.
    pub bearer_token: Option<String>,
}


#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// OTLP endpoint for chainwatch's own metrics and chain traces; empty = off.
    pub otlp_endpoint: Option<String>,
    /// Prometheus scrape endpoint, e.g. "0.0.0.0:9464"; empty = off.
    pub prometheus_listen: Option<String>,
}

