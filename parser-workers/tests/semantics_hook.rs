//! The semantics hook on whole exchanges through the connection FSMs: an OpenAI chat call with
//! a customer's email and a leaked key in its prompt, a multipart upload of a gzip archive, and
//! what is published: the meaning (kind, model, tool calls, category), findings with keyed
//! fingerprints that match across exchanges, and no secret anywhere.

use std::io::Write;
use std::sync::Arc;

use chainwatch_config::{ContentCapture, ParserConfig};
use chainwatch_parser_workers::connection::{ConnectionTable, FsmConfig};
use chainwatch_parser_workers::events::to_event_with;
use chainwatch_parser_workers::protocols::grpc::DescriptorRegistry;
use chainwatch_parser_workers::semantics::SemanticsHook;
use chainwatch_schemas::{
    AddressFamily, ConnRole, Direction, RawSegment, SegmentKind, SegmentSource, SemanticEvent, SocketTuple,
};

const KEY: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH";

fn segment(conn: &str, dir: Direction, offset: i64, payload: &[u8], ts: i64) -> RawSegment {
    RawSegment {
        node: "n1".into(),
        conn_id: conn.into(),
        tgid: 7,
        tid: 7,
        process_start_ns: 1,
        fd: 5,
        comm: "agent".into(),
        ts_ns: ts,
        direction: dir,
        source: SegmentSource::Tls,
        kind: SegmentKind::Data,
        stream_offset: offset,
        captured_len: payload.len() as i32,
        original_len: payload.len() as i64,
        truncated: false,
        payload: payload.to_vec(),
        role: ConnRole::Client,
        tuple: Some(SocketTuple {
            family: AddressFamily::Inet,
            local_addr: "127.0.0.1".into(),
            local_port: 40000,
            remote_addr: "127.0.0.1".into(),
            remote_port: 443,
        }),
    }
}

fn exchange(hook: &mut SemanticsHook, conn: &str, request: &[u8], response: &[u8]) -> SemanticEvent {
    let mut t = ConnectionTable::with_parts(FsmConfig::default(), Arc::new(DescriptorRegistry::empty()), 4, 60);
    t.on_segment(&segment(conn, Direction::Egress, 0, request, 10));
    let mut out = t.on_segment(&segment(conn, Direction::Ingress, 0, response, 20));
    out.extend(t.finish());
    assert_eq!(out.len(), 1, "{out:#?}");
    to_event_with(&out[0], hook)
}

fn http(head: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

fn hook(capture: ContentCapture) -> SemanticsHook {
    SemanticsHook::new(&ParserConfig { content_capture: capture, fingerprint_key: "test-key".into(), ..ParserConfig::default() })
}

fn chat_call(hook: &mut SemanticsHook) -> SemanticEvent {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"system","content":"You are a helper."}},{{"role":"user","content":"Mail jane.doe@example.com the report; my key is {KEY}"}}],"tools":[{{"type":"function","function":{{"name":"send_mail","parameters":{{}}}}}}]}}"#
    );
    let req = http(
        &format!("POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"),
        body.as_bytes(),
    );
    let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"send_mail","arguments":"{\"to\":\"jane.doe@example.com\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52}}"#;
    let resp = http("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", answer.as_bytes());
    exchange(hook, "n1/7/5/1", &req, &resp)
}

#[test]
fn an_llm_call_gets_its_meaning_and_no_secret_leaves() {
    let mut h = hook(ContentCapture::Redacted);
    let ev = chat_call(&mut h);
    assert_eq!(ev.kind, "llm_call");
    assert_eq!(ev.destination_category, "llm");
    let llm = ev.llm.as_ref().unwrap();
    assert_eq!(llm.provider, "openai");
    assert_eq!(llm.request_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(llm.response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!((llm.input_tokens, llm.output_tokens), (Some(40), Some(12)));
    assert_eq!(llm.tool_calls.len(), 1);
    assert_eq!(llm.tool_calls[0].name, "send_mail");
    assert_eq!(ev.attributes.get("gen_ai.request.model").map(String::as_str), Some("gpt-4o-mini"));
    // The email in the prompt was sent; the key is a secret finding, never a value.
    let sent = ev.pii.iter().find(|p| p.pii_type == "email" && p.location.starts_with("request")).unwrap();
    assert_eq!(sent.fingerprints.len(), 1);
    assert!(ev.secrets.iter().any(|s| s.secret_type == "openai_api_key"), "{:?}", ev.secrets);
    let published = format!("{ev:?}");
    assert!(!published.contains(KEY), "{published}");
    assert!(!published.contains("jane.doe@example.com"), "redacted capture masks PII: {published}");
    assert!(ev.content.as_deref().is_some_and(|c| c.contains("[system]")));
}

#[test]
fn content_capture_off_publishes_no_content_and_full_keeps_pii_but_not_secrets() {
    let ev = chat_call(&mut hook(ContentCapture::Off));
    assert!(ev.content.is_none());
    let ev = chat_call(&mut hook(ContentCapture::Full));
    let content = ev.content.unwrap();
    assert!(content.contains("jane.doe@example.com"));
    assert!(!content.contains(KEY));
}

#[test]
fn an_upload_of_a_gzip_archive_is_opened_and_its_pii_matches_the_prompt() {
    let mut h = hook(ContentCapture::Redacted);
    let prompt = chat_call(&mut h);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"customer\":\"jane.doe@example.com\"}\n").unwrap();
    let archive = gz.finish().unwrap();
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"conv.json.gz\"\r\nContent-Type: application/gzip\r\n\r\n".to_vec();
    body.extend_from_slice(&archive);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let req = http("POST /upload HTTP/1.1\r\nHost: personal-pastebin.com\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n", &body);
    let ev = exchange(&mut h, "n1/7/6/2", &req, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(ev.kind, "upload");
    assert_eq!(ev.destination_category, "unknown-external", "a public name on loopback is still external");
    let up = ev.upload.as_ref().unwrap();
    assert_eq!(up.filename.as_deref(), Some("conv.json.gz"));
    assert_eq!(up.archive_format.as_deref(), Some("gzip"));
    let inside = ev.pii.iter().find(|p| p.pii_type == "email").unwrap();
    assert!(inside.location.starts_with("upload:conv.json.gz"), "{}", inside.location);
    let in_prompt = prompt.pii.iter().find(|p| p.pii_type == "email" && p.location.starts_with("request")).unwrap();
    assert_eq!(inside.fingerprints, in_prompt.fingerprints, "the same value links up across exchanges");
}

#[test]
fn a_github_contents_put_is_scanned_in_its_decoded_content() {
    use base64::Engine as _;
    let mut h = hook(ContentCapture::Redacted);
    let prompt = chat_call(&mut h);
    // the file's bytes travel base64-encoded inside JSON: only the decoded form shows the email
    let file = base64::engine::general_purpose::STANDARD.encode("name,email\nJane,jane.doe@example.com\n");
    let body = format!(r#"{{"message":"export","content":"{file}"}}"#);
    let req = http(
        "PUT /repos/someone/dump/contents/customers.csv HTTP/1.1\r\nHost: api.github.com\r\nContent-Type: application/json\r\n",
        body.as_bytes(),
    );
    let ev = exchange(&mut h, "n1/7/8/2", &req, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}");
    assert_eq!(ev.attributes.get("chainwatch.saas.action").map(String::as_str), Some("contents.put"), "{:?}", ev.attributes);
    let email = ev.pii.iter().find(|p| p.pii_type == "email").unwrap_or_else(|| panic!("no email in {:?}", ev.pii));
    assert!(email.location.starts_with("upload:github"), "{}", email.location);
    let in_prompt = prompt.pii.iter().find(|p| p.pii_type == "email" && p.location.starts_with("request")).unwrap();
    assert_eq!(email.fingerprints, in_prompt.fingerprints, "the same value links up across exchanges");
}
