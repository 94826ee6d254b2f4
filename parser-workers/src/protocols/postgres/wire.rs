//! Bounds-checked reading of PostgreSQL message bodies, and the errors bad bytes produce.

use thiserror::Error;

/// What was wrong with bytes that claimed to be PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PgWireError {
    /// A typed message's first byte is not a message type of this direction.
    #[error("unknown {direction} message type 0x{tag:02x}")]
    UnknownType { direction: &'static str, tag: u8 },
    /// A message length below the 4 bytes of the length field itself, or absurdly large.
    #[error("message type 0x{tag:02x} declares impossible length {len}")]
    BadLength { tag: u8, len: i64 },
    /// An untyped first message with a protocol code that is not 3.x nor a known request.
    #[error("unsupported PostgreSQL protocol code {code} (major version {major})")]
    UnsupportedProtocol { code: u32, major: u32 },
    /// A message body ended before a field it must contain.
    #[error("message type 0x{tag:02x} truncated while reading {field}")]
    Truncated { tag: u8, field: &'static str },
    /// A string field without its NUL terminator.
    #[error("message type 0x{tag:02x}: {field} is not NUL-terminated")]
    MissingNul { tag: u8, field: &'static str },
    /// A message body longer than its fields.
    #[error("message type 0x{tag:02x} has {extra} trailing bytes")]
    TrailingBytes { tag: u8, extra: usize },
    /// A field value outside what the protocol allows.
    #[error("message type 0x{tag:02x}: invalid {field}")]
    InvalidField { tag: u8, field: &'static str },
}

/// A cursor over one message body; every read checks bounds.
pub(crate) struct WireReader<'a> {
    body: &'a [u8],
    pos: usize,
    tag: u8,
}

impl<'a> WireReader<'a> {
    pub(crate) fn new(tag: u8, body: &'a [u8]) -> Self {
        WireReader { body, pos: 0, tag }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PgWireError> {
        let end = self.pos.checked_add(n).ok_or(PgWireError::Truncated {
            tag: self.tag,
            field,
        })?;
        let out = self.body.get(self.pos..end).ok_or(PgWireError::Truncated {
            tag: self.tag,
            field,
        })?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, PgWireError> {
        let b = self.bytes(1, field)?;
        b.first().copied().ok_or(PgWireError::Truncated {
            tag: self.tag,
            field,
        })
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, PgWireError> {
        let b = self.bytes(2, field)?;
        let arr: [u8; 2] = b.try_into().map_err(|_| PgWireError::Truncated {
            tag: self.tag,
            field,
        })?;
        Ok(i16::from_be_bytes(arr))
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, PgWireError> {
        Ok(self.i16(field)? as u16)
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, PgWireError> {
        let b = self.bytes(4, field)?;
        let arr: [u8; 4] = b.try_into().map_err(|_| PgWireError::Truncated {
            tag: self.tag,
            field,
        })?;
        Ok(i32::from_be_bytes(arr))
    }

    /// A NUL-terminated string, decoded lossily as UTF-8 and cut to `max` bytes.
    pub(crate) fn cstr(&mut self, field: &'static str, max: usize) -> Result<String, PgWireError> {
        let rest = self.body.get(self.pos..).unwrap_or(&[]);
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(PgWireError::MissingNul {
                tag: self.tag,
                field,
            })?;
        let raw = rest.get(..nul).unwrap_or(&[]);
        self.pos = self.pos.saturating_add(nul).saturating_add(1);
        Ok(lossy_prefix(raw, max))
    }

    /// Like `cstr`, but a missing NUL (a body cut by the size bound) gives the rest and `true`.
    pub(crate) fn cstr_or_rest(&mut self, max: usize) -> (String, bool) {
        let rest = self.body.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == 0) {
            Some(nul) => {
                let raw = rest.get(..nul).unwrap_or(&[]);
                self.pos = self.pos.saturating_add(nul).saturating_add(1);
                (lossy_prefix(raw, max), raw.len() > max)
            }
            None => {
                self.pos = self.body.len();
                (lossy_prefix(rest, max), true)
            }
        }
    }

    /// Error unless the body was read to its end.
    pub(crate) fn finish(&self) -> Result<(), PgWireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(PgWireError::TrailingBytes {
                tag: self.tag,
                extra,
            }),
        }
    }
}

/// At most `max` bytes of `raw` as UTF-8 (lossy), never splitting the cut inside a character
/// boundary check that could panic.
pub(crate) fn lossy_prefix(raw: &[u8], max: usize) -> String {
    let cut = raw.get(..max.min(raw.len())).unwrap_or(raw);
    String::from_utf8_lossy(cut).into_owned()
}

/// Big-endian u32 at `at`, if present.
pub(crate) fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let arr: [u8; 4] = b.try_into().ok()?;
    Some(u32::from_be_bytes(arr))
}
