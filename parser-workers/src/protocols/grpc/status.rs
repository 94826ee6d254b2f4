//! `grpc-status` and `grpc-message` from trailers (or from the headers of a trailers-only
//! response); `grpc-message` is percent-decoded as the gRPC HTTP/2 spec prescribes.

use super::error::GrpcCallError;

/// Longest `grpc-message` kept, in bytes after decoding (longer ones are cut, and flagged).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 8 * 1024;

/// Where the status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    /// Trailers after the response messages (the normal case).
    Trailers,
    /// The response headers of a trailers-only response (no messages, usually an error).
    TrailersOnlyHeaders,
}

/// The outcome of a call as the server reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcStatus {
    /// The numeric code (0 = OK).
    pub code: u32,
    /// The decoded `grpc-message`, if sent and non-empty.
    pub message: Option<String>,
    /// `grpc-message` was longer than `MAX_GRPC_MESSAGE_BYTES` and was cut.
    pub message_truncated: bool,
    /// Trailers or trailers-only headers.
    pub source: StatusSource,
    /// `grpc-status-details-bin` decoded (a `google.rpc.Status` as JSON), if sent and readable.
    pub details: Option<serde_json::Value>,
}

impl GrpcStatus {
    /// The canonical name of the code (`OK`, `NOT_FOUND`, ...), or `UNKNOWN_CODE` beyond 16.
    pub fn code_name(&self) -> &'static str {
        grpc_code_name(self.code)
    }
}

/// Canonical name of a gRPC status code.
pub fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

/// The value of header `name` (case-insensitive; the last one wins, as for trailers).
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Status from `trailers`, else from `response_headers` (trailers-only response).
pub fn grpc_status(
    response_headers: &[(String, String)],
    trailers: &[(String, String)],
) -> Result<GrpcStatus, GrpcCallError> {
    let (headers, source) = if header_value(trailers, "grpc-status").is_some() {
        (trailers, StatusSource::Trailers)
    } else if header_value(response_headers, "grpc-status").is_some() {
        (response_headers, StatusSource::TrailersOnlyHeaders)
    } else {
        return Err(GrpcCallError::MissingStatus);
    };
    let raw = header_value(headers, "grpc-status")
        .unwrap_or_default()
        .trim();
    let code = match raw.parse::<u32>() {
        Ok(code) if raw.bytes().all(|b| b.is_ascii_digit()) => code,
        _ => return Err(GrpcCallError::BadStatus(raw.chars().take(64).collect())),
    };
    let (message, message_truncated) = match header_value(headers, "grpc-message") {
        Some(value) if !value.is_empty() => {
            let (text, truncated) = percent_decode(value, MAX_GRPC_MESSAGE_BYTES);
            (Some(text), truncated)
        }
        _ => (None, false),
    };
    Ok(GrpcStatus {
        code,
        message,
        message_truncated,
        source,
        details: None,
    })
}

/// Decode `%XX` escapes (malformed ones are kept literally), then UTF-8 (lossily), keeping at
/// most `max_bytes` decoded bytes; the flag says whether it was cut.
pub fn percent_decode(value: &str, max_bytes: usize) -> (String, bool) {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len().min(max_bytes));
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if out.len() >= max_bytes {
            return (String::from_utf8_lossy(&out).into_owned(), true);
        }
        let escaped = match (
            b,
            bytes.get(i + 1).and_then(hex),
            bytes.get(i + 2).and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => Some(hi << 4 | lo),
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percent_decoding_follows_the_spec_examples() {
        // grpc-go's encodeGrpcMessage test vectors, reversed.
        assert_eq!(
            percent_decode("my favorite character is %25", 100),
            ("my favorite character is %".into(), false)
        );
        assert_eq!(
            percent_decode("%E4%BD%A0%E5%A5%BD", 100),
            ("你好".into(), false)
        );
        assert_eq!(percent_decode("%0A%0D", 100), ("\n\r".into(), false));
        assert_eq!(
            percent_decode("100% sure %zz %4", 100),
            ("100% sure %zz %4".into(), false)
        );
        assert_eq!(percent_decode("abcdef", 3), ("abc".into(), true));
    }

    #[test]
    fn status_from_trailers_or_trailers_only_headers() {
        let st = grpc_status(
            &pairs(&[(":status", "200")]),
            &pairs(&[("grpc-status", "0"), ("grpc-message", "")]),
        );
        assert_eq!(
            st.as_ref().map(|s| (s.code, s.code_name(), s.source)),
            Ok((0, "OK", StatusSource::Trailers))
        );
        assert_eq!(st.map(|s| s.message), Ok(None));
        let only = grpc_status(
            &pairs(&[
                (":status", "200"),
                ("grpc-status", "5"),
                ("grpc-message", "Not%20found%3A%20collection%20%22x%22"),
            ]),
            &[],
        );
        assert_eq!(
            only.as_ref().map(|s| s.source),
            Ok(StatusSource::TrailersOnlyHeaders)
        );
        assert_eq!(only.as_ref().map(|s| s.code_name()), Ok("NOT_FOUND"));
        assert_eq!(
            only.map(|s| s.message),
            Ok(Some("Not found: collection \"x\"".into()))
        );
        assert_eq!(grpc_status(&[], &[]), Err(GrpcCallError::MissingStatus));
        assert_eq!(
            grpc_status(&[], &pairs(&[("grpc-status", "+1")])),
            Err(GrpcCallError::BadStatus("+1".into()))
        );
        assert_eq!(
            grpc_status(&[], &pairs(&[("Grpc-Status", "99")])).map(|s| s.code_name()),
            Ok("UNKNOWN_CODE")
        );
    }
}
