//! Ollama's native API: `/api/chat` (messages, tools, tool_calls with object arguments) and
//! `/api/generate` (prompt, system), streamed by default as NDJSON lines whose last one
//! (`done: true`) carries `done_reason`, `prompt_eval_count` and `eval_count`.

use serde_json::Value;

use super::TextSource;
use super::conversation::{CanonicalMessage, CanonicalPart};
use super::extract::{Extraction, arr_at, content_text, error_attribute, f64_at, i64_at, str_at};
use crate::semantics::HttpView;

/// NDJSON lines read at most.
const MAX_LINES: usize = 100_000;

pub fn extract_chat(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    ex.call.stream = true; // Ollama streams unless told not to
    if let Some(req) = req {
        parameters(req, ex);
        for t in arr_at(req, "tools") {
            ex.tool_definition(
                t.get("function")
                    .and_then(|f| str_at(f, "name"))
                    .unwrap_or(""),
            );
        }
        for (i, m) in arr_at(req, "messages").iter().enumerate() {
            let role = str_at(m, "role").unwrap_or("user");
            ex.role(role);
            let content = m.get("content").map(content_text).unwrap_or_default();
            let location = format!("request.messages[{i}].content");
            let mut msg = CanonicalMessage::new(role);
            match role {
                "system" => {
                    ex.system_text(location, role, &content);
                    msg.push_text(&content);
                }
                "tool" => {
                    let id = str_at(m, "tool_call_id")
                        .or_else(|| str_at(m, "tool_name"))
                        .unwrap_or("");
                    ex.tool_result_id(str_at(m, "tool_call_id").unwrap_or(""));
                    ex.request_tool_result(&mut msg, location, role, id, content);
                }
                _ => {
                    let source = if role == "assistant" {
                        TextSource::Assistant
                    } else {
                        TextSource::User
                    };
                    ex.text(location, role, source, &content);
                    msg.push_text(&content);
                    for tc in arr_at(m, "tool_calls") {
                        let f = tc.get("function").unwrap_or(&Value::Null);
                        msg.parts.push(CanonicalPart::tool_call_value(
                            str_at(tc, "id").unwrap_or(""),
                            str_at(f, "name").unwrap_or(""),
                            f.get("arguments").unwrap_or(&Value::Null),
                        ));
                    }
                }
            }
            ex.message(msg);
        }
    }
    let mut text = String::new();
    let mut answer = CanonicalMessage::new("assistant");
    for line in lines(view) {
        error_attribute(&line, ex);
        final_fields(&line, ex);
        if let Some(m) = line.get("message") {
            text.push_str(str_at(m, "content").unwrap_or(""));
            for tc in arr_at(m, "tool_calls") {
                let f = tc.get("function").unwrap_or(&Value::Null);
                let args = f.get("arguments").map_or_else(
                    || "{}".to_string(),
                    |a| match a {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                );
                ex.answer_tool_call(
                    &mut answer,
                    str_at(tc, "id").unwrap_or(""),
                    str_at(f, "name").unwrap_or(""),
                    &args,
                );
            }
        }
    }
    ex.text(
        "response.message.content",
        "assistant",
        TextSource::Completion,
        &text,
    );
    answer.parts.insert(0, CanonicalPart::Text(text));
    ex.answer = vec![answer];
}

pub fn extract_generate(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    ex.call.stream = true;
    if let Some(req) = req {
        parameters(req, ex);
        if let Some(s) = str_at(req, "system") {
            ex.system_text("request.system", "system", s);
            ex.message(CanonicalMessage::new("system").text(s));
        }
        if let Some(p) = str_at(req, "prompt") {
            ex.role("user");
            ex.text("request.prompt", "user", TextSource::User, p);
            ex.message(CanonicalMessage::new("user").text(p));
        }
    }
    let mut text = String::new();
    for line in lines(view) {
        error_attribute(&line, ex);
        final_fields(&line, ex);
        text.push_str(str_at(&line, "response").unwrap_or(""));
    }
    ex.text(
        "response.response",
        "assistant",
        TextSource::Completion,
        &text,
    );
    ex.answer_from(&text);
}

fn parameters(req: &Value, ex: &mut Extraction) {
    if let Some(m) = str_at(req, "model") {
        ex.call.request_model = Some(m.to_string());
    }
    if let Some(s) = req.get("stream").and_then(Value::as_bool) {
        ex.call.stream = s;
    }
    if let Some(o) = req.get("options") {
        ex.call.temperature = f64_at(o, "temperature");
        ex.call.top_p = f64_at(o, "top_p");
        ex.call.max_tokens = i64_at(o, "num_predict");
    }
}

/// model, done_reason and token counts (on the final line, or the one whole response).
fn final_fields(line: &Value, ex: &mut Extraction) {
    if let Some(m) = str_at(line, "model") {
        ex.call.response_model = Some(m.to_string());
    }
    if let Some(r) = str_at(line, "done_reason") {
        ex.finish_reason(r);
    }
    if let Some(t) = i64_at(line, "prompt_eval_count") {
        ex.call.input_tokens = Some(t);
    }
    if let Some(t) = i64_at(line, "eval_count") {
        ex.call.output_tokens = Some(t);
    }
}

/// The response's JSON lines (one line when not streamed).
fn lines(view: &HttpView) -> Vec<Value> {
    view.response_body
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .take(MAX_LINES)
        .filter_map(|l| serde_json::from_slice(l.trim_ascii()).ok())
        .collect()
}
