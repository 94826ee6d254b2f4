//! The accumulator every API extractor fills (the `LlmCall`, the texts for the detectors, the
//! canonical conversation and answer), its bounds, and small JSON accessors they share.

use std::collections::BTreeMap;

use chainwatch_schemas::{LlmCall, ToolCall};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::conversation::{CanonicalMessage, CanonicalPart, conversation_hashes};
use super::route::Route;
use super::{
    Counter, LlmRecognition, LlmText, MAX_LIST_ITEMS, MAX_PREFIX_HASHES, MAX_TEXT_BYTES, MAX_TEXTS,
    TextSource, attributes, count, partial_json,
};
use crate::semantics::HttpView;

/// What the extractors gather for one call.
#[derive(Debug)]
pub struct Extraction {
    pub call: LlmCall,
    pub kind: &'static str,
    attributes: Vec<(String, String)>,
    texts: Vec<LlmText>,
    text_bytes: usize,
    text_cap_hit: bool,
    list_cap_hit: bool,
    /// The request conversation in canonical form (system prompt first).
    pub messages: Vec<CanonicalMessage>,
    /// The assistant's answer (first choice), in canonical form (empty: none).
    pub answer: Vec<CanonicalMessage>,
    /// System prompt texts, hashed together at the end.
    system_texts: Vec<String>,
    /// Time of the first response event that carried output (streams), when known.
    pub first_output_ns: Option<u64>,
}

impl Extraction {
    pub fn new(route: &Route) -> Self {
        let call = LlmCall {
            provider: route.provider.clone(),
            operation: route.operation.to_string(),
            request_model: route.model_from_path.clone(),
            stream: route.stream_endpoint,
            ..LlmCall::default()
        };
        Extraction {
            call,
            kind: route.kind(),
            attributes: Vec::new(),
            texts: Vec::new(),
            text_bytes: 0,
            text_cap_hit: false,
            list_cap_hit: false,
            messages: Vec::new(),
            answer: Vec::new(),
            system_texts: Vec::new(),
            first_output_ns: None,
        }
    }

    /// Add an attribute (keys may repeat).
    pub fn attr(&mut self, key: &str, value: impl Into<String>) {
        self.attributes.push((key.to_string(), value.into()));
    }

    /// Set an attribute, replacing an earlier value of that key.
    pub fn replace_attr(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key.to_string(), value)),
        }
    }

    /// Hand a text to the detectors (empty texts are skipped; bounded).
    pub fn text(
        &mut self,
        location: impl Into<String>,
        role: &str,
        source: TextSource,
        text: &str,
    ) {
        if text.is_empty() {
            return;
        }
        if self.texts.len() >= MAX_TEXTS || self.text_bytes + text.len() > MAX_TEXT_BYTES {
            self.text_cap_hit = true;
            return;
        }
        self.text_bytes += text.len();
        self.texts.push(LlmText {
            location: location.into(),
            role: role.to_string(),
            source,
            text: text.to_string(),
        });
    }

    /// A system prompt text (hashed into `system_prompt_hash`, handed to the detectors).
    pub fn system_text(&mut self, location: impl Into<String>, role: &str, text: &str) {
        self.text(location, role, TextSource::System, text);
        if self.system_texts.len() < MAX_LIST_ITEMS {
            self.system_texts.push(text.to_string());
        } else {
            self.list_cap_hit = true;
        }
    }

    /// A request message's role, in order.
    pub fn role(&mut self, role: &str) {
        self.call.message_count = self.call.message_count.saturating_add(1);
        if self.call.roles.len() < MAX_LIST_ITEMS {
            self.call.roles.push(role.to_string());
        } else {
            self.list_cap_hit = true;
        }
    }

    pub fn tool_definition(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        if self.call.tool_definitions.len() < MAX_LIST_ITEMS {
            self.call.tool_definitions.push(name.to_string());
        } else {
            self.list_cap_hit = true;
        }
    }

    pub fn tool_result_id(&mut self, id: &str) {
        if id.is_empty() || self.call.tool_result_ids.iter().any(|x| x == id) {
            return;
        }
        if self.call.tool_result_ids.len() < MAX_LIST_ITEMS {
            self.call.tool_result_ids.push(id.to_string());
        } else {
            self.list_cap_hit = true;
        }
    }

    /// A tool call of the answer; `arguments` is made valid JSON (repaired when cut).
    pub fn tool_call(&mut self, id: &str, name: &str, arguments: &str) {
        if self.call.tool_calls.len() >= MAX_LIST_ITEMS {
            self.list_cap_hit = true;
            return;
        }
        let arguments = valid_json_arguments(arguments, &mut self.attributes);
        let n = self.call.tool_calls.len();
        self.text(
            format!("response.tool_calls[{n}].arguments"),
            "assistant",
            TextSource::ToolArguments,
            &arguments,
        );
        self.call.tool_calls.push(ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments,
        });
    }

    pub fn finish_reason(&mut self, reason: &str) {
        if reason.is_empty() {
            return;
        }
        if self.call.finish_reasons.len() < MAX_LIST_ITEMS {
            self.call.finish_reasons.push(reason.to_string());
        } else {
            self.list_cap_hit = true;
        }
    }

    /// A request message in canonical form (their number is bounded by the body cap; the
    /// hashes kept are bounded in `finish`).
    pub fn message(&mut self, m: CanonicalMessage) {
        self.messages.push(m);
    }

    /// The assistant answer in canonical form from the tool calls and completion text seen.
    pub fn answer_from(&mut self, text: &str) {
        let mut parts = Vec::new();
        if !text.is_empty() {
            parts.push(CanonicalPart::Text(text.to_string()));
        }
        for tc in &self.call.tool_calls {
            parts.push(CanonicalPart::tool_call(&tc.id, &tc.name, &tc.arguments));
        }
        self.answer = vec![CanonicalMessage {
            role: "assistant".into(),
            parts,
        }];
    }

    /// A tool call of the answer (as `tool_call`), also put in the canonical `answer` when kept.
    pub fn answer_tool_call(
        &mut self,
        answer: &mut CanonicalMessage,
        id: &str,
        name: &str,
        arguments: &str,
    ) {
        let before = self.call.tool_calls.len();
        self.tool_call(id, name, arguments);
        if let Some(tc) = self.call.tool_calls.get(before) {
            answer
                .parts
                .push(CanonicalPart::tool_call(&tc.id, &tc.name, &tc.arguments));
        }
    }

    /// A tool call sent back in a request message: its JSON arguments handed to the detectors
    /// at `location`, the call kept in the canonical `msg`.
    pub fn request_tool_call(
        &mut self,
        msg: &mut CanonicalMessage,
        location: impl Into<String>,
        role: &str,
        id: &str,
        name: &str,
        arguments: &Value,
    ) {
        self.text(
            location,
            role,
            TextSource::ToolArguments,
            &arguments.to_string(),
        );
        msg.parts
            .push(CanonicalPart::tool_call_value(id, name, arguments));
    }

    /// A tool result in a request message: its text handed to the detectors as tool output at
    /// `location`, kept in the canonical `msg` under `id`.
    pub fn request_tool_result(
        &mut self,
        msg: &mut CanonicalMessage,
        location: impl Into<String>,
        role: &str,
        id: &str,
        text: String,
    ) {
        self.text(location, role, TextSource::ToolOutput, &text);
        msg.parts.push(CanonicalPart::ToolResult {
            id: id.to_string(),
            text,
        });
    }

    /// The recognition: hashes, TTFT, OTel attributes.
    pub fn finish(mut self, view: &HttpView, route: &Route) -> LlmRecognition {
        if !self.system_texts.is_empty() {
            let mut h = Sha256::new();
            for (i, t) in self.system_texts.iter().enumerate() {
                if i > 0 {
                    h.update(b"\n");
                }
                h.update(t.as_bytes());
            }
            self.call.system_prompt_hash = Some(hex16(&h.finalize()));
        }
        if !self.messages.is_empty() {
            let hashes = conversation_hashes(&self.messages, &self.answer);
            let skipped = hashes.prefixes.len().saturating_sub(MAX_PREFIX_HASHES);
            if skipped > 0 {
                count(Counter::PrefixHashCap);
                self.attr(
                    "chainwatch.conversation.prefix_hashes_skipped",
                    skipped.to_string(),
                );
            }
            self.call.conversation_prefix_hashes =
                hashes.prefixes.into_iter().skip(skipped).collect();
            if let Some(a) = hashes.answer {
                self.attr("chainwatch.conversation.answer_hash", a);
            }
        }
        if self.call.stream {
            let first = self.first_output_ns.or(view.response_first_ns);
            if let Some(first) = first
                && first >= view.start_ns
            {
                self.call.time_to_first_token_ns = i64::try_from(first - view.start_ns).ok();
            }
        }
        if self.text_cap_hit {
            count(Counter::TextCap);
            self.attr("chainwatch.llm.texts_truncated", "true");
        }
        if self.list_cap_hit {
            count(Counter::ListCap);
            self.attr("chainwatch.llm.lists_truncated", "true");
        }
        if view.response_truncated {
            self.attr("chainwatch.llm.response_truncated", "true");
        }
        let mut attrs = attributes::otel_attributes(&self.call, route);
        attrs.append(&mut self.attributes);
        LlmRecognition {
            call: self.call,
            kind: self.kind,
            attributes: attrs,
            texts: self.texts,
        }
    }
}

/// Tool-call arguments as valid JSON: as they are when valid, repaired when a stream was cut
/// (noted in an attribute), `{}` when empty, else the text as a JSON string.
fn valid_json_arguments(arguments: &str, attrs: &mut Vec<(String, String)>) -> String {
    let trimmed = arguments.trim();
    if trimmed.is_empty() {
        return "{}".into();
    }
    if serde_json::from_str::<Value>(trimmed).is_ok() {
        return arguments.to_string();
    }
    count(Counter::RepairedArguments);
    attrs.push((
        "chainwatch.llm.tool_arguments_repaired".into(),
        "true".into(),
    ));
    match partial_json::repair_partial_json(trimmed) {
        Some(v) => v,
        None => Value::String(arguments.to_string()).to_string(),
    }
}

/// The first 16 bytes of a digest, lower-case hex.
pub fn hex16(digest: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32);
    for b in digest.iter().take(16) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `v[key]` as a string.
pub fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `v[key]` as an integer (floats that are whole numbers too).
pub fn i64_at(v: &Value, key: &str) -> Option<i64> {
    let x = v.get(key)?;
    x.as_i64().or_else(|| {
        x.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
            .map(|f| f as i64)
    })
}

/// `v[key]` as a number.
pub fn f64_at(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// `v[key]` as an array (empty when absent).
pub fn arr_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The text of a content value: a string, or the `text` of its parts joined.
pub fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    Value::String(s) => out.push_str(s),
                    Value::Object(_) => {
                        if let Some(t) = str_at(p, "text") {
                            out.push_str(t);
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        Value::Object(_) => str_at(v, "text").unwrap_or("").to_string(),
        _ => String::new(),
    }
}

/// Fragments keyed by an index, assembled in index order (stream reassembly).
#[derive(Debug, Default)]
pub struct Indexed<T> {
    pub items: BTreeMap<i64, T>,
}

impl<T: Default> Indexed<T> {
    /// The item at `index`, created if new while under the bound (`None` past it).
    pub fn slot(&mut self, index: i64) -> Option<&mut T> {
        if !self.items.contains_key(&index) && self.items.len() >= MAX_LIST_ITEMS {
            return None;
        }
        Some(self.items.entry(index).or_default())
    }
}

/// Request generation parameters of the OpenAI shape (also used by compatible servers).
pub fn openai_parameters(req: &Value, ex: &mut Extraction) {
    if let Some(m) = str_at(req, "model") {
        ex.call.request_model = Some(m.to_string());
    }
    ex.call.temperature = f64_at(req, "temperature");
    ex.call.top_p = f64_at(req, "top_p");
    ex.call.max_tokens = i64_at(req, "max_completion_tokens")
        .or_else(|| i64_at(req, "max_tokens"))
        .or_else(|| i64_at(req, "max_output_tokens"));
    if let Some(s) = req.get("stream").and_then(Value::as_bool) {
        ex.call.stream = s;
    }
}

/// A JSON value from a byte slice, when the body is JSON.
pub fn json_of(body: &[u8]) -> Option<Value> {
    let t = body.trim_ascii_start();
    if !matches!(t.first(), Some(b'{' | b'[')) {
        return None;
    }
    serde_json::from_slice(t).ok()
}

/// The response's SSE events: those the parser split, or the body split here when it is an
/// event stream without the content type saying so.
pub fn sse_events<'v>(view: &'v HttpView) -> std::borrow::Cow<'v, [crate::body::SseEvent]> {
    if !view.sse_events.is_empty() {
        return std::borrow::Cow::Borrowed(&view.sse_events);
    }
    let body = view.response_body.trim_ascii_start();
    if body.starts_with(b"data:") || body.starts_with(b"event:") {
        std::borrow::Cow::Owned(crate::body::decode_sse(
            &view.response_body,
            MAX_SSE_EVENT_BYTES,
        ))
    } else {
        std::borrow::Cow::Borrowed(&[])
    }
}

/// The answer of an API that streams as SSE or answers with one JSON body: `stream` reads the
/// events (the call marked streamed), else `whole` reads the body after its `error` is noted.
pub fn stream_or_whole(
    view: &HttpView,
    ex: &mut Extraction,
    stream: fn(&[crate::body::SseEvent], &mut Extraction),
    whole: fn(&Value, &mut Extraction),
) {
    let events = sse_events(view);
    if !events.is_empty() {
        ex.call.stream = true;
        stream(&events, ex);
    } else if let Some(resp) = view.response_json() {
        error_attribute(&resp, ex);
        whole(&resp, ex);
    }
}

/// Largest SSE event kept when the body is split here.
const MAX_SSE_EVENT_BYTES: usize = 1024 * 1024;

/// An `error` object of a response or stream event, as the `error.type` attribute.
pub fn error_attribute(v: &Value, ex: &mut Extraction) {
    let Some(err) = v.get("error") else { return };
    let kind = str_at(err, "type")
        .or_else(|| str_at(err, "code"))
        .or_else(|| str_at(err, "status"))
        .map(str::to_string)
        .or_else(|| i64_at(err, "code").map(|c| c.to_string()))
        .or_else(|| err.as_str().map(|_| "error".to_string()));
    if let Some(kind) = kind {
        ex.attr("error.type", kind);
    }
}
