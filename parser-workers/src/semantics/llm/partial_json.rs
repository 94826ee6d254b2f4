//! Partial JSON made whole: tool-call arguments of a stream cut by `max_tokens` (or by the
//! capture) are closed at the last complete value, the way SDKs' partial-JSON parsers do it
//! (an unfinished string, number or key is dropped, open objects and arrays are closed).

/// Inputs longer than this are not repaired.
const MAX_REPAIR_BYTES: usize = 4 * 1024 * 1024;
/// Nesting deeper than this is not repaired.
const MAX_DEPTH: usize = 256;

/// The longest valid JSON that `partial` is the beginning of, cut at the last complete value;
/// `None` when there is none (or the input is too large or too deep).
pub fn repair_partial_json(partial: &str) -> Option<String> {
    if partial.len() > MAX_REPAIR_BYTES {
        return None;
    }
    let b = partial.as_bytes();
    let mut stack: Vec<u8> = Vec::new();
    let mut expect_key = false;
    let mut in_str = false;
    let mut escaped = false;
    let mut str_is_key = false;
    let mut in_scalar = false;
    let mut safe: Option<(usize, Vec<u8>)> = None;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
                if !str_is_key {
                    safe = Some((i + 1, stack.clone()));
                }
            }
            continue;
        }
        if in_scalar {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                in_scalar = false;
                safe = Some((i, stack.clone()));
            } else {
                continue;
            }
        }
        match c {
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(c);
                expect_key = c == b'{';
                safe = Some((i + 1, stack.clone()));
            }
            b'}' | b']' => {
                stack.pop();
                safe = Some((i + 1, stack.clone()));
            }
            b'"' => {
                in_str = true;
                str_is_key = stack.last() == Some(&b'{') && expect_key;
            }
            b':' => expect_key = false,
            b',' => expect_key = stack.last() == Some(&b'{'),
            b' ' | b'\n' | b'\r' | b'\t' => {}
            _ => in_scalar = true,
        }
    }
    let (cut, open) = safe?;
    let mut out = String::with_capacity(cut + open.len());
    out.push_str(partial.get(..cut)?);
    for c in open.iter().rev() {
        out.push(if *c == b'{' { '}' } else { ']' });
    }
    serde_json::from_str::<serde_json::Value>(&out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_strings_keys_and_numbers_are_dropped() {
        assert_eq!(
            repair_partial_json("{\"a\": \"x\", \"b\": [\"y\", \"z"),
            Some("{\"a\": \"x\", \"b\": [\"y\"]}".into())
        );
        assert_eq!(
            repair_partial_json("{\"a\": 1, \"b"),
            Some("{\"a\": 1}".into())
        );
        assert_eq!(repair_partial_json("{\"a\": 12"), Some("{}".into()));
        assert_eq!(
            repair_partial_json("{\"a\": {\"b\": true}, "),
            Some("{\"a\": {\"b\": true}}".into())
        );
        assert_eq!(repair_partial_json("\"abc"), None);
        assert_eq!(repair_partial_json(""), None);
    }

    #[test]
    fn escaped_quotes_stay_inside_strings() {
        assert_eq!(
            repair_partial_json("{\"a\": \"say \\\"hi\\\"\", \"b\": \"c"),
            Some("{\"a\": \"say \\\"hi\\\"\"}".into())
        );
    }
}
