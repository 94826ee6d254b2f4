//! Redaction for everything published: matched secrets (and, in "redacted" content-capture
//! mode, PII) in text become `[REDACTED:<type>]`; header values are redacted by header name.

use chainwatch_config::ContentCapture;

use super::scanner::{Match, PatternScanner, ScanOutput};

/// Header names whose values are credentials, lowercase.
pub const SECRET_HEADER_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
    "x-goog-api-key",
    "anthropic-api-key",
    "openai-api-key",
    "x-amz-security-token",
    "x-auth-token",
    "x-access-token",
    "private-token",
    "x-csrf-token",
    "x-xsrf-token",
    "ocp-apim-subscription-key",
];

/// The replacement for a whole header value.
pub const REDACTED: &str = "[REDACTED]";

/// Whether a header's value is a credential: one of `SECRET_HEADER_NAMES`, or a name that
/// says so (`*-token`, `*-secret`, `*api-key`, `*apikey`, `*-password`), any case.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    SECRET_HEADER_NAMES.contains(&n.as_str())
        || n.ends_with("-token")
        || n.ends_with("-secret")
        || n.ends_with("api-key")
        || n.ends_with("apikey")
        || n.ends_with("-password")
}

/// The value to publish for a header: `[REDACTED]` for credential headers, else the value
/// with any secret found inside it redacted (a key pasted into a custom header).
pub fn redact_header_value(scanner: &PatternScanner, name: &str, value: &str) -> String {
    if is_secret_header(name) {
        return REDACTED.to_string();
    }
    redact_with(scanner, value, ContentCapture::Full)
}

/// `text` with secrets (always) and PII (in `Redacted` mode) replaced by `[REDACTED:<type>]`;
/// empty for `Off`.
pub fn redact_with(scanner: &PatternScanner, text: &str, mode: ContentCapture) -> String {
    if mode == ContentCapture::Off {
        return String::new();
    }
    let mut out = ScanOutput::default();
    scanner.scan_raw(text.as_bytes(), &mut out);
    let mut spans: Vec<Match> = out.matches.into_iter().filter(|m| m.kind.is_secret() || mode == ContentCapture::Redacted).collect();
    // Matches beyond the scanner's cap are not known: redact the rest of the text then.
    let cut_rest = out.matches_dropped > 0;
    spans.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut s = String::with_capacity(text.len());
    let mut at = 0;
    for m in spans {
        if m.start < at {
            continue;
        }
        let (Some(before), true) = (text.get(at..m.start), text.is_char_boundary(m.end)) else { continue };
        s.push_str(before);
        s.push_str("[REDACTED:");
        s.push_str(m.kind.name());
        s.push(']');
        at = m.end;
    }
    if cut_rest {
        s.push_str("[REDACTED:truncated]");
    } else {
        s.push_str(text.get(at..).unwrap_or(""));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let sc = PatternScanner::new();
        let t = r#"{"content":"key sk-proj-Abc123def456ghi789jkl012mno and mail bob@example.com\n"}"#;
        assert_eq!(redact_with(&sc, t, ContentCapture::Off), "");
        assert_eq!(redact_with(&sc, t, ContentCapture::Full), r#"{"content":"key [REDACTED:openai_api_key] and mail bob@example.com\n"}"#);
        assert_eq!(redact_with(&sc, t, ContentCapture::Redacted), r#"{"content":"key [REDACTED:openai_api_key] and mail [REDACTED:email]\n"}"#);
    }

    #[test]
    fn headers() {
        let sc = PatternScanner::new();
        for h in ["Authorization", "x-api-key", "Cookie", "X-Goog-Api-Key", "X-Custom-Token", "anthropic-api-key"] {
            assert_eq!(redact_header_value(&sc, h, "abc"), REDACTED, "{h}");
        }
        assert_eq!(redact_header_value(&sc, "content-type", "application/json"), "application/json");
        assert_eq!(redact_header_value(&sc, "x-debug", "AKIAIOSFODNN7EXAMPLE"), "[REDACTED:aws_access_key]");
    }
}
