//! Request and status line + header parsing (through httparse), body framing from the headers,
//! and the "does a message plausibly start here" checks used to resynchronise after garbage.

use super::frame::{BodyFraming, Header, RequestHead, ResponseHead};

/// Most headers one head may carry; more is treated as garbage.
pub const MAX_HEADERS: usize = 128;

/// Methods accepted as a resync point after garbage (a lone token is too weak a signal there).
pub const KNOWN_METHODS: [&str; 18] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "REPORT",
];

/// Longest method token accepted at a message start.
const MAX_METHOD_LEN: usize = 32;

/// What a head parse found.
#[derive(Debug)]
pub enum HeadParse<T> {
    Complete(T),
    Partial,
    Invalid(String),
}

/// Whether bytes can begin a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartCheck {
    /// A message start (as far as the start pattern goes).
    Yes,
    /// A prefix of a start pattern: need more bytes to tell.
    Maybe,
    No,
}

/// Which side's messages are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
}

fn is_method_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

/// Does `buf` begin like a request line (`strict`: a known method) or a status line?
pub fn start_check(buf: &[u8], kind: MessageKind, strict: bool) -> StartCheck {
    match kind {
        MessageKind::Response => {
            let pattern = b"HTTP/1.";
            let n = buf.len().min(pattern.len());
            if buf.get(..n) != pattern.get(..n) {
                return StartCheck::No;
            }
            match buf.get(7) {
                None => StartCheck::Maybe,
                Some(d) if !d.is_ascii_digit() => StartCheck::No,
                Some(_) => match buf.get(8) {
                    None => StartCheck::Maybe,
                    Some(b' ') => StartCheck::Yes,
                    Some(_) => StartCheck::No,
                },
            }
        }
        MessageKind::Request if strict => {
            let mut maybe = false;
            for m in KNOWN_METHODS {
                let m = m.as_bytes();
                if buf.len() > m.len() {
                    if buf.starts_with(m) && buf.get(m.len()) == Some(&b' ') {
                        return StartCheck::Yes;
                    }
                } else if m.starts_with(buf) {
                    maybe = true;
                }
            }
            if maybe {
                StartCheck::Maybe
            } else {
                StartCheck::No
            }
        }
        MessageKind::Request => {
            let token = buf.iter().take_while(|&&b| is_method_char(b)).count();
            if token > MAX_METHOD_LEN {
                return StartCheck::No;
            }
            match buf.get(token) {
                None => StartCheck::Maybe,
                Some(b' ') if token > 0 => StartCheck::Yes,
                Some(_) => StartCheck::No,
            }
        }
    }
}

/// Where the blank line ending a head (or trailer section) is: the index just past it.
/// Searching starts at `from` (bytes before it were already searched), so repeated calls on a
/// growing buffer stay linear. `"\n\r\n"` and `"\n\n"` end a head; `buf` itself may start
/// with the blank line when `from` is 0 (an empty trailer section).
pub fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    // An empty section (a blank line right at the start) ends at once, however much of the
    // buffer an earlier call already scanned: "0\r\n" then "\r" then "\n" must end a
    // chunked body as surely as "0\r\n\r\n" in one piece.
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    let from = from.saturating_sub(2);
    let tail = buf.get(from..)?;
    memchr::memchr_iter(b'\n', tail).find_map(|i| match (tail.get(i + 1), tail.get(i + 2)) {
        (Some(b'\n'), _) => Some(from + i + 2),
        (Some(b'\r'), Some(b'\n')) => Some(from + i + 3),
        _ => None,
    })
}

/// Bytes to skip after a head that never ended within the size bound: everything up to the
/// last line start seen (candidates inside an over-long head are not retried, which keeps the
/// resync linear), at least 1.
pub fn skip_over_long_head(buf: &[u8]) -> usize {
    memchr::memrchr(b'\n', buf)
        .map_or(buf.len(), |i| i + 1)
        .max(1)
}

/// Bytes to skip from the front of `buf` to reach the next place a message may start
/// (at least 1; a tail that may be the beginning of one is kept).
pub fn skip_to_next_start(buf: &[u8], kind: MessageKind) -> usize {
    (1..buf.len())
        .find(|&i| start_check(buf.get(i..).unwrap_or_default(), kind, true) != StartCheck::No)
        .unwrap_or(buf.len())
        .max(1)
}

fn headers_from(raw: &[httparse::Header<'_>]) -> Vec<Header> {
    raw.iter()
        .map(|h| Header::from_wire(h.name, h.value))
        .collect()
}

/// Framing from Transfer-Encoding / Content-Length (RFC 9112 6.3). `None` when the message is
/// malformed (conflicting lengths). `no_length` is what to use when neither header is present.
fn framing_from(
    raw: &[httparse::Header<'_>],
    no_length: BodyFraming,
) -> Result<BodyFraming, String> {
    let mut transfer_encoding: Option<String> = None;
    let mut length: Option<u64> = None;
    for h in raw {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            transfer_encoding = Some(match transfer_encoding {
                Some(prev) => format!("{prev},{v}"),
                None => v,
            });
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for piece in String::from_utf8_lossy(h.value).split(',') {
                let piece = piece.trim();
                if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("bad Content-Length {piece:?}"));
                }
                let n: u64 = piece
                    .parse()
                    .map_err(|_| format!("Content-Length too large {piece:?}"))?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length values".to_string());
                }
                length = Some(n);
            }
        }
    }
    if let Some(te) = transfer_encoding {
        let last = te.rsplit(',').next().unwrap_or_default().trim().to_string();
        return Ok(if last == "chunked" {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        });
    }
    Ok(match length {
        Some(0) => BodyFraming::None,
        Some(n) => BodyFraming::ContentLength(n),
        None => no_length,
    })
}

/// Parse a request head at the front of `buf`.
pub fn parse_request_head(buf: &[u8], max_head: usize) -> HeadParse<RequestHead> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let framing = match framing_from(req.headers, BodyFraming::None) {
                Ok(BodyFraming::UntilClose) => {
                    return HeadParse::Invalid(
                        "request with a non-chunked Transfer-Encoding".into(),
                    );
                }
                Ok(f) => f,
                Err(e) => return HeadParse::Invalid(e),
            };
            let headers = headers_from(req.headers);
            let expect_continue = req.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("expect")
                    && h.value.eq_ignore_ascii_case(b"100-continue")
            });
            let upgrade = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string());
            HeadParse::Complete(RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                path: req.path.unwrap_or_default().to_string(),
                version_minor: req.version.unwrap_or(1),
                headers,
                head_len,
                framing,
                expect_continue,
                upgrade,
            })
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            HeadParse::Invalid(format!("request head longer than {max_head} bytes"))
        }
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(e) => HeadParse::Invalid(format!("bad request head: {e}")),
    }
}

/// Parse a status line + headers at the front of `buf`. The framing is what the headers say;
/// the response parser overrides it for HEAD, 1xx, 204, 304 and CONNECT.
pub fn parse_response_head(buf: &[u8], max_head: usize) -> HeadParse<ResponseHead> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let framing = match framing_from(resp.headers, BodyFraming::UntilClose) {
                Ok(f) => f,
                Err(e) => return HeadParse::Invalid(e),
            };
            HeadParse::Complete(ResponseHead {
                version_minor: resp.version.unwrap_or(1),
                status: resp.code.unwrap_or_default(),
                reason: resp.reason.unwrap_or_default().to_string(),
                headers: headers_from(resp.headers),
                head_len,
                framing,
            })
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            HeadParse::Invalid(format!("response head longer than {max_head} bytes"))
        }
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(e) => HeadParse::Invalid(format!("bad status line or headers: {e}")),
    }
}

/// The lines of a head the capture cut (no blank line came) that did end, closed with a blank
/// line so that httparse reads them: the start line alone (`whole_lines` false) or every line
/// up to the last line end. `None` when not even the start line ended within `max_head` bytes.
fn close_cut_head(buf: &[u8], max_head: usize, whole_lines: bool) -> Option<Vec<u8>> {
    let buf = buf.get(..buf.len().min(max_head))?;
    let end = if whole_lines {
        memchr::memrchr(b'\n', buf)?
    } else {
        memchr::memchr(b'\n', buf)?
    };
    let lines = buf.get(..=end)?;
    let mut closed = Vec::with_capacity(lines.len() + 2);
    closed.extend_from_slice(lines);
    closed.extend_from_slice(b"\r\n");
    Some(closed)
}

/// Read a request head the capture cut at the front of `buf`: the request line (method SP
/// target SP HTTP/1.x) must be whole; header lines that ended are kept, a cut last line is
/// dropped, and when a header line is malformed only the request line is kept. The head has
/// no body framing (its end was never seen) and `head_len` covers all of `buf`.
pub fn parse_cut_request_head(buf: &[u8], max_head: usize) -> Option<RequestHead> {
    [true, false].into_iter().find_map(|whole_lines| {
        let closed = close_cut_head(buf, max_head, whole_lines)?;
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut raw);
        match req.parse(&closed) {
            Ok(httparse::Status::Complete(_)) => Some(RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                path: req.path.unwrap_or_default().to_string(),
                version_minor: req.version.unwrap_or(1),
                headers: headers_from(req.headers),
                head_len: buf.len(),
                framing: BodyFraming::None,
                expect_continue: false,
                upgrade: None,
            }),
            _ => None,
        }
    })
}

/// Read a response head the capture cut at the front of `buf`, as `parse_cut_request_head`
/// does: the status line must be whole; there is no body framing.
pub fn parse_cut_response_head(buf: &[u8], max_head: usize) -> Option<ResponseHead> {
    [true, false].into_iter().find_map(|whole_lines| {
        let closed = close_cut_head(buf, max_head, whole_lines)?;
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut raw);
        match resp.parse(&closed) {
            Ok(httparse::Status::Complete(_)) => Some(ResponseHead {
                version_minor: resp.version.unwrap_or(1),
                status: resp.code.unwrap_or_default(),
                reason: resp.reason.unwrap_or_default().to_string(),
                headers: headers_from(resp.headers),
                head_len: buf.len(),
                framing: BodyFraming::None,
            }),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_checks() {
        use MessageKind::*;
        assert_eq!(
            start_check(b"GET / HTTP/1.1", Request, true),
            StartCheck::Yes
        );
        assert_eq!(start_check(b"GE", Request, true), StartCheck::Maybe);
        assert_eq!(start_check(b"GEX /", Request, true), StartCheck::No);
        assert_eq!(
            start_check(b"CCM_POST / HTTP/1.1", Request, false),
            StartCheck::Yes
        );
        assert_eq!(
            start_check(b"CCM_POST / HTTP/1.1", Request, true),
            StartCheck::No
        );
        assert_eq!(
            start_check(b"get / HTTP/1.1", Request, false),
            StartCheck::No
        );
        assert_eq!(
            start_check(b"HTTP/1.1 200 OK", Response, true),
            StartCheck::Yes
        );
        assert_eq!(start_check(b"HTTP/1", Response, true), StartCheck::Maybe);
        assert_eq!(start_check(b"HTTP/1.1", Response, true), StartCheck::Maybe);
        assert_eq!(start_check(b"HTTP/1.x", Response, true), StartCheck::No);
        assert_eq!(start_check(b"HTTP/2 200", Response, true), StartCheck::No);
        assert_eq!(skip_to_next_start(b"xxGET / ", Request), 2);
        assert_eq!(skip_to_next_start(b"xxxxPO", Request), 4);
        assert_eq!(skip_to_next_start(b"\x00\x01HTTP/1.0 200", Response), 2);
        assert_eq!(
            find_blank_line(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest", 0),
            Some(24)
        );
        assert_eq!(
            find_blank_line(b"GET / HTTP/1.1\nA: b\n\nrest", 20),
            Some(21)
        );
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(find_blank_line(b"\r\nX", 0), Some(2));
        // Resumed after the "\r" arrived alone: still the empty section.
        assert_eq!(find_blank_line(b"\r\n", 1), Some(2));
        assert_eq!(skip_over_long_head(b"GET /\r\nX: aaaa"), 7);
    }

    #[test]
    fn cut_heads_keep_their_whole_lines() {
        let r = parse_cut_request_head(
            b"POST /p?q=1 HTTP/1.1\r\nhost: h.example\r\nx-cut: abc",
            1024,
        )
        .expect("request line is whole");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/p?q=1"));
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers[0].value, "h.example");
        assert_eq!((r.head_len, r.framing), (49, BodyFraming::None));
        // a malformed header line: the request line alone
        let r = parse_cut_request_head(b"GET /x HTTP/1.0\r\nbad line\r\nA: b", 1024)
            .expect("request line is whole");
        assert!(r.headers.is_empty() && r.version_minor == 0);
        assert!(parse_cut_request_head(b"GET /x HTTP/1.1", 1024).is_none());
        assert!(parse_cut_request_head(b"GET /x\r\nHost: a\r\n", 1024).is_none());
        assert!(parse_cut_request_head(b"GET /x HTTP/1.1\r\n", 5).is_none());
        assert!(parse_cut_request_head(b"", 1024).is_none());
        let r = parse_cut_response_head(b"HTTP/1.0 200 OK\r\n", 1024).expect("status line");
        assert_eq!(
            (r.status, r.version_minor, r.reason.as_str()),
            (200, 0, "OK")
        );
        assert!(parse_cut_response_head(b"HTTP/1.1 20", 1024).is_none());
    }

    #[test]
    fn framing_rules() {
        let HeadParse::Complete(r) = parse_request_head(
            b"POST /x HTTP/1.1\r\nContent-Length: 5, 5\r\nAuthorization: Bearer sk-123\r\n\r\n",
            1024,
        ) else {
            panic!("complete")
        };
        assert_eq!(r.framing, BodyFraming::ContentLength(5));
        assert!(r.headers[1].redacted && r.headers[1].value.is_empty());
        assert_eq!(r.headers[1].value_len, "Bearer sk-123".len());
        assert!(matches!(
            parse_request_head(
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                1024
            ),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 1024),
            HeadParse::Invalid(_)
        ));
        let HeadParse::Complete(r) = parse_response_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 10\r\n\r\n",
            1024,
        ) else {
            panic!("complete")
        };
        assert_eq!(r.framing, BodyFraming::Chunked);
        let HeadParse::Complete(r) = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n", 1024) else {
            panic!("complete")
        };
        assert_eq!(r.framing, BodyFraming::UntilClose);
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA: b", 10),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA: b", 100),
            HeadParse::Partial
        ));
    }
}
