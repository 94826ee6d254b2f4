//! Content-Encoding decoding (gzip, deflate as zlib or raw, br, zstd, stacked lists such as
//! "gzip, br") with a hard bound on the decoded size: a decompression bomb stops at the cap and
//! says so through `DecodedBody::truncated`.

use std::io::Read;

use thiserror::Error;

/// One content coding named in a `Content-Encoding` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    /// `identity` (or an empty element): bytes unchanged.
    Identity,
    /// `gzip` / `x-gzip` (RFC 1952).
    Gzip,
    /// `deflate`: zlib-wrapped (RFC 1950) as the spec says, or raw deflate (RFC 1951) as some
    /// servers send; told apart by the zlib header check.
    Deflate,
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878).
    Zstd,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentDecodeError {
    /// The header named a coding this decoder does not know.
    #[error("unknown content coding {0:?}")]
    UnknownCoding(String),
    /// The header stacks more codings than we are willing to undo.
    #[error("too many stacked content codings ({0}, at most {MAX_STACKED_CODINGS})")]
    TooManyCodings(usize),
    /// The compressed bytes are corrupt for the named coding.
    #[error("corrupt {coding:?} data: {reason}")]
    Corrupt {
        coding: ContentCoding,
        reason: String,
    },
}

/// At most this many codings in one header are undone (more is an attack or a bug).
pub const MAX_STACKED_CODINGS: usize = 4;

/// A decoded body, bounded by the cap given to [`decode_content`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedBody {
    /// The decoded bytes (at most `cap` of them).
    pub bytes: Vec<u8>,
    /// True when decoding stopped at the cap (more output was there) or the input ended early
    /// (a truncated capture): `bytes` is then a prefix of the real decoded body.
    pub truncated: bool,
}

/// Parse a `Content-Encoding` header value into codings, in the order they were applied.
pub fn parse_content_encoding(value: &str) -> Result<Vec<ContentCoding>, ContentDecodeError> {
    let mut codings = Vec::new();
    for element in value.split(',') {
        let name = element.trim().to_ascii_lowercase();
        let coding = match name.as_str() {
            "" | "identity" => continue,
            "gzip" | "x-gzip" => ContentCoding::Gzip,
            "deflate" => ContentCoding::Deflate,
            "br" => ContentCoding::Brotli,
            "zstd" => ContentCoding::Zstd,
            _ => return Err(ContentDecodeError::UnknownCoding(name)),
        };
        codings.push(coding);
        if codings.len() > MAX_STACKED_CODINGS {
            return Err(ContentDecodeError::TooManyCodings(codings.len()));
        }
    }
    Ok(codings)
}

/// Undo the codings of a `Content-Encoding` header value (applied left to right, so undone right
/// to left), producing at most `cap` bytes. `input_truncated` says the input is itself only a
/// prefix (capture cap hit): an early end of stream is then reported as `truncated`, not corrupt.
pub fn decode_content(
    content_encoding: &str,
    input: &[u8],
    cap: usize,
    input_truncated: bool,
) -> Result<DecodedBody, ContentDecodeError> {
    let codings = parse_content_encoding(content_encoding)?;
    let mut current = DecodedBody {
        bytes: input.to_vec(),
        truncated: input_truncated,
    };
    if current.bytes.len() > cap {
        current.bytes.truncate(cap);
        current.truncated = true;
    }
    for coding in codings.into_iter().rev() {
        current = decode_one(coding, &current.bytes, cap, current.truncated)?;
    }
    Ok(current)
}

/// Undo a single coding, bounded by `cap` output bytes.
pub fn decode_one(
    coding: ContentCoding,
    input: &[u8],
    cap: usize,
    input_truncated: bool,
) -> Result<DecodedBody, ContentDecodeError> {
    match coding {
        ContentCoding::Identity => {
            let keep = input.len().min(cap);
            Ok(DecodedBody {
                bytes: input.get(..keep).unwrap_or_default().to_vec(),
                truncated: input_truncated || keep < input.len(),
            })
        }
        ContentCoding::Gzip => read_bounded(
            coding,
            flate2::read::MultiGzDecoder::new(input),
            cap,
            input_truncated,
        ),
        ContentCoding::Deflate => {
            if looks_like_zlib(input) {
                read_bounded(
                    coding,
                    flate2::read::ZlibDecoder::new(input),
                    cap,
                    input_truncated,
                )
            } else {
                read_bounded(
                    coding,
                    flate2::read::DeflateDecoder::new(input),
                    cap,
                    input_truncated,
                )
            }
        }
        ContentCoding::Brotli => read_bounded(
            coding,
            brotli_decompressor::Decompressor::new(input, 4096),
            cap,
            input_truncated,
        ),
        ContentCoding::Zstd => match zstd::stream::read::Decoder::new(input) {
            Ok(decoder) => read_bounded(coding, decoder, cap, input_truncated),
            Err(err) => Err(ContentDecodeError::Corrupt {
                coding,
                reason: err.to_string(),
            }),
        },
    }
}

/// RFC 1950 header check: compression method 8 and the 16-bit header a multiple of 31.
fn looks_like_zlib(input: &[u8]) -> bool {
    match (input.first(), input.get(1)) {
        (Some(&cmf), Some(&flg)) => {
            cmf & 0x0f == 8 && (cmf >> 4) <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Read at most `cap` bytes from `reader`; one extra byte tells whether more output existed.
fn read_bounded<R: Read>(
    coding: ContentCoding,
    reader: R,
    cap: usize,
    input_truncated: bool,
) -> Result<DecodedBody, ContentDecodeError> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut limited = reader.take(limit);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                // A capture cut short ends the compressed stream early: keep what came out.
                if input_truncated {
                    break;
                }
                return Err(ContentDecodeError::Corrupt {
                    coding,
                    reason: err.to_string(),
                });
            }
        }
    }
    let over_cap = bytes.len() > cap;
    bytes.truncate(cap);
    Ok(DecodedBody {
        bytes,
        truncated: over_cap || input_truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    // The RFC 1952 example-free way to test gzip: a fixed gzip member of "hello\n" produced by
    // GNU gzip 1.12 (`printf 'hello\n' | gzip -n | xxd -i`).
    const GNU_GZIP_HELLO: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0xe7, 0x02, 0x00, 0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn gnu_gzip_member_decodes() {
        let out = decode_content("gzip", GNU_GZIP_HELLO, 1024, false).unwrap();
        assert_eq!(out.bytes, b"hello\n");
        assert!(!out.truncated);
    }

    #[test]
    fn deflate_zlib_and_raw_both_decode() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"zlib body").unwrap();
        let zlib = z.finish().unwrap();
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        r.write_all(b"raw body").unwrap();
        let raw = r.finish().unwrap();
        assert_eq!(
            decode_content("deflate", &zlib, 100, false).unwrap().bytes,
            b"zlib body"
        );
        assert_eq!(
            decode_content("deflate", &raw, 100, false).unwrap().bytes,
            b"raw body"
        );
    }

    #[test]
    fn brotli_rfc7932_empty_stream_and_zstd_roundtrip() {
        // RFC 7932 section 10 notes a single byte 0x06 is a valid empty brotli stream.
        let empty = decode_content("br", &[0x06], 100, false).unwrap();
        assert!(empty.bytes.is_empty());
        // "hello" compressed by the reference brotli CLI (`printf hello | brotli -c | xxd -i`, Debian brotli 1.0.9).
        let hello_br: &[u8] = &[0x0f, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        assert_eq!(
            decode_content("br", hello_br, 100, false).unwrap().bytes,
            b"hello"
        );
        let z = zstd::stream::encode_all(&b"zstd body"[..], 3).unwrap();
        assert_eq!(
            decode_content("zstd", &z, 100, false).unwrap().bytes,
            b"zstd body"
        );
    }

    #[test]
    fn stacked_codings_are_undone_right_to_left() {
        let inner = gzip(b"stacked!");
        let outer = zstd::stream::encode_all(&inner[..], 3).unwrap();
        let out = decode_content("gzip, zstd", &outer, 100, false).unwrap();
        assert_eq!(out.bytes, b"stacked!");
    }

    #[test]
    fn bomb_stops_at_cap_and_says_so() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20_000);
        let out = decode_content("gzip", &bomb, 4096, false).unwrap();
        assert_eq!(out.bytes.len(), 4096);
        assert!(out.truncated);
    }

    #[test]
    fn truncated_input_keeps_prefix_corrupt_input_errors() {
        let data: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let full = gzip(&data);
        let half = &full[..full.len() / 2];
        let out = decode_content("gzip", half, 1 << 20, true).unwrap();
        assert!(out.truncated);
        assert!(!out.bytes.is_empty() && data.starts_with(&out.bytes));
        assert!(matches!(
            decode_content("gzip", b"not gzip at all", 100, false),
            Err(ContentDecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_content("compress", b"x", 100, false),
            Err(ContentDecodeError::UnknownCoding(_))
        ));
        assert!(matches!(
            decode_content("gzip,gzip,gzip,gzip,gzip", b"x", 100, false),
            Err(ContentDecodeError::TooManyCodings(5))
        ));
    }

    #[test]
    fn identity_is_capped() {
        let out = decode_content("identity", b"abcdef", 3, false).unwrap();
        assert_eq!(out.bytes, b"abc");
        assert!(out.truncated);
    }
}
