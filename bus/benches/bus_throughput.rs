//! Produce -> consume throughput through the bus, in records/s: 2 KiB Avro RawSegments
//! encoded, published, consumed by a group member, decoded and marked processed. Runs against
//! the in-memory bus and a real tansu broker on loopback (started here), in the same run.
//!
//! `cargo bench -p chainwatch-bus --bench bus_throughput` (N records: BENCH_RECORDS, default 50,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, KafkaBus, MemoryBus, OutRecord};
use chainwatch_config::{KafkaConfig, MemoryBusConfig};
use chainwatch_schemas::{AvroRecord, RawSegment, samples};

async fn produce_consume(bus: Arc<dyn Bus>, n: usize) -> (f64, f64) {
    let topic = format!("bench-{}-{}", bus.kind(), std::process::id());
    bus.create_topic(&topic, 6).await.expect("create topic");
    let payload: Vec<u8> = b"{\"role\":\"user\",\"content\":\"hi\"} ".iter().copied().cycle().take(2048).collect();
    let producer = bus.producer().expect("producer");
    let mut consumer = bus.consumer(&format!("{topic}-g"), &[&topic]).await.expect("consumer");
    let t0 = Instant::now();
    let produce = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            for i in 0..n {
                let mut seg = samples::raw_segment(payload.clone());
                seg.conn_id = format!("node-a/{}/7/1", i % 64);
                seg.stream_offset = i as i64;
                let value = seg.encode().expect("encode");
                pending.push_back(producer.send(OutRecord::new(&topic, seg.conn_id.into_bytes(), value)).await.expect("send"));
                if pending.len() > 5_000 {
                    if let Some(p) = pending.pop_front() {
                        p.await.expect("ack");
                    }
                }
            }
            for p in pending {
                p.await.expect("ack");
            }
            Instant::now()
        })
    };
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    while got < n && Instant::now() < deadline {
        if let Some(r) = consumer.poll(Duration::from_millis(500)).await.expect("poll") {
            let seg = RawSegment::decode(&r.value).expect("decode");
            assert_eq!(seg.payload.len(), 2048);
            consumer.mark_processed(&r).expect("mark");
            got += 1;
            if got % 1_000 == 0 {
                consumer.commit().await.expect("commit");
            }
        }
    }
    let produced_at = produce.await.expect("producer task");
    let total = t0.elapsed().as_secs_f64();
    consumer.close().await.expect("close");
    assert_eq!(got, n, "{}: consumed {got} of {n}", bus.kind());
    let produce_rate = n as f64 / (produced_at - t0).as_secs_f64();
    (produce_rate, n as f64 / total)
}

fn main() {
    let n: usize = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let memory: Arc<dyn Bus> = Arc::new(MemoryBus::new(MemoryBusConfig::default()));
    let (mp, mc) = rt.block_on(produce_consume(memory, n));
    println!("memory bus : {n} x 2 KiB RawSegment  produce {mp:>10.0} records/s   produce->consume {mc:>10.0} records/s");
    let broker = chainwatch_testkit::TansuBroker::start();
    let kafka: Arc<dyn Bus> =
        Arc::new(KafkaBus::new(KafkaConfig { brokers: broker.bootstrap(), ..KafkaConfig::default() }).expect("kafka bus"));
    let (kp, kc) = rt.block_on(produce_consume(kafka, n));
    println!("tansu/kafka: {n} x 2 KiB RawSegment  produce {kp:>10.0} records/s   produce->consume {kc:>10.0} records/s ({:.1} MB/s)", kc * 2048.0 / 1e6);
}
