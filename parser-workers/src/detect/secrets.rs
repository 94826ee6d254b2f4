//! Secret detectors: one Aho-Corasick pass finds every known key prefix (OpenAI, Anthropic,
//! AWS, GitHub, Slack, Google, JWT headers, PEM private key blocks); each hit is validated on
//! the spot (charset, length, boundaries, JWT header JSON) and becomes a span.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;

use super::scanner::FindingType;
use super::text::{left_boundary, right_boundary};

/// Longest token accepted after a prefix.
const MAX_TOKEN: usize = 512;
/// How far a PEM block may run before its END line (a 16384-bit RSA key is ~12 KiB).
const MAX_PEM_BYTES: usize = 64 * 1024;
/// Longest JWT part looked at.
const MAX_JWT_PART: usize = 16 * 1024;

#[derive(Clone, Copy, Debug)]
enum Prefix {
    OpenAi,
    Anthropic,
    AwsKeyId,
    AwsSecretAssignment,
    GithubToken,
    GithubPat,
    Slack,
    SlackWebhook,
    Google,
    Jwt,
    PrivateKey,
}

const PREFIXES: &[(&str, Prefix)] = &[
    ("sk-", Prefix::OpenAi),
    ("sk-ant-", Prefix::Anthropic),
    ("AKIA", Prefix::AwsKeyId),
    ("ASIA", Prefix::AwsKeyId),
    ("secret_access_key", Prefix::AwsSecretAssignment),
    ("SECRET_ACCESS_KEY", Prefix::AwsSecretAssignment),
    ("SecretAccessKey", Prefix::AwsSecretAssignment),
    ("secretAccessKey", Prefix::AwsSecretAssignment),
    ("ghp_", Prefix::GithubToken),
    ("gho_", Prefix::GithubToken),
    ("ghu_", Prefix::GithubToken),
    ("ghs_", Prefix::GithubToken),
    ("ghr_", Prefix::GithubToken),
    ("github_pat_", Prefix::GithubPat),
    ("xoxb-", Prefix::Slack),
    ("xoxp-", Prefix::Slack),
    ("xoxa-", Prefix::Slack),
    ("xoxr-", Prefix::Slack),
    ("xoxs-", Prefix::Slack),
    ("xoxe-", Prefix::Slack),
    ("xoxe.xoxp-", Prefix::Slack),
    ("hooks.slack.com/services/", Prefix::SlackWebhook),
    ("hooks.slack.com\\/services\\/", Prefix::SlackWebhook),
    ("AIza", Prefix::Google),
    ("eyJ", Prefix::Jwt),
    ("-----BEGIN ", Prefix::PrivateKey),
];

/// The compiled prefix automaton.
pub struct SecretScanner {
    ac: AhoCorasick,
}

impl SecretScanner {
    pub fn new() -> Self {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(PREFIXES.iter().map(|(p, _)| p))
            // The pattern set is a constant; building it cannot fail.
            .unwrap_or_else(|e| unreachable!("secret prefixes: {e}"));
        SecretScanner { ac }
    }

    /// Every secret in `b`, in order, as (type, start, end); spans never overlap.
    pub fn scan(&self, b: &[u8], emit: &mut impl FnMut(FindingType, usize, usize)) {
        let mut last_end = 0;
        for m in self.ac.find_iter(b) {
            if m.start() < last_end {
                continue;
            }
            let kind = PREFIXES[m.pattern().as_usize()].1;
            if let Some((t, s, e)) = validate(b, kind, m.start(), m.end()) {
                emit(t, s, e);
                last_end = e;
            }
        }
    }
}

impl Default for SecretScanner {
    fn default() -> Self {
        Self::new()
    }
}

fn run(b: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut e = from;
    while e < b.len() && ok(b[e]) && e - from < MAX_TOKEN {
        e += 1;
    }
    e
}

fn key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn validate(b: &[u8], kind: Prefix, p: usize, pe: usize) -> Option<(FindingType, usize, usize)> {
    match kind {
        Prefix::OpenAi | Prefix::Anthropic => {
            // A bare "sk-" needs a word start (not "task-…"); the distinctive project, service
            // account, admin and Anthropic forms are keys even glued to what precedes them
            // (a secret missed is published, a false positive only masks a few characters).
            let distinctive = [&b"proj-"[..], b"svcacct-", b"admin-"].iter().any(|f| b[pe..].starts_with(f))
                || matches!(kind, Prefix::Anthropic);
            if !distinctive && !left_boundary(b, p) {
                return None;
            }
            let e = run(b, pe, key_char);
            let tail = &b[pe..e];
            let digit = tail.iter().any(u8::is_ascii_digit);
            let letter = tail.iter().any(u8::is_ascii_alphabetic);
            if tail.len() < 20 || !digit || !letter || e - pe >= MAX_TOKEN {
                return None;
            }
            let t = if matches!(kind, Prefix::Anthropic) { FindingType::AnthropicApiKey } else { FindingType::OpenaiApiKey };
            Some((t, p, e))
        }
        Prefix::AwsKeyId => {
            let e = run(b, pe, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (left_boundary(b, p) && e - pe == 16 && right_boundary(b, e)).then_some((FindingType::AwsAccessKey, p, e))
        }
        Prefix::AwsSecretAssignment => {
            let mut i = pe;
            let mut assigned = false;
            while i < b.len() && i - pe < 8 && matches!(b[i], b' ' | b'\t' | b'"' | b'\'' | b':' | b'=' | b'\\') {
                assigned |= matches!(b[i], b':' | b'=');
                i += 1;
            }
            let secret_char = |c: u8| c.is_ascii_alphanumeric() || c == b'/' || c == b'+';
            let e = run(b, i, secret_char);
            (assigned && e - i == 40 && b.get(e) != Some(&b'=')).then_some((FindingType::AwsSecretKey, i, e))
        }
        Prefix::GithubToken => {
            let e = run(b, pe, |c| c.is_ascii_alphanumeric());
            (left_boundary(b, p) && (30..=251).contains(&(e - pe)) && right_boundary(b, e)).then_some((FindingType::GithubToken, p, e))
        }
        Prefix::GithubPat => {
            let e = run(b, pe, |c| c.is_ascii_alphanumeric() || c == b'_');
            (left_boundary(b, p) && (22..=244).contains(&(e - pe))).then_some((FindingType::GithubToken, p, e))
        }
        Prefix::Slack => {
            let e = run(b, pe, |c| c.is_ascii_alphanumeric() || c == b'-');
            let ok = left_boundary(b, p) && e - pe >= 10 && b[pe..e].iter().any(u8::is_ascii_digit);
            ok.then_some((FindingType::SlackToken, p, e))
        }
        Prefix::SlackWebhook => {
            let e = run(b, pe, |c| c.is_ascii_alphanumeric() || c == b'/' || c == b'_' || c == b'\\');
            let e = trim_end(b, pe, e, b"\\/");
            let s = [&b"https://"[..], b"https:\\/\\/", b"http://"]
                .iter()
                .find(|sch| p >= sch.len() && &b[p - sch.len()..p] == **sch)
                .map_or(p, |sch| p - sch.len());
            (e - pe >= 20).then_some((FindingType::SlackWebhook, s, e))
        }
        Prefix::Google => {
            let e = run(b, pe, key_char);
            (left_boundary(b, p) && e - pe == 35).then_some((FindingType::GoogleApiKey, p, e))
        }
        Prefix::Jwt => jwt(b, p).map(|e| (FindingType::Jwt, p, e)),
        Prefix::PrivateKey => private_key(b, pe).map(|e| (FindingType::PrivateKey, p, e)),
    }
}

fn trim_end(b: &[u8], from: usize, mut e: usize, chars: &[u8]) -> usize {
    while e > from && chars.contains(&b[e - 1]) {
        e -= 1;
    }
    e
}

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// A JWT starting at `p` ("eyJ..."), as its end: three base64url parts, the header decoding
/// to a JSON object with "alg".
fn jwt(b: &[u8], p: usize) -> Option<usize> {
    if !left_boundary(b, p) || (p > 0 && matches!(b[p - 1], b'.' | b'-')) {
        return None;
    }
    let part = |from: usize| {
        let mut e = from;
        while e < b.len() && b64url(b[e]) && e - from < MAX_JWT_PART {
            e += 1;
        }
        e
    };
    let h_end = part(p);
    if b.get(h_end) != Some(&b'.') || h_end - p < 10 {
        return None;
    }
    let p_end = part(h_end + 1);
    if p_end - (h_end + 1) < 2 || b.get(p_end) != Some(&b'.') {
        return None;
    }
    let s_end = part(p_end + 1);
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&b[p..h_end]).ok()?;
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).ok()?;
    v.contains_key("alg").then_some(s_end)
}

/// A PEM private key block starting at `p` ("-----BEGIN "), as its end: through the END
/// line when there is one, else through the base64 body (a truncated key is still a leak).
fn private_key(b: &[u8], pe: usize) -> Option<usize> {
    let label_window = &b[pe..b.len().min(pe + 64)];
    let label_len = memchr::memmem::find(label_window, b"-----")?;
    let label = &label_window[..label_len];
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return None;
    }
    let body = pe + label_len + 5;
    let limit = b.len().min(body + MAX_PEM_BYTES);
    if let Some(off) = memchr::memmem::find(&b[body..limit], b"-----END ") {
        let end_label = body + off + 9;
        let close = memchr::memmem::find(&b[end_label..b.len().min(end_label + 64)], b"-----")?;
        return Some(end_label + close + 5);
    }
    let mut e = body;
    while e < limit && (b[e].is_ascii_alphanumeric() || matches!(b[e], b'+' | b'/' | b'=' | b'\\' | b'\n' | b'\r' | b' ')) {
        e += 1;
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(s: &str) -> Vec<(FindingType, String)> {
        let sc = SecretScanner::new();
        let mut v = vec![];
        sc.scan(s.as_bytes(), &mut |t, a, e| v.push((t, s[a..e].to_string())));
        v
    }

    #[test]
    fn valid_secrets_are_found() {
        use FindingType::*;
        let cases = [
            ("key sk-proj-Abc123def456ghi789jkl012mno345pqr", OpenaiApiKey),
            // glued to what precedes it (a fuzzer's find): the distinctive forms still count
            ("1111sk-proj-FuzzPlantedKey0123456789abcdefghijklmnopqrstuvwx", OpenaiApiKey),
            ("tokensk-ant-api03-AbCdEf0123456789abcdefGHIJKL-xyz_0123AA", AnthropicApiKey),
            ("sk-ant-api03-AbCdEf0123456789abcdefGHIJKL-xyz_0123AA", AnthropicApiKey),
            ("id=AKIAIOSFODNN7EXAMPLE;", AwsAccessKey),
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", AwsSecretKey),
            ("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", GithubToken),
            ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", GithubToken),
            ("xoxb-1234567890-0987654321-AbCdEfGhIjKl", SlackToken),
            ("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", SlackWebhook),
            ("AIzaSyA-1234567890abcdefghijklmnopqrstu", GoogleApiKey),
            ("Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", Jwt),
            ("-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----", PrivateKey),
        ];
        for (text, t) in cases {
            let f = found(text);
            assert_eq!(f.len(), 1, "{text}: {f:?}");
            assert_eq!(f[0].0, t, "{text}");
        }
        assert_eq!(found(cases[5].0)[0].1, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(found(cases[1].0)[0].1, "sk-proj-FuzzPlantedKey0123456789abcdefghijklmnopqrstuvwx");
    }

    #[test]
    fn lookalikes_are_not_secrets() {
        for text in [
            "task-manager-for-the-whole-team-and-more",
            "sk-short1",
            "the AKIA prefix alone AKIAXYZ",
            "eyJub3QiOiJqd3QifQ.eyJ4IjoxfQ.sig",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            "ghp_short",
            "AIzaTooShort",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }
}
