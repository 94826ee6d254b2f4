//! Content-based detection of a TLS ClientHello at the start of a client stream.

use super::record::MAX_RECORD_LEN;

/// Whether `buf` starts like a TLS handshake record carrying a ClientHello.
pub fn looks_like_tls_client_hello(buf: &[u8]) -> bool {
    let Some(&[ct, major, minor, hi, lo]) = buf.get(..5).and_then(|h| <&[u8; 5]>::try_from(h).ok())
    else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if ct != 22 || major != 3 || minor > 4 || len == 0 || len > MAX_RECORD_LEN {
        return false;
    }
    if buf.get(5).is_some_and(|&t| t != 1) {
        return false;
    }
    // Handshake length: at least version + random + three length bytes.
    if let Some(&[a, b, c]) = buf.get(6..9).and_then(|h| <&[u8; 3]>::try_from(h).ok()) {
        let hs = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        if hs < 38 {
            return false;
        }
    }
    buf.get(9).is_none_or(|&v| v == 3)
}
