//! Fuzz target `grpc`: arbitrary bytes through the gRPC layer (message framing fed in
//! arbitrary chunks, decompression, descriptor decoding of Qdrant/Weaviate/Pinecone methods,
//! the schema-less walk, status and status-details parsing). It must never panic, and chunked
//! framing must agree with one-shot framing.
#![no_main]

use std::sync::OnceLock;

use chainwatch_parser_workers::protocols::grpc::{
    DescriptorRegistry, GrpcMessageStream, SchemalessLimits, decode_grpc_call, split_messages,
    walk_message,
};
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &[
    "/qdrant.Points/Search",
    "/qdrant.Points/Upsert",
    "/weaviate.v1.Weaviate/Search",
    "/weaviate.v1.Weaviate/BatchObjects",
    "/VectorService/Query",
    "/VectorService/Upsert",
    "/unknown.Service/Method",
    "",
];
const ENCODINGS: &[&str] = &["identity", "gzip", "deflate", "zstd", "snappy"];

fn registry() -> &'static DescriptorRegistry {
    static REGISTRY: OnceLock<DescriptorRegistry> = OnceLock::new();
    REGISTRY.get_or_init(DescriptorRegistry::builtin)
}

fuzz_target!(|data: &[u8]| {
    let [selector, encoding, chunk, split, rest @ ..] = data else {
        return;
    };
    let path = PATHS[usize::from(*selector) % PATHS.len()];
    let encoding = ENCODINGS[usize::from(*encoding) % ENCODINGS.len()];
    let at = usize::from(*split).min(rest.len());
    let (req, resp) = rest.split_at(at);

    // Framing: any chunking gives what one pass gives.
    let cap = 64 + usize::from(*chunk);
    let whole = split_messages(req, cap);
    let mut stream = GrpcMessageStream::new(cap);
    let mut messages = Vec::new();
    for piece in req.chunks(usize::from(*chunk).max(1)) {
        stream.push(piece, &mut messages);
        assert!(stream.pending_len() <= cap + 5);
    }
    let (tail, error, counters) = stream.finish();
    assert_eq!(messages, whole.messages);
    assert_eq!(
        (tail, error, counters),
        (whole.tail, whole.error, whole.counters)
    );

    let _ = walk_message(rest, &SchemalessLimits::default());

    let headers = vec![("grpc-encoding".to_string(), encoding.to_string())];
    let status =
        String::from_utf8_lossy(resp.get(..resp.len().min(4)).unwrap_or_default()).into_owned();
    let trailers = vec![
        ("grpc-status".to_string(), status),
        (
            "grpc-message".to_string(),
            String::from_utf8_lossy(req).into_owned(),
        ),
        (
            "grpc-status-details-bin".to_string(),
            String::from_utf8_lossy(resp).into_owned(),
        ),
    ];
    let call = decode_grpc_call(path, &headers, req, &headers, resp, &trailers, registry());
    for message in call.request.messages.iter().chain(&call.response.messages) {
        assert!(message.value.is_some() || !message.errors.is_empty());
    }
});
