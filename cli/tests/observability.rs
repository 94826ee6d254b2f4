//! chainwatch's own observability as a user meets it: `chainwatch demo` (the seed scenario
//! through the embedded pipeline) with `[metrics].otlp_endpoint` pointing at a real OTLP/HTTP
//! receiver on 127.0.0.1 delivers the chain as one GenAI trace and every stage's metrics; the
//! live status line and the progress bar draw on a terminal and add nothing when piped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chainwatch_testkit::OtlpReceiver;
use chainwatch_testkit::otlp_attributes::{int_attr, str_array, str_attr};
use chainwatch_testkit::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use chainwatch_testkit::opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};
use chainwatch_testkit::opentelemetry_proto::tonic::trace::v1::Span;

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-obs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chainwatch(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chainwatch"));
    c.current_dir(dir).env_remove("CHAINWATCH__BUS__KIND").env_remove("CHAINWATCH__METRICS__OTLP_ENDPOINT");
    c
}

fn succeeded(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The last export of each metric, by name (observable counters report totals: the last is
/// the final value).
fn last_metrics(reqs: &[ExportMetricsServiceRequest]) -> HashMap<String, Metric> {
    let mut out = HashMap::new();
    for m in reqs.iter().flat_map(|r| &r.resource_metrics).flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
        out.insert(m.name.clone(), m.clone());
    }
    out
}

fn points(metrics: &HashMap<String, Metric>, name: &str) -> Vec<NumberDataPoint> {
    match metrics.get(name).and_then(|m| m.data.clone()) {
        Some(metric::Data::Sum(s)) => s.data_points,
        Some(metric::Data::Gauge(g)) => g.data_points,
        other => panic!("{name}: no sum or gauge in {other:?} (metrics: {:?})", metrics.keys().collect::<Vec<_>>()),
    }
}

fn as_u64(p: &NumberDataPoint) -> u64 {
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => u64::try_from(i).unwrap_or(0),
        Some(number_data_point::Value::AsDouble(d)) => d as u64,
        None => 0,
    }
}

/// The single series of an instrument without attributes.
fn total(metrics: &HashMap<String, Metric>, name: &str) -> u64 {
    let p = points(metrics, name);
    assert_eq!(p.len(), 1, "{name}: {p:?}");
    as_u64(&p[0])
}

/// Series of an instrument by the value of one attribute.
fn by(metrics: &HashMap<String, Metric>, name: &str, key: &str) -> BTreeMap<String, u64> {
    points(metrics, name).iter().map(|p| (str_attr(&p.attributes, key).unwrap_or_default().to_string(), as_u64(p))).collect()
}

#[test]
fn demo_exports_the_seed_chain_as_one_genai_trace_and_every_stage_metric() {
    let receiver = OtlpReceiver::start();
    let dir = workdir("demo");
    let config = dir.join("chainwatch.toml");
    std::fs::write(&config, format!("[metrics]\notlp_endpoint = \"{}\"\n", receiver.base_url())).unwrap();
    let out = chainwatch(&dir)
        .args(["--config", config.to_str().unwrap(), "demo", "--format", "json", "--report", "report.html"])
        .output()
        .unwrap();
    let out = succeeded(out, "chainwatch demo");
    assert_eq!(receiver.refused(), Vec::<String>::new(), "OTLP/HTTP protobuf expected");

    // ---- traces: one trace, the chain.
    let mut spans: Vec<Span> = Vec::new();
    for req in receiver.traces() {
        for rs in req.resource_spans {
            let service = rs.resource.as_ref().and_then(|r| str_attr(&r.attributes, "service.name"));
            assert_eq!(service, Some("chainwatch"));
            spans.extend(rs.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    assert!(!spans.is_empty(), "no spans; stderr: {}", String::from_utf8_lossy(&out.stderr));
    let trace_ids: Vec<&Vec<u8>> = spans.iter().map(|s| &s.trace_id).collect();
    assert!(trace_ids.iter().all(|t| *t == trace_ids[0]), "the chain is one trace");
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "{:?}", roots.iter().map(|s| &s.name).collect::<Vec<_>>());
    let root = roots[0];
    assert!(root.name.starts_with("invoke_agent"), "{}", root.name);
    assert_eq!(str_attr(&root.attributes, "gen_ai.operation.name"), Some("invoke_agent"));
    let by_id: HashMap<&Vec<u8>, &Span> = spans.iter().map(|s| (&s.span_id, s)).collect();
    for s in &spans {
        assert!(s.parent_span_id.is_empty() || by_id.contains_key(&s.parent_span_id), "orphan span {}", s.name);
    }

    // Chat spans: provider, model, usage; the finish reasons the parser read from the responses.
    let chats: Vec<&Span> = spans.iter().filter(|s| s.name.starts_with("chat")).collect();
    assert!(!chats.is_empty(), "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    for chat in &chats {
        assert_eq!(str_attr(&chat.attributes, "gen_ai.operation.name"), Some("chat"));
        assert!(str_attr(&chat.attributes, "gen_ai.provider.name").is_some_and(|p| !p.is_empty()), "{chat:?}");
        assert!(str_attr(&chat.attributes, "gen_ai.request.model").is_some_and(|m| !m.is_empty()), "{chat:?}");
        assert!(int_attr(&chat.attributes, "gen_ai.usage.input_tokens").is_some_and(|n| n > 0), "{chat:?}");
        assert!(int_attr(&chat.attributes, "gen_ai.usage.output_tokens").is_some_and(|n| n > 0), "{chat:?}");
    }
    assert!(
        chats.iter().any(|c| !str_array(&c.attributes, "gen_ai.response.finish_reasons").is_empty()),
        "no chat span carries gen_ai.response.finish_reasons: {chats:?}"
    );

    // The tool execution, with the database query it ran as its child.
    let tools: Vec<&Span> = spans.iter().filter(|s| s.name.starts_with("execute_tool")).collect();
    assert!(!tools.is_empty(), "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    for tool in &tools {
        assert_eq!(tool.parent_span_id, root.span_id, "{} hangs off the agent", tool.name);
        assert!(str_attr(&tool.attributes, "gen_ai.tool.name").is_some(), "{tool:?}");
    }
    let children: Vec<&Span> = spans.iter().filter(|s| tools.iter().any(|t| t.span_id == s.parent_span_id)).collect();
    assert!(
        children.iter().any(|c| {
            str_attr(&c.attributes, "db.system.name").is_some() || str_attr(&c.attributes, "http.request.method").is_some()
        }),
        "no database/HTTP child under execute_tool: {children:?}"
    );
    assert!(
        children.iter().any(|c| str_attr(&c.attributes, "db.system.name") == Some("postgresql")),
        "the query_database tool ran the Postgres query: {children:?}"
    );

    // The two violations as security findings.
    let findings: Vec<String> = spans
        .iter()
        .flat_map(|s| &s.events)
        .filter(|e| e.name == "gen_ai.security.finding")
        .filter_map(|e| str_attr(&e.attributes, "gen_ai.security.policy.id").map(str::to_string))
        .collect();
    let mut policies = findings.clone();
    policies.sort();
    assert_eq!(policies, ["compress-then-upload", "pii-exfiltration"], "{findings:?}");

    // ---- metrics: every stage of the embedded pipeline.
    let reqs = receiver.metrics();
    assert!(!reqs.is_empty(), "no metrics; stderr: {}", String::from_utf8_lossy(&out.stderr));
    for r in &reqs {
        for rm in &r.resource_metrics {
            let service = rm.resource.as_ref().and_then(|r| str_attr(&r.attributes, "service.name"));
            assert_eq!(service, Some("chainwatch"));
        }
    }
    let metrics = last_metrics(&reqs);
    assert!(total(&metrics, "chainwatch.parser.segments") > 0);
    assert!(total(&metrics, "chainwatch.parser.payload") > 0);
    let events = total(&metrics, "chainwatch.parser.events");
    assert!(events >= 4, "LLM calls, SQL and the upload at least: {events}");
    let fsm_errors = by(&metrics, "chainwatch.parser.fsm_errors", "protocol");
    for protocol in ["http1", "http2", "grpc", "postgres"] {
        assert!(fsm_errors.contains_key(protocol), "{fsm_errors:?}");
    }
    assert!(by(&metrics, "chainwatch.parser.cap_hits", "kind").contains_key("connections_evicted_lru"));
    assert!(total(&metrics, "chainwatch.chains.events") >= events);
    assert_eq!(total(&metrics, "chainwatch.chains.open"), 0, "every chain closed at the end of the replay");
    assert!(total(&metrics, "chainwatch.chains.closed") >= 1);
    let chain_caps = by(&metrics, "chainwatch.chains.cap_hits", "kind");
    for kind in ["fingerprints_dropped", "pii_flows_cut", "split_max_steps", "closed_forgotten_early"] {
        assert_eq!(chain_caps.get(kind), Some(&0), "{chain_caps:?}");
    }

    let latency = metrics.get("chainwatch.policy.evaluation.duration").expect("policy latency histogram");
    let Some(metric::Data::Histogram(h)) = &latency.data else { panic!("not a histogram: {latency:?}") };
    let evaluated: u64 = h.data_points.iter().map(|p| p.count).sum();
    assert!(evaluated >= 1, "{h:?}");
    assert!(h.data_points.iter().all(|p| p.explicit_bounds.len() >= 10 && p.sum.is_some_and(|s| s > 0.0)), "{h:?}");

    let violations = by(&metrics, "chainwatch.policy.violations", "policy_id");
    assert_eq!(
        violations,
        BTreeMap::from([("compress-then-upload".to_string(), 1), ("pii-exfiltration".to_string(), 1)]),
        "violations by policy"
    );
    let severities: Vec<String> = points(&metrics, "chainwatch.policy.violations")
        .iter()
        .filter_map(|p| str_attr(&p.attributes, "severity").map(str::to_string))
        .collect();
    assert!(severities.iter().any(|s| s == "high"), "{severities:?}");

    let traced = by(&metrics, "chainwatch.traces.chains", "outcome");
    assert_eq!(traced.get("submitted"), Some(&1), "{traced:?}");
    assert_eq!(total(&metrics, "chainwatch.traces.spans_exported"), spans.len() as u64);
}

#[test]
fn without_an_endpoint_demo_exports_nothing() {
    let receiver = OtlpReceiver::start();
    let dir = workdir("no-endpoint");
    succeeded(chainwatch(&dir).args(["demo", "--format", "json"]).output().unwrap(), "chainwatch demo");
    assert!(receiver.bodies("/v1/traces").is_empty() && receiver.bodies("/v1/metrics").is_empty());
}

/// Terminal control a status line or progress bar would write: CSI sequences, carriage returns.
fn has_terminal_control(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\x1b[") || bytes.contains(&b'\r')
}

fn corpus_pcap(rel: &str) -> PathBuf {
    let dir = std::env::var_os("CHAINWATCH_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"));
    let p = dir.join("pcaps").join(rel);
    assert!(p.exists(), "corpus file {} missing (set CHAINWATCH_CORPORA)", p.display());
    p
}

/// `cmd` run under a pseudo-terminal (util-linux `script`): what a user at a terminal sees.
fn on_a_terminal(dir: &Path, args: &[&str]) -> Output {
    let mut line = String::from(env!("CARGO_BIN_EXE_chainwatch"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .env_remove("CHAINWATCH__BUS__KIND")
        .output()
        .unwrap_or_else(|e| panic!("script (util-linux) is needed for the terminal tests: {e}"));
    succeeded(out, &format!("script -c {line}"))
}

#[test]
fn run_status_line_draws_on_a_terminal_and_nothing_when_piped() {
    // Long enough for the one-second status line to draw.
    let run = ["run", "--format", "json", "--", "sleep", "2.5"];
    let dir = workdir("run-status");
    let piped = succeeded(chainwatch(&dir).args(run).output().unwrap(), "chainwatch run");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!has_terminal_control(&piped.stderr), "terminal control on piped stderr: {stderr:?}");
    assert!(!stderr.contains("events/s"), "{stderr}");
    assert!(stderr.contains("chainwatch run:"), "the summary line stays: {stderr}");

    let tty = on_a_terminal(&dir, &run);
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("events/s") && shown.contains("open chains"), "{shown:?}");
}

#[test]
fn parse_pcap_draws_no_progress_bar_when_piped() {
    let pcap = corpus_pcap("deepflow/http/httpv1.pcap");
    let dir = workdir("parse-progress");
    let piped = succeeded(
        chainwatch(&dir).args(["parse", "--pcap", pcap.to_str().unwrap()]).output().unwrap(),
        "chainwatch parse --pcap",
    );
    assert!(!has_terminal_control(&piped.stderr), "{:?}", String::from_utf8_lossy(&piped.stderr));
    assert!(String::from_utf8_lossy(&piped.stdout).lines().count() >= 1, "the events still come out");
    assert!(!has_terminal_control(&piped.stdout));
}

#[test]
fn probe_status_line_draws_on_a_terminal_and_nothing_when_piped() {
    // `chainwatch probe` runs until Ctrl-C: `timeout` sends SIGINT after 2.5 s (and passes the
    // probe's own exit status on).
    let bin = env!("CARGO_BIN_EXE_chainwatch");
    let probe = ["--preserve-status", "-s", "INT", "2.5", bin, "probe"];
    let dir = workdir("probe-status");
    let piped = Command::new("timeout")
        .args(probe)
        .current_dir(&dir)
        .env_remove("CHAINWATCH__BUS__KIND")
        .env("CHAINWATCH__PROBE__WATCH_ALL", "true")
        .output()
        .unwrap();
    let piped = succeeded(piped, "chainwatch probe");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!has_terminal_control(&piped.stderr), "terminal control on piped stderr: {stderr:?}");
    assert!(stderr.contains("chainwatch probe:") && !stderr.contains("events/s"), "{stderr}");

    let line = format!("CHAINWATCH__PROBE__WATCH_ALL=true timeout {}", probe.join(" "));
    let tty = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&dir)
        .env_remove("CHAINWATCH__BUS__KIND")
        .output()
        .unwrap_or_else(|e| panic!("script (util-linux) is needed for the terminal tests: {e}"));
    let tty = succeeded(tty, "chainwatch probe on a terminal");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("events/s") && shown.contains("lost"), "{shown:?}");
}

/// The last export of each metric of one service (`service.name`), by name.
fn service_metrics(reqs: &[ExportMetricsServiceRequest], service: &str) -> HashMap<String, Metric> {
    let mut out = HashMap::new();
    for rm in reqs.iter().flat_map(|r| &r.resource_metrics) {
        let name = rm.resource.as_ref().and_then(|r| str_attr(&r.attributes, "service.name"));
        if name != Some(service) {
            continue;
        }
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            out.insert(m.name.clone(), m.clone());
        }
    }
    out
}

/// `chainwatch parse`, `chain` and `policy` as consumer-group members on a real broker
/// (tansu) export their stage's metrics while they run, not only at exit.
#[test]
fn bus_workers_export_their_stage_metrics_while_running() {
    let broker = chainwatch_testkit::TansuBroker::start();
    let receiver = OtlpReceiver::start();
    let dir = workdir("workers");
    let bus_env = [
        ("CHAINWATCH__BUS__KIND", "kafka".to_string()),
        ("CHAINWATCH__KAFKA__BROKERS", broker.bootstrap()),
        ("CHAINWATCH__KAFKA__PARTITIONS", "2".to_string()),
    ];
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe/tests/fixtures/pcap/deepflow/http/httpv1.pcap");
    let replay = chainwatch(&dir).args(["probe", "--pcap"]).arg(&pcap).envs(bus_env.clone()).output().unwrap();
    succeeded(replay, "chainwatch probe --pcap");

    let workers: Vec<std::process::Child> = ["parse", "chain", "policy"]
        .into_iter()
        .map(|stage| {
            chainwatch(&dir)
                .arg(stage)
                .envs(bus_env.clone())
                .env("CHAINWATCH__METRICS__OTLP_ENDPOINT", receiver.base_url())
                // Push every 300 ms instead of the SDK's 60 s, to see values while running.
                .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // While they run: the parser's consumed segments and the chain builder's consumed events.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let running = loop {
        let reqs = receiver.metrics();
        let parser = service_metrics(&reqs, "chainwatch-parser");
        let chains = service_metrics(&reqs, "chainwatch-chain");
        let seen = |m: &HashMap<String, Metric>, name: &str| m.contains_key(name) && total(m, name) > 0;
        let policy = service_metrics(&reqs, "chainwatch-policy");
        if seen(&parser, "chainwatch.parser.segments") && seen(&chains, "chainwatch.chains.events") && seen(&policy, "chainwatch.policy.chains") {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut stderr = Vec::new();
    for w in workers {
        let _ = Command::new("kill").args(["-INT", &w.id().to_string()]).status();
        let out = w.wait_with_output().unwrap();
        stderr.push(String::from_utf8_lossy(&out.stderr).to_string());
        assert!(out.status.success(), "{stderr:?}");
    }
    assert!(running, "no running metrics from parse/chain/policy; workers said {stderr:?}");

    let reqs = receiver.metrics();
    let parser = service_metrics(&reqs, "chainwatch-parser");
    assert!(total(&parser, "chainwatch.parser.events") >= 1, "the POST /query exchange");
    assert!(total(&parser, "chainwatch.parser.payload") > 0, "payload bytes in");
    assert!(by(&parser, "chainwatch.parser.fsm_errors", "protocol").contains_key("http1"));
    assert_eq!(total(&parser, "chainwatch.parser.dead_lettered"), 0);
    let chains = service_metrics(&reqs, "chainwatch-chain");
    assert!(points(&chains, "chainwatch.chains.open").len() == 1);
    let policy = service_metrics(&reqs, "chainwatch-policy");
    for name in [
        "chainwatch.policy.chains",
        "chainwatch.policy.batches",
        "chainwatch.policy.violations_published",
        "chainwatch.policy.evaluation.duration",
    ] {
        assert!(policy.contains_key(name), "{name} missing: {:?}", policy.keys().collect::<Vec<_>>());
    }
    // consumer lag per owned partition, labelled with the stage's group and topic; all consumed
    for (service, group, topic) in [
        ("chainwatch-parser", "cw-parsers", "cw.raw.segments"),
        ("chainwatch-chain", "cw-chains", "cw.semantic.events"),
        ("chainwatch-policy", "cw-policy", "cw.chains"),
    ] {
        let m = service_metrics(&reqs, service);
        let lag = points(&m, "chainwatch.bus.consumer_lag");
        let ours: Vec<&NumberDataPoint> =
            lag.iter().filter(|p| str_attr(&p.attributes, "group") == Some(group) && str_attr(&p.attributes, "topic") == Some(topic)).collect();
        assert!(!ours.is_empty(), "{service}: no consumer_lag for {group}/{topic}: {lag:?}");
        assert!(ours.iter().all(|p| as_u64(p) == 0), "{service}: everything was consumed: {ours:?}");
    }
}
