//! `chainwatch probe` as a DaemonSet runs it, against a real Kafka-protocol broker (tansu):
//! it watches the processes the configuration selects (here by comm) and publishes their
//! connections and bytes to cw.raw.segments keyed by connection id, and their process events
//! to cw.proc.events. Root: it loads the real eBPF programs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, KafkaBus};
use chainwatch_config::KafkaConfig;
use chainwatch_schemas::codec::record_name;
use chainwatch_schemas::{AvroRecord, ConnectionEvent, ProcessEvent, ProcessEventKind, RawSegment, topics};

#[test]
fn probe_publishes_watched_processes_to_the_broker() {
    let broker = chainwatch_testkit::TansuBroker::start();
    let dir = std::env::temp_dir().join(format!("cw-probe-pub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A curl under a name nothing else on this machine has: the comm selector picks it alone.
    let agent = dir.join("cwpubagent");
    std::fs::copy("/usr/bin/curl", &agent).expect("copy curl");
    std::fs::write(dir.join("doc.txt"), "the document\n").unwrap();
    let server = chainwatch_testkit::HttpServer::start(&dir);
    let port = server.port;

    let probe = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .arg("probe")
        .env("CHAINWATCH__BUS__KIND", "kafka")
        .env("CHAINWATCH__KAFKA__BROKERS", broker.bootstrap())
        .env("CHAINWATCH__KAFKA__PARTITIONS", "3")
        .env("CHAINWATCH__NODE__ID", "test-node")
        .env("CHAINWATCH__PROBE__WATCH_COMM", "cwpubagent")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chainwatch probe");

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let bus = KafkaBus::new(KafkaConfig { brokers: broker.bootstrap(), ..KafkaConfig::default() }).unwrap();
    // Wait until the probe created the topics (then it attaches its programs).
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(bus.partition_count(topics::PROC_EVENTS)).is_err() {
        assert!(Instant::now() < deadline, "chainwatch probe did not create the topics");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));

    let url = format!("http://127.0.0.1:{port}/doc.txt");
    let status = Command::new(&agent).args(["-s", "-o", "/dev/null", &url]).status().unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("kill").args(["-INT", &probe.id().to_string()]).status();
    let out = probe.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chainwatch probe failed: {stderr}");
    drop(server);

    let (segments, conns, procs) = rt.block_on(async {
        let mut c = bus.consumer("probe-test", &[topics::RAW_SEGMENTS, topics::PROC_EVENTS]).await.unwrap();
        let (mut segments, mut conns, mut procs) = (Vec::new(), Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(5) {
            let Some(r) = c.poll(Duration::from_millis(500)).await.unwrap() else { continue };
            quiet_since = Instant::now();
            let key = String::from_utf8(r.key.clone().unwrap_or_default()).unwrap();
            match record_name(&r.value).unwrap().as_str() {
                "io.chainwatch.RawSegment" => segments.push((key, RawSegment::decode(&r.value).unwrap())),
                "io.chainwatch.ConnectionEvent" => conns.push((key, ConnectionEvent::decode(&r.value).unwrap())),
                "io.chainwatch.ProcessEvent" => procs.push((key, ProcessEvent::decode(&r.value).unwrap())),
                other => panic!("unexpected record {other}"),
            }
        }
        (segments, conns, procs)
    });
    let exec = procs
        .iter()
        .find(|(_, p)| p.kind == ProcessEventKind::Exec && p.comm == "cwpubagent")
        .unwrap_or_else(|| panic!("no exec of the agent among {} process events; probe said: {stderr}", procs.len()));
    // keyed by node, like semantic events: the chain builder joins the two topics
    assert_eq!(exec.0, "test-node");
    assert!(procs.iter().all(|(_, p)| p.comm == "cwpubagent"), "only the watched process is published");
    let (key, connect) = conns.iter().find(|(_, c)| c.tgid == exec.1.tgid).expect("the agent's connection");
    assert_eq!(key, &connect.conn_id);
    assert!(connect.conn_id.starts_with("test-node/"));
    let sent: Vec<u8> = segments
        .iter()
        .filter(|(k, s)| k == &connect.conn_id && s.direction == chainwatch_schemas::Direction::Egress)
        .flat_map(|(_, s)| s.payload.clone())
        .collect();
    assert!(sent.starts_with(b"GET /doc.txt HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&sent));
    let received: Vec<u8> = segments
        .iter()
        .filter(|(k, s)| k == &connect.conn_id && s.direction == chainwatch_schemas::Direction::Ingress)
        .flat_map(|(_, s)| s.payload.clone())
        .collect();
    assert!(received.ends_with(b"the document\n"), "{}", String::from_utf8_lossy(&received));
    let _ = std::fs::remove_dir_all(dir);
}

/// `chainwatch probe --pcap FILE` replays a capture onto the broker as the records the live
/// probe publishes: a deepflow HTTP/1.1 capture gives its connection and its request bytes.
#[test]
fn probe_replays_a_pcap_onto_the_broker() {
    let broker = chainwatch_testkit::TansuBroker::start();
    let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe/tests/fixtures/pcap/deepflow/http/httpv1.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["probe", "--pcap"])
        .arg(&pcap)
        .env("CHAINWATCH__BUS__KIND", "kafka")
        .env("CHAINWATCH__KAFKA__BROKERS", broker.bootstrap())
        .env("CHAINWATCH__KAFKA__PARTITIONS", "2")
        .env("CHAINWATCH__NODE__ID", "replay")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let bus = KafkaBus::new(KafkaConfig { brokers: broker.bootstrap(), ..KafkaConfig::default() }).unwrap();
    let (segments, conns) = rt.block_on(async {
        let mut c = bus.consumer("replay-test", &[topics::RAW_SEGMENTS]).await.unwrap();
        let (mut segments, mut conns) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(4) {
            let Some(r) = c.poll(Duration::from_millis(500)).await.unwrap() else { continue };
            quiet_since = Instant::now();
            match record_name(&r.value).unwrap().as_str() {
                "io.chainwatch.RawSegment" => segments.push(RawSegment::decode(&r.value).unwrap()),
                "io.chainwatch.ConnectionEvent" => conns.push(ConnectionEvent::decode(&r.value).unwrap()),
                other => panic!("unexpected record {other}"),
            }
        }
        (segments, conns)
    });
    assert!(!conns.is_empty(), "no connection events replayed");
    let request: Vec<u8> = segments
        .iter()
        .filter(|s| s.direction == chainwatch_schemas::Direction::Egress)
        .flat_map(|s| s.payload.clone())
        .collect();
    // deepflow's httpv1.result: POST /query?1590632942 to rq.cct.cloud.duba.net.
    assert!(request.starts_with(b"POST /query?1590632942 HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&request));
    assert!(segments.iter().all(|s| s.conn_id.starts_with("replay/")));
}
