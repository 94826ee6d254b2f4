//! `grpc-status-details-bin`: the base64 `google.rpc.Status` (code, message, typed details
//! such as `BadRequest` or `ErrorInfo`) that rich-error servers put beside `grpc-status`.
//! Decoded with the registry's `google-rpc` set, or schema-less when it is absent. The value is
//! base64 text, or grpc-core's "true binary" form (a 0 byte, then raw bytes) when the HTTP/2
//! layer kept those bytes intact.

use serde_json::Value;

use super::call::decode_with_descriptor;
use super::error::GrpcCallError;
use super::registry::{DescriptorRegistry, GOOGLE_RPC_SET};
use super::schemaless::{SchemalessLimits, walk_message};

/// Longest `grpc-status-details-bin` value decoded (base64 characters).
pub const MAX_STATUS_DETAILS_CHARS: usize = 64 * 1024;

/// Decode a `grpc-status-details-bin` value into JSON.
pub fn decode_status_details(
    value: &str,
    registry: &DescriptorRegistry,
    limits: &SchemalessLimits,
) -> Result<Value, GrpcCallError> {
    let bad = |reason: String| GrpcCallError::BadStatusDetails(reason);
    if value.len() > MAX_STATUS_DETAILS_CHARS {
        return Err(bad(format!(
            "{} base64 characters, over the {MAX_STATUS_DETAILS_CHARS} cap",
            value.len()
        )));
    }
    let bytes = match value.strip_prefix('\0') {
        // grpc-core's "true binary" metadata: a 0 byte, then the raw value. It survives only if
        // the layer below kept the bytes; lossy UTF-8 conversion leaves U+FFFD behind.
        Some(_) if value.contains('\u{FFFD}') => {
            return Err(bad(
                "true-binary value was damaged by a lossy text conversion".into(),
            ));
        }
        Some(raw) => raw.as_bytes().to_vec(),
        None => base64_decode(value).ok_or_else(|| bad("not base64".to_string()))?,
    };
    let status = registry
        .pool(GOOGLE_RPC_SET)
        .and_then(|pool| pool.get_message_by_name("google.rpc.Status"));
    if let Some(descriptor) = status
        && let Ok(json) = decode_with_descriptor(&descriptor, &bytes)
    {
        return Ok(json);
    }
    walk_message(&bytes, limits)
        .map(|walked| walked.value)
        .map_err(|err| bad(err.to_string()))
}

/// Standard base64 with or without padding (gRPC binary headers may omit it); `None` if any
/// character is outside the alphabet or the length is impossible.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits would mean a length of 4n+1 characters: impossible.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors_with_and_without_padding() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                base64_decode(encoded),
                Some(plain.as_bytes().to_vec()),
                "{encoded}"
            );
            let unpadded = encoded.trim_end_matches('=');
            assert_eq!(
                base64_decode(unpadded),
                Some(plain.as_bytes().to_vec()),
                "{unpadded}"
            );
        }
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Zm9vY"), None);
    }
}
