//! gRPC above HTTP/2: length-prefixed messages, `grpc-encoding` decompression, service and
//! method from `:path`, status from trailers, and protobuf decoding by descriptor (built-in
//! Qdrant, Weaviate and Pinecone sets, or user-added ones) with a schema-less fallback.
//!
//! Input is what an HTTP/2 stream gives (`:path`, header and trailer pairs, the DATA bytes of
//! each direction); nothing here depends on the HTTP/2 layer's types. Entry point:
//! `decode_grpc_call(path, req_headers, req_body, resp_headers, resp_body, trailers, &registry)`.

pub mod call;
pub mod compression;
pub mod content_type;
pub mod error;
pub mod json;
pub mod message;
pub mod path;
pub mod registry;
pub mod schemaless;
pub mod status;
pub mod status_details;

pub use call::{
    DecodedBy, GrpcCall, GrpcExchange, GrpcLimits, GrpcMessageRecord, GrpcSide, SCHEMALESS,
    decode_grpc_call, decode_grpc_call_with_limits, decode_with_descriptor,
};
pub use compression::{GrpcEncoding, decompress_message};
pub use content_type::{GrpcContentType, is_grpc_content_type};
pub use error::{DescriptorSetError, GrpcCallError, GrpcMessageError};
pub use message::{
    GrpcFrame, GrpcMessage, GrpcMessageParser, GrpcMessageStream, GrpcParserCounters,
    split_messages,
};
pub use path::GrpcPath;
pub use registry::{DescriptorRegistry, GOOGLE_RPC_SET, MethodMatch};
pub use schemaless::{SchemalessLimits, SchemalessMessage, walk_message};
pub use status::{GrpcStatus, StatusSource, grpc_code_name, percent_decode};
pub use status_details::decode_status_details;

#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_descriptor_sets;
#[cfg(test)]
mod tests_message;
#[cfg(test)]
mod tests_schemaless;
#[cfg(test)]
mod tests_vendors;
