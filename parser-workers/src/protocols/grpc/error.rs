//! What can go wrong while turning gRPC bytes into a `GrpcCall`: one error per message or per
//! call, kept in the result (never a panic, never dropped silently).

use thiserror::Error;

/// Why one gRPC message was not (fully) decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GrpcMessageError {
    /// The length prefix declares more bytes than the configured cap; the body was skipped.
    #[error("message declares {declared} bytes, over the {cap}-byte cap; body skipped unread")]
    Oversized { declared: u32, cap: usize },
    /// The stream ended inside a message body (a cut capture or a reset stream).
    #[error("message cut short: stream ended after {got} of {declared} declared bytes")]
    Incomplete { got: usize, declared: u32 },
    /// The stream ended inside the 5-byte length prefix.
    #[error("stream ended inside a 5-byte message prefix ({got} bytes left)")]
    IncompletePrefix { got: usize },
    /// The first prefix byte is neither 0 (plain) nor 1 (compressed): not gRPC framing.
    #[error(
        "compressed-flag byte is {flag:#04x}, expected 0 or 1; {dropped} bytes after it dropped"
    )]
    BadCompressedFlag { flag: u8, dropped: usize },
    /// The compressed flag is set but no `grpc-encoding` header says how.
    #[error("compressed flag set but the side sent no grpc-encoding header")]
    CompressedWithoutEncoding,
    /// A `grpc-encoding` this decoder does not implement.
    #[error("unsupported grpc-encoding {0:?}; message left compressed")]
    UnknownEncoding(String),
    /// The compressed bytes are corrupt.
    #[error("{encoding} decompression failed: {reason}")]
    Decompress { encoding: String, reason: String },
    /// Decompression would exceed the output cap (a compression bomb or a huge message).
    #[error("{encoding} message inflates past the {cap}-byte cap; not decoded")]
    DecompressedTooLarge { encoding: String, cap: usize },
    /// The bytes do not decode as the message type the descriptor names.
    #[error("does not decode as {message_type}: {reason}")]
    Descriptor {
        message_type: String,
        reason: String,
    },
    /// The bytes are not protobuf wire format at all (the schema-less walk failed).
    #[error("not protobuf wire format: {reason}")]
    NotProtobuf { reason: String },
    /// An `application/grpc+json` message that is not JSON.
    #[error("not JSON (content-type application/grpc+json): {reason}")]
    NotJson { reason: String },
    /// More messages than the per-call decoding budget; counted and sized, not decoded.
    #[error("not decoded: the call already decoded {0} messages on this side")]
    DecodeBudgetExhausted(usize),
}

/// What is wrong with the call as a whole (path or status), beside per-message errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GrpcCallError {
    /// `:path` is not `/Service/Method`.
    #[error("`:path` {0:?} is not of the form /package.Service/Method")]
    BadPath(String),
    /// `grpc-status` is not a decimal number.
    #[error("grpc-status {0:?} is not a decimal status code")]
    BadStatus(String),
    /// `grpc-status-details-bin` is not base64 of a protobuf message.
    #[error("grpc-status-details-bin is unreadable: {0}")]
    BadStatusDetails(String),
    /// No `grpc-status` in trailers nor (trailers-only) in headers.
    #[error("no grpc-status in trailers or headers")]
    MissingStatus,
}

/// Why a descriptor set could not be added to a `DescriptorRegistry`.
#[derive(Debug, Error)]
pub enum DescriptorSetError {
    /// Reading the file failed.
    #[error("cannot read descriptor set {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is larger than the registry accepts.
    #[error("descriptor set {path} is {size} bytes, over the {cap}-byte cap")]
    TooLarge { path: String, size: u64, cap: u64 },
    /// The bytes are not a valid `google.protobuf.FileDescriptorSet` (or a file is missing a dependency).
    #[error("descriptor set {name:?} is invalid: {reason}")]
    Invalid { name: String, reason: String },
    /// A set with this name is already registered.
    #[error("a descriptor set named {0:?} is already registered")]
    DuplicateName(String),
}
