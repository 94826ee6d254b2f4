//! Tests of the schema-less walk: known encodings from the protobuf encoding guide, guesses
//! (nested message vs string vs bytes), limits, and arbitrary bytes never panicking.

use proptest::prelude::*;
use serde_json::json;

use super::error::GrpcMessageError;
use super::schemaless::{SchemalessLimits, walk_message};

fn walk(bytes: &[u8]) -> serde_json::Value {
    match walk_message(bytes, &SchemalessLimits::default()) {
        Ok(walked) => walked.value,
        Err(err) => panic!("walk failed: {err}"),
    }
}

#[test]
fn encoding_guide_examples() {
    // https://protobuf.dev/programming-guides/encoding/: `08 96 01` is field 1 = 150,
    // `12 07 74 65 73 74 69 6e 67` field 2 = "testing", `1a 03 08 96 01` field 3 = {1: 150}.
    assert_eq!(walk(&[0x08, 0x96, 0x01]), json!({"1": 150}));
    assert_eq!(walk(b"\x12\x07testing"), json!({"2": "testing"}));
    assert_eq!(
        walk(&[0x1a, 0x03, 0x08, 0x96, 0x01]),
        json!({"3": {"1": 150}})
    );
    // Repeated fields become arrays, in order.
    assert_eq!(
        walk(&[0x08, 0x01, 0x08, 0x02, 0x08, 0x03]),
        json!({"1": [1, 2, 3]})
    );
    // fixed64 / fixed32 give both readings.
    let one = 1.0f64.to_bits().to_le_bytes();
    let mut bytes = vec![0x09];
    bytes.extend(one);
    bytes.extend([0x15]);
    bytes.extend(1.5f32.to_bits().to_le_bytes());
    assert_eq!(
        walk(&bytes),
        json!({"1": {"fixed64": 1.0f64.to_bits(), "double": 1.0}, "2": {"fixed32": 1.5f32.to_bits(), "float": 1.5}})
    );
    // Non-UTF-8, non-message bytes are shown as hex.
    assert_eq!(
        walk(&[0x22, 0x02, 0xff, 0xfe]),
        json!({"4": {"hex": "fffe", "len": 2}})
    );
    // A group: field 5 start (0x2b), field 1 = 1, field 5 end (0x2c).
    assert_eq!(walk(&[0x2b, 0x08, 0x01, 0x2c]), json!({"5": {"1": 1}}));
    assert_eq!(walk(&[]), json!({}));
}

#[test]
fn not_wire_format_is_an_error_not_a_panic() {
    for bad in [
        &[0x07][..],
        &[0x0a, 0x05, 0x01],
        &[0x00, 0x01],
        &[0x08],
        &[0x2c],
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
    ] {
        assert!(
            matches!(
                walk_message(bad, &SchemalessLimits::default()),
                Err(GrpcMessageError::NotProtobuf { .. })
            ),
            "{bad:02x?}"
        );
    }
}

#[test]
fn limits_cut_output_and_say_so() {
    let limits = SchemalessLimits {
        max_depth: 3,
        max_fields: 5,
        max_value_bytes: 8,
    };
    let many: Vec<u8> = (0..20).flat_map(|i| [0x08, i]).collect();
    let walked = walk_message(&many, &limits);
    assert_eq!(walked.as_ref().map(|w| w.truncated), Ok(true));
    assert_eq!(walked.map(|w| w.value), Ok(json!({"1": [0, 1, 2, 3, 4]})));
    let long = walk_message(b"\x0a\x0cabcdefghijkl", &limits);
    assert_eq!(
        long.map(|w| (w.value, w.truncated)),
        Ok((json!({"1": "abcdefgh"}), true))
    );
    // Depth: nesting stops being tried at max_depth, and shows as bytes.
    let nested = [0x0a, 0x07, 0x0a, 0x05, 0x0a, 0x03, 0x08, 0xff, 0x01];
    let deep = walk_message(&nested, &limits).map(|w| w.value);
    assert_eq!(
        deep,
        Ok(json!({"1": {"1": {"1": {"hex": "08ff01", "len": 3}}}}))
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), depth in 0usize..20, fields in 0usize..64) {
        let limits = SchemalessLimits { max_depth: depth, max_fields: fields, max_value_bytes: 32 };
        if let Ok(walked) = walk_message(&bytes, &limits) {
            prop_assert!(walked.value.is_object());
            // Output stays bounded by the limits whatever the input.
            let text = walked.value.to_string();
            prop_assert!(text.len() <= 64 + fields.max(1) * (depth + 1) * 200, "{} bytes", text.len());
        }
    }

    #[test]
    fn nested_valid_messages_walk_back(values in prop::collection::vec((1u32..100, any::<u64>()), 0..10)) {
        let mut inner = Vec::new();
        for (number, value) in &values {
            let mut tag = u64::from(*number) << 3;
            while tag >= 0x80 { inner.push((tag as u8) | 0x80); tag >>= 7; }
            inner.push(tag as u8);
            let mut v = *value;
            while v >= 0x80 { inner.push((v as u8) | 0x80); v >>= 7; }
            inner.push(v as u8);
        }
        let walked = walk_message(&inner, &SchemalessLimits::default());
        prop_assert!(walked.is_ok());
        let value = walked.map(|w| w.value).unwrap_or_default();
        for (number, v) in &values {
            let field = value.get(number.to_string());
            let found = match field {
                Some(serde_json::Value::Array(items)) => items.iter().any(|i| i.as_u64() == Some(*v)),
                Some(item) => item.as_u64() == Some(*v),
                None => false,
            };
            prop_assert!(found, "field {} = {} missing in {}", number, v, value);
        }
    }
}
