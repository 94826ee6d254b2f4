//! Typed message framing shared by both directions: 1-byte type + 4-byte length, the size
//! bound (long messages parsed from a prefix, the rest skipped), and resynchronisation at the
//! next plausible message boundary after lost bytes.

use super::config::PgConfig;
use super::message::{PgFrame, PgMessage};
use super::wire::{PgWireError, be_u32};
use crate::protocols::parsed::Parsed;

/// Parses the body of one typed message. `cut` says the body is only a prefix (size bound).
pub(crate) type BodyParser =
    fn(&mut BodyContext<'_>, u8, &[u8], bool) -> Result<PgMessage, PgWireError>;

/// What a body parser may read besides the bytes: limits and whether rows are sampled.
pub(crate) struct BodyContext<'a> {
    pub(crate) config: &'a PgConfig,
    pub(crate) sample_rows: bool,
}

/// Where the framer stands in its byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingMode {
    /// At a message boundary.
    Synced,
    /// Boundary lost: scan for a plausible message.
    Resync,
}

/// Framing state of one direction.
#[derive(Debug, Clone)]
pub(crate) struct TypedFramer {
    pub(crate) mode: FramingMode,
    /// Bytes of an oversized message still to skip.
    pub(crate) skip_remaining: u64,
    pub(crate) last_error: Option<PgWireError>,
    pub(crate) direction: &'static str,
}

impl TypedFramer {
    pub(crate) fn new(direction: &'static str) -> Self {
        TypedFramer {
            mode: FramingMode::Synced,
            skip_remaining: 0,
            last_error: None,
            direction,
        }
    }

    /// Consume the rest of an oversized message, if any is owed.
    pub(crate) fn take_skip(&mut self, buf: &[u8]) -> Option<Parsed<PgFrame>> {
        if self.skip_remaining == 0 {
            return None;
        }
        if buf.is_empty() {
            return Some(Parsed::NeedMore);
        }
        let n = usize::try_from(self.skip_remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.skip_remaining = self.skip_remaining.saturating_sub(n as u64);
        Some(Parsed::Frame {
            frame: PgFrame {
                message: PgMessage::Continuation,
                wire_len: n,
            },
            consumed: n,
        })
    }

    fn invalid(&mut self, err: PgWireError, skip: usize) -> Parsed<PgFrame> {
        self.last_error = Some(err);
        Parsed::Invalid { skip: skip.max(1) }
    }

    /// Parse one typed message at the front of `buf` (synced mode) or scan for one (resync).
    pub(crate) fn parse_typed(
        &mut self,
        buf: &[u8],
        ctx: &mut BodyContext<'_>,
        is_type: fn(u8) -> bool,
        body: BodyParser,
    ) -> Parsed<PgFrame> {
        if let Some(p) = self.take_skip(buf) {
            return p;
        }
        if self.mode == FramingMode::Resync {
            return self.resync(buf, ctx, is_type, body);
        }
        let (Some(&tag), Some(len)) = (buf.first(), be_u32(buf, 1)) else {
            return match buf.first() {
                Some(&tag) if !is_type(tag) => {
                    self.mode = FramingMode::Resync;
                    self.invalid(
                        PgWireError::UnknownType {
                            direction: self.direction,
                            tag,
                        },
                        1,
                    )
                }
                _ => Parsed::NeedMore,
            };
        };
        if !is_type(tag) {
            self.mode = FramingMode::Resync;
            return self.invalid(
                PgWireError::UnknownType {
                    direction: self.direction,
                    tag,
                },
                1,
            );
        }
        if len < 4 || len > i32::MAX as u32 {
            self.mode = FramingMode::Resync;
            return self.invalid(
                PgWireError::BadLength {
                    tag,
                    len: i64::from(len),
                },
                1,
            );
        }
        let body_len = (len - 4) as usize;
        let max = ctx.config.max_message_len;
        if body_len > max {
            let Some(prefix) = buf.get(5..5 + max) else {
                return Parsed::NeedMore;
            };
            let message = match body(ctx, tag, prefix, true) {
                Ok(m) => m,
                Err(_) => PgMessage::Oversized {
                    tag,
                    declared_len: body_len + 5,
                },
            };
            self.skip_remaining = (body_len - max) as u64;
            return Parsed::Frame {
                frame: PgFrame {
                    message,
                    wire_len: 5 + max,
                },
                consumed: 5 + max,
            };
        }
        let Some(b) = buf.get(5..5 + body_len) else {
            return Parsed::NeedMore;
        };
        match body(ctx, tag, b, false) {
            Ok(message) => Parsed::Frame {
                frame: PgFrame {
                    message,
                    wire_len: 5 + body_len,
                },
                consumed: 5 + body_len,
            },
            Err(e) => self.invalid(e, 5 + body_len),
        }
    }

    fn resync(
        &mut self,
        buf: &[u8],
        ctx: &mut BodyContext<'_>,
        is_type: fn(u8) -> bool,
        body: BodyParser,
    ) -> Parsed<PgFrame> {
        let plausible_header = |b: &[u8]| -> bool {
            match (b.first(), be_u32(b, 1)) {
                (Some(&t), Some(l)) => {
                    is_type(t) && l >= 4 && (l as usize - 4) <= ctx.config.max_message_len
                }
                _ => false,
            }
        };
        if buf.is_empty() {
            return Parsed::NeedMore;
        }
        let wait = |i: usize| {
            if i == 0 {
                Parsed::NeedMore
            } else {
                Parsed::Invalid { skip: i }
            }
        };
        for i in 0..buf.len() {
            let Some(rest) = buf.get(i..) else { break };
            let (Some(&tag), Some(len)) = (rest.first(), be_u32(rest, 1)) else {
                return wait(i);
            };
            if !is_type(tag) || len < 4 || (len as usize - 4) > ctx.config.resync_max_len {
                continue;
            }
            let total = 1 + len as usize;
            let Some(b) = rest.get(5..total) else {
                return wait(i);
            };
            // The cheap check first: the next message's header must be plausible too.
            let after = rest.get(total..).unwrap_or(&[]);
            if after.len() >= 5 {
                if !plausible_header(after) {
                    continue;
                }
            } else if !after.is_empty() {
                return wait(i);
            }
            // Then the body itself, without sampling.
            let mut probe = BodyContext {
                config: ctx.config,
                sample_rows: false,
            };
            if body(&mut probe, tag, b, false).is_err() {
                continue;
            }
            if i > 0 {
                return Parsed::Invalid { skip: i };
            }
            self.mode = FramingMode::Synced;
            return self.parse_typed(buf, ctx, is_type, body);
        }
        // Nothing plausible: keep the last 4 bytes, which may start a header.
        Parsed::Invalid {
            skip: buf.len().saturating_sub(4).max(1),
        }
    }
}
