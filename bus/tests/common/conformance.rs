//! The bus conformance suite: the same cases run against the in-memory bus, librdkafka's mock
//! cluster and the real tansu broker. A bus implementation is correct when all of them pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chainwatch_bus::partitioner::partition_for;
use chainwatch_bus::{Bus, Consumer, DeadLetter, OutRecord, Pending, Record};

pub struct Suite {
    pub bus: Arc<dyn Bus>,
    /// Unique per run, so cases never share topics or groups.
    pub prefix: String,
    /// How long group membership may take to settle (Kafka rebalances take seconds).
    pub settle: Duration,
}

impl Suite {
    pub fn new(bus: Arc<dyn Bus>, settle: Duration) -> Suite {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Suite { prefix: format!("conf-{}-{nanos}", bus.kind()), bus, settle }
    }

    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// Every case, in turn; panics (fails the test) naming the case that broke.
    pub async fn run_all(&self) {
        let t = Instant::now();
        self.roundtrip_keeps_key_value_headers().await;
        self.keyed_partitioning_matches_java().await;
        self.per_key_order().await;
        self.committed_offsets_survive_a_restart().await;
        self.lag_counts_what_is_not_yet_consumed().await;
        self.uncommitted_records_are_delivered_again().await;
        self.groups_are_independent().await;
        self.group_members_split_partitions().await;
        self.dead_letters_carry_the_reason().await;
        println!("conformance on {}: all cases passed in {:.1?}", self.bus.kind(), t.elapsed());
    }

    async fn publish_all(&self, records: Vec<OutRecord>) -> Vec<chainwatch_bus::Delivered> {
        let producer = self.bus.producer().expect("producer");
        let mut pending: Vec<Pending> = Vec::with_capacity(records.len());
        for r in records {
            pending.push(producer.send(r).await.expect("send"));
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(p.await.expect("acknowledged"));
        }
        out
    }

    /// Poll until `n` records arrived (panics after `settle` + 30 s).
    async fn take(&self, c: &mut Box<dyn Consumer>, n: usize, what: &str) -> Vec<Record> {
        let deadline = Instant::now() + self.settle + Duration::from_secs(30);
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            assert!(Instant::now() < deadline, "{what}: got {} of {n} records before the deadline", got.len());
            if let Some(r) = c.poll(Duration::from_millis(200)).await.expect("poll") {
                got.push(r);
            }
        }
        got
    }

    /// Poll for `quiet`; panics if anything arrives.
    async fn expect_nothing(&self, c: &mut Box<dyn Consumer>, quiet: Duration, what: &str) {
        let deadline = Instant::now() + quiet;
        while Instant::now() < deadline {
            if let Some(r) = c.poll(Duration::from_millis(200)).await.expect("poll") {
                panic!("{what}: unexpected record at {}:{} offset {}", r.topic, r.partition, r.offset);
            }
        }
    }

    pub async fn roundtrip_keeps_key_value_headers(&self) {
        let topic = self.name("roundtrip");
        self.bus.create_topic(&topic, 3).await.expect("create topic");
        assert_eq!(self.bus.partition_count(&topic).await.expect("partition count"), 3);
        let rec = OutRecord::new(&topic, b"conn-1".to_vec(), vec![0u8, 1, 2, 255])
            .with_header("cw.reason", b"none".to_vec())
            .with_header("empty", Vec::new());
        let d = self.publish_all(vec![rec.clone()]).await;
        assert_eq!(d[0].partition, partition_for(b"conn-1", 3));
        let mut c = self.bus.consumer(&self.name("roundtrip-g"), &[&topic]).await.expect("consumer");
        let got = self.take(&mut c, 1, "roundtrip").await;
        let r = &got[0];
        assert_eq!(r.topic, topic);
        assert_eq!(r.key.as_deref(), Some(&b"conn-1"[..]));
        assert_eq!(r.value, rec.value);
        assert_eq!(r.header("cw.reason"), Some(&b"none"[..]));
        assert_eq!(r.header("empty"), Some(&b""[..]));
        assert_eq!((r.partition, r.offset), (d[0].partition, d[0].offset));
        assert!(r.timestamp_ms > 0);
        c.close().await.expect("close");
    }

    pub async fn keyed_partitioning_matches_java(&self) {
        let topic = self.name("partitioning");
        self.bus.create_topic(&topic, 7).await.expect("create topic");
        let records: Vec<_> = (0..200).map(|i| OutRecord::new(&topic, format!("node-a/{i}/5/99"), vec![1u8])).collect();
        let keys: Vec<Vec<u8>> = records.iter().map(|r| r.key.clone()).collect();
        let delivered = self.publish_all(records).await;
        for (k, d) in keys.iter().zip(&delivered) {
            assert_eq!(d.partition, partition_for(k, 7), "key {}", String::from_utf8_lossy(k));
        }
    }

    pub async fn per_key_order(&self) {
        let topic = self.name("order");
        self.bus.create_topic(&topic, 4).await.expect("create topic");
        let records: Vec<_> =
            (0..2_000u32).map(|i| OutRecord::new(&topic, format!("k{}", i % 37), (i / 37).to_be_bytes().to_vec())).collect();
        self.publish_all(records).await;
        let mut c = self.bus.consumer(&self.name("order-g"), &[&topic]).await.expect("consumer");
        let got = self.take(&mut c, 2_000, "per-key order").await;
        let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
        for r in &got {
            let seq = u32::from_be_bytes(r.value[..4].try_into().expect("4 bytes")) as i64;
            let prev = last.insert(r.key.clone().unwrap_or_default(), seq).unwrap_or(-1);
            assert_eq!(seq, prev + 1, "key {:?} out of order", r.key);
        }
        c.close().await.expect("close");
    }

    pub async fn committed_offsets_survive_a_restart(&self) {
        let topic = self.name("commit");
        let group = self.name("commit-g");
        self.bus.create_topic(&topic, 2).await.expect("create topic");
        let records: Vec<_> = (0..100u32).map(|i| OutRecord::new(&topic, format!("k{}", i % 5), i.to_be_bytes().to_vec())).collect();
        self.publish_all(records).await;
        let mut c = self.bus.consumer(&group, &[&topic]).await.expect("consumer");
        let first = self.take(&mut c, 60, "first member").await;
        for r in &first {
            c.mark_processed(r).expect("mark");
        }
        c.commit().await.expect("commit");
        c.close().await.expect("close");
        // A new member of the same group starts after what was committed.
        let mut c = self.bus.consumer(&group, &[&topic]).await.expect("consumer");
        let rest = self.take(&mut c, 40, "after restart").await;
        let seen: BTreeSet<Vec<u8>> = first.iter().chain(&rest).map(|r| r.value.clone()).collect();
        assert_eq!(seen.len(), 100, "every record exactly once across the restart");
        self.expect_nothing(&mut c, Duration::from_secs(1), "after restart").await;
        c.close().await.expect("close");
    }

    pub async fn lag_counts_what_is_not_yet_consumed(&self) {
        let topic = self.name("lag");
        let group = self.name("lag-g");
        self.bus.create_topic(&topic, 2).await.expect("create topic");
        let records: Vec<_> = (0..100u32).map(|i| OutRecord::new(&topic, format!("k{}", i % 5), i.to_be_bytes().to_vec())).collect();
        self.publish_all(records).await;
        let mut c = self.bus.consumer(&group, &[&topic]).await.expect("consumer");
        self.take(&mut c, 60, "lag").await;
        // Kafka reports what its last fetches saw: a partition not fetched yet has no entry,
        // so mid-way the sum is at most what is left (the memory bus knows it exactly).
        let lag = c.lag();
        assert!(!lag.is_empty() && lag.iter().all(|(t, _, _)| t == &topic), "{lag:?}");
        assert!(lag.iter().map(|(_, _, n)| n).sum::<u64>() <= 40, "100 published, 60 consumed: {lag:?}");
        self.take(&mut c, 40, "lag, the rest").await;
        let lag = c.lag();
        assert_eq!(lag.len(), 2, "one entry per owned partition once both were fetched: {lag:?}");
        assert!(lag.iter().all(|(_, _, n)| *n == 0), "everything consumed: {lag:?}");
        c.close().await.expect("close");
    }

    pub async fn uncommitted_records_are_delivered_again(&self) {
        let topic = self.name("redeliver");
        let group = self.name("redeliver-g");
        self.bus.create_topic(&topic, 1).await.expect("create topic");
        let records: Vec<_> = (0..20u32).map(|i| OutRecord::new(&topic, b"k".to_vec(), i.to_be_bytes().to_vec())).collect();
        self.publish_all(records).await;
        let mut c = self.bus.consumer(&group, &[&topic]).await.expect("consumer");
        let got = self.take(&mut c, 20, "first member").await;
        for r in &got[..5] {
            c.mark_processed(r).expect("mark");
        }
        c.commit().await.expect("commit");
        // Processed 20, committed 5, then crashed (dropped without close).
        drop(c);
        let mut c = self.bus.consumer(&group, &[&topic]).await.expect("consumer");
        let again = self.take(&mut c, 15, "after crash").await;
        assert_eq!(again[0].offset, got[5].offset, "resumes right after the committed offset");
        assert_eq!(again.last().map(|r| r.offset), got.last().map(|r| r.offset));
        c.close().await.expect("close");
    }

    pub async fn groups_are_independent(&self) {
        let topic = self.name("groups");
        self.bus.create_topic(&topic, 2).await.expect("create topic");
        let records: Vec<_> = (0..50u32).map(|i| OutRecord::new(&topic, format!("k{i}"), i.to_be_bytes().to_vec())).collect();
        self.publish_all(records).await;
        for g in ["a", "b"] {
            let mut c = self.bus.consumer(&self.name(&format!("groups-{g}")), &[&topic]).await.expect("consumer");
            let got = self.take(&mut c, 50, "each group gets everything").await;
            let mut c2 = c;
            for r in &got {
                c2.mark_processed(r).expect("mark");
            }
            c2.close().await.expect("close");
        }
    }

    pub async fn group_members_split_partitions(&self) {
        let topic = self.name("split");
        let group = self.name("split-g");
        self.bus.create_topic(&topic, 4).await.expect("create topic");
        let run = GroupRun::start(self.bus.clone(), &group, &topic, 2).await;
        run.wait_for_assignment(4, self.settle + Duration::from_secs(30)).await;
        let records: Vec<_> = (0..400u32).map(|i| OutRecord::new(&topic, format!("k{i}"), i.to_be_bytes().to_vec())).collect();
        self.publish_all(records).await;
        run.wait_for_processed(400, self.settle + Duration::from_secs(30)).await;
        let per_member = run.partitions_per_member();
        assert_eq!(per_member.len(), 2, "both members got records: {per_member:?}");
        let all: Vec<i32> = per_member.values().flatten().copied().collect();
        let distinct: BTreeSet<i32> = all.iter().copied().collect();
        assert_eq!(all.len(), distinct.len(), "a partition went to two members: {per_member:?}");
        assert_eq!(distinct.len(), 4);
        run.stop_all().await;
    }

    pub async fn dead_letters_carry_the_reason(&self) {
        let input = self.name("dl-in");
        let dlq = self.name("dl");
        self.bus.create_topic(&input, 1).await.expect("create topic");
        self.bus.create_topic(&dlq, 1).await.expect("create topic");
        self.publish_all(vec![OutRecord::new(&input, b"conn-9".to_vec(), b"not avro".to_vec())]).await;
        let mut c = self.bus.consumer(&self.name("dl-g"), &[&input]).await.expect("consumer");
        let bad = self.take(&mut c, 1, "input").await.remove(0);
        let dl = DeadLetter::new(self.bus.producer().expect("producer"), &dlq, "parser");
        dl.send(&bad, "bad magic 6e6f: not an Avro single-object record").await.expect("dead letter");
        c.mark_processed(&bad).expect("mark");
        c.close().await.expect("close");
        let mut d = self.bus.consumer(&self.name("dl-reader"), &[&dlq]).await.expect("consumer");
        let got = self.take(&mut d, 1, "dead letter").await.remove(0);
        assert_eq!(got.value, b"not avro");
        assert_eq!(got.key.as_deref(), Some(&b"conn-9"[..]));
        assert_eq!(got.header("cw.reason"), Some(&b"bad magic 6e6f: not an Avro single-object record"[..]));
        assert_eq!(got.header("cw.source.topic"), Some(input.as_bytes()));
        assert_eq!(got.header("cw.stage"), Some(&b"parser"[..]));
        assert_eq!(dl.sent(), 1);
        d.close().await.expect("close");
    }
}

/// How a member of a `GroupRun` is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `close()`: commit what was marked, leave the group.
    Close,
    /// Dropped without committing (a crash): its uncommitted records are delivered again.
    Crash,
}

/// Per-key sequence check shared by all members, in processing order: a record may repeat an
/// earlier one (redelivery) but never skip ahead (loss or reordering).
#[derive(Default)]
pub struct OrderCheck {
    max_seen: HashMap<u32, i64>,
    pub processed: u64,
    pub redelivered: u64,
    pub violations: Vec<String>,
}

impl OrderCheck {
    fn observe(&mut self, key: u32, seq: i64, member: usize) {
        self.processed += 1;
        let max = self.max_seen.entry(key).or_insert(-1);
        if seq <= *max {
            self.redelivered += 1;
        } else if seq == *max + 1 {
            *max = seq;
        } else if self.violations.len() < 20 {
            self.violations.push(format!("key {key}: seq {seq} after {} (member {member})", *max));
            *max = seq;
        }
    }

    /// Keys whose last sequence number was not reached.
    pub fn incomplete(&self, keys: u32, per_key: i64) -> Vec<u32> {
        (0..keys).filter(|k| self.max_seen.get(k).copied().unwrap_or(-1) < per_key - 1).collect()
    }
}

/// Members of one group consuming in background tasks, each committing every `commit_every`
/// records and when idle. Values are `key:u32 BE, seq:u32 BE`.
pub struct GroupRun {
    members: Vec<Option<(Arc<AtomicBool>, tokio::task::JoinHandle<Box<dyn Consumer>>)>>,
    pub order: Arc<Mutex<OrderCheck>>,
    assignments: Arc<Mutex<HashMap<usize, Vec<(String, i32)>>>>,
    partitions_seen: Arc<Mutex<HashMap<usize, BTreeSet<i32>>>>,
    pub processed: Arc<AtomicU64>,
}

impl GroupRun {
    pub async fn start(bus: Arc<dyn Bus>, group: &str, topic: &str, n: usize) -> GroupRun {
        let mut run = GroupRun {
            members: Vec::new(),
            order: Arc::default(),
            assignments: Arc::default(),
            partitions_seen: Arc::default(),
            processed: Arc::default(),
        };
        for i in 0..n {
            let c = bus.consumer(group, &[topic]).await.expect("consumer");
            run.members.push(Some(run.spawn_member(i, c)));
        }
        run
    }

    fn spawn_member(
        &self,
        idx: usize,
        mut c: Box<dyn Consumer>,
    ) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Box<dyn Consumer>>) {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, order, assignments, seen, processed) = (
            stop.clone(),
            self.order.clone(),
            self.assignments.clone(),
            self.partitions_seen.clone(),
            self.processed.clone(),
        );
        let handle = tokio::spawn(async move {
            let mut since_commit = 0usize;
            while !stop2.load(Ordering::Acquire) {
                let polled = c.poll(Duration::from_millis(100)).await.expect("poll");
                assignments.lock().unwrap_or_else(|e| e.into_inner()).insert(idx, c.assignment());
                let Some(r) = polled else {
                    if since_commit > 0 {
                        c.commit().await.expect("commit");
                        since_commit = 0;
                    }
                    continue;
                };
                if stop2.load(Ordering::Acquire) {
                    // Stopped between poll and processing: not processed, not marked.
                    break;
                }
                if r.value.len() >= 8 {
                    let key = u32::from_be_bytes([r.value[0], r.value[1], r.value[2], r.value[3]]);
                    let seq = u32::from_be_bytes([r.value[4], r.value[5], r.value[6], r.value[7]]) as i64;
                    order.lock().unwrap_or_else(|e| e.into_inner()).observe(key, seq, idx);
                }
                seen.lock().unwrap_or_else(|e| e.into_inner()).entry(idx).or_default().insert(r.partition);
                processed.fetch_add(1, Ordering::Relaxed);
                c.mark_processed(&r).expect("mark");
                since_commit += 1;
                if since_commit >= 500 {
                    c.commit().await.expect("commit");
                    since_commit = 0;
                }
            }
            c
        });
        (stop, handle)
    }

    /// Wait until the live members together own `partitions` distinct partitions, each once.
    pub async fn wait_for_assignment(&self, partitions: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let live: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].is_some()).collect();
            let a = self.assignments.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let owned: Vec<(String, i32)> = live.iter().flat_map(|i| a.get(i).cloned().unwrap_or_default()).collect();
            let distinct: BTreeSet<_> = owned.iter().collect();
            let everyone_has_some = live.iter().all(|i| a.get(i).is_some_and(|v| !v.is_empty()));
            if owned.len() == partitions && distinct.len() == partitions && everyone_has_some {
                return;
            }
            assert!(Instant::now() < deadline, "group assignment did not settle: {a:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for_processed(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.processed.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "processed {} of {n} before the deadline",
                self.processed.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn partitions_per_member(&self) -> HashMap<usize, BTreeSet<i32>> {
        self.partitions_seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn stop_member(&mut self, idx: usize, how: Stop) {
        let Some((stop, handle)) = self.members[idx].take() else { return };
        stop.store(true, Ordering::Release);
        let c = handle.await.expect("member task");
        match how {
            Stop::Close => c.close().await.expect("close"),
            Stop::Crash => drop(c),
        }
        self.assignments.lock().unwrap_or_else(|e| e.into_inner()).remove(&idx);
    }

    pub async fn stop_all(mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i, Stop::Close).await;
        }
    }
}

/// Publish `keys` x `per_key` records (value = key, seq) in per-key order, `window` pending.
pub async fn publish_sequences(bus: &dyn Bus, topic: &str, keys: u32, per_key: u32) {
    let producer = bus.producer().expect("producer");
    let mut pending = std::collections::VecDeque::new();
    for seq in 0..per_key {
        for key in 0..keys {
            let mut value = key.to_be_bytes().to_vec();
            value.extend_from_slice(&seq.to_be_bytes());
            let rec = OutRecord::new(topic, format!("key-{key}"), value);
            pending.push_back(producer.send(rec).await.expect("send"));
            if pending.len() >= 10_000 {
                if let Some(p) = pending.pop_front() {
                    p.await.expect("acknowledged");
                }
            }
        }
    }
    for p in pending {
        p.await.expect("acknowledged");
    }
}

/// The failover scenario: `members` consumers in one group, `keys` x `per_key` records, one
/// member stopped once half of them were processed. Every record must be processed at least
/// once, and per key in order. Returns the order check for reporting.
pub async fn failover(
    bus: Arc<dyn Bus>,
    prefix: &str,
    partitions: i32,
    members: usize,
    keys: u32,
    per_key: u32,
    how: Stop,
    timeout: Duration,
) -> OrderCheck {
    let topic = format!("{prefix}-failover");
    let group = format!("{prefix}-failover-g");
    let total = keys as u64 * per_key as u64;
    bus.create_topic(&topic, partitions).await.expect("create topic");
    let t0 = Instant::now();
    let mut run = GroupRun::start(bus.clone(), &group, &topic, members).await;
    run.wait_for_assignment(partitions as usize, timeout).await;
    println!("{}: {members} members own {partitions} partitions after {:.1?}", bus.kind(), t0.elapsed());
    let t1 = Instant::now();
    let producer_bus = bus.clone();
    let topic2 = topic.clone();
    let publisher = tokio::spawn(async move { publish_sequences(producer_bus.as_ref(), &topic2, keys, per_key).await });
    run.wait_for_processed(total / 2, timeout).await;
    run.stop_member(0, how).await;
    println!("{}: member 0 stopped ({how:?}) after {} records", bus.kind(), run.processed.load(Ordering::Relaxed));
    publisher.await.expect("publisher");
    let deadline = Instant::now() + timeout;
    loop {
        let incomplete = run.order.lock().unwrap_or_else(|e| e.into_inner()).incomplete(keys, per_key as i64).len();
        if incomplete == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {incomplete} keys never reached their last record (processed {})",
            bus.kind(),
            run.processed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = t1.elapsed();
    let order = std::mem::take(&mut *run.order.lock().unwrap_or_else(|e| e.into_inner()));
    run.stop_all().await;
    println!(
        "{}: {total} records, {} processed ({} redelivered) in {:.1?}, {:.0} records/s, order violations: {}",
        bus.kind(),
        order.processed,
        order.redelivered,
        elapsed,
        order.processed as f64 / elapsed.as_secs_f64(),
        order.violations.len()
    );
    assert!(order.violations.is_empty(), "per-key order broken: {:?}", order.violations);
    assert!(order.incomplete(keys, per_key as i64).is_empty());
    order
}
