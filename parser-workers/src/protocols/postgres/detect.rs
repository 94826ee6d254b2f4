//! Content-based detection of a PostgreSQL client stream (never by port): a StartupMessage
//! for protocol 3.x, an SSLRequest/GSSENCRequest/CancelRequest, or — when attaching to a
//! connection already running — a well-formed Query, Parse or Bind message.

use super::config::PgConfig;
use super::framing::BodyContext;
use super::frontend::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_LEN, SSL_REQUEST_CODE,
    parse_frontend_body,
};
use super::wire::be_u32;

/// Longest typed message accepted as evidence when attaching mid-connection.
const MAX_TYPED_PROBE_LEN: u32 = 1 << 20;

/// Whether `buf` (the first client bytes seen) looks like a PostgreSQL frontend.
pub fn looks_like_postgres_client(buf: &[u8]) -> bool {
    looks_like_untyped(buf) || looks_like_typed(buf)
}

fn looks_like_untyped(buf: &[u8]) -> bool {
    let (Some(len), Some(code)) = (be_u32(buf, 0), be_u32(buf, 4)) else {
        return false;
    };
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => len == 8,
        CANCEL_REQUEST_CODE => len == 16,
        _ if code >> 16 == 3 && (code & 0xffff) <= 2 => {
            if !(9..=MAX_STARTUP_LEN).contains(&len) {
                return false;
            }
            // The parameters: NUL-terminated printable names; the first must be present.
            let body = buf.get(8..(len as usize).min(buf.len())).unwrap_or(&[]);
            let Some(first) = body.split(|&b| b == 0).next() else {
                return false;
            };
            !first.is_empty() && first.iter().all(|b| b.is_ascii_graphic())
        }
        _ => false,
    }
}

fn looks_like_typed(buf: &[u8]) -> bool {
    let (Some(&tag), Some(len)) = (buf.first(), be_u32(buf, 1)) else {
        return false;
    };
    if !matches!(tag, b'Q' | b'P' | b'B') || !(5..=MAX_TYPED_PROBE_LEN).contains(&len) {
        return false;
    }
    let end = 1 + len as usize;
    match buf.get(5..end) {
        Some(body) => {
            let config = PgConfig {
                max_message_len: usize::MAX,
                ..PgConfig::default()
            };
            let mut ctx = BodyContext {
                config: &config,
                sample_rows: false,
            };
            if parse_frontend_body(&mut ctx, tag, body, false).is_err() {
                return false;
            }
            // Query/Parse text must read as text.
            match tag {
                b'Q' => is_texty(body.get(..body.len().saturating_sub(1)).unwrap_or(&[])),
                b'P' => body.split(|&b| b == 0).nth(1).is_some_and(is_texty),
                _ => true,
            }
        }
        // Only a prefix is here: it must be text so far (Query only).
        None => tag == b'Q' && buf.len() >= 16 && is_texty(buf.get(5..).unwrap_or(&[])),
    }
}

/// Non-empty, valid UTF-8 (allowing a character cut at the end), no control bytes but
/// whitespace.
fn is_texty(b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid
        && b.iter()
            .all(|&c| c >= 0x20 || matches!(c, b'\t' | b'\n' | b'\r'))
}
