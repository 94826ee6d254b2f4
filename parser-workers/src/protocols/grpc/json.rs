//! `GrpcCall::to_json`: the decoded call as one JSON object (for events, logs and the CLI),
//! errors rendered as their messages.

use serde_json::{Value, json};

use super::call::{DecodedBy, GrpcCall, GrpcMessageRecord, GrpcSide};
use super::content_type::GrpcContentType;
use super::status::StatusSource;

impl GrpcCall {
    /// The call as JSON: method, types, both sides' messages with values and errors, status.
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "service": self.service,
            "method": self.method,
            "decoded_by": self.decoded_by,
            "request_type": self.request_type,
            "response_type": self.response_type,
            "request": side_json(&self.request),
            "response": side_json(&self.response),
            "grpc_status": self.grpc_status(),
            "grpc_status_name": self.status.as_ref().map(|s| s.code_name()),
            "grpc_message": self.grpc_message(),
            "grpc_message_truncated": self.status.as_ref().is_some_and(|s| s.message_truncated),
            "grpc_status_details": self.status.as_ref().and_then(|s| s.details.clone()),
            "status_source": self.status.as_ref().map(|s| match s.source {
                StatusSource::Trailers => "trailers",
                StatusSource::TrailersOnlyHeaders => "trailers_only",
            }),
            "errors": self.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}

fn side_json(side: &GrpcSide) -> Value {
    json!({
        "encoding": side.encoding.name(),
        "content_type": match &side.content_type {
            GrpcContentType::Proto => "proto",
            GrpcContentType::Json => "json",
            GrpcContentType::Other(name) => name.as_str(),
        },
        "message_count": side.message_count(),
        "message_bytes": side.message_bytes,
        "data_bytes": side.data_bytes,
        "compressed_messages": side.compressed_messages,
        "oversized_messages": side.counters.oversized_messages,
        "skipped_bytes": side.counters.skipped_bytes,
        "invalid_bytes": side.counters.invalid_bytes,
        "stream_error": side.stream_error.as_ref().map(ToString::to_string),
        "messages": side.messages.iter().map(message_json).collect::<Vec<_>>(),
    })
}

fn message_json(message: &GrpcMessageRecord) -> Value {
    let (decoded_by, message_type) = match &message.decoded_by {
        DecodedBy::Descriptor { set, message_type } => (set.as_str(), Some(message_type.as_str())),
        DecodedBy::Schemaless => ("schemaless", None),
        DecodedBy::Json => ("json", None),
        DecodedBy::NotDecoded => ("none", None),
    };
    json!({
        "index": message.index,
        "compressed": message.compressed,
        "wire_len": message.wire_len,
        "decoded_len": message.decoded_len,
        "decoded_by": decoded_by,
        "message_type": message_type,
        "value": message.value,
        "truncated": message.truncated,
        "errors": message.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}
