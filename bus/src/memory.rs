//! The in-memory bus of the embedded mode: Kafka's semantics in one process, bounded.
//!
//! - Topics have partitions; a key always lands on `partition_for(key)`, so per-key order holds.
//! - Consumer groups: each partition is owned by one member; members joining or leaving
//!   rebalance (partition p of each topic to the (p mod n)-th subscribed member, so topics keyed
//!   alike are co-partitioned; sticky positions for partitions a member keeps); a new owner resumes from the group's committed offset (at least once).
//! - Bounded: a partition keeps at most `max_records_per_partition` records and
//!   `max_bytes_per_partition` bytes. When a partition is full, records every group reading the
//!   topic has committed past are dropped; if none can be, publishers wait (back-pressure),
//!   and a publish that waited `publish_timeout_ms` fails with `BusError::Backpressure` (counted).
//!   A topic no group ever subscribed to keeps its records up to the bound, then pushes back.
//! - Unknown topics are created on first use with `partitions` partitions (like Kafka's
//!   auto.create.topics.enable).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chainwatch_config::MemoryBusConfig;
use tokio::sync::Notify;

use crate::partitioner::partition_for;
use crate::{Bus, BusError, Consumer, Delivered, Header, OutRecord, Pending, Producer, Record};

type TopicPartition = (String, i32);

/// Counters of the in-memory bus.
#[derive(Debug, Default)]
pub struct MemoryBusStats {
    pub published: AtomicU64,
    pub consumed: AtomicU64,
    /// Publishes that had to wait for space.
    pub backpressure_waits: AtomicU64,
    /// Publishes that gave up after `publish_timeout_ms`.
    pub backpressure_timeouts: AtomicU64,
    /// Marks for partitions the member no longer owned (their records go to the new owner).
    pub stale_marks: AtomicU64,
    pub rebalances: AtomicU64,
}

/// The in-memory bus. Clones share the same topics and groups.
#[derive(Clone)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: MemoryBusConfig,
    state: Mutex<State>,
    /// Woken on every change: records appended, offsets committed (space freed), rebalances.
    changed: Notify,
    next_member: AtomicU64,
    stats: MemoryBusStats,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    groups: HashMap<String, Group>,
}

struct Topic {
    partitions: Vec<PartitionLog>,
}

#[derive(Default)]
struct PartitionLog {
    records: VecDeque<Stored>,
    /// Offset of `records[0]`.
    base: i64,
    bytes: usize,
}

struct Stored {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<Header>,
    timestamp_ms: i64,
    size: usize,
}

#[derive(Default)]
struct Group {
    members: BTreeMap<u64, Vec<String>>,
    generation: u64,
    assignment: HashMap<u64, Vec<TopicPartition>>,
    committed: HashMap<TopicPartition, i64>,
}

impl State {
    fn topic_or_create(&mut self, name: &str, default_partitions: u32) -> &mut Topic {
        self.topics.entry(name.to_string()).or_insert_with(|| Topic {
            partitions: (0..default_partitions.max(1)).map(|_| PartitionLog::default()).collect(),
        })
    }

    fn rebalance(&mut self, group_name: &str) {
        let Some(group) = self.groups.get(group_name) else { return };
        let mut subscribed: Vec<&String> = group.members.values().flatten().collect();
        subscribed.sort();
        subscribed.dedup();
        let mut all: Vec<TopicPartition> = Vec::new();
        for t in subscribed {
            if let Some(topic) = self.topics.get(t) {
                all.extend((0..topic.partitions.len() as i32).map(|p| (t.clone(), p)));
            }
        }
        let Some(group) = self.groups.get_mut(group_name) else { return };
        let mut assignment: HashMap<u64, Vec<TopicPartition>> =
            group.members.keys().map(|m| (*m, Vec::new())).collect();
        // Per topic, partition p goes to the (p mod n)-th of the n members subscribed to it, in
        // member order: topics with the same partition count and the same subscribers are
        // co-partitioned (a member owns the same partition numbers of each), so a consumer of
        // several topics keyed alike sees every record of its keys (as Kafka's range assignor).
        for tp in all {
            let eligible: Vec<u64> =
                group.members.iter().filter(|(_, topics)| topics.contains(&tp.0)).map(|(m, _)| *m).collect();
            if eligible.is_empty() {
                continue;
            }
            let member = eligible[tp.1 as usize % eligible.len()];
            assignment.entry(member).or_default().push(tp);
        }
        group.assignment = assignment;
        group.generation += 1;
    }

    fn is_full(&self, tp: &TopicPartition, size: usize, cfg: &MemoryBusConfig) -> bool {
        self.topics.get(&tp.0).and_then(|t| t.partitions.get(tp.1 as usize)).is_some_and(|log| {
            !log.records.is_empty()
                && (log.records.len() >= cfg.max_records_per_partition || log.bytes + size > cfg.max_bytes_per_partition)
        })
    }

    /// Drop records every group that reads the topic has committed past. Done only when a
    /// partition is full, so a group that joins later still sees what the bound let us keep
    /// (like Kafka's retention).
    fn trim(&mut self, tp: &TopicPartition) {
        let mut low: Option<i64> = None;
        for g in self.groups.values() {
            if g.members.values().flatten().any(|t| t == &tp.0) || g.committed.keys().any(|k| k.0 == tp.0) {
                let c = g.committed.get(tp).copied().unwrap_or(i64::MIN);
                low = Some(low.map_or(c, |l| l.min(c)));
            }
        }
        let Some(low) = low else { return };
        let Some(log) = self.topics.get_mut(&tp.0).and_then(|t| t.partitions.get_mut(tp.1 as usize)) else { return };
        while log.base < low {
            match log.records.pop_front() {
                Some(r) => {
                    log.bytes -= r.size;
                    log.base += 1;
                }
                None => break,
            }
        }
    }
}

impl MemoryBus {
    pub fn new(cfg: MemoryBusConfig) -> Self {
        MemoryBus {
            shared: Arc::new(Shared {
                cfg,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                next_member: AtomicU64::new(1),
                stats: MemoryBusStats::default(),
            }),
        }
    }

    pub fn stats(&self) -> &MemoryBusStats {
        &self.shared.stats
    }

    /// Records currently kept in a partition (for tests of the bound).
    pub fn retained(&self, topic: &str, partition: i32) -> usize {
        let st = self.shared.lock();
        st.topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .map_or(0, |l| l.records.len())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a way that
        // matters more than stopping the bus would: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl Bus for MemoryBus {
    async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError> {
        if partitions < 1 {
            return Err(BusError::Topic { topic: name.into(), reason: "partitions must be at least 1".into() });
        }
        let mut st = self.shared.lock();
        st.topic_or_create(name, partitions as u32);
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, BusError> {
        let st = self.shared.lock();
        st.topics.get(topic).map(|t| t.partitions.len() as i32).ok_or_else(|| BusError::UnknownTopic(topic.into()))
    }

    fn producer(&self) -> Result<Arc<dyn Producer>, BusError> {
        Ok(Arc::new(MemoryProducer { shared: self.shared.clone() }))
    }

    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        let id = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = self.shared.lock();
            for t in topics {
                st.topic_or_create(t, self.shared.cfg.partitions);
            }
            let g = st.groups.entry(group.to_string()).or_default();
            g.members.insert(id, topics.iter().map(|t| t.to_string()).collect());
            st.rebalance(group);
        }
        self.shared.stats.rebalances.fetch_add(1, Ordering::Relaxed);
        self.shared.changed.notify_waiters();
        Ok(Box::new(MemoryConsumer {
            shared: self.shared.clone(),
            group: group.to_string(),
            id,
            generation: 0,
            assigned: Vec::new(),
            positions: HashMap::new(),
            marks: HashMap::new(),
            cursor: 0,
            left: false,
        }))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

struct MemoryProducer {
    shared: Arc<Shared>,
}

#[async_trait]
impl Producer for MemoryProducer {
    async fn send(&self, record: OutRecord) -> Result<Pending, BusError> {
        let cfg = &self.shared.cfg;
        let deadline = Instant::now() + Duration::from_millis(cfg.publish_timeout_ms);
        let size = record.key.len()
            + record.value.len()
            + record.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let mut record = Some(record);
        let mut waited = false;
        loop {
            let mut notified = pin!(self.shared.changed.notified());
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                let Some(r) = record.take() else { return Err(BusError::Closed) };
                let n = st.topic_or_create(&r.topic, cfg.partitions).partitions.len() as i32;
                let partition = partition_for(&r.key, n);
                let tp = (r.topic.clone(), partition);
                if st.is_full(&tp, size, cfg) {
                    st.trim(&tp);
                }
                let Some(log) = st.topics.get_mut(&r.topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
                    return Err(BusError::Other(format!("partition {partition} of {} missing", r.topic)));
                };
                let fits = log.records.is_empty()
                    || (log.records.len() < cfg.max_records_per_partition && log.bytes + size <= cfg.max_bytes_per_partition);
                if fits {
                    let offset = log.base + log.records.len() as i64;
                    log.bytes += size;
                    log.records.push_back(Stored {
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                        timestamp_ms: now_ms(),
                        size,
                    });
                    drop(st);
                    self.shared.stats.published.fetch_add(1, Ordering::Relaxed);
                    self.shared.changed.notify_waiters();
                    return Ok(Pending::ready(Ok(Delivered { partition, offset })));
                }
                record = Some(r);
            }
            if !waited {
                waited = true;
                self.shared.stats.backpressure_waits.fetch_add(1, Ordering::Relaxed);
            }
            let now = Instant::now();
            if now >= deadline || tokio::time::timeout(deadline - now, notified).await.is_err() {
                self.shared.stats.backpressure_timeouts.fetch_add(1, Ordering::Relaxed);
                let topic = record.map(|r| r.topic).unwrap_or_default();
                return Err(BusError::Backpressure { topic, waited_ms: cfg.publish_timeout_ms });
            }
        }
    }

    async fn flush(&self, _timeout: Duration) -> Result<(), BusError> {
        // Every publish is acknowledged when it returns.
        Ok(())
    }
}

struct MemoryConsumer {
    shared: Arc<Shared>,
    group: String,
    id: u64,
    generation: u64,
    assigned: Vec<TopicPartition>,
    positions: HashMap<TopicPartition, i64>,
    marks: HashMap<TopicPartition, i64>,
    cursor: usize,
    left: bool,
}

impl MemoryConsumer {
    /// Adopt the group's current assignment if it changed since we last looked.
    fn sync_generation(&mut self, st: &State) {
        let Some(g) = st.groups.get(&self.group) else { return };
        if g.generation == self.generation {
            return;
        }
        self.generation = g.generation;
        let new: Vec<TopicPartition> = g.assignment.get(&self.id).cloned().unwrap_or_default();
        let keep: HashSet<&TopicPartition> = new.iter().collect();
        let dropped = self.marks.keys().filter(|tp| !keep.contains(tp)).count();
        if dropped > 0 {
            self.shared.stats.stale_marks.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        self.marks.retain(|tp, _| keep.contains(tp));
        self.positions.retain(|tp, _| keep.contains(tp));
        for tp in &new {
            if !self.positions.contains_key(tp) {
                let base = st
                    .topics
                    .get(&tp.0)
                    .and_then(|t| t.partitions.get(tp.1 as usize))
                    .map_or(0, |l| l.base);
                let start = g.committed.get(tp).copied().unwrap_or(base).max(base);
                self.positions.insert(tp.clone(), start);
            }
        }
        self.assigned = new;
        self.cursor = 0;
    }

    fn next_record(&mut self, st: &State) -> Option<Record> {
        let n = self.assigned.len();
        for i in 0..n {
            let idx = (self.cursor + i) % n;
            let tp = &self.assigned[idx];
            let Some(log) = st.topics.get(&tp.0).and_then(|t| t.partitions.get(tp.1 as usize)) else { continue };
            let pos = self.positions.get(tp).copied().unwrap_or(log.base).max(log.base);
            let Some(stored) = log.records.get((pos - log.base) as usize) else { continue };
            let record = Record {
                topic: tp.0.clone(),
                partition: tp.1,
                offset: pos,
                key: Some(stored.key.clone()),
                value: stored.value.clone(),
                headers: stored.headers.clone(),
                timestamp_ms: stored.timestamp_ms,
            };
            self.positions.insert(tp.clone(), pos + 1);
            self.cursor = idx + 1;
            return Some(record);
        }
        None
    }

    fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        {
            let mut st = self.shared.lock();
            let empty = match st.groups.get_mut(&self.group) {
                Some(g) => {
                    g.members.remove(&self.id);
                    g.assignment.remove(&self.id);
                    g.members.is_empty()
                }
                None => false,
            };
            if !empty {
                st.rebalance(&self.group);
            } else if let Some(g) = st.groups.get_mut(&self.group) {
                g.generation += 1;
            }
        }
        self.shared.stats.rebalances.fetch_add(1, Ordering::Relaxed);
        self.shared.changed.notify_waiters();
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn poll(&mut self, timeout: Duration) -> Result<Option<Record>, BusError> {
        if self.left {
            return Err(BusError::Closed);
        }
        let deadline = Instant::now() + timeout;
        let shared = self.shared.clone();
        loop {
            let mut notified = pin!(shared.changed.notified());
            notified.as_mut().enable();
            {
                let st = shared.lock();
                self.sync_generation(&st);
                if let Some(r) = self.next_record(&st) {
                    drop(st);
                    self.shared.stats.consumed.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(r));
                }
            }
            let now = Instant::now();
            if now >= deadline || tokio::time::timeout(deadline - now, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    fn mark_processed(&mut self, record: &Record) -> Result<(), BusError> {
        let tp = (record.topic.clone(), record.partition);
        if self.assigned.contains(&tp) {
            let next = record.offset + 1;
            let e = self.marks.entry(tp).or_insert(next);
            *e = (*e).max(next);
        } else {
            self.shared.stats.stale_marks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        if self.marks.is_empty() {
            return Ok(());
        }
        {
            let shared = self.shared.clone();
            let mut st = shared.lock();
            let owned: HashSet<TopicPartition> = st
                .groups
                .get(&self.group)
                .and_then(|g| g.assignment.get(&self.id))
                .map(|a| a.iter().cloned().collect())
                .unwrap_or_default();
            let marks = std::mem::take(&mut self.marks);
            if let Some(g) = st.groups.get_mut(&self.group) {
                for (tp, off) in marks {
                    if owned.contains(&tp) {
                        g.committed.insert(tp, off);
                    } else {
                        self.shared.stats.stale_marks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.shared.changed.notify_waiters();
        Ok(())
    }

    fn lag(&self) -> Vec<(String, i32, u64)> {
        let st = self.shared.lock();
        self.assigned
            .iter()
            .filter_map(|tp| {
                let log = st.topics.get(&tp.0)?.partitions.get(tp.1 as usize)?;
                let end = log.base + log.records.len() as i64;
                let pos = self.positions.get(tp).copied().unwrap_or(log.base).max(log.base);
                Some((tp.0.clone(), tp.1, u64::try_from(end - pos).unwrap_or(0)))
            })
            .collect()
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        let st = self.shared.lock();
        st.groups
            .get(&self.group)
            .and_then(|g| g.assignment.get(&self.id))
            .cloned()
            .unwrap_or_default()
    }

    async fn close(mut self: Box<Self>) -> Result<(), BusError> {
        let committed = self.commit().await;
        self.leave();
        committed
    }
}

impl Drop for MemoryConsumer {
    /// A member that goes away without `close` (a crash) leaves the group without committing:
    /// its uncommitted records are delivered again to the next owner.
    fn drop(&mut self) {
        self.leave();
    }
}
