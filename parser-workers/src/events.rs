//! Exchanges to `SemanticEvent`s: one event per exchange, attributes under OpenTelemetry names,
//! a deterministic event id (SHA-256 of conn_id and where the request started in the client
//! stream), no bodies (they stay on the `ParsedExchange` for an `ExchangeHook`), no secrets.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chainwatch_schemas::{SemanticEvent, SqlStatement};
use sha2::{Digest, Sha256};

use crate::connection::{ParsedExchange, ProtocolExchange};
use crate::protocols::http1::Http1Exchange;
use crate::protocols::http2::Http2Exchange;
use crate::protocols::grpc::GrpcCall;
use crate::protocols::postgres::{PgExchange, PgExchangeKind};
use crate::protocols::tls::version_name;

/// The next layer (semantics: LLM APIs, PII, ...) sees every exchange with its bodies and may
/// enrich the event before it is published. Bodies never go into the event by themselves.
pub trait ExchangeHook {
    fn on_exchange(&mut self, exchange: &ParsedExchange, event: &mut SemanticEvent);
}

/// A hook that does nothing (wire-level events only).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHook;

impl ExchangeHook for NoHook {
    fn on_exchange(&mut self, _exchange: &ParsedExchange, _event: &mut SemanticEvent) {}
}

/// Query parameter names whose values are replaced (API keys and tokens in URLs).
const SECRET_QUERY_PARAMS: [&str; 10] = [
    "key", "api_key", "apikey", "api-key", "token", "access_token", "secret", "password",
    "sig", "signature",
];

/// Deterministic id: conn_id, protocol, client stream offset of the request's first segment,
/// the rank among exchanges anchored there, and the HTTP/2 stream id.
pub fn event_id(conn_id: &str, protocol: &str, request_offset: u64, rank: u32, stream: Option<u32>) -> String {
    let mut h = Sha256::new();
    h.update(conn_id.as_bytes());
    h.update([0]);
    h.update(protocol.as_bytes());
    h.update([0]);
    h.update(request_offset.to_be_bytes());
    h.update(rank.to_be_bytes());
    h.update(stream.map_or(u64::MAX, u64::from).to_be_bytes());
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The event of one exchange, after `hook` saw it.
pub fn to_event_with(ex: &ParsedExchange, hook: &mut dyn ExchangeHook) -> SemanticEvent {
    let mut event = to_event(ex);
    hook.on_exchange(ex, &mut event);
    event
}

/// The wire-level event of one exchange.
pub fn to_event(ex: &ParsedExchange) -> SemanticEvent {
    let (start, end) = ex.exchange.timestamps();
    let meta = &ex.meta;
    let mut ev = SemanticEvent {
        event_id: String::new(),
        node: meta.node.clone(),
        conn_id: meta.conn_id.clone(),
        tgid: meta.tgid,
        process_start_ns: meta.process_start_ns,
        comm: meta.comm.clone(),
        ts_start_ns: i64::try_from(start).unwrap_or(i64::MAX),
        ts_end_ns: i64::try_from(end.max(start)).unwrap_or(i64::MAX),
        protocol: String::new(),
        kind: String::new(),
        partial: false,
        role: meta.role,
        tuple: meta.tuple.clone(),
        method: None,
        host: None,
        path: None,
        status: None,
        request_bytes: 0,
        response_bytes: 0,
        destination_category: destination_category(ex),
        attributes: BTreeMap::new(),
        llm: None,
        sql: None,
        vector: None,
        upload: None,
        pii: Vec::new(),
        secrets: Vec::new(),
        injection: Vec::new(),
        content: None,
    };
    let mut stream = None;
    match &ex.exchange {
        ProtocolExchange::Http1(e) => http1_event(e, &mut ev),
        ProtocolExchange::Http2(e, grpc) => {
            stream = Some(e.stream_id);
            http2_event(e, &mut ev);
            if let Some(call) = grpc {
                grpc_event(call, &mut ev);
            }
        }
        ProtocolExchange::Postgres(e) => postgres_event(e, &mut ev),
        ProtocolExchange::Tls(t) => {
            ev.protocol = "tls".into();
            ev.kind = "tls_handshake".into();
            let hello = &t.client_hello;
            ev.host = hello.server_name.clone();
            ev.request_bytes = i64::try_from(t.client_bytes).unwrap_or(i64::MAX);
            ev.partial = hello.truncated;
            let a = &mut ev.attributes;
            if let Some(sni) = &hello.server_name {
                a.insert("server.address".into(), sni.clone());
            }
            if !hello.alpn.is_empty() {
                a.insert("tls.client.alpn".into(), hello.alpn.join(","));
            }
            a.insert("tls.client.version".into(), hello.version_name().into());
            if hello.ech {
                a.insert("tls.client.ech".into(), "true".into());
            }
            if let Some(s) = &t.server_hello {
                a.insert("tls.protocol.version".into(), version_name(s.version()).into());
                if let Some(p) = s.alpn.first() {
                    a.insert("tls.next_protocol".into(), p.clone());
                }
            }
        }
    }
    ev.event_id = event_id(&meta.conn_id, &ev.protocol, ex.request_offset, ex.rank_at_offset, stream);
    if let (Some(t), true) = (&meta.tuple, ev.host.is_none() && ev.protocol == "postgres") {
        // A database has no Host header: its address names the destination (the server
        // when the watched process is the client).
        if meta.role != chainwatch_schemas::ConnRole::Server {
            ev.host = Some(if t.remote_addr.contains(':') {
                format!("[{}]:{}", t.remote_addr, t.remote_port)
            } else {
                format!("{}:{}", t.remote_addr, t.remote_port)
            });
            ev.attributes.insert("server.address".into(), t.remote_addr.clone());
            ev.attributes.insert("server.port".into(), t.remote_port.to_string());
        }
    }
    if let Some(t) = &meta.tuple {
        ev.attributes.insert("network.peer.address".into(), t.remote_addr.clone());
        ev.attributes.insert("network.peer.port".into(), t.remote_port.to_string());
    }
    ev
}

fn http1_event(e: &Http1Exchange, ev: &mut SemanticEvent) {
    ev.protocol = "http1".into();
    ev.kind = "http".into();
    ev.partial = e.flags.partial;
    ev.method = (!e.method.is_empty()).then(|| e.method.clone());
    ev.host = e.host.clone();
    ev.path = (!e.path.is_empty() || !e.method.is_empty()).then(|| redact_query(&e.path));
    ev.status = e.status.map(i32::from);
    ev.request_bytes = i64::try_from(e.request_body.wire_size).unwrap_or(i64::MAX);
    ev.response_bytes = i64::try_from(e.response_body.wire_size).unwrap_or(i64::MAX);
    let a = &mut ev.attributes;
    a.insert("network.protocol.name".into(), "http".into());
    if let Some(v) = e.version.strip_prefix("HTTP/") {
        a.insert("network.protocol.version".into(), v.into());
    }
    http_common(a, ev.method.as_deref(), ev.host.as_deref(), ev.path.as_deref(), ev.status);
    if let Some(u) = &e.upgrade {
        a.insert("http.upgrade".into(), u.clone());
    }
    if let Some(ct) = &e.request_content_type {
        a.insert("http.request.header.content-type".into(), ct.clone());
    }
    if let Some(ct) = &e.response_content_type {
        a.insert("http.response.header.content-type".into(), ct.clone());
    }
    if e.flags.gap {
        a.insert("chainwatch.gap".into(), "true".into());
    }
    if !e.sse_events.is_empty() {
        a.insert("http.response.sse_events".into(), e.sse_events.len().to_string());
    }
}

fn http2_event(e: &Http2Exchange, ev: &mut SemanticEvent) {
    ev.protocol = "http2".into();
    ev.kind = "http".into();
    ev.partial = e.flags.partial || e.flags.evicted;
    ev.method = e.method.clone();
    ev.host = e.authority.clone();
    ev.path = e.path.as_deref().map(redact_query);
    ev.status = e.status.map(i32::from);
    ev.request_bytes = i64::try_from(e.request_body_size).unwrap_or(i64::MAX);
    ev.response_bytes = i64::try_from(e.response_body_size).unwrap_or(i64::MAX);
    let a = &mut ev.attributes;
    a.insert("network.protocol.name".into(), "http".into());
    a.insert("network.protocol.version".into(), "2".into());
    a.insert("http2.stream_id".into(), e.stream_id.to_string());
    http_common(a, ev.method.as_deref(), ev.host.as_deref(), ev.path.as_deref(), ev.status);
    if let Some(ct) = e.request_header("content-type") {
        a.insert("http.request.header.content-type".into(), ct.into());
    }
    if let Some(ct) = e.response_header("content-type") {
        a.insert("http.response.header.content-type".into(), ct.into());
    }
    if e.flags.headers_incomplete {
        a.insert("http2.headers_incomplete".into(), "true".into());
    }
    if let Some(code) = e.reset_error_code {
        a.insert("http2.reset_error_code".into(), code.to_string());
    }
}

fn http_common(
    a: &mut BTreeMap<String, String>,
    method: Option<&str>,
    host: Option<&str>,
    path: Option<&str>,
    status: Option<i32>,
) {
    if let Some(m) = method {
        a.insert("http.request.method".into(), m.into());
    }
    if let Some(h) = host {
        let (name, port) = split_host_port(h);
        a.insert("server.address".into(), name.into());
        if let Some(p) = port {
            a.insert("server.port".into(), p.into());
        }
    }
    if let Some(p) = path {
        let (path, query) = p.split_once('?').unwrap_or((p, ""));
        a.insert("url.path".into(), path.into());
        if !query.is_empty() {
            a.insert("url.query".into(), query.into());
        }
    }
    if let Some(s) = status {
        a.insert("http.response.status_code".into(), s.to_string());
    }
}

fn grpc_event(call: &GrpcCall, ev: &mut SemanticEvent) {
    ev.protocol = "grpc".into();
    ev.kind = "grpc".into();
    let http_status = ev.status;
    ev.status = call.grpc_status().and_then(|c| i32::try_from(c).ok());
    let a = &mut ev.attributes;
    a.insert("rpc.system".into(), "grpc".into());
    if let Some(s) = &call.service {
        a.insert("rpc.service".into(), s.clone());
    }
    if let Some(m) = &call.method {
        a.insert("rpc.method".into(), m.clone());
    }
    if let Some(c) = call.grpc_status() {
        a.insert("rpc.grpc.status_code".into(), c.to_string());
    }
    if let Some(s) = http_status {
        a.insert("http.response.status_code".into(), s.to_string());
    }
    a.insert("rpc.grpc.decoded_by".into(), call.decoded_by.clone());
    a.insert("rpc.request.messages".into(), call.request.message_count().to_string());
    a.insert("rpc.response.messages".into(), call.response.message_count().to_string());
}

fn postgres_event(e: &PgExchange, ev: &mut SemanticEvent) {
    ev.protocol = "postgres".into();
    ev.kind = match e.kind {
        PgExchangeKind::SimpleQuery
        | PgExchangeKind::ExtendedQuery
        | PgExchangeKind::FunctionCall
        | PgExchangeKind::Unmatched => "sql",
        PgExchangeKind::Startup
        | PgExchangeKind::SslRequest
        | PgExchangeKind::GssEncRequest
        | PgExchangeKind::CancelRequest
        | PgExchangeKind::Terminate => "db_session",
    }
    .into();
    ev.partial = e.flags.partial;
    ev.method = match e.kind {
        PgExchangeKind::SimpleQuery | PgExchangeKind::ExtendedQuery | PgExchangeKind::Unmatched => e
            .command_tag
            .as_deref()
            .and_then(|t| t.split_whitespace().next())
            .map(str::to_string),
        k => Some(k.as_str().to_uppercase()),
    };
    ev.request_bytes = i64::try_from(e.request_bytes).unwrap_or(i64::MAX);
    ev.response_bytes = i64::try_from(e.response_bytes).unwrap_or(i64::MAX);
    let statement = e.sql.clone().or_else(|| e.statement.clone()).unwrap_or_default();
    let a = &mut ev.attributes;
    a.insert("db.system.name".into(), "postgresql".into());
    a.insert("db.postgresql.exchange".into(), e.kind.as_str().into());
    if let Some(d) = &e.database {
        a.insert("db.namespace".into(), d.clone());
    }
    if !statement.is_empty() {
        a.insert("db.query.text".into(), statement.clone());
    }
    if let Some(op) = &ev.method {
        a.insert("db.operation.name".into(), op.clone());
    }
    // Rows the server sent back (DataRow messages); the command tag's count is `sql.rows`.
    let queried = matches!(
        e.kind,
        PgExchangeKind::SimpleQuery | PgExchangeKind::ExtendedQuery | PgExchangeKind::Unmatched
    );
    if queried && e.error.is_none() {
        a.insert("db.response.returned_rows".into(), e.data_rows.to_string());
    }
    if let Some(err) = &e.error {
        a.insert("db.response.status_code".into(), err.code.clone());
        a.insert("error.type".into(), err.code.clone());
    }
    if let Some(accepted) = e.encryption_accepted {
        a.insert("db.postgresql.encryption_accepted".into(), accepted.to_string());
    }
    ev.sql = Some(SqlStatement {
        statement,
        command_tag: e.command_tag.clone(),
        rows: e.rows.and_then(|r| i64::try_from(r).ok()),
        database: e.database.clone(),
        user: e.user.clone(),
        application_name: e.application_name.clone(),
        error_code: e.error.as_ref().map(|n| n.code.clone()),
        error_message: e.error.as_ref().map(|n| n.message.clone()),
    });
}

/// "host:port" (or "[v6]:port") split; a bare host has no port.
pub(crate) fn split_host_port(h: &str) -> (&str, Option<&str>) {
    if let Some((addr, tail)) = h.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (addr, tail.strip_prefix(':'));
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some(port))
        }
        _ => (h, None),
    }
}

/// The request target with the values of credential-like query parameters replaced.
pub fn redact_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if SECRET_QUERY_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(k)) => {
                format!("{k}=[REDACTED]")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// database for PostgreSQL, internal for private/loopback peers, else unknown-external (the
/// semantics layer refines llm / vectordb / saas).
fn destination_category(ex: &ParsedExchange) -> String {
    if matches!(ex.exchange, ProtocolExchange::Postgres(_)) {
        return "database".into();
    }
    let internal = ex
        .meta
        .tuple
        .as_ref()
        .and_then(|t| t.remote_addr.parse::<IpAddr>().ok())
        .is_some_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        });
    if internal { "internal" } else { "unknown-external" }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_secrets_are_redacted() {
        assert_eq!(redact_query("/v1/x?key=abc&q=1"), "/v1/x?key=[REDACTED]&q=1");
        assert_eq!(redact_query("/plain"), "/plain");
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(split_host_port("a.b:443"), ("a.b", Some("443")));
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
    }

    #[test]
    fn secrets_never_reach_the_event() {
        use std::sync::Arc;

        use chainwatch_schemas::{ConnRole, Direction, RawSegment, SegmentKind, SegmentSource};

        use crate::connection::{ConnectionTable, FsmConfig};
        use crate::protocols::grpc::DescriptorRegistry;

        let seg = |dir, payload: &[u8], ts| RawSegment {
            node: "n".into(),
            conn_id: "n/1/3/9".into(),
            tgid: 1,
            tid: 1,
            process_start_ns: 2,
            fd: 3,
            comm: "agent".into(),
            ts_ns: ts,
            direction: dir,
            source: SegmentSource::Tls,
            kind: SegmentKind::Data,
            stream_offset: 0,
            captured_len: payload.len() as i32,
            original_len: payload.len() as i64,
            truncated: false,
            payload: payload.to_vec(),
            role: ConnRole::Client,
            tuple: None,
        };
        let mut t = ConnectionTable::with_parts(FsmConfig::default(), Arc::new(DescriptorRegistry::empty()), 4, 60);
        let req = b"POST /v1/chat?api_key=sk-live-123&x=1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer sk-live-456\r\nCookie: s=sk-live-789\r\nContent-Length: 17\r\n\r\n{\"k\":\"sk-live-0\"}";
        t.on_segment(&seg(Direction::Egress, req, 10));
        let out = t.on_segment(&seg(Direction::Ingress, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 20));
        assert_eq!(out.len(), 1);
        let ev = to_event(&out[0]);
        let json = format!("{ev:?}");
        assert!(!json.contains("sk-live"), "{json}");
        assert_eq!(ev.path.as_deref(), Some("/v1/chat?api_key=[REDACTED]&x=1"));
        assert_eq!(ev.attributes.get("server.address").map(String::as_str), Some("api.example.com"));
        assert_eq!((ev.request_bytes, ev.response_bytes, ev.status), (17, 2, Some(200)));
        assert_eq!((ev.ts_start_ns, ev.ts_end_ns, ev.tgid, ev.comm.as_str()), (10, 20, 1, "agent"));
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = event_id("n/1/3/5", "http1", 0, 0, None);
        assert_eq!(a, event_id("n/1/3/5", "http1", 0, 0, None));
        assert_ne!(a, event_id("n/1/3/5", "http1", 100, 0, None));
        assert_ne!(a, event_id("n/1/3/5", "http1", 0, 1, None));
        assert_eq!(a.len(), 32);
    }
}
