//! Anthropic Messages (`/v1/messages`): `system`, messages with text / tool_use / tool_result
//! blocks, tools, parameters; the answer whole, or streamed as SSE (message_start,
//! content_block_start / delta (text_delta, input_json_delta, thinking_delta) / stop,
//! message_delta with stop_reason and usage, message_stop), tool_use input reassembled.

use serde_json::Value;

use super::TextSource;
use super::conversation::{CanonicalMessage, CanonicalPart, canonical_json};
use super::extract::{
    Extraction, Indexed, arr_at, content_text, error_attribute, f64_at, i64_at, str_at,
    stream_or_whole,
};
use super::openai_chat::chunk_json;
use crate::semantics::HttpView;

pub fn extract(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        request(req, ex);
    }
    stream_or_whole(view, ex, stream, message);
}

fn request(req: &Value, ex: &mut Extraction) {
    if let Some(m) = str_at(req, "model") {
        ex.call.request_model = Some(m.to_string());
    }
    ex.call.temperature = f64_at(req, "temperature");
    ex.call.top_p = f64_at(req, "top_p");
    ex.call.max_tokens = i64_at(req, "max_tokens");
    if let Some(s) = req.get("stream").and_then(Value::as_bool) {
        ex.call.stream = s;
    }
    for t in arr_at(req, "tools") {
        ex.tool_definition(
            str_at(t, "name")
                .or_else(|| str_at(t, "type"))
                .unwrap_or(""),
        );
    }
    if let Some(system) = req.get("system") {
        let text = content_text(system);
        if !text.is_empty() {
            ex.system_text("request.system", "system", &text);
            ex.message(CanonicalMessage::new("system").text(&text));
        }
    }
    for (i, m) in arr_at(req, "messages").iter().enumerate() {
        let role = str_at(m, "role").unwrap_or("unknown");
        ex.role(role);
        let mut msg = CanonicalMessage::new(role);
        let source = if role == "assistant" {
            TextSource::Assistant
        } else {
            TextSource::User
        };
        match m.get("content") {
            Some(Value::String(s)) => {
                ex.text(format!("request.messages[{i}].content"), role, source, s);
                msg.push_text(s);
            }
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    let location = format!("request.messages[{i}].content[{j}]");
                    request_block(b, &location, role, source, &mut msg, ex);
                }
            }
            _ => {}
        }
        ex.message(msg);
    }
}

fn request_block(
    b: &Value,
    location: &str,
    role: &str,
    source: TextSource,
    msg: &mut CanonicalMessage,
    ex: &mut Extraction,
) {
    match str_at(b, "type").unwrap_or("") {
        "text" => {
            let t = str_at(b, "text").unwrap_or("");
            ex.text(format!("{location}.text"), role, source, t);
            msg.push_text(t);
        }
        "tool_use" | "server_tool_use" => {
            ex.request_tool_call(
                msg,
                format!("{location}.input"),
                role,
                str_at(b, "id").unwrap_or(""),
                str_at(b, "name").unwrap_or(""),
                b.get("input").unwrap_or(&Value::Null),
            );
        }
        "tool_result" => {
            let id = str_at(b, "tool_use_id").unwrap_or("");
            ex.tool_result_id(id);
            let text = b.get("content").map(content_text).unwrap_or_default();
            ex.request_tool_result(msg, format!("{location}.tool_result"), role, id, text);
        }
        kind if kind.ends_with("_tool_result") => {
            // Server tool results (web_search_tool_result, ...): retrieved documents.
            let content = b.get("content").unwrap_or(&Value::Null);
            let text = match content {
                Value::String(s) => s.clone(),
                other => canonical_json(other),
            };
            let id = str_at(b, "tool_use_id").unwrap_or("");
            ex.request_tool_result(msg, format!("{location}.tool_result"), role, id, text);
        }
        "document" => {
            if let Some(src) = b.get("source")
                && let Some(data) =
                    str_at(src, "data").filter(|_| str_at(src, "type") == Some("text"))
            {
                ex.text(
                    format!("{location}.document"),
                    role,
                    TextSource::ToolOutput,
                    data,
                );
            }
            msg.parts.push(CanonicalPart::Other("document".into()));
        }
        "thinking" | "redacted_thinking" | "" => {}
        other => msg.parts.push(CanonicalPart::Other(other.to_string())),
    }
}

/// `usage` of a message, message_start or message_delta (later values override).
fn usage(u: &Value, ex: &mut Extraction) {
    if let Some(t) = i64_at(u, "input_tokens") {
        ex.call.input_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "output_tokens") {
        ex.call.output_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "cache_read_input_tokens") {
        ex.call.cached_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "cache_creation_input_tokens") {
        ex.replace_attr("gen_ai.usage.cache_creation.input_tokens", t.to_string());
    }
    if let Some(t) = u
        .get("output_tokens_details")
        .and_then(|d| i64_at(d, "thinking_tokens"))
    {
        ex.call.reasoning_tokens = Some(t);
    }
}

/// A content block being assembled from a stream.
#[derive(Debug, Default)]
struct Block {
    kind: String,
    id: String,
    name: String,
    text: String,
    input_json: String,
    start_input: Option<Value>,
}

fn stream(events: &[crate::body::SseEvent], ex: &mut Extraction) {
    let mut blocks: Indexed<Block> = Indexed::default();
    for e in events {
        let Some(ev) = chunk_json(&e.data) else {
            continue;
        };
        let kind = str_at(&ev, "type").unwrap_or(e.event.as_str()).to_string();
        match kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.get("message") {
                    header(m, ex);
                }
            }
            "content_block_start" => {
                let index = i64_at(&ev, "index").unwrap_or(0);
                if let (Some(cb), Some(b)) = (ev.get("content_block"), blocks.slot(index)) {
                    b.kind = str_at(cb, "type").unwrap_or("").to_string();
                    b.id = str_at(cb, "id").unwrap_or("").to_string();
                    b.name = str_at(cb, "name").unwrap_or("").to_string();
                    b.text = str_at(cb, "text").unwrap_or("").to_string();
                    b.start_input = cb.get("input").cloned();
                }
            }
            "content_block_delta" => {
                let index = i64_at(&ev, "index").unwrap_or(0);
                if let (Some(d), Some(b)) = (ev.get("delta"), blocks.slot(index)) {
                    match str_at(d, "type").unwrap_or("") {
                        "text_delta" => b.text.push_str(str_at(d, "text").unwrap_or("")),
                        "input_json_delta" => b
                            .input_json
                            .push_str(str_at(d, "partial_json").unwrap_or("")),
                        "thinking_delta" => b.text.push_str(str_at(d, "thinking").unwrap_or("")),
                        _ => {}
                    }
                }
            }
            "message_delta" => {
                if let Some(r) = ev.get("delta").and_then(|d| str_at(d, "stop_reason")) {
                    ex.call.finish_reasons.clear();
                    ex.finish_reason(r);
                }
                if let Some(u) = ev.get("usage") {
                    usage(u, ex);
                }
            }
            "error" => error_attribute(&ev, ex),
            _ => {}
        }
    }
    let mut answer = CanonicalMessage::new("assistant");
    for (index, b) in blocks.items {
        match b.kind.as_str() {
            "text" => {
                ex.text(
                    format!("response.content[{index}].text"),
                    "assistant",
                    TextSource::Completion,
                    &b.text,
                );
                answer.push_text(&b.text);
            }
            "thinking" => {
                ex.text(
                    format!("response.content[{index}].thinking"),
                    "assistant",
                    TextSource::Reasoning,
                    &b.text,
                );
            }
            "tool_use" | "server_tool_use" => {
                let args = if b.input_json.trim().is_empty() {
                    b.start_input
                        .as_ref()
                        .map_or_else(|| "{}".to_string(), Value::to_string)
                } else {
                    b.input_json
                };
                ex.answer_tool_call(&mut answer, &b.id, &b.name, &args);
            }
            _ => {}
        }
    }
    ex.answer = vec![answer];
}

/// id, model, usage and stop reason of a message (whole or message_start).
fn header(m: &Value, ex: &mut Extraction) {
    if let Some(id) = str_at(m, "id") {
        ex.call.response_id = Some(id.to_string());
    }
    if let Some(model) = str_at(m, "model") {
        ex.call.response_model = Some(model.to_string());
    }
    if let Some(u) = m.get("usage") {
        usage(u, ex);
    }
    if let Some(r) = str_at(m, "stop_reason") {
        ex.finish_reason(r);
    }
}

/// A whole (non-streamed) message.
fn message(m: &Value, ex: &mut Extraction) {
    header(m, ex);
    let mut answer = CanonicalMessage::new("assistant");
    for (index, b) in arr_at(m, "content").iter().enumerate() {
        match str_at(b, "type").unwrap_or("") {
            "text" => {
                let t = str_at(b, "text").unwrap_or("");
                ex.text(
                    format!("response.content[{index}].text"),
                    "assistant",
                    TextSource::Completion,
                    t,
                );
                answer.push_text(t);
            }
            "thinking" => {
                let t = str_at(b, "thinking").unwrap_or("");
                ex.text(
                    format!("response.content[{index}].thinking"),
                    "assistant",
                    TextSource::Reasoning,
                    t,
                );
            }
            "tool_use" | "server_tool_use" => {
                let input = b
                    .get("input")
                    .map_or_else(|| "{}".to_string(), Value::to_string);
                ex.answer_tool_call(
                    &mut answer,
                    str_at(b, "id").unwrap_or(""),
                    str_at(b, "name").unwrap_or(""),
                    &input,
                );
            }
            _ => {}
        }
    }
    if m.get("content").is_some() {
        ex.answer = vec![answer];
    }
}
