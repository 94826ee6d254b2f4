//! Push parser for the server (backend) side: the one-byte answer to SSLRequest/GSSENCRequest,
//! then typed messages. DataRow values are sampled only while the stitcher asks for samples.

use super::config::PgConfig;
use super::framing::{BodyContext, FramingMode, TypedFramer};
use super::message::{
    AuthRequest, BackendMessage, PgColumn, PgFrame, PgMessage, PgNotice, SampledBytes,
};
use super::wire::{PgWireError, WireReader};
use crate::protocols::parsed::{FrameParser, Parsed};

/// Longest name-like string kept (parameter names, channels, column names).
const MAX_NAME_LEN: usize = 256;
/// Longest ErrorResponse/NoticeResponse field kept.
const MAX_FIELD_LEN: usize = 1024;

/// Whether `tag` is a typed backend message type.
pub fn is_backend_type(tag: u8) -> bool {
    matches!(
        tag,
        b'R' | b'K'
            | b'S'
            | b'Z'
            | b'T'
            | b'D'
            | b'C'
            | b'I'
            | b'E'
            | b'N'
            | b'1'
            | b'2'
            | b'3'
            | b'n'
            | b't'
            | b's'
            | b'G'
            | b'H'
            | b'W'
            | b'd'
            | b'c'
            | b'A'
            | b'V'
            | b'v'
    )
}

/// Parser of the server-to-client byte stream.
#[derive(Debug, Clone)]
pub struct PgBackendParser {
    config: PgConfig,
    expect_encryption_reply: bool,
    sample_rows: bool,
    framer: TypedFramer,
}

impl PgBackendParser {
    /// A parser at the start of a connection.
    pub fn new(config: PgConfig) -> Self {
        PgBackendParser {
            config,
            expect_encryption_reply: false,
            sample_rows: true,
            framer: TypedFramer::new("backend"),
        }
    }

    /// The client sent SSLRequest/GSSENCRequest: the next byte is the one-byte answer.
    pub fn expect_encryption_reply(&mut self) {
        self.expect_encryption_reply = true;
    }

    /// Whether DataRow values are copied (off once the stitcher has its samples).
    pub fn set_row_sampling(&mut self, on: bool) {
        self.sample_rows = on;
    }

    /// What was wrong with the last bytes reported `Invalid`.
    pub fn last_error(&self) -> Option<&PgWireError> {
        self.framer.last_error.as_ref()
    }

    /// Forget the message boundary (bytes were lost): scan for the next plausible message.
    pub fn resync(&mut self) {
        self.expect_encryption_reply = false;
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

    /// Account `n` lost bytes against an oversized message being skipped; returns the rest.
    pub fn absorb_gap(&mut self, n: u64) -> u64 {
        let paid = n.min(self.framer.skip_remaining);
        self.framer.skip_remaining -= paid;
        n - paid
    }
}

impl FrameParser for PgBackendParser {
    type Frame = PgFrame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<PgFrame> {
        if self.expect_encryption_reply {
            match buf.first() {
                None => return Parsed::NeedMore,
                Some(&b @ (b'S' | b'N' | b'G')) => {
                    self.expect_encryption_reply = false;
                    let message = PgMessage::Backend(BackendMessage::EncryptionReply {
                        accepted: b != b'N',
                        byte: b,
                    });
                    return Parsed::Frame {
                        frame: PgFrame {
                            message,
                            wire_len: 1,
                        },
                        consumed: 1,
                    };
                }
                // An ErrorResponse from a server that does not know the request: typed from here.
                Some(_) => self.expect_encryption_reply = false,
            }
        }
        let mut ctx = BodyContext {
            config: &self.config,
            sample_rows: self.sample_rows,
        };
        self.framer
            .parse_typed(buf, &mut ctx, is_backend_type, parse_backend_body)
    }
}

fn parse_notice(r: &mut WireReader<'_>) -> Result<PgNotice, PgWireError> {
    let mut n = PgNotice::default();
    loop {
        let code = r.u8("field code")?;
        if code == 0 {
            break;
        }
        let value = r.cstr("field value", MAX_FIELD_LEN)?;
        match code {
            b'V' => n.severity = value,
            b'S' if n.severity.is_empty() => n.severity = value,
            b'C' => n.code = value,
            b'M' => n.message = value,
            b'D' => n.detail = Some(value),
            b'H' => n.hint = Some(value),
            _ => {}
        }
    }
    Ok(n)
}

/// Parse the body of a typed backend message. `cut`: only a prefix of the body is present.
pub(crate) fn parse_backend_body(
    ctx: &mut BodyContext<'_>,
    tag: u8,
    body: &[u8],
    cut: bool,
) -> Result<PgMessage, PgWireError> {
    let cfg = ctx.config;
    let mut r = WireReader::new(tag, body);
    let msg = match tag {
        b'R' => {
            let code = r.i32("authentication code")?;
            let auth = AuthRequest::from_code(code);
            match auth {
                AuthRequest::Ok
                | AuthRequest::KerberosV5
                | AuthRequest::CleartextPassword
                | AuthRequest::Gss
                | AuthRequest::Sspi => r.finish()?,
                AuthRequest::Md5Password => {
                    r.bytes(4, "md5 salt")?;
                    r.finish()?;
                }
                AuthRequest::Sasl => loop {
                    if r.cstr("SASL mechanism", MAX_NAME_LEN)?.is_empty() {
                        r.finish()?;
                        break;
                    }
                },
                AuthRequest::GssContinue | AuthRequest::SaslContinue | AuthRequest::SaslFinal => {}
                AuthRequest::Other(_) => {
                    return Err(PgWireError::InvalidField {
                        tag,
                        field: "authentication code",
                    });
                }
            }
            BackendMessage::Authentication(auth)
        }
        b'K' => {
            let process_id = r.i32("process id")?;
            if r.remaining() < 4 || r.remaining() > 256 {
                return Err(PgWireError::InvalidField {
                    tag,
                    field: "cancel key length",
                });
            }
            BackendMessage::BackendKeyData { process_id }
        }
        b'S' => {
            let name = r.cstr("parameter name", MAX_NAME_LEN)?;
            let value = r.cstr("parameter value", MAX_FIELD_LEN)?;
            r.finish()?;
            BackendMessage::ParameterStatus { name, value }
        }
        b'Z' => {
            let status = r.u8("transaction status")?;
            if !matches!(status, b'I' | b'T' | b'E') {
                return Err(PgWireError::InvalidField {
                    tag,
                    field: "transaction status",
                });
            }
            r.finish()?;
            BackendMessage::ReadyForQuery { status }
        }
        b'T' => {
            let column_count = r.u16("column count")?;
            let mut columns = Vec::new();
            for _ in 0..column_count {
                let name = r.cstr("column name", MAX_NAME_LEN)?;
                let table_oid = r.i32("table oid")?;
                r.i16("column number")?;
                let type_oid = r.i32("type oid")?;
                r.i16("type size")?;
                r.i32("type modifier")?;
                let format = r.i16("format code")?;
                if format != 0 && format != 1 {
                    return Err(PgWireError::InvalidField {
                        tag,
                        field: "format code",
                    });
                }
                if columns.len() < cfg.max_sample_columns {
                    columns.push(PgColumn {
                        name,
                        table_oid,
                        type_oid,
                        format,
                    });
                }
            }
            r.finish()?;
            BackendMessage::RowDescription {
                columns,
                column_count,
            }
        }
        b'D' => parse_data_row(ctx, &mut r, cut)?,
        b'C' => {
            let (t, _) = if cut {
                r.cstr_or_rest(MAX_FIELD_LEN)
            } else {
                (r.cstr("command tag", MAX_FIELD_LEN)?, false)
            };
            if !cut {
                r.finish()?;
            }
            BackendMessage::CommandComplete { tag: t }
        }
        b'E' | b'N' => {
            let n = parse_notice(&mut r)?;
            r.finish()?;
            if tag == b'E' {
                BackendMessage::Error(n)
            } else {
                BackendMessage::Notice(n)
            }
        }
        b'I' | b'1' | b'2' | b'3' | b'n' | b's' | b'c' => {
            r.finish()?;
            match tag {
                b'I' => BackendMessage::EmptyQuery,
                b'1' => BackendMessage::ParseComplete,
                b'2' => BackendMessage::BindComplete,
                b'3' => BackendMessage::CloseComplete,
                b'n' => BackendMessage::NoData,
                b's' => BackendMessage::PortalSuspended,
                _ => BackendMessage::CopyDone,
            }
        }
        b't' => {
            let params = r.u16("parameter count")?;
            r.bytes(usize::from(params) * 4, "parameter types")?;
            r.finish()?;
            BackendMessage::ParameterDescription { params }
        }
        b'G' | b'H' | b'W' => {
            let format = r.u8("copy format")?;
            if format > 1 {
                return Err(PgWireError::InvalidField {
                    tag,
                    field: "copy format",
                });
            }
            let columns = r.u16("column count")?;
            r.bytes(usize::from(columns) * 2, "column formats")?;
            r.finish()?;
            match tag {
                b'G' => BackendMessage::CopyInResponse { columns },
                b'H' => BackendMessage::CopyOutResponse { columns },
                _ => BackendMessage::CopyBothResponse { columns },
            }
        }
        b'd' => BackendMessage::CopyData { len: body.len() },
        b'A' => {
            let process_id = r.i32("process id")?;
            let channel = r.cstr("channel", MAX_NAME_LEN)?;
            r.cstr("payload", 0)?;
            r.finish()?;
            BackendMessage::Notification {
                process_id,
                channel,
            }
        }
        b'V' => {
            let len = r.i32("result length")?;
            if len > 0 {
                r.bytes(len as usize, "result")?;
            }
            r.finish()?;
            BackendMessage::FunctionCallResponse
        }
        b'v' => {
            let newest_minor = r.i32("newest minor version")?;
            BackendMessage::NegotiateProtocolVersion { newest_minor }
        }
        _ => {
            return Err(PgWireError::UnknownType {
                direction: "backend",
                tag,
            });
        }
    };
    Ok(PgMessage::Backend(msg))
}

fn parse_data_row(
    ctx: &BodyContext<'_>,
    r: &mut WireReader<'_>,
    cut: bool,
) -> Result<BackendMessage, PgWireError> {
    let column_count = r.u16("column count")?;
    let mut values = Vec::new();
    let mut truncated = false;
    for _ in 0..column_count {
        let len = match r.i32("value length") {
            Ok(l) => l,
            Err(_) if cut => {
                truncated = true;
                break;
            }
            Err(e) => return Err(e),
        };
        if len < -1 {
            return Err(PgWireError::InvalidField {
                tag: b'D',
                field: "value length",
            });
        }
        let value = if len == -1 {
            None
        } else {
            let want = len as usize;
            let bytes = if cut && r.remaining() < want {
                truncated = true;
                r.bytes(r.remaining(), "value")?
            } else {
                r.bytes(want, "value")?
            };
            Some((bytes, want))
        };
        if ctx.sample_rows && values.len() < ctx.config.max_sample_columns {
            values.push(value.map(|(bytes, full_len)| {
                let keep = bytes
                    .get(..bytes.len().min(ctx.config.max_value_len))
                    .unwrap_or(&[]);
                SampledBytes {
                    bytes: keep.to_vec(),
                    full_len,
                }
            }));
        }
        if truncated {
            break;
        }
    }
    if !cut {
        r.finish()?;
    }
    Ok(BackendMessage::DataRow {
        column_count,
        values,
        truncated: truncated || cut,
    })
}
