//! End to end over real sockets on 127.0.0.1: an OTLP/HTTP receiver built from the
//! opentelemetry-proto messages (what an OpenTelemetry collector's otlphttp receiver decodes)
//! gets the seed-scenario chain as a GenAI trace and chainwatch's own metrics; the Prometheus
//! endpoint serves the counters in the text format.

// The struct-update syntax keeps these tests compiling when `MetricsConfig` gains a field.
#![allow(clippy::needless_update)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chainwatch_config::MetricsConfig;
use chainwatch_schemas::{
    AgentRef, Autonomy, Chain, ChainStatus, ChainStep, PiiFlow, Severity, ToolExecution, Violation,
};
use chainwatch_telemetry::chain_traces::{LlmDetails, SECURITY_FINDING_EVENT, span_id_for_event, trace_id_for_chain};
use chainwatch_telemetry::{
    ChainTraceExporter, ChainTraceStats, ParserMetrics, ParserSnapshot, PolicyMetrics, ProbeMetrics, ProbeSnapshot,
    SharedSnapshot, Telemetry, TraceExportMetrics,
};
use chainwatch_testkit::OtlpReceiver;
use chainwatch_testkit::otlp_attributes::{int_attr, str_array, str_attr};
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The OTLP/HTTP receiver (shared with the CLI's tests): bodies posted, by path.
fn start_receiver() -> OtlpReceiver {
    OtlpReceiver::start()
}

fn bodies(receiver: &OtlpReceiver, path: &str) -> Vec<Bytes> {
    assert_eq!(receiver.refused(), Vec::<String>::new(), "OTLP/HTTP binary encoding expected");
    receiver.bodies(path)
}

const T0: i64 = 1_760_000_000_000_000_000;
const MS: i64 = 1_000_000;

fn step(index: i32, event_id: &str, kind: &str, protocol: &str, comm: &str, at_ms: i64, dur_ms: i64) -> ChainStep {
    ChainStep {
        index,
        event_id: event_id.into(),
        ts_start_ns: T0 + at_ms * MS,
        ts_end_ns: T0 + (at_ms + dur_ms) * MS,
        kind: kind.into(),
        protocol: protocol.into(),
        tgid: 4242,
        comm: comm.into(),
        node: "node-a".into(),
        ..Default::default()
    }
}

/// The seed scenario: chat -> tool query_database -> SQL -> chat -> gzip -> upload to a pastebin.
fn seed_chain() -> Chain {
    let mut llm1 = step(0, "ev-llm-1", "llm_call", "http1", "python3", 0, 900);
    llm1.destination = Some("api.openai.com".into());
    llm1.category = "llm".into();
    llm1.method = Some("POST".into());
    llm1.model = Some("gpt-4o".into());
    llm1.input_tokens = 2113;
    llm1.output_tokens = 57;
    llm1.tool_name = Some("query_database".into());
    llm1.tool_call_id = Some("call_q1".into());

    let mut sql = step(1, "ev-sql-1", "sql", "postgres", "python3", 950, 40);
    sql.destination = Some("db.internal".into());
    sql.category = "database".into();
    sql.statement = Some("SELECT name, email, ssn FROM customers WHERE email = 'alice@example.com' LIMIT 10000".into());
    sql.rows = Some(10_000);
    sql.pii_types = vec!["email".into(), "ssn".into()];

    let mut llm2 = step(2, "ev-llm-2", "llm_call", "http1", "python3", 1000, 1500);
    llm2.destination = Some("api.openai.com".into());
    llm2.category = "llm".into();
    llm2.method = Some("POST".into());
    llm2.model = Some("gpt-4o".into());
    llm2.input_tokens = 48_000;
    llm2.output_tokens = 900;
    llm2.pii_types = vec!["email".into()];

    let gzip = step(3, "ev-proc-gzip", "process_exec", "", "gzip", 2600, 30);

    let mut upload = step(4, "ev-upload-1", "upload", "http1", "python3", 2700, 200);
    upload.destination = Some("personal-pastebin.com".into());
    upload.category = "unknown-external".into();
    upload.method = Some("POST".into());
    upload.bytes_out = 180_000;
    upload.archive_format = Some("gzip".into());
    upload.pii_types = vec!["email".into(), "ssn".into()];

    // Start from the schema's sample so fields added to `Chain` later keep this compiling.
    let mut chain = chainwatch_schemas::samples::chain();
    chain.chain_id = "chain-seed-1".into();
    chain.version = 5;
    chain.status = ChainStatus::Closed;
    chain.agent = AgentRef {
        node: "node-a".into(),
        agent_key: "node-a/support-agent".into(),
        tgid: 4242,
        process_start_ns: T0 - 60_000 * MS,
        exe: "/usr/bin/python3".into(),
        comm: "python3".into(),
        namespace: Some("support".into()),
        ..Default::default()
    };
    chain.start_ns = T0;
    chain.end_ns = T0 + 2900 * MS;
    chain.steps = vec![llm1, sql, llm2, gzip, upload];
    chain.tool_calls = vec![ToolExecution {
        tool_call_id: "call_q1".into(),
        tool_name: "query_database".into(),
        requested_at_step: 0,
        executed_steps: vec![1],
        result_step: Some(2),
        approved: false,
    }];
    chain.pii_flows = vec![PiiFlow {
        fingerprint: "f00d".into(),
        pii_type: "email".into(),
        from_step: 1,
        to_step: 4,
        destination: Some("personal-pastebin.com".into()),
    }];
    chain.tools = vec!["query_database".into()];
    chain.destinations = vec!["api.openai.com".into(), "db.internal".into(), "personal-pastebin.com".into()];
    chain.pii_types = vec!["email".into(), "ssn".into()];
    chain.bytes_out = 200_000;
    chain.bytes_in = 60_000;
    chain.input_tokens = 50_113;
    chain.output_tokens = 957;
    chain.cost_usd = 0.13;
    chain.max_tool_repeats = 1;
    chain.autonomy = Autonomy::Autonomous;
    chain.risk_score = 0.95;
    chain.risk_reasons = vec!["pii to unknown-external".into()];
    chain
}

fn seed_violation() -> Violation {
    let mut evidence = BTreeMap::new();
    evidence.insert("destination".into(), "personal-pastebin.com".into());
    let mut v = chainwatch_schemas::samples::violation();
    v.violation_id = "v-seed-1".into();
    v.version = 1;
    v.policy_id = "pii-exfil".into();
    v.policy_title = "PII uploaded to an unauthorized external destination".into();
    v.severity = Severity::Critical;
    v.description = "email, ssn read from the database left for personal-pastebin.com".into();
    v.chain_id = "chain-seed-1".into();
    v.node = "node-a".into();
    v.agent_key = "node-a/support-agent".into();
    v.first_seen_ns = T0 + 2900 * MS;
    v.ts_ns = T0 + 2900 * MS;
    v.evidence_steps = vec![1, 4];
    v.evidence = evidence;
    v.pii_types = vec!["email".into(), "ssn".into()];
    v.risk_score = 0.95;
    v.tags = vec!["AML.T0024".into()];
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_chain_arrives_as_one_genai_trace() {
    let posts = start_receiver();
    let addr = posts.addr();
    let exporter = ChainTraceExporter::new(&format!("http://{addr}"), "chainwatch-test", 16).unwrap();
    assert_eq!(exporter.url(), format!("http://{addr}/v1/traces"));
    let mut llm = HashMap::new();
    llm.insert(
        "ev-llm-1".to_string(),
        LlmDetails {
            provider: None,
            request_model: Some("gpt-4o".into()),
            response_model: Some("gpt-4o-2024-08-06".into()),
            finish_reasons: vec!["tool_calls".into()],
        },
    );
    llm.insert("ev-llm-2".to_string(), LlmDetails { finish_reasons: vec!["stop".into()], ..Default::default() });
    assert!(exporter.submit_with(&seed_chain(), &[seed_violation()], &llm));
    let exporter = Arc::new(exporter);
    let flusher = exporter.clone();
    let stats = tokio::task::spawn_blocking(move || flusher.flush(Duration::from_secs(30))).await.unwrap().unwrap();
    assert_eq!(stats.export_failures, 0, "{stats:?}");
    assert_eq!(stats.spans_exported, 7, "root + execute_tool + 5 steps: {stats:?}");

    let mut spans: Vec<Span> = Vec::new();
    for body in bodies(&posts, "/v1/traces") {
        let req = ExportTraceServiceRequest::decode(body).expect("a valid ExportTraceServiceRequest");
        for rs in req.resource_spans {
            let resource = rs.resource.expect("resource");
            assert_eq!(str_attr(&resource.attributes, "service.name"), Some("chainwatch-test"));
            for ss in rs.scope_spans {
                assert_eq!(ss.scope.as_ref().map(|s| s.name.as_str()), Some("chainwatch.chains"));
                spans.extend(ss.spans);
            }
        }
    }
    assert_eq!(spans.len(), 7, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no span {n:?}"));

    // One trace, id from the chain id.
    let trace_id = trace_id_for_chain("chain-seed-1").to_bytes().to_vec();
    assert!(spans.iter().all(|s| s.trace_id == trace_id));

    // Root: invoke_agent.
    let root = by_name("invoke_agent support-agent");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(str_attr(&root.attributes, "gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(str_attr(&root.attributes, "gen_ai.agent.name"), Some("support-agent"));
    assert_eq!(str_attr(&root.attributes, "gen_ai.agent.id"), Some("node-a/support-agent"));
    assert_eq!(root.start_time_unix_nano, T0 as u64);
    assert_eq!(root.end_time_unix_nano, (T0 + 2900 * MS) as u64);

    // Two chat spans under the root, with GenAI attributes.
    let chats: Vec<&Span> = spans.iter().filter(|s| s.name == "chat gpt-4o").collect();
    assert_eq!(chats.len(), 2);
    let first = chats.iter().find(|s| s.span_id == span_id_for_event("ev-llm-1").to_bytes().to_vec()).unwrap();
    assert_eq!(first.parent_span_id, root.span_id);
    assert_eq!(first.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(str_attr(&first.attributes, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(str_attr(&first.attributes, "gen_ai.provider.name"), Some("openai"));
    assert_eq!(str_attr(&first.attributes, "gen_ai.request.model"), Some("gpt-4o"));
    assert_eq!(str_attr(&first.attributes, "gen_ai.response.model"), Some("gpt-4o-2024-08-06"));
    assert_eq!(int_attr(&first.attributes, "gen_ai.usage.input_tokens"), Some(2113));
    assert_eq!(int_attr(&first.attributes, "gen_ai.usage.output_tokens"), Some(57));
    assert_eq!(str_array(&first.attributes, "gen_ai.response.finish_reasons"), vec!["tool_calls"]);
    assert_eq!(first.start_time_unix_nano, T0 as u64);
    assert_eq!(first.end_time_unix_nano, (T0 + 900 * MS) as u64);
    let second = chats.iter().find(|s| s.span_id == span_id_for_event("ev-llm-2").to_bytes().to_vec()).unwrap();
    assert_eq!(int_attr(&second.attributes, "gen_ai.usage.input_tokens"), Some(48_000));
    assert_eq!(str_array(&second.attributes, "gen_ai.response.finish_reasons"), vec!["stop"]);

    // execute_tool under the root, the SQL step under it; no PII values in db.query.text.
    let tool = by_name("execute_tool query_database");
    assert_eq!(tool.parent_span_id, root.span_id);
    assert_eq!(str_attr(&tool.attributes, "gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(str_attr(&tool.attributes, "gen_ai.tool.name"), Some("query_database"));
    assert_eq!(str_attr(&tool.attributes, "gen_ai.tool.call.id"), Some("call_q1"));
    let sql = by_name("SELECT");
    assert_eq!(sql.parent_span_id, tool.span_id);
    assert_eq!(str_attr(&sql.attributes, "db.system.name"), Some("postgresql"));
    assert_eq!(
        str_attr(&sql.attributes, "db.query.text"),
        Some("SELECT name, email, ssn FROM customers WHERE email = ? LIMIT ?")
    );
    assert_eq!(int_attr(&sql.attributes, "db.response.returned_rows"), Some(10_000));
    assert_eq!(str_attr(&sql.attributes, "server.address"), Some("db.internal"));
    assert_eq!(tool.start_time_unix_nano, sql.start_time_unix_nano);
    assert_eq!(tool.end_time_unix_nano, sql.end_time_unix_nano);
    let all_attrs = format!("{spans:?}");
    assert!(!all_attrs.contains("alice@example.com"), "a PII value left in a span");

    // gzip and the upload hang off the root.
    let gzip = by_name("exec gzip");
    assert_eq!(gzip.parent_span_id, root.span_id);
    let upload = by_name("POST");
    assert_eq!(upload.parent_span_id, root.span_id);
    assert_eq!(str_attr(&upload.attributes, "http.request.method"), Some("POST"));
    assert_eq!(str_attr(&upload.attributes, "server.address"), Some("personal-pastebin.com"));

    // The violation: a gen_ai.security.finding event on the upload (its last evidence step).
    assert_eq!(upload.events.len(), 1);
    let finding = &upload.events[0];
    assert_eq!(finding.name, SECURITY_FINDING_EVENT);
    assert_eq!(str_attr(&finding.attributes, "gen_ai.security.policy.id"), Some("pii-exfil"));
    assert_eq!(
        str_attr(&finding.attributes, "gen_ai.security.policy.name"),
        Some("PII uploaded to an unauthorized external destination")
    );
    assert_eq!(str_attr(&finding.attributes, "gen_ai.security.risk.severity"), Some("critical"));
    assert_eq!(str_array(&finding.attributes, "chainwatch.pii_types"), vec!["email", "ssn"]);
    assert!(spans.iter().filter(|s| s.name != "POST").all(|s| s.events.is_empty()));

    // A later version of the chain re-exports into the same trace with the same span ids.
    let mut v6 = seed_chain();
    v6.version = 6;
    assert!(exporter.submit(&v6, &[]));
    let flusher = exporter.clone();
    tokio::task::spawn_blocking(move || flusher.flush(Duration::from_secs(30))).await.unwrap().unwrap();
    let posted = bodies(&posts, "/v1/traces");
    let last = ExportTraceServiceRequest::decode(posted.last().unwrap().clone()).unwrap();
    let ids: Vec<Vec<u8>> = last
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect();
    let mut first_ids: Vec<Vec<u8>> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut ids_sorted = ids.clone();
    first_ids.sort();
    ids_sorted.sort();
    assert_eq!(ids_sorted, first_ids);
}

fn find_metric<'a>(reqs: &'a [ExportMetricsServiceRequest], name: &str) -> Vec<&'a Metric> {
    reqs.iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_metrics_arrive_over_otlp() {
    let posts = start_receiver();
    let addr = posts.addr();
    let cfg =
        MetricsConfig { otlp_endpoint: Some(format!("http://{addr}")), prometheus_listen: None, ..Default::default() };
    let telemetry = Telemetry::init(&cfg, "chainwatch-test").unwrap();
    assert_eq!(telemetry.otlp_metrics_url(), Some(format!("http://{addr}/v1/metrics").as_str()));

    let parser_stats = SharedSnapshot::new(ParserSnapshot::default());
    let _parser = ParserMetrics::register(&telemetry.meter("chainwatch.parser"), "worker-0", parser_stats.source());
    let mut snap =
        ParserSnapshot { segments_in: 42, bytes_in: 4096, events_out: 7, dead_lettered: 1, ..Default::default() };
    snap.fsm_errors.insert("http1".into(), 3);
    parser_stats.publish(snap);
    let policy = PolicyMetrics::register(&telemetry.meter("chainwatch.policy"), "");
    policy.record_evaluation("pii-exfil", Duration::from_millis(3));
    policy.record_evaluation("pii-exfil", Duration::from_millis(5));
    policy.record_evaluation("pii-exfil", Duration::from_millis(40));
    policy.record_violation("pii-exfil", Severity::Critical);

    let telemetry = Arc::new(telemetry);
    let t = telemetry.clone();
    tokio::task::spawn_blocking(move || t.force_flush()).await.unwrap().unwrap();

    let reqs: Vec<ExportMetricsServiceRequest> = bodies(&posts, "/v1/metrics")
        .into_iter()
        .map(|b| ExportMetricsServiceRequest::decode(b).expect("valid ExportMetricsServiceRequest"))
        .collect();
    assert!(!reqs.is_empty(), "no metrics posted");

    let segments = find_metric(&reqs, "chainwatch.parser.segments");
    let Some(metric::Data::Sum(sum)) = segments.last().and_then(|m| m.data.as_ref()) else {
        panic!("segments is not a sum: {segments:?}")
    };
    assert!(sum.is_monotonic);
    let point = &sum.data_points[0];
    assert_eq!(point.value, Some(number_data_point::Value::AsInt(42)));
    assert_eq!(str_attr(&point.attributes, "chainwatch.instance"), Some("worker-0"));

    let fsm = find_metric(&reqs, "chainwatch.parser.fsm_errors");
    let Some(metric::Data::Sum(sum)) = fsm.last().and_then(|m| m.data.as_ref()) else { panic!("fsm_errors: {fsm:?}") };
    let http1 = sum.data_points.iter().find(|p| str_attr(&p.attributes, "protocol") == Some("http1")).unwrap();
    assert_eq!(http1.value, Some(number_data_point::Value::AsInt(3)));

    let latency = find_metric(&reqs, "chainwatch.policy.evaluation.duration");
    let Some(metric::Data::Histogram(h)) = latency.last().and_then(|m| m.data.as_ref()) else {
        panic!("latency: {latency:?}")
    };
    assert_eq!(latency.last().unwrap().unit, "s");
    let p = &h.data_points[0];
    assert_eq!(p.count, 3);
    assert!((p.sum.unwrap() - 0.048).abs() < 1e-9, "{:?}", p.sum);
    assert_eq!(str_attr(&p.attributes, "policy_id"), Some("pii-exfil"));
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), 3);

    let violations = find_metric(&reqs, "chainwatch.policy.violations");
    let Some(metric::Data::Sum(sum)) = violations.last().and_then(|m| m.data.as_ref()) else {
        panic!("violations: {violations:?}")
    };
    assert_eq!(sum.data_points[0].value, Some(number_data_point::Value::AsInt(1)));
    assert_eq!(str_attr(&sum.data_points[0].attributes, "severity"), Some("critical"));

    drop(_parser);
    let t = Arc::try_unwrap(telemetry).ok().unwrap();
    tokio::task::spawn_blocking(move || t.shutdown()).await.unwrap().unwrap();
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_endpoint_serves_counters_as_text() {
    let cfg =
        MetricsConfig { otlp_endpoint: None, prometheus_listen: Some("127.0.0.1:0".into()), ..Default::default() };
    let telemetry = Telemetry::init(&cfg, "chainwatch-test").unwrap();
    let addr = telemetry.prometheus_addr().unwrap();
    assert_ne!(addr.port(), 0);

    let probe = SharedSnapshot::new(ProbeSnapshot::default());
    let _m = ProbeMetrics::register(&telemetry.meter("chainwatch.probe"), "", probe.source());
    probe.publish(ProbeSnapshot {
        segments: 1234,
        bytes: 99_000,
        ring_full_events: 5,
        gap_bytes: 17,
        undecodable: 2,
        holds_timed_out: 4,
        uprobe_attaches_deferred: 6,
        connections_evicted: 3,
        ..Default::default()
    });
    let policy = PolicyMetrics::register(&telemetry.meter("chainwatch.policy"), "");
    policy.record_evaluation("pii-exfil", Duration::from_millis(2));

    let _traces = TraceExportMetrics::register(&telemetry.meter("chainwatch.traces"), "", || ChainTraceStats {
        chains_submitted: 9,
        chains_dropped: 2,
        ..Default::default()
    });

    let text = http_get(addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/plain"), "{text}");
    assert!(text.contains("# TYPE chainwatch_probe_segments_total counter"), "{text}");
    let sample = |name: &str, label: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no sample {name}{{{label}}} in\n{text}"))
    };
    assert_eq!(sample("chainwatch_probe_segments_total{", ""), "1234");
    assert_eq!(sample("chainwatch_probe_payload_bytes_total{", ""), "99000");
    assert_eq!(sample("chainwatch_probe_losses_total{", "reason=\"ring_full\""), "5");
    assert_eq!(sample("chainwatch_probe_losses_total{", "reason=\"undecodable\""), "2");
    assert_eq!(sample("chainwatch_probe_losses_total{", "reason=\"hold_timeout\""), "4");
    assert_eq!(sample("chainwatch_probe_losses_total{", "reason=\"uprobes_deferred\""), "6");
    assert_eq!(sample("chainwatch_probe_evictions_total{", "table=\"connections\""), "3");
    assert_eq!(sample("chainwatch_probe_lost_payload_bytes_total{", "reason=\"gap\""), "17");
    assert!(text.contains("# TYPE chainwatch_policy_evaluation_duration_seconds histogram"), "{text}");
    assert_eq!(sample("chainwatch_traces_chains_total{", "outcome=\"dropped\""), "2");
    assert_eq!(sample("chainwatch_policy_evaluation_duration_seconds_count{", "policy_id=\"pii-exfil\""), "1");

    // Values are read at scrape time.
    probe.publish(ProbeSnapshot { segments: 2000, ..Default::default() });
    let text = http_get(addr, "/metrics").await;
    assert!(text.lines().any(|l| l.starts_with("chainwatch_probe_segments_total{") && l.ends_with(" 2000")), "{text}");

    let not_found = http_get(addr, "/nope").await;
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");

    // A second process on the same port fails with an error naming the address.
    let cfg2 = MetricsConfig { otlp_endpoint: None, prometheus_listen: Some(addr.to_string()), ..Default::default() };
    let err = Telemetry::init(&cfg2, "x").err().expect("port in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let bad =
        MetricsConfig { otlp_endpoint: None, prometheus_listen: Some("not-an-addr".into()), ..Default::default() };
    assert!(Telemetry::init(&bad, "x").err().unwrap().to_string().contains("metrics.prometheus_listen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_collector_is_counted_not_fatal() {
    // A port nobody listens on: connection refused, retried by the exporter, then given up.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exporter =
        Arc::new(ChainTraceExporter::new(&format!("http://127.0.0.1:{port}"), "chainwatch-test", 4).unwrap());
    assert!(exporter.submit(&seed_chain(), &[seed_violation()]));
    let flusher = exporter.clone();
    let stats = tokio::task::spawn_blocking(move || flusher.flush(Duration::from_secs(60))).await.unwrap().unwrap();
    assert_eq!(stats.chains_submitted, 1);
    assert_eq!(stats.spans_exported, 0);
    assert_eq!(stats.export_failures, 1, "{stats:?}");
    assert!(
        ChainTraceExporter::new("127.0.0.1:4318", "x", 4).err().unwrap().to_string().contains("metrics.otlp_endpoint")
    );
}
