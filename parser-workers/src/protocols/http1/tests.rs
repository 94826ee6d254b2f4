//! HTTP/1.x tests: real captured streams (zeek and deepflow pcaps, see testdata/README.md),
//! the recorded LLM SSE corpus served over HTTP, edge cases, and properties (any split of the
//! streams gives the same exchanges; arbitrary bytes never panic; garbage is resynchronised).

use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::protocols::parsed::Direction::{ClientToServer as C2S, ServerToClient as S2C};

fn run_with(config: Http1Config, c2s: &[u8], s2c: &[u8]) -> (Vec<Http1Exchange>, Http1Stats) {
    let mut conn = Http1Connection::new(config);
    let mut out = conn.feed(C2S, c2s, 1);
    out.extend(conn.feed(S2C, s2c, 2));
    out.extend(conn.flush());
    (out, conn.stats())
}

fn run(c2s: &[u8], s2c: &[u8]) -> (Vec<Http1Exchange>, Http1Stats) {
    run_with(Http1Config::default(), c2s, s2c)
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        out.extend(format!("{:x}\r\n", piece.len()).into_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

// ---------------------------------------------------------------- real captures (zeek, deepflow)

#[test]
fn zeek_pipelined_requests() {
    let (ex, stats) = run(
        include_bytes!("testdata/pipelined-requests-0.c2s"),
        include_bytes!("testdata/pipelined-requests-0.s2c"),
    );
    let paths: Vec<_> = ex.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/style/enhanced.css",
            "/script/urchin.js",
            "/images/template/screen/bullet_utility.png",
            "/images/template/screen/key-point-top.png",
            "/projects/calendar/images/header-sunbird.png",
        ]
    );
    let sizes: Vec<_> = ex.iter().map(|e| e.response_body.wire_size).collect();
    assert_eq!(sizes, [946, 6716, 94, 2349, 27579]);
    for e in &ex {
        assert_eq!(e.status, Some(200));
        assert_eq!(e.method, "GET");
        assert_eq!(e.host.as_deref(), Some("www.mozilla.org"));
        assert!(!e.flags.partial && !e.flags.truncated, "{:?}", e.flags);
    }
    assert_eq!(stats.invalid_skips, 0);
    assert_eq!(stats.exchanges, 5);
}

#[test]
fn zeek_100_continue() {
    let (ex, stats) = run(
        include_bytes!("testdata/100-continue-0.c2s"),
        include_bytes!("testdata/100-continue-0.s2c"),
    );
    assert_eq!(ex.len(), 1, "{ex:#?}");
    let e = &ex[0];
    assert_eq!((e.method.as_str(), e.path.as_str()), ("POST", "/"));
    assert_eq!(e.interim_statuses, [100]);
    assert_eq!(e.status, Some(200));
    assert_eq!(e.request_body.wire_size, 2001);
    assert_eq!(
        e.request_content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(e.response_body.bytes.starts_with(b"<!DOCTYPE html"));
    assert!(!e.flags.partial, "{:?}", e.flags);
    assert_eq!(stats.invalid_skips, 0);
}

#[test]
fn zeek_multipart_post() {
    let (ex, _) = run(
        include_bytes!("testdata/multipart-0.c2s"),
        include_bytes!("testdata/multipart-0.s2c"),
    );
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(
        (e.method.as_str(), e.path.as_str(), e.status),
        ("POST", "/post", Some(200))
    );
    assert_eq!(e.request_body.wire_size, 350);
    let parts: Vec<_> = e
        .multipart_parts
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.head.clone()))
        .collect();
    assert_eq!(
        parts,
        [
            ("example".to_string(), b"test".to_vec()),
            ("example2".to_string(), b"test2".to_vec()),
            ("example3".to_string(), b"test3".to_vec()),
        ]
    );
    assert_eq!(e.response_content_type.as_deref(), Some("application/json"));
}

#[test]
fn zeek_post_and_get() {
    let (ex, _) = run(
        include_bytes!("testdata/post-0.c2s"),
        include_bytes!("testdata/post-0.s2c"),
    );
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request_body.bytes, b"hello world");
    assert_eq!(ex[0].status, Some(200));
    assert!(!ex[0].flags.partial);

    let (ex, _) = run(
        include_bytes!("testdata/get-0.c2s"),
        include_bytes!("testdata/get-0.s2c"),
    );
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.path, "/download/CHANGES.bro-aux.txt");
    assert_eq!(e.host.as_deref(), Some("bro.org"));
    assert_eq!(e.response_body.wire_size, 4705);
    assert_eq!(e.response_body.bytes.len(), 4705);
    assert_eq!(
        e.response_content_type.as_deref(),
        Some("text/plain; charset=UTF-8")
    );
    assert_eq!(e.version, "HTTP/1.1");
}

/// deepflow's httpv1.pcap with the values of its expected `httpv1.result`.
#[test]
fn deepflow_httpv1() {
    let (ex, _) = run(
        include_bytes!("testdata/httpv1-0.c2s"),
        include_bytes!("testdata/httpv1-0.s2c"),
    );
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.method, "POST");
    assert_eq!(e.path, "/query?1590632942");
    assert_eq!(e.host.as_deref(), Some("rq.cct.cloud.duba.net"));
    assert_eq!(e.request_body.wire_size, 85);
    assert_eq!(e.status, Some(200));
    assert_eq!(e.response_body.wire_size, 54);
    assert!(!e.flags.partial);
}

#[test]
fn zeek_methods_options_head_custom_and_redaction() {
    // OPTIONS * with bare LF line ends
    let (ex, _) = run(
        include_bytes!("testdata/methods-0.c2s"),
        include_bytes!("testdata/methods-0.s2c"),
    );
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (ex[0].method.as_str(), ex[0].path.as_str()),
        ("OPTIONS", "*")
    );
    assert_eq!(ex[0].status, Some(405));
    assert_eq!(ex[0].response_body.wire_size, 962);

    // A non-standard method token.
    let (ex, _) = run(
        include_bytes!("testdata/methods-19.c2s"),
        include_bytes!("testdata/methods-19.s2c"),
    );
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].method, "CCM_POST");
    assert_eq!(ex[0].status, Some(405));

    // GET answered chunked with Set-Cookie: decoded body, cookies redacted.
    let s2c = include_bytes!("testdata/methods-4.s2c");
    let (ex, _) = run(include_bytes!("testdata/methods-4.c2s"), s2c);
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert!(!e.flags.partial);
    assert!(
        e.response_body.bytes.starts_with(b"<!doctype html>")
            || e.response_body.bytes.starts_with(b"<!DOCTYPE"),
        "{:?}",
        String::from_utf8_lossy(&e.response_body.bytes[..40])
    );
    let cookies: Vec<_> = e
        .response_headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .collect();
    assert_eq!(cookies.len(), 2);
    assert!(
        cookies
            .iter()
            .all(|h| h.redacted && h.value.is_empty() && h.value_len > 0)
    );
    assert!(!format!("{ex:?}").contains("PREF=ID=39d553c0453b55af"));

    // HEAD: the chunked headers announce a body that never comes.
    let (ex, stats) = run(
        include_bytes!("testdata/methods-44.c2s"),
        include_bytes!("testdata/methods-44.s2c"),
    );
    assert_eq!(ex.len(), 1);
    assert_eq!((ex[0].method.as_str(), ex[0].status), ("HEAD", Some(200)));
    assert!(ex[0].response_body.bytes.is_empty() && !ex[0].flags.partial);
    assert_eq!(stats.invalid_skips, 0);
}

#[test]
fn zeek_methods_malformed_requests_resync() {
    // "HEAD / HTTP/1." is not a valid request line: it is skipped, the response is an orphan.
    let (ex, stats) = run(
        include_bytes!("testdata/methods-45.c2s"),
        include_bytes!("testdata/methods-45.s2c"),
    );
    assert!(stats.invalid_skips > 0);
    assert!(ex.iter().all(|e| e.method.is_empty() && e.flags.partial));
    assert_eq!(ex.first().and_then(|e| e.status), Some(200));
    // "HEAD /HTTP/1.1" (HTTP/0.9 shape) answered by an HTTP/1.0 400.
    let (ex, stats) = run(
        include_bytes!("testdata/methods-46.c2s"),
        include_bytes!("testdata/methods-46.s2c"),
    );
    assert!(stats.invalid_skips > 0);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].status, Some(400));
    assert_eq!(ex[0].version, "HTTP/1.0");
}

// ---------------------------------------------------------------- semantics

#[test]
fn sensitive_headers_never_kept() {
    let c2s = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n\
Authorization: Bearer sk-SECRET1\r\nProxy-Authorization: Basic U0VDUkVUMg==\r\n\
Cookie: session=SECRET3\r\nX-Api-Key: SECRET4\r\napi-key: SECRET5\r\nContent-Length: 2\r\n\r\n{}";
    let s2c = b"HTTP/1.1 200 OK\r\nSet-Cookie: id=SECRET6\r\nContent-Length: 0\r\n\r\n";
    let (ex, _) = run(c2s, s2c);
    assert_eq!(ex.len(), 1);
    let dump = format!("{ex:?}");
    for s in [
        "SECRET1",
        "U0VDUkVUMg",
        "SECRET3",
        "SECRET4",
        "SECRET5",
        "SECRET6",
    ] {
        assert!(!dump.contains(s), "{s} leaked");
    }
    let auth = header(&ex[0].request_headers, "authorization").unwrap();
    assert!(auth.redacted && auth.value_len == "Bearer sk-SECRET1".len());
    assert!(!header(&ex[0].request_headers, "host").unwrap().redacted);
}

#[test]
fn content_encodings_are_decoded() {
    let body = b"{\"model\":\"gpt-4o\",\"choices\":[]}".repeat(10);
    let gz = gzip(&body);
    let br_hello: &[u8] = &[0x0f, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
    let zs = zstd::stream::encode_all(&gz[..], 1).unwrap();
    let mut s2c = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    s2c.extend_from_slice(&gz);
    s2c.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    s2c.extend(chunked(br_hello, 4));
    s2c.extend(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip, zstd\r\nContent-Length: {}\r\n\r\n",
            zs.len()
        )
        .into_bytes(),
    );
    s2c.extend_from_slice(&zs);
    s2c.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nbad",
    );
    let c2s = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n";
    let (ex, _) = run(c2s, &s2c);
    assert_eq!(ex.len(), 4);
    assert_eq!(ex[0].response_body.bytes, body);
    assert_eq!(ex[0].response_body.wire_size, gz.len() as u64);
    assert_eq!(ex[1].response_body.bytes, b"hello");
    assert_eq!(ex[2].response_body.bytes, body);
    assert!(ex[3].response_body.decode_error.is_some());
    assert_eq!(ex[3].response_body.bytes, b"bad");
}

#[test]
fn decompression_bomb_stops_at_the_body_cap() {
    let bomb = gzip(&vec![b'A'; 50 * 1024 * 1024]);
    let mut s2c = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    s2c.extend_from_slice(&bomb);
    let (ex, stats) = run(b"GET /bomb HTTP/1.1\r\n\r\n", &s2c);
    assert_eq!(ex.len(), 1);
    let body = &ex[0].response_body;
    assert_eq!(body.bytes.len(), 1 << 20);
    assert!(body.truncated && ex[0].flags.truncated);
    assert_eq!(body.wire_size, bomb.len() as u64);
    assert_eq!(stats.decode_cap_hits, 1);
    assert_eq!(stats.body_cap_hits, 0);
}

fn openai_stream() -> Option<Vec<u8>> {
    Some(crate::test_corpus::read(
        "llm_sse/openai-python/e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin",
    ))
}

/// A recorded OpenAI stream served the way api.openai.com does: chunked text/event-stream.
#[test]
fn streamed_llm_answer_gives_its_events() {
    let Some(sse) = openai_stream() else {
        eprintln!("llm_sse corpus missing; skipped");
        return;
    };
    let c2s = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let mut s2c = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    s2c.extend(chunked(&sse, 77));
    let mut conn = Http1Connection::new(Http1Config::default());
    assert!(conn.feed(C2S, c2s, 10).is_empty());
    let mut out = Vec::new();
    for (i, piece) in s2c.chunks(13).enumerate() {
        out.extend(conn.feed(S2C, piece, 11 + i as u64));
    }
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(e.sse_events.len(), 34);
    assert_eq!(e.sse_events.last().unwrap().data, "[DONE]");
    assert!(
        e.sse_events[0]
            .data
            .contains("\"model\":\"gpt-4o-2024-08-06\"")
    );
    assert_eq!(e.start_ns, 10);
    assert_eq!(e.end_ns, 11 + (s2c.len().div_ceil(13) - 1) as u64);
    assert_eq!(e.response_body.wire_size, sse.len() as u64);
}

/// A recorded Anthropic stream, gzip-encoded and chunked, pipelined after a plain request.
#[test]
fn gzipped_anthropic_stream_gives_its_events() {
    let Ok(sse) = Ok::<_, ()>(crate::test_corpus::read("llm_sse/anthropic-sdk-python/tool_use_response.txt")) else {
        eprintln!("llm_sse corpus missing; skipped");
        return;
    };
    let gz = gzip(&sse);
    let c2s = b"GET /v1/models HTTP/1.1\r\nHost: api.anthropic.com\r\nX-Api-Key: sk-ant-SECRET\r\n\r\n\
POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nX-Api-Key: sk-ant-SECRET\r\nContent-Length: 2\r\n\r\n{}";
    let mut s2c = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"data\":[]}".to_vec();
    s2c.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
    s2c.extend(chunked(&gz, 100));
    let (ex, _) = run(c2s, &s2c);
    assert_eq!(ex.len(), 2);
    assert!(ex[0].sse_events.is_empty());
    let events = &ex[1].sse_events;
    // 14 events end with a blank line; the fixture's last one (message_stop) does not
    assert_eq!(events.len(), 15);
    assert_eq!(events[0].event, "message_start");
    assert_eq!(events[14].event, "message_stop");
    assert!(
        events
            .iter()
            .any(|e| e.data.contains("\"type\":\"tool_use\""))
    );
    assert_eq!(ex[1].response_body.bytes, sse);
    assert_eq!(ex[1].response_body.wire_size, gz.len() as u64);
    assert!(!format!("{ex:?}").contains("sk-ant-SECRET"));
}

#[test]
fn websocket_upgrade_stops_http() {
    let c2s_head = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let s2c = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05Hello";
    let mut conn = Http1Connection::new(Http1Config::default());
    assert!(conn.feed(C2S, c2s_head, 1).is_empty());
    // a masked frame sent before the 101 was seen: must not be parsed as HTTP
    assert!(
        conn.feed(C2S, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 2)
            .is_empty()
    );
    let out = conn.feed(S2C, s2c, 3);
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.upgraded);
    assert_eq!(out[0].status, Some(101));
    assert_eq!(out[0].upgrade.as_deref(), Some("websocket"));
    assert!(conn.upgraded());
    assert!(conn.feed(C2S, b"GET / HTTP/1.1\r\n\r\n", 4).is_empty());
    assert!(conn.feed(S2C, b"HTTP/1.1 200 OK\r\n\r\n", 5).is_empty());
    assert!(conn.flush().is_empty());
    let stats = conn.stats();
    assert_eq!(stats.invalid_skips, 0);
    assert_eq!(stats.opaque_bytes, 11 + 7 + 18 + 19);
}

#[test]
fn refused_upgrade_and_connect_tunnel() {
    let c2s = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    let s2c = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n";
    let (ex, _) = run(c2s, s2c);
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert!(!ex[0].flags.upgraded);
    assert_eq!((ex[1].path.as_str(), ex[1].status), ("/next", Some(204)));

    let c2s = b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n\x16\x03\x01\x02\x00";
    let s2c = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x7a";
    let (ex, stats) = run(c2s, s2c);
    assert_eq!(ex.len(), 1);
    assert!(ex[0].flags.upgraded && !ex[0].flags.partial);
    assert_eq!(ex[0].path, "api.openai.com:443");
    assert_eq!(stats.opaque_bytes, 10);
    assert_eq!(stats.invalid_skips, 0);
}

#[test]
fn no_body_statuses_keep_alive_and_until_close() {
    let c2s = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.0\r\n\r\n";
    let s2c = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n\
HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n\
HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection closes";
    let mut conn = Http1Connection::new(Http1Config::default());
    assert!(conn.feed(C2S, c2s, 1).is_empty());
    let out = conn.feed(S2C, s2c, 2);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].status, Some(204));
    assert_eq!(out[1].status, Some(304));
    let rest = conn.flush();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].response_body.bytes, b"until the connection closes");
    assert!(!rest[0].flags.partial);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let c2s = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Checksum: abc\r\nCookie: secret-trailer\r\n\r\n";
    let s2c = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let (ex, _) = run(c2s, s2c);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request_body.bytes, b"Wikipedia");
    let t = &ex[0].request_body.trailers;
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].name.as_str(), t[0].value.as_str()),
        ("X-Checksum", "abc")
    );
    assert!(t[1].redacted && !format!("{ex:?}").contains("secret-trailer"));
}

#[test]
fn body_cap_counts_real_size() {
    let config = Http1Config {
        body_cap: 1000,
        ..Http1Config::default()
    };
    let mut c2s = b"PUT /big HTTP/1.1\r\nContent-Length: 3000\r\n\r\n".to_vec();
    c2s.extend(std::iter::repeat_n(b'x', 3000));
    let (ex, stats) = run_with(
        config,
        &c2s,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request_body.bytes.len(), 1000);
    assert_eq!(ex[0].request_body.wire_size, 3000);
    assert!(ex[0].request_body.truncated && ex[0].flags.truncated && !ex[0].flags.partial);
    assert_eq!(stats.body_cap_hits, 1);
}

#[test]
fn garbage_is_skipped_to_the_next_message() {
    let c2s = b"\x00\x01binary junk GEX nope\r\nGET /ok HTTP/1.1\r\n\r\n";
    let s2c = b"junk HTTP/2 no\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let (ex, stats) = run(c2s, s2c);
    assert_eq!(ex.len(), 1, "{ex:#?}");
    assert_eq!(ex[0].path, "/ok");
    assert_eq!(ex[0].response_body.bytes, b"hi");
    assert!(stats.invalid_skips >= 2);
    assert_eq!(stats.invalid_bytes, 24 + 16);
    // bad chunk framing ends the message incomplete and the next response is still found
    let c2s = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
    let s2c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk";
    let (ex, stats) = run(c2s, s2c);
    assert_eq!(ex.len(), 2);
    assert!(ex[0].flags.partial);
    assert_eq!(ex[1].response_body.bytes, b"k");
    assert_eq!(stats.malformed_bodies, 1);
}

#[test]
fn gaps_are_stepped_over_or_resynchronised() {
    let mut conn = Http1Connection::new(Http1Config::default());
    conn.feed(C2S, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1);
    assert!(
        conn.feed(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012", 2)
            .is_empty()
    );
    assert!(conn.gap(S2C, 4).is_empty()); // 3..7 lost
    let out = conn.feed(S2C, b"789HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz", 3);
    assert_eq!(out.len(), 2);
    assert!(out[0].flags.gap && out[0].response_body.truncated);
    assert_eq!(out[0].response_body.wire_size, 10);
    assert_eq!(out[0].response_body.bytes, b"012");
    assert_eq!(out[1].response_body.bytes, b"z");
    assert!(!out[1].flags.gap);

    // a gap in a head: its whole request line makes a partial request (marked as hit by the
    // gap), the rest of the head is skipped and the next request found
    let mut conn = Http1Connection::new(Http1Config::default());
    conn.feed(C2S, b"GET /lost HTTP/1.1\r\nHo", 1);
    assert!(conn.gap(C2S, 100).is_empty());
    conn.feed(
        C2S,
        b"st: x\r\n\r\nPOST /found HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        2,
    );
    let mut out = conn.feed(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3);
    out.extend(conn.feed(S2C, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 4));
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].path.as_str(), out[0].status), ("/lost", Some(200)));
    assert!(out[0].flags.partial && out[0].flags.gap && out[0].request_headers.is_empty());
    assert_eq!((out[1].path.as_str(), out[1].status), ("/found", Some(201)));
    assert!(!out[1].flags.partial && !out[1].flags.gap);
    assert_eq!((conn.stats().gaps, conn.stats().cut_heads), (1, 1));

    // a gap before the request line ended: nothing is invented
    let mut conn = Http1Connection::new(Http1Config::default());
    conn.feed(C2S, b"GET /lo", 1);
    assert!(conn.gap(C2S, 100).is_empty());
    assert!(conn.flush().is_empty());
    assert_eq!(conn.stats().cut_heads, 0);
}

#[test]
fn cut_request_head_answered_by_a_response() {
    // deepflow client-ip.pcap's shape: the request head stops mid-header (the rest was lost
    // by the capture), then the server answers
    let c2s = b"POST /bff/check?channel=web HTTP/1.1\r\nhost: api.example\r\naccept: */*\r\nauthorization: Bearer sk-1\r\nx-envoy-decorator-operation: soa-inq";
    let s2c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let mut conn = Http1Connection::new(Http1Config::default());
    assert!(conn.feed(C2S, c2s, 1).is_empty());
    let out = conn.feed(S2C, s2c, 2);
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(
        (e.method.as_str(), e.path.as_str()),
        ("POST", "/bff/check?channel=web")
    );
    assert_eq!(e.host.as_deref(), Some("api.example"));
    let names: Vec<_> = e.request_headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["host", "accept", "authorization"]); // the cut line is dropped
    assert!(e.request_headers[2].redacted && e.request_headers[2].value.is_empty());
    assert_eq!(
        (e.status, e.response_body.bytes.as_slice()),
        (Some(200), &b"ok"[..])
    );
    assert!(e.flags.partial && !e.flags.gap);
    assert!(conn.flush().is_empty());
    let stats = conn.stats();
    assert_eq!((stats.cut_heads, stats.orphan_responses), (1, 0));

    // bytes of the lost head arriving late are skipped; the next request is read whole
    conn.feed(C2S, b"ation\r\n\r\nGET /next HTTP/1.1\r\n\r\n", 3);
    let out = conn.feed(S2C, b"HTTP/1.1 204 No Content\r\n\r\n", 4);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].path.as_str(), out[0].status), ("/next", Some(204)));
    assert!(!out[0].flags.partial);
}

#[test]
fn pipelined_head_still_arriving_is_not_cut() {
    // the response to /a comes while the head of /b is half sent: /b is not cut
    let mut conn = Http1Connection::new(Http1Config::default());
    conn.feed(C2S, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nHo", 1);
    let out = conn.feed(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path, "/a");
    conn.feed(C2S, b"st: h\r\n\r\n", 3);
    let out = conn.feed(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].path.as_str(), out[0].host.as_deref()),
        ("/b", Some("h"))
    );
    assert!(!out[0].flags.partial);
    assert_eq!(conn.stats().cut_heads, 0);

    // a request line not yet whole is never cut: the response stays an orphan
    let (ex, stats) = run(
        b"GET /half HTTP/1.",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(ex.len(), 1);
    assert!(ex[0].method.is_empty() && ex[0].status == Some(200));
    assert_eq!((stats.cut_heads, stats.orphan_responses), (0, 1));
}

#[test]
fn cut_heads_at_connection_end() {
    // deepflow istio-tcp-frag.pcap's shape: the response is its status line alone
    let (ex, stats) = run(
        b"GET /productpage HTTP/1.1\r\nhost: productpage:9080\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n",
    );
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (ex[0].path.as_str(), ex[0].status),
        ("/productpage", Some(200))
    );
    assert_eq!(ex[0].version, "HTTP/1.1");
    assert!(ex[0].flags.partial && ex[0].response_headers.is_empty());
    assert_eq!(stats.cut_heads, 1);

    // a request cut with no answer, then a response head cut after one header
    let (ex, stats) = run(
        b"DELETE /item/7 HTTP/1.1\r\nHost: h\r\n",
        b"HTTP/1.1 404 Not Found\r\nServer: s\r\nContent-Le",
    );
    assert_eq!(ex.len(), 1);
    assert_eq!((ex[0].method.as_str(), ex[0].status), ("DELETE", Some(404)));
    assert_eq!(ex[0].host.as_deref(), Some("h"));
    assert_eq!(ex[0].response_headers.len(), 1);
    assert!(ex[0].flags.partial);
    assert_eq!((stats.cut_heads, stats.orphan_responses), (2, 0));

    // a status line not yet whole gives no status
    let (ex, _) = run(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 O");
    assert_eq!(ex.len(), 1);
    assert!(ex[0].status.is_none() && ex[0].flags.partial);
}

#[test]
fn flush_gives_partial_exchanges_and_buffers_are_bounded() {
    let mut conn = Http1Connection::new(Http1Config::default());
    conn.feed(
        C2S,
        b"GET /no-answer HTTP/1.1\r\n\r\nPOST /cut HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
        5,
    );
    let out = conn.flush();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| e.flags.partial && e.status.is_none()));
    assert_eq!(out[1].request_body.bytes, b"abc");
    assert!(out[1].request_body.truncated);

    // a head longer than the bound is garbage: skipped, and the next request is found
    let config = Http1Config {
        buffer_cap: 4096,
        max_head_bytes: 1 << 20,
        ..Http1Config::default()
    };
    let mut conn = Http1Connection::new(config);
    let mut c2s = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    c2s.extend(std::iter::repeat_n(b'a', 10_000));
    assert!(conn.feed(C2S, &c2s, 1).is_empty());
    assert!(conn.stats().invalid_skips >= 1);
    conn.feed(C2S, b"\r\n\r\nGET /after HTTP/1.1\r\n\r\n", 2);
    let out = conn.feed(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path, "/after");

    // a client streaming before the server answered its Upgrade: the buffer is evicted
    let mut conn = Http1Connection::new(config);
    conn.feed(C2S, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 1);
    assert!(conn.feed(C2S, &[0x82; 10_000], 2).is_empty());
    let stats = conn.stats();
    assert!(stats.buffer_evictions >= 2);
    assert!(stats.evicted_bytes >= 8192);
    let out = conn.feed(
        S2C,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        3,
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.upgraded);
}

#[test]
fn orphan_response_and_pipelining_cap() {
    let (ex, stats) = run(b"", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(ex.len(), 1);
    assert!(ex[0].flags.partial && ex[0].method.is_empty());
    assert_eq!(stats.orphan_responses, 1);

    let config = Http1Config {
        max_pending_requests: 2,
        ..Http1Config::default()
    };
    let (ex, stats) = run_with(config, &b"GET / HTTP/1.1\r\n\r\n".repeat(5), b"");
    assert_eq!(ex.len(), 5);
    assert!(stats.evicted_requests >= 3);

    // orphan responses queued behind a request whose body never ends are bounded too
    let mut conn = Http1Connection::new(config);
    conn.feed(
        C2S,
        b"POST /slow HTTP/1.1\r\nContent-Length: 100\r\n\r\n",
        1,
    );
    let mut out = Vec::new();
    for _ in 0..6 {
        out.extend(conn.feed(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2));
    }
    // the stuck request is evicted (partial) when the third exchange queues; the rest flow
    assert_eq!(out.len(), 6);
    assert_eq!(out[0].path, "/slow");
    assert!(out[0].flags.partial);
    assert!(
        out[1..]
            .iter()
            .all(|e| e.method.is_empty() && e.status == Some(200))
    );
    assert!(conn.flush().is_empty());
    assert_eq!(conn.stats().evicted_requests, 1);
}

#[test]
fn head_fed_one_byte_at_a_time() {
    // 20 KB of headers, one byte per feed: the head-end search is incremental (linear), and
    // the result is the same exchange as fed at once.
    let mut c2s = b"GET /slow HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..100 {
        c2s.extend(format!("X-H{i}: {:0200}\r\n", i).into_bytes());
    }
    c2s.extend_from_slice(b"\r\n");
    let s2c =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
    let mut conn = Http1Connection::new(Http1Config::default());
    let mut out = Vec::new();
    for b in &c2s {
        out.extend(conn.feed(C2S, std::slice::from_ref(b), 1));
    }
    for b in s2c {
        out.extend(conn.feed(S2C, std::slice::from_ref(b), 2));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].request_headers.len(), 101);
    assert_eq!(out[0].response_body.bytes, b"abc");
    assert_eq!(out[0].response_body.trailers.len(), 1);
    let (whole, _) = run(&c2s, s2c);
    assert_eq!(strip_ts(out), strip_ts(whole));
}

/// The generic shape: drive the parsers and the stitcher by hand, as a connection FSM would.
#[test]
fn parsers_and_stitcher_through_the_traits() {
    use crate::protocols::parsed::{FrameParser, Parsed, Stitcher};
    let limits = ParserLimits::default();
    let mut req = Http1RequestParser::new(limits);
    let mut resp = Http1ResponseParser::new(limits);
    let mut st = Http1Stitcher::new(Http1Config::default());
    let c2s = b"xxHEAD /h HTTP/1.1\r\n\r\n";
    let s2c = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    let mut out = Vec::new();
    let mut buf: &[u8] = c2s;
    let mut skipped = 0;
    loop {
        match req.parse(buf) {
            Parsed::Frame { frame, consumed } => {
                if let Http1Frame::Request(h) = &frame {
                    resp.expect(ExpectedResponse {
                        method: h.method.clone(),
                        may_switch: false,
                    });
                }
                buf = &buf[consumed..];
                out.extend(st.push(C2S, frame, 1));
            }
            Parsed::Invalid { skip } => {
                skipped += skip;
                buf = &buf[skip..];
            }
            Parsed::NeedMore => break,
        }
    }
    assert_eq!(skipped, 2);
    let mut buf: &[u8] = s2c;
    while let Parsed::Frame { frame, consumed } = resp.parse(buf) {
        buf = &buf[consumed..];
        out.extend(st.push(S2C, frame, 2));
    }
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].method.as_str(), out[0].status), ("HEAD", Some(200)));
    assert!(out[0].response_body.bytes.is_empty() && !out[0].flags.partial);
    assert!(st.flush().is_empty());
}

// ---------------------------------------------------------------- properties

/// A varied stream: pipelining, chunked, gzip, 100-continue, HEAD, SSE, multipart.
fn sample_streams() -> (Vec<u8>, Vec<u8>, Vec<(usize, usize)>) {
    let mut c2s = Vec::new();
    let mut s2c = Vec::new();
    // (end offset in c2s of request k, start offset in s2c of response k)
    let mut marks = Vec::new();
    let mut add = |req: &[u8], resp: &[u8], c2s: &mut Vec<u8>, s2c: &mut Vec<u8>| {
        c2s.extend_from_slice(req);
        marks.push((c2s.len(), s2c.len()));
        s2c.extend_from_slice(resp);
    };
    add(
        b"GET /a HTTP/1.1\r\nHost: h\r\nCookie: c=SECRET\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        &mut c2s,
        &mut s2c,
    );
    let gz = gzip(b"compressed answer, compressed answer");
    let mut resp =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    resp.extend(chunked(&gz, 7));
    add(b"GET /gz HTTP/1.1\r\n\r\n", &resp, &mut c2s, &mut s2c);
    add(
        b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        &mut c2s,
        &mut s2c,
    );
    add(
        b"HEAD /h HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        &mut c2s,
        &mut s2c,
    );
    let mut resp =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    resp.extend(chunked(
        b"event: a\r\ndata: 1\r\n\r\n: ping\n\ndata: x\ndata: y\n\n",
        9,
    ));
    add(
        b"POST /sse HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        &resp,
        &mut c2s,
        &mut s2c,
    );
    let mp = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile data\r\n--XyZ--\r\n";
    let mut req = format!("POST /form HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n", mp.len()).into_bytes();
    req.extend_from_slice(mp);
    add(&req, b"HTTP/1.1 204 No Content\r\n\r\n", &mut c2s, &mut s2c);
    (c2s, s2c, marks)
}

fn strip_ts(mut ex: Vec<Http1Exchange>) -> Vec<Http1Exchange> {
    for e in &mut ex {
        e.start_ns = 0;
        e.end_ns = 0;
    }
    ex
}

#[test]
fn sample_stream_is_understood() {
    let (c2s, s2c, _) = sample_streams();
    let (ex, stats) = run(&c2s, &s2c);
    assert_eq!(ex.len(), 6);
    assert!(ex.iter().all(|e| !e.flags.partial));
    assert_eq!(
        ex[1].response_body.bytes,
        b"compressed answer, compressed answer"
    );
    assert_eq!(ex[2].interim_statuses, [100]);
    assert_eq!(ex[3].response_body.wire_size, 0);
    let ev: Vec<_> = ex[4]
        .sse_events
        .iter()
        .map(|e| (e.event.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(ev, [("a", "1"), ("message", "x\ny")]);
    assert_eq!(ex[5].multipart_parts[0].filename.as_deref(), Some("a.txt"));
    assert_eq!(ex[5].multipart_parts[0].head, b"file data");
    assert_eq!(stats.invalid_skips, 0);
}

proptest! {
    #[test]
    fn any_split_gives_same_exchanges(
        c_cuts in proptest::collection::vec(0usize..2000, 0..12),
        s_cuts in proptest::collection::vec(0usize..2000, 0..12),
    ) {
        let (c2s, s2c, marks) = sample_streams();
        let (whole, _) = run(&c2s, &s2c);
        let pieces = |data: &[u8], cuts: &[usize]| -> Vec<(usize, usize)> {
            let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (data.len() + 1)).collect();
            cuts.push(data.len());
            cuts.sort();
            let mut prev = 0;
            cuts.into_iter().map(|c| { let r = (prev, c); prev = c; r }).collect()
        };
        let cp = pieces(&c2s, &c_cuts);
        let sp = pieces(&s2c, &s_cuts);
        let mut conn = Http1Connection::new(Http1Config::default());
        let mut got = Vec::new();
        let mut ci = 0;
        let mut c_fed = 0;
        for (s, e) in sp {
            // feed requests far enough that every response touched by this piece was requested
            let need = marks.iter().filter(|(_, rs)| *rs < e).map(|(ce, _)| *ce).max().unwrap_or(0);
            while c_fed < need && ci < cp.len() {
                let (a, b) = cp[ci];
                got.extend(conn.feed(C2S, &c2s[a..b], 1));
                c_fed = b;
                ci += 1;
            }
            got.extend(conn.feed(S2C, &s2c[s..e], 2));
        }
        while ci < cp.len() {
            let (a, b) = cp[ci];
            got.extend(conn.feed(C2S, &c2s[a..b], 1));
            ci += 1;
        }
        got.extend(conn.flush());
        prop_assert_eq!(strip_ts(got), strip_ts(whole));
    }

    #[test]
    fn cut_heads_give_the_same_exchanges_for_any_split(
        c_cuts in proptest::collection::vec(0usize..200, 0..8),
        s_cuts in proptest::collection::vec(0usize..200, 0..8),
        cut_at in 0usize..120,
    ) {
        // one whole exchange, then a request head cut at `cut_at` answered by a response whose
        // own head is cut too; client bytes go first (a server answers what it read)
        let mut c2s = b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        let cut = b"POST /two HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nX-Trace: abcdef\r\n\r\n";
        c2s.extend_from_slice(&cut[..cut_at.min(cut.len() - 4)]);
        let s2c = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 503 Unavailable\r\nRetry-After: 1\r\nX-Cut";
        let (whole, _) = run(&c2s, s2c);
        let pieces = |data: &[u8], cuts: &[usize]| -> Vec<Vec<u8>> {
            let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (data.len() + 1)).collect();
            cuts.push(data.len());
            cuts.sort();
            let mut prev = 0;
            cuts.into_iter().map(|c| { let r = data[prev..c].to_vec(); prev = c; r }).collect()
        };
        let mut conn = Http1Connection::new(Http1Config::default());
        let mut got = Vec::new();
        for p in pieces(&c2s, &c_cuts) {
            got.extend(conn.feed(C2S, &p, 1));
        }
        for p in pieces(s2c, &s_cuts) {
            got.extend(conn.feed(S2C, &p, 2));
        }
        got.extend(conn.flush());
        prop_assert_eq!(strip_ts(got), strip_ts(whole));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        ops in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200), 0u8..8), 0..30),
    ) {
        let config = Http1Config { buffer_cap: 512, body_cap: 64, max_head_bytes: 256, ..Http1Config::default() };
        let mut conn = Http1Connection::new(config);
        for (client, bytes, op) in ops {
            let dir = if client { C2S } else { S2C };
            if op == 0 {
                let _ = conn.gap(dir, bytes.len() as u64);
            } else {
                let _ = conn.feed(dir, &bytes, 0);
            }
        }
        let _ = conn.flush();
    }

    #[test]
    fn http_shaped_noise_never_panics(
        ops in proptest::collection::vec((any::<bool>(), proptest::collection::vec(
            prop_oneof![
                Just(&b"GET / HTTP/1.1\r\n"[..]), Just(&b"HTTP/1.1 200 OK\r\n"[..]), Just(&b"\r\n"[..]),
                Just(&b"Content-Length: 3\r\n"[..]), Just(&b"Transfer-Encoding: chunked\r\n"[..]),
                Just(&b"5\r\n"[..]), Just(&b"0\r\n"[..]), Just(&b"abc"[..]), Just(&b"HTTP/1.1 101 Switching\r\n"[..]),
                Just(&b"Upgrade: websocket\r\n"[..]), Just(&b"HEAD / HTTP/1.1\r\n"[..]), Just(&b"HTTP/1.1 100 Continue\r\n"[..]),
                Just(&b"Content-Encoding: gzip\r\n"[..]), Just(&b"Content-Type: text/event-stream\r\n"[..]),
                Just(&b"data: x\n\n"[..]), Just(&b"\x1f\x8b\x08"[..]),
            ], 0..20)), 0..20),
    ) {
        let mut conn = Http1Connection::new(Http1Config { buffer_cap: 1024, ..Http1Config::default() });
        for (client, pieces) in ops {
            let dir = if client { C2S } else { S2C };
            let _ = conn.feed(dir, &pieces.concat(), 0);
        }
        let _ = conn.flush();
    }

    #[test]
    fn garbage_before_a_request_is_resynchronised(junk in proptest::collection::vec(prop_oneof![0u8..32, 97u8..123, 48u8..58], 0..300)) {
        let mut c2s = junk.clone();
        c2s.extend_from_slice(b"GET /target HTTP/1.1\r\n\r\n");
        let mut s2c = junk;
        s2c.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let (ex, _) = run(&c2s, &s2c);
        prop_assert_eq!(ex.len(), 1);
        prop_assert_eq!(ex[0].path.as_str(), "/target");
        prop_assert_eq!(ex[0].status, Some(200));
    }
}
