//! JSON lines: the text form of bus records that the offline commands print and read
//! (`capture | parse --input - | chain --events - | policy --chains -`).
//!
//! One record per line, tagged with its type: `{"record":"RawSegment", ...fields}`. A
//! RawSegment's payload is `{"text": "..."}` when it is UTF-8 and `{"base64": "..."}` otherwise,
//! so a person can read HTTP and SQL in a capture while binary bytes survive exactly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::records::{Chain, ConnectionEvent, ProcessEvent, RawSegment, SemanticEvent, Violation};

/// Any bus record, as one JSON line.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonRecord {
    RawSegment(RawSegment),
    ConnectionEvent(ConnectionEvent),
    ProcessEvent(ProcessEvent),
    SemanticEvent(SemanticEvent),
    Chain(Chain),
    Violation(Violation),
}

#[derive(Debug, thiserror::Error)]
pub enum JsonLineError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a JSON object with a \"record\" field naming the record type is expected")]
    NotTagged,
    #[error("unknown record type {0:?} (expected RawSegment, ConnectionEvent, ProcessEvent, SemanticEvent, Chain or Violation)")]
    UnknownRecord(String),
    #[error("{record}: payload must be {{\"text\": ...}} or {{\"base64\": ...}}")]
    BadPayload { record: &'static str },
    #[error("{record}: payload base64: {source}")]
    Base64 {
        record: &'static str,
        #[source]
        source: base64::DecodeError,
    },
}

impl JsonRecord {
    pub fn record_type(&self) -> &'static str {
        match self {
            JsonRecord::RawSegment(_) => "RawSegment",
            JsonRecord::ConnectionEvent(_) => "ConnectionEvent",
            JsonRecord::ProcessEvent(_) => "ProcessEvent",
            JsonRecord::SemanticEvent(_) => "SemanticEvent",
            JsonRecord::Chain(_) => "Chain",
            JsonRecord::Violation(_) => "Violation",
        }
    }

    /// One line of JSON (no trailing newline).
    pub fn to_line(&self) -> Result<String, JsonLineError> {
        let mut value = match self {
            JsonRecord::RawSegment(r) => {
                let mut v = serde_json::to_value(r)?;
                if let Value::Object(m) = &mut v {
                    m.insert("payload".into(), payload_to_json(&r.payload));
                }
                v
            }
            JsonRecord::ConnectionEvent(r) => serde_json::to_value(r)?,
            JsonRecord::ProcessEvent(r) => serde_json::to_value(r)?,
            JsonRecord::SemanticEvent(r) => serde_json::to_value(r)?,
            JsonRecord::Chain(r) => serde_json::to_value(r)?,
            JsonRecord::Violation(r) => serde_json::to_value(r)?,
        };
        let mut tagged = Map::new();
        tagged.insert("record".into(), Value::String(self.record_type().into()));
        if let Value::Object(m) = &mut value {
            tagged.append(m);
        }
        Ok(serde_json::to_string(&Value::Object(tagged))?)
    }

    /// Parse one line.
    pub fn from_line(line: &str) -> Result<JsonRecord, JsonLineError> {
        let mut value: Value = serde_json::from_str(line)?;
        let Value::Object(m) = &mut value else { return Err(JsonLineError::NotTagged) };
        let Some(Value::String(tag)) = m.remove("record") else { return Err(JsonLineError::NotTagged) };
        Ok(match tag.as_str() {
            "RawSegment" => {
                let payload = m.remove("payload").unwrap_or(Value::Null);
                m.insert("payload".into(), json!(payload_from_json(&payload, "RawSegment")?));
                JsonRecord::RawSegment(serde_json::from_value(value)?)
            }
            "ConnectionEvent" => JsonRecord::ConnectionEvent(serde_json::from_value(value)?),
            "ProcessEvent" => JsonRecord::ProcessEvent(serde_json::from_value(value)?),
            "SemanticEvent" => JsonRecord::SemanticEvent(serde_json::from_value(value)?),
            "Chain" => JsonRecord::Chain(serde_json::from_value(value)?),
            "Violation" => JsonRecord::Violation(serde_json::from_value(value)?),
            other => return Err(JsonLineError::UnknownRecord(other.to_string())),
        })
    }
}

fn payload_to_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "base64": BASE64.encode(bytes) }),
    }
}

fn payload_from_json(v: &Value, record: &'static str) -> Result<Vec<u8>, JsonLineError> {
    match v {
        Value::Object(m) => match (m.get("text"), m.get("base64")) {
            (Some(Value::String(t)), None) => Ok(t.as_bytes().to_vec()),
            (None, Some(Value::String(b))) => {
                BASE64.decode(b).map_err(|source| JsonLineError::Base64 { record, source })
            }
            _ => Err(JsonLineError::BadPayload { record }),
        },
        _ => Err(JsonLineError::BadPayload { record }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn every_record_roundtrips_through_a_line() {
        let records = vec![
            JsonRecord::RawSegment(samples::raw_segment(b"GET / HTTP/1.1\r\n\r\n".to_vec())),
            JsonRecord::RawSegment(samples::raw_segment(vec![0xff, 0x00, 0xc3])),
            JsonRecord::ConnectionEvent(samples::connection_event()),
            JsonRecord::ProcessEvent(samples::process_event()),
            JsonRecord::SemanticEvent(samples::semantic_event()),
            JsonRecord::Chain(samples::chain()),
            JsonRecord::Violation(samples::violation()),
        ];
        for r in records {
            let line = r.to_line().unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(JsonRecord::from_line(&line).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn payload_is_readable_text_or_base64() {
        let line = JsonRecord::RawSegment(samples::raw_segment(b"SELECT 1".to_vec())).to_line().unwrap();
        assert!(line.contains(r#""payload":{"text":"SELECT 1"}"#), "{line}");
        let line = JsonRecord::RawSegment(samples::raw_segment(vec![0xff, 0xfe])).to_line().unwrap();
        assert!(line.contains(r#""payload":{"base64":"//4="}"#), "{line}");
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(matches!(JsonRecord::from_line("[1]"), Err(JsonLineError::NotTagged)));
        assert!(matches!(JsonRecord::from_line(r#"{"record":"Nope"}"#), Err(JsonLineError::UnknownRecord(_))));
        let mut v: Value = serde_json::from_str(
            &JsonRecord::RawSegment(samples::raw_segment(b"x".to_vec())).to_line().unwrap(),
        )
        .unwrap();
        v["payload"] = json!({"base64": "***"});
        assert!(matches!(JsonRecord::from_line(&v.to_string()), Err(JsonLineError::Base64 { .. })));
        v["payload"] = json!("raw");
        assert!(matches!(JsonRecord::from_line(&v.to_string()), Err(JsonLineError::BadPayload { .. })));
        assert!(JsonRecord::from_line("{not json").is_err());
    }
}
