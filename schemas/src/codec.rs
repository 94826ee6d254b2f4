//! Avro single-object encoding of the bus records, and the registry of writer schemas.
//!
//! Wire format (Avro spec, "Single object encoding"): `C3 01`, the 8-byte little-endian
//! CRC-64-AVRO (Rabin) fingerprint of the writer schema's canonical form, then the Avro binary
//! datum. A reader that knows the writer schema by its fingerprint resolves it against its own
//! schema, so records written by one version older or newer decode (fields added with defaults
//! are filled in, unknown fields skipped). A record whose writer schema is unknown is an error
//! naming the fingerprint; the stage sends it to the dead-letter topic.

use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, RwLock};

use apache_avro::rabin::Rabin;
use apache_avro::schema::Schema;
use apache_avro::{AvroResult, from_value};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::records::{Chain, ConnectionEvent, ProcessEvent, RawSegment, SemanticEvent, StitchRecord, Violation};

/// Largest allocation the Avro decoder may make for one value (a hostile length prefix cannot
/// make a worker allocate more than this).
pub const MAX_DECODE_ALLOCATION: usize = 64 * 1024 * 1024;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// CRC-64-AVRO fingerprint of a schema's parsing canonical form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Fingerprint {
    pub fn of(schema: &Schema) -> Fingerprint {
        let fp = schema.fingerprint::<Rabin>();
        let mut out = [0u8; 8];
        for (o, b) in out.iter_mut().zip(fp.bytes.iter()) {
            *o = *b;
        }
        Fingerprint(out)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record too short for the single-object header ({0} bytes, need 10)")]
    TooShort(usize),
    #[error("bad magic {0:02x}{1:02x}: not an Avro single-object record (expected c301)")]
    BadMagic(u8, u8),
    #[error("unknown writer schema fingerprint {0}: register the writer's schema or upgrade")]
    UnknownSchema(Fingerprint),
    #[error("record is a {found}, expected a {expected}")]
    WrongRecord { expected: &'static str, found: String },
    #[error("schema {name} does not parse: {source}")]
    Schema {
        name: String,
        #[source]
        source: apache_avro::Error,
    },
    #[error("encoding {name} failed: {source}")]
    Encode {
        name: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    #[error("decoding {name} failed: {source}")]
    Decode {
        name: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    #[error("{name}: {extra} trailing bytes after the datum")]
    TrailingBytes { name: &'static str, extra: usize },
}

/// One record type's current schema, parsed once.
pub struct RecordSchema {
    pub name: &'static str,
    pub json: &'static str,
    pub schema: &'static Schema,
    pub fingerprint: Fingerprint,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

impl RecordSchema {
    fn load(name: &'static str, json: &'static str) -> Result<RecordSchema, CodecError> {
        limit_decoder_allocations();
        let schema: &'static Schema = Box::leak(Box::new(
            Schema::parse_str(json).map_err(|source| CodecError::Schema { name: name.to_string(), source })?,
        ));
        let writer = GenericDatumWriter::builder(schema)
            .validate(false)
            .build()
            .map_err(|source| CodecError::Schema { name: name.to_string(), source })?;
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|source| CodecError::Schema { name: name.to_string(), source })?;
        Ok(RecordSchema { name, json, schema, fingerprint: Fingerprint::of(schema), writer, reader })
    }
}

fn limit_decoder_allocations() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION);
    });
}

/// A record type that travels on the bus.
pub trait AvroRecord: Serialize + DeserializeOwned + Sized {
    /// Avro full name, e.g. `io.chainwatch.RawSegment`.
    const NAME: &'static str;
    /// The current schema (contents of `schemas/avro/<name>.avsc`).
    const SCHEMA_JSON: &'static str;
    /// The parsed current schema (cached).
    fn record_schema() -> &'static RecordSchema;

    /// Single-object encoding of `self` with the current schema.
    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let rs = Self::record_schema();
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&rs.fingerprint.0);
        rs.writer
            .write_ser(&mut out, self)
            .map_err(|source| CodecError::Encode { name: Self::NAME, source })?;
        Ok(out)
    }

    /// Decode a single-object record written with the current schema or any registered one.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let (fp, mut datum) = split_header(bytes)?;
        let rs = Self::record_schema();
        let value = if fp == rs.fingerprint {
            let v: Self = rs
                .reader
                .read_deser(&mut datum)
                .map_err(|source| CodecError::Decode { name: Self::NAME, source })?;
            v
        } else {
            let writer = SchemaRegistry::global().lookup(fp).ok_or(CodecError::UnknownSchema(fp))?;
            let found = writer_name(writer);
            if found != Self::NAME {
                return Err(CodecError::WrongRecord { expected: Self::NAME, found });
            }
            let resolved = resolve(writer, rs.schema, &mut datum)
                .map_err(|source| CodecError::Decode { name: Self::NAME, source })?;
            from_value::<Self>(&resolved).map_err(|source| CodecError::Decode { name: Self::NAME, source })?
        };
        if !datum.is_empty() {
            return Err(CodecError::TrailingBytes { name: Self::NAME, extra: datum.len() });
        }
        Ok(value)
    }
}

fn resolve(writer: &'static Schema, reader: &'static Schema, datum: &mut &[u8]) -> AvroResult<apache_avro::types::Value> {
    GenericDatumReader::builder(writer).reader_schema(reader).build()?.read_value(datum)
}

fn writer_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
    }
}

/// The single-object header of an `R` record (magic and schema fingerprint), for a writer
/// that encodes the datum itself.
pub fn single_object_header<R: AvroRecord>() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..2].copy_from_slice(&MAGIC);
    h[2..].copy_from_slice(&R::record_schema().fingerprint.0);
    h
}

/// The fingerprint in a record's header, and the datum after it.
pub fn split_header(bytes: &[u8]) -> Result<(Fingerprint, &[u8]), CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::TooShort(bytes.len()));
    }
    let (header, datum) = bytes.split_at(HEADER_LEN);
    if header[..2] != MAGIC {
        return Err(CodecError::BadMagic(header[0], header[1]));
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&header[2..]);
    Ok((Fingerprint(fp), datum))
}

/// Which record a single-object record holds (by its writer schema), e.g. to dispatch the
/// mixed `cw.raw.segments` topic into segments and connection events.
pub fn record_name(bytes: &[u8]) -> Result<String, CodecError> {
    let (fp, _) = split_header(bytes)?;
    let schema = SchemaRegistry::global().lookup(fp).ok_or(CodecError::UnknownSchema(fp))?;
    Ok(writer_name(schema))
}

/// Writer schemas known by fingerprint: the current schemas of every record, plus any
/// registered at run time (older or newer versions, e.g. loaded from a schema directory).
pub struct SchemaRegistry {
    known: RwLock<HashMap<Fingerprint, &'static Schema>>,
}

impl SchemaRegistry {
    /// The process-wide registry, preloaded with the current schema of every record.
    pub fn global() -> &'static SchemaRegistry {
        static REGISTRY: OnceLock<SchemaRegistry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let mut known = HashMap::new();
            for rs in current_schemas() {
                known.insert(rs.fingerprint, rs.schema);
            }
            SchemaRegistry { known: RwLock::new(known) }
        })
    }

    /// Register another version of a record's schema (parsed from Avro JSON); returns its
    /// fingerprint. Registering the same schema twice is harmless.
    pub fn register(&self, json: &str) -> Result<Fingerprint, CodecError> {
        let schema = Schema::parse_str(json).map_err(|source| CodecError::Schema { name: "registered schema".into(), source })?;
        let fp = Fingerprint::of(&schema);
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.entry(fp).or_insert_with(|| Box::leak(Box::new(schema)));
        Ok(fp)
    }

    pub fn lookup(&self, fp: Fingerprint) -> Option<&'static Schema> {
        self.known.read().unwrap_or_else(|e| e.into_inner()).get(&fp).copied()
    }
}

/// The current schema of every record on the bus.
pub fn current_schemas() -> [&'static RecordSchema; 7] {
    [
        RawSegment::record_schema(),
        ConnectionEvent::record_schema(),
        ProcessEvent::record_schema(),
        SemanticEvent::record_schema(),
        Chain::record_schema(),
        Violation::record_schema(),
        StitchRecord::record_schema(),
    ]
}

macro_rules! avro_record {
    ($ty:ty, $name:literal, $file:literal) => {
        impl AvroRecord for $ty {
            const NAME: &'static str = $name;
            const SCHEMA_JSON: &'static str = include_str!(concat!("../avro/", $file));
            fn record_schema() -> &'static RecordSchema {
                static SCHEMA: OnceLock<RecordSchema> = OnceLock::new();
                SCHEMA.get_or_init(|| match RecordSchema::load(Self::NAME, Self::SCHEMA_JSON) {
                    Ok(rs) => rs,
                    // The schema is compiled into the binary and checked by the tests: failing
                    // here is a build defect, not bad input.
                    Err(e) => panic!("built-in schema {}: {e}", $file),
                })
            }
        }
    };
}

avro_record!(RawSegment, "io.chainwatch.RawSegment", "raw_segment.avsc");
avro_record!(ConnectionEvent, "io.chainwatch.ConnectionEvent", "connection_event.avsc");
avro_record!(ProcessEvent, "io.chainwatch.ProcessEvent", "process_event.avsc");
avro_record!(SemanticEvent, "io.chainwatch.SemanticEvent", "semantic_event.avsc");
avro_record!(Chain, "io.chainwatch.Chain", "chain.avsc");
avro_record!(Violation, "io.chainwatch.Violation", "violation.avsc");
avro_record!(StitchRecord, "io.chainwatch.StitchRecord", "stitch_record.avsc");
