//! Every record survives encode -> decode unchanged, and bad bytes give errors, not panics.

use chainwatch_schemas::codec::{current_schemas, record_name, split_header};
use chainwatch_schemas::{AvroRecord, CodecError, samples};

fn roundtrip<T: AvroRecord + PartialEq + std::fmt::Debug>(value: T) {
    let bytes = value.encode().expect("encode");
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    let (fp, _) = split_header(&bytes).expect("header");
    assert_eq!(fp, T::record_schema().fingerprint);
    assert_eq!(record_name(&bytes).expect("name"), T::NAME);
    let back = T::decode(&bytes).expect("decode");
    assert_eq!(back, value);
}

#[test]
fn raw_segment_roundtrips() {
    roundtrip(samples::raw_segment(b"POST /v1/chat/completions HTTP/1.1\r\n\r\n".to_vec()));
    roundtrip(samples::raw_segment(vec![0u8, 255, 1, 2, 3]));
    let mut gap = samples::raw_segment(vec![]);
    gap.kind = chainwatch_schemas::SegmentKind::Gap;
    gap.original_len = 1 << 20;
    gap.tuple = None;
    roundtrip(gap);
}

#[test]
fn connection_event_roundtrips() {
    roundtrip(samples::connection_event());
}

#[test]
fn process_event_roundtrips() {
    roundtrip(samples::process_event());
    let mut e = samples::process_event();
    e.container_id = None;
    e.exit_code = None;
    e.argv.clear();
    roundtrip(e);
}

#[test]
fn semantic_event_roundtrips() {
    roundtrip(samples::semantic_event());
    let mut e = samples::semantic_event();
    e.llm = None;
    e.sql = None;
    e.vector = None;
    e.upload = None;
    e.pii.clear();
    roundtrip(e);
}

#[test]
fn chain_roundtrips() {
    roundtrip(samples::chain());
}

#[test]
fn violation_roundtrips() {
    roundtrip(samples::violation());
}

#[test]
fn stitch_record_roundtrips() {
    roundtrip(samples::stitch_record());
    let mut claim = samples::stitch_record();
    claim.kind = chainwatch_schemas::StitchKind::Claim;
    claim.steps.clear();
    roundtrip(claim);
}

#[test]
fn every_schema_has_a_distinct_fingerprint() {
    let mut fps: Vec<_> = current_schemas().iter().map(|s| s.fingerprint).collect();
    fps.sort_by_key(|f| f.0);
    fps.dedup();
    assert_eq!(fps.len(), 7);
}

#[test]
fn wrong_record_type_is_an_error_naming_both() {
    let bytes = samples::process_event().encode().unwrap();
    match chainwatch_schemas::RawSegment::decode(&bytes) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("RawSegment") || msg.contains("unknown writer schema"), "{msg}");
        }
        Ok(_) => panic!("decoded a ProcessEvent as a RawSegment"),
    }
}

#[test]
fn short_and_foreign_bytes_are_errors() {
    assert!(matches!(chainwatch_schemas::Chain::decode(b"abc"), Err(CodecError::TooShort(3))));
    assert!(matches!(
        chainwatch_schemas::Chain::decode(b"{\"json\": true}"),
        Err(CodecError::BadMagic(b'{', b'"'))
    ));
    let unknown = [0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    assert!(matches!(chainwatch_schemas::Chain::decode(&unknown), Err(CodecError::UnknownSchema(_))));
}

#[test]
fn truncated_and_corrupted_records_never_panic() {
    let full = samples::semantic_event().encode().unwrap();
    for cut in 0..full.len() {
        let _ = chainwatch_schemas::SemanticEvent::decode(&full[..cut]);
    }
    // Flip every byte of the datum in turn (a cheap deterministic fuzz).
    for i in 10..full.len() {
        let mut b = full.clone();
        b[i] ^= 0xA5;
        let _ = chainwatch_schemas::SemanticEvent::decode(&b);
    }
    let mut extra = full.clone();
    extra.push(0);
    assert!(matches!(
        chainwatch_schemas::SemanticEvent::decode(&extra),
        Err(CodecError::TrailingBytes { extra: 1, .. })
    ));
}
