//! Small readers over JSON request/response bodies and decoded gRPC messages: the first of
//! several field spellings (REST camelCase, proto snake_case), counts, vector lengths.

use serde_json::Value;

/// The first present, non-null field among `names`.
pub(crate) fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n).filter(|x| !x.is_null()))
}

/// A string field among `names` (non-empty).
pub(crate) fn string(v: &Value, names: &[&str]) -> Option<String> {
    field(v, names)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An integer field among `names` (a number, or a decimal string as proto3 JSON writes 64-bit).
pub(crate) fn integer(v: &Value, names: &[&str]) -> Option<i64> {
    field(v, names).and_then(as_i64)
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Length of an array field among `names`.
pub(crate) fn array_len(v: &Value, names: &[&str]) -> Option<i64> {
    field(v, names)
        .and_then(Value::as_array)
        .map(|a| a.len() as i64)
}

/// A filter is present when the field exists and is not empty.
pub(crate) fn filter_present(v: &Value, names: &[&str]) -> bool {
    match field(v, names) {
        None => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The length of `v` when it is an array of numbers (a dense vector).
pub(crate) fn dense_len(v: &Value) -> Option<i32> {
    let a = v.as_array()?;
    if a.is_empty() || !a.iter().all(Value::is_number) {
        return None;
    }
    i32::try_from(a.len()).ok()
}

/// Dimension of base64 little-endian f32 bytes (Weaviate's `vector_bytes`).
pub(crate) fn base64_f32_len(v: &Value) -> Option<i32> {
    let s = v.as_str()?.trim_end_matches('=');
    if s.is_empty() {
        return None;
    }
    let bytes = s.len() * 3 / 4;
    i32::try_from(bytes / 4).ok().filter(|d| *d > 0)
}

/// Path segments without empty ones.
pub(crate) fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// `%XX` and `+` decoding of a query or form component (invalid escapes are kept as they are).
pub(crate) fn url_decode(s: &str) -> String {
    percent_decode(s, true)
}

/// `%XX` decoding of a path segment (a `+` stays a plus).
pub(crate) fn path_decode(s: &str) -> String {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn readers() {
        let v = json!({"topK": 5, "top_k": 9, "f": {}, "g": {"a": 1}, "v": [1.0, 2, 3], "s": "12"});
        assert_eq!(integer(&v, &["topK", "top_k"]), Some(5));
        assert_eq!(integer(&v, &["s"]), Some(12));
        assert!(!filter_present(&v, &["f"]));
        assert!(filter_present(&v, &["g"]));
        assert_eq!(dense_len(&v["v"]), Some(3));
        assert_eq!(base64_f32_len(&json!("AAAAPwAAgD4AAIC/AAAAQA==")), Some(4));
        assert_eq!(url_decode("a%20b+c%2Fd%zz%4"), "a b c/d%zz%4");
        assert_eq!(path_decode("a+b%20c"), "a+b c");
    }
}
