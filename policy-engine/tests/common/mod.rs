//! Chains for the policy tests: small builders for steps, tool calls and PII flows, and the
//! seed scenario's exfiltration chain with its benign twin (tests/scenario/README.md).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chainwatch_config::PolicyConfig;
use chainwatch_policy_engine::PolicyEngine;
use chainwatch_schemas::{AgentRef, Autonomy, Chain, ChainStatus, ChainStep, PiiFlow, ToolExecution, Violation};

/// 2023-11-14T22:13:20Z, a Tuesday (23:13 in Berlin).
pub const T0: i64 = 1_700_000_000_000_000_000;
pub const SEC: i64 = 1_000_000_000;
pub const AGENT: &str = "node-a/support-agent";

pub fn base_step(index: i32, kind: &str, category: &str, destination: Option<&str>) -> ChainStep {
    ChainStep {
        index,
        event_id: format!("ev-{index}"),
        ts_start_ns: T0 + i64::from(index) * SEC,
        ts_end_ns: T0 + i64::from(index) * SEC + SEC / 2,
        kind: kind.into(),
        protocol: "http1".into(),
        tgid: 4242,
        comm: "python3".into(),
        node: "node-a".into(),
        destination: destination.map(String::from),
        category: category.into(),
        summary: format!("{kind} {}", destination.unwrap_or("")),
        ..Default::default()
    }
}

pub fn llm(index: i32, input_tokens: i64, pii: &[&str]) -> ChainStep {
    ChainStep {
        method: Some("POST".into()),
        model: Some("gpt-4o".into()),
        input_tokens,
        output_tokens: 100,
        pii_types: strings(pii),
        ..base_step(index, "llm_call", "llm", Some("api.openai.com"))
    }
}

pub fn sql(index: i32, statement: &str, rows: i64, pii: &[&str]) -> ChainStep {
    ChainStep {
        protocol: "postgres".into(),
        statement: Some(statement.into()),
        summary: statement.into(),
        rows: Some(rows),
        pii_types: strings(pii),
        ..base_step(index, "sql", "database", Some("db.internal.test"))
    }
}

pub fn post(index: i32, kind: &str, destination: &str, category: &str) -> ChainStep {
    ChainStep { method: Some("POST".into()), bytes_out: 5_000, ..base_step(index, kind, category, Some(destination)) }
}

pub fn process(index: i32, comm: &str, cmdline: &str) -> ChainStep {
    ChainStep { protocol: "".into(), comm: comm.into(), summary: cmdline.into(), tgid: 5000 + index, ..base_step(index, "process", "internal", None) }
}

pub fn vector(index: i32, top_k: i64) -> ChainStep {
    ChainStep { protocol: "grpc".into(), top_k: Some(top_k), ..base_step(index, "vector_query", "vectordb", Some("vectors.internal.test")) }
}

pub fn tool(id: &str, name: &str, requested_at: i32, executed: i32) -> ToolExecution {
    ToolExecution {
        tool_call_id: id.into(),
        tool_name: name.into(),
        requested_at_step: requested_at,
        executed_steps: vec![executed],
        result_step: None,
        approved: false,
    }
}

pub fn flow(pii_type: &str, from: i32, to: i32, destination: &str) -> PiiFlow {
    PiiFlow {
        fingerprint: format!("fp-{pii_type}-{from}"),
        pii_type: pii_type.into(),
        from_step: from,
        to_step: to,
        destination: Some(destination.into()),
    }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A chain of these steps with its aggregates filled in.
pub fn chain(id: &str, agent: &str, steps: Vec<ChainStep>, tool_calls: Vec<ToolExecution>, pii_flows: Vec<PiiFlow>) -> Chain {
    let start_ns = steps.iter().map(|s| s.ts_start_ns).min().unwrap_or(T0);
    let end_ns = steps.iter().map(|s| s.ts_end_ns).max().unwrap_or(T0);
    let tools: BTreeSet<String> = tool_calls.iter().map(|t| t.tool_name.clone()).collect();
    let destinations: BTreeSet<String> = steps.iter().filter_map(|s| s.destination.clone()).collect();
    let pii: BTreeSet<String> = steps.iter().flat_map(|s| s.pii_types.clone()).collect();
    Chain {
        chain_id: id.into(),
        version: 1,
        status: ChainStatus::Closed,
        agent: AgentRef {
            node: "node-a".into(),
            agent_key: agent.into(),
            tgid: 4242,
            process_start_ns: T0 - SEC,
            exe: "/usr/bin/python3".into(),
            comm: "python3".into(),
            ..Default::default()
        },
        start_ns,
        end_ns,
        input_tokens: steps.iter().map(|s| s.input_tokens).sum(),
        output_tokens: steps.iter().map(|s| s.output_tokens).sum(),
        bytes_out: steps.iter().map(|s| s.bytes_out).sum(),
        bytes_in: 0,
        cost_usd: 0.0,
        max_tool_repeats: 1,
        autonomy: Autonomy::Autonomous,
        risk_score: 0.5,
        risk_reasons: Vec::new(),
        tools: tools.into_iter().collect(),
        destinations: destinations.into_iter().collect(),
        pii_types: pii.into_iter().collect(),
        steps,
        tool_calls,
        pii_flows,
    }
}

/// The seed scenario (tests/scenario/README.md): chat -> Postgres SELECT of customers -> chat
/// with the rows -> vector query -> Jira + Slack POSTs -> child gzip -> child curl upload of
/// the archive to personal-pastebin.com. `benign`: the same work without the upload.
pub fn seed_chain(benign: bool) -> Chain {
    let pii = ["email", "phone", "credit_card", "person_name"];
    let mut steps = vec![
        llm(0, 900, &[]),
        sql(1, "SELECT id, name, email, phone, card FROM customers WHERE plan = 'premium' LIMIT 24", 24, &pii),
        llm(2, 4_000, &["email", "phone", "credit_card"]),
        vector(3, 3),
        post(4, "saas_call", "jira.example.test", "saas"),
        post(5, "saas_call", "slack.example.test", "saas"),
        process(6, "gzip", "gzip -f -9 /tmp/cw-scenario/conversation.json"),
    ];
    let mut tools = vec![
        tool("call_1", "query_database", 0, 1),
        tool("call_2", "search_docs", 2, 3),
        tool("call_3", "create_ticket", 2, 4),
        tool("call_4", "post_slack", 2, 5),
    ];
    let flows = vec![flow("email", 1, 2, "api.openai.com"), flow("phone", 1, 2, "api.openai.com"), flow("email", 1, 5, "slack.example.test")];
    if !benign {
        let mut up = post(7, "upload", "personal-pastebin.com", "unknown-external");
        up.comm = "curl".into();
        up.archive_format = Some("gzip".into());
        steps.push(up);
        tools.push(tool("call_5", "upload_file", 2, 7));
    }
    chain(if benign { "seed-benign" } else { "seed-exfil" }, AGENT, steps, tools, flows)
}

/// An engine on the built-in pack, optionally with a reference directory.
pub async fn engine(reference_dir: Option<&Path>, policies_dir: Option<&Path>) -> PolicyEngine {
    let cfg = PolicyConfig {
        reference_dir: reference_dir.map(Path::to_path_buf),
        policies_dir: policies_dir.map(Path::to_path_buf),
        ..PolicyConfig::default()
    };
    let e = PolicyEngine::new(&cfg).await.unwrap();
    assert!(policies_dir.is_some() || e.policy_errors().is_empty(), "built-in pack errors: {:?}", e.policy_errors());
    e
}

pub fn ids(v: &[Violation]) -> BTreeSet<String> {
    v.iter().map(|v| v.policy_id.clone()).collect()
}

pub fn of<'a>(v: &'a [Violation], policy: &str) -> Vec<&'a Violation> {
    v.iter().filter(|v| v.policy_id == policy).collect()
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cw-policy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A reference directory with an agent profile for AGENT (Berlin business hours, two tools).
pub fn reference_with_profile(name: &str) -> PathBuf {
    let d = temp_dir(name);
    std::fs::write(
        d.join("agent_profiles.toml"),
        r#"
[[profile]]
agent = "*/support-agent"
expected_tools = ["query_database", "search_docs", "create_ticket", "post_slack"]
business_hours = "08:00-18:00"
business_days = ["Mon", "Tue", "Wed", "Thu", "Fri"]
time_zone = "Europe/Berlin"
data_scope = ["crm.customers"]
"#,
    )
    .unwrap();
    std::fs::write(d.join("allowed_destinations.csv"), "host,category\n*,saas\napi.openai.com,llm\n").unwrap();
    d
}
