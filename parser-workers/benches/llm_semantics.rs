//! Criterion bench of the LLM recogniser (`semantics::llm::recognise`) on exchanges as the
//! parsers hand them over (bodies decoded, SSE events split): an OpenAI Chat Completions stream
//! (a 2 KiB request with history and tools; 200 `chat.completion.chunk` events of text, then a
//! tool call whose arguments come in 40 fragments, the include_usage chunk and `[DONE]`) and an
//! Anthropic Messages stream of the same size (text_delta and input_json_delta events). The
//! throughput counted is request + response body bytes; criterion reports it in MB/s.

use std::hint::black_box;

use chainwatch_parser_workers::body::decode_sse;
use chainwatch_parser_workers::connection::{ConnectionMeta, ParsedExchange, ProtocolExchange};
use chainwatch_parser_workers::protocols::http1::{CapturedBody, Header, Http1Exchange};
use chainwatch_parser_workers::semantics::HttpView;
use chainwatch_parser_workers::semantics::llm::recognise;
use criterion::{Criterion, Throughput};
use serde_json::json;

/// Text chunks per streamed answer.
const TEXT_CHUNKS: usize = 200;
/// Fragments of the streamed tool-call arguments.
const ARG_FRAGMENTS: usize = 40;

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
        redacted: false,
        value_len: value.len(),
    }
}

fn exchange(host: &str, path: &str, request: Vec<u8>, response: Vec<u8>) -> ParsedExchange {
    let sse = decode_sse(&response, 1 << 20);
    let e = Http1Exchange {
        method: "POST".into(),
        path: path.into(),
        version: "HTTP/1.1".into(),
        host: Some(host.into()),
        request_headers: vec![
            header("Host", host),
            header("Content-Type", "application/json"),
        ],
        status: Some(200),
        response_headers: vec![header("Content-Type", "text/event-stream")],
        request_body: CapturedBody {
            wire_size: request.len() as u64,
            bytes: request,
            ..Default::default()
        },
        response_body: CapturedBody {
            wire_size: response.len() as u64,
            bytes: response,
            ..Default::default()
        },
        sse_events: sse,
        start_ns: 1,
        end_ns: 2,
        response_first_ns: Some(2),
        ..Default::default()
    };
    ParsedExchange {
        meta: ConnectionMeta::default(),
        exchange: ProtocolExchange::Http1(Box::new(e)),
        request_offset: 0,
        rank_at_offset: 0,
    }
}

/// A conversation of some turns, with tools, about 2 KiB.
fn history() -> Vec<serde_json::Value> {
    let mut m = vec![
        json!({"role": "system", "content": "You are a helpful research agent. Use the tools when needed and cite sources."}),
    ];
    for i in 0..6 {
        m.push(json!({"role": "user", "content": format!("Question {i}: what is the population of city number {i} and its mayor?")}));
        m.push(json!({"role": "assistant", "content": format!("City {i} has about {} inhabitants; the mayor is Jane Doe {i}.", 100_000 * (i + 1))}));
    }
    m
}

fn openai_stream() -> ParsedExchange {
    let request = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "temperature": 0.3,
        "messages": history(),
        "tools": [{"type": "function", "function": {"name": "search_web", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]});
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-BENCH0123456789", "object": "chat.completion.chunk", "created": 1742842885,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_b8bc95a0ac",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        )
    };
    let mut body = chunk(json!({"role": "assistant", "content": ""}), json!(null));
    for i in 0..TEXT_CHUNKS {
        body.push_str(&chunk(json!({"content": format!(" word{i}")}), json!(null)));
    }
    body.push_str(&chunk(json!({"tool_calls": [{"index": 0, "id": "call_BENCH", "type": "function", "function": {"name": "search_web", "arguments": ""}}]}), json!(null)));
    let args = format!(
        "{{\"query\": \"{}\"}}",
        "population of the city and its mayor ".repeat(4)
    );
    let step = args.len().div_ceil(ARG_FRAGMENTS);
    for piece in args.as_bytes().chunks(step) {
        let piece = String::from_utf8_lossy(piece);
        body.push_str(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            json!(null),
        ));
    }
    body.push_str(&chunk(json!({}), json!("tool_calls")));
    body.push_str(&format!("data: {}\n\n", json!({"id": "chatcmpl-BENCH0123456789", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": 512, "completion_tokens": 260, "total_tokens": 772, "prompt_tokens_details": {"cached_tokens": 256}}})));
    body.push_str("data: [DONE]\n\n");
    exchange(
        "api.openai.com",
        "/v1/chat/completions",
        request.to_string().into_bytes(),
        body.into_bytes(),
    )
}

fn anthropic_stream() -> ParsedExchange {
    let mut messages = history();
    let system = messages.remove(0)["content"].clone();
    let request = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true, "system": system, "messages": messages,
        "tools": [{"name": "search_web", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]});
    let ev = |kind: &str, data: serde_json::Value| format!("event: {kind}\ndata: {data}\n\n");
    let mut body = ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_BENCH", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null, "usage": {"input_tokens": 512, "cache_read_input_tokens": 256, "output_tokens": 1}}}),
    );
    body.push_str(&ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
    for i in 0..TEXT_CHUNKS {
        body.push_str(&ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!(" word{i}")}})));
    }
    body.push_str(&ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    body.push_str(&ev("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_BENCH", "name": "search_web", "input": {}}})));
    let args = format!(
        "{{\"query\": \"{}\"}}",
        "population of the city and its mayor ".repeat(4)
    );
    let step = args.len().div_ceil(ARG_FRAGMENTS);
    for piece in args.as_bytes().chunks(step) {
        let piece = String::from_utf8_lossy(piece);
        body.push_str(&ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": piece}})));
    }
    body.push_str(&ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 1}),
    ));
    body.push_str(&ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 260}})));
    body.push_str(&ev("message_stop", json!({"type": "message_stop"})));
    exchange(
        "api.anthropic.com",
        "/v1/messages",
        request.to_string().into_bytes(),
        body.into_bytes(),
    )
}

fn body_bytes(ex: &ParsedExchange) -> u64 {
    match &ex.exchange {
        ProtocolExchange::Http1(e) => {
            (e.request_body.bytes.len() + e.response_body.bytes.len()) as u64
        }
        _ => 0,
    }
}

fn recognise_once(ex: &ParsedExchange) -> usize {
    let view = HttpView::from_exchange(ex).expect("http");
    let r = recognise(&view).expect("an LLM call");
    assert!(!r.call.tool_calls.is_empty());
    r.texts.len()
}

fn main() {
    let openai = openai_stream();
    let anthropic = anthropic_stream();
    // Sanity before timing: both are recognised with their tool call.
    recognise_once(&openai);
    recognise_once(&anthropic);
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("llm_semantics");
    group.throughput(Throughput::Bytes(body_bytes(&openai)));
    group.bench_function("openai_chat_stream", |b| {
        b.iter(|| black_box(recognise_once(black_box(&openai))))
    });
    group.throughput(Throughput::Bytes(body_bytes(&anthropic)));
    group.bench_function("anthropic_messages_stream", |b| {
        b.iter(|| black_box(recognise_once(black_box(&anthropic))))
    });
    group.finish();
    criterion.final_summary();
    println!(
        "body bytes: openai {} anthropic {}",
        body_bytes(&openai),
        body_bytes(&anthropic)
    );
}
