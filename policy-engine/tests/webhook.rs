//! The violation webhook against a real HTTP server on 127.0.0.1: the policy worker posts the
//! exact OCSF JSON it publishes on cw.violations (with the bearer token), retries after a 503,
//! does not retry a 400 (counted), gives up after its retries on a dead port, drops and counts
//! what a full queue cannot take, and a hanging endpoint never holds up the bus path.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chainwatch_bus::{Bus, MemoryBus, OutRecord};
use chainwatch_config::{ChainwatchConfig, MemoryBusConfig, WebhookConfig};
use chainwatch_policy_engine::PolicyEngine;
use chainwatch_policy_engine::webhook::{WebhookSink, WebhookStats};
use chainwatch_policy_engine::worker::{PolicyWorker, PolicyWorkerConfig};
use chainwatch_schemas::AvroRecord;
use common::*;
use tokio::sync::watch;

const TOKEN: &str = "siem-token-4c1d";

/// (Authorization header, Content-Type header, body) of one request.
type Seen = (Option<String>, Option<String>, Bytes);

/// What the endpoint saw and what it answers next.
#[derive(Default)]
struct Endpoint {
    /// Every request, in arrival order.
    requests: Mutex<Vec<Seen>>,
    /// Statuses to answer, in order; 200 once empty (or `always` when set).
    script: Mutex<VecDeque<u16>>,
    always: Mutex<Option<u16>>,
    /// When set, every request waits until it reads true before answering.
    gate: Option<watch::Sender<bool>>,
}

async fn receive(State(ep): State<Arc<Endpoint>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    ep.requests.lock().unwrap().push((header("authorization"), header("content-type"), body));
    if let Some(gate) = &ep.gate {
        let _ = gate.subscribe().wait_for(|open| *open).await;
    }
    let scripted = ep.script.lock().unwrap().pop_front();
    let code = scripted.or(*ep.always.lock().unwrap()).unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

/// Serves `ep` on a free port of 127.0.0.1; returns the webhook URL.
async fn serve(ep: Arc<Endpoint>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/hook", post(receive)).with_state(ep);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

fn webhook(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: Some(url.to_string()),
        bearer_token: Some(TOKEN.into()),
        timeout_ms: 5_000,
        queue_capacity: 100,
        max_retries: 3,
        retry_backoff_ms: 10,
        ca_file: None,
    }
}

/// Waits (bounded) until `done` holds for the sink's stats.
async fn settle(stats: impl Fn() -> WebhookStats, done: impl Fn(&WebhookStats) -> bool) -> WebhookStats {
    for _ in 0..500 {
        let s = stats();
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stats()
}

async fn worker_with_webhook(bus: &MemoryBus, hook: WebhookConfig) -> PolicyWorker {
    let cfg = PolicyWorkerConfig {
        batch_size: 10,
        batch_interval: Duration::from_millis(100),
        webhook: hook,
        ..PolicyWorkerConfig::from_config(&ChainwatchConfig::default())
    };
    let engine = PolicyEngine::new(&ChainwatchConfig::default().policy).await.unwrap();
    PolicyWorker::join(bus, engine, cfg).await.unwrap()
}

async fn publish_seed_chains(bus: &MemoryBus) {
    let producer = bus.producer().unwrap();
    for c in [seed_chain(false), seed_chain(true)] {
        producer.publish(OutRecord::new("cw.chains", c.chain_id.clone(), c.encode().unwrap())).await.unwrap();
    }
}

async fn run_to_end(w: &mut PolicyWorker) {
    while w.step().await.unwrap() > 0 {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_posts_the_exact_ocsf_json_with_the_token_and_retries_after_a_503() {
    let ep = Arc::new(Endpoint { script: Mutex::new(VecDeque::from([503])), ..Endpoint::default() });
    let url = serve(ep.clone()).await;
    let bus = MemoryBus::new(MemoryBusConfig { partitions: 2, ..MemoryBusConfig::default() });
    publish_seed_chains(&bus).await;

    let mut w = worker_with_webhook(&bus, webhook(&url)).await;
    run_to_end(&mut w).await;
    let s = settle(|| w.stats().webhook, |s| s.delivered == 2).await;
    assert_eq!((s.queued, s.delivered, s.retries, s.rejected, s.gave_up, s.dropped_queue_full), (2, 2, 1, 0, 0, 0), "{s:?}");
    w.close().await.unwrap();

    let mut on_bus: Vec<Vec<u8>> = Vec::new();
    let mut siem = bus.consumer("siem", &["cw.violations"]).await.unwrap();
    while let Some(r) = siem.poll(Duration::from_millis(50)).await.unwrap() {
        on_bus.push(r.value.clone());
    }
    assert_eq!(on_bus.len(), 2);
    let requests = ep.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "two violations, the first one twice (503, then 200)");
    assert_eq!(requests[0].2, requests[1].2, "the retry posts the same body");
    let mut posted: Vec<Vec<u8>> = requests[1..].iter().map(|r| r.2.to_vec()).collect();
    posted.sort();
    on_bus.sort();
    assert_eq!(posted, on_bus, "the webhook gets byte for byte what cw.violations carries");
    for (auth, content_type, body) in &requests {
        assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let j: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(j["class_uid"], 2004);
        assert_eq!(j["unmapped"]["chain_id"], "seed-exfil");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_counted_and_not_retried() {
    let ep = Arc::new(Endpoint { always: Mutex::new(Some(400)), ..Endpoint::default() });
    let url = serve(ep.clone()).await;
    let sink = WebhookSink::from_config(&webhook(&url)).unwrap().unwrap();
    assert!(sink.offer(br#"{"class_uid":2004}"#.to_vec()));
    let s = settle(|| sink.stats(), |s| s.rejected == 1).await;
    assert_eq!((s.rejected, s.retries, s.delivered, s.gave_up), (1, 0, 0, 0), "{s:?}");
    // A second violation is tried too (a 4xx refuses one POST, it does not stop the sink).
    assert!(sink.offer(br#"{"class_uid":2004,"n":2}"#.to_vec()));
    let s = sink.close(Duration::from_secs(10)).await;
    assert_eq!((s.rejected, s.retries, s.pending()), (2, 0, 0), "{s:?}");
    assert_eq!(ep.requests.lock().unwrap().len(), 2, "one request per violation: no retry after a 400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_retried_then_given_up() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = WebhookConfig { max_retries: 2, ..webhook(&format!("http://127.0.0.1:{port}/hook")) };
    let sink = WebhookSink::from_config(&hook).unwrap().unwrap();
    assert!(sink.offer(b"{}".to_vec()));
    let s = sink.close(Duration::from_secs(20)).await;
    assert_eq!((s.gave_up, s.retries, s.delivered, s.rejected), (1, 2, 0, 0), "{s:?}");
}

// current_thread: the sender task cannot take anything off the queue until the test awaits.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts() {
    let ep = Arc::new(Endpoint::default());
    let url = serve(ep.clone()).await;
    let sink = WebhookSink::from_config(&WebhookConfig { queue_capacity: 3, ..webhook(&url) }).unwrap().unwrap();
    let accepted = (0..10).filter(|i| sink.offer(format!("{{\"n\":{i}}}").into_bytes())).count();
    assert_eq!(accepted, 3);
    let s = sink.stats();
    assert_eq!((s.queued, s.dropped_queue_full), (3, 7), "{s:?}");
    let s = sink.close(Duration::from_secs(10)).await;
    assert_eq!((s.delivered, s.dropped_queue_full, s.pending()), (3, 7, 0), "{s:?}");
    let bodies: Vec<Bytes> = ep.requests.lock().unwrap().iter().map(|r| r.2.clone()).collect();
    assert_eq!(bodies, vec![Bytes::from_static(b"{\"n\":0}"), Bytes::from_static(b"{\"n\":1}"), Bytes::from_static(b"{\"n\":2}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_hold_up_the_bus_path() {
    let (gate, _) = watch::channel(false);
    let ep = Arc::new(Endpoint { gate: Some(gate), ..Endpoint::default() });
    let url = serve(ep.clone()).await;
    let bus = MemoryBus::new(MemoryBusConfig { partitions: 2, ..MemoryBusConfig::default() });
    publish_seed_chains(&bus).await;

    let mut w = worker_with_webhook(&bus, WebhookConfig { timeout_ms: 60_000, ..webhook(&url) }).await;
    run_to_end(&mut w).await;
    // Every batch was evaluated, published and committed while the endpoint still holds the
    // first POST: nothing is delivered yet.
    let s = w.stats();
    assert_eq!((s.violations_published, s.commits), (2, 1), "{s:?}");
    let hook = settle(|| w.stats().webhook, |_| !ep.requests.lock().unwrap().is_empty()).await;
    assert_eq!((hook.queued, hook.delivered), (2, 0), "{hook:?}");
    assert_eq!(ep.requests.lock().unwrap().len(), 1, "the sender posts one at a time");
    // Opened, both arrive.
    if let Some(gate) = &ep.gate {
        gate.send_replace(true);
    }
    let hook = settle(|| w.stats().webhook, |s| s.delivered == 2).await;
    assert_eq!(hook.delivered, 2, "{hook:?}");
    w.close().await.unwrap();
}

/// A TLS endpoint (Python's ssl module) whose certificate a throwaway CA signed: it prints the
/// Authorization header and the body of every POST, one JSON line each, and answers 200.
const TLS_ENDPOINT: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        print(json.dumps({"auth": self.headers.get("Authorization"), "body": body.decode()}), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// openssl: a CA, and a certificate for localhost / 127.0.0.1 it signed, in `dir`.
fn make_pki(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl").args(args).current_dir(dir).stderr(std::process::Stdio::null()).status().expect("openssl");
        assert!(st.success(), "openssl {args:?}");
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=webhook test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-keyout", "ca.key", "-out", "ca.pem"]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"]);
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_signed_by_the_configured_ca_receives_the_finding() {
    let dir = std::env::temp_dir().join(format!("cw-webhook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_pki(&dir);
    let mut server = std::process::Command::new("/usr/bin/python3")
        .args(["-c", TLS_ENDPOINT])
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 TLS endpoint");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().unwrap()));
    let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let url = format!("https://127.0.0.1:{port}/hook");

    // without the CA the certificate is refused: nothing is delivered
    let untrusted = WebhookConfig { max_retries: 0, ..webhook(&url) };
    let sink = WebhookSink::from_config(&untrusted).unwrap().unwrap();
    assert!(sink.offer(br#"{"class_uid":2004,"n":0}"#.to_vec()));
    let s = sink.close(Duration::from_secs(10)).await;
    assert_eq!((s.delivered, s.gave_up), (0, 1), "an unknown CA must not be trusted: {s:?}");

    // with it: delivered over TLS, token and body intact
    let trusted = WebhookConfig { ca_file: Some(dir.join("ca.pem")), ..webhook(&url) };
    let sink = WebhookSink::from_config(&trusted).unwrap().unwrap();
    assert!(sink.offer(br#"{"class_uid":2004,"n":1}"#.to_vec()));
    let s = sink.close(Duration::from_secs(10)).await;
    assert_eq!(s.delivered, 1, "{s:?}");
    let seen: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(seen["auth"], format!("Bearer {TOKEN}"));
    assert_eq!(seen["body"], r#"{"class_uid":2004,"n":1}"#);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
