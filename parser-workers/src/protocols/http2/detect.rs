//! A cheap test for protocol detection: does this byte stream look like HTTP/2?

use super::frame::{CONNECTION_PREFACE, FrameHeader, frame_type};

/// The frame size every peer must accept (RFC 9113 SETTINGS_MAX_FRAME_SIZE default); first
/// frames are held to it.
const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// True for the client connection preface (or a prefix of at least 4 bytes of it), or for a
/// strictly plausible SETTINGS or HEADERS frame header at the start of `buf` (followed, when
/// the bytes are there, by another plausible frame header).
pub fn looks_like_http2(buf: &[u8]) -> bool {
    if buf.len() >= 4
        && (buf.starts_with(CONNECTION_PREFACE) || CONNECTION_PREFACE.starts_with(buf))
    {
        return true;
    }
    let Some(first) = FrameHeader::read(buf) else {
        return false;
    };
    if !matches!(first.frame_type, frame_type::SETTINGS | frame_type::HEADERS)
        || !first.is_plausible(DEFAULT_MAX_FRAME_SIZE)
    {
        return false;
    }
    match buf.get(first.frame_len()..).and_then(FrameHeader::read) {
        Some(next) => next.is_plausible(DEFAULT_MAX_FRAME_SIZE),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_and_frames_are_detected() {
        assert!(looks_like_http2(CONNECTION_PREFACE));
        assert!(looks_like_http2(b"PRI * HTTP"));
        // SETTINGS with one parameter, then a SETTINGS ACK.
        let mut settings = vec![0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert!(looks_like_http2(&settings));
        settings.extend_from_slice(&[0, 0, 0, 4, 1, 0, 0, 0, 0]);
        assert!(looks_like_http2(&settings));
        // HEADERS on stream 1 with END_HEADERS.
        assert!(looks_like_http2(&[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x82]));
    }

    #[test]
    fn other_protocols_are_not() {
        assert!(!looks_like_http2(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!looks_like_http2(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!looks_like_http2(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc
        ]));
        assert!(!looks_like_http2(b""));
        assert!(!looks_like_http2(b"PRI"));
        // HEADERS on stream 0 is not allowed.
        assert!(!looks_like_http2(&[0, 0, 1, 1, 4, 0, 0, 0, 0, 0x82]));
        // DATA is too ambiguous to detect on.
        assert!(!looks_like_http2(&[0, 0, 1, 0, 0, 0, 0, 0, 1, 0x82]));
    }
}
