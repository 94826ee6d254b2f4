//! `ChainWorker`: a member of the chain-builder consumer group (`cw-chains`). Consumes
//! `cw.semantic.events` and `cw.proc.events` (Avro), feeds the `ChainBuilder`, and publishes
//! every chain upsert and closing to `cw.chains` keyed by chain id (a compacted topic: the last
//! version wins).
//!
//! Delivery contract:
//! - A record that cannot be decoded goes to the dead-letter topic with the reason.
//! - After `commit_every` records, `max_publish_delay` or an empty poll, the builder's upserts
//!   and closings are published and every acknowledgement is awaited.
//! - With a checkpoint directory, the input offsets are committed only right after a
//!   checkpoint of the builder's state that covers every record up to them was written (at
//!   most every `checkpoint_interval`, and at `close`): the state is exactly once. A restarted
//!   member loads the checkpoint of its assignment (group and partitions: `checkpoint_file`)
//!   at its first poll, skips the records the checkpoint already holds (a crash between the
//!   checkpoint and the commit replays them) and goes on with the same process tree and open
//!   chains: a still-open chain continues under its id, a long-running agent's new child is
//!   still its own. What was published after the checkpoint is published again with the same
//!   chain ids and versions (an idempotent upsert on the compacted topic).
//! - Without a checkpoint directory the offsets are committed after every publish (at least
//!   once) and a restarted member starts empty from the committed offsets: a chain open at the
//!   crash continues as a second chain.
//! - When no record comes, the watermark advances by the wall time elapsed since the last
//!   record (processing time stands in for event time), so idle chains close.
//!
//! Cross-member stitching (the stitch topic, `cw.chains.stitch`): the inputs are keyed by node,
//! so an agent's node and the node of a service it calls may belong to different members. Every
//! member reads the whole stitch topic in a consumer group of its own,
//! `<group>-stitch-<member_id>`, and skips its own records (keyed by member id). The member id
//! is `chain.member_id`, by default `<host>-<pid>` (two members on one host differ; a restart
//! then makes a new group, which reads the retained topic from its start: what is behind the
//! restored watermark is dropped, counted). The protocol:
//! - a served request (SERVER role, a non-loopback tuple) that no local client claimed by the
//!   end of its hold (its end + the allowed lateness) is published as a FRAGMENT: tuple key,
//!   origin member, the service's agent, the time window and the service's steps in it (the
//!   served exchange left out; fingerprints, role, tool calls kept for PII flows and
//!   attribution). The service's chain is held one more lateness waiting for a claim;
//! - the member whose client index holds that tuple merges the steps into the client's chain
//!   like a local stitch (stitched, depth + 1, `max_depth`) and publishes a CLAIM to the
//!   origin. A fragment that comes before its client exchange waits (bounded, expiring with the
//!   watermark, counted), and client exchanges wait two latenesses longer than alone;
//! - the origin, on the claim, drops the fragment's steps and the served exchange from the
//!   service's chains (a chain left empty is never published: one chain, no duplicate); with
//!   no claim by the end of the further hold, it publishes the service's chain as it would
//!   alone.
//!
//! It is on only when the stitch topic exists at the start (else a warning: it stays off;
//! `chainwatch chain` creates the topics first with `kafka.create_topics`, the default) and
//! while this member's assignment leaves input partitions to others (one member alone, and the
//! offline and embedded modes, work as before). Stitch records handled are
//! committed with the input offsets (after the checkpoint); a replay after a crash merges a
//! fragment twice at worst (its steps are deduplicated by event id). Claims and fragments
//! arriving after the further hold are counted (`remote_claims_unmatched`,
//! `remote_fragments_late`): the service's chain was published alone meanwhile.
//!
//! Limits: the checkpoint is found by the assignment. When the partitions move to another
//! member (a rebalance, a scaled group), no checkpoint matches and the member starts empty
//! (`checkpoints_missing`, a warning); run the chain builder with a stable assignment (a
//! StatefulSet with static group membership, or a fixed replica count) so a restarted member
//! gets its partitions back. A checkpoint whose offsets are behind the first replayed record
//! (someone else consumed in between) is counted in `checkpoint_gaps`. An assignment that
//! changes while running keeps the in-memory state, and later checkpoints are named after the
//! new assignment. Recreating the input topics (offsets start again at 0) needs the
//! checkpoint directory emptied, and the in-memory bus (whose offsets start again at every
//! start) must not use one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chainwatch_bus::{Bus, BusError, Consumer, DeadLetter, OutRecord, Pending, Producer, Record};
use chainwatch_config::ChainwatchConfig;
use chainwatch_schemas::codec::record_name;
use chainwatch_schemas::{AvroRecord, Chain, CodecError, ProcessEvent, SemanticEvent, StitchRecord};

use crate::builder::ChainBuilder;
use crate::chain_view::EncodedChain;
use crate::checkpoint_file::{CheckpointMeta, CheckpointStore};

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
    /// Where the builder's state is checkpointed; `None` = no checkpoint (commit after every
    /// publish; a restarted member starts empty).
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint, then commit, at most this often (and at `close`).
    pub checkpoint_interval: Duration,
    /// Cross-member stitching: the topic, `None` = off (see the module doc).
    pub stitch_topic: Option<String>,
    /// This member's name on the stitch topic (distinct per member; see the module doc).
    pub member_id: String,
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
            checkpoint_dir: (cfg.chain.checkpoint_interval_ms > 0).then(|| {
                cfg.chain.checkpoint_dir.clone().unwrap_or_else(|| cfg.storage.data_dir.join("chain-checkpoints"))
            }),
            checkpoint_interval: Duration::from_millis(cfg.chain.checkpoint_interval_ms),
            stitch_topic: Some(cfg.topics.chain_stitch.clone()),
            member_id: cfg.chain.member_id.clone().unwrap_or_else(default_member_id),
        }
    }
}

/// `<host name>-<process id>`: distinct for two members on one host. A configured
/// `chain.member_id` (e.g. the pod's name) keeps the stitch group and its offsets across restarts.
fn default_member_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "chain".to_string());
    format!("{host}-{}", std::process::id())
}

/// Stitch records handled per step at most (the input keeps its pace).
const MAX_STITCH_PER_STEP: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ChainWorkerError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("encoding a chain: {0}")]
    Encode(#[from] CodecError),
    #[error("{MAX_CHECKPOINT_FAILURES} checkpoints in a row not written (nothing is committed meanwhile): {0}")]
    Checkpoint(String),
}

/// Checkpoint write failures in a row after which the worker stops with an error rather than
/// go on without committing.
pub const MAX_CHECKPOINT_FAILURES: u32 = 3;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainWorkerStats {
    pub records: u64,
    pub semantic_events: u64,
    pub process_events: u64,
    pub chains_published: u64,
    pub dead_letters: u64,
    pub commits: u64,
    /// Checkpoints written, and the size (bytes) and write time (ms: encode + write + fsync)
    /// of the last one.
    pub checkpoints_written: u64,
    pub checkpoint_bytes: u64,
    pub checkpoint_write_ms: u64,
    /// Checkpoints that could not be written (the commit waits for the next one).
    pub checkpoint_errors: u64,
    /// A checkpoint of the assignment was loaded at start, in `checkpoint_restore_ms`.
    pub checkpoints_restored: u64,
    pub checkpoint_restore_ms: u64,
    /// No checkpoint of the assignment at start: started empty.
    pub checkpoints_missing: u64,
    /// A checkpoint refused at start (another format version, corrupt, another assignment).
    pub checkpoints_rejected: u64,
    /// Records replayed after a restart that the restored state already held: skipped.
    pub replayed_skipped: u64,
    /// Partitions whose first record after a restore came after the checkpoint's offset
    /// (someone else consumed in between: the restored state is older than the group's).
    pub checkpoint_gaps: u64,
    /// Assignment changes while running (a rebalance): the state is kept.
    pub assignment_changes: u64,
    /// Stitch records of other members handled, and this member's published.
    pub stitch_records_in: u64,
    pub stitch_records_out: u64,
}

/// One member of the chain-builder consumer group.
pub struct ChainWorker {
    consumer: Box<dyn Consumer>,
    producer: Arc<dyn Producer>,
    dead: DeadLetter,
    builder: ChainBuilder,
    cfg: ChainWorkerConfig,
    checkpoints: Option<CheckpointStore>,
    /// The sorted assignment the state is for; `None` until a poll shows a non-empty one.
    assignment: Option<Vec<(String, i32)>>,
    /// Per (topic, partition): the next offset the builder's state covers.
    applied: Vec<(String, i32, i64)>,
    /// Restored: per (topic, partition), records before this offset are in the state already.
    covered: Vec<(String, i32, i64)>,
    /// Per partition the last record handled and not yet marked (its value dropped); its
    /// output is published at the next flush, it is committed at the next commit.
    unmarked: Vec<Record>,
    /// Records handled since the last flush.
    since_flush: usize,
    last_checkpoint_at: Instant,
    /// Checkpoint write failures since the last success, and the last one's reason.
    checkpoint_failures: u32,
    last_checkpoint_error: String,
    last_record_at: Instant,
    last_flush_at: Instant,
    stats: ChainWorkerStats,
    /// Cross-member stitching: this member's consumer of the whole stitch topic, the last
    /// record per partition not yet committed, and the input partition count (`None`:
    /// unknown, assume other members).
    stitch: Option<Box<dyn Consumer>>,
    stitch_topic: Option<String>,
    stitch_unmarked: Vec<Record>,
    input_partitions: Option<usize>,
}

impl ChainWorker {
    pub async fn join(bus: &dyn Bus, builder: ChainBuilder, cfg: ChainWorkerConfig) -> Result<Self, ChainWorkerError> {
        let consumer = bus.consumer(&cfg.group, &[cfg.semantic_topic.as_str(), cfg.proc_topic.as_str()]).await?;
        let producer = bus.producer()?;
        let dead = DeadLetter::new(producer.clone(), cfg.deadletter_topic.clone(), "chain");
        let mut builder = builder;
        // Versions go to the bus Avro-encoded straight from the builder's state.
        builder.set_encoded_output(true);
        // A deployment without the stitch topic works as before (one member alone would).
        let stitch_topic = match &cfg.stitch_topic {
            Some(topic) if bus.partition_count(topic).await.is_err() => {
                tracing::warn!(topic = %topic, "no stitch topic: cross-member stitching is off");
                None
            }
            other => other.clone(),
        };
        let (stitch, input_partitions) = match &stitch_topic {
            Some(topic) => {
                builder.set_member(&cfg.member_id);
                let group = format!("{}-stitch-{}", cfg.group, cfg.member_id);
                let consumer = bus.consumer(&group, &[topic.as_str()]).await?;
                let mut total = Some(0usize);
                for t in [cfg.semantic_topic.as_str(), cfg.proc_topic.as_str()] {
                    total = match (total, bus.partition_count(t).await) {
                        (Some(n), Ok(p)) => Some(n + usize::try_from(p).unwrap_or(0)),
                        _ => None,
                    };
                }
                (Some(consumer), total)
            }
            None => (None, None),
        };
        Ok(ChainWorker {
            consumer,
            producer,
            dead,
            builder,
            checkpoints: cfg.checkpoint_dir.as_ref().map(CheckpointStore::new),
            cfg,
            assignment: None,
            applied: Vec::new(),
            covered: Vec::new(),
            unmarked: Vec::new(),
            since_flush: 0,
            last_checkpoint_at: Instant::now(),
            checkpoint_failures: 0,
            last_checkpoint_error: String::new(),
            last_record_at: Instant::now(),
            last_flush_at: Instant::now(),
            stats: ChainWorkerStats::default(),
            stitch,
            stitch_topic,
            stitch_unmarked: Vec::new(),
            input_partitions,
        })
    }

    /// The input partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer.assignment()
    }

    /// Cross-member stitching is on while other members own some of the input.
    fn refresh_remote_stitching(&mut self) {
        if self.stitch.is_none() {
            return;
        }
        let owned = self.consumer.assignment().len();
        let on = self.input_partitions.is_none_or(|total| owned < total);
        if on != self.builder.remote_stitching() {
            tracing::info!(owned, total = ?self.input_partitions, on, "cross-member stitching");
            self.builder.set_remote_stitching(on);
        }
    }

    /// Handle the other members' stitch records waiting now (at most MAX_STITCH_PER_STEP).
    async fn poll_stitch(&mut self) -> Result<(), ChainWorkerError> {
        let Some(consumer) = self.stitch.as_mut() else { return Ok(()) };
        for _ in 0..MAX_STITCH_PER_STEP {
            let Some(mut record) = consumer.poll(Duration::ZERO).await? else { break };
            let own = record.key.as_deref() == Some(self.cfg.member_id.as_bytes());
            if !own {
                match StitchRecord::decode(&record.value) {
                    Ok(rec) => {
                        self.stats.stitch_records_in += 1;
                        self.builder.push_stitch(rec);
                    }
                    Err(e) => {
                        self.dead.send(&record, &format!("bad StitchRecord: {e}")).await?;
                        self.stats.dead_letters += 1;
                    }
                }
            }
            record.value = Vec::new();
            record.headers = Vec::new();
            match self.stitch_unmarked.iter_mut().find(|r| r.partition == record.partition) {
                Some(r) if r.offset < record.offset => *r = record,
                Some(_) => {}
                None => self.stitch_unmarked.push(record),
            }
        }
        Ok(())
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
        let polled = self.consumer.poll(self.cfg.poll_timeout).await?;
        if self.assignment.is_none() {
            // The first assignment: the state is loaded before its first record is handled.
            self.adopt_assignment();
        }
        if self.since_flush == 0 {
            self.refresh_remote_stitching();
        }
        self.poll_stitch().await?;
        let Some(record) = polled else {
            let max = self.builder.max_event_ns();
            if max != i64::MIN {
                let idle = i64::try_from(self.last_record_at.elapsed().as_nanos()).unwrap_or(i64::MAX);
                let closed = self.builder.advance_watermark(max.saturating_add(idle));
                self.publish(&closed).await?;
            }
            self.flush(false).await?;
            return Ok(false);
        };
        self.last_record_at = Instant::now();
        if self.already_covered(&record) {
            self.stats.replayed_skipped += 1;
            self.remember(record);
        } else {
            self.handle(record).await?;
        }
        if self.since_flush >= self.cfg.commit_every || self.last_flush_at.elapsed() >= self.cfg.max_publish_delay {
            self.flush(false).await?;
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
        self.flush(false).await
    }

    /// Publish what was handled, checkpoint and commit it, then leave the group.
    pub async fn close(mut self) -> Result<(), ChainWorkerError> {
        self.flush(true).await?;
        self.producer.flush(Duration::from_secs(10)).await?;
        self.consumer.close().await?;
        if let Some(stitch) = self.stitch.take() {
            stitch.close().await?;
        }
        Ok(())
    }

    async fn handle(&mut self, record: Record) -> Result<(), ChainWorkerError> {
        self.stats.records += 1;
        match decode(&record.value) {
            Ok(Input::Semantic(mut ev)) => {
                self.stats.semantic_events += 1;
                self.builder.ingest_event_from(&mut ev);
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
        self.remember(record);
        Ok(())
    }

    /// Note `record` as in the state and to be committed (the last one per partition is kept,
    /// without its value).
    fn remember(&mut self, mut record: Record) {
        self.since_flush += 1;
        let next = record.offset + 1;
        match self.applied.iter_mut().find(|(t, p, _)| *p == record.partition && *t == record.topic) {
            Some(a) => a.2 = a.2.max(next),
            None => self.applied.push((record.topic.clone(), record.partition, next)),
        }
        record.value = Vec::new();
        record.headers = Vec::new();
        match self.unmarked.iter_mut().find(|r| r.partition == record.partition && r.topic == record.topic) {
            Some(r) if r.offset < record.offset => *r = record,
            Some(_) => {}
            None => self.unmarked.push(record),
        }
    }

    /// Whether a restored checkpoint already holds `record` (a replay after a crash between
    /// the checkpoint and the commit).
    fn already_covered(&mut self, record: &Record) -> bool {
        let Some(i) = self.covered.iter().position(|(t, p, _)| *p == record.partition && *t == record.topic) else {
            return false;
        };
        let next = self.covered[i].2;
        if record.offset < next {
            return true;
        }
        if record.offset > next {
            self.stats.checkpoint_gaps += 1;
            tracing::warn!(
                topic = %record.topic, partition = record.partition, checkpoint_offset = next, offset = record.offset,
                "the restored checkpoint is behind the group's committed offset: records between were handled elsewhere"
            );
        }
        self.covered.swap_remove(i);
        false
    }

    /// Take note of the consumer's assignment: the first non-empty one loads its checkpoint; a
    /// later change (a rebalance) keeps the state, and the next checkpoints take its name.
    fn adopt_assignment(&mut self) {
        let mut now = self.consumer.assignment();
        if now.is_empty() {
            return;
        }
        now.sort();
        match self.assignment.take() {
            // Only into a builder that has seen nothing yet (a record before its assignment
            // showed would otherwise be lost from the state).
            None if self.stats.records == 0 => self.restore(&now),
            None => {}
            Some(old) if old != now => {
                self.stats.assignment_changes += 1;
                tracing::warn!(
                    old = ?old, new = ?now,
                    "chain worker assignment changed: the state is kept, the old checkpoint removed"
                );
                if let Some(store) = &self.checkpoints {
                    let _ = std::fs::remove_file(store.path_for(&self.cfg.group, &old));
                }
                self.applied.retain(|(t, p, _)| now.iter().any(|(nt, np)| nt == t && np == p));
            }
            Some(_) => {}
        }
        self.assignment = Some(now);
    }

    /// Load the checkpoint of `assignment` into the (still empty) builder.
    fn restore(&mut self, assignment: &[(String, i32)]) {
        let Some(store) = &self.checkpoints else { return };
        let started = Instant::now();
        let path = store.path_for(&self.cfg.group, assignment);
        match store.read(&self.cfg.group, assignment) {
            Ok(None) => {
                self.stats.checkpoints_missing += 1;
                tracing::warn!(path = %path.display(), "no checkpoint of this assignment: the chain builder starts empty");
            }
            Ok(Some((meta, state))) => match self.builder.restore_state(&state) {
                Ok(()) => {
                    self.stats.checkpoints_restored += 1;
                    self.stats.checkpoint_restore_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    self.covered = meta.offsets.clone();
                    self.applied = meta.offsets;
                    tracing::info!(
                        path = %path.display(), open_chains = self.builder.open_chains(), ms = self.stats.checkpoint_restore_ms,
                        "chain builder state restored"
                    );
                }
                Err(e) => {
                    self.stats.checkpoints_rejected += 1;
                    tracing::warn!(path = %path.display(), error = %e, "checkpoint refused: the chain builder starts empty");
                }
            },
            Err(e) => {
                self.stats.checkpoints_rejected += 1;
                tracing::warn!(error = %e, "checkpoint refused: the chain builder starts empty");
            }
        }
    }

    /// Publish the builder's upserts and closings and await them; then, if a checkpoint is due
    /// (or `force`d) and written, or when there is no checkpoint directory, mark and commit.
    async fn flush(&mut self, force: bool) -> Result<(), ChainWorkerError> {
        self.last_flush_at = Instant::now();
        self.since_flush = 0;
        self.refresh_remote_stitching();
        let mut chains = self.builder.take_updates();
        chains.extend(self.builder.advance_watermark(i64::MIN));
        self.publish(&chains).await?;
        self.publish_stitch().await?;
        if self.unmarked.is_empty() && self.stitch_unmarked.is_empty() {
            return Ok(());
        }
        if self.checkpoints.is_some() {
            if !force && self.last_checkpoint_at.elapsed() < self.cfg.checkpoint_interval {
                return Ok(());
            }
            if !self.write_checkpoint() {
                if self.checkpoint_failures >= MAX_CHECKPOINT_FAILURES {
                    return Err(ChainWorkerError::Checkpoint(self.last_checkpoint_error.clone()));
                }
                return Ok(());
            }
        }
        if !self.unmarked.is_empty() {
            for r in std::mem::take(&mut self.unmarked) {
                self.consumer.mark_processed(&r)?;
            }
            self.consumer.commit().await?;
            self.stats.commits += 1;
        }
        if let Some(stitch) = self.stitch.as_mut()
            && !self.stitch_unmarked.is_empty()
        {
            for r in std::mem::take(&mut self.stitch_unmarked) {
                stitch.mark_processed(&r)?;
            }
            stitch.commit().await?;
        }
        Ok(())
    }

    /// Publish the builder's fragments and claims on the stitch topic, keyed by this member.
    async fn publish_stitch(&mut self) -> Result<(), ChainWorkerError> {
        let Some(topic) = &self.stitch_topic else { return Ok(()) };
        let records = self.builder.take_stitch_records();
        let mut pending: Vec<Pending> = Vec::with_capacity(records.len());
        for r in &records {
            pending.push(self.producer.send(OutRecord::new(topic.clone(), self.cfg.member_id.clone(), r.encode()?)).await?);
        }
        for p in pending {
            p.await?;
            self.stats.stitch_records_out += 1;
        }
        Ok(())
    }

    /// Write the checkpoint of the state (every handled record is in it, every output of it
    /// published). Returns whether it was written; a failure is counted and logged.
    fn write_checkpoint(&mut self) -> bool {
        self.adopt_assignment();
        let (Some(store), Some(assignment)) = (&self.checkpoints, &self.assignment) else { return false };
        let started = Instant::now();
        let written = self.builder.checkpoint().map_err(|e| e.to_string()).and_then(|state| {
            let meta = CheckpointMeta {
                group: self.cfg.group.clone(),
                assignment: assignment.clone(),
                offsets: self.applied.clone(),
                written_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            store.write(&meta, &state).map_err(|e| e.to_string())
        });
        self.last_checkpoint_at = Instant::now();
        match written {
            Ok(bytes) => {
                self.stats.checkpoints_written += 1;
                self.stats.checkpoint_bytes = bytes;
                self.stats.checkpoint_write_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.checkpoint_failures = 0;
                true
            }
            Err(e) => {
                self.stats.checkpoint_errors += 1;
                self.checkpoint_failures += 1;
                tracing::warn!(error = %e, "chain builder checkpoint not written: the commit waits for the next one");
                self.last_checkpoint_error = e;
                false
            }
        }
    }

    /// Publish the builder's versions: encoded by the builder (the worker's mode), plus any
    /// `chains` handed over as records.
    async fn publish(&mut self, chains: &[Chain]) -> Result<(), ChainWorkerError> {
        let mut versions = self.builder.take_encoded();
        for c in chains {
            versions.push(EncodedChain { chain_id: c.chain_id.clone(), version: c.version, bytes: c.encode()? });
        }
        let mut pending: Vec<Pending> = Vec::with_capacity(versions.len());
        for v in versions {
            let out = OutRecord::new(self.cfg.output_topic.clone(), v.chain_id, v.bytes)
                .with_header("cw.chain_version", v.version.to_string());
            pending.push(self.producer.send(out).await?);
        }
        let published = pending.len();
        let started = Instant::now();
        for p in pending {
            p.await?;
            self.stats.chains_published += 1;
        }
        if started.elapsed() > Duration::from_millis(500) && published > 0 {
            tracing::warn!(
                ms = started.elapsed().as_millis() as u64, chains = published,
                "chain upserts acknowledged slowly: the broker held the publish back"
            );
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
