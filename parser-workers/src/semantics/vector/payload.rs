//! Texts of payloads, metadata and documents a vector database returned or was given, kept
//! bounded for the detectors: the string leaves of each JSON value, one a line.

use serde_json::Value;

/// Payload texts kept per operation; more are dropped and `truncated` is set.
pub const MAX_PAYLOAD_TEXTS: usize = 256;
/// Bytes of payload text kept per operation, all texts together.
pub const MAX_PAYLOAD_TEXT_BYTES: usize = 1024 * 1024;
/// Nesting followed inside one value.
const MAX_DEPTH: usize = 32;

/// Bounded list of (location, text).
#[derive(Debug, Default)]
pub(crate) struct PayloadTexts {
    pub texts: Vec<(String, Vec<u8>)>,
    bytes: usize,
    /// A cap dropped or cut a text.
    pub truncated: bool,
}

impl PayloadTexts {
    /// Keep the string leaves of `value` under `location` (nothing when it has none).
    pub fn add(&mut self, location: String, value: &Value) {
        let mut text = Vec::new();
        leaves(value, 0, &mut text);
        self.add_text(location, text);
    }

    /// Keep `text` under `location`, within the caps.
    pub fn add_text(&mut self, location: String, mut text: Vec<u8>) {
        if text.is_empty() {
            return;
        }
        if self.texts.len() >= MAX_PAYLOAD_TEXTS || self.bytes >= MAX_PAYLOAD_TEXT_BYTES {
            self.truncated = true;
            return;
        }
        let room = MAX_PAYLOAD_TEXT_BYTES - self.bytes;
        if text.len() > room {
            text.truncate(room);
            self.truncated = true;
        }
        self.bytes += text.len();
        self.texts.push((location, text));
    }
}

fn leaves(value: &Value, depth: usize, out: &mut Vec<u8>) {
    if depth > MAX_DEPTH || out.len() > MAX_PAYLOAD_TEXT_BYTES {
        return;
    }
    match value {
        Value::String(s) => {
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => items.iter().for_each(|v| leaves(v, depth + 1, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, depth + 1, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn string_leaves_are_kept_unescaped_and_bounded() {
        let mut p = PayloadTexts::default();
        p.add(
            "a".into(),
            &json!({"t": "line\u{200b}x", "n": 3, "inner": {"s": ["u", "v"]}}),
        );
        p.add("empty".into(), &json!({"n": 1}));
        assert_eq!(p.texts.len(), 1);
        let text = String::from_utf8(p.texts[0].1.clone()).unwrap();
        assert!(text.contains("line\u{200b}x"), "{text}");
        assert!(text.contains("u\nv"));
        for i in 0..MAX_PAYLOAD_TEXTS + 3 {
            p.add(format!("k{i}"), &json!("x"));
        }
        assert_eq!(p.texts.len(), MAX_PAYLOAD_TEXTS);
        assert!(p.truncated);
    }
}
