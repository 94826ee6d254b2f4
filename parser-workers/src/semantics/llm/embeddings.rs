//! Embeddings calls: OpenAI `/v1/embeddings` (also Azure and compatible servers), Gemini
//! `:embedContent` / `:batchEmbedContents`, Ollama `/api/embed` and `/api/embeddings`. The
//! inputs go to the detectors (they are often documents being indexed); the vector dimension
//! and count become attributes.

use serde_json::Value;

use super::TextSource;
use super::extract::{Extraction, arr_at, error_attribute, i64_at, str_at};
use super::gemini::get2;
use crate::semantics::HttpView;

pub fn extract_openai(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        if let Some(m) = str_at(req, "model") {
            ex.call.request_model = Some(m.to_string());
        }
        inputs(req.get("input"), ex);
        if let Some(f) = str_at(req, "encoding_format") {
            ex.attr(
                "gen_ai.request.encoding_formats",
                format!("[\"{}\"]", f.replace('"', "")),
            );
        }
        if let Some(d) = i64_at(req, "dimensions") {
            ex.attr("chainwatch.llm.request.dimensions", d.to_string());
        }
    }
    let Some(resp) = view.response_json() else {
        return;
    };
    error_attribute(&resp, ex);
    if let Some(m) = str_at(&resp, "model") {
        ex.call.response_model = Some(m.to_string());
    }
    if let Some(u) = resp.get("usage") {
        ex.call.input_tokens = i64_at(u, "prompt_tokens").or_else(|| i64_at(u, "input_tokens"));
    }
    let data = arr_at(&resp, "data");
    vectors(data.iter().filter_map(|d| d.get("embedding")), ex);
}

pub fn extract_gemini(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        let requests: Vec<&Value> = match req.get("requests").and_then(Value::as_array) {
            Some(r) => r.iter().collect(),
            None => vec![req],
        };
        for (i, r) in requests.iter().enumerate() {
            if i == 0
                && let Some(m) = str_at(r, "model")
            {
                ex.call
                    .request_model
                    .get_or_insert_with(|| m.trim_start_matches("models/").to_string());
            }
            if let Some(parts) = r
                .get("content")
                .and_then(|c| c.get("parts"))
                .and_then(Value::as_array)
            {
                for (j, p) in parts.iter().enumerate() {
                    if let Some(t) = str_at(p, "text") {
                        ex.role("user");
                        ex.text(
                            format!("request.requests[{i}].content.parts[{j}].text"),
                            "user",
                            TextSource::EmbeddingInput,
                            t,
                        );
                    }
                }
            }
        }
    }
    let Some(resp) = view.response_json() else {
        return;
    };
    error_attribute(&resp, ex);
    let mut values = Vec::new();
    if let Some(e) = resp.get("embedding") {
        values.push(e.get("values").unwrap_or(&Value::Null));
    }
    for e in arr_at(&resp, "embeddings") {
        values.push(e.get("values").unwrap_or(&Value::Null));
    }
    if let Some(u) = get2(&resp, "usageMetadata", "usage_metadata") {
        ex.call.input_tokens =
            get2(u, "promptTokenCount", "prompt_token_count").and_then(Value::as_i64);
    }
    vectors(values.into_iter(), ex);
}

pub fn extract_ollama(view: &HttpView, req: Option<&Value>, ex: &mut Extraction) {
    if let Some(req) = req {
        if let Some(m) = str_at(req, "model") {
            ex.call.request_model = Some(m.to_string());
        }
        inputs(req.get("input").or_else(|| req.get("prompt")), ex);
    }
    let Some(resp) = view.response_json() else {
        return;
    };
    error_attribute(&resp, ex);
    if let Some(m) = str_at(&resp, "model") {
        ex.call.response_model = Some(m.to_string());
    }
    ex.call.input_tokens = i64_at(&resp, "prompt_eval_count");
    let mut values: Vec<&Value> = arr_at(&resp, "embeddings").iter().collect();
    if let Some(e) = resp.get("embedding") {
        values.push(e);
    }
    vectors(values.into_iter(), ex);
}

/// A string or a list of strings (token-id inputs carry no text).
fn inputs(input: Option<&Value>, ex: &mut Extraction) {
    match input {
        Some(Value::String(s)) => {
            ex.role("user");
            ex.text("request.input", "user", TextSource::EmbeddingInput, s);
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                ex.role("user");
                if let Some(s) = item.as_str() {
                    ex.text(
                        format!("request.input[{i}]"),
                        "user",
                        TextSource::EmbeddingInput,
                        s,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Vector count and dimension (float arrays, or base64 of little-endian f32).
fn vectors<'a>(embeddings: impl Iterator<Item = &'a Value>, ex: &mut Extraction) {
    let mut n = 0u64;
    let mut dim = None;
    for e in embeddings {
        n += 1;
        if dim.is_none() {
            dim = match e {
                Value::Array(a) => Some(a.len() as u64),
                Value::String(b64) => Some(base64_len(b64) / 4),
                _ => None,
            };
        }
    }
    if n > 0 {
        ex.attr("chainwatch.llm.embeddings.count", n.to_string());
    }
    if let Some(d) = dim {
        ex.attr("gen_ai.embeddings.dimension.count", d.to_string());
    }
}

/// Decoded length of a base64 text.
fn base64_len(s: &str) -> u64 {
    let t = s.trim_end();
    let pad = t.bytes().rev().take_while(|b| *b == b'=').count() as u64;
    ((t.len() as u64 / 4) * 3).saturating_sub(pad.min(2))
        + match t.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        }
}
