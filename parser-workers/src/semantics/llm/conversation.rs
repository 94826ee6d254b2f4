//! Canonical conversation messages and their prefix hashes: the keys that let the chain builder
//! see that call N+1 continues call N (see the contract in the module doc of `llm`).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::extract::hex16;

/// One message in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalMessage {
    /// `system`, `user`, `assistant`, `tool`, ... (`model` is read as `assistant`).
    pub role: String,
    pub parts: Vec<CanonicalPart>,
}

/// One part of a canonical message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalPart {
    Text(String),
    /// A tool call: id, name, arguments as canonical JSON (or the raw text when not JSON).
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// A tool result: the call id it answers, its text (canonical JSON for structured results).
    ToolResult {
        id: String,
        text: String,
    },
    /// Another part (image, audio, document): only its type counts.
    Other(String),
}

impl CanonicalPart {
    /// A tool call whose arguments (a JSON text) are put in canonical JSON.
    pub fn tool_call(id: &str, name: &str, arguments: &str) -> Self {
        let arguments = match serde_json::from_str::<Value>(arguments) {
            Ok(v) => canonical_json(&v),
            Err(_) => arguments.to_string(),
        };
        CanonicalPart::ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments,
        }
    }

    /// A tool call whose arguments are already a JSON value.
    pub fn tool_call_value(id: &str, name: &str, arguments: &Value) -> Self {
        let arguments = match arguments {
            Value::String(s) => return Self::tool_call(id, name, s),
            v => canonical_json(v),
        };
        CanonicalPart::ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments,
        }
    }
}

impl CanonicalMessage {
    pub fn new(role: &str) -> Self {
        let role = if role == "model" { "assistant" } else { role };
        CanonicalMessage {
            role: role.to_string(),
            parts: Vec::new(),
        }
    }

    pub fn text(mut self, text: &str) -> Self {
        self.push_text(text);
        self
    }

    pub fn push_text(&mut self, text: &str) {
        if !text.is_empty() {
            self.parts.push(CanonicalPart::Text(text.to_string()));
        }
    }

    /// The encoding hashed: compact JSON with sorted keys, text parts joined, then tool calls,
    /// tool results and other parts in their order.
    fn encode(&self) -> String {
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut results = Vec::new();
        let mut others = Vec::new();
        for p in &self.parts {
            match p {
                CanonicalPart::Text(t) => text.push_str(t),
                CanonicalPart::ToolCall {
                    id,
                    name,
                    arguments,
                } => calls.push(Value::Array(vec![
                    id.as_str().into(),
                    name.as_str().into(),
                    arguments.as_str().into(),
                ])),
                CanonicalPart::ToolResult { id, text } => {
                    results.push(Value::Array(vec![id.as_str().into(), text.as_str().into()]))
                }
                CanonicalPart::Other(kind) => others.push(Value::String(kind.clone())),
            }
        }
        let v = Value::Array(vec![
            self.role.as_str().into(),
            text.into(),
            Value::Array(calls),
            Value::Array(results),
            Value::Array(others),
        ]);
        v.to_string()
    }
}

/// The hashes of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationHashes {
    /// `prefixes[i]` = hash of messages `0..=i`.
    pub prefixes: Vec<String>,
    /// Hash of all messages followed by the answer.
    pub answer: Option<String>,
}

/// Prefix hashes of `messages` and the hash of `messages` + `answer` (the answer may be several
/// canonical messages, e.g. a Responses API message item and its function_call items).
pub fn conversation_hashes(
    messages: &[CanonicalMessage],
    answer: &[CanonicalMessage],
) -> ConversationHashes {
    let mut hasher = Sha256::new();
    let mut prefixes = Vec::with_capacity(messages.len());
    for m in messages {
        hasher.update(m.encode().as_bytes());
        hasher.update(b"\n");
        prefixes.push(hex16(&hasher.clone().finalize()));
    }
    let answer = (!answer.is_empty()).then(|| {
        for a in answer {
            hasher.update(a.encode().as_bytes());
            hasher.update(b"\n");
        }
        hex16(&hasher.finalize())
    });
    ConversationHashes { prefixes, answer }
}

/// Compact JSON with object keys sorted (whatever serde_json's map order is).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out, 0);
    out
}

fn write_canonical(v: &Value, out: &mut String, depth: usize) {
    if depth > 128 {
        out.push_str("null");
        return;
    }
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(x) = map.get(*k) {
                    write_canonical(x, out, depth + 1);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out, depth + 1);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_hash_is_the_next_calls_prefix() {
        let sys = CanonicalMessage::new("system").text("be brief");
        let user = CanonicalMessage::new("user").text("weather in Paris?");
        let mut answer = CanonicalMessage::new("assistant");
        answer.parts.push(CanonicalPart::tool_call(
            "call_1",
            "get_weather",
            "{\"city\": \"Paris\"}",
        ));
        let first =
            conversation_hashes(&[sys.clone(), user.clone()], std::slice::from_ref(&answer));

        // The client sends the answer back with the arguments re-serialised differently.
        let mut sent_back = CanonicalMessage::new("assistant");
        sent_back.parts.push(CanonicalPart::tool_call_value(
            "call_1",
            "get_weather",
            &serde_json::json!({"city": "Paris"}),
        ));
        let mut result = CanonicalMessage::new("tool");
        result.parts.push(CanonicalPart::ToolResult {
            id: "call_1".into(),
            text: "18C".into(),
        });
        let second = conversation_hashes(&[sys, user, sent_back, result], &[]);
        assert_eq!(second.prefixes.len(), 4);
        assert_eq!(second.prefixes[1], first.prefixes[1]);
        assert_eq!(Some(&second.prefixes[2]), first.answer.as_ref());
        assert_ne!(second.prefixes[3], second.prefixes[2]);
        assert_eq!(second.prefixes[0].len(), 32);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value = serde_json::from_str("{\"b\":1,\"a\":{\"d\":[1,2],\"c\":null}}").unwrap();
        assert_eq!(
            canonical_json(&v),
            "{\"a\":{\"c\":null,\"d\":[1,2]},\"b\":1}"
        );
    }
}
