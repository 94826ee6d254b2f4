//! Schema-less protobuf walk: decodes wire format without a descriptor into a JSON object keyed
//! by field number. Varints become numbers, fixed32/fixed64 both integer and float readings,
//! length-delimited fields a string (printable UTF-8), a nested object (when the bytes parse
//! fully as a message) or hex bytes. Depth, field count and value sizes are bounded; the walk
//! never panics and says when it cut something.

use serde_json::{Map, Value, json};

use super::error::GrpcMessageError;

/// Bounds of one schema-less walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemalessLimits {
    /// Nesting depth at which length-delimited fields stop being tried as messages.
    pub max_depth: usize,
    /// Fields rendered in total (over all nesting levels).
    pub max_fields: usize,
    /// Bytes kept of one string (hex bytes: half of that), the rest cut.
    pub max_value_bytes: usize,
}

impl Default for SchemalessLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_fields: 4096,
            max_value_bytes: 4096,
        }
    }
}

/// A schema-less reading of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemalessMessage {
    /// Field number (as a string) -> value, or an array of values for repeated numbers.
    pub value: Value,
    /// Some fields or bytes were left out because a limit was hit.
    pub truncated: bool,
}

/// Walk `buf` as a protobuf message. Fails only when the top level is not wire format.
pub fn walk_message(
    buf: &[u8],
    limits: &SchemalessLimits,
) -> Result<SchemalessMessage, GrpcMessageError> {
    let fields = scan_fields(buf, limits.max_depth)
        .map_err(|reason| GrpcMessageError::NotProtobuf { reason })?;
    let mut walk = Walk {
        limits,
        fields_left: limits.max_fields,
        truncated: false,
    };
    let value = walk.render_message(&fields, 0);
    Ok(SchemalessMessage {
        value,
        truncated: walk.truncated,
    })
}

/// Bytes shown as `{"hex": ..., "len": n}` (hex cut to the value cap).
pub fn bytes_value(bytes: &[u8], max_value_bytes: usize) -> (Value, bool) {
    let keep = (max_value_bytes / 2).min(bytes.len());
    let shown = bytes.get(..keep).unwrap_or_default();
    let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    (
        json!({ "hex": hex, "len": bytes.len() }),
        keep < bytes.len(),
    )
}

/// One field as found on the wire.
#[derive(Debug, Clone, Copy)]
enum RawValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    /// Contents of a (deprecated) group, between its start and end tags.
    Group(&'a [u8]),
}

#[derive(Debug, Clone, Copy)]
struct RawField<'a> {
    number: u32,
    value: RawValue<'a>,
}

const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value: u64 = 0;
    for shift in 0..10u32 {
        let Some(&byte) = buf.get(*pos) else {
            return Err(format!("varint cut short at byte {pos}"));
        };
        *pos += 1;
        if shift == 9 && byte > 1 {
            return Err(format!("varint overflows 64 bits at byte {}", *pos - 1));
        }
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(format!("varint longer than 10 bytes before byte {pos}"))
}

fn read_tag(buf: &[u8], pos: &mut usize) -> Result<(u32, u8), String> {
    let at = *pos;
    let tag = read_varint(buf, pos)?;
    let number = tag >> 3;
    if number == 0 || number > MAX_FIELD_NUMBER {
        return Err(format!("field number {number} out of range at byte {at}"));
    }
    Ok((number as u32, (tag & 7) as u8))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: u64, what: &str) -> Result<&'a [u8], String> {
    let at = *pos;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| at.checked_add(len));
    match end.and_then(|end| buf.get(at..end).map(|slice| (slice, end))) {
        Some((slice, end)) => {
            *pos = end;
            Ok(slice)
        }
        None => Err(format!(
            "{what} of {len} bytes at byte {at} runs past the end ({} bytes)",
            buf.len()
        )),
    }
}

/// Read one field's value after its tag; `depth` bounds nested groups.
fn read_value<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    number: u32,
    wire: u8,
    depth: usize,
) -> Result<RawValue<'a>, String> {
    Ok(match wire {
        0 => RawValue::Varint(read_varint(buf, pos)?),
        1 => {
            let bytes = take(buf, pos, 8, "fixed64")?;
            RawValue::Fixed64(
                bytes
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &b| acc << 8 | u64::from(b)),
            )
        }
        2 => {
            let len = read_varint(buf, pos)?;
            RawValue::Bytes(take(buf, pos, len, "length-delimited field")?)
        }
        3 => {
            if depth == 0 {
                return Err("groups nested too deep".to_string());
            }
            let start = *pos;
            loop {
                let tag_at = *pos;
                let (inner_number, inner_wire) = read_tag(buf, pos)?;
                if inner_wire == 4 {
                    if inner_number != number {
                        return Err(format!(
                            "end-group {inner_number} at byte {tag_at} closes group {number}"
                        ));
                    }
                    break RawValue::Group(buf.get(start..tag_at).unwrap_or_default());
                }
                read_value(buf, pos, inner_number, inner_wire, depth - 1)?;
            }
        }
        5 => {
            let bytes = take(buf, pos, 4, "fixed32")?;
            RawValue::Fixed32(
                bytes
                    .iter()
                    .rev()
                    .fold(0u32, |acc, &b| acc << 8 | u32::from(b)),
            )
        }
        4 => {
            return Err(format!(
                "end-group for field {number} without a start at byte {}",
                *pos
            ));
        }
        other => {
            return Err(format!(
                "wire type {other} (field {number}) does not exist, at byte {}",
                *pos
            ));
        }
    })
}

/// The top-level fields of `buf`, or why it is not a message.
fn scan_fields(buf: &[u8], max_group_depth: usize) -> Result<Vec<RawField<'_>>, String> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (number, wire) = read_tag(buf, &mut pos)?;
        let value = read_value(buf, &mut pos, number, wire, max_group_depth)?;
        fields.push(RawField { number, value });
    }
    Ok(fields)
}

fn is_printable_text(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

struct Walk<'l> {
    limits: &'l SchemalessLimits,
    fields_left: usize,
    truncated: bool,
}

impl Walk<'_> {
    fn render_message(&mut self, fields: &[RawField<'_>], depth: usize) -> Value {
        let mut object = Map::new();
        for field in fields {
            if self.fields_left == 0 {
                self.truncated = true;
                break;
            }
            self.fields_left -= 1;
            let value = self.render_value(field.value, depth);
            let key = field.number.to_string();
            match object.get_mut(&key) {
                Some(Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    object.insert(key, value);
                }
            }
        }
        Value::Object(object)
    }

    fn render_value(&mut self, value: RawValue<'_>, depth: usize) -> Value {
        match value {
            RawValue::Varint(n) => json!(n),
            RawValue::Fixed64(n) => json!({ "fixed64": n, "double": f64::from_bits(n) }),
            RawValue::Fixed32(n) => json!({ "fixed32": n, "float": f32::from_bits(n) }),
            RawValue::Group(contents) => self
                .render_nested(contents, depth)
                .unwrap_or_else(|| self.render_bytes(contents)),
            RawValue::Bytes(bytes) => {
                let text = std::str::from_utf8(bytes).ok();
                if let Some(text) = text.filter(|t| is_printable_text(t)) {
                    return self.render_text(text);
                }
                if let Some(nested) = self.render_nested(bytes, depth) {
                    return nested;
                }
                match text {
                    Some(text) => self.render_text(text),
                    None => self.render_bytes(bytes),
                }
            }
        }
    }

    /// `bytes` as a nested message, if it parses fully and depth allows.
    fn render_nested(&mut self, bytes: &[u8], depth: usize) -> Option<Value> {
        if depth + 1 >= self.limits.max_depth {
            return None;
        }
        let group_depth = self.limits.max_depth.saturating_sub(depth + 1);
        let fields = scan_fields(bytes, group_depth).ok()?;
        Some(self.render_message(&fields, depth + 1))
    }

    fn render_text(&mut self, text: &str) -> Value {
        if text.len() <= self.limits.max_value_bytes {
            return Value::String(text.to_string());
        }
        self.truncated = true;
        let mut end = self.limits.max_value_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Value::String(text.get(..end).unwrap_or_default().to_string())
    }

    fn render_bytes(&mut self, bytes: &[u8]) -> Value {
        let (value, cut) = bytes_value(bytes, self.limits.max_value_bytes);
        self.truncated |= cut;
        value
    }
}
