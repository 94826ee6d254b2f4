//! Real Qdrant, Weaviate and Pinecone messages, encoded from their descriptors (as their
//! clients would), framed as gRPC, and decoded back by `decode_grpc_call`: the fields must come
//! back with their names. Also compression, trailers-only errors, descriptor mismatches and
//! caps, and a property test that arbitrary bodies never panic.

use std::io::Write;

use proptest::prelude::*;
use prost_reflect::DynamicMessage;
use prost_reflect::prost::Message;
use serde_json::{Value, json};

use super::call::{
    DecodedBy, GrpcExchange, GrpcLimits, decode_grpc_call, decode_grpc_call_with_limits,
    decode_with_descriptor,
};
use super::error::GrpcMessageError;
use super::registry::DescriptorRegistry;
use super::status::StatusSource;
use super::tests_message::frame;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Encode `json` (proto3 JSON) as the message type `type_name` of descriptor set `set`.
fn encode(registry: &DescriptorRegistry, set: &str, type_name: &str, json: &Value) -> Vec<u8> {
    let Some(desc) = registry
        .pool(set)
        .and_then(|pool| pool.get_message_by_name(type_name))
    else {
        panic!("{set}: no message {type_name}");
    };
    match DynamicMessage::deserialize(desc, json.clone()) {
        Ok(message) => message.encode_to_vec(),
        Err(err) => panic!("{type_name} from {json}: {err}"),
    }
}

fn ok_trailers() -> Vec<(String, String)> {
    pairs(&[("grpc-status", "0"), ("grpc-message", "")])
}

fn request_headers() -> Vec<(String, String)> {
    pairs(&[
        (":method", "POST"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

fn response_headers() -> Vec<(String, String)> {
    pairs(&[(":status", "200"), ("content-type", "application/grpc")])
}

#[test]
fn qdrant_search_points_round_trips() {
    let registry = DescriptorRegistry::builtin();
    let request = json!({
        "collection_name": "docs",
        "vector": [0.5, -1.0, 0.25, 2.0],
        "filter": {"must": [{"field": {"key": "tenant", "match": {"keyword": "acme"}}}]},
        "limit": 5,
        "with_payload": {"enable": true}
    });
    let response = json!({
        "result": [
            {"id": {"num": 42}, "payload": {"title": {"string_value": "Q3 report"}}, "score": 0.875, "version": 3},
            {"id": {"uuid": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"}, "score": 0.5}
        ],
        "time": 0.002
    });
    let req_body = frame(
        false,
        &encode(&registry, "qdrant", "qdrant.SearchPoints", &request),
    );
    let resp_body = frame(
        false,
        &encode(&registry, "qdrant", "qdrant.SearchResponse", &response),
    );
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &request_headers(),
        &req_body,
        &response_headers(),
        &resp_body,
        &ok_trailers(),
        &registry,
    );
    assert_eq!(
        (call.service.as_deref(), call.method.as_deref()),
        (Some("qdrant.Points"), Some("Search"))
    );
    assert_eq!(call.decoded_by, "qdrant");
    assert_eq!(call.request_type.as_deref(), Some("qdrant.SearchPoints"));
    assert_eq!(call.response_type.as_deref(), Some("qdrant.SearchResponse"));
    let got_request = call.request.values().next().cloned();
    assert_eq!(
        got_request.as_ref().map(|v| v["collection_name"].clone()),
        Some(json!("docs"))
    );
    assert_eq!(
        got_request.as_ref().map(|v| v["vector"].clone()),
        Some(json!([0.5, -1.0, 0.25, 2.0]))
    );
    assert_eq!(
        got_request
            .as_ref()
            .map(|v| v["filter"]["must"][0]["field"]["key"].clone()),
        Some(json!("tenant"))
    );
    assert_eq!(got_request, Some(request));
    assert_eq!(call.response.values().next(), Some(&response));
    assert_eq!(
        call.request.messages.first().map(|m| &m.decoded_by),
        Some(&DecodedBy::Descriptor {
            set: "qdrant".into(),
            message_type: "qdrant.SearchPoints".into()
        })
    );
    assert_eq!(call.grpc_status(), Some(0));
    assert!(call.errors.is_empty() && call.request.messages.iter().all(|m| m.errors.is_empty()));
}

#[test]
fn weaviate_search_round_trips() {
    let registry = DescriptorRegistry::builtin();
    let vector: Vec<u8> = [0.5f32, 0.25, -1.0, 2.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let vector_b64 = base64_encode(&vector);
    let request = json!({
        "collection": "Article",
        "limit": 3,
        "filters": {"operator": "OPERATOR_EQUAL", "on": ["category"], "value_text": "news"},
        "near_vector": {"certainty": 0.75, "vectors": [{"name": "default", "vector_bytes": vector_b64, "type": "VECTOR_TYPE_SINGLE_FP32"}]},
        "metadata": {"uuid": true, "distance": true}
    });
    let response = json!({
        "took": 0.5,
        "results": [{"metadata": {"id": "0c5a7bd9-1b8d-4c6e-9ec6-1d3bd5b0a7a1", "distance": 0.25, "distance_present": true}}]
    });
    let req_body = frame(
        false,
        &encode(&registry, "weaviate", "weaviate.v1.SearchRequest", &request),
    );
    let resp_body = frame(
        false,
        &encode(&registry, "weaviate", "weaviate.v1.SearchReply", &response),
    );
    let call = decode_grpc_call(
        "/weaviate.v1.Weaviate/Search",
        &request_headers(),
        &req_body,
        &response_headers(),
        &resp_body,
        &ok_trailers(),
        &registry,
    );
    assert_eq!(call.decoded_by, "weaviate");
    assert_eq!(call.request.values().next(), Some(&request));
    assert_eq!(call.response.values().next(), Some(&response));
}

#[test]
fn pinecone_query_round_trips_on_both_revisions() {
    let registry = DescriptorRegistry::builtin();
    let request = json!({
        "namespace": "prod",
        "top_k": 5,
        "vector": [0.5, 0.25, 0.125, 1.0],
        "filter": {"genre": {"$eq": "drama"}, "year": {"$gte": 2020.0}},
        "include_metadata": true
    });
    let response = json!({
        "matches": [{"id": "vec-1", "score": 0.875, "metadata": {"genre": "drama", "title": "Rain"}}],
        "namespace": "prod",
        "usage": {"read_units": 5}
    });
    let req_body = frame(
        false,
        &encode(&registry, "pinecone-2026-04", "QueryRequest", &request),
    );
    let resp_body = frame(
        false,
        &encode(&registry, "pinecone-2026-04", "QueryResponse", &response),
    );
    let call = decode_grpc_call(
        "/VectorService/Query",
        &request_headers(),
        &req_body,
        &response_headers(),
        &resp_body,
        &ok_trailers(),
        &registry,
    );
    assert_eq!(call.decoded_by, "pinecone-2026-04");
    assert_eq!(call.request.values().next(), Some(&request));
    assert_eq!(call.response.values().next(), Some(&response));
    // The 2024-03 revision's QueryRequest reads the same bytes too (fields kept their numbers).
    let old = registry
        .pool("pinecone-2024-03")
        .and_then(|p| p.get_message_by_name("QueryRequest"));
    let bytes = encode(&registry, "pinecone-2024-03", "QueryRequest", &request);
    let decoded = old.map(|desc| decode_with_descriptor(&desc, &bytes));
    assert_eq!(decoded, Some(Ok(request)));
}

#[test]
fn compressed_messages_are_inflated() {
    let registry = DescriptorRegistry::builtin();
    let request = json!({"collection_name": "docs", "limit": 7});
    let plain = encode(&registry, "qdrant", "qdrant.SearchPoints", &request);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(&plain);
    let gz = gz.finish().unwrap_or_default();
    let mut body = frame(true, &gz);
    body.extend(frame(false, &plain));
    let mut headers = request_headers();
    headers.push(("grpc-encoding".into(), "gzip".into()));
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &headers,
        &body,
        &response_headers(),
        &[],
        &ok_trailers(),
        &registry,
    );
    assert_eq!(call.request.compressed_messages, 1);
    assert_eq!(
        call.request.values().cloned().collect::<Vec<_>>(),
        vec![request.clone(), request.clone()]
    );
    assert_eq!(
        call.request
            .messages
            .first()
            .map(|m| (m.wire_len as usize, m.decoded_len)),
        Some((gz.len(), Some(plain.len())))
    );
    // Unknown encodings are marked, and the raw bytes kept.
    let mut snappy = request_headers();
    snappy.push(("grpc-encoding".into(), "snappy".into()));
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &snappy,
        &frame(true, &gz),
        &response_headers(),
        &[],
        &ok_trailers(),
        &registry,
    );
    let record = call.request.messages.first();
    assert_eq!(
        record.map(|m| m.errors.clone()),
        Some(vec![GrpcMessageError::UnknownEncoding("snappy".into())])
    );
    assert_eq!(
        record.map(|m| m.decoded_by.clone()),
        Some(DecodedBy::NotDecoded)
    );
    assert_eq!(
        record
            .and_then(|m| m.value.as_ref())
            .map(|v| v["len"].clone()),
        Some(json!(gz.len()))
    );
}

#[test]
fn trailers_only_error_response() {
    let registry = DescriptorRegistry::builtin();
    let req = frame(
        false,
        &encode(
            &registry,
            "qdrant",
            "qdrant.SearchPoints",
            &json!({"collection_name": "nope"}),
        ),
    );
    let headers = pairs(&[
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "5"),
        (
            "grpc-message",
            "Not%20found%3A%20Collection%20%60nope%60%20doesn%27t%20exist%21",
        ),
    ]);
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &request_headers(),
        &req,
        &headers,
        &[],
        &[],
        &registry,
    );
    assert_eq!(call.grpc_status(), Some(5));
    assert_eq!(
        call.status.as_ref().map(|s| (s.code_name(), s.source)),
        Some(("NOT_FOUND", StatusSource::TrailersOnlyHeaders))
    );
    assert_eq!(
        call.grpc_message(),
        Some("Not found: Collection `nope` doesn't exist!")
    );
    assert_eq!(call.response.message_count(), 0);
    assert!(call.errors.is_empty());
}

#[test]
fn descriptor_mismatch_falls_back_to_schemaless_and_keeps_the_error() {
    let registry = DescriptorRegistry::builtin();
    // Field 1 (collection_name, a string) carrying invalid UTF-8 but valid wire format.
    let body = frame(false, &[0x0a, 0x02, 0xc3, 0x28, 0x20, 0x05]);
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &request_headers(),
        &body,
        &response_headers(),
        &[],
        &ok_trailers(),
        &registry,
    );
    let record = call.request.messages.first();
    assert_eq!(
        record.map(|m| m.decoded_by.clone()),
        Some(DecodedBy::Schemaless)
    );
    assert!(
        matches!(
            record.map(|m| m.errors.as_slice()),
            Some([GrpcMessageError::Descriptor { .. }])
        ),
        "{record:?}"
    );
    assert_eq!(
        record.and_then(|m| m.value.clone()),
        Some(json!({"1": {"hex": "c328", "len": 2}, "4": 5}))
    );
}

#[test]
fn caps_are_counted_not_silent() {
    let registry = DescriptorRegistry::builtin();
    let limits = GrpcLimits {
        max_message_bytes: 8,
        max_decoded_messages: 2,
        ..GrpcLimits::default()
    };
    let mut body = frame(false, &[0x08, 0x01]);
    body.extend(frame(
        false,
        &[
            0x0a, 0x0a, b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9',
        ],
    ));
    body.extend(frame(false, &[0x08, 0x02]));
    body.extend(frame(false, &[0x08, 0x03]));
    let exchange = GrpcExchange {
        path: "/x.Y/Z",
        req_headers: &[],
        req_body: &body,
        resp_headers: &[],
        resp_body: &[],
        trailers: &[],
    };
    let call = decode_grpc_call_with_limits(&exchange, &registry, &limits);
    let errors: Vec<Vec<GrpcMessageError>> = call
        .request
        .messages
        .iter()
        .map(|m| m.errors.clone())
        .collect();
    assert_eq!(
        errors,
        vec![
            vec![],
            vec![GrpcMessageError::Oversized {
                declared: 12,
                cap: 8
            }],
            vec![],
            vec![GrpcMessageError::DecodeBudgetExhausted(2)],
        ]
    );
    assert_eq!(call.request.counters.oversized_messages, 1);
    assert_eq!(call.request.message_bytes, 2 + 12 + 2 + 2);
    assert_eq!(call.request.data_bytes, body.len() as u64);
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(
                    ALPHABET
                        .get((n >> (18 - 6 * i) & 63) as usize)
                        .copied()
                        .unwrap_or(b'='),
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(
        req in prop::collection::vec(any::<u8>(), 0..300),
        resp in prop::collection::vec(any::<u8>(), 0..300),
        path in prop::sample::select(vec!["/qdrant.Points/Search", "/weaviate.v1.Weaviate/Search", "/VectorService/Query", "/x/y", "", "garbage"]),
        encoding in prop::sample::select(vec!["identity", "gzip", "deflate", "zstd", "snappy"]),
        status in ".{0,6}",
    ) {
        let registry = DescriptorRegistry::builtin();
        let headers = vec![("grpc-encoding".to_string(), encoding.to_string())];
        let trailers = vec![("grpc-status".to_string(), status), ("grpc-message".to_string(), "%ff%zz%".to_string())];
        let call = decode_grpc_call(path, &headers, &req, &headers, &resp, &trailers, &registry);
        prop_assert_eq!(call.request.data_bytes, req.len() as u64);
        // Every framed message carries a value or an error: nothing is dropped silently.
        for m in call.request.messages.iter().chain(&call.response.messages) {
            prop_assert!(m.value.is_some() || !m.errors.is_empty());
        }
    }

    #[test]
    fn framed_random_messages_never_panic(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..5),
    ) {
        let registry = DescriptorRegistry::builtin();
        let body: Vec<u8> = bodies.iter().flat_map(|b| frame(false, b)).collect();
        let call = decode_grpc_call("/qdrant.Points/Search", &[], &body, &[], &body, &[], &registry);
        prop_assert_eq!(call.request.message_count(), bodies.len());
        prop_assert_eq!(call.response.message_count(), bodies.len());
        prop_assert!(call.request.stream_error.is_none());
    }
}

#[test]
fn call_renders_as_json() {
    let registry = DescriptorRegistry::builtin();
    let request = json!({"collection_name": "docs", "limit": 2});
    let req_body = frame(
        false,
        &encode(&registry, "qdrant", "qdrant.SearchPoints", &request),
    );
    let headers = pairs(&[
        (":status", "200"),
        ("grpc-status", "16"),
        ("grpc-message", "bad%20key"),
    ]);
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &request_headers(),
        &req_body,
        &headers,
        &[1, 2],
        &[],
        &registry,
    );
    let out = call.to_json();
    assert_eq!(out["service"], json!("qdrant.Points"));
    assert_eq!(out["decoded_by"], json!("qdrant"));
    assert_eq!(out["request"]["messages"][0]["value"], request);
    assert_eq!(
        out["request"]["messages"][0]["message_type"],
        json!("qdrant.SearchPoints")
    );
    assert_eq!(
        out["response"]["stream_error"],
        json!("stream ended inside a 5-byte message prefix (2 bytes left)")
    );
    assert_eq!(
        (
            out["grpc_status"].clone(),
            out["grpc_status_name"].clone(),
            out["grpc_message"].clone()
        ),
        (json!(16), json!("UNAUTHENTICATED"), json!("bad key"))
    );
    assert_eq!(out["status_source"], json!("trailers_only"));
}

fn length_delimited(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let mut len = body.len() as u64;
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(body);
    out
}

/// qdrant.SearchPoints whose filter nests `pairs` Filter -> Condition levels.
fn nested_filter_search(pairs: usize) -> Vec<u8> {
    let mut filter = Vec::new();
    for _ in 0..pairs {
        let condition = length_delimited(0x22, &filter); // Condition.filter = 4
        filter = length_delimited(0x12, &condition); // Filter.must = 2
    }
    length_delimited(0x1a, &filter) // SearchPoints.filter = 3
}

#[test]
fn deep_nesting_stays_within_a_worker_thread_stack() {
    // prost stops decoding at 100 nested messages; below that the JSON serializer recurses
    // as deep. Run on a 2 MiB stack (a tokio worker's default) in a debug build.
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let registry = DescriptorRegistry::builtin();
            let mut outcomes = Vec::new();
            for pairs in [10, 40, 49, 50, 200, 2000] {
                let body = frame(false, &nested_filter_search(pairs));
                let call = decode_grpc_call(
                    "/qdrant.Points/Search",
                    &[],
                    &body,
                    &[],
                    &[],
                    &[],
                    &registry,
                );
                let record = call.request.messages.first().cloned();
                outcomes.push((
                    pairs,
                    record.map(|m| (m.decoded_by, m.errors.len(), m.value.is_some())),
                ));
            }
            outcomes
        });
    let outcomes = worker.map(|handle| handle.join());
    let Ok(Ok(outcomes)) = outcomes else {
        panic!("decoding overflowed or panicked: {outcomes:?}")
    };
    let descriptor = DecodedBy::Descriptor {
        set: "qdrant".into(),
        message_type: "qdrant.SearchPoints".into(),
    };
    for (pairs, outcome) in outcomes {
        if pairs <= 49 {
            assert_eq!(outcome, Some((descriptor.clone(), 0, true)), "{pairs}");
        } else {
            // Too deep for prost: a Descriptor error, then the bounded schema-less walk.
            assert_eq!(outcome, Some((DecodedBy::Schemaless, 1, true)), "{pairs}");
        }
    }
}

#[test]
fn grpc_json_messages_are_parsed_as_json() {
    let registry = DescriptorRegistry::builtin();
    let headers = pairs(&[("content-type", "application/grpc+json")]);
    let mut body = frame(false, br#"{"collection_name":"docs","limit":3}"#);
    body.extend(frame(false, b"{not json"));
    let call = decode_grpc_call(
        "/qdrant.Points/Search",
        &headers,
        &body,
        &headers,
        &[],
        &ok_trailers(),
        &registry,
    );
    let first = call.request.messages.first();
    assert_eq!(first.map(|m| m.decoded_by.clone()), Some(DecodedBy::Json));
    assert_eq!(
        first.and_then(|m| m.value.clone()),
        Some(json!({"collection_name": "docs", "limit": 3}))
    );
    let second = call.request.messages.get(1);
    assert!(
        matches!(
            second.map(|m| m.errors.as_slice()),
            Some([GrpcMessageError::NotJson { .. }])
        ),
        "{second:?}"
    );
}

#[test]
fn status_details_fall_back_and_report_damage() {
    let registry = DescriptorRegistry::builtin();
    let with = |value: &str| {
        let trailers = pairs(&[("grpc-status", "13"), ("grpc-status-details-bin", value)]);
        decode_grpc_call("/x.Y/Z", &[], &[], &[], &[], &trailers, &registry)
    };
    // google.rpc.Status {code: 13, message: "boom"}, unpadded base64.
    let call = with("CA0SBGJvb20");
    assert_eq!(
        call.status.and_then(|s| s.details),
        Some(json!({"code": 13, "message": "boom"}))
    );
    // Without the google-rpc set the same bytes are walked schema-less.
    let empty = DescriptorRegistry::empty();
    let trailers = pairs(&[
        ("grpc-status", "13"),
        ("grpc-status-details-bin", "CA0SBGJvb20="),
    ]);
    let call = decode_grpc_call("/x.Y/Z", &[], &[], &[], &[], &trailers, &empty);
    assert_eq!(
        call.status.and_then(|s| s.details),
        Some(json!({"1": 13, "2": "boom"}))
    );
    // True binary kept intact, true binary damaged by lossy UTF-8, and garbage.
    let call = with("\u{0}\u{8}\u{d}\u{12}\u{4}boom");
    assert_eq!(
        call.status.and_then(|s| s.details),
        Some(json!({"code": 13, "message": "boom"}))
    );
    for bad in ["\u{0}\u{FFFD}\u{FFFD}", "not base64!", "/w"] {
        let call = with(bad);
        assert!(
            matches!(
                call.errors.as_slice(),
                [super::error::GrpcCallError::BadStatusDetails(_)]
            ),
            "{bad:?}: {:?}",
            call.errors
        );
        assert_eq!(call.grpc_status(), Some(13));
    }
}
