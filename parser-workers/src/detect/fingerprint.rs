//! Keyed fingerprints: HMAC-SHA256(deployment key, normalised value), truncated to 16 bytes
//! and hex-encoded (32 chars). The same email in a database row, a prompt and an upload gives
//! the same fingerprint; without the key nobody can test a guess against it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::scanner::FindingType;

/// Bytes of the HMAC kept in a fingerprint.
pub const FINGERPRINT_BYTES: usize = 16;

/// A keyed fingerprinter (the HMAC state after the key, cloned per value).
#[derive(Clone)]
pub struct Fingerprinter {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter { key: <hidden> }")
    }
}

impl Fingerprinter {
    pub fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length (long keys are hashed first): this cannot fail.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        Fingerprinter { keyed }
    }

    /// The fingerprint of an already-normalised value, with the type as domain separation
    /// (a card and a phone with the same digits do not collide).
    pub fn fingerprint_normalised(&self, kind: FindingType, normalised: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(kind.name().as_bytes());
        mac.update(&[0]);
        mac.update(normalised);
        let tag = mac.finalize().into_bytes();
        hex(&tag[..FINGERPRINT_BYTES])
    }

    /// The fingerprint of a matched value as it appeared in the text.
    pub fn fingerprint(&self, kind: FindingType, raw: &[u8]) -> String {
        self.fingerprint_normalised(kind, &normalise(kind, raw))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The canonical form of a value: email lowercased; phone as +digits where the country is
/// known (E.164 input, or a NANP 10/11-digit number) else national digits, extension dropped;
/// card, SSN digits only; IBAN uppercase without separators; IP in its canonical text form;
/// secrets as they are with JSON escapes removed (a PEM key: its base64 body only).
pub fn normalise(kind: FindingType, raw: &[u8]) -> Vec<u8> {
    match kind {
        FindingType::Email => raw.to_ascii_lowercase(),
        FindingType::Phone => normalise_phone(raw),
        FindingType::CreditCard | FindingType::UsSsn => raw.iter().copied().filter(u8::is_ascii_digit).collect(),
        FindingType::Iban => raw.iter().filter(|c| c.is_ascii_alphanumeric()).map(u8::to_ascii_uppercase).collect(),
        FindingType::IpAddress => normalise_ip(raw),
        FindingType::PrivateKey => pem_body(raw),
        _ => unescape_json_simple(raw),
    }
}

fn normalise_phone(raw: &[u8]) -> Vec<u8> {
    // Drop an extension ("x123", "ext. 4").
    let cut = raw.iter().position(|c| c.is_ascii_alphabetic()).unwrap_or(raw.len());
    let raw = &raw[..cut];
    let plus = raw.first() == Some(&b'+');
    let mut digits = Vec::with_capacity(16);
    let mut i = 0;
    while i < raw.len() {
        // "+44 (0)20 ...": the national trunk prefix in parentheses is not dialled.
        if plus && raw[i..].starts_with(b"(0)") {
            i += 3;
            continue;
        }
        if raw[i].is_ascii_digit() {
            digits.push(raw[i]);
        }
        i += 1;
    }
    let nanp = |d: &[u8]| d.len() == 10 && (b'2'..=b'9').contains(&d[0]) && (b'2'..=b'9').contains(&d[3]);
    let mut out = Vec::with_capacity(digits.len() + 2);
    if plus {
        out.push(b'+');
    } else if nanp(&digits) {
        out.extend_from_slice(b"+1");
    } else if digits.len() == 11 && digits[0] == b'1' && nanp(&digits[1..]) {
        out.push(b'+');
    }
    out.extend_from_slice(&digits);
    out
}

fn normalise_ip(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (&*text, None),
    };
    let addr = addr.split('%').next().unwrap_or(addr);
    let canon = match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => addr.to_ascii_lowercase(),
    };
    match prefix {
        Some(p) => format!("{canon}/{p}").into_bytes(),
        None => canon.into_bytes(),
    }
}

/// `\/` -> `/` and similar one-letter JSON escapes removed (a secret in a JSON string).
fn unescape_json_simple(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            out.push(raw[i + 1]);
            i += 2;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}

/// The base64 body of a PEM block: the lines between BEGIN and END, without line breaks
/// (literal or JSON-escaped) or headers.
fn pem_body(raw: &[u8]) -> Vec<u8> {
    let start = raw.get(5..).and_then(|r| memchr::memmem::find(r, b"-----")).map_or(0, |o| o + 10);
    let end = memchr::memmem::find(&raw[start.min(raw.len())..], b"-----END").map_or(raw.len(), |o| start + o);
    let body = &raw[start.min(end)..end];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == b'\\' {
            i += 2;
            continue;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') {
            out.push(c);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_fingerprint_across_spellings() {
        let f = Fingerprinter::new(b"k1");
        let p = |s: &str| f.fingerprint(FindingType::Phone, s.as_bytes());
        assert_eq!(p("(415) 555-0132"), p("+1 415 555 0132"));
        assert_eq!(p("415.555.0132"), p("1-415-555-0132"));
        assert_eq!(p("+44 (0)20 7123 4567"), p("+44 20 7123 4567"));
        let c = |s: &str| f.fingerprint(FindingType::CreditCard, s.as_bytes());
        assert_eq!(c("4111 1111 1111 1111"), c("4111-1111-1111-1111"));
        let e = |s: &str| f.fingerprint(FindingType::Email, s.as_bytes());
        assert_eq!(e("Jane@Example.com"), e("jane@example.com"));
        assert_eq!(e("jane@example.com").len(), 32);
        let i = |s: &str| f.fingerprint(FindingType::Iban, s.as_bytes());
        assert_eq!(i("GB82 WEST 1234 5698 7654 32"), i("gb82west12345698765432"));
        let ip = |s: &str| f.fingerprint(FindingType::IpAddress, s.as_bytes());
        assert_eq!(ip("2001:0db8:0000::1"), ip("2001:db8::1"));
    }

    #[test]
    fn key_and_type_change_the_fingerprint() {
        let a = Fingerprinter::new(b"k1");
        let b = Fingerprinter::new(b"k2");
        assert_ne!(a.fingerprint(FindingType::Email, b"x@y.io"), b.fingerprint(FindingType::Email, b"x@y.io"));
        assert_ne!(a.fingerprint(FindingType::CreditCard, b"4111111111111111"), a.fingerprint(FindingType::Phone, b"4111111111111111"));
    }

    #[test]
    fn pem_body_ignores_line_breaks() {
        let x = pem_body(b"-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\nowIB\\n-----END RSA PRIVATE KEY-----");
        let y = pem_body(b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\nowIB\n-----END RSA PRIVATE KEY-----");
        assert_eq!(x, b"MIIEowIB");
        assert_eq!(x, y);
    }
}
