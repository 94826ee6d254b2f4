//! Push parser for the client (frontend) side: the untyped first messages (SSLRequest,
//! GSSENCRequest, CancelRequest, StartupMessage) and then typed messages.

use super::config::PgConfig;
use super::framing::{BodyContext, FramingMode, TypedFramer};
use super::message::{FrontendMessage, PgFrame, PgMessage};
use super::wire::{PgWireError, WireReader, be_u32};
use crate::protocols::parsed::{FrameParser, Parsed};

/// Protocol code of SSLRequest.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// Protocol code of GSSENCRequest.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// Protocol code of CancelRequest.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Longest StartupMessage accepted (the server's own limit is 10,000 bytes).
pub const MAX_STARTUP_LEN: u32 = 10_000;
/// Longest startup parameter name or value kept.
const MAX_PARAM_LEN: usize = 256;
/// Longest statement/portal name kept.
const MAX_NAME_LEN: usize = 256;

/// Whether `tag` is a typed frontend message type.
pub fn is_frontend_type(tag: u8) -> bool {
    matches!(
        tag,
        b'B' | b'C'
            | b'd'
            | b'c'
            | b'f'
            | b'D'
            | b'E'
            | b'H'
            | b'F'
            | b'p'
            | b'P'
            | b'Q'
            | b'S'
            | b'X'
    )
}

/// Parser of the client-to-server byte stream.
#[derive(Debug, Clone)]
pub struct PgFrontendParser {
    config: PgConfig,
    /// True until a StartupMessage (or a typed message, when attached mid-connection) was seen.
    awaiting_startup: bool,
    framer: TypedFramer,
}

impl PgFrontendParser {
    /// A parser at the start of a connection (expects untyped startup messages first).
    pub fn new(config: PgConfig) -> Self {
        PgFrontendParser {
            config,
            awaiting_startup: true,
            framer: TypedFramer::new("frontend"),
        }
    }

    /// What was wrong with the last bytes reported `Invalid`.
    pub fn last_error(&self) -> Option<&PgWireError> {
        self.framer.last_error.as_ref()
    }

    /// Forget the message boundary (bytes were lost): scan for the next plausible message.
    pub fn resync(&mut self) {
        self.awaiting_startup = false;
        self.framer.mode = FramingMode::Resync;
        self.framer.skip_remaining = 0;
    }

    /// Bytes of an oversized message still owed; a gap can pay them off.
    pub fn skip_remaining(&self) -> u64 {
        self.framer.skip_remaining
    }

    /// Skip the next `n` bytes (the rest of a message whose start was lost or dropped).
    pub fn skip_bytes(&mut self, n: u64) {
        self.framer.skip_remaining = self.framer.skip_remaining.saturating_add(n);
    }

    /// Account `n` lost bytes against an oversized message being skipped; returns the rest of
    /// the gap that fell past that message's end.
    pub fn absorb_gap(&mut self, n: u64) -> u64 {
        let paid = n.min(self.framer.skip_remaining);
        self.framer.skip_remaining -= paid;
        n - paid
    }

    fn parse_untyped(&mut self, buf: &[u8]) -> Option<Parsed<PgFrame>> {
        let (Some(len), Some(code)) = (be_u32(buf, 0), be_u32(buf, 4)) else {
            // Fewer than 8 bytes: a typed message may still be complete here.
            return match buf.first() {
                Some(&t) if is_frontend_type(t) && buf.len() >= 5 => None,
                _ => Some(Parsed::NeedMore),
            };
        };
        let frame = |message: FrontendMessage, n: usize| Parsed::Frame {
            frame: PgFrame {
                message: PgMessage::Frontend(message),
                wire_len: n,
            },
            consumed: n,
        };
        match (code, len) {
            (SSL_REQUEST_CODE, 8) => return Some(frame(FrontendMessage::SslRequest, 8)),
            (GSSENC_REQUEST_CODE, 8) => return Some(frame(FrontendMessage::GssEncRequest, 8)),
            (CANCEL_REQUEST_CODE, 16) => {
                let Some(pid) = be_u32(buf, 8) else {
                    return Some(Parsed::NeedMore);
                };
                if buf.len() < 16 {
                    return Some(Parsed::NeedMore);
                }
                return Some(frame(
                    FrontendMessage::CancelRequest {
                        process_id: pid as i32,
                    },
                    16,
                ));
            }
            _ => {}
        }
        if code >> 16 == 3 {
            if !(8..=MAX_STARTUP_LEN).contains(&len) {
                self.framer.last_error = Some(PgWireError::BadLength {
                    tag: 0,
                    len: i64::from(len),
                });
                return Some(Parsed::Invalid { skip: 1 });
            }
            let Some(body) = buf.get(8..len as usize) else {
                return Some(Parsed::NeedMore);
            };
            return Some(match self.startup_params(body) {
                Ok((params, truncated)) => {
                    self.awaiting_startup = false;
                    frame(
                        FrontendMessage::Startup {
                            major: 3,
                            minor: (code & 0xffff) as u16,
                            params,
                            truncated,
                        },
                        len as usize,
                    )
                }
                Err(e) => {
                    self.framer.last_error = Some(e);
                    Parsed::Invalid { skip: 1 }
                }
            });
        }
        // Not an untyped message: maybe a typed one (attached mid-connection).
        if buf.first().is_some_and(|&t| is_frontend_type(t))
            && be_u32(buf, 1).is_some_and(|l| l >= 4)
        {
            return None;
        }
        self.framer.last_error = Some(PgWireError::UnsupportedProtocol {
            code,
            major: code >> 16,
        });
        Some(Parsed::Invalid { skip: 1 })
    }

    fn startup_params(&self, body: &[u8]) -> Result<(Vec<(String, String)>, bool), PgWireError> {
        let mut r = WireReader::new(0, body);
        let mut params = Vec::new();
        let mut truncated = false;
        loop {
            let name = r.cstr("startup parameter name", MAX_PARAM_LEN)?;
            if name.is_empty() {
                break;
            }
            let value = r.cstr("startup parameter value", MAX_PARAM_LEN)?;
            if params.len() < self.config.max_startup_params {
                params.push((name, value));
            } else {
                truncated = true;
            }
        }
        r.finish()?;
        Ok((params, truncated))
    }
}

impl FrameParser for PgFrontendParser {
    type Frame = PgFrame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<PgFrame> {
        if self.awaiting_startup && self.framer.skip_remaining == 0 {
            match self.parse_untyped(buf) {
                Some(p) => return p,
                None => self.awaiting_startup = false,
            }
        }
        let mut ctx = BodyContext {
            config: &self.config,
            sample_rows: false,
        };
        self.framer
            .parse_typed(buf, &mut ctx, is_frontend_type, parse_frontend_body)
    }
}

/// Parse the body of a typed frontend message. `cut`: only a prefix of the body is present.
pub(crate) fn parse_frontend_body(
    ctx: &mut BodyContext<'_>,
    tag: u8,
    body: &[u8],
    cut: bool,
) -> Result<PgMessage, PgWireError> {
    let max_sql = ctx.config.max_sql_len;
    let mut r = WireReader::new(tag, body);
    let msg = match tag {
        b'Q' => {
            let (sql, truncated) = if cut {
                let (s, _) = r.cstr_or_rest(max_sql);
                (s, true)
            } else {
                let s = r.cstr("query", usize::MAX)?;
                r.finish()?;
                let long = s.len() > max_sql;
                (cut_string(s, max_sql), long)
            };
            FrontendMessage::Query { sql, truncated }
        }
        b'P' => {
            let statement = r.cstr("statement name", MAX_NAME_LEN)?;
            if cut {
                let (sql, _) = r.cstr_or_rest(max_sql);
                FrontendMessage::Parse {
                    statement,
                    sql,
                    param_types: 0,
                    truncated: true,
                }
            } else {
                let sql = r.cstr("query", usize::MAX)?;
                let param_types = r.u16("parameter type count")?;
                r.bytes(usize::from(param_types) * 4, "parameter types")?;
                r.finish()?;
                let long = sql.len() > max_sql;
                FrontendMessage::Parse {
                    statement,
                    sql: cut_string(sql, max_sql),
                    param_types,
                    truncated: long,
                }
            }
        }
        b'B' => {
            let portal = r.cstr("portal name", MAX_NAME_LEN)?;
            let statement = r.cstr("statement name", MAX_NAME_LEN)?;
            let formats = r.u16("parameter format count")?;
            r.bytes(usize::from(formats) * 2, "parameter formats")?;
            let params = r.u16("parameter count")?;
            for _ in 0..params {
                let len = r.i32("parameter length")?;
                if len < -1 {
                    return Err(PgWireError::InvalidField {
                        tag,
                        field: "parameter length",
                    });
                }
                if len > 0 {
                    r.bytes(len as usize, "parameter value")?;
                }
            }
            let n = r.u16("result format count")?;
            let mut result_formats = Vec::new();
            for _ in 0..n {
                let f = r.i16("result format")?;
                if result_formats.len() < ctx.config.max_sample_columns {
                    result_formats.push(f);
                }
            }
            r.finish()?;
            FrontendMessage::Bind {
                portal,
                statement,
                params,
                result_formats,
            }
        }
        b'D' | b'C' => {
            let target = r.u8("target")?;
            if target != b'S' && target != b'P' {
                return Err(PgWireError::InvalidField {
                    tag,
                    field: "target (S or P)",
                });
            }
            let name = r.cstr("name", MAX_NAME_LEN)?;
            r.finish()?;
            if tag == b'D' {
                FrontendMessage::Describe { target, name }
            } else {
                FrontendMessage::Close { target, name }
            }
        }
        b'E' => {
            let portal = r.cstr("portal name", MAX_NAME_LEN)?;
            let max_rows = r.i32("row limit")?;
            r.finish()?;
            FrontendMessage::Execute { portal, max_rows }
        }
        b'S' | b'H' | b'X' | b'c' => {
            r.finish()?;
            match tag {
                b'S' => FrontendMessage::Sync,
                b'H' => FrontendMessage::Flush,
                b'X' => FrontendMessage::Terminate,
                _ => FrontendMessage::CopyDone,
            }
        }
        b'F' => FrontendMessage::FunctionCall {
            oid: r.i32("function oid")?,
        },
        b'd' => FrontendMessage::CopyData { len: body.len() },
        b'f' => FrontendMessage::CopyFail {
            reason: r.cstr_or_rest(MAX_NAME_LEN).0,
        },
        b'p' => FrontendMessage::Password { len: body.len() },
        _ => {
            return Err(PgWireError::UnknownType {
                direction: "frontend",
                tag,
            });
        }
    };
    Ok(PgMessage::Frontend(msg))
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut_string(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while at > 0 && !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}
