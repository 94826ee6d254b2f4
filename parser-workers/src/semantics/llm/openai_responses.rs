//! OpenAI Responses API (`/v1/responses`): `instructions` and `input` items (messages,
//! function_call, function_call_output), the answer's `output` items whole, or streamed as
//! `response.*` SSE events (output items, text and function-call-argument deltas, and the final
//! `response.completed` / `response.incomplete` / `response.failed` with its usage).

use serde_json::Value;

use super::TextSource;
use super::conversation::{CanonicalMessage, CanonicalPart};
use super::extract::{
    Extraction, Indexed, arr_at, content_text, error_attribute, i64_at, openai_parameters, str_at,
    stream_or_whole,
};
use super::openai_chat::{chunk_json, openai_usage};
use crate::semantics::HttpView;

pub fn extract(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        openai_parameters(req, ex);
        request(req, ex);
    }
    stream_or_whole(view, ex, stream, response);
}

fn request(req: &Value, ex: &mut Extraction) {
    for t in arr_at(req, "tools") {
        ex.tool_definition(
            str_at(t, "name")
                .or_else(|| str_at(t, "type"))
                .unwrap_or(""),
        );
    }
    match req.get("conversation") {
        Some(Value::String(id)) => ex.attr("gen_ai.conversation.id", id.clone()),
        Some(c @ Value::Object(_)) => {
            if let Some(id) = str_at(c, "id") {
                ex.attr("gen_ai.conversation.id", id);
            }
        }
        _ => {}
    }
    if let Some(prev) = str_at(req, "previous_response_id") {
        ex.attr("chainwatch.llm.previous_response_id", prev);
    }
    if let Some(instr) = str_at(req, "instructions") {
        ex.system_text("request.instructions", "system", instr);
        ex.message(CanonicalMessage::new("system").text(instr));
    }
    match req.get("input") {
        Some(Value::String(s)) => {
            ex.role("user");
            ex.text("request.input", "user", TextSource::User, s);
            ex.message(CanonicalMessage::new("user").text(s));
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(i, item, ex);
            }
        }
        _ => {}
    }
}

fn input_item(i: usize, item: &Value, ex: &mut Extraction) {
    let kind = str_at(item, "type").unwrap_or("message");
    let location = format!("request.input[{i}]");
    match kind {
        "message" => {
            let role = str_at(item, "role").unwrap_or("user");
            ex.role(role);
            let text = item.get("content").map(content_text).unwrap_or_default();
            let source = match role {
                "system" | "developer" => {
                    ex.system_text(format!("{location}.content"), role, &text);
                    None
                }
                "assistant" => Some(TextSource::Assistant),
                _ => Some(TextSource::User),
            };
            if let Some(source) = source {
                ex.text(format!("{location}.content"), role, source, &text);
            }
            let mut msg = CanonicalMessage::new(role).text(&text);
            if let Some(Value::Array(parts)) = item.get("content") {
                for p in parts {
                    if let Some(k) = str_at(p, "type").filter(|k| !k.contains("text")) {
                        msg.parts.push(CanonicalPart::Other(k.to_string()));
                    }
                }
            }
            ex.message(msg);
        }
        "function_call" | "custom_tool_call" => {
            ex.role("assistant");
            let id = str_at(item, "call_id").unwrap_or("");
            let name = str_at(item, "name").unwrap_or("");
            let args = str_at(item, "arguments")
                .or_else(|| str_at(item, "input"))
                .unwrap_or("");
            ex.text(
                format!("{location}.arguments"),
                "assistant",
                TextSource::ToolArguments,
                args,
            );
            let mut msg = CanonicalMessage::new("assistant");
            msg.parts.push(CanonicalPart::tool_call(id, name, args));
            ex.message(msg);
        }
        "function_call_output" | "custom_tool_call_output" => {
            ex.role("tool");
            let id = str_at(item, "call_id").unwrap_or("");
            ex.tool_result_id(id);
            let output = item.get("output").map(|o| match o {
                Value::String(s) => s.clone(),
                other => content_text(other),
            });
            let output = output.unwrap_or_default();
            let mut msg = CanonicalMessage::new("tool");
            ex.request_tool_result(&mut msg, format!("{location}.output"), "tool", id, output);
            ex.message(msg);
        }
        // Reasoning items and item references are not conversation text.
        _ => {}
    }
}

/// A streamed output item being assembled.
#[derive(Debug, Default)]
struct StreamItem {
    item: Value,
    text: String,
    refusal: String,
    arguments: String,
    done: bool,
}

fn stream(events: &[crate::body::SseEvent], ex: &mut Extraction) {
    let mut items: Indexed<StreamItem> = Indexed::default();
    let mut last_response: Option<Value> = None;
    for e in events {
        let Some(ev) = chunk_json(&e.data) else {
            continue;
        };
        let kind = str_at(&ev, "type").unwrap_or(e.event.as_str()).to_string();
        if let Some(r) = ev.get("response").filter(|r| r.is_object()) {
            last_response = Some(r.clone());
        }
        let index = i64_at(&ev, "output_index").unwrap_or(0);
        match kind.as_str() {
            "response.output_item.added" | "response.output_item.done" => {
                if let (Some(item), Some(slot)) = (ev.get("item"), items.slot(index)) {
                    slot.item = item.clone();
                    slot.done = kind.ends_with("done");
                }
            }
            "response.output_text.delta" => {
                if let (Some(d), Some(slot)) = (str_at(&ev, "delta"), items.slot(index)) {
                    slot.text.push_str(d);
                }
            }
            "response.refusal.delta" => {
                if let (Some(d), Some(slot)) = (str_at(&ev, "delta"), items.slot(index)) {
                    slot.refusal.push_str(d);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let (Some(d), Some(slot)) = (str_at(&ev, "delta"), items.slot(index)) {
                    slot.arguments.push_str(d);
                }
            }
            "response.function_call_arguments.done" => {
                if let (Some(a), Some(slot)) = (str_at(&ev, "arguments"), items.slot(index)) {
                    slot.arguments = a.to_string();
                }
            }
            "error" => error_attribute(&serde_json::json!({ "error": ev }), ex),
            _ => {}
        }
    }
    let mut resp = last_response.unwrap_or_else(|| Value::Object(Default::default()));
    let has_output = resp
        .get("output")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty());
    if !has_output && !items.items.is_empty() {
        let output: Vec<Value> = items.items.into_values().map(assembled_item).collect();
        if let Some(obj) = resp.as_object_mut() {
            obj.insert("output".into(), Value::Array(output));
        }
    }
    response(&resp, ex);
}

/// A streamed item with its deltas put in, when its `done` event was not seen.
fn assembled_item(s: StreamItem) -> Value {
    let mut item = s.item;
    if s.done {
        return item;
    }
    let kind = str_at(&item, "type").unwrap_or("").to_string();
    if let Some(obj) = item.as_object_mut() {
        match kind.as_str() {
            "message" => {
                let mut parts = Vec::new();
                if !s.text.is_empty() {
                    parts.push(serde_json::json!({"type": "output_text", "text": s.text}));
                }
                if !s.refusal.is_empty() {
                    parts.push(serde_json::json!({"type": "refusal", "refusal": s.refusal}));
                }
                obj.insert("content".into(), Value::Array(parts));
            }
            "function_call" => {
                obj.insert("arguments".into(), Value::String(s.arguments));
            }
            "custom_tool_call" => {
                obj.insert("input".into(), Value::String(s.arguments));
            }
            _ => {}
        }
    }
    item
}

/// A Responses API response object (whole, or the final one of a stream).
fn response(resp: &Value, ex: &mut Extraction) {
    error_attribute(resp, ex);
    if let Some(id) = str_at(resp, "id") {
        ex.call.response_id = Some(id.to_string());
    }
    if let Some(m) = str_at(resp, "model") {
        ex.call.response_model = Some(m.to_string());
    }
    if let Some(u) = resp.get("usage").filter(|u| u.is_object()) {
        openai_usage(u, ex);
    }
    if let Some(c) = resp.get("conversation").and_then(|c| str_at(c, "id")) {
        ex.attr("gen_ai.conversation.id", c);
    }
    let incomplete = resp
        .get("incomplete_details")
        .and_then(|d| str_at(d, "reason"));
    match (str_at(resp, "status"), incomplete) {
        (_, Some(reason)) => ex.finish_reason(reason),
        (Some(status), None) if status != "in_progress" && status != "queued" => {
            ex.finish_reason(status)
        }
        _ => {}
    }
    let mut answer = Vec::new();
    let mut refused = false;
    for (i, item) in arr_at(resp, "output").iter().enumerate() {
        match str_at(item, "type").unwrap_or("") {
            "message" => {
                let mut text = String::new();
                for p in arr_at(item, "content") {
                    match str_at(p, "type") {
                        Some("refusal") => {
                            refused = true;
                            let r = str_at(p, "refusal").unwrap_or("");
                            ex.text(
                                format!("response.output[{i}].refusal"),
                                "assistant",
                                TextSource::Completion,
                                r,
                            );
                        }
                        _ => text.push_str(str_at(p, "text").unwrap_or("")),
                    }
                }
                ex.text(
                    format!("response.output[{i}].content"),
                    "assistant",
                    TextSource::Completion,
                    &text,
                );
                answer.push(CanonicalMessage::new("assistant").text(&text));
            }
            kind @ ("function_call" | "custom_tool_call" | "mcp_call") => {
                let id = str_at(item, "call_id")
                    .or_else(|| str_at(item, "id"))
                    .unwrap_or("");
                let name = str_at(item, "name").unwrap_or("");
                let args = str_at(item, "arguments")
                    .or_else(|| str_at(item, "input"))
                    .unwrap_or("");
                let before = ex.call.tool_calls.len();
                ex.tool_call(id, name, args);
                if kind != "mcp_call"
                    && let Some(tc) = ex.call.tool_calls.get(before)
                {
                    let mut msg = CanonicalMessage::new("assistant");
                    msg.parts
                        .push(CanonicalPart::tool_call(&tc.id, &tc.name, &tc.arguments));
                    answer.push(msg);
                }
            }
            "reasoning" => {
                for s in arr_at(item, "summary") {
                    ex.text(
                        format!("response.output[{i}].summary"),
                        "assistant",
                        TextSource::Reasoning,
                        str_at(s, "text").unwrap_or(""),
                    );
                }
            }
            _ => {}
        }
    }
    if refused {
        ex.attr("chainwatch.llm.refusal", "true");
    }
    if !answer.is_empty() {
        ex.answer = answer;
    }
}
