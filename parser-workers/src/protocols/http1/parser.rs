//! The two HTTP/1.x push parsers, one per direction. Each emits a head frame, its body frames
//! and one `End` per message; on garbage it says `Invalid { skip }` with `skip` reaching the
//! next plausible request line (a known method and a space) or status line (`HTTP/1.d `).
//!
//! The response parser must know what each response answers (HEAD has no body, CONNECT 2xx
//! and 101 switch protocols): the connection tells it with [`Http1ResponseParser::expect`].
//!
//! A head the capture cut (no blank line ever comes: a gap, the connection end, or a response
//! that can only answer it) is read by `cut_head` when its start line is whole: the head
//! with the header lines that ended, then an incomplete `End`.

use std::collections::VecDeque;

use super::body_reader::{AfterEnd, BodyReader, BodyState};
use super::frame::{BodyFraming, Http1Frame};
use super::head::{
    HeadParse, MessageKind, StartCheck, find_blank_line, parse_cut_request_head,
    parse_cut_response_head, parse_request_head, parse_response_head, skip_over_long_head,
    skip_to_next_start, start_check,
};
use crate::protocols::parsed::{FrameParser, Parsed};

/// Limits of one direction's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Body bytes copied into frames per message; the rest is only counted.
    pub body_keep_cap: usize,
    /// Longest head (start line + headers) accepted.
    pub max_head_bytes: usize,
    /// Pipelined requests the response parser remembers; older ones are evicted (counted).
    pub max_pending_requests: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        Self {
            body_keep_cap: 1 << 20,
            max_head_bytes: 64 * 1024,
            max_pending_requests: 256,
        }
    }
}

/// Where the head at the front of the buffer ends, if it does yet.
enum HeadEnd {
    NotYet,
    TooLong,
    Found,
}

/// Find the end of the head, searching only bytes not searched before (`scanned`), so that a
/// head arriving one byte per call costs linear time. `scanned` is reset once the head is
/// decided (frame or invalid) and on gaps.
fn head_end(buf: &[u8], scanned: &mut usize, max_head: usize) -> HeadEnd {
    if *scanned > buf.len() {
        *scanned = 0; // the caller replaced its buffer: search again
    }
    match find_blank_line(buf, *scanned) {
        Some(end) if end <= max_head => {
            *scanned = 0;
            HeadEnd::Found
        }
        Some(_) => {
            *scanned = 0;
            HeadEnd::TooLong
        }
        None if buf.len() >= max_head => {
            *scanned = 0;
            HeadEnd::TooLong
        }
        None => {
            *scanned = buf.len();
            HeadEnd::NotYet
        }
    }
}

/// The end of a message whose head was cut: nothing after the head was seen.
fn cut_end() -> Http1Frame {
    Http1Frame::End {
        trailers: Vec::new(),
        complete: false,
    }
}

/// Client-to-server parser.
#[derive(Debug, Clone)]
pub struct Http1RequestParser {
    body: BodyReader,
    limits: ParserLimits,
    /// After garbage only a known method is accepted as a request start.
    resyncing: bool,
    /// Bytes of the pending head already searched for its blank line (see `FrameParser`).
    scanned: usize,
    /// Last reason a head was rejected.
    pub last_error: Option<String>,
}

impl Http1RequestParser {
    pub fn new(limits: ParserLimits) -> Self {
        Self {
            body: BodyReader::new(limits.body_keep_cap, limits.max_head_bytes),
            limits,
            resyncing: false,
            scanned: 0,
            last_error: None,
        }
    }

    /// Waiting for the server's answer to an Upgrade / CONNECT request.
    pub fn awaiting_verdict(&self) -> bool {
        self.body.state == BodyState::AwaitVerdict
    }

    /// The server refused the upgrade: parse HTTP again.
    pub fn resume_http(&mut self) {
        if self.body.state == BodyState::AwaitVerdict {
            self.body.state = BodyState::Head;
        }
    }

    /// The server switched protocols: everything from now on is opaque.
    pub fn switch_to_opaque(&mut self) {
        self.body.after_end = AfterEnd::Opaque;
        if matches!(self.body.state, BodyState::AwaitVerdict | BodyState::Head) {
            self.body.state = BodyState::Opaque;
        }
    }

    /// Connection end: close the message in progress, if any.
    pub fn finish(&mut self) -> Option<Http1Frame> {
        self.body.finish()
    }

    /// The request head at the front of `buf` will never end (see the module doc). When its
    /// request line is whole: the head and an incomplete `End`, and the caller drops `buf`;
    /// the parser then looks for the next request strictly. `None` when no head is in
    /// progress or it has no whole request line.
    pub fn cut_head(&mut self, buf: &[u8]) -> Option<[Http1Frame; 2]> {
        if self.body.state != BodyState::Head
            || start_check(buf, MessageKind::Request, self.resyncing) != StartCheck::Yes
        {
            return None;
        }
        let head = parse_cut_request_head(buf, self.limits.max_head_bytes)?;
        self.scanned = 0;
        self.resyncing = true;
        Some([Http1Frame::Request(head), cut_end()])
    }

    /// Bytes lost: step over them inside a sized body, or resynchronise.
    pub fn gap(&mut self, len: u64) -> Vec<Http1Frame> {
        self.scanned = 0;
        let (frames, resync) = self.body.gap(len);
        if resync {
            self.resyncing = true;
        }
        frames
    }

    /// Bad chunk framings seen.
    pub fn malformed_bodies(&self) -> u64 {
        self.body.malformed
    }
}

/// Contract: after `NeedMore`, the next call's `buf` is the same bytes with more appended (the
/// usual push-parser contract); the parser remembers how far it searched for the end of a head.
impl FrameParser for Http1RequestParser {
    type Frame = Http1Frame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<Http1Frame> {
        if let Some(parsed) = self.body.parse(buf) {
            if std::mem::take(&mut self.body.resync_requested) {
                // a malformed chunked body left us looking for a head: resync strictly
                self.resyncing = true;
            }
            return parsed;
        }
        match start_check(buf, MessageKind::Request, self.resyncing) {
            StartCheck::Maybe => return Parsed::NeedMore,
            StartCheck::No => {
                self.resyncing = true;
                self.scanned = 0;
                return Parsed::Invalid {
                    skip: skip_to_next_start(buf, MessageKind::Request),
                };
            }
            StartCheck::Yes => {}
        }
        match head_end(buf, &mut self.scanned, self.limits.max_head_bytes) {
            HeadEnd::NotYet => return Parsed::NeedMore,
            HeadEnd::TooLong => {
                self.last_error = Some("request head over the size bound".into());
                self.resyncing = true;
                return Parsed::Invalid {
                    skip: skip_over_long_head(buf),
                };
            }
            HeadEnd::Found => {}
        }
        match parse_request_head(buf, self.limits.max_head_bytes) {
            HeadParse::Partial => Parsed::NeedMore,
            HeadParse::Invalid(reason) => {
                self.last_error = Some(reason);
                self.resyncing = true;
                Parsed::Invalid {
                    skip: skip_to_next_start(buf, MessageKind::Request),
                }
            }
            HeadParse::Complete(head) => {
                self.resyncing = false;
                let switches = head.upgrade.is_some() || head.method == "CONNECT";
                let after = if switches {
                    AfterEnd::AwaitVerdict
                } else {
                    AfterEnd::Head
                };
                self.body.start(head.framing, after);
                let consumed = head.head_len;
                Parsed::Frame {
                    frame: Http1Frame::Request(head),
                    consumed,
                }
            }
        }
    }
}

/// What the response parser knows about a request still waiting for its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedResponse {
    /// The request method (HEAD responses carry no body; CONNECT 2xx opens a tunnel).
    pub method: String,
    /// The request asked to switch protocols (Upgrade header or CONNECT).
    pub may_switch: bool,
}

/// What a final response meant for the request side (read after a `Response` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchVerdict {
    /// Nothing to do for the request parser.
    None,
    /// The switch was refused: the request side goes back to HTTP.
    Refused,
    /// 101 or CONNECT 2xx: the connection is no longer HTTP.
    Switched,
}

/// Server-to-client parser.
#[derive(Debug, Clone)]
pub struct Http1ResponseParser {
    body: BodyReader,
    limits: ParserLimits,
    expected: VecDeque<ExpectedResponse>,
    /// Bytes of the pending head already searched for its blank line (see `FrameParser`).
    scanned: usize,
    /// Requests forgotten because too many were pipelined.
    pub evicted_expectations: u64,
    /// Verdict of the last final response (taken by the connection).
    pub last_verdict: SwitchVerdict,
    pub last_error: Option<String>,
}

impl Http1ResponseParser {
    pub fn new(limits: ParserLimits) -> Self {
        Self {
            body: BodyReader::new(limits.body_keep_cap, limits.max_head_bytes),
            limits,
            expected: VecDeque::new(),
            scanned: 0,
            evicted_expectations: 0,
            last_verdict: SwitchVerdict::None,
            last_error: None,
        }
    }

    /// A request was sent: its response comes after the ones already expected.
    pub fn expect(&mut self, expected: ExpectedResponse) {
        if self.expected.len() >= self.limits.max_pending_requests {
            self.expected.pop_front();
            self.evicted_expectations += 1;
        }
        self.expected.push_back(expected);
    }

    /// Connection end: an until-close body ends complete, a sized one incomplete.
    pub fn finish(&mut self) -> Option<Http1Frame> {
        self.body.finish()
    }

    /// True between messages when no request waits for its response: a status line now
    /// answers a request this parser was never told of.
    pub fn expects_nothing(&self) -> bool {
        self.body.state == BodyState::Head && self.expected.is_empty()
    }

    /// The response head at the front of `buf` will never end (see the module doc). When its
    /// status line is whole: the head (answering the oldest expected request, never switching
    /// protocols) and an incomplete `End`, and the caller drops `buf`.
    pub fn cut_head(&mut self, buf: &[u8]) -> Option<[Http1Frame; 2]> {
        if self.body.state != BodyState::Head
            || start_check(buf, MessageKind::Response, true) != StartCheck::Yes
        {
            return None;
        }
        let head = parse_cut_response_head(buf, self.limits.max_head_bytes)?;
        self.scanned = 0;
        self.last_verdict = SwitchVerdict::None;
        if !head.is_interim() {
            self.expected.pop_front();
        }
        Some([Http1Frame::Response(head), cut_end()])
    }

    /// Bytes lost: step over them inside a sized body, or resynchronise.
    pub fn gap(&mut self, len: u64) -> Vec<Http1Frame> {
        self.scanned = 0;
        // status lines are always looked for strictly, so a resync needs no extra state
        self.body.gap(len).0
    }

    /// Bad chunk framings seen.
    pub fn malformed_bodies(&self) -> u64 {
        self.body.malformed
    }
}

/// Same contract as the request parser: after `NeedMore`, only append to `buf`.
impl FrameParser for Http1ResponseParser {
    type Frame = Http1Frame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<Http1Frame> {
        if let Some(parsed) = self.body.parse(buf) {
            self.body.resync_requested = false; // status lines are always matched strictly
            return parsed;
        }
        match start_check(buf, MessageKind::Response, true) {
            StartCheck::Maybe => return Parsed::NeedMore,
            StartCheck::No => {
                self.scanned = 0;
                return Parsed::Invalid {
                    skip: skip_to_next_start(buf, MessageKind::Response),
                };
            }
            StartCheck::Yes => {}
        }
        match head_end(buf, &mut self.scanned, self.limits.max_head_bytes) {
            HeadEnd::NotYet => return Parsed::NeedMore,
            HeadEnd::TooLong => {
                self.last_error = Some("response head over the size bound".into());
                return Parsed::Invalid {
                    skip: skip_over_long_head(buf),
                };
            }
            HeadEnd::Found => {}
        }
        match parse_response_head(buf, self.limits.max_head_bytes) {
            HeadParse::Partial => Parsed::NeedMore,
            HeadParse::Invalid(reason) => {
                self.last_error = Some(reason);
                Parsed::Invalid {
                    skip: skip_to_next_start(buf, MessageKind::Response),
                }
            }
            HeadParse::Complete(mut head) => {
                let mut after = AfterEnd::Head;
                self.last_verdict = SwitchVerdict::None;
                if head.is_interim() {
                    head.framing = BodyFraming::None;
                } else {
                    let expected = self.expected.pop_front();
                    let method = expected.as_ref().map(|e| e.method.as_str()).unwrap_or("");
                    let may_switch = expected.as_ref().is_some_and(|e| e.may_switch);
                    let success = (200..300).contains(&head.status);
                    if head.status == 101 || (method == "CONNECT" && success) {
                        head.framing = BodyFraming::None;
                        after = AfterEnd::Opaque;
                        self.last_verdict = SwitchVerdict::Switched;
                    } else {
                        if may_switch {
                            self.last_verdict = SwitchVerdict::Refused;
                        }
                        if method == "HEAD" || head.status == 204 || head.status == 304 {
                            head.framing = BodyFraming::None;
                        }
                    }
                }
                self.body.start(head.framing, after);
                let consumed = head.head_len;
                Parsed::Frame {
                    frame: Http1Frame::Response(head),
                    consumed,
                }
            }
        }
    }
}
