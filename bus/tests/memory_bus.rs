//! The in-memory bus: the conformance suite, the 100,000-record failover, and its bound.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chainwatch_bus::{Bus, MemoryBus, OutRecord};
use chainwatch_config::MemoryBusConfig;
use common::conformance::{Stop, Suite, failover};

fn bus(cfg: MemoryBusConfig) -> Arc<MemoryBus> {
    Arc::new(MemoryBus::new(cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    Suite::new(bus(MemoryBusConfig::default()), Duration::from_secs(1)).run_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_100k_three_members_one_closed() {
    let b = bus(MemoryBusConfig::default());
    failover(b, "mem-close", 6, 3, 500, 200, Stop::Close, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_three_members_one_crashed_redelivers() {
    let b = bus(MemoryBusConfig::default());
    let order = failover(b, "mem-crash", 6, 3, 200, 100, Stop::Crash, Duration::from_secs(120)).await;
    assert!(order.processed >= 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_publishers_wait_then_fail_and_are_counted() {
    let b = MemoryBus::new(MemoryBusConfig {
        partitions: 1,
        max_records_per_partition: 10,
        max_bytes_per_partition: 1 << 20,
        publish_timeout_ms: 300,
    });
    b.create_topic("bounded", 1).await.unwrap();
    let mut c = b.consumer("g", &["bounded"]).await.unwrap();
    let p = b.producer().unwrap();
    for i in 0..10u8 {
        p.publish(OutRecord::new("bounded", b"k".to_vec(), vec![i])).await.unwrap();
    }
    // Full: the 11th waits, then fails with a back-pressure error naming the topic.
    let err = p.publish(OutRecord::new("bounded", b"k".to_vec(), vec![10])).await.unwrap_err();
    assert!(err.to_string().contains("bounded") && err.to_string().contains("back-pressure"), "{err}");
    assert_eq!(b.stats().backpressure_timeouts.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(b.retained("bounded", 0), 10);

    // A waiting publisher proceeds as soon as the group commits.
    let p2 = p.clone();
    let waiter = tokio::spawn(async move { p2.publish(OutRecord::new("bounded", b"k".to_vec(), vec![11])).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "publisher must wait while the partition is full");
    for _ in 0..5 {
        let r = c.poll(Duration::from_secs(1)).await.unwrap().unwrap();
        c.mark_processed(&r).unwrap();
    }
    c.commit().await.unwrap();
    let d = waiter.await.unwrap().unwrap();
    assert_eq!(d.offset, 10);
    assert_eq!(b.retained("bounded", 0), 6, "committed records are dropped from a full log");
}
