//! Tests of message framing and the streaming buffer: hand-built streams, caps, bad framing,
//! compression, and property tests that any split gives the same messages and that arbitrary
//! bytes never panic.

use std::io::Write;

use proptest::prelude::*;

use crate::protocols::parsed::{FrameParser, Parsed};

use super::compression::{GrpcEncoding, decompress_message};
use super::error::GrpcMessageError;
use super::message::{
    GrpcFrame, GrpcMessage, GrpcMessageParser, GrpcMessageStream, split_messages,
};

/// Frame `body` as one gRPC message.
pub(super) fn frame(compressed: bool, body: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn plain(body: &[u8]) -> GrpcMessage {
    GrpcMessage {
        compressed: false,
        declared_len: body.len() as u32,
        payload: body.to_vec(),
        oversized: false,
    }
}

#[test]
fn parser_reports_need_more_then_a_frame() {
    let mut parser = GrpcMessageParser::default();
    let bytes = frame(false, b"\x0a\x03abc");
    for cut in 0..bytes.len() {
        assert_eq!(
            parser.parse(bytes.get(..cut).unwrap_or_default()),
            Parsed::NeedMore,
            "cut at {cut}"
        );
    }
    assert_eq!(
        parser.parse(&bytes),
        Parsed::Frame {
            frame: GrpcFrame::Message(plain(b"\x0a\x03abc")),
            consumed: bytes.len()
        }
    );
    // Empty messages are legal (e.g. google.protobuf.Empty).
    assert_eq!(
        parser.parse(&[0, 0, 0, 0, 0]),
        Parsed::Frame {
            frame: GrpcFrame::Message(plain(b"")),
            consumed: 5
        }
    );
    assert_eq!(parser.counters().messages, 2);
}

#[test]
fn many_messages_in_one_buffer() {
    let mut stream = frame(false, b"one");
    stream.extend(frame(true, b"two"));
    stream.extend(frame(false, b""));
    let split = split_messages(&stream, 1024);
    assert_eq!(split.error, None);
    assert_eq!(split.messages.len(), 3);
    assert_eq!(
        split
            .messages
            .get(1)
            .map(|m| (m.compressed, m.payload.as_slice())),
        Some((true, &b"two"[..]))
    );
}

#[test]
fn oversized_messages_are_skipped_and_counted_without_buffering() {
    let mut bytes = frame(false, &[7u8; 100]);
    bytes.extend(frame(false, b"after"));
    let mut stream = GrpcMessageStream::new(10);
    let mut out = Vec::new();
    for chunk in bytes.chunks(3) {
        stream.push(chunk, &mut out);
        assert!(
            stream.pending_len() <= 10 + 5,
            "buffered {}",
            stream.pending_len()
        );
    }
    assert_eq!(out.len(), 2);
    assert_eq!(
        out.first()
            .map(|m| (m.oversized, m.declared_len, m.payload.len())),
        Some((true, 100, 0))
    );
    assert_eq!(out.get(1), Some(&plain(b"after")));
    let (tail, error, counters) = stream.finish();
    assert!(tail.is_empty() && error.is_none());
    assert_eq!(
        (
            counters.oversized_messages,
            counters.skipped_bytes,
            counters.messages
        ),
        (1, 100, 2)
    );
}

#[test]
fn bad_flag_desynchronises_and_is_reported() {
    let mut bytes = frame(false, b"ok");
    bytes.extend([0x80, 0, 0, 0, 1, 9, 9, 9]);
    let split = split_messages(&bytes, 1024);
    assert_eq!(split.messages, vec![plain(b"ok")]);
    assert_eq!(
        split.error,
        Some(GrpcMessageError::BadCompressedFlag {
            flag: 0x80,
            dropped: 8
        })
    );
    assert_eq!(split.counters.invalid_bytes, 8);
}

#[test]
fn cut_streams_say_where_they_stopped() {
    let bytes = frame(false, &[1u8; 50]);
    let cut = split_messages(bytes.get(..30).unwrap_or_default(), 1024);
    assert_eq!(
        cut.error,
        Some(GrpcMessageError::Incomplete {
            got: 25,
            declared: 50
        })
    );
    let cut = split_messages(bytes.get(..3).unwrap_or_default(), 1024);
    assert_eq!(
        cut.error,
        Some(GrpcMessageError::IncompletePrefix { got: 3 })
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[test]
fn decompression_is_bounded_and_unknown_encodings_are_marked() {
    let data = b"\x0a\x05hello".repeat(10);
    let gz = gzip(&data);
    assert_eq!(
        decompress_message(&GrpcEncoding::Gzip, &gz, 1024),
        Ok(data.clone())
    );
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = zlib.write_all(&data);
    let zlib = zlib.finish().unwrap_or_default();
    assert_eq!(
        decompress_message(&GrpcEncoding::Deflate, &zlib, 1024),
        Ok(data.clone())
    );
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = raw.write_all(&data);
    let raw = raw.finish().unwrap_or_default();
    assert_eq!(
        decompress_message(&GrpcEncoding::Deflate, &raw, 1024),
        Ok(data.clone())
    );
    let zst = zstd::encode_all(&data[..], 3).unwrap_or_default();
    assert_eq!(
        decompress_message(&GrpcEncoding::Zstd, &zst, 1024),
        Ok(data.clone())
    );
    // A bomb: 1 MiB of zeros in a few hundred bytes, capped at 64 KiB.
    let bomb = gzip(&vec![0u8; 1 << 20]);
    assert_eq!(
        decompress_message(&GrpcEncoding::Gzip, &bomb, 64 * 1024),
        Err(GrpcMessageError::DecompressedTooLarge {
            encoding: "gzip".into(),
            cap: 64 * 1024
        })
    );
    assert!(matches!(
        decompress_message(&GrpcEncoding::Gzip, b"not gzip", 1024),
        Err(GrpcMessageError::Decompress { .. })
    ));
    let snappy = GrpcEncoding::from_header(Some("Snappy"));
    assert_eq!(snappy, GrpcEncoding::Unknown("snappy".into()));
    assert_eq!(
        decompress_message(&snappy, b"x", 10),
        Err(GrpcMessageError::UnknownEncoding("snappy".into()))
    );
    assert_eq!(GrpcEncoding::from_header(None), GrpcEncoding::Identity);
    assert_eq!(
        decompress_message(&GrpcEncoding::Identity, b"x", 10),
        Err(GrpcMessageError::CompressedWithoutEncoding)
    );
}

fn messages_strategy() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
    prop::collection::vec(
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..40)),
        0..8,
    )
}

proptest! {
    #[test]
    fn any_split_gives_the_same_messages(
        messages in messages_strategy(),
        cuts in prop::collection::vec(0usize..400, 0..12),
        cap in 0usize..48,
    ) {
        let mut bytes = Vec::new();
        for (compressed, body) in &messages {
            bytes.extend(frame(*compressed, body));
        }
        let whole = split_messages(&bytes, cap);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut stream = GrpcMessageStream::new(cap);
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            stream.push(bytes.get(start..cut).unwrap_or_default(), &mut out);
            prop_assert!(stream.pending_len() <= cap + 5);
            start = cut;
        }
        let (tail, error, counters) = stream.finish();
        prop_assert_eq!(&out, &whole.messages);
        prop_assert_eq!(tail, whole.tail);
        prop_assert_eq!(error, whole.error);
        prop_assert_eq!(counters, whole.counters);
        prop_assert_eq!(out.len(), messages.len());
        for (got, (compressed, body)) in out.iter().zip(&messages) {
            prop_assert_eq!(got.compressed, *compressed);
            prop_assert_eq!(got.oversized, body.len() > cap);
            if body.len() <= cap {
                prop_assert_eq!(&got.payload, body);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
        cap in 0usize..100,
    ) {
        let mut stream = GrpcMessageStream::new(cap);
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            stream.push(piece, &mut out);
            prop_assert!(stream.pending_len() <= cap + 5);
        }
        let (_tail, _error, counters) = stream.finish();
        prop_assert_eq!(counters.messages as usize, out.len());
        let mut parser = GrpcMessageParser::new(cap);
        let _ = parser.parse(&bytes);
        for encoding in [GrpcEncoding::Gzip, GrpcEncoding::Deflate, GrpcEncoding::Zstd] {
            let _ = decompress_message(&encoding, &bytes, 4096);
        }
    }
}
