//! Server-sent events (`text/event-stream`) decoder after the WHATWG HTML "event stream
//! interpretation" algorithm: `event:`, `data:` (several lines joined with `\n`), `id:`,
//! `retry:`, comments, CRLF / LF / CR line ends, fed incrementally in arbitrary chunks, with a
//! bound on the size of one line and one event (hitting it is flagged and counted).

/// Default bound on one event's data (and on one line).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` type, `"message"` when none was given (as the spec dispatches it).
    pub event: String,
    /// The `data:` lines joined with `\n` (no trailing newline).
    pub data: String,
    /// The last event id in force when the event was dispatched (`id:` fields persist).
    pub id: Option<String>,
    /// A `retry:` value (milliseconds) seen since the previous event, if any.
    pub retry_ms: Option<u64>,
    /// True when a line or the data went over the size bound and was cut.
    pub truncated: bool,
}

/// Counters of what the decoder saw beyond the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SseStats {
    /// Events dispatched.
    pub events: u64,
    /// Comment lines (starting with `:`), e.g. keep-alive pings.
    pub comments: u64,
    /// Lines or events cut at the size bound.
    pub cap_hits: u64,
}

/// Incremental event-stream decoder; feed it the (already content-decoded) body in any chunks.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    max_event_bytes: usize,
    line: Vec<u8>,
    line_truncated: bool,
    /// The previous chunk ended in CR: a leading LF of the next chunk belongs to that line end.
    after_cr: bool,
    /// Still at the very start of the stream (a UTF-8 BOM is dropped there).
    at_stream_start: bool,
    event_type: String,
    data: String,
    data_seen: bool,
    last_event_id: Option<String>,
    retry_ms: Option<u64>,
    event_truncated: bool,
    stats: SseStats,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that keeps at most `max_event_bytes` of one line and of one event's data.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            line_truncated: false,
            after_cr: false,
            at_stream_start: true,
            event_type: String::new(),
            data: String::new(),
            data_seen: false,
            last_event_id: None,
            retry_ms: None,
            event_truncated: false,
            stats: SseStats::default(),
        }
    }

    /// What was counted so far.
    pub fn stats(&self) -> SseStats {
        self.stats
    }

    /// Feed the next chunk of the stream; returns the events it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if let Some((&b'\n', rest)) = chunk.split_first() {
                chunk = rest;
            }
        }
        if self.at_stream_start {
            // Only drop the BOM once enough bytes are there to tell.
            let bom = b"\xEF\xBB\xBF";
            if self.line.is_empty() {
                if chunk.len() < bom.len() && bom.starts_with(chunk) {
                    self.line.extend_from_slice(chunk);
                    return events;
                }
                self.at_stream_start = false;
                chunk = chunk.strip_prefix(bom).unwrap_or(chunk);
            } else {
                // A BOM prefix is buffered (at most two bytes): rare, so join and go again.
                let have = self.line.len() + chunk.len();
                if have < bom.len() && bom.starts_with(&[&self.line[..], chunk].concat()) {
                    self.line.extend_from_slice(chunk);
                    return events;
                }
                let mut joined = std::mem::take(&mut self.line);
                joined.extend_from_slice(chunk);
                self.at_stream_start = false;
                let start = if joined.starts_with(bom) {
                    bom.len()
                } else {
                    0
                };
                let rest = joined.get(start..).unwrap_or_default().to_vec();
                events.extend(self.feed(&rest));
                return events;
            }
        }
        while !chunk.is_empty() {
            match memchr::memchr2(b'\n', b'\r', chunk) {
                None => {
                    self.push_line_bytes(chunk);
                    break;
                }
                Some(pos) => {
                    let line = chunk.get(..pos).unwrap_or_default();
                    let event = if self.line.is_empty()
                        && !self.line_truncated
                        && line.len() <= self.max_event_bytes
                    {
                        // The whole line is in this chunk: interpret it in place, no copy.
                        self.interpret_line(line, false)
                    } else {
                        self.push_line_bytes(line);
                        self.end_line()
                    };
                    if let Some(event) = event {
                        events.push(event);
                    }
                    let ended_with_cr = chunk.get(pos) == Some(&b'\r');
                    let mut next = pos + 1;
                    if ended_with_cr {
                        match chunk.get(next) {
                            Some(b'\n') => next += 1,
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    chunk = chunk.get(next..).unwrap_or_default();
                }
            }
        }
        events
    }

    /// End of stream. The spec discards an event whose blank line never came; a monitor wants
    /// to see it, so it is returned here (marked `truncated`) when it has data.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() || self.line_truncated {
            // A last line without its line end still counts as a line.
            let _ = self.end_line();
        }
        if !self.data_seen {
            return None;
        }
        let mut event = self.dispatch();
        if let Some(ev) = event.as_mut() {
            ev.truncated = true;
        }
        event
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        let room = self.max_event_bytes.saturating_sub(self.line.len());
        if bytes.len() > room {
            if !self.line_truncated {
                self.stats.cap_hits += 1;
            }
            self.line_truncated = true;
            self.line
                .extend_from_slice(bytes.get(..room).unwrap_or_default());
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// Interpret the buffered line; an empty line dispatches. The buffer keeps its capacity.
    fn end_line(&mut self) -> Option<SseEvent> {
        let mut line = std::mem::take(&mut self.line);
        let line_truncated = std::mem::replace(&mut self.line_truncated, false);
        let event = self.interpret_line(&line, line_truncated);
        line.clear();
        self.line = line;
        event
    }

    /// Interpret one whole line (without its line end); an empty line dispatches.
    fn interpret_line(&mut self, line: &[u8], line_truncated: bool) -> Option<SseEvent> {
        if line.is_empty() && !line_truncated {
            return self.dispatch();
        }
        if line.first() == Some(&b':') {
            self.stats.comments += 1;
            return None;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let field = line.get(..colon).unwrap_or_default();
                let mut value = line.get(colon + 1..).unwrap_or_default();
                if let Some((&b' ', rest)) = value.split_first() {
                    value = rest;
                }
                (field, value)
            }
            None => (line, &b""[..]),
        };
        let value = utf8_lossy(value);
        match field {
            b"event" => self.event_type = value.into_owned(),
            b"data" => {
                if line_truncated {
                    self.event_truncated = true;
                }
                let room = self.max_event_bytes.saturating_sub(self.data.len());
                if value.len() + 1 > room {
                    if !self.event_truncated {
                        self.stats.cap_hits += 1;
                    }
                    self.event_truncated = true;
                    let mut cut = room.min(value.len());
                    while !value.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    self.data.push_str(value.get(..cut).unwrap_or_default());
                } else {
                    // one allocation of the right size for the usual one-line event
                    self.data.reserve(value.len() + 1);
                    self.data.push_str(&value);
                    self.data.push('\n');
                }
                self.data_seen = true;
            }
            b"id" if !value.contains('\0') => self.last_event_id = Some(value.into_owned()),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event_type = std::mem::take(&mut self.event_type);
        let truncated = std::mem::replace(&mut self.event_truncated, false);
        let retry_ms = self.retry_ms.take();
        if !std::mem::replace(&mut self.data_seen, false) {
            self.data.clear();
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        self.stats.events += 1;
        Some(SseEvent {
            event: if event_type.is_empty() {
                "message".to_string()
            } else {
                event_type
            },
            data,
            id: self.last_event_id.clone(),
            retry_ms,
            truncated,
        })
    }
}

/// `String::from_utf8_lossy` with the fast validity check first: the lossy path walks the
/// bytes one UTF-8 chunk at a time, several times slower on the (usual) valid input.
fn utf8_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Decode a whole event-stream body at once (feed + finish).
pub fn decode_sse(body: &[u8], max_event_bytes: usize) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new(max_event_bytes);
    let mut events = decoder.feed(body);
    events.extend(decoder.finish());
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.feed(c));
        }
        out
    }

    /// The WHATWG spec's own examples (HTML Living Standard, 9.2.6 "Event stream format").
    #[test]
    fn whatwg_examples() {
        let stock = b"data: YHOO\ndata: +2\ndata: 10\n\n";
        let ev = feed_all(&[stock]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "YHOO\n+2\n10");
        assert_eq!(ev[0].event, "message");

        let four = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        let mut d = SseDecoder::default();
        let ev = d.feed(four);
        assert_eq!(ev.len(), 3);
        assert_eq!(
            (ev[0].data.as_str(), ev[0].id.as_deref()),
            ("first event", Some("1"))
        );
        assert_eq!(
            (ev[1].data.as_str(), ev[1].id.as_deref()),
            ("second event", Some(""))
        );
        assert_eq!(ev[2].data, " third event");
        assert_eq!(d.stats().comments, 1);

        let two = b"data\n\ndata\ndata\n\ndata:";
        let mut d = SseDecoder::default();
        let ev = d.feed(two);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "");
        assert_eq!(ev[1].data, "\n");
        // the last "data:" never got its blank line: the spec drops it, finish() reports it.
        let last = d.finish().unwrap();
        assert!(last.truncated && last.data.is_empty());

        let same = b"data:test\n\ndata: test\n\n";
        let ev = feed_all(&[same]);
        assert_eq!(ev[0].data, "test");
        assert_eq!(ev[1].data, "test");
    }

    #[test]
    fn event_type_retry_crlf_cr_and_bom() {
        let s =
            b"\xEF\xBB\xBFevent: add\r\nretry: 3000\r\ndata: 73857293\r\n\r\nevent:x\rdata:y\r\r";
        let ev = feed_all(&[s]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "add");
        assert_eq!(ev[0].data, "73857293");
        assert_eq!(ev[0].retry_ms, Some(3000));
        assert_eq!((ev[1].event.as_str(), ev[1].data.as_str()), ("x", "y"));
        // CR at the end of one chunk and LF at the start of the next is one line end.
        let ev = feed_all(&[b"data: a\r", b"\n\r", b"\n"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "a");
        // BOM split across chunks.
        let ev = feed_all(&[b"\xEF", b"\xBB", b"\xBFdata: b\n\n"]);
        assert_eq!(ev[0].data, "b");
    }

    #[test]
    fn event_size_is_bounded_and_counted() {
        let mut d = SseDecoder::new(16);
        let mut s = b"data: ".to_vec();
        s.extend(std::iter::repeat_n(b'x', 100));
        s.extend_from_slice(b"\n\ndata: ok\n\n");
        let ev = d.feed(&s);
        assert_eq!(ev.len(), 2);
        assert!(ev[0].truncated);
        assert!(ev[0].data.len() <= 16);
        assert_eq!(ev[1].data, "ok");
        assert!(!ev[1].truncated);
        assert!(d.stats().cap_hits >= 1);
    }

    fn corpus(path: &str) -> Option<Vec<u8>> {
        Some(crate::test_corpus::read(&format!("llm_sse/{path}")))
    }

    /// Real recorded OpenAI chat-completion streams: one `data:` line per event, ending with
    /// `[DONE]`; every other event is a JSON chunk of `chat.completion.chunk`.
    #[test]
    fn openai_recorded_streams() {
        let cases = [
            (
                "e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin",
                34,
            ),
            (
                "7e5ea4d12e7cc064399b6631415e65923f182256b6e6b752950a3aaa2ad2320a.bin",
                18,
            ),
            (
                "a491adda08c3d4fde95f5b2ee3f60f7f745f1a56d82e62f58031cc2add502380.bin",
                50,
            ),
            (
                "d615580118391ee13492193e3a8bb74642d23ac1ca13fe37cb6e889b66f759f6.bin",
                181,
            ),
            (
                "4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin",
                5,
            ),
        ];
        for (file, count) in cases {
            let Some(body) = corpus(&format!("openai-python/{file}")) else {
                eprintln!("corpus missing, skipping {file}");
                continue;
            };
            let ev = decode_sse(&body, DEFAULT_MAX_EVENT_BYTES);
            assert_eq!(ev.len(), count, "{file}");
            assert_eq!(ev.last().unwrap().data, "[DONE]", "{file}");
            for e in &ev[..ev.len() - 1] {
                assert!(
                    e.data.starts_with("{\"id\":\"chatcmpl-"),
                    "{file}: {}",
                    e.data
                );
                assert!(e.data.contains("\"object\":\"chat.completion.chunk\""));
                assert_eq!(e.event, "message");
            }
            // Byte-at-a-time feeding gives the same events.
            let mut d = SseDecoder::default();
            let mut one = Vec::new();
            for b in &body {
                one.extend(d.feed(std::slice::from_ref(b)));
            }
            one.extend(d.finish());
            assert_eq!(one, ev, "{file}");
        }
    }

    /// Real recorded Anthropic Messages streams: `event:` names match the JSON `type` field.
    /// The `.txt` fixtures end without the final blank line: 8 dispatched events + 1 at finish.
    #[test]
    fn anthropic_recorded_streams() {
        let cases = [
            ("basic_response.txt", 9),
            ("tool_use_response.txt", 15),
            ("stream-a-refusal.sse", 14),
            ("stream-b-fallback.sse", 21),
        ];
        for (file, count) in cases {
            let Some(body) = corpus(&format!("anthropic-sdk-python/{file}")) else {
                eprintln!("corpus missing, skipping {file}");
                continue;
            };
            let ev = decode_sse(&body, DEFAULT_MAX_EVENT_BYTES);
            assert_eq!(ev.len(), count, "{file}");
            assert_eq!(ev[0].event, "message_start");
            for e in &ev {
                assert!(
                    e.data.contains(&format!("\"type\":\"{}\"", e.event))
                        || e.data.contains(&format!("\"type\": \"{}\"", e.event)),
                    "{file}: {} / {}",
                    e.event,
                    e.data
                );
            }
        }
        if let Some(body) = corpus("anthropic-sdk-python/basic_response.txt") {
            let ev = decode_sse(&body, DEFAULT_MAX_EVENT_BYTES);
            let text: String = ev
                .iter()
                .filter(|e| e.event == "content_block_delta")
                .filter_map(|e| e.data.split("\"text\":\"").nth(1))
                .filter_map(|t| t.split('"').next())
                .collect();
            assert_eq!(text, "Hello there!");
            assert_eq!(ev.last().unwrap().event, "message_stop");
        }
    }

    proptest! {
        #[test]
        fn any_split_gives_same_events(
            body in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), Just(b'd'), Just(b'a'), Just(b't'), any::<u8>()],
                0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let whole = decode_sse(&body, 64);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort();
            let mut d = SseDecoder::new(64);
            let mut got = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([body.len()]) {
                got.extend(d.feed(&body[prev..c]));
                prev = c;
            }
            got.extend(d.finish());
            prop_assert_eq!(got, whole);
        }
    }
}
