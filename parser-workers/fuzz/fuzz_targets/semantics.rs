//! Fuzz target `semantics`: the fuzzer's bytes become the request and response bodies of an
//! HTTP exchange (split at a position taken from the first two bytes) on an API path and with a
//! content type chosen by the third byte, and go through the whole semantics hook: the LLM,
//! vector-database, SaaS and upload recognisers (JSON, SSE, AWS event-stream, S3 XML,
//! multipart), the detectors (PII, secrets, injection, archives) and redaction. Nothing may
//! panic, and no published field may carry the planted API key.

#![no_main]

use chainwatch_config::ParserConfig;
use chainwatch_parser_workers::body::decode_sse;
use chainwatch_parser_workers::connection::{ConnectionMeta, ParsedExchange, ProtocolExchange};
use chainwatch_parser_workers::events::to_event_with;
use chainwatch_parser_workers::protocols::http1::{CapturedBody, Header, Http1Exchange};
use chainwatch_parser_workers::semantics::SemanticsHook;
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 12] = [
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/responses",
    "/v1/embeddings",
    "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
    "/model/anthropic.claude-3/converse-stream",
    "/collections/docs/points/search",
    "/v1/graphql",
    "/api/chat.postMessage",
    "/rest/api/2/issue",
    "/bucket/key.tar.gz?uploadId=1&partNumber=2",
    "/upload",
];
const TYPES: [&str; 5] = [
    "application/json",
    "text/event-stream",
    "multipart/form-data; boundary=XyZ",
    "application/vnd.amazon.eventstream",
    "application/xml",
];
const PLANTED_KEY: &str = "sk-proj-FuzzPlantedKey0123456789abcdefghijklmnopqrstuvwx";

fn header(name: &str, value: &str) -> Header {
    Header { name: name.into(), value: value.into(), redacted: false, value_len: value.len() }
}

fuzz_target!(|data: &[u8]| {
    let (Some(&a), Some(&b), Some(&c)) = (data.first(), data.get(1), data.get(2)) else {
        return;
    };
    let rest = data.get(3..).unwrap_or_default();
    let split = (usize::from(a) << 8 | usize::from(b)) % (rest.len() + 1);
    let (request, response) = rest.split_at(split);
    let path = PATHS[usize::from(c) % PATHS.len()];
    let request_type = TYPES[usize::from(c / 16) % TYPES.len()];
    let response_type = TYPES[usize::from(c / 3) % TYPES.len()];
    let mut request_body = request.to_vec();
    request_body.extend_from_slice(PLANTED_KEY.as_bytes());
    let body = |bytes: Vec<u8>| CapturedBody { wire_size: bytes.len() as u64, bytes, ..CapturedBody::default() };
    let exchange = Http1Exchange {
        method: "POST".into(),
        path: path.into(),
        version: "HTTP/1.1".into(),
        host: Some("api.example.com".into()),
        status: Some(200),
        request_headers: vec![header("Content-Type", request_type), header("Content-Encoding", "identity")],
        response_headers: vec![header("Content-Type", response_type)],
        sse_events: if response_type == "text/event-stream" { decode_sse(response, 4096) } else { Vec::new() },
        request_body: body(request_body),
        response_body: body(response.to_vec()),
        request_content_type: Some(request_type.into()),
        response_content_type: Some(response_type.into()),
        end_ns: 2,
        ..Http1Exchange::default()
    };
    let parsed = ParsedExchange {
        meta: ConnectionMeta::default(),
        exchange: ProtocolExchange::Http1(Box::new(exchange)),
        request_offset: 0,
        rank_at_offset: 0,
    };
    let mut hook = SemanticsHook::new(&ParserConfig::default());
    let event = to_event_with(&parsed, &mut hook);
    let published = format!("{:?} {:?} {:?} {:?} {:?}", event.attributes, event.content, event.llm, event.path, event.sql);
    assert!(!published.contains(PLANTED_KEY), "the planted key was published");
});
