//! `TlsHelloSniffer`: feeds one direction's bytes to a `TlsHelloParser` through a bounded
//! buffer until the hello of that direction is found, then stops (the rest is encrypted).

use super::hello::TlsHello;
use super::record::{MAX_RECORD_LEN, TlsFrame, TlsHelloParser};
use crate::protocols::parsed::{FrameParser, Parsed};

/// Counters of one sniffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSnifferStats {
    /// Bytes fed.
    pub bytes: u64,
    /// Bytes skipped as not TLS.
    pub invalid_bytes: u64,
    /// Times the record buffer was full without a whole record (it was dropped).
    pub buffer_cap_hits: u64,
}

/// Finds the first ClientHello/ServerHello in one direction.
#[derive(Debug, Clone, Default)]
pub struct TlsHelloSniffer {
    parser: TlsHelloParser,
    buf: Vec<u8>,
    hello: Option<TlsHello>,
    stats: TlsSnifferStats,
}

impl TlsHelloSniffer {
    /// A sniffer around `parser`.
    pub fn with_parser(parser: TlsHelloParser) -> Self {
        TlsHelloSniffer {
            parser,
            ..TlsHelloSniffer::default()
        }
    }

    /// The hello found, if any.
    pub fn hello(&self) -> Option<&TlsHello> {
        self.hello.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> &TlsSnifferStats {
        &self.stats
    }

    /// The parser (for its own counters and last error).
    pub fn parser(&self) -> &TlsHelloParser {
        &self.parser
    }

    /// Feed bytes; returns the hello when this call found it.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<&TlsHello> {
        self.stats.bytes += bytes.len() as u64;
        if self.hello.is_some() {
            return None;
        }
        let cap = MAX_RECORD_LEN + 5;
        let mut input = bytes;
        while !input.is_empty() && self.hello.is_none() {
            let take = cap.saturating_sub(self.buf.len()).min(input.len());
            let (now, rest) = input.split_at(take);
            self.buf.extend_from_slice(now);
            input = rest;
            let mut pos = 0usize;
            while pos < self.buf.len() {
                match self.parser.parse(self.buf.get(pos..).unwrap_or(&[])) {
                    Parsed::NeedMore => break,
                    Parsed::Invalid { skip } => {
                        let skip = skip.max(1).min(self.buf.len() - pos);
                        self.stats.invalid_bytes += skip as u64;
                        pos += skip;
                    }
                    Parsed::Frame { frame, consumed } => {
                        pos = pos.saturating_add(consumed.max(1)).min(self.buf.len());
                        if let TlsFrame::ClientHello(h) | TlsFrame::ServerHello(h) = frame {
                            self.hello = Some(h);
                            break;
                        }
                    }
                }
            }
            self.buf.drain(..pos.min(self.buf.len()));
            if self.hello.is_some() {
                self.buf = Vec::new();
                return self.hello.as_ref();
            }
            if self.buf.len() >= cap {
                self.stats.buffer_cap_hits += 1;
                self.buf.clear();
            }
        }
        None
    }
}
