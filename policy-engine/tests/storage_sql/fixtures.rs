//! Hand-built, realistic chains for the storage and SQL tests: a support agent that reads a
//! Jira ticket, pulls customers from the production database, sends them to an LLM, gzips the
//! answer and uploads it to an unknown host; a billing report; a staging analytics job; a
//! research agent posting to a paste site; an old PII chain three days back. Plus a temporary
//! data directory that removes itself.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chainwatch_policy_engine::sql::json_array;
use chainwatch_schemas::{AgentRef, Autonomy, Chain, ChainStatus, ChainStep, PiiFlow, Severity, ToolExecution, Violation};
use datafusion::arrow::array::RecordBatch;

pub const SEC: i64 = 1_000_000_000;
pub const HOUR: i64 = 3_600 * SEC;
pub const DAY: i64 = 24 * HOUR;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("cw-storage-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // CHAINWATCH_KEEP_TEST_DATA=1 keeps the data directory (to try `chainwatch sql` on it).
        if std::env::var_os("CHAINWATCH_KEEP_TEST_DATA").is_some() {
            eprintln!("kept test data in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Rows of a query answer as JSON objects.
pub fn rows(batches: &[RecordBatch]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let bytes = json_array(batches).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
}

pub fn agent(name: &str) -> AgentRef {
    AgentRef {
        node: "node-a".into(),
        agent_key: format!("node-a/{name}"),
        tgid: 4242,
        process_start_ns: 1_764_000_000 * SEC,
        exe: "/usr/bin/python3".into(),
        comm: "python3".into(),
        container_id: Some("c0ffee".into()),
        pod_uid: None,
        namespace: Some("agents".into()),
        team: Some("support".into()),
    }
}

fn step(kind: &str, protocol: &str, category: &str, destination: Option<&str>, summary: &str) -> ChainStep {
    ChainStep {
        kind: kind.into(),
        protocol: protocol.into(),
        tgid: 4242,
        comm: "python3".into(),
        node: "node-a".into(),
        destination: destination.map(String::from),
        category: category.into(),
        summary: summary.into(),
        ..ChainStep::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn llm(host: &str, model: &str, input_tokens: i64, output_tokens: i64, pii: &[&str]) -> ChainStep {
    ChainStep {
        method: Some("POST".into()),
        model: Some(model.into()),
        input_tokens,
        output_tokens,
        cost_usd: (input_tokens as f64 * 2.5 + output_tokens as f64 * 10.0) / 1e6,
        bytes_out: input_tokens * 4,
        bytes_in: output_tokens * 4,
        pii_types: strings(pii),
        ..step("llm_call", "http1", "llm", Some(host), &format!("chat {model}"))
    }
}

pub fn sql(host: &str, statement: &str, rows: i64, pii: &[&str]) -> ChainStep {
    ChainStep {
        rows: Some(rows),
        statement: Some(statement.into()),
        bytes_out: statement.len() as i64,
        bytes_in: rows * 120,
        pii_types: strings(pii),
        ..step("sql", "postgres", "database", Some(host), &format!("{statement} ({rows} rows)"))
    }
}

pub fn saas(host: &str, method: &str, path: &str, bytes_out: i64) -> ChainStep {
    ChainStep {
        method: Some(method.into()),
        bytes_out,
        bytes_in: 2_048,
        ..step("saas_call", "http1", "saas", Some(host), &format!("{method} {host}{path}"))
    }
}

pub fn upload(host: &str, category: &str, bytes: i64, pii: &[&str], archive: Option<&str>) -> ChainStep {
    ChainStep {
        method: Some("POST".into()),
        bytes_out: bytes,
        bytes_in: 256,
        pii_types: strings(pii),
        archive_format: archive.map(String::from),
        ..step("upload", "http1", category, Some(host), &format!("POST {host}/upload {bytes} bytes"))
    }
}

pub fn process(cmdline: &str) -> ChainStep {
    ChainStep { tgid: 4300, comm: cmdline.split(' ').next().unwrap_or("").into(), ..step("process", "", "internal", None, cmdline) }
}

/// A chain over `steps`, numbered and timed one second apart from `start_ns`, with the chain
/// totals derived from the steps.
pub fn chain(id: &str, version: i64, agent_name: &str, start_ns: i64, mut steps: Vec<ChainStep>) -> Chain {
    for (i, s) in steps.iter_mut().enumerate() {
        s.index = i as i32;
        s.event_id = format!("{id}-ev-{i}");
        s.ts_start_ns = start_ns + i as i64 * SEC;
        s.ts_end_ns = s.ts_start_ns + SEC / 2;
    }
    let mut destinations: Vec<String> = steps.iter().filter_map(|s| s.destination.clone()).collect();
    destinations.sort();
    destinations.dedup();
    let mut pii_types: Vec<String> = steps.iter().flat_map(|s| s.pii_types.clone()).collect();
    pii_types.sort();
    pii_types.dedup();
    Chain {
        chain_id: id.into(),
        version,
        status: ChainStatus::Open,
        agent: agent(agent_name),
        start_ns,
        end_ns: start_ns + steps.len() as i64 * SEC,
        tools: vec![],
        destinations,
        pii_types,
        bytes_out: steps.iter().map(|s| s.bytes_out).sum(),
        bytes_in: steps.iter().map(|s| s.bytes_in).sum(),
        input_tokens: steps.iter().map(|s| s.input_tokens).sum(),
        output_tokens: steps.iter().map(|s| s.output_tokens).sum(),
        cost_usd: steps.iter().map(|s| s.cost_usd).sum(),
        max_tool_repeats: 0,
        autonomy: Autonomy::Autonomous,
        risk_score: 0.0,
        risk_reasons: vec![],
        steps,
        tool_calls: vec![],
        pii_flows: vec![],
    }
}

pub fn with_tool(mut c: Chain, id: &str, name: &str, requested_at: i32, executed: &[i32], result: Option<i32>) -> Chain {
    c.tool_calls.push(ToolExecution {
        tool_call_id: id.into(),
        tool_name: name.into(),
        requested_at_step: requested_at,
        executed_steps: executed.to_vec(),
        result_step: result,
        approved: false,
    });
    if !c.tools.contains(&name.to_string()) {
        c.tools.push(name.into());
    }
    c.max_tool_repeats = c.max_tool_repeats.max(1);
    if let Some(s) = c.steps.iter_mut().find(|s| s.index == requested_at) {
        s.tool_name = Some(name.into());
        s.tool_call_id = Some(id.into());
    }
    c
}

pub fn with_flow(mut c: Chain, fingerprint: &str, pii_type: &str, from: i32, to: i32) -> Chain {
    let destination = c.steps.iter().find(|s| s.index == to).and_then(|s| s.destination.clone());
    c.pii_flows.push(PiiFlow { fingerprint: fingerprint.into(), pii_type: pii_type.into(), from_step: from, to_step: to, destination });
    c
}

pub fn closed(mut c: Chain) -> Chain {
    c.status = ChainStatus::Closed;
    c
}

pub const TICKET: &str = "SUP-4711";
pub const PROD_DB: &str = "postgres.prod.internal";

/// The support agent's chain as first seen: the ticket is read and the model asks for a tool.
pub fn support_chain_v1(now: i64) -> Chain {
    let c = chain(
        "chain-sup-4711",
        1,
        "support-agent",
        now - HOUR,
        vec![
            saas("acme.atlassian.net", "GET", &format!("/rest/api/3/issue/{TICKET}"), 300),
            llm("api.openai.com", "gpt-4o", 1_800, 40, &[]),
        ],
    );
    with_tool(c, "call_1", "query_database", 1, &[], None)
}

/// ... and complete: customers from production, PII to the LLM, gzip, upload to an unknown host.
pub fn support_chain_v2(now: i64) -> Chain {
    let c = chain(
        "chain-sup-4711",
        2,
        "support-agent",
        now - HOUR,
        vec![
            saas("acme.atlassian.net", "GET", &format!("/rest/api/3/issue/{TICKET}"), 300),
            llm("api.openai.com", "gpt-4o", 1_800, 40, &[]),
            sql(PROD_DB, "SELECT name, email, phone FROM customers WHERE region = 'EU'", 1_200, &["email", "phone"]),
            llm("api.openai.com", "gpt-4o", 48_000, 900, &["email", "phone"]),
            process("gzip -c /tmp/customers.csv"),
            upload("files.evil-drop.io", "unknown-external", 250_000, &["email"], Some("gzip")),
        ],
    );
    let c = with_tool(c, "call_1", "query_database", 1, &[2], Some(3));
    let c = with_flow(c, "fp-email-1", "email", 2, 3);
    let c = with_flow(c, "fp-phone-1", "phone", 2, 3);
    closed(with_flow(c, "fp-email-1", "email", 2, 5))
}

pub fn billing_chain(now: i64) -> Chain {
    closed(chain(
        "chain-billing-1",
        1,
        "billing-agent",
        now - 2 * HOUR,
        vec![
            sql(PROD_DB, "SELECT SUM(amount) FROM invoices WHERE month = '2026-10'", 1, &[]),
            llm("api.openai.com", "gpt-4o-mini", 600, 120, &[]),
            saas("hooks.slack.com", "POST", "/services/T000/B000/XXXX", 1_100),
        ],
    ))
}

/// Three days old: PII went to an LLM then, outside the last 24 hours.
pub fn old_support_chain(now: i64) -> Chain {
    closed(chain(
        "chain-old-1",
        1,
        "support-agent",
        now - 3 * DAY,
        vec![
            sql(PROD_DB, "SELECT email FROM customers WHERE id = 7", 1, &["email"]),
            llm("api.openai.com", "gpt-4o", 900, 30, &["email"]),
        ],
    ))
}

pub fn staging_chain(now: i64) -> Chain {
    closed(chain(
        "chain-staging-1",
        1,
        "analytics-agent",
        now - HOUR / 2,
        vec![
            sql("postgres.staging.internal", "SELECT * FROM events", 50_000, &[]),
            llm("api.openai.com", "gpt-4o-mini", 3_000, 200, &[]),
        ],
    ))
}

pub fn research_chain(now: i64) -> Chain {
    closed(chain(
        "chain-research-1",
        1,
        "research-agent",
        now - HOUR / 3,
        vec![
            llm("api.anthropic.com", "claude-sonnet-4", 2_500, 700, &[]),
            saas("api.github.com", "GET", "/repos/acme/app/issues", 0),
            upload("pastebin.com", "unknown-external", 9_000, &[], None),
        ],
    ))
}

/// The violation the policy pack raises on the support chain.
pub fn exfil_violation(now: i64) -> Violation {
    Violation {
        violation_id: "viol-pii-exfil-sup-4711".into(),
        version: 1,
        policy_id: "pii-to-unauthorized-destination".into(),
        policy_title: "PII uploaded to an unauthorized external destination".into(),
        severity: Severity::High,
        description: "customer PII left for a host outside the allowlist".into(),
        chain_id: "chain-sup-4711".into(),
        node: "node-a".into(),
        agent_key: "node-a/support-agent".into(),
        first_seen_ns: now - HOUR + 5 * SEC,
        ts_ns: now - HOUR + 5 * SEC,
        evidence_steps: vec![2, 5],
        evidence: [("destination".to_string(), "files.evil-drop.io".to_string())].into_iter().collect(),
        pii_types: vec!["email".into()],
        risk_score: 0.9,
        tags: vec!["AML.T0024".into()],
    }
}

/// The allowlist the investigation examples join with (TOML, as in policy.reference_dir).
pub const ALLOWED_DESTINATIONS_TOML: &str = r#"
[[destination]]
host = "*.openai.com"
category = "llm"
[[destination]]
host = "api.anthropic.com"
category = "llm"
[[destination]]
host = "*.atlassian.net"
category = "saas"
[[destination]]
host = "hooks.slack.com"
category = "saas"
[[destination]]
host = "api.github.com"
category = "saas"
[[destination]]
host = "postgres.*.internal"
category = "database"
"#;
