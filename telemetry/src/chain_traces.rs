//! A `Chain` and its `Violation`s as OTLP spans, following the OpenTelemetry GenAI semantic
//! conventions, so any OTel backend shows one chain as one trace:
//!
//! ```text
//! invoke_agent <agent>                      (root; gen_ai.agent.name / gen_ai.agent.id)
//! ├── chat <model>                          (one per llm_call step; embeddings <model> likewise)
//! ├── execute_tool <tool>                   (one per attributed ToolExecution)
//! │   └── SELECT / POST / ...               (its executed steps: db.* / http.* attributes)
//! ├── chat <model>
//! ├── exec gzip                             (steps no tool execution claims hang off the root)
//! └── POST                                  (+ event gen_ai.security.finding per violation)
//! ```
//!
//! Ids are deterministic, so re-exporting an updated chain lands in the same trace with the
//! same span ids: trace id = SHA-256("chainwatch-trace:" + chain_id)[..16], step span id =
//! SHA-256("chainwatch-span:" + event_id)[..8], tool span id from chain id + tool call id.
//! Timestamps are the steps' `ts_*_ns` (Unix ns). No values leave: SQL text is sanitized
//! (literals -> `?`), PII appears as types only.
//!
//! A violation becomes a span event `gen_ai.security.finding` on the span of its last evidence
//! step (the root when no evidence step is in the chain). The `gen_ai.security.*` attribute
//! names follow the GenAI security-finding proposal; they are not in a released convention yet.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chainwatch_schemas::{Chain, ChainStep, ToolExecution, Violation};
use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use sha2::{Digest, Sha256};

use crate::sql_sanitize::{operation_name, sanitize_sql};
use crate::stage_metrics::severity_name;

/// Span event name of a policy finding.
pub const SECURITY_FINDING_EVENT: &str = "gen_ai.security.finding";

/// What a `ChainStep` does not carry about an LLM call, from its `SemanticEvent` when the caller
/// has it (keyed by event id in [`chain_to_spans_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmDetails {
    /// `gen_ai.provider.name` (openai, anthropic, ...); else guessed from the destination host.
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub finish_reasons: Vec<String>,
}

/// The chain's spans: root first, then tool executions, then steps in chain order.
pub fn chain_to_spans(chain: &Chain, violations: &[Violation]) -> Vec<SpanData> {
    chain_to_spans_with(chain, violations, &HashMap::new())
}

/// As [`chain_to_spans`], with LLM details by step event id.
pub fn chain_to_spans_with(
    chain: &Chain,
    violations: &[Violation],
    llm: &HashMap<String, LlmDetails>,
) -> Vec<SpanData> {
    let trace_id = trace_id_for_chain(&chain.chain_id);
    let scope = InstrumentationScope::builder("chainwatch.chains").with_version(env!("CARGO_PKG_VERSION")).build();
    let root_id = derived_span_id(&["agent", &chain.chain_id]);
    let chain_start = unix_ns(chain.start_ns);
    let chain_end = unix_ns(chain.end_ns.max(chain.start_ns));

    let mut spans = Vec::with_capacity(1 + chain.tool_calls.len() + chain.steps.len());
    spans.push(span(
        &scope,
        trace_id,
        root_id,
        SpanId::INVALID,
        SpanKind::Internal,
        agent_span_name(chain),
        chain_start,
        chain_end,
        agent_attributes(chain),
    ));

    // Which tool execution (if any) ran each step, by step index.
    let mut parent_of_step: HashMap<i32, SpanId> = HashMap::new();
    let mut tool_ids = HashSet::new();
    for tool in &chain.tool_calls {
        let id = derived_span_id(&["tool", &chain.chain_id, &tool.tool_call_id, &tool.tool_name]);
        if !tool_ids.insert(id) {
            continue;
        }
        let executed: Vec<&ChainStep> =
            tool.executed_steps.iter().filter_map(|i| chain.steps.iter().find(|s| s.index == *i)).collect();
        let (start, end) = tool_span_time(chain, tool, &executed);
        for s in &executed {
            parent_of_step.entry(s.index).or_insert(id);
        }
        spans.push(span(
            &scope,
            trace_id,
            id,
            root_id,
            SpanKind::Internal,
            format!("execute_tool {}", tool.tool_name),
            start,
            end,
            tool_attributes(tool),
        ));
    }

    let mut seen_ids = HashSet::new();
    let mut span_of_step: HashMap<i32, usize> = HashMap::new();
    for step in &chain.steps {
        let mut id = if step.event_id.is_empty() { SpanId::INVALID } else { span_id_for_event(&step.event_id) };
        if id == SpanId::INVALID || !seen_ids.insert(id) || tool_ids.contains(&id) || id == root_id {
            id = derived_span_id(&["step", &chain.chain_id, &step.index.to_string()]);
            seen_ids.insert(id);
        }
        let parent = parent_of_step.get(&step.index).copied().unwrap_or(root_id);
        let (name, kind, attributes) = step_span(step, llm.get(&step.event_id));
        let start = unix_ns(step.ts_start_ns);
        let end = unix_ns(step.ts_end_ns.max(step.ts_start_ns));
        span_of_step.insert(step.index, spans.len());
        spans.push(span(&scope, trace_id, id, parent, kind, name, start, end, attributes));
    }

    for v in violations {
        let target = v
            .evidence_steps
            .iter()
            .filter_map(|i| span_of_step.get(i).map(|pos| (*i, *pos)))
            .max()
            .map(|(_, pos)| pos)
            .unwrap_or(0);
        if let Some(s) = spans.get_mut(target) {
            let ts = unix_ns(v.ts_ns).clamp(s.start_time, s.end_time);
            s.events.events.push(Event::new(SECURITY_FINDING_EVENT, ts, finding_attributes(v), 0));
        }
    }
    spans
}

/// The trace id of a chain: the same for every version of the chain.
pub fn trace_id_for_chain(chain_id: &str) -> TraceId {
    let d = Sha256::digest(format!("chainwatch-trace:{chain_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    if b == [0; 16] {
        b[15] = 1;
    }
    TraceId::from_bytes(b)
}

/// The span id of a step, from its event id.
pub fn span_id_for_event(event_id: &str) -> SpanId {
    derived_span_id(&["chainwatch-span", event_id])
}

fn derived_span_id(parts: &[&str]) -> SpanId {
    let d = Sha256::digest(parts.join(":").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    if b == [0; 8] {
        b[7] = 1;
    }
    SpanId::from_bytes(b)
}

#[allow(clippy::too_many_arguments)]
fn span(
    scope: &InstrumentationScope,
    trace_id: TraceId,
    span_id: SpanId,
    parent: SpanId,
    kind: SpanKind,
    name: String,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, TraceState::default()),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: kind,
        name: Cow::Owned(name),
        start_time: start,
        end_time: end.max(start),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

fn unix_ns(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Array(Array::String(items.into_iter().map(|s| StringValue::from(s.clone())).collect()))
}

fn agent_name(chain: &Chain) -> String {
    let key_tail = chain.agent.agent_key.rsplit('/').next().unwrap_or("").trim();
    if !key_tail.is_empty() {
        return key_tail.to_string();
    }
    if !chain.agent.comm.is_empty() {
        return chain.agent.comm.clone();
    }
    chain.agent.exe.rsplit('/').next().unwrap_or("agent").to_string()
}

fn agent_span_name(chain: &Chain) -> String {
    format!("invoke_agent {}", agent_name(chain))
}

fn agent_attributes(chain: &Chain) -> Vec<KeyValue> {
    let a = &chain.agent;
    let mut v = vec![
        KeyValue::new("gen_ai.operation.name", "invoke_agent"),
        KeyValue::new("gen_ai.agent.name", agent_name(chain)),
        KeyValue::new("gen_ai.agent.id", a.agent_key.clone()),
        KeyValue::new("gen_ai.conversation.id", chain.chain_id.clone()),
        KeyValue::new("gen_ai.usage.input_tokens", chain.input_tokens),
        KeyValue::new("gen_ai.usage.output_tokens", chain.output_tokens),
        KeyValue::new("chainwatch.chain.id", chain.chain_id.clone()),
        KeyValue::new("chainwatch.chain.version", chain.version),
        KeyValue::new("chainwatch.chain.status", format!("{:?}", chain.status).to_ascii_lowercase()),
        KeyValue::new("chainwatch.chain.autonomy", format!("{:?}", chain.autonomy).to_ascii_lowercase()),
        KeyValue::new("chainwatch.risk_score", chain.risk_score),
        KeyValue::new("chainwatch.cost_usd", chain.cost_usd),
        KeyValue::new("chainwatch.bytes_out", chain.bytes_out),
        KeyValue::new("chainwatch.bytes_in", chain.bytes_in),
        KeyValue::new("host.name", a.node.clone()),
        KeyValue::new("process.pid", i64::from(a.tgid)),
        KeyValue::new("process.executable.path", a.exe.clone()),
        KeyValue::new("process.executable.name", a.comm.clone()),
    ];
    if !chain.risk_reasons.is_empty() {
        v.push(KeyValue::new("chainwatch.risk_reasons", strings(&chain.risk_reasons)));
    }
    if !chain.pii_types.is_empty() {
        v.push(KeyValue::new("chainwatch.pii_types", strings(&chain.pii_types)));
    }
    if !chain.destinations.is_empty() {
        v.push(KeyValue::new("chainwatch.destinations", strings(&chain.destinations)));
    }
    for (key, value) in [
        ("container.id", &a.container_id),
        ("k8s.pod.uid", &a.pod_uid),
        ("k8s.namespace.name", &a.namespace),
        ("chainwatch.team", &a.team),
    ] {
        if let Some(value) = value {
            v.push(KeyValue::new(key, value.clone()));
        }
    }
    v
}

/// A tool execution spans its executed steps; with none seen, the gap between the request and
/// the result.
fn tool_span_time(chain: &Chain, tool: &ToolExecution, executed: &[&ChainStep]) -> (SystemTime, SystemTime) {
    let step_at = |i: i32| chain.steps.iter().find(|s| s.index == i);
    let start = executed
        .iter()
        .map(|s| s.ts_start_ns)
        .min()
        .or_else(|| step_at(tool.requested_at_step).map(|s| s.ts_end_ns))
        .unwrap_or(chain.start_ns);
    let end = executed
        .iter()
        .map(|s| s.ts_end_ns.max(s.ts_start_ns))
        .max()
        .or_else(|| tool.result_step.and_then(step_at).map(|s| s.ts_start_ns))
        .unwrap_or(start)
        .max(start);
    (unix_ns(start), unix_ns(end))
}

fn tool_attributes(tool: &ToolExecution) -> Vec<KeyValue> {
    let mut v = vec![
        KeyValue::new("gen_ai.operation.name", "execute_tool"),
        KeyValue::new("gen_ai.tool.name", tool.tool_name.clone()),
        KeyValue::new("gen_ai.tool.call.id", tool.tool_call_id.clone()),
        KeyValue::new("gen_ai.tool.type", "function"),
        KeyValue::new("chainwatch.tool.approved", tool.approved),
        KeyValue::new("chainwatch.tool.requested_at_step", i64::from(tool.requested_at_step)),
        KeyValue::new(
            "chainwatch.tool.executed_steps",
            Value::Array(Array::I64(tool.executed_steps.iter().map(|i| i64::from(*i)).collect())),
        ),
    ];
    if let Some(r) = tool.result_step {
        v.push(KeyValue::new("chainwatch.tool.result_step", i64::from(r)));
    }
    v
}

/// What a step is, for naming and attributes.
enum StepShape {
    Llm(&'static str),
    Database,
    Vector,
    Http,
    Process,
    Other,
}

fn shape(step: &ChainStep) -> StepShape {
    match step.kind.as_str() {
        "llm_call" | "chat" | "text_completion" | "generate_content" => StepShape::Llm("chat"),
        "embeddings" => StepShape::Llm("embeddings"),
        "sql" => StepShape::Database,
        "vector_query" | "vector_upsert" | "vector" => StepShape::Vector,
        k if k.starts_with("process") || k.starts_with("exec") || step.protocol == "process" => StepShape::Process,
        _ if step.method.is_some() || matches!(step.protocol.as_str(), "http1" | "http2" | "grpc") => StepShape::Http,
        _ => StepShape::Other,
    }
}

fn step_span(step: &ChainStep, llm: Option<&LlmDetails>) -> (String, SpanKind, Vec<KeyValue>) {
    let mut v = vec![
        KeyValue::new("chainwatch.step.index", i64::from(step.index)),
        KeyValue::new("chainwatch.step.kind", step.kind.clone()),
        KeyValue::new("chainwatch.event_id", step.event_id.clone()),
        KeyValue::new("chainwatch.destination.category", step.category.clone()),
        KeyValue::new("chainwatch.bytes_out", step.bytes_out),
        KeyValue::new("chainwatch.bytes_in", step.bytes_in),
        KeyValue::new("process.pid", i64::from(step.tgid)),
        KeyValue::new("process.executable.name", step.comm.clone()),
    ];
    if !step.protocol.is_empty() {
        v.push(KeyValue::new("network.protocol.name", step.protocol.clone()));
    }
    if let Some(dest) = &step.destination {
        v.push(KeyValue::new("server.address", dest.clone()));
    }
    for (key, list) in [
        ("chainwatch.pii_types", &step.pii_types),
        ("chainwatch.secret_types", &step.secret_types),
        ("chainwatch.injection_rules", &step.injection_rules),
    ] {
        if !list.is_empty() {
            v.push(KeyValue::new(key, strings(list)));
        }
    }
    let (name, kind) = match shape(step) {
        StepShape::Llm(operation) => {
            let request_model = llm.and_then(|d| d.request_model.clone()).or_else(|| step.model.clone());
            let response_model = llm.and_then(|d| d.response_model.clone()).or_else(|| step.model.clone());
            let provider = llm
                .and_then(|d| d.provider.clone())
                .or_else(|| step.destination.as_deref().and_then(provider_from_host).map(str::to_string));
            v.push(KeyValue::new("gen_ai.operation.name", operation));
            if let Some(p) = provider {
                v.push(KeyValue::new("gen_ai.provider.name", p));
            }
            if let Some(m) = &request_model {
                v.push(KeyValue::new("gen_ai.request.model", m.clone()));
            }
            if let Some(m) = response_model {
                v.push(KeyValue::new("gen_ai.response.model", m));
            }
            v.push(KeyValue::new("gen_ai.usage.input_tokens", step.input_tokens));
            v.push(KeyValue::new("gen_ai.usage.output_tokens", step.output_tokens));
            if let Some(d) = llm.filter(|d| !d.finish_reasons.is_empty()) {
                v.push(KeyValue::new("gen_ai.response.finish_reasons", strings(&d.finish_reasons)));
            }
            v.push(KeyValue::new("chainwatch.cost_usd", step.cost_usd));
            if let Some(t) = &step.tool_name {
                v.push(KeyValue::new("chainwatch.requested_tool", t.clone()));
            }
            let name = match request_model {
                Some(m) => format!("{operation} {m}"),
                None => operation.to_string(),
            };
            (name, SpanKind::Client)
        }
        StepShape::Database => {
            let system = match step.protocol.as_str() {
                "postgres" | "postgresql" => "postgresql".to_string(),
                "" => "other_sql".to_string(),
                p => p.to_string(),
            };
            v.push(KeyValue::new("db.system.name", system.clone()));
            let op = step.statement.as_deref().and_then(operation_name);
            if let Some(sql) = &step.statement {
                v.push(KeyValue::new("db.query.text", sanitize_sql(sql)));
            }
            if let Some(op) = &op {
                v.push(KeyValue::new("db.operation.name", op.clone()));
            }
            if let Some(rows) = step.rows {
                v.push(KeyValue::new("db.response.returned_rows", rows));
            }
            (op.unwrap_or(system), SpanKind::Client)
        }
        StepShape::Vector => {
            v.push(KeyValue::new("db.operation.name", "query"));
            if let Some(k) = step.top_k {
                v.push(KeyValue::new("chainwatch.vector.top_k", k));
            }
            (
                format!("{} {}", step.kind, step.destination.as_deref().unwrap_or("")).trim_end().to_string(),
                SpanKind::Client,
            )
        }
        StepShape::Http => {
            let method = step.method.clone().unwrap_or_else(|| "_OTHER".to_string());
            v.push(KeyValue::new("http.request.method", method.clone()));
            if let Some(f) = &step.archive_format {
                v.push(KeyValue::new("chainwatch.archive_format", f.clone()));
            }
            (if method == "_OTHER" { "HTTP".to_string() } else { method }, SpanKind::Client)
        }
        StepShape::Process => (format!("exec {}", step.comm), SpanKind::Internal),
        StepShape::Other => {
            let kind = if step.destination.is_some() { SpanKind::Client } else { SpanKind::Internal };
            (if step.kind.is_empty() { "step".to_string() } else { step.kind.clone() }, kind)
        }
    };
    (name, kind, v)
}

/// `gen_ai.provider.name` for well-known API hosts.
pub fn provider_from_host(host: &str) -> Option<&'static str> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let h = host.as_str();
    Some(match h {
        "api.openai.com" => "openai",
        "api.anthropic.com" => "anthropic",
        "api.mistral.ai" => "mistral_ai",
        "api.cohere.com" | "api.cohere.ai" => "cohere",
        "api.groq.com" => "groq",
        "api.deepseek.com" => "deepseek",
        "api.perplexity.ai" => "perplexity",
        "api.x.ai" => "x_ai",
        "generativelanguage.googleapis.com" => "gcp.gemini",
        _ if h.ends_with(".openai.azure.com") => "azure.ai.openai",
        _ if h.ends_with("aiplatform.googleapis.com") => "gcp.vertex_ai",
        _ if h.starts_with("bedrock-runtime.") && h.ends_with(".amazonaws.com") => "aws.bedrock",
        _ => return None,
    })
}

fn finding_attributes(v: &Violation) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("gen_ai.security.finding.id", v.violation_id.clone()),
        KeyValue::new("gen_ai.security.policy.id", v.policy_id.clone()),
        KeyValue::new("gen_ai.security.policy.name", v.policy_title.clone()),
        KeyValue::new("gen_ai.security.risk.severity", severity_name(v.severity)),
        KeyValue::new("gen_ai.security.risk.score", v.risk_score),
        KeyValue::new(
            "chainwatch.evidence_steps",
            Value::Array(Array::I64(v.evidence_steps.iter().map(|i| i64::from(*i)).collect())),
        ),
    ];
    if !v.description.is_empty() {
        a.push(KeyValue::new("gen_ai.security.finding.description", v.description.clone()));
    }
    if !v.pii_types.is_empty() {
        a.push(KeyValue::new("chainwatch.pii_types", strings(&v.pii_types)));
    }
    if !v.tags.is_empty() {
        a.push(KeyValue::new("chainwatch.tags", strings(&v.tags)));
    }
    for (k, val) in &v.evidence {
        a.push(KeyValue::new(format!("chainwatch.evidence.{k}"), val.clone()));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::samples;

    fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
        s.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(trace_id_for_chain("c1"), trace_id_for_chain("c1"));
        assert_ne!(trace_id_for_chain("c1"), trace_id_for_chain("c2"));
        assert_ne!(span_id_for_event("e1"), span_id_for_event("e2"));
        let chain = samples::chain();
        let a = chain_to_spans(&chain, &[]);
        let mut newer = chain.clone();
        newer.version += 1;
        let b = chain_to_spans(&newer, &[]);
        let ids = |s: &[SpanData]| {
            s.iter().map(|x| (x.span_context.trace_id(), x.span_context.span_id())).collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
    }

    #[test]
    fn sample_chain_shape() {
        let chain = samples::chain();
        let spans = chain_to_spans(&chain, &[samples::violation()]);
        assert_eq!(spans[0].name, "invoke_agent support-agent");
        assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
        let tool = spans.iter().find(|s| s.name == "execute_tool query_database").unwrap();
        assert_eq!(tool.parent_span_id, spans[0].span_context.span_id());
        assert_eq!(attr(tool, "gen_ai.tool.call.id"), Some(&Value::from("call_1")));
        let chat = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
        assert_eq!(attr(chat, "gen_ai.provider.name"), Some(&Value::from("openai")));
        assert_eq!(attr(chat, "gen_ai.usage.input_tokens"), Some(&Value::I64(2113)));
        // Evidence steps 1 and 6 are not in this one-step sample: the finding lands on the root.
        assert_eq!(spans[0].events.events.len(), 1);
        assert_eq!(spans[0].events.events[0].name, SECURITY_FINDING_EVENT);
    }

    #[test]
    fn empty_chain_gives_only_the_root() {
        let mut chain = samples::chain();
        chain.steps.clear();
        chain.tool_calls.clear();
        chain.end_ns = chain.start_ns - 5; // nonsense must not panic
        let spans = chain_to_spans(&chain, &[]);
        assert_eq!(spans.len(), 1);
        assert!(spans[0].end_time >= spans[0].start_time);
    }

    #[test]
    fn providers() {
        assert_eq!(provider_from_host("api.anthropic.com:443"), Some("anthropic"));
        assert_eq!(provider_from_host("x.openai.azure.com"), Some("azure.ai.openai"));
        assert_eq!(provider_from_host("example.com"), None);
    }
}
