//! Scratch diagnosis (to be removed): tansu with debug logs, librdkafka debug logs to stderr.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, KafkaBus, OutRecord};
use chainwatch_config::KafkaConfig;

struct StderrLog(Instant);
impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool { true }
    fn log(&self, r: &log::Record) {
        if r.target().starts_with("librdkafka") || r.target().starts_with("rdkafka") {
            let _ = writeln!(std::io::stderr(), "[{:>8.3}] {} {}", self.0.elapsed().as_secs_f64(), r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

struct Broker(Child, u16);
impl Drop for Broker { fn drop(&mut self) { let _ = self.0.kill(); let _ = self.0.wait(); } }

fn broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::File::create(format!("/tmp/tansu-scratch-{port}.log")).unwrap();
    let child = Command::new("/var/cache/chainwatch/tansu/bin/tansu")
        .args(["broker", "--storage-engine", "memory://tansu/", "--listener-url", &url, "--advertised-listener-url", &url])
        .env("RUST_LOG", std::env::var("TANSU_LOG").unwrap_or("debug".into()))
        .stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log)).spawn().unwrap();
    for _ in 0..200 { if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() { break; } std::thread::sleep(Duration::from_millis(100)); }
    eprintln!("broker log /tmp/tansu-scratch-{port}.log");
    Broker(child, port)
}

fn cfg(port: u16) -> KafkaConfig {
    let mut c = KafkaConfig { brokers: format!("127.0.0.1:{port}"), session_timeout_ms: 6_000, ..KafkaConfig::default() };
    if let Ok(s) = std::env::var("STRAT") {
        c.assignment_strategy = match s.as_str() { "range" => chainwatch_config::AssignmentStrategy::Range, "roundrobin" => chainwatch_config::AssignmentStrategy::Roundrobin, _ => chainwatch_config::AssignmentStrategy::CooperativeSticky };
    }
    if let Ok(d) = std::env::var("RDDEBUG") { c.properties.insert("debug".into(), d); }
    for kv in std::env::var("PROPS").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        c.properties.insert(k.into(), v.into());
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliver_after_drop() {
    let _ = log::set_logger(Box::leak(Box::new(StderrLog(Instant::now())))).map(|()| log::set_max_level(log::LevelFilter::Debug));
    let b = broker();
    let bus = Arc::new(KafkaBus::new(cfg(b.1)).unwrap());
    let topic = "redeliver";
    let group = "redeliver-g";
    bus.create_topic(topic, 1).await.unwrap();
    let p = bus.producer().unwrap();
    for i in 0..20u32 { p.send(OutRecord::new(topic, b"k".to_vec(), i.to_be_bytes().to_vec())).await.unwrap().await.unwrap(); }
    let mut c = bus.consumer(group, &[topic]).await.unwrap();
    let mut got = vec![];
    while got.len() < 20 { if let Some(r) = c.poll(Duration::from_millis(200)).await.unwrap() { got.push(r); } }
    for r in &got[..5] { c.mark_processed(r).unwrap(); }
    c.commit().await.unwrap();
    eprintln!("==== committed 5, dropping");
    let t = Instant::now();
    tokio::task::spawn_blocking(move || drop(c)).await.unwrap();
    eprintln!("==== dropped in {:?}, new member", t.elapsed());
    let mut c = bus.consumer(group, &[topic]).await.unwrap();
    let t = Instant::now();
    let mut again = vec![];
    while again.len() < 15 && t.elapsed() < Duration::from_secs(40) {
        if let Some(r) = c.poll(Duration::from_millis(200)).await.unwrap() { again.push(r.offset); }
    }
    eprintln!("==== second member got {:?} after {:?}; assignment {:?}", again, t.elapsed(), c.assignment());
}

fn init_log() {
    let _ = log::set_logger(Box::leak(Box::new(StderrLog(Instant::now())))).map(|()| log::set_max_level(log::LevelFilter::Debug));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_redeliver_only() {
    init_log();
    let b = broker();
    let bus = Arc::new(KafkaBus::new(cfg(b.1)).unwrap());
    let s = common::conformance::Suite::new(bus, Duration::from_secs(15));
    s.uncommitted_records_are_delivered_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_commit_then_redeliver() {
    init_log();
    let b = broker();
    let bus = Arc::new(KafkaBus::new(cfg(b.1)).unwrap());
    let s = common::conformance::Suite::new(bus, Duration::from_secs(15));
    s.committed_offsets_survive_a_restart().await;
    eprintln!("==== commit case done");
    s.uncommitted_records_are_delivered_again().await;
}
