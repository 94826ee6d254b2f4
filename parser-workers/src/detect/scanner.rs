//! The pattern scanner: one pass over a body finding every PII and secret span. Secrets come
//! from an Aho-Corasick prefix pass; PII from a byte-class loop that stops only at trigger
//! bytes (digits, `@`, `+`, `(`, `:`) and validates the candidate there. Bodies holding
//! `\uXXXX` escapes are JSON-unescaped first so an escaped `@` cannot hide an email.

use super::pii::{email_at, hex_run_then_colon, iban_at, ipv6_at, ipv6_start_at_colon, numeric_at};
use super::secrets::SecretScanner;
use super::text::{json_unescape_into, left_boundary};

/// What a span is. PII types first, then secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingType {
    Email,
    Phone,
    CreditCard,
    UsSsn,
    Iban,
    IpAddress,
    OpenaiApiKey,
    AnthropicApiKey,
    AwsAccessKey,
    AwsSecretKey,
    GithubToken,
    SlackToken,
    SlackWebhook,
    GoogleApiKey,
    Jwt,
    PrivateKey,
}

impl FindingType {
    pub const ALL: [FindingType; 16] = [
        FindingType::Email,
        FindingType::Phone,
        FindingType::CreditCard,
        FindingType::UsSsn,
        FindingType::Iban,
        FindingType::IpAddress,
        FindingType::OpenaiApiKey,
        FindingType::AnthropicApiKey,
        FindingType::AwsAccessKey,
        FindingType::AwsSecretKey,
        FindingType::GithubToken,
        FindingType::SlackToken,
        FindingType::SlackWebhook,
        FindingType::GoogleApiKey,
        FindingType::Jwt,
        FindingType::PrivateKey,
    ];

    /// The published name (`pii_type` / `secret_type` of the SemanticEvent).
    pub fn name(self) -> &'static str {
        match self {
            FindingType::Email => "email",
            FindingType::Phone => "phone",
            FindingType::CreditCard => "credit_card",
            FindingType::UsSsn => "us_ssn",
            FindingType::Iban => "iban",
            FindingType::IpAddress => "ip_address",
            FindingType::OpenaiApiKey => "openai_api_key",
            FindingType::AnthropicApiKey => "anthropic_api_key",
            FindingType::AwsAccessKey => "aws_access_key",
            FindingType::AwsSecretKey => "aws_secret_key",
            FindingType::GithubToken => "github_token",
            FindingType::SlackToken => "slack_token",
            FindingType::SlackWebhook => "slack_webhook",
            FindingType::GoogleApiKey => "google_api_key",
            FindingType::Jwt => "jwt",
            FindingType::PrivateKey => "private_key",
        }
    }

    pub fn is_secret(self) -> bool {
        self >= FindingType::OpenaiApiKey
    }
}

/// One finding: a type and a byte span in the scanned buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub kind: FindingType,
    pub start: usize,
    pub end: usize,
}

/// Matches kept per scanned buffer; the rest are counted in `ScanOutput::matches_dropped`.
pub const MAX_MATCHES: usize = 65_536;

/// What one scan found.
#[derive(Debug, Default)]
pub struct ScanOutput {
    /// Secrets then PII, each in order of position.
    pub matches: Vec<Match>,
    /// Matches beyond `MAX_MATCHES`.
    pub matches_dropped: u64,
    /// The buffer the spans point into: the JSON-unescaped copy when one was made.
    pub unescaped: Option<Vec<u8>>,
}

impl ScanOutput {
    /// The bytes a match's span points into.
    pub fn text<'a>(&'a self, original: &'a [u8], m: &Match) -> &'a [u8] {
        let buf = self.unescaped.as_deref().unwrap_or(original);
        &buf[m.start..m.end]
    }
}

/// Trigger bytes of the PII loop.
static TRIGGER: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    t[b'@' as usize] = true;
    t[b'+' as usize] = true;
    t[b'(' as usize] = true;
    t[b':' as usize] = true;
    t
};

/// The compiled detectors (build once, share across threads).
pub struct PatternScanner {
    secrets: SecretScanner,
}

impl Default for PatternScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl PatternScanner {
    pub fn new() -> Self {
        PatternScanner { secrets: SecretScanner::new() }
    }

    /// Scans `bytes` (JSON escapes unescaped first when the body has `\u` escapes).
    pub fn scan(&self, bytes: &[u8]) -> ScanOutput {
        let mut out = ScanOutput::default();
        if memchr::memmem::find(bytes, b"\\u").is_some() {
            let mut buf = Vec::new();
            json_unescape_into(bytes, &mut buf);
            self.scan_raw(&buf, &mut out);
            out.unescaped = Some(buf);
        } else {
            self.scan_raw(bytes, &mut out);
        }
        out
    }

    /// Scans `b` as it is (escape-aware boundaries; spans point into `b`). Used for redaction,
    /// where spans must point into the original text.
    pub fn scan_raw(&self, b: &[u8], out: &mut ScanOutput) {
        let push = |out: &mut ScanOutput, kind, start, end| {
            if out.matches.len() < MAX_MATCHES {
                out.matches.push(Match { kind, start, end });
            } else {
                out.matches_dropped += 1;
            }
        };
        let mut secret_spans: Vec<(usize, usize)> = Vec::new();
        self.secrets.scan(b, &mut |t, s, e| {
            push(out, t, s, e);
            secret_spans.push((s, e));
        });
        let pii_from = out.matches.len();
        let mut next_secret = 0;
        let mut i = 0;
        let n = b.len();
        while i < n {
            // The hot loop: skip non-trigger bytes.
            match next_trigger(b, i) {
                Some(at) => i = at,
                None => break,
            }
            while next_secret < secret_spans.len() && secret_spans[next_secret].1 <= i {
                next_secret += 1;
            }
            if let Some(&(s, e)) = secret_spans.get(next_secret)
                && s <= i
            {
                i = e;
                continue;
            }
            let c = b[i];
            match c {
                b'@' => {
                    if let Some((s, e)) = email_at(b, i)
                        && !overlaps_secret(&secret_spans, s, e)
                    {
                        // An email wins over a number glued to its local part.
                        while out.matches.len() > pii_from && out.matches.last().is_some_and(|m| m.end > s) {
                            out.matches.pop();
                        }
                        push(out, super::scanner::FindingType::Email, s, e);
                        i = e;
                    } else {
                        i += 1;
                    }
                }
                b':' => {
                    // JSON's `":` and `: ` cannot be inside an IPv6 address.
                    let maybe = (i > 0 && b[i - 1].is_ascii_hexdigit()) || b.get(i + 1) == Some(&b':');
                    if maybe
                        && let Some(st) = ipv6_start_at_colon(b, i)
                        && let Some(e) = ipv6_at(b, st)
                    {
                        push(out, FindingType::IpAddress, st, e);
                        i = e;
                    } else {
                        i += 1;
                    }
                }
                b'+' | b'(' => {
                    let next_ok = b.get(i + 1).is_some_and(|&d| d.is_ascii_digit() || (c == b'+' && d == b'('));
                    if next_ok && left_boundary(b, i) {
                        i = numeric_at(b, i, &mut |t, s, e| push(out, t, s, e));
                    } else {
                        i += 1;
                    }
                }
                _ => {
                    // A digit.
                    if number_boundary(b, i) {
                        if hex_run_then_colon(b, i)
                            && (i == 0 || !matches!(b[i - 1], b':' | b'.'))
                            && let Some(e) = ipv6_at(b, i)
                        {
                            push(out, FindingType::IpAddress, i, e);
                            i = e;
                            continue;
                        }
                        // Fast path: a short number not followed by a separator and a digit
                        // (most JSON numbers) cannot be PII.
                        let mut j = i;
                        while j < n && b[j].is_ascii_digit() {
                            j += 1;
                        }
                        let continues = j + 1 < n && matches!(b[j], b' ' | b'-' | b'.' | b':') && (b[j + 1].is_ascii_digit() || b[j + 1] == b'(');
                        let glued = j < n && (b[j].is_ascii_alphabetic() || b[j] == b':');
                        if j - i < 7 && !continues && !glued {
                            i = j;
                            continue;
                        }
                        i = numeric_at(b, i, &mut |t, s, e| push(out, t, s, e));
                    } else {
                        // Glued to a word: maybe an IBAN's check digits, else skip the word.
                        if i >= 2
                            && b[i - 2].is_ascii_alphabetic()
                            && b[i - 1].is_ascii_alphabetic()
                            && left_boundary(b, i - 2)
                            && let Some(e) = iban_at(b, i - 2)
                        {
                            push(out, FindingType::Iban, i - 2, e);
                            i = e;
                            continue;
                        }
                        while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}

/// The first trigger byte at or after `i`, 16 bytes per step with SSE2 (part of the x86_64
/// baseline), else one table lookup per byte.
#[cfg(target_arch = "x86_64")]
fn next_trigger(b: &[u8], mut i: usize) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is always available on x86_64; every load reads 16 bytes at b[i..i + 16],
    // inside the slice (checked by the loop condition), unaligned loads allowed.
    unsafe {
        // x + 0x50 lands in 0x80..=0x8A (signed -128..=-118) exactly for '0'..=':'.
        let shift = _mm_set1_epi8(0x50);
        let limit = _mm_set1_epi8(-117);
        let at = _mm_set1_epi8(b'@' as i8);
        let plus = _mm_set1_epi8(b'+' as i8);
        let paren = _mm_set1_epi8(b'(' as i8);
        while i + 16 <= b.len() {
            let x = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
            let digit_or_colon = _mm_cmplt_epi8(_mm_add_epi8(x, shift), limit);
            let others = _mm_or_si128(_mm_cmpeq_epi8(x, at), _mm_or_si128(_mm_cmpeq_epi8(x, plus), _mm_cmpeq_epi8(x, paren)));
            let mask = _mm_movemask_epi8(_mm_or_si128(digit_or_colon, others)) as u32;
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
    }
    next_trigger_scalar(b, i)
}

#[cfg(not(target_arch = "x86_64"))]
fn next_trigger(b: &[u8], i: usize) -> Option<usize> {
    next_trigger_scalar(b, i)
}

fn next_trigger_scalar(b: &[u8], i: usize) -> Option<usize> {
    b[i..].iter().position(|&c| TRIGGER[c as usize]).map(|o| i + o)
}

/// A number may start at `i`: a left boundary, and not the continuation of a glued token
/// ("is415-555-0132", the tail of a UUID "...-426614174000", "v1.2").
fn number_boundary(b: &[u8], i: usize) -> bool {
    left_boundary(b, i) && !(i >= 2 && matches!(b[i - 1], b'-' | b'.') && b[i - 2].is_ascii_alphanumeric())
}

fn overlaps_secret(spans: &[(usize, usize)], s: usize, e: usize) -> bool {
    spans.iter().any(|&(a, z)| a < e && s < z)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(&'static str, String)> {
        let sc = PatternScanner::new();
        let out = sc.scan(s.as_bytes());
        out.matches.iter().map(|m| (m.kind.name(), String::from_utf8_lossy(out.text(s.as_bytes(), m)).into_owned())).collect()
    }

    #[test]
    fn json_body_finds_values_inside_strings() {
        let body = r#"{"messages":[{"role":"user","content":"Mail jane.doe@example.com\nor call +1 415 555 0132, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, from 10.1.2.3 and 2001:db8::1"}],"max_tokens":1024}"#;
        let k = kinds(body);
        let names: Vec<_> = k.iter().map(|x| x.0).collect();
        assert_eq!(names, ["email", "phone", "credit_card", "iban", "ip_address", "ip_address"], "{k:?}");
        assert_eq!(k[0].1, "jane.doe@example.com");
    }

    #[test]
    fn simd_trigger_search_equals_scalar() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for start in 0..all.len() {
            assert_eq!(next_trigger(&all, start), next_trigger_scalar(&all, start), "{start}");
        }
        let text = b"no triggers in this long stretch of plain prose, really none at all here ok";
        for start in 0..text.len() {
            assert_eq!(next_trigger(text, start), next_trigger_scalar(text, start));
        }
    }

    #[test]
    fn unicode_escaped_at_is_found() {
        let k = kinds(r#"{"c":"write to bob\u0040example.org"}"#);
        assert_eq!(k, [("email", "bob@example.org".to_string())]);
    }

    #[test]
    fn secrets_hide_pii_inside_them() {
        let k = kinds("key AKIAIOSFODNN7EXAMPLE and sk-proj-4155550132abcdefghijklmnop");
        assert_eq!(k.iter().map(|x| x.0).collect::<Vec<_>>(), ["aws_access_key", "openai_api_key"]);
    }
}
