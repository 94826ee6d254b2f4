//! AWS Bedrock Converse (`/model/{modelId}/converse`) and ConverseStream (`/converse-stream`,
//! AWS event-stream framing): messages with text / toolUse / toolResult blocks, system,
//! inferenceConfig, toolConfig; the answer whole or as messageStart / contentBlockStart /
//! contentBlockDelta / contentBlockStop / messageStop / metadata events.

use serde_json::Value;

use super::aws_event_stream::decode_event_stream;
use super::conversation::{CanonicalMessage, CanonicalPart, canonical_json};
use super::extract::{Extraction, Indexed, arr_at, f64_at, i64_at, json_of, str_at};
use super::{Counter, TextSource, count};
use crate::semantics::HttpView;

pub fn extract(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        request(req, ex);
    }
    if let Some(id) = view.response_header("x-amzn-requestid") {
        ex.call.response_id = Some(id.to_string());
    }
    let eventstream = view
        .response_mime()
        .is_some_and(|m| m == "application/vnd.amazon.eventstream")
        || ex.call.stream && !view.response_body.trim_ascii_start().starts_with(b"{");
    if eventstream {
        ex.call.stream = true;
        stream(&view.response_body, ex);
    } else if let Some(resp) = view.response_json() {
        if let Some(kind) = view.response_header("x-amzn-errortype") {
            ex.attr("error.type", kind.split(':').next().unwrap_or(kind));
        }
        whole(&resp, ex);
    }
}

fn request(req: &Value, ex: &mut Extraction) {
    if let Some(cfg) = req.get("inferenceConfig") {
        ex.call.temperature = f64_at(cfg, "temperature");
        ex.call.top_p = f64_at(cfg, "topP");
        ex.call.max_tokens = i64_at(cfg, "maxTokens");
    }
    if let Some(tc) = req.get("toolConfig") {
        for t in arr_at(tc, "tools") {
            if let Some(spec) = t.get("toolSpec") {
                ex.tool_definition(str_at(spec, "name").unwrap_or(""));
            }
        }
    }
    let system: String = arr_at(req, "system")
        .iter()
        .filter_map(|b| str_at(b, "text"))
        .collect();
    if !system.is_empty() {
        ex.system_text("request.system", "system", &system);
        ex.message(CanonicalMessage::new("system").text(&system));
    }
    for (i, m) in arr_at(req, "messages").iter().enumerate() {
        let role = str_at(m, "role").unwrap_or("user");
        ex.role(role);
        let source = if role == "assistant" {
            TextSource::Assistant
        } else {
            TextSource::User
        };
        let mut msg = CanonicalMessage::new(role);
        for (j, b) in arr_at(m, "content").iter().enumerate() {
            let location = format!("request.messages[{i}].content[{j}]");
            if let Some(t) = str_at(b, "text") {
                ex.text(format!("{location}.text"), role, source, t);
                msg.push_text(t);
            } else if let Some(tu) = b.get("toolUse") {
                ex.request_tool_call(
                    &mut msg,
                    format!("{location}.toolUse.input"),
                    role,
                    str_at(tu, "toolUseId").unwrap_or(""),
                    str_at(tu, "name").unwrap_or(""),
                    tu.get("input").unwrap_or(&Value::Null),
                );
            } else if let Some(tr) = b.get("toolResult") {
                let id = str_at(tr, "toolUseId").unwrap_or("");
                ex.tool_result_id(id);
                let mut text = String::new();
                for c in arr_at(tr, "content") {
                    if let Some(t) = str_at(c, "text") {
                        text.push_str(t);
                    } else if let Some(j) = c.get("json") {
                        text.push_str(&canonical_json(j));
                    }
                }
                ex.request_tool_result(&mut msg, format!("{location}.toolResult"), role, id, text);
            } else if let Some(kind) = b.as_object().and_then(|o| o.keys().next())
                && kind != "reasoningContent"
            {
                msg.parts.push(CanonicalPart::Other(kind.clone()));
            }
        }
        ex.message(msg);
    }
}

fn usage(u: &Value, ex: &mut Extraction) {
    if let Some(t) = i64_at(u, "inputTokens") {
        ex.call.input_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "outputTokens") {
        ex.call.output_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "cacheReadInputTokens") {
        ex.call.cached_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "cacheWriteInputTokens") {
        ex.replace_attr("gen_ai.usage.cache_creation.input_tokens", t.to_string());
    }
}

/// A whole Converse response.
fn whole(resp: &Value, ex: &mut Extraction) {
    if let Some(r) = str_at(resp, "stopReason") {
        ex.finish_reason(r);
    }
    if let Some(u) = resp.get("usage") {
        usage(u, ex);
    }
    let Some(message) = resp.get("output").and_then(|o| o.get("message")) else {
        return;
    };
    let mut answer = CanonicalMessage::new("assistant");
    for (i, b) in arr_at(message, "content").iter().enumerate() {
        if let Some(t) = str_at(b, "text") {
            ex.text(
                format!("response.content[{i}].text"),
                "assistant",
                TextSource::Completion,
                t,
            );
            answer.push_text(t);
        } else if let Some(tu) = b.get("toolUse") {
            let input = tu
                .get("input")
                .map_or_else(|| "{}".to_string(), Value::to_string);
            ex.answer_tool_call(
                &mut answer,
                str_at(tu, "toolUseId").unwrap_or(""),
                str_at(tu, "name").unwrap_or(""),
                &input,
            );
        } else if let Some(t) = b
            .get("reasoningContent")
            .and_then(|r| r.get("reasoningText"))
            .and_then(|r| str_at(r, "text"))
        {
            ex.text(
                format!("response.content[{i}].reasoning"),
                "assistant",
                TextSource::Reasoning,
                t,
            );
        }
    }
    ex.answer = vec![answer];
}

#[derive(Debug, Default)]
struct Block {
    id: String,
    name: String,
    text: String,
    input: String,
    reasoning: String,
    is_tool: bool,
}

/// A ConverseStream body: event-stream messages, each payload the JSON of one event.
fn stream(body: &[u8], ex: &mut Extraction) {
    let (messages, err) = decode_event_stream(body);
    if let Some(err) = err {
        count(Counter::EventStreamError);
        ex.attr("chainwatch.llm.event_stream_error", err.to_string());
    }
    let mut blocks: Indexed<Block> = Indexed::default();
    for m in &messages {
        if m.header(":message-type") == Some("exception") {
            ex.attr(
                "error.type",
                m.header(":exception-type").unwrap_or("exception"),
            );
            continue;
        }
        let Some(payload) = json_of(&m.payload) else {
            continue;
        };
        let event = m.header(":event-type").unwrap_or("");
        let index = i64_at(&payload, "contentBlockIndex").unwrap_or(0);
        match event {
            "contentBlockStart" => {
                if let (Some(tu), Some(b)) = (
                    payload.get("start").and_then(|s| s.get("toolUse")),
                    blocks.slot(index),
                ) {
                    b.is_tool = true;
                    b.id = str_at(tu, "toolUseId").unwrap_or("").to_string();
                    b.name = str_at(tu, "name").unwrap_or("").to_string();
                }
            }
            "contentBlockDelta" => {
                if let (Some(d), Some(b)) = (payload.get("delta"), blocks.slot(index)) {
                    if let Some(t) = str_at(d, "text") {
                        b.text.push_str(t);
                    }
                    if let Some(tu) = d.get("toolUse") {
                        b.is_tool = true;
                        b.input.push_str(str_at(tu, "input").unwrap_or(""));
                    }
                    if let Some(t) = d.get("reasoningContent").and_then(|r| str_at(r, "text")) {
                        b.reasoning.push_str(t);
                    }
                }
            }
            "messageStop" => {
                if let Some(r) = str_at(&payload, "stopReason") {
                    ex.finish_reason(r);
                }
            }
            "metadata" => {
                if let Some(u) = payload.get("usage") {
                    usage(u, ex);
                }
                if let Some(ms) = payload.get("metrics").and_then(|m| i64_at(m, "latencyMs")) {
                    ex.attr("chainwatch.llm.bedrock.latency_ms", ms.to_string());
                }
            }
            _ => {}
        }
    }
    let mut answer = CanonicalMessage::new("assistant");
    for (index, b) in blocks.items {
        ex.text(
            format!("response.content[{index}].text"),
            "assistant",
            TextSource::Completion,
            &b.text,
        );
        ex.text(
            format!("response.content[{index}].reasoning"),
            "assistant",
            TextSource::Reasoning,
            &b.reasoning,
        );
        answer.push_text(&b.text);
        if b.is_tool {
            ex.answer_tool_call(&mut answer, &b.id, &b.name, &b.input);
        }
    }
    ex.answer = vec![answer];
}
