//! Hand-built events for the chain-builder tests and bench: the seed scenario (a support agent
//! that queries Postgres, searches documents, files a Jira ticket, posts to Slack, and whose
//! child gzips the conversation and curl uploads it to personal-pastebin.com) and small makers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chainwatch_schemas::{
    AddressFamily, ConnRole, LlmCall, PiiFinding, ProcessEvent, ProcessEventKind, SemanticEvent, SocketTuple, SqlStatement,
    ToolCall, Upload, VectorOperation,
};

pub const T0: i64 = 1_700_000_000_000_000_000;
pub const MS: i64 = 1_000_000;
pub const SEC: i64 = 1_000_000_000;

pub fn proc_event(node: &str, kind: ProcessEventKind, tgid: i32, start: i64, ppid: i32, pstart: i64, exe: &str) -> ProcessEvent {
    ProcessEvent {
        node: node.into(),
        ts_ns: start,
        kind,
        tgid,
        process_start_ns: start,
        ppid,
        parent_start_ns: pstart,
        uid: 1000,
        comm: exe.rsplit('/').next().unwrap_or(exe).chars().take(15).collect(),
        exe: exe.into(),
        argv: vec![exe.into()],
        argv_truncated: false,
        cgroup_id: 1,
        cgroup_path: "/user.slice".into(),
        container_id: None,
        pod_uid: None,
        exit_code: None,
    }
}

/// A process (node, tgid, start).
#[derive(Debug, Clone, Copy)]
pub struct P<'a> {
    pub node: &'a str,
    pub tgid: i32,
    pub start: i64,
    pub comm: &'a str,
}

/// A bare event of `kind` by `p` during [t0+start_ms, t0+end_ms].
pub fn event(id: &str, p: P<'_>, kind: &str, start_ms: i64, end_ms: i64, host: &str, category: &str) -> SemanticEvent {
    SemanticEvent {
        event_id: id.into(),
        node: p.node.into(),
        conn_id: format!("{}/{}/7/{}", p.node, p.tgid, start_ms),
        tgid: p.tgid,
        process_start_ns: p.start,
        comm: p.comm.into(),
        ts_start_ns: T0 + start_ms * MS,
        ts_end_ns: T0 + end_ms * MS,
        protocol: "http1".into(),
        kind: kind.into(),
        partial: false,
        role: ConnRole::Client,
        tuple: None,
        method: Some("POST".into()),
        host: Some(host.into()),
        path: Some("/".into()),
        status: Some(200),
        request_bytes: 1_000,
        response_bytes: 2_000,
        destination_category: category.into(),
        attributes: BTreeMap::new(),
        llm: None,
        sql: None,
        vector: None,
        upload: None,
        pii: vec![],
        secrets: vec![],
        injection: vec![],
        content: None,
    }
}

/// An LLM call: `prefixes` are its conversation prefix hashes (last = its full prefix).
pub fn llm(id: &str, p: P<'_>, start_ms: i64, end_ms: i64, prefixes: &[&str], tools: &[(&str, &str)], results: &[&str]) -> SemanticEvent {
    let mut e = event(id, p, "llm_call", start_ms, end_ms, "api.openai.com", "llm");
    e.path = Some("/v1/chat/completions".into());
    e.llm = Some(LlmCall {
        provider: "openai".into(),
        operation: "chat".into(),
        request_model: Some("gpt-4o".into()),
        response_model: Some("gpt-4o-2024-08-06".into()),
        message_count: prefixes.len() as i32,
        tool_calls: tools
            .iter()
            .map(|(id, name)| ToolCall { id: (*id).into(), name: (*name).into(), arguments: "{}".into() })
            .collect(),
        tool_result_ids: results.iter().map(|r| (*r).into()).collect(),
        input_tokens: Some(1_000),
        output_tokens: Some(500),
        conversation_prefix_hashes: prefixes.iter().map(|h| (*h).into()).collect(),
        ..LlmCall::default()
    });
    e
}

pub fn sql(id: &str, p: P<'_>, start_ms: i64, end_ms: i64, statement: &str, rows: i64) -> SemanticEvent {
    let mut e = event(id, p, "sql", start_ms, end_ms, "db.internal:5432", "database");
    e.protocol = "postgres".into();
    e.method = None;
    e.path = None;
    e.sql = Some(SqlStatement { statement: statement.into(), command_tag: Some(format!("SELECT {rows}")), rows: Some(rows), ..SqlStatement::default() });
    e
}

pub fn pii(location: &str, fps: &[String]) -> PiiFinding {
    PiiFinding { pii_type: "email".into(), count: fps.len() as i32, fingerprints: fps.to_vec(), location: location.into() }
}

pub fn emails(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("fp-email-{i}")).collect()
}

pub fn tuple(local: &str, lport: i32, remote: &str, rport: i32) -> SocketTuple {
    SocketTuple { family: AddressFamily::Inet, local_addr: local.into(), local_port: lport, remote_addr: remote.into(), remote_port: rport }
}

pub const AGENT: P<'static> = P { node: "node-a", tgid: 100, start: T0 - 60 * SEC, comm: "python3" };
pub const GZIP: P<'static> = P { node: "node-a", tgid: 200, start: T0 + 7 * SEC, comm: "gzip" };
pub const CURL: P<'static> = P { node: "node-a", tgid: 201, start: T0 + 8 * SEC, comm: "curl" };

/// The agent's process tree: python3 (seeded), a forked gzip and a forked curl.
pub fn seed_processes() -> Vec<ProcessEvent> {
    let mut v = vec![proc_event("node-a", ProcessEventKind::Seed, AGENT.tgid, AGENT.start, 1, 0, "/usr/bin/python3")];
    for (child, exe) in [(GZIP, "/usr/bin/gzip"), (CURL, "/usr/bin/curl")] {
        v.push(proc_event("node-a", ProcessEventKind::Fork, child.tgid, child.start, AGENT.tgid, AGENT.start, "/usr/bin/python3"));
        let mut exec = proc_event("node-a", ProcessEventKind::Exec, child.tgid, child.start, AGENT.tgid, AGENT.start, exe);
        exec.ts_ns += MS;
        v.push(exec);
    }
    v
}

/// The seed scenario's semantic events in arrival order; `upload` adds the exfiltration.
pub fn seed_events(upload: bool) -> Vec<SemanticEvent> {
    let fps = emails(10);
    let mut v = Vec::new();
    // 1. Planning call: asks for query_database and search_docs.
    v.push(llm("ev-plan", AGENT, 0, 900, &["sys", "sys+u1"], &[("call_db", "query_database"), ("call_docs", "search_docs")], &[]));
    // 2. The SQL the tool ran: 10 customers with their emails in the response.
    let mut q = sql("ev-sql", AGENT, 1_000, 1_050, "SELECT id, name, email FROM customers WHERE plan = 'pro' LIMIT 10", 10);
    q.pii = vec![pii("response", &fps)];
    v.push(q);
    // 3. The vector search: 5 documents.
    let mut s = event("ev-vec", AGENT, "vector_query", 1_100, 1_180, "qdrant.internal", "vectordb");
    s.vector = Some(VectorOperation { system: "qdrant".into(), operation: "query".into(), collection: Some("kb".into()), top_k: Some(5), results: Some(5), ..VectorOperation::default() });
    v.push(s);
    // 4. Synthesis: carries both results and the emails; asks for a ticket and a message.
    let mut synth = llm(
        "ev-synth",
        AGENT,
        1_200,
        3_000,
        &["sys", "sys+u1", "sys+u1+a1", "sys+u1+a1+t1+t2"],
        &[("call_jira", "create_jira_ticket"), ("call_slack", "post_to_slack")],
        &["call_db", "call_docs"],
    );
    synth.pii = vec![pii("request", &fps)];
    v.push(synth);
    // 5. Jira, 6. Slack, both with the emails in their requests.
    let mut jira = event("ev-jira", AGENT, "saas_call", 3_100, 3_400, "acme.atlassian.net", "saas");
    jira.pii = vec![pii("request", &fps[..3])];
    v.push(jira);
    let mut slack = event("ev-slack", AGENT, "saas_call", 3_500, 3_700, "hooks.slack.com", "saas");
    slack.pii = vec![pii("request", &fps[..1])];
    v.push(slack);
    if upload {
        // 7. The child curl uploads the gzipped conversation.
        let mut up = event("ev-upload", CURL, "upload", 8_100, 8_900, "personal-pastebin.com", "unknown-external");
        up.upload = Some(Upload { content_type: Some("application/gzip".into()), filename: Some("conv.gz".into()), bytes: 48_000, archive_format: Some("gzip".into()) });
        up.request_bytes = 48_500;
        up.pii = vec![pii("request", &fps)];
        v.push(up);
    }
    v
}

/// An agent on node-a calling an internal HTTP tool service (`service`, another process or
/// node), which runs a query while it handles the request: the agent's plan, its call to the
/// service (10.0.0.1:40000 -> 10.0.0.2:8080) and its next LLM call carrying the result; the
/// service's query (one customer's email in the response) and its view of the request.
pub struct StitchedService {
    pub plan: SemanticEvent,
    pub call: SemanticEvent,
    pub next: SemanticEvent,
    pub query: SemanticEvent,
    pub served: SemanticEvent,
}

pub fn stitched_service(service: P<'_>) -> StitchedService {
    let plan = llm("plan", AGENT, 0, 800, &["s", "s+u"], &[("call_lookup", "lookup_customer")], &[]);
    let mut call = event("tool-http", AGENT, "http", 1_000, 1_400, "tools.internal", "internal");
    call.tuple = Some(tuple("10.0.0.1", 40_000, "10.0.0.2", 8_080));
    let next = llm("next", AGENT, 1_500, 2_000, &["s", "s+u", "s+u+a+t"], &[], &["call_lookup"]);
    let mut query = sql("svc-sql", service, 1_100, 1_200, "SELECT * FROM customers WHERE id = $1", 1);
    query.pii = vec![pii("response", &emails(1))];
    let mut served = event("svc-http", service, "http", 1_010, 1_390, "tools.internal", "internal");
    served.role = ConnRole::Server;
    served.tuple = Some(tuple("10.0.0.2", 8_080, "10.0.0.1", 40_000));
    StitchedService { plan, call, next, query, served }
}
