//! `GrpcCall`: one gRPC call decoded from what an HTTP/2 stream carried (`:path`, headers,
//! trailers, request and response DATA bytes): method, messages decoded by descriptor (or by
//! the schema-less walk), counts and sizes, status, and every error per message or per call.

use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

use super::compression::{GrpcEncoding, decompress_message};
use super::content_type::GrpcContentType;
use super::error::{GrpcCallError, GrpcMessageError};
use super::message::{DEFAULT_MAX_MESSAGE_BYTES, GrpcParserCounters, split_messages};
use super::path::GrpcPath;
use super::registry::DescriptorRegistry;
use super::schemaless::{SchemalessLimits, bytes_value, walk_message};
use super::status::{GrpcStatus, StatusSource, grpc_status, header_value};
use super::status_details::decode_status_details;

/// `decoded_by` of a call or message that no descriptor set knew.
pub const SCHEMALESS: &str = "schemaless";

/// Bounds of decoding one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// Largest message body kept from the wire (bigger ones are counted and skipped).
    pub max_message_bytes: usize,
    /// Largest message after decompression.
    pub max_decompressed_bytes: usize,
    /// Messages decoded per side; later ones are counted and sized only.
    pub max_decoded_messages: usize,
    /// Bounds of the schema-less walk.
    pub schemaless: SchemalessLimits,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_decoded_messages: 256,
            schemaless: SchemalessLimits::default(),
        }
    }
}

/// How one message was turned into a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedBy {
    /// By a descriptor: the set's name and the message's full type name.
    Descriptor { set: String, message_type: String },
    /// By the schema-less walk (field numbers, guessed types).
    Schemaless,
    /// Parsed as JSON (`application/grpc+json`).
    Json,
    /// Not decoded (see the message's errors); `value` may hold its raw bytes.
    NotDecoded,
}

/// One message of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcMessageRecord {
    /// Position in its direction, from 0.
    pub index: usize,
    /// The compressed flag was set.
    pub compressed: bool,
    /// Body length on the wire (from the prefix).
    pub wire_len: u32,
    /// Length after decompression (same as `wire_len` when not compressed), if it was read.
    pub decoded_len: Option<usize>,
    /// The decoded message: proto3 JSON with proto field names (descriptor), a field-number
    /// object (schema-less), or `{"hex", "len"}` raw bytes when neither worked.
    pub value: Option<Value>,
    /// How `value` was produced.
    pub decoded_by: DecodedBy,
    /// The schema-less walk or the raw-bytes fallback cut part of the value to stay bounded.
    pub truncated: bool,
    /// What went wrong (a descriptor failure followed by a schema-less success keeps both).
    pub errors: Vec<GrpcMessageError>,
}

/// The messages one side of a call sent.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcSide {
    /// The side's `grpc-encoding`.
    pub encoding: GrpcEncoding,
    /// The side's serialization from `content-type` (protobuf when absent or not gRPC).
    pub content_type: GrpcContentType,
    /// Every message framed (including oversized and undecoded ones), in order.
    pub messages: Vec<GrpcMessageRecord>,
    /// Sum of the declared body lengths.
    pub message_bytes: u64,
    /// DATA bytes the side sent (prefixes, bodies and any unfinished tail).
    pub data_bytes: u64,
    /// How many messages had the compressed flag set.
    pub compressed_messages: usize,
    /// The DATA bytes ended inside a message, or framing broke.
    pub stream_error: Option<GrpcMessageError>,
    /// Parser counts (oversized messages, skipped and invalid bytes).
    pub counters: GrpcParserCounters,
}

impl GrpcSide {
    /// Number of messages framed.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// The decoded values, in order (messages without a value are left out).
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.messages.iter().filter_map(|m| m.value.as_ref())
    }
}

/// One gRPC call, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcCall {
    /// `:path` as sent.
    pub path: String,
    /// Full service name (`qdrant.Points`), when `:path` is well formed.
    pub service: Option<String>,
    /// Method name (`Search`), when `:path` is well formed.
    pub method: Option<String>,
    /// The descriptor set that knew the method, or `"schemaless"`.
    pub decoded_by: String,
    /// Full name of the request message type, when a descriptor knew the method.
    pub request_type: Option<String>,
    /// Full name of the response message type, when a descriptor knew the method.
    pub response_type: Option<String>,
    /// What the client sent.
    pub request: GrpcSide,
    /// What the server sent.
    pub response: GrpcSide,
    /// `grpc-status` / `grpc-message`, when the server sent them.
    pub status: Option<GrpcStatus>,
    /// Problems with the call as a whole (bad path, missing or bad status).
    pub errors: Vec<GrpcCallError>,
}

impl GrpcCall {
    /// The numeric `grpc-status`, if sent.
    pub fn grpc_status(&self) -> Option<u32> {
        self.status.as_ref().map(|s| s.code)
    }

    /// The decoded `grpc-message`, if sent and non-empty.
    pub fn grpc_message(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.message.as_deref())
    }
}

/// Decode one call with the default limits. Never panics; every problem is in the result.
pub fn decode_grpc_call(
    path: &str,
    req_headers: &[(String, String)],
    req_body: &[u8],
    resp_headers: &[(String, String)],
    resp_body: &[u8],
    trailers: &[(String, String)],
    registry: &DescriptorRegistry,
) -> GrpcCall {
    let exchange = GrpcExchange {
        path,
        req_headers,
        req_body,
        resp_headers,
        resp_body,
        trailers,
    };
    decode_grpc_call_with_limits(&exchange, registry, &GrpcLimits::default())
}

/// What one HTTP/2 stream carried, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct GrpcExchange<'a> {
    /// `:path`.
    pub path: &'a str,
    /// Request headers (pseudo-headers included or not).
    pub req_headers: &'a [(String, String)],
    /// Request DATA bytes, concatenated.
    pub req_body: &'a [u8],
    /// Response headers.
    pub resp_headers: &'a [(String, String)],
    /// Response DATA bytes, concatenated.
    pub resp_body: &'a [u8],
    /// Trailers (empty for a trailers-only response, whose status is in `resp_headers`).
    pub trailers: &'a [(String, String)],
}

/// Decode one call within `limits`.
pub fn decode_grpc_call_with_limits(
    exchange: &GrpcExchange<'_>,
    registry: &DescriptorRegistry,
    limits: &GrpcLimits,
) -> GrpcCall {
    let mut errors = Vec::new();
    let parsed = match GrpcPath::parse(exchange.path) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            errors.push(err);
            None
        }
    };
    let found = parsed
        .as_ref()
        .and_then(|p| registry.lookup_method(&p.service, &p.method));
    let (decoded_by, req_desc, resp_desc) = match &found {
        Some(m) => (m.set_name.clone(), Some(m.input()), Some(m.output())),
        None => (SCHEMALESS.to_string(), None, None),
    };
    let set = found.as_ref().map(|m| m.set_name.as_str());
    let req_encoding =
        GrpcEncoding::from_header(header_value(exchange.req_headers, "grpc-encoding"));
    let resp_encoding =
        GrpcEncoding::from_header(header_value(exchange.resp_headers, "grpc-encoding"));
    let content_type = |headers: &[(String, String)]| {
        header_value(headers, "content-type").and_then(GrpcContentType::from_header)
    };
    let req_type = content_type(exchange.req_headers).unwrap_or(GrpcContentType::Proto);
    let resp_type = content_type(exchange.resp_headers).unwrap_or_else(|| req_type.clone());
    let request = decode_side(
        exchange.req_body,
        req_encoding,
        req_type,
        set,
        req_desc.as_ref(),
        limits,
    );
    let response = decode_side(
        exchange.resp_body,
        resp_encoding,
        resp_type,
        set,
        resp_desc.as_ref(),
        limits,
    );
    let status = match grpc_status(exchange.resp_headers, exchange.trailers) {
        Ok(mut status) => {
            let status_headers = match status.source {
                StatusSource::Trailers => exchange.trailers,
                StatusSource::TrailersOnlyHeaders => exchange.resp_headers,
            };
            if let Some(raw) = header_value(status_headers, "grpc-status-details-bin") {
                match decode_status_details(raw, registry, &limits.schemaless) {
                    Ok(details) => status.details = Some(details),
                    Err(err) => errors.push(err),
                }
            }
            Some(status)
        }
        Err(err) => {
            errors.push(err);
            None
        }
    };
    GrpcCall {
        path: exchange.path.to_string(),
        service: parsed.as_ref().map(|p| p.service.clone()),
        method: parsed.map(|p| p.method),
        decoded_by,
        request_type: req_desc.map(|d| d.full_name().to_string()),
        response_type: resp_desc.map(|d| d.full_name().to_string()),
        request,
        response,
        status,
        errors,
    }
}

/// Frame, decompress and decode one direction's DATA bytes.
pub fn decode_side(
    body: &[u8],
    encoding: GrpcEncoding,
    content_type: GrpcContentType,
    set: Option<&str>,
    descriptor: Option<&MessageDescriptor>,
    limits: &GrpcLimits,
) -> GrpcSide {
    let split = split_messages(body, limits.max_message_bytes);
    let mut messages = Vec::with_capacity(split.messages.len());
    let mut attempted = 0;
    for (index, message) in split.messages.into_iter().enumerate() {
        let mut record = GrpcMessageRecord {
            index,
            compressed: message.compressed,
            wire_len: message.declared_len,
            decoded_len: None,
            value: None,
            decoded_by: DecodedBy::NotDecoded,
            truncated: false,
            errors: Vec::new(),
        };
        if message.oversized {
            record.errors.push(GrpcMessageError::Oversized {
                declared: message.declared_len,
                cap: limits.max_message_bytes,
            });
        } else if attempted >= limits.max_decoded_messages {
            record
                .errors
                .push(GrpcMessageError::DecodeBudgetExhausted(attempted));
        } else {
            attempted += 1;
            let schema = match content_type {
                GrpcContentType::Json => MessageSchema::Json,
                _ => match (set, descriptor) {
                    (Some(set), Some(descriptor)) => MessageSchema::Descriptor(set, descriptor),
                    _ => MessageSchema::None,
                },
            };
            decode_message(&mut record, &message.payload, &encoding, schema, limits);
        }
        messages.push(record);
    }
    GrpcSide {
        message_bytes: messages.iter().map(|m| u64::from(m.wire_len)).sum(),
        data_bytes: body.len() as u64,
        compressed_messages: messages.iter().filter(|m| m.compressed).count(),
        encoding,
        content_type,
        messages,
        stream_error: split.error,
        counters: split.counters,
    }
}

/// What a message is decoded with.
#[derive(Clone, Copy)]
enum MessageSchema<'a> {
    /// The descriptor set's name and the message type.
    Descriptor(&'a str, &'a MessageDescriptor),
    /// `application/grpc+json`.
    Json,
    /// Nothing known: the schema-less walk.
    None,
}

fn decode_message(
    record: &mut GrpcMessageRecord,
    payload: &[u8],
    encoding: &GrpcEncoding,
    schema: MessageSchema<'_>,
    limits: &GrpcLimits,
) {
    let inflated;
    let bytes = if record.compressed {
        match decompress_message(encoding, payload, limits.max_decompressed_bytes) {
            Ok(out) => {
                inflated = out;
                inflated.as_slice()
            }
            Err(err) => {
                record.errors.push(err);
                let (value, cut) = bytes_value(payload, limits.schemaless.max_value_bytes);
                record.value = Some(value);
                record.truncated = cut;
                return;
            }
        }
    } else {
        payload
    };
    record.decoded_len = Some(bytes.len());
    match schema {
        MessageSchema::Descriptor(set, descriptor) => {
            match decode_with_descriptor(descriptor, bytes) {
                Ok(value) => {
                    record.value = Some(value);
                    record.decoded_by = DecodedBy::Descriptor {
                        set: set.to_string(),
                        message_type: descriptor.full_name().to_string(),
                    };
                    return;
                }
                Err(err) => record.errors.push(err),
            }
        }
        MessageSchema::Json => match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => {
                record.value = Some(value);
                record.decoded_by = DecodedBy::Json;
                return;
            }
            Err(err) => {
                // Not protobuf either, by the peer's own word: keep the bytes.
                record.errors.push(GrpcMessageError::NotJson {
                    reason: err.to_string(),
                });
                let (value, cut) = bytes_value(bytes, limits.schemaless.max_value_bytes);
                record.value = Some(value);
                record.truncated = cut;
                return;
            }
        },
        MessageSchema::None => {}
    }
    match walk_message(bytes, &limits.schemaless) {
        Ok(walked) => {
            record.value = Some(walked.value);
            record.truncated = walked.truncated;
            record.decoded_by = DecodedBy::Schemaless;
        }
        Err(err) => {
            record.errors.push(err);
            let (value, cut) = bytes_value(bytes, limits.schemaless.max_value_bytes);
            record.value = Some(value);
            record.truncated = cut;
        }
    }
}

/// Decode `bytes` as `descriptor` into proto3 JSON with proto field names and plain numbers.
pub fn decode_with_descriptor(
    descriptor: &MessageDescriptor,
    bytes: &[u8],
) -> Result<Value, GrpcMessageError> {
    let fail = |reason: String| GrpcMessageError::Descriptor {
        message_type: descriptor.full_name().to_string(),
        reason,
    };
    let message =
        DynamicMessage::decode(descriptor.clone(), bytes).map_err(|err| fail(err.to_string()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|err| fail(format!("to JSON: {err}")))
}
