//! Schema evolution: a reader one version older and one newer than the writer still decodes.
//!
//! For every record, the "older" schema is the current one without its last defaulted field
//! (what the previous release wrote and read), the "newer" one adds two defaulted fields (what
//! the next release will write). Records cross both ways through the real `decode` path, and
//! Avro's own compatibility check agrees.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use chainwatch_schemas::codec::{Fingerprint, split_header};
use chainwatch_schemas::{AvroRecord, SchemaRegistry, samples};
use serde_json::json;

struct Versions {
    older: Schema,
    older_json: String,
    dropped: String,
    newer: Schema,
    newer_json: String,
}

fn versions<T: AvroRecord>() -> Versions {
    let current: serde_json::Value = serde_json::from_str(T::SCHEMA_JSON).unwrap();
    let mut older = current.clone();
    let fields = older["fields"].as_array_mut().unwrap();
    let idx = fields.iter().rposition(|f| f.get("default").is_some()).expect("a defaulted field");
    let dropped = fields.remove(idx)["name"].as_str().unwrap().to_string();
    let mut newer = current.clone();
    let fields = newer["fields"].as_array_mut().unwrap();
    fields.push(json!({"name": "added_in_next_version", "type": ["null", "string"], "default": null}));
    fields.push(json!({"name": "retries", "type": "long", "default": 7}));
    let older_json = older.to_string();
    let newer_json = newer.to_string();
    Versions {
        older: Schema::parse_str(&older_json).unwrap(),
        older_json,
        dropped,
        newer: Schema::parse_str(&newer_json).unwrap(),
        newer_json,
    }
}

/// The record as a generic Avro value under the current schema.
fn as_value<T: AvroRecord>(record: &T) -> Value {
    let bytes = record.encode().unwrap();
    let (_, mut datum) = split_header(&bytes).unwrap();
    let schema = T::record_schema().schema;
    GenericDatumReader::builder(schema).build().unwrap().read_value(&mut datum).unwrap()
}

fn encode_with(schema: &Schema, value: Value) -> Vec<u8> {
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(&Fingerprint::of(schema).0);
    out.extend(GenericDatumWriter::builder(schema).build().unwrap().write_value_to_vec(value).unwrap());
    out
}

fn check<T: AvroRecord + PartialEq + Clone + std::fmt::Debug>(sample: T, defaulted: impl Fn(&mut T)) {
    let v = versions::<T>();
    let current = T::record_schema().schema;

    // Avro's own rules agree in both directions.
    SchemaCompatibility::can_read(current, &v.older).expect("older reader reads current writer");
    SchemaCompatibility::can_read(&v.older, current).expect("current reader reads older writer");
    SchemaCompatibility::can_read(&v.newer, current).expect("current reader reads newer writer");
    SchemaCompatibility::can_read(current, &v.newer).expect("newer reader reads current writer");

    let registry = SchemaRegistry::global();
    registry.register(&v.older_json).unwrap();
    registry.register(&v.newer_json).unwrap();

    // Reader one version NEWER than the writer: the previous release wrote it without the
    // dropped field; the current reader fills in the default.
    let Value::Record(mut fields) = as_value(&sample) else { panic!("not a record") };
    fields.retain(|(name, _)| name != &v.dropped);
    let old_bytes = encode_with(&v.older, Value::Record(fields));
    let decoded = T::decode(&old_bytes).unwrap_or_else(|e| panic!("{}: {e}", T::NAME));
    let mut expected = sample.clone();
    defaulted(&mut expected);
    assert_eq!(decoded, expected, "{}: field {} must take its default", T::NAME, v.dropped);

    // Reader one version OLDER than the writer: the next release wrote two more fields; the
    // current reader skips them and gets the same record.
    let Value::Record(mut fields) = as_value(&sample) else { panic!("not a record") };
    fields.push(("added_in_next_version".into(), Value::Union(1, Box::new(Value::String("x".into())))));
    fields.push(("retries".into(), Value::Long(3)));
    let new_bytes = encode_with(&v.newer, Value::Record(fields));
    assert_eq!(T::decode(&new_bytes).unwrap_or_else(|e| panic!("{}: {e}", T::NAME)), sample);

    // And the older release's reader reads what the current release writes (generic value:
    // the older Rust type no longer exists, its schema does).
    let bytes = sample.encode().unwrap();
    let (_, mut datum) = split_header(&bytes).unwrap();
    let old_view = GenericDatumReader::builder(current)
        .reader_schema(&v.older)
        .build()
        .unwrap()
        .read_value(&mut datum)
        .unwrap();
    let Value::Record(fields) = old_view else { panic!("not a record") };
    assert!(fields.iter().all(|(n, _)| n != &v.dropped));
}

#[test]
fn raw_segment_evolves() {
    // Last defaulted field: tuple (default null).
    check(samples::raw_segment(b"hello".to_vec()), |r| r.tuple = None);
}

#[test]
fn connection_event_evolves() {
    check(samples::connection_event(), |r| r.bytes_ingress = 0);
}

#[test]
fn process_event_evolves() {
    check(samples::process_event(), |r| r.exit_code = None);
}

#[test]
fn semantic_event_evolves() {
    check(samples::semantic_event(), |r| r.content = None);
}

#[test]
fn chain_evolves() {
    check(samples::chain(), |r| r.risk_reasons.clear());
}

#[test]
fn violation_evolves() {
    check(samples::violation(), |r| r.tags.clear());
}

#[test]
fn stitch_record_evolves() {
    check(samples::stitch_record(), |r| r.steps_cut = 0);
}
