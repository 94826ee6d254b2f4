//! `multipart/form-data` (RFC 7578, framing of RFC 2046) parser over a bounded body.
//!
//! Not incremental by design: HTTP bodies are already kept up to a cap by the protocol parsers,
//! so parts are found in that bounded, content-decoded body. A body cut by the cap yields its
//! parts up to the cut, the last one marked incomplete and the result marked not `complete`.
//! Each part keeps its name, filename, content type, real size, and its first `keep_bytes`.

/// Bounds for [`parse_multipart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// At most this many parts are reported; more set `MultipartBody::parts_truncated`.
    pub max_parts: usize,
    /// The first this-many bytes of each part's content are kept.
    pub keep_bytes: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        Self {
            max_parts: 256,
            keep_bytes: 1024,
        }
    }
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultipartPart {
    /// `name` parameter of `Content-Disposition` (the form field).
    pub name: Option<String>,
    /// `filename` parameter of `Content-Disposition` (an uploaded file).
    pub filename: Option<String>,
    /// The part's `Content-Type` header.
    pub content_type: Option<String>,
    /// Size of the part's content in bytes (as far as the body reached).
    pub size: u64,
    /// The first `keep_bytes` of the content.
    pub head: Vec<u8>,
    /// True when `head` is shorter than the content.
    pub head_truncated: bool,
    /// False when the body ended before this part's closing delimiter.
    pub complete: bool,
}

/// The parts found in a body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultipartBody {
    /// The parts, in order.
    pub parts: Vec<MultipartPart>,
    /// True when the closing delimiter `--boundary--` was seen.
    pub complete: bool,
    /// True when more parts than `max_parts` were there.
    pub parts_truncated: bool,
    /// A part whose headers could not be parsed, or no opening delimiter: what was wrong.
    pub error: Option<String>,
}

/// The `boundary` parameter of a `multipart/*` Content-Type, or `None` when not multipart.
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    let mut pieces = split_params(content_type).into_iter();
    let media = pieces.next()?.to_ascii_lowercase();
    if !media.starts_with("multipart/") {
        return None;
    }
    pieces
        .filter_map(|p| parse_param(&p))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// Find the parts of `body` delimited by `boundary`.
pub fn parse_multipart(body: &[u8], boundary: &str, limits: MultipartLimits) -> MultipartBody {
    let mut result = MultipartBody::default();
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let next_delimiter = [b"\r\n--", boundary.as_bytes()].concat();
    let opening = if body.starts_with(&delimiter) {
        Some(0)
    } else {
        memchr::memmem::find(body, &next_delimiter).map(|p| p + 2)
    };
    let Some(mut pos) = opening else {
        result.error = Some("no opening boundary delimiter".to_string());
        return result;
    };
    loop {
        pos += delimiter.len();
        let rest = body.get(pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            result.complete = true;
            return result;
        }
        // transport padding, then CRLF
        let pad = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let rest = rest.get(pad..).unwrap_or_default();
        let Some(after_crlf) = rest.strip_prefix(b"\r\n") else {
            if !rest.is_empty() {
                result.error = Some("boundary delimiter not followed by CRLF".to_string());
            }
            return result;
        };
        pos += pad + 2;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let (head_len, part) = match httparse::parse_headers(after_crlf, &mut headers) {
            Ok(httparse::Status::Complete((len, hs))) => (len, part_from_headers(hs)),
            Ok(httparse::Status::Partial) => return result,
            Err(err) => {
                result.error = Some(format!("bad part headers: {err}"));
                return result;
            }
        };
        pos += head_len;
        let content = body.get(pos..).unwrap_or_default();
        let (content_len, complete) = match memchr::memmem::find(content, &next_delimiter) {
            Some(end) => (end, true),
            None => (content.len(), false),
        };
        if result.parts.len() >= limits.max_parts {
            result.parts_truncated = true;
        } else {
            let keep = content_len.min(limits.keep_bytes);
            result.parts.push(MultipartPart {
                size: content_len as u64,
                head: content.get(..keep).unwrap_or_default().to_vec(),
                head_truncated: keep < content_len,
                complete,
                ..part
            });
        }
        if !complete {
            return result;
        }
        pos += content_len + 2; // the CRLF before "--boundary"
    }
}

fn part_from_headers(headers: &[httparse::Header<'_>]) -> MultipartPart {
    let mut part = MultipartPart::default();
    for h in headers {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-disposition") {
            for (k, v) in split_params(&value)
                .iter()
                .skip(1)
                .filter_map(|p| parse_param(p))
            {
                if k.eq_ignore_ascii_case("name") {
                    part.name = Some(v);
                } else if k.eq_ignore_ascii_case("filename") {
                    part.filename = Some(v);
                } else if k.eq_ignore_ascii_case("filename*") && part.filename.is_none() {
                    part.filename = Some(decode_ext_value(&v));
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-type") {
            part.content_type = Some(value.trim().to_string());
        }
    }
    part
}

/// RFC 8187 ext-value (`UTF-8''na%C3%AFve.txt`) to text; other charsets are kept as sent.
fn decode_ext_value(value: &str) -> String {
    let mut pieces = value.splitn(3, '\'');
    let (Some(charset), Some(_lang), Some(encoded)) = (pieces.next(), pieces.next(), pieces.next())
    else {
        return value.to_string();
    };
    if !charset.eq_ignore_ascii_case("utf-8") {
        return value.to_string();
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split a header value on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// `key=value` or `key="quoted \" value"` into (key, unquoted value).
fn parse_param(param: &str) -> Option<(String, String)> {
    let (k, v) = param.split_once('=')?;
    let v = v.trim();
    let value = match v.strip_prefix('"') {
        Some(inner) => {
            let mut out = String::new();
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    break;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    };
    Some((k.trim().to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body curl sent in zeek's multipart.pcap (testing/btest/Traces/http/multipart.pcap).
    const ZEEK_MULTIPART: &[u8] = b"------------------------------4ebf00fbcf09\r\n\
Content-Disposition: form-data; name=\"example\"\r\n\r\ntest\r\n\
------------------------------4ebf00fbcf09\r\n\
Content-Disposition: form-data; name=\"example2\"\r\n\r\ntest2\r\n\
------------------------------4ebf00fbcf09\r\n\
Content-Disposition: form-data; name=\"example3\"\r\n\r\ntest3\r\n\
------------------------------4ebf00fbcf09--\r\n";

    #[test]
    fn zeek_multipart_body() {
        assert_eq!(ZEEK_MULTIPART.len(), 350); // its Content-Length
        let boundary = boundary_from_content_type(
            "multipart/form-data; boundary=----------------------------4ebf00fbcf09",
        )
        .unwrap();
        let body = parse_multipart(ZEEK_MULTIPART, &boundary, MultipartLimits::default());
        assert!(body.complete);
        assert_eq!(body.error, None);
        let names: Vec<_> = body.parts.iter().map(|p| p.name.clone().unwrap()).collect();
        assert_eq!(names, ["example", "example2", "example3"]);
        assert_eq!(body.parts[1].head, b"test2");
        assert_eq!(body.parts[1].size, 5);
        assert!(
            body.parts
                .iter()
                .all(|p| p.complete && p.filename.is_none())
        );
    }

    /// RFC 7578 section 4.2 example, with a file part added.
    #[test]
    fn file_parts_quoted_boundary_and_limits() {
        let ct = "multipart/form-data; boundary=\"AaB03x\"";
        let b = boundary_from_content_type(ct).unwrap();
        assert_eq!(b, "AaB03x");
        let body = b"preamble\r\n--AaB03x\r\n\
content-disposition: form-data; name=\"field1\"\r\n\
content-type: text/plain;charset=UTF-8\r\n\
content-transfer-encoding: quoted-printable\r\n\r\n\
Joe owes =E2=82=AC100.\r\n\
--AaB03x\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"q\\\".bin\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\
0123456789abcdef\r\n--AaB03x--";
        let parsed = parse_multipart(
            body,
            &b,
            MultipartLimits {
                max_parts: 8,
                keep_bytes: 4,
            },
        );
        assert!(parsed.complete);
        assert_eq!(parsed.parts.len(), 2);
        assert_eq!(
            decode_ext_value("UTF-8''na%C3%AFve%20.txt"),
            "na\u{ef}ve .txt"
        );
        assert_eq!(decode_ext_value("UTF-8''bad%zz"), "bad%zz");
        assert_eq!(
            parsed.parts[0].content_type.as_deref(),
            Some("text/plain;charset=UTF-8")
        );
        assert_eq!(parsed.parts[1].filename.as_deref(), Some("a \"q\".bin"));
        assert_eq!(parsed.parts[1].size, 16);
        assert_eq!(parsed.parts[1].head, b"0123");
        assert!(parsed.parts[1].head_truncated);

        let limited = parse_multipart(
            body,
            &b,
            MultipartLimits {
                max_parts: 1,
                keep_bytes: 4,
            },
        );
        assert_eq!(limited.parts.len(), 1);
        assert!(limited.parts_truncated);
    }

    #[test]
    fn cut_body_and_non_multipart() {
        let cut = &ZEEK_MULTIPART[..120];
        let body = parse_multipart(
            cut,
            "----------------------------4ebf00fbcf09",
            MultipartLimits::default(),
        );
        assert!(!body.complete);
        assert!(body.parts.last().is_some_and(|p| !p.complete));
        assert_eq!(boundary_from_content_type("text/plain; boundary=x"), None);
        assert_eq!(boundary_from_content_type("multipart/form-data"), None);
        let none = parse_multipart(b"garbage", "x", MultipartLimits::default());
        assert!(none.error.is_some() && none.parts.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), b in "[-a-z0-9]{1,10}") {
            let _ = parse_multipart(&body, &b, MultipartLimits::default());
            let mut framed = format!("--{b}\r\n").into_bytes();
            framed.extend_from_slice(&body);
            let _ = parse_multipart(&framed, &b, MultipartLimits::default());
        }
    }
}
