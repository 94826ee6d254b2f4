//! Real captures: DeepFlow's gRPC pcaps (deepflowio/deepflow, Apache-2.0), their HTTP/2 DATA
//! bytes and headers extracted to `tests/fixtures/grpc/*.json` by `extract.py`; expectations
//! (service, method, message sizes, grpc-status) from DeepFlow's `.result` files beside them.
//! And loopback recordings of the Qdrant, Weaviate and Pinecone client libraries' generated
//! stubs over grpcio (`record_*.py`): real client serialization, gzip, percent-encoded
//! grpc-message; the Pinecone client speaks API 2025-04 and is decoded by our 2026-04 set.

use serde_json::Value;

use super::call::{DecodedBy, GrpcCall, SCHEMALESS, decode_grpc_call};
use super::error::{GrpcCallError, GrpcMessageError};
use super::registry::DescriptorRegistry;
use super::status::StatusSource;

struct Fixture {
    path: String,
    req_headers: Vec<(String, String)>,
    resp_headers: Vec<(String, String)>,
    trailers: Vec<(String, String)>,
    req_data: Vec<u8>,
    resp_data: Vec<u8>,
}

fn load(name: &str) -> Fixture {
    let file = format!(
        "{}/tests/fixtures/grpc/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{file}: {err}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{file}: {err}"));
    let pairs = |key: &str| -> Vec<(String, String)> {
        json[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap_or_default().to_string(),
                            p[1].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let hex = |key: &str| -> Vec<u8> {
        let text = json[key].as_str().unwrap_or_default();
        (0..text.len() / 2)
            .filter_map(|i| text.get(2 * i..2 * i + 2))
            .filter_map(|h| u8::from_str_radix(h, 16).ok())
            .collect()
    };
    Fixture {
        path: json["path"].as_str().unwrap_or_default().to_string(),
        req_headers: pairs("req_headers"),
        resp_headers: pairs("resp_headers"),
        trailers: pairs("trailers"),
        req_data: hex("req_data_hex"),
        resp_data: hex("resp_data_hex"),
    }
}

fn decode(name: &str) -> GrpcCall {
    let f = load(name);
    decode_grpc_call(
        &f.path,
        &f.req_headers,
        &f.req_data,
        &f.resp_headers,
        &f.resp_data,
        &f.trailers,
        &DescriptorRegistry::builtin(),
    )
}

/// Sizes as DeepFlow reports them (`req_content_length` / `resp_content_length` of a DATA
/// frame carrying one message): body + 5-byte prefix.
fn framed_sizes(side: &super::call::GrpcSide) -> Vec<u64> {
    side.messages
        .iter()
        .map(|m| u64::from(m.wire_len) + 5)
        .collect()
}

/// Every string anywhere in a JSON value.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn all_strings(call: &GrpcCall) -> Vec<String> {
    let mut out = Vec::new();
    call.request
        .values()
        .chain(call.response.values())
        .for_each(|v| strings(v, &mut out));
    out
}

#[test]
fn unary() {
    // grpc-unary.result: path "/agent.Synchronizer/Sync", service_name "agent.Synchronizer",
    // req_content_length 242; response status 200 with no grpc-status (capture ends mid-body).
    let call = decode("grpc-unary");
    assert_eq!(call.service.as_deref(), Some("agent.Synchronizer"));
    assert_eq!(call.method.as_deref(), Some("Sync"));
    assert_eq!(call.decoded_by, SCHEMALESS);
    assert_eq!(framed_sizes(&call.request), vec![242]);
    assert_eq!(
        call.request.messages.first().map(|m| &m.decoded_by),
        Some(&DecodedBy::Schemaless)
    );
    let texts = all_strings(&call);
    for expected in ["deepflow-agent-ee", "x86_64", "10.50.1.13"] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} not in {texts:?}"
        );
    }
    // The response message declares 54864 bytes; 1331 were captured.
    assert_eq!(call.response.message_count(), 0);
    assert_eq!(
        call.response.stream_error,
        Some(GrpcMessageError::Incomplete {
            got: 1331,
            declared: 54864
        })
    );
    assert_eq!(call.grpc_status(), None);
    assert_eq!(call.errors, vec![GrpcCallError::MissingStatus]);
}

#[test]
fn segmented() {
    // grpc-segmented.result: path "/agent.Synchronizer/Push", service_name "agent.Synchronizer";
    // the HEADERS and DATA frames straddle TCP segments; one 2433-byte request message.
    let call = decode("grpc-segmented");
    assert_eq!(call.service.as_deref(), Some("agent.Synchronizer"));
    assert_eq!(call.method.as_deref(), Some("Push"));
    assert_eq!(framed_sizes(&call.request), vec![2438]);
    assert_eq!(call.request.stream_error, None);
    let record = call.request.messages.first();
    assert_eq!(
        record.map(|m| m.errors.is_empty()),
        Some(true),
        "{record:?}"
    );
    let texts = all_strings(&call);
    assert!(
        texts.iter().any(|t| t.contains("deepflow-agent")),
        "{texts:?}"
    );
    assert_eq!(call.response.message_count(), 0);
}

#[test]
fn server_stream() {
    // grpc-server-stream.result: "/timeseriesquery.TimeSeriesQueryService/ServerStreamQuery",
    // service_name "timeseriesquery.TimeSeriesQueryService", req_content_length 35,
    // resp_content_length 1235, 251, 497, 743 then 497 with grpc_status_code Some(0).
    let call = decode("grpc-server-stream");
    assert_eq!(
        call.service.as_deref(),
        Some("timeseriesquery.TimeSeriesQueryService")
    );
    assert_eq!(call.method.as_deref(), Some("ServerStreamQuery"));
    assert_eq!(framed_sizes(&call.request), vec![35]);
    assert_eq!(framed_sizes(&call.response), vec![1235, 251, 497, 743, 497]);
    assert_eq!(call.response.stream_error, None);
    assert_eq!(call.grpc_status(), Some(0));
    assert_eq!(
        call.status.as_ref().map(|s| s.source),
        Some(StatusSource::Trailers)
    );
    assert_eq!(call.grpc_message(), None);
    assert!(call.errors.is_empty(), "{:?}", call.errors);
    // Every response message walks fully; the first series is labelled metric=cpu_usage.
    assert!(
        call.response
            .messages
            .iter()
            .all(|m| m.decoded_by == DecodedBy::Schemaless && m.errors.is_empty())
    );
    let first = call
        .response
        .messages
        .first()
        .and_then(|m| m.value.as_ref());
    let label = first.and_then(|v| v["1"][0]["1"][0].as_object()).cloned();
    assert_eq!(
        label.map(Value::Object),
        Some(serde_json::json!({"1": "metric", "2": "cpu_usage"}))
    );
    let request = call.request.messages.first().and_then(|m| m.value.clone());
    assert_eq!(
        request.as_ref().map(|v| v["1"]["2"].clone()),
        Some(serde_json::json!(["host_id", "vpc"]))
    );
}

#[test]
fn client_stream_service_name() {
    // grpc-service-name.result: "/StreamingService/ClientStreamRPC", service_name
    // "StreamingService", three req_content_length 30, resp_content_length 108, grpc_status 0.
    let call = decode("grpc-service-name");
    assert_eq!(call.service.as_deref(), Some("StreamingService"));
    assert_eq!(call.method.as_deref(), Some("ClientStreamRPC"));
    assert_eq!(framed_sizes(&call.request), vec![30, 30, 30]);
    assert_eq!(framed_sizes(&call.response), vec![108]);
    assert_eq!(call.grpc_status(), Some(0));
    let requests: Vec<Value> = call.request.values().cloned().collect();
    assert_eq!(
        requests,
        (0..3)
            .map(|i| serde_json::json!({"1": format!("Client Stream Message {i}")}))
            .collect::<Vec<_>>()
    );
    let response = call.response.values().next().cloned();
    assert_eq!(
        response,
        Some(
            serde_json::json!({"1": "Client Stream RPC response: [Client Stream Message 0 Client Stream Message 1 Client Stream Message 2]"})
        )
    );
}

#[test]
fn unknown_path() {
    // grpc-unknown.result: the :path was HPACK-indexed from a dynamic table the capture missed,
    // so path "" and service_name None; req_content_length 5 (an empty message),
    // resp_content_length 170, no grpc-status.
    let call = decode("grpc-unknown");
    assert_eq!(call.path, "");
    assert_eq!(
        (call.service.as_deref(), call.method.as_deref()),
        (None, None)
    );
    assert_eq!(framed_sizes(&call.request), vec![5]);
    assert_eq!(call.request.values().next(), Some(&serde_json::json!({})));
    assert_eq!(framed_sizes(&call.response), vec![170]);
    let currencies = call.response.values().next().map(|v| v["1"].clone());
    let currencies: Vec<String> = currencies
        .and_then(|v| v.as_array().cloned())
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(currencies.len(), 33);
    assert_eq!(
        currencies.get(..3),
        Some(&["EUR".to_string(), "USD".into(), "JPY".into()][..])
    );
    assert_eq!(
        call.errors,
        vec![
            GrpcCallError::BadPath(String::new()),
            GrpcCallError::MissingStatus
        ]
    );
}

#[test]
fn qdrant_client_search() {
    // record_qdrant.py stream 1: grpc-encoding gzip announced, messages too small to compress.
    let call = decode("qdrant-client-s1");
    assert_eq!(call.decoded_by, "qdrant");
    assert_eq!(
        call.request.encoding,
        super::compression::GrpcEncoding::Gzip
    );
    assert_eq!(
        (
            call.request.compressed_messages,
            call.response.compressed_messages
        ),
        (0, 0)
    );
    let request = serde_json::json!({
        "collection_name": "docs",
        "vector": [0.5, -1.0, 0.25, 2.0],
        "filter": {"must": [{"field": {"key": "tenant", "match": {"keyword": "acme"}}}]},
        "limit": 5,
        "with_payload": {"enable": true}
    });
    assert_eq!(call.request.values().collect::<Vec<_>>(), vec![&request]);
    let response = serde_json::json!({
        "result": [
            {"id": {"num": 42}, "payload": {"title": {"string_value": "Q3 report"}, "year": {"integer_value": 2024}}, "score": 0.875, "version": 3},
            {"id": {"uuid": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"}, "score": 0.5}
        ],
        "time": 0.002
    });
    assert_eq!(call.response.values().collect::<Vec<_>>(), vec![&response]);
    assert_eq!(call.grpc_status(), Some(0));
    assert!(call.errors.is_empty(), "{:?}", call.errors);
}

#[test]
fn qdrant_client_trailers_only_not_found() {
    // record_qdrant.py stream 3: grpcio percent-encodes '%' and non-ASCII in grpc-message.
    let call = decode("qdrant-client-s3");
    assert_eq!(
        call.request.values().next(),
        Some(&serde_json::json!({"collection_name": "missing", "vector": [1.0], "limit": 1}))
    );
    assert_eq!(call.response.message_count(), 0);
    assert_eq!(call.grpc_status(), Some(5));
    assert_eq!(
        call.status.as_ref().map(|s| (s.code_name(), s.source)),
        Some(("NOT_FOUND", StatusSource::TrailersOnlyHeaders))
    );
    assert_eq!(
        call.grpc_message(),
        Some("Not found: Collection `missing` doesn't exist! (100% sure, \u{2713})")
    );
}

#[test]
fn qdrant_client_gzip_compressed() {
    // record_qdrant.py stream 5: both messages gzip-compressed by grpc-core (flag 1).
    let call = decode("qdrant-client-s5");
    assert_eq!(
        (
            call.request.compressed_messages,
            call.response.compressed_messages
        ),
        (1, 1)
    );
    for side in [&call.request, &call.response] {
        let m = side.messages.first();
        assert!(
            m.is_some_and(
                |m| m.errors.is_empty() && m.decoded_len.is_some_and(|n| n > m.wire_len as usize)
            ),
            "{m:?}"
        );
    }
    let request = call.request.values().next().cloned().unwrap_or_default();
    assert_eq!(request["collection_name"], serde_json::json!("big"));
    assert_eq!(request["limit"], serde_json::json!(20));
    assert_eq!(
        request["vector"]
            .as_array()
            .map(|v| (v.len(), v.iter().all(|x| x == 0.25))),
        Some((256, true))
    );
    let response = call.response.values().next().cloned().unwrap_or_default();
    let results = response["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 20);
    assert_eq!(
        results
            .get(3)
            .map(|r| r["payload"]["text"]["string_value"].clone()),
        Some(serde_json::json!(
            "chunk 3: the quarterly report says revenue grew"
        ))
    );
    assert_eq!(
        results
            .get(1)
            .map(|r| (r["id"]["num"].clone(), r["score"].clone())),
        Some((serde_json::json!(1), serde_json::json!(0.5)))
    );
    assert_eq!(call.grpc_status(), Some(0));
}

/// The only message of each side of a recorded call, which must have decoded cleanly.
fn only_values(call: &GrpcCall) -> (Value, Value) {
    for m in call.request.messages.iter().chain(&call.response.messages) {
        assert!(
            m.errors.is_empty() && matches!(m.decoded_by, DecodedBy::Descriptor { .. }),
            "{m:?}"
        );
    }
    assert_eq!(
        (call.request.message_count(), call.response.message_count()),
        (1, 1)
    );
    assert_eq!(call.grpc_status(), Some(0));
    let request = call.request.values().next().cloned().unwrap_or_default();
    let response = call.response.values().next().cloned().unwrap_or_default();
    (request, response)
}

#[test]
fn weaviate_client_search() {
    let call = decode("weaviate-client-s1");
    assert_eq!(call.decoded_by, "weaviate");
    let (request, response) = only_values(&call);
    assert_eq!(
        request,
        serde_json::json!({
            "collection": "Article",
            "limit": 3,
            "filters": {"operator": "OPERATOR_EQUAL", "on": ["category"], "value_text": "news"},
            "near_vector": {"certainty": 0.75, "vectors": [
                {"name": "default", "vector_bytes": "AAAAPwAAgD4AAIC/AAAAQA==", "type": "VECTOR_TYPE_SINGLE_FP32"}
            ]},
            "metadata": {"uuid": true, "distance": true},
            "uses_127_api": true
        })
    );
    assert_eq!(
        response,
        serde_json::json!({"took": 0.5, "results": [{
            "properties": {
                "non_ref_props": {"fields": {"title": {"text_value": "Rain over Lisbon"}, "wordCount": {"int_value": 812}}},
                "target_collection": "Article"
            },
            "metadata": {"id": "0c5a7bd9-1b8d-4c6e-9ec6-1d3bd5b0a7a1", "distance": 0.25, "distance_present": true}
        }]})
    );
}

#[test]
fn weaviate_client_batch_objects() {
    let call = decode("weaviate-client-s3");
    let (request, response) = only_values(&call);
    assert_eq!(
        request,
        serde_json::json!({"objects": [
            {"uuid": "00000000-0000-4000-8000-000000000000", "collection": "Note",
             "properties": {"non_ref_properties": {"body": "Customer Jane Roe, jane.roe@example.com", "rank": 1.0}}},
            {"uuid": "00000000-0000-4000-8000-000000000001", "collection": "Note",
             "properties": {"non_ref_properties": {"body": "Invoice 2024-117 paid", "rank": 2.0}}}
        ]})
    );
    assert_eq!(response, serde_json::json!({"took": 0.125}));
}

#[test]
fn pinecone_client_query() {
    let call = decode("pinecone-client-s1");
    assert_eq!(call.decoded_by, "pinecone-2026-04");
    assert_eq!(
        (call.service.as_deref(), call.method.as_deref()),
        (Some("VectorService"), Some("Query"))
    );
    let (request, response) = only_values(&call);
    assert_eq!(
        request,
        serde_json::json!({
            "namespace": "prod", "top_k": 5, "filter": {"genre": {"$eq": "drama"}},
            "include_metadata": true, "vector": [0.5, 0.25, 0.125, 1.0]
        })
    );
    assert_eq!(
        response,
        serde_json::json!({
            "matches": [
                {"id": "vec-1", "score": 0.875, "metadata": {"genre": "drama", "title": "Rain"}},
                {"id": "vec-2", "score": 0.5, "metadata": {"genre": "drama", "title": "Snow"}}
            ],
            "namespace": "prod",
            "usage": {"read_units": 5}
        })
    );
}

#[test]
fn pinecone_client_upsert() {
    let call = decode("pinecone-client-s3");
    let (request, response) = only_values(&call);
    assert_eq!(
        request,
        serde_json::json!({"namespace": "prod", "vectors": [
            {"id": "doc-1", "values": [0.5, 0.5, 0.0, 1.0], "metadata": {"text": "Patient: John Doe, DOB 1970-01-01"}},
            {"id": "doc-2", "values": [1.0, 0.0, 0.25, 0.5], "metadata": {"text": "Q3 revenue grew 12%"}}
        ]})
    );
    assert_eq!(response, serde_json::json!({"upserted_count": 2}));
}

#[test]
fn qdrant_client_rich_error_details() {
    // record_qdrant.py stream 7: grpcio-status sends google.rpc.Status with a BadRequest in
    // grpc-status-details-bin (grpc-core "true binary"; stored base64 by extract.py).
    let call = decode("qdrant-client-s7");
    assert_eq!(call.grpc_status(), Some(3));
    assert_eq!(call.grpc_message(), Some("Wrong input: vector dimension"));
    assert!(call.errors.is_empty(), "{:?}", call.errors);
    assert_eq!(
        call.status.and_then(|s| s.details),
        Some(serde_json::json!({
            "code": 3,
            "message": "Wrong input: vector dimension",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [{"field": "vector", "description": "expected dim 4, got 3"}]
            }]
        }))
    );
}
