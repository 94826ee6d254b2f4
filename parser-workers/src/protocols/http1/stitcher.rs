//! Pairs HTTP/1.x frames of both directions into `Http1Exchange`s: responses answer requests
//! in order (pipelining), interim 1xx responses do not consume a request, bodies are capped,
//! content-decoded and split into SSE events / multipart parts when the exchange completes.

use std::collections::VecDeque;

use super::config::Http1Config;
use super::exchange::{CapturedBody, Http1Exchange};
use super::frame::{Header, Http1Frame, RequestHead, ResponseHead, header_value};
use crate::body::{SseDecoder, boundary_from_content_type, decode_content, parse_multipart};
use crate::protocols::parsed::{Direction, Stitcher};

/// One message's body as it arrives.
#[derive(Debug, Clone, Default)]
struct BodyBuilder {
    bytes: Vec<u8>,
    wire_size: u64,
    truncated: bool,
    gap: bool,
    ended: bool,
    complete: bool,
    trailers: Vec<Header>,
}

impl BodyBuilder {
    fn push(&mut self, data: &[u8], wire_len: u64, cap: usize) -> bool {
        self.wire_size = self.wire_size.saturating_add(wire_len);
        let room = cap.saturating_sub(self.bytes.len());
        let keep = data.len().min(room);
        self.bytes
            .extend_from_slice(data.get(..keep).unwrap_or_default());
        let cut = keep < data.len() || (data.len() as u64) < wire_len;
        if cut && !self.truncated && !self.gap {
            self.truncated = true;
            return true;
        }
        self.truncated |= cut;
        false
    }
}

#[derive(Debug, Clone)]
struct PendingExchange {
    request: Option<(RequestHead, BodyBuilder)>,
    response: Option<(ResponseHead, BodyBuilder)>,
    interim: Vec<u16>,
    start_ns: u64,
    end_ns: u64,
    /// When the response head, and the first response body bytes, were seen.
    response_head_ns: Option<u64>,
    response_body_ns: Option<u64>,
}

impl PendingExchange {
    fn new(ts_ns: u64) -> Self {
        Self {
            request: None,
            response: None,
            interim: Vec::new(),
            start_ns: ts_ns,
            end_ns: ts_ns,
            response_head_ns: None,
            response_body_ns: None,
        }
    }

    fn request_ended(&self) -> bool {
        self.request.as_ref().is_none_or(|(_, b)| b.ended)
    }

    fn done(&self) -> bool {
        self.request_ended() && self.response.as_ref().is_some_and(|(_, b)| b.ended)
    }
}

/// Counters kept by the stitcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StitcherStats {
    /// Exchanges emitted.
    pub exchanges: u64,
    /// Responses that found no request (capture started mid-connection, or a skipped request).
    pub orphan_responses: u64,
    /// Body or end frames with no message to belong to.
    pub stray_frames: u64,
    /// Pending exchanges pushed out as partial because too many were outstanding.
    pub evicted_pending: u64,
    /// Bodies that hit the body cap.
    pub body_cap_hits: u64,
    /// Bodies whose decoded size hit the body cap (decompression bombs included).
    pub decode_cap_hits: u64,
    /// Bodies whose Content-Encoding could not be undone.
    pub decode_errors: u64,
    /// SSE lines or events cut at `sse_max_event_bytes`.
    pub sse_cap_hits: u64,
    /// Multipart parts dropped past `multipart.max_parts`.
    pub multipart_cap_hits: u64,
}

/// The HTTP/1.x stitcher.
#[derive(Debug, Clone)]
pub struct Http1Stitcher {
    config: Http1Config,
    pending: VecDeque<PendingExchange>,
    /// The last response head was interim (1xx): its `End` frame belongs to no exchange.
    absorbing_interim: bool,
    stats: StitcherStats,
}

impl Http1Stitcher {
    pub fn new(config: Http1Config) -> Self {
        Self {
            config,
            pending: VecDeque::new(),
            absorbing_interim: false,
            stats: StitcherStats::default(),
        }
    }

    pub fn stats(&self) -> StitcherStats {
        self.stats
    }

    /// Everything still pending, as (partial) exchanges: call at connection end after the
    /// parsers' `finish` frames were pushed.
    pub fn flush(&mut self) -> Vec<Http1Exchange> {
        let drained: Vec<_> = self.pending.drain(..).collect();
        drained.into_iter().map(|p| self.finalize(p)).collect()
    }

    /// Exchanges waiting for their response (or for the rest of their request).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Queue an exchange; at the pipelining cap the oldest goes out as a partial exchange.
    fn push_pending(&mut self, p: PendingExchange, out: &mut Vec<Http1Exchange>) {
        if self.pending.len() >= self.config.max_pending_requests.max(1)
            && let Some(old) = self.pending.pop_front()
        {
            self.stats.evicted_pending += 1;
            out.push(self.finalize(old));
        }
        self.pending.push_back(p);
    }

    fn on_request_frame(&mut self, frame: Http1Frame, ts_ns: u64, out: &mut Vec<Http1Exchange>) {
        match frame {
            Http1Frame::Request(head) => {
                let mut p = PendingExchange::new(ts_ns);
                p.request = Some((head, BodyBuilder::default()));
                self.push_pending(p, out);
            }
            other => {
                let cap = self.config.body_cap;
                let target = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.request.as_ref().is_some_and(|(_, b)| !b.ended));
                match target {
                    Some(p) => {
                        p.end_ns = p.end_ns.max(ts_ns);
                        if let Some((_, body)) = p.request.as_mut()
                            && apply_body_frame(body, other, cap)
                        {
                            self.stats.body_cap_hits += 1;
                        }
                    }
                    None => self.stats.stray_frames += 1,
                }
            }
        }
    }

    fn on_response_frame(&mut self, frame: Http1Frame, ts_ns: u64, out: &mut Vec<Http1Exchange>) {
        match frame {
            Http1Frame::Response(head) => {
                let slot = self.pending.iter_mut().find(|p| p.response.is_none());
                if head.is_interim() {
                    match slot {
                        Some(p) => {
                            p.interim.push(head.status);
                            p.end_ns = p.end_ns.max(ts_ns);
                        }
                        None => self.stats.orphan_responses += 1,
                    }
                    // interim responses have no body; their End frame is absorbed
                    self.absorbing_interim = true;
                    return;
                }
                match slot {
                    Some(p) => {
                        p.end_ns = p.end_ns.max(ts_ns);
                        p.response_head_ns = Some(ts_ns);
                        p.response = Some((head, BodyBuilder::default()));
                    }
                    None => {
                        self.stats.orphan_responses += 1;
                        let mut p = PendingExchange::new(ts_ns);
                        p.response_head_ns = Some(ts_ns);
                        p.response = Some((head, BodyBuilder::default()));
                        self.push_pending(p, out);
                    }
                }
            }
            other => {
                if self.absorbing_interim {
                    if matches!(other, Http1Frame::End { .. }) {
                        self.absorbing_interim = false;
                    }
                    return;
                }
                let cap = self.config.body_cap;
                let target = self
                    .pending
                    .iter_mut()
                    .find(|p| p.response.as_ref().is_some_and(|(_, b)| !b.ended));
                match target {
                    Some(p) => {
                        p.end_ns = p.end_ns.max(ts_ns);
                        if p.response_body_ns.is_none()
                            && matches!(&other, Http1Frame::Body { data, .. } if !data.is_empty())
                        {
                            p.response_body_ns = Some(ts_ns);
                        }
                        if let Some((_, body)) = p.response.as_mut()
                            && apply_body_frame(body, other, cap)
                        {
                            self.stats.body_cap_hits += 1;
                        }
                    }
                    None => self.stats.stray_frames += 1,
                }
            }
        }
    }

    fn finalize(&mut self, p: PendingExchange) -> Http1Exchange {
        self.stats.exchanges += 1;
        let cfg = self.config;
        let mut ex = Http1Exchange {
            start_ns: p.start_ns,
            end_ns: p.end_ns,
            response_first_ns: p.response_body_ns.or(p.response_head_ns),
            interim_statuses: p.interim,
            ..Http1Exchange::default()
        };
        let mut partial = false;
        let mut gap = false;
        match p.request {
            Some((head, body)) => {
                partial |= !(body.ended && body.complete);
                gap |= body.gap;
                ex.version = format!("HTTP/1.{}", head.version_minor);
                ex.host = header_value(&head.headers, "host").map(str::to_string);
                ex.request_content_type =
                    header_value(&head.headers, "content-type").map(str::to_string);
                ex.upgrade = head.upgrade.clone();
                ex.request_body = self.captured(&head.headers, body);
                ex.method = head.method;
                ex.path = head.path;
                ex.request_headers = head.headers;
            }
            None => partial = true,
        }
        match p.response {
            Some((head, body)) => {
                partial |= !(body.ended && body.complete);
                gap |= body.gap;
                if ex.version.is_empty() {
                    ex.version = format!("HTTP/1.{}", head.version_minor);
                }
                ex.flags.upgraded = head.status == 101
                    || (ex.method == "CONNECT" && (200..300).contains(&head.status));
                ex.response_content_type =
                    header_value(&head.headers, "content-type").map(str::to_string);
                ex.response_body = self.captured(&head.headers, body);
                ex.status = Some(head.status);
                ex.reason = head.reason;
                ex.response_headers = head.headers;
            }
            None => partial = true,
        }
        if let Some(ct) = ex.response_content_type.as_deref()
            && media_type_is(ct, "text/event-stream")
        {
            let mut decoder = SseDecoder::new(cfg.sse_max_event_bytes);
            ex.sse_events = decoder.feed(&ex.response_body.bytes);
            ex.sse_events.extend(decoder.finish());
            self.stats.sse_cap_hits += decoder.stats().cap_hits;
        }
        for (ct, body) in [
            (ex.request_content_type.as_deref(), &ex.request_body),
            (ex.response_content_type.as_deref(), &ex.response_body),
        ] {
            if let Some(boundary) = ct.and_then(boundary_from_content_type) {
                let parsed = parse_multipart(&body.bytes, &boundary, cfg.multipart);
                if parsed.parts_truncated {
                    self.stats.multipart_cap_hits += 1;
                }
                ex.multipart_parts.extend(parsed.parts);
            }
        }
        ex.flags.partial = partial;
        ex.flags.gap = gap;
        ex.flags.truncated = ex.request_body.truncated || ex.response_body.truncated;
        ex
    }

    fn emit_done(&mut self, out: &mut Vec<Http1Exchange>) {
        while self.pending.front().is_some_and(PendingExchange::done) {
            if let Some(p) = self.pending.pop_front() {
                out.push(self.finalize(p));
            }
        }
    }
}

/// Apply a body/end/gap frame; returns true when this frame made the body hit the cap.
fn apply_body_frame(body: &mut BodyBuilder, frame: Http1Frame, cap: usize) -> bool {
    match frame {
        Http1Frame::Body { data, wire_len } => body.push(&data, wire_len, cap),
        Http1Frame::Gap { len } => {
            body.wire_size = body.wire_size.saturating_add(len);
            body.gap = true;
            body.truncated = true;
            false
        }
        Http1Frame::End { trailers, complete } => {
            body.ended = true;
            body.complete = complete;
            if !complete {
                body.truncated = true;
            }
            body.trailers = trailers;
            false
        }
        Http1Frame::Request(_) | Http1Frame::Response(_) | Http1Frame::Opaque { .. } => false,
    }
}

fn media_type_is(content_type: &str, media: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
}

/// Finish a body: undo Content-Encoding (bounded), keep the wire size; counts cap hits.
impl Http1Stitcher {
    fn captured(&mut self, headers: &[Header], body: BodyBuilder) -> CapturedBody {
        let content_encoding = header_value(headers, "content-encoding").map(str::to_string);
        let mut out = CapturedBody {
            wire_size: body.wire_size,
            truncated: body.truncated,
            content_encoding: content_encoding.clone(),
            trailers: body.trailers,
            ..CapturedBody::default()
        };
        match content_encoding {
            Some(ce) if !body.bytes.is_empty() => {
                match decode_content(&ce, &body.bytes, self.config.body_cap, body.truncated) {
                    Ok(decoded) => {
                        if decoded.truncated && !body.truncated {
                            self.stats.decode_cap_hits += 1;
                        }
                        out.truncated |= decoded.truncated;
                        out.bytes = decoded.bytes;
                    }
                    Err(err) => {
                        self.stats.decode_errors += 1;
                        out.decode_error = Some(err.to_string());
                        out.bytes = body.bytes;
                    }
                }
            }
            _ => out.bytes = body.bytes,
        }
        out
    }
}

impl Stitcher for Http1Stitcher {
    type Frame = Http1Frame;
    type Exchange = Http1Exchange;

    fn push(&mut self, dir: Direction, frame: Http1Frame, ts_ns: u64) -> Vec<Http1Exchange> {
        let mut out = Vec::new();
        if matches!(frame, Http1Frame::Opaque { .. }) {
            return out;
        }
        match dir {
            Direction::ClientToServer => self.on_request_frame(frame, ts_ns, &mut out),
            Direction::ServerToClient => self.on_response_frame(frame, ts_ns, &mut out),
        }
        self.emit_done(&mut out);
        out
    }
}
