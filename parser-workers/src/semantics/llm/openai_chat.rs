//! OpenAI Chat Completions (`/v1/chat/completions`) and legacy Completions (`/v1/completions`),
//! also as served by Azure OpenAI and OpenAI-compatible servers: the request (messages, tools,
//! tool results, parameters), the answer whole or streamed as `chat.completion.chunk` SSE events
//! (tool-call arguments reassembled from delta fragments by index, the usage-only final chunk of
//! `stream_options.include_usage`, refusals).

use serde_json::Value;

use super::TextSource;
use super::conversation::{CanonicalMessage, CanonicalPart};
use super::extract::{
    Extraction, Indexed, arr_at, content_text, error_attribute, i64_at, openai_parameters,
    sse_events, str_at,
};
use crate::semantics::HttpView;

/// Chat Completions.
pub fn extract_chat(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        openai_parameters(req, ex);
        chat_request(req, ex);
    }
    let choices = read_choices(view, ex, |choice, c, streamed| {
        let message = if streamed { "delta" } else { "message" };
        if let Some(m) = c.get(message) {
            choice.add_message(m, streamed);
        }
    });
    finish_choices(choices, ex);
}

/// Legacy Completions: `prompt` in, `choices[].text` out.
pub fn extract_completions(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        openai_parameters(req, ex);
        match req.get("prompt") {
            Some(Value::String(p)) => prompt(ex, "request.prompt", p),
            Some(Value::Array(items)) => {
                for (i, p) in items.iter().enumerate() {
                    if let Some(p) = p.as_str() {
                        prompt(ex, &format!("request.prompt[{i}]"), p);
                    }
                }
            }
            _ => {}
        }
        if let Some(s) = str_at(req, "suffix") {
            ex.text("request.suffix", "user", TextSource::User, s);
        }
    }
    let choices = read_choices(view, ex, |choice, c, _| {
        if let Some(t) = str_at(c, "text") {
            choice.text.push_str(t);
        }
    });
    finish_choices(choices, ex);
}

/// The choices of the response by index, from every streamed chunk or the one whole body
/// (errors, id, model and usage noted on the way): `add` fills a choice from its JSON
/// (`streamed`: a delta), the finish reason is taken here.
fn read_choices(
    view: &HttpView,
    ex: &mut Extraction,
    add: impl Fn(&mut Choice, &Value, bool),
) -> Indexed<Choice> {
    let events = sse_events(view);
    let streamed = !events.is_empty();
    if streamed {
        ex.call.stream = true;
    }
    let whole = if streamed { None } else { view.response_json() };
    let mut choices: Indexed<Choice> = Indexed::default();
    for body in events
        .iter()
        .filter_map(|e| chunk_json(&e.data))
        .chain(whole)
    {
        error_attribute(&body, ex);
        response_header_fields(&body, ex);
        for c in arr_at(&body, "choices") {
            let index = i64_at(c, "index").unwrap_or(0);
            let Some(choice) = choices.slot(index) else {
                continue;
            };
            add(choice, c, streamed);
            if let Some(r) = str_at(c, "finish_reason") {
                choice.finish = Some(r.to_string());
            }
        }
    }
    choices
}

fn prompt(ex: &mut Extraction, location: &str, p: &str) {
    ex.role("user");
    ex.text(location, "user", TextSource::User, p);
    ex.message(CanonicalMessage::new("user").text(p));
}

/// The JSON of a chunk (`[DONE]` and non-JSON data are skipped).
pub fn chunk_json(data: &str) -> Option<Value> {
    let d = data.trim();
    if !d.starts_with('{') {
        return None;
    }
    serde_json::from_str(d).ok()
}

/// id, model and usage of a response or chunk.
fn response_header_fields(v: &Value, ex: &mut Extraction) {
    if ex.call.response_id.is_none()
        && let Some(id) = str_at(v, "id").filter(|s| !s.is_empty())
    {
        ex.call.response_id = Some(id.to_string());
    }
    if let Some(m) = str_at(v, "model").filter(|s| !s.is_empty()) {
        ex.call.response_model = Some(m.to_string());
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        openai_usage(u, ex);
    }
}

/// `usage` of Chat Completions (prompt/completion tokens with details), or the
/// input/output form some compatible servers use.
pub fn openai_usage(u: &Value, ex: &mut Extraction) {
    if let Some(t) = i64_at(u, "prompt_tokens").or_else(|| i64_at(u, "input_tokens")) {
        ex.call.input_tokens = Some(t);
    }
    if let Some(t) = i64_at(u, "completion_tokens").or_else(|| i64_at(u, "output_tokens")) {
        ex.call.output_tokens = Some(t);
    }
    let cached = u
        .get("prompt_tokens_details")
        .or_else(|| u.get("input_tokens_details"))
        .and_then(|d| i64_at(d, "cached_tokens"));
    if cached.is_some() {
        ex.call.cached_tokens = cached;
    }
    let reasoning = u
        .get("completion_tokens_details")
        .or_else(|| u.get("output_tokens_details"))
        .and_then(|d| i64_at(d, "reasoning_tokens"));
    if reasoning.is_some() {
        ex.call.reasoning_tokens = reasoning;
    }
}

/// A tool call being assembled.
#[derive(Debug, Default)]
struct PendingToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// One choice being assembled (whole or from deltas).
#[derive(Debug, Default)]
struct Choice {
    text: String,
    refusal: String,
    tool_calls: Indexed<PendingToolCall>,
    finish: Option<String>,
}

impl Choice {
    /// A `message` (whole) or a `delta` (fragments appended).
    fn add_message(&mut self, m: &Value, delta: bool) {
        if let Some(t) = m.get("content") {
            self.text.push_str(&content_text(t));
        }
        if let Some(r) = str_at(m, "refusal") {
            self.refusal.push_str(r);
        }
        for (pos, tc) in arr_at(m, "tool_calls").iter().enumerate() {
            let index = if delta {
                i64_at(tc, "index").unwrap_or(pos as i64)
            } else {
                pos as i64
            };
            let Some(p) = self.tool_calls.slot(index) else {
                continue;
            };
            if let Some(id) = str_at(tc, "id").filter(|s| !s.is_empty())
                && p.id.is_empty()
            {
                p.id = id.to_string();
            }
            if let Some(f) = tc.get("function") {
                if let Some(name) = str_at(f, "name").filter(|s| !s.is_empty())
                    && p.name.is_empty()
                {
                    p.name = name.to_string();
                }
                match f.get("arguments") {
                    Some(Value::String(a)) => p.arguments.push_str(a),
                    // Some compatible servers send the arguments as an object.
                    Some(v @ Value::Object(_)) => p.arguments.push_str(&v.to_string()),
                    _ => {}
                }
            }
        }
        // The deprecated single `function_call`.
        if let Some(f) = m.get("function_call").filter(|f| f.is_object())
            && let Some(p) = self.tool_calls.slot(-1)
        {
            if let Some(name) = str_at(f, "name").filter(|s| !s.is_empty()) {
                p.name.push_str(name);
            }
            if let Some(a) = str_at(f, "arguments") {
                p.arguments.push_str(a);
            }
        }
    }
}

/// Finish reasons, tool calls, completion texts and the answer of the assembled choices.
fn finish_choices(choices: Indexed<Choice>, ex: &mut Extraction) {
    let mut answer = None;
    let mut refused = false;
    for (n, (index, choice)) in choices.items.into_iter().enumerate() {
        if let Some(f) = &choice.finish {
            ex.finish_reason(f);
        }
        ex.text(
            format!("response.choices[{index}].content"),
            "assistant",
            TextSource::Completion,
            &choice.text,
        );
        if !choice.refusal.is_empty() {
            refused = true;
            ex.text(
                format!("response.choices[{index}].refusal"),
                "assistant",
                TextSource::Completion,
                &choice.refusal,
            );
        }
        let mut msg = CanonicalMessage::new("assistant").text(&choice.text);
        for (_, tc) in choice.tool_calls.items {
            ex.answer_tool_call(&mut msg, &tc.id, &tc.name, &tc.arguments);
        }
        if n == 0 {
            answer = Some(msg);
        }
    }
    if refused {
        ex.attr("chainwatch.llm.refusal", "true");
    }
    if let Some(a) = answer {
        ex.answer = vec![a];
    }
}

/// Messages, tools and tool results of a Chat Completions request.
fn chat_request(req: &Value, ex: &mut Extraction) {
    for t in arr_at(req, "tools") {
        let name = t
            .get("function")
            .and_then(|f| str_at(f, "name"))
            .or_else(|| str_at(t, "name"))
            .or_else(|| str_at(t, "type"))
            .unwrap_or("");
        ex.tool_definition(name);
    }
    for f in arr_at(req, "functions") {
        ex.tool_definition(str_at(f, "name").unwrap_or(""));
    }
    for (i, m) in arr_at(req, "messages").iter().enumerate() {
        let role = str_at(m, "role").unwrap_or("unknown");
        ex.role(role);
        let content = m.get("content").map(content_text).unwrap_or_default();
        let location = format!("request.messages[{i}].content");
        let mut msg = CanonicalMessage::new(role);
        match role {
            "system" | "developer" => {
                ex.system_text(location, role, &content);
                msg.push_text(&content);
            }
            "tool" | "function" => {
                let id = str_at(m, "tool_call_id")
                    .or_else(|| str_at(m, "name"))
                    .unwrap_or("");
                ex.tool_result_id(str_at(m, "tool_call_id").unwrap_or(""));
                ex.request_tool_result(&mut msg, location, role, id, content);
            }
            "assistant" => {
                ex.text(location, role, TextSource::Assistant, &content);
                msg.push_text(&content);
                for (j, tc) in arr_at(m, "tool_calls").iter().enumerate() {
                    let id = str_at(tc, "id").unwrap_or("");
                    let f = tc.get("function").unwrap_or(&Value::Null);
                    let name = str_at(f, "name").unwrap_or("");
                    let args = f.get("arguments").unwrap_or(&Value::Null);
                    let args_text = args
                        .as_str()
                        .map_or_else(|| args.to_string(), str::to_string);
                    ex.text(
                        format!("request.messages[{i}].tool_calls[{j}].arguments"),
                        role,
                        TextSource::ToolArguments,
                        &args_text,
                    );
                    msg.parts
                        .push(CanonicalPart::tool_call_value(id, name, args));
                }
            }
            _ => {
                ex.text(location, role, TextSource::User, &content);
                msg.push_text(&content);
            }
        }
        if let Some(Value::Array(parts)) = m.get("content") {
            for p in parts {
                if let Some(kind) = str_at(p, "type").filter(|k| !k.contains("text")) {
                    msg.parts.push(CanonicalPart::Other(kind.to_string()));
                }
            }
        }
        ex.message(msg);
    }
}
