//! Pinecone: the data plane over REST (`/query`, `/vectors/upsert|delete|fetch|update|list`,
//! `/describe_index_stats`, `/records/namespaces/{ns}/upsert|search`, `/namespaces`) and gRPC
//! (`VectorService/*`, package-qualified or not), and the control plane (`/indexes`,
//! `/collections` on api.pinecone.io). The index name comes from the index host
//! (`{index}-{project}.svc.{env}.pinecone.io`).

use serde_json::Value;

use super::values::{
    array_len, dense_len, field, filter_present, integer, path_decode, segments, string, url_decode,
};
use super::{Draft, VectorRecognition};
use crate::protocols::grpc::message::DEFAULT_MAX_MESSAGE_BYTES;
use crate::protocols::grpc::{
    DescriptorRegistry, GrpcCall, GrpcEncoding, decode_with_descriptor, decompress_message,
    split_messages,
};
use crate::semantics::http_view::HttpView;

const SYSTEM: &str = "pinecone";
/// NDJSON records read from an integrated-inference upsert body.
const MAX_NDJSON_RECORDS: usize = 1024;

/// Pinecone's REST data and control planes.
pub(crate) fn recognise_rest(view: &HttpView) -> Option<VectorRecognition> {
    let segs = segments(view.path());
    let method = view.method.to_ascii_uppercase();
    let request = view.request_json();
    let pinecone_host = view
        .host_name()
        .is_some_and(|h| h == "pinecone.io" || h.ends_with(".pinecone.io"));
    let control_plane = pinecone_host || view.request_header("x-pinecone-api-version").is_some();
    let (operation, vendor): (&'static str, String) = match (method.as_str(), segs.as_slice()) {
        ("POST", ["query"]) if request.as_ref().is_some_and(is_query_body) => {
            ("query", "query".into())
        }
        ("POST", ["vectors", "upsert"]) => ("upsert", "vectors/upsert".into()),
        ("POST", ["vectors", "delete"]) => ("delete", "vectors/delete".into()),
        ("GET", ["vectors", "fetch"]) => ("fetch", "vectors/fetch".into()),
        ("POST", ["vectors", "fetch_by_metadata"]) => ("fetch", "vectors/fetch_by_metadata".into()),
        ("POST", ["vectors", "update"]) => ("update", "vectors/update".into()),
        ("GET", ["vectors", "list"]) => ("list", "vectors/list".into()),
        ("GET" | "POST", ["describe_index_stats"]) => ("describe", "describe_index_stats".into()),
        ("POST", ["records", "namespaces", _, "upsert"]) => ("upsert", "records/upsert".into()),
        ("POST", ["records", "namespaces", _, "search"]) => ("query", "records/search".into()),
        (_, ["namespaces", ..]) if control_plane => namespace_call(&method, segs.len())?,
        (_, ["indexes" | "collections", ..]) if control_plane => control_call(&method, &segs)?,
        _ => return None,
    };
    let mut draft = Draft::new(SYSTEM, operation, vendor);
    draft.collection = view.host_name().as_deref().and_then(index_from_host);
    if let (["indexes" | "collections", name, ..], true) = (segs.as_slice(), control_plane) {
        draft.collection = Some(path_decode(name));
    }
    if let ["records", "namespaces", ns, ..] | ["namespaces", ns, ..] = segs.as_slice() {
        draft.namespace = Some(path_decode(ns)).filter(|n| !n.is_empty());
    }
    if let Some(ns) = view
        .query_param("namespace")
        .map(url_decode)
        .filter(|n| !n.is_empty())
    {
        draft.namespace = Some(ns);
    }
    if let Some(req) = &request {
        read_request(&mut draft, req);
    } else if vendor_is(&draft, "records/upsert") {
        read_ndjson_records(&mut draft, &view.request_body);
    }
    if operation == "fetch" && draft.top_k.is_none() {
        draft.top_k = Some(view.target.matches("ids=").count() as i64).filter(|n| *n > 0);
    }
    if let Some(resp) = view.response_json() {
        read_response(&mut draft, &resp);
    }
    Some(draft.finish())
}

fn vendor_is(draft: &Draft, name: &str) -> bool {
    draft.vendor_operation == name
}

/// `{"topK": 10, "vector": [...]}` (or by id, sparse vector, or several queries).
fn is_query_body(v: &Value) -> bool {
    field(v, &["topK", "top_k"]).is_some()
        && field(
            v,
            &["vector", "id", "sparseVector", "sparse_vector", "queries"],
        )
        .is_some()
}

fn namespace_call(method: &str, depth: usize) -> Option<(&'static str, String)> {
    Some(match (method, depth) {
        ("GET", 1) => ("list", "list_namespaces".into()),
        ("POST", 1) => ("create_collection", "create_namespace".into()),
        ("GET", 2) => ("describe", "describe_namespace".into()),
        ("DELETE", 2) => ("delete_collection", "delete_namespace".into()),
        _ => return None,
    })
}

fn control_call(method: &str, segs: &[&str]) -> Option<(&'static str, String)> {
    let kind = if segs.first() == Some(&"indexes") {
        "index"
    } else {
        "collection"
    };
    Some(match (method, segs.len()) {
        ("GET", 1) => (
            "list",
            format!("list_{kind}es").replace("collectiones", "collections"),
        ),
        ("POST", 1) => ("create_collection", format!("create_{kind}")),
        ("GET", 2) => ("describe", format!("describe_{kind}")),
        ("DELETE", 2) => ("delete_collection", format!("delete_{kind}")),
        ("PATCH", 2) => ("update_collection", format!("configure_{kind}")),
        _ => return None,
    })
}

/// `docs-example-a1b2c3d.svc.aped-4627-b74a.pinecone.io` -> `docs-example`.
fn index_from_host(host: &str) -> Option<String> {
    let (label, _) = host.split_once(".svc.")?;
    if !host.ends_with(".pinecone.io") {
        return None;
    }
    let name = label
        .rsplit_once('-')
        .map_or(label, |(name, _project)| name);
    Some(name.to_string()).filter(|n| !n.is_empty())
}

/// Pinecone's gRPC `VectorService` (`/VectorService/Query`, `/pinecone.VectorService/Query`).
pub(crate) fn recognise_grpc(view: &HttpView, call: &GrpcCall) -> Option<VectorRecognition> {
    let service = call.service.as_deref()?;
    if service != "VectorService" && !service.ends_with(".VectorService") {
        return None;
    }
    let method = call.method.as_deref()?;
    let operation = match method {
        "Query" => "query",
        "Upsert" => "upsert",
        "Delete" => "delete",
        "Fetch" | "FetchByMetadata" => "fetch",
        "Update" => "update",
        "List" | "ListNamespaces" => "list",
        "DescribeIndexStats" | "DescribeNamespace" => "describe",
        "CreateNamespace" => "create_collection",
        "DeleteNamespace" => "delete_collection",
        _ => "admin",
    };
    let mut draft = Draft::new(SYSTEM, operation, format!("{service}/{method}"));
    draft.collection = view.host_name().as_deref().and_then(index_from_host);
    // A package-qualified service the built-in sets do not name was decoded schema-less:
    // decode it again with the built-in Pinecone descriptors (same field numbers).
    let known = call.request_type.is_some();
    let request = match known {
        true => call.request.values().next().cloned(),
        false => redecode(
            &view.request_body,
            view.request_header("grpc-encoding"),
            method,
            true,
        ),
    };
    let response = match known {
        true => call.response.values().next().cloned(),
        false => redecode(
            &view.response_body,
            view.response_header("grpc-encoding"),
            method,
            false,
        ),
    };
    if let Some(req) = &request {
        read_request(&mut draft, req);
        if operation == "fetch" && draft.top_k.is_none() {
            draft.top_k = array_len(req, &["ids"]).filter(|n| *n > 0);
        }
    }
    if let Some(resp) = &response {
        read_response(&mut draft, resp);
    }
    Some(draft.finish())
}

/// The first message of a gRPC body decoded as the built-in `VectorService/<method>` input
/// (`request`) or output type.
fn redecode(body: &[u8], encoding: Option<&str>, method: &str, request: bool) -> Option<Value> {
    let found = DescriptorRegistry::builtin().lookup_method("VectorService", method)?;
    let descriptor = if request {
        found.input()
    } else {
        found.output()
    };
    let first = split_messages(body, DEFAULT_MAX_MESSAGE_BYTES)
        .messages
        .into_iter()
        .find(|m| !m.oversized)?;
    let bytes = if first.compressed {
        decompress_message(
            &GrpcEncoding::from_header(encoding),
            &first.payload,
            DEFAULT_MAX_MESSAGE_BYTES,
        )
        .ok()?
    } else {
        first.payload
    };
    decode_with_descriptor(&descriptor, &bytes).ok()
}

/// Namespace, top_k, filter, query vector dimension, and upserted metadata.
fn read_request(draft: &mut Draft, req: &Value) {
    if let Some(ns) = string(req, &["namespace"]) {
        draft.namespace = Some(ns);
    }
    let query = req.get("query").filter(|q| q.is_object()).unwrap_or(req);
    draft.top_k = integer(query, &["topK", "top_k", "limit"]);
    draft.filter_present = filter_present(query, &["filter"]);
    draft.dimension = field(query, &["vector", "values"])
        .and_then(dense_len)
        .or_else(|| {
            field(query, &["queries"])
                .and_then(Value::as_array)
                .and_then(|q| q.first())
                .and_then(|q| field(q, &["values"]))
                .and_then(dense_len)
        });
    if draft.top_k.is_none() {
        draft.top_k = field(req, &["queries"])
            .and_then(Value::as_array)
            .and_then(|q| q.first())
            .and_then(|q| integer(q, &["topK", "top_k"]));
    }
    if let Some(vectors) = field(req, &["vectors"]).and_then(Value::as_array) {
        draft.dimension = vectors
            .iter()
            .find_map(|v| field(v, &["values"]).and_then(dense_len));
        for (i, v) in vectors.iter().enumerate() {
            if let Some(m) = v.get("metadata") {
                draft
                    .payloads
                    .add(format!("pinecone.request.vectors[{i}].metadata"), m);
            }
        }
    }
    if let Some(m) = field(req, &["setMetadata", "set_metadata"]) {
        draft.payloads.add("pinecone.request.setMetadata".into(), m);
    }
}

/// Integrated-inference upserts send one JSON record a line.
fn read_ndjson_records(draft: &mut Draft, body: &[u8]) {
    for (i, line) in body
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .take(MAX_NDJSON_RECORDS)
        .enumerate()
    {
        if let Ok(record) = serde_json::from_slice::<Value>(line) {
            draft
                .payloads
                .add(format!("pinecone.request.records[{i}]"), &record);
        }
    }
}

/// Result counts and returned metadata.
fn read_response(draft: &mut Draft, resp: &Value) {
    if let Some(matches) = field(resp, &["matches"])
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    {
        draft.results = Some(matches.len() as i64);
        add_metadata(draft, matches, "pinecone.response.matches");
    } else if let Some(results) = field(resp, &["results"]).and_then(Value::as_array) {
        let mut total = 0;
        for (q, r) in results.iter().enumerate() {
            if let Some(matches) = field(r, &["matches"]).and_then(Value::as_array) {
                total += matches.len() as i64;
                add_metadata(
                    draft,
                    matches,
                    &format!("pinecone.response.results[{q}].matches"),
                );
            }
        }
        draft.results = Some(total);
    } else if let Some(hits) = resp
        .get("result")
        .and_then(|r| r.get("hits"))
        .and_then(Value::as_array)
    {
        draft.results = Some(hits.len() as i64);
        for (i, h) in hits.iter().enumerate() {
            if let Some(f) = h.get("fields") {
                draft
                    .payloads
                    .add(format!("pinecone.response.result.hits[{i}].fields"), f);
            }
        }
    } else if let Some(vectors) = field(resp, &["vectors"]) {
        match vectors {
            Value::Object(map) => {
                draft.results = Some(map.len() as i64);
                for (id, v) in map {
                    if let Some(m) = v.get("metadata") {
                        draft
                            .payloads
                            .add(format!("pinecone.response.vectors[{id}].metadata"), m);
                    }
                }
            }
            Value::Array(items) => draft.results = Some(items.len() as i64),
            _ => {}
        }
    } else if let Some(n) = integer(resp, &["upsertedCount", "upserted_count"]) {
        draft.results = Some(n);
    } else if matches!(draft.operation, "query") {
        draft.results = Some(0);
    }
    if draft.dimension.is_none() {
        draft.dimension = integer(resp, &["dimension"]).and_then(|d| i32::try_from(d).ok());
    }
    if draft.namespace.is_none() {
        draft.namespace = string(resp, &["namespace"]);
    }
}

fn add_metadata(draft: &mut Draft, matches: &[Value], location: &str) {
    for (i, m) in matches.iter().enumerate() {
        if let Some(meta) = m.get("metadata") {
            draft
                .payloads
                .add(format!("{location}[{i}].metadata"), meta);
        }
    }
}
