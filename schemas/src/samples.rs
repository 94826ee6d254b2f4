//! Example records with every field set: for round-trip tests, benchmarks and documentation.

use std::collections::BTreeMap;

use crate::records::*;

fn tuple() -> SocketTuple {
    SocketTuple {
        family: AddressFamily::Inet6,
        local_addr: "::1".into(),
        local_port: 51234,
        remote_addr: "::1".into(),
        remote_port: 443,
    }
}

/// A DATA segment carrying `payload`.
pub fn raw_segment(payload: Vec<u8>) -> RawSegment {
    RawSegment {
        node: "node-a".into(),
        conn_id: connection_id("node-a", 4242, 7, 1_700_000_000_000_000_000),
        tgid: 4242,
        tid: 4243,
        process_start_ns: 1_699_999_999_000_000_000,
        fd: 7,
        comm: "python3".into(),
        ts_ns: 1_700_000_000_123_456_789,
        direction: Direction::Egress,
        source: SegmentSource::Tls,
        kind: SegmentKind::Data,
        stream_offset: 16_384,
        captured_len: payload.len() as i32,
        original_len: payload.len() as i64,
        truncated: false,
        payload,
        role: ConnRole::Client,
        tuple: Some(tuple()),
    }
}

pub fn connection_event() -> ConnectionEvent {
    ConnectionEvent {
        node: "node-a".into(),
        conn_id: connection_id("node-a", 4242, 7, 1_700_000_000_000_000_000),
        tgid: 4242,
        process_start_ns: 1_699_999_999_000_000_000,
        fd: 7,
        comm: "python3".into(),
        ts_ns: 1_700_000_000_000_000_000,
        kind: ConnectionEventKind::Close,
        role: ConnRole::Client,
        source: SegmentSource::Syscall,
        tuple: Some(tuple()),
        tls: true,
        bytes_egress: 2048,
        bytes_ingress: 65_536,
    }
}

pub fn process_event() -> ProcessEvent {
    ProcessEvent {
        node: "node-a".into(),
        ts_ns: 1_700_000_000_000_000_000,
        kind: ProcessEventKind::Exec,
        tgid: 4242,
        process_start_ns: 1_699_999_999_000_000_000,
        ppid: 4000,
        parent_start_ns: 1_699_999_000_000_000_000,
        uid: 1000,
        comm: "curl".into(),
        exe: "/usr/bin/curl".into(),
        argv: vec!["curl".into(), "-T".into(), "conv.gz".into()],
        argv_truncated: false,
        cgroup_id: 12345,
        cgroup_path: "/kubepods/pod1234/abcdef".into(),
        container_id: Some("abcdef".into()),
        pod_uid: Some("1234".into()),
        exit_code: Some(0),
    }
}

pub fn semantic_event() -> SemanticEvent {
    let mut attributes = BTreeMap::new();
    attributes.insert("gen_ai.provider.name".into(), "openai".into());
    attributes.insert("gen_ai.request.model".into(), "gpt-4o".into());
    SemanticEvent {
        event_id: "ev-1".into(),
        node: "node-a".into(),
        conn_id: connection_id("node-a", 4242, 7, 1_700_000_000_000_000_000),
        tgid: 4242,
        process_start_ns: 1_699_999_999_000_000_000,
        comm: "python3".into(),
        ts_start_ns: 1_700_000_000_000_000_000,
        ts_end_ns: 1_700_000_001_000_000_000,
        protocol: "http1".into(),
        kind: "llm_call".into(),
        partial: false,
        role: ConnRole::Client,
        tuple: Some(tuple()),
        method: Some("POST".into()),
        host: Some("api.openai.com".into()),
        path: Some("/v1/chat/completions".into()),
        status: Some(200),
        request_bytes: 2113,
        response_bytes: 4096,
        destination_category: "llm".into(),
        attributes,
        llm: Some(LlmCall {
            provider: "openai".into(),
            operation: "chat".into(),
            request_model: Some("gpt-4o".into()),
            response_model: Some("gpt-4o-2024-08-06".into()),
            stream: true,
            temperature: Some(0.2),
            max_tokens: Some(512),
            top_p: None,
            message_count: 3,
            roles: vec!["system".into(), "user".into(), "tool".into()],
            system_prompt_hash: Some("ab12".into()),
            tool_definitions: vec!["query_database".into()],
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "query_database".into(),
                arguments: r#"{"sql":"SELECT * FROM customers WHERE id=1"}"#.into(),
            }],
            tool_result_ids: vec![],
            finish_reasons: vec!["tool_calls".into()],
            input_tokens: Some(2113),
            output_tokens: Some(57),
            cached_tokens: Some(0),
            reasoning_tokens: None,
            time_to_first_token_ns: Some(250_000_000),
            response_id: Some("chatcmpl-1".into()),
            conversation_prefix_hashes: vec!["h1".into(), "h2".into()],
        }),
        sql: Some(SqlStatement {
            statement: "SELECT 1".into(),
            command_tag: Some("SELECT 1".into()),
            rows: Some(1),
            database: Some("crm".into()),
            user: Some("agent".into()),
            application_name: None,
            error_code: None,
            error_message: None,
        }),
        vector: Some(VectorOperation {
            system: "qdrant".into(),
            operation: "query".into(),
            collection: Some("docs".into()),
            namespace: None,
            top_k: Some(5),
            dimension: Some(384),
            filter_present: true,
            results: Some(5),
        }),
        upload: Some(Upload {
            content_type: Some("application/gzip".into()),
            filename: Some("conv.gz".into()),
            bytes: 1234,
            archive_format: Some("gzip".into()),
        }),
        pii: vec![PiiFinding {
            pii_type: "email".into(),
            count: 1,
            fingerprints: vec!["f00d".into()],
            location: "request".into(),
        }],
        secrets: vec![SecretFinding {
            secret_type: "openai_api_key".into(),
            count: 1,
            fingerprints: vec![],
            location: "request".into(),
        }],
        injection: vec![InjectionSignal {
            rule: "instruction_override".into(),
            score: 0.9,
            location: "tool_output".into(),
        }],
        content: None,
    }
}

pub fn chain() -> Chain {
    Chain {
        chain_id: "chain-1".into(),
        version: 3,
        status: ChainStatus::Closed,
        agent: AgentRef {
            node: "node-a".into(),
            agent_key: "node-a/support-agent".into(),
            tgid: 4242,
            process_start_ns: 1_699_999_999_000_000_000,
            exe: "/usr/bin/python3".into(),
            comm: "python3".into(),
            container_id: None,
            pod_uid: None,
            namespace: Some("support".into()),
            team: Some("support".into()),
        },
        start_ns: 1_700_000_000_000_000_000,
        end_ns: 1_700_000_010_000_000_000,
        steps: vec![ChainStep {
            index: 0,
            event_id: "ev-1".into(),
            ts_start_ns: 1_700_000_000_000_000_000,
            ts_end_ns: 1_700_000_001_000_000_000,
            kind: "llm_call".into(),
            protocol: "http1".into(),
            tgid: 4242,
            comm: "python3".into(),
            node: "node-a".into(),
            destination: Some("api.openai.com".into()),
            category: "llm".into(),
            method: Some("POST".into()),
            tool_name: None,
            tool_call_id: None,
            summary: "chat gpt-4o".into(),
            model: Some("gpt-4o".into()),
            input_tokens: 2113,
            output_tokens: 57,
            cost_usd: 0.0061,
            rows: None,
            bytes_out: 2113,
            bytes_in: 4096,
            pii_types: vec!["email".into()],
            injection_rules: vec![],
            secret_types: vec![],
            statement: None,
            top_k: None,
            archive_format: None,
        }],
        tool_calls: vec![ToolExecution {
            tool_call_id: "call_1".into(),
            tool_name: "query_database".into(),
            requested_at_step: 0,
            executed_steps: vec![1],
            result_step: Some(2),
            approved: false,
        }],
        pii_flows: vec![PiiFlow {
            fingerprint: "f00d".into(),
            pii_type: "email".into(),
            from_step: 1,
            to_step: 6,
            destination: Some("personal-pastebin.com".into()),
        }],
        tools: vec!["query_database".into()],
        destinations: vec!["api.openai.com".into()],
        pii_types: vec!["email".into()],
        bytes_out: 10_000,
        bytes_in: 20_000,
        input_tokens: 2113,
        output_tokens: 57,
        cost_usd: 0.0061,
        max_tool_repeats: 1,
        autonomy: Autonomy::Autonomous,
        risk_score: 0.93,
        risk_reasons: vec!["pii to unknown-external".into()],
    }
}

/// A fragment: a service's query with an email in its rows, for the agent's chain elsewhere.
pub fn stitch_record() -> StitchRecord {
    let mut step = chain().steps[0].clone();
    step.event_id = "svc-sql".into();
    step.kind = "sql".into();
    step.node = "node-b".into();
    step.statement = Some("SELECT * FROM customers WHERE id = $1".into());
    StitchRecord {
        kind: StitchKind::Fragment,
        origin_member: "chains-1".into(),
        fragment_member: "chains-1".into(),
        fragment_id: "svc-http".into(),
        tuple_key: -42,
        service: "node-b/gunicorn".into(),
        start_ns: 1_700_000_000_000_000_000,
        end_ns: 1_700_000_001_000_000_000,
        steps: vec![StitchedStep {
            step,
            process_start_ns: 1_699_999_999_000_000_000,
            role: ConnRole::Client,
            depth: 0,
            pii: vec![PiiFinding { pii_type: "email".into(), count: 1, fingerprints: vec!["f00d".into()], location: "response".into() }],
            tool_calls: vec![StitchedToolCall { id: "call_1".into(), name: "lookup".into() }],
            tool_result_ids: vec![],
            full_prefix_hash: None,
        }],
        steps_cut: 3,
    }
}

pub fn violation() -> Violation {
    let mut evidence = BTreeMap::new();
    evidence.insert("destination".into(), "personal-pastebin.com".into());
    Violation {
        violation_id: "v-1".into(),
        version: 1,
        policy_id: "pii-exfil".into(),
        policy_title: "PII uploaded to an unauthorized external destination".into(),
        severity: Severity::High,
        description: "".into(),
        chain_id: "chain-1".into(),
        node: "node-a".into(),
        agent_key: "node-a/support-agent".into(),
        first_seen_ns: 1_700_000_010_000_000_000,
        ts_ns: 1_700_000_010_000_000_000,
        evidence_steps: vec![1, 6],
        evidence,
        pii_types: vec!["email".into()],
        risk_score: 0.93,
        tags: vec!["AML.T0024".into()],
    }
}
