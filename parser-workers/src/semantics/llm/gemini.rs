//! Google Gemini (and Vertex AI) `models/{model}:generateContent` and `:streamGenerateContent`:
//! contents with text / functionCall / functionResponse parts, systemInstruction, tools,
//! generationConfig; the answer whole, as SSE (`?alt=sse`), or as the JSON-array stream form
//! (read element by element, so a cut array still yields its complete elements). Field names
//! are accepted in lowerCamelCase and in snake_case, as the REST API does.

use serde_json::Value;

use super::TextSource;
use super::conversation::{CanonicalMessage, CanonicalPart, canonical_json};
use super::extract::{
    Extraction, Indexed, content_text, error_attribute, f64_at, i64_at, sse_events, str_at,
};
use super::openai_chat::chunk_json;
use crate::semantics::HttpView;

/// Elements of a JSON-array stream read at most.
const MAX_ARRAY_ELEMENTS: usize = 100_000;

/// `v[camel]` or `v[snake]`.
pub fn get2<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn arr2<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a [Value] {
    get2(v, camel, snake)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub fn extract(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        request(req, ex);
    }
    let chunks = response_chunks(view, ex);
    let mut candidates: Indexed<Candidate> = Indexed::default();
    for chunk in &chunks {
        error_attribute(chunk, ex);
        if let Some(id) = get2(chunk, "responseId", "response_id").and_then(Value::as_str) {
            ex.call.response_id = Some(id.to_string());
        }
        if let Some(m) = get2(chunk, "modelVersion", "model_version").and_then(Value::as_str) {
            ex.call.response_model = Some(m.to_string());
        }
        if let Some(u) = get2(chunk, "usageMetadata", "usage_metadata") {
            usage(u, ex);
        }
        for (pos, c) in arr2(chunk, "candidates", "candidates").iter().enumerate() {
            let index = i64_at(c, "index").unwrap_or(pos as i64);
            let Some(cand) = candidates.slot(index) else {
                continue;
            };
            if let Some(parts) = c
                .get("content")
                .and_then(|ct| ct.get("parts"))
                .and_then(Value::as_array)
            {
                cand.parts.extend(parts.iter().cloned());
            }
            if let Some(r) = get2(c, "finishReason", "finish_reason").and_then(Value::as_str) {
                cand.finish = Some(r.to_string());
            }
        }
    }
    let mut first = true;
    for (index, cand) in candidates.items {
        if let Some(f) = &cand.finish {
            ex.finish_reason(f);
        }
        let mut answer = CanonicalMessage::new("assistant");
        let mut text = String::new();
        for p in &cand.parts {
            if let Some(t) = str_at(p, "text") {
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    ex.text(
                        format!("response.candidates[{index}].thought"),
                        "model",
                        TextSource::Reasoning,
                        t,
                    );
                } else {
                    text.push_str(t);
                }
            }
            if let Some(fc) = get2(p, "functionCall", "function_call") {
                let id = str_at(fc, "id").unwrap_or("");
                let name = str_at(fc, "name").unwrap_or("");
                let args = fc
                    .get("args")
                    .map_or_else(|| "{}".to_string(), Value::to_string);
                ex.answer_tool_call(&mut answer, id, name, &args);
            }
        }
        ex.text(
            format!("response.candidates[{index}].content"),
            "model",
            TextSource::Completion,
            &text,
        );
        answer.parts.insert(0, CanonicalPart::Text(text));
        if first {
            ex.answer = vec![answer];
            first = false;
        }
    }
}

#[derive(Debug, Default)]
struct Candidate {
    parts: Vec<Value>,
    finish: Option<String>,
}

/// The response as a list of GenerateContentResponse objects: SSE events, the JSON-array
/// stream, or one object.
fn response_chunks(view: &HttpView, ex: &mut Extraction) -> Vec<Value> {
    let events = sse_events(view);
    if !events.is_empty() {
        ex.call.stream = true;
        return events.iter().filter_map(|e| chunk_json(&e.data)).collect();
    }
    let body = view.response_body.trim_ascii_start();
    match body.first() {
        Some(b'[') => {
            ex.call.stream = true;
            json_array_elements(body)
        }
        Some(b'{') => serde_json::from_slice(body)
            .map(|v| vec![v])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The complete elements of a JSON array, even when the array is cut.
pub fn json_array_elements(body: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = match body.trim_ascii_start().strip_prefix(b"[") {
        Some(r) => r,
        None => return out,
    };
    while out.len() < MAX_ARRAY_ELEMENTS {
        rest = rest.trim_ascii_start();
        rest = rest.strip_prefix(b",").unwrap_or(rest).trim_ascii_start();
        if rest.is_empty() || rest.starts_with(b"]") {
            break;
        }
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let used = stream.byte_offset();
                out.push(v);
                rest = rest.get(used..).unwrap_or_default();
            }
            _ => break,
        }
    }
    out
}

fn usage(u: &Value, ex: &mut Extraction) {
    if let Some(t) = get2(u, "promptTokenCount", "prompt_token_count").and_then(Value::as_i64) {
        ex.call.input_tokens = Some(t);
    }
    if let Some(t) =
        get2(u, "candidatesTokenCount", "candidates_token_count").and_then(Value::as_i64)
    {
        ex.call.output_tokens = Some(t);
    }
    if let Some(t) =
        get2(u, "cachedContentTokenCount", "cached_content_token_count").and_then(Value::as_i64)
    {
        ex.call.cached_tokens = Some(t);
    }
    if let Some(t) = get2(u, "thoughtsTokenCount", "thoughts_token_count").and_then(Value::as_i64) {
        ex.call.reasoning_tokens = Some(t);
    }
}

fn request(req: &Value, ex: &mut Extraction) {
    if let Some(cfg) = get2(req, "generationConfig", "generation_config") {
        ex.call.temperature = f64_at(cfg, "temperature");
        ex.call.top_p = get2(cfg, "topP", "top_p").and_then(Value::as_f64);
        ex.call.max_tokens =
            get2(cfg, "maxOutputTokens", "max_output_tokens").and_then(Value::as_i64);
    }
    let tools: Vec<&Value> = match req.get("tools") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(t @ Value::Object(_)) => vec![t],
        _ => Vec::new(),
    };
    for t in tools {
        for f in arr2(t, "functionDeclarations", "function_declarations") {
            ex.tool_definition(str_at(f, "name").unwrap_or(""));
        }
    }
    if let Some(sys) = get2(req, "systemInstruction", "system_instruction") {
        let text = match sys {
            Value::String(s) => s.clone(),
            other => other.get("parts").map(content_text).unwrap_or_default(),
        };
        if !text.is_empty() {
            ex.system_text("request.systemInstruction", "system", &text);
            ex.message(CanonicalMessage::new("system").text(&text));
        }
    }
    for (i, c) in arr2(req, "contents", "contents").iter().enumerate() {
        let role = str_at(c, "role").unwrap_or("user");
        ex.role(role);
        let mut msg = CanonicalMessage::new(role);
        let source = if role == "model" {
            TextSource::Assistant
        } else {
            TextSource::User
        };
        for (j, p) in c
            .get("parts")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
        {
            let location = format!("request.contents[{i}].parts[{j}]");
            if let Some(t) = str_at(p, "text") {
                if p.get("thought").and_then(Value::as_bool) != Some(true) {
                    ex.text(format!("{location}.text"), role, source, t);
                    msg.push_text(t);
                }
            } else if let Some(fc) = get2(p, "functionCall", "function_call") {
                ex.request_tool_call(
                    &mut msg,
                    format!("{location}.functionCall.args"),
                    role,
                    str_at(fc, "id").unwrap_or(""),
                    str_at(fc, "name").unwrap_or(""),
                    fc.get("args").unwrap_or(&Value::Null),
                );
            } else if let Some(fr) = get2(p, "functionResponse", "function_response") {
                let id = str_at(fr, "id").unwrap_or("");
                ex.tool_result_id(id);
                let text = fr.get("response").map(canonical_json).unwrap_or_default();
                ex.request_tool_result(
                    &mut msg,
                    format!("{location}.functionResponse"),
                    role,
                    id,
                    text,
                );
            } else if let Some(kind) = p.as_object().and_then(|o| o.keys().next()) {
                msg.parts.push(CanonicalPart::Other(kind.clone()));
            }
        }
        ex.message(msg);
    }
}
