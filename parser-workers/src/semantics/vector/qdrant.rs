//! Qdrant: REST `/collections/{c}/points/...` (search, query, recommend, discover, scroll,
//! retrieve, upsert, delete, count, payload and vector updates) and collection calls, and gRPC
//! `qdrant.Points/*` and `qdrant.Collections/*` with messages decoded by descriptor.

use serde_json::Value;

use super::values::{array_len, dense_len, field, filter_present, integer, segments, string};
use super::{Draft, VectorRecognition};
use crate::protocols::grpc::GrpcCall;
use crate::semantics::http_view::HttpView;

const SYSTEM: &str = "qdrant";
/// Nesting followed when looking for a dense vector inside a query or point.
const MAX_VECTOR_DEPTH: usize = 6;
/// Fields whose number arrays are point ids or parameters, not vectors.
const NOT_VECTORS: &[&str] = &[
    "positive", "negative", "target", "context", "ids", "points", "indices", "values",
];

/// Qdrant's REST API, recognised by its `/collections/{name}/points...` paths (any host).
pub(crate) fn recognise_rest(view: &HttpView) -> Option<VectorRecognition> {
    let segs = segments(view.path());
    let at = segs.iter().position(|s| *s == "collections")?;
    let rest = &segs[at + 1..];
    let method = view.method.to_ascii_uppercase();
    let request = view.request_json();
    let response = view.response_json();
    let (operation, vendor) = match rest {
        [_, "points", tail @ ..] => match (method.as_str(), tail) {
            ("PUT", []) => ("upsert", "points/upsert".to_string()),
            ("POST", []) => ("fetch", "points/retrieve".to_string()),
            ("GET", [_id]) => ("fetch", "points/get".to_string()),
            ("POST", ["search" | "query" | "recommend" | "discover", ..]) => {
                ("query", format!("points/{}", tail.join("/")))
            }
            ("POST", ["facet"]) => ("query", "points/facet".to_string()),
            ("POST", ["scroll"]) => ("fetch", "points/scroll".to_string()),
            ("POST", ["delete"]) => ("delete", "points/delete".to_string()),
            ("POST", ["count"]) => ("count", "points/count".to_string()),
            ("POST" | "PUT", ["payload" | "vectors" | "batch", ..]) => {
                ("update", format!("points/{}", tail.join("/")))
            }
            _ => return None,
        },
        [] if method == "GET" && looks_like_qdrant_response(response.as_ref()) => {
            ("list", "collections/list".to_string())
        }
        [_] if looks_like_qdrant_response(response.as_ref())
            || creates_collection(request.as_ref()) =>
        {
            match method.as_str() {
                "PUT" => ("create_collection", "collections/create".to_string()),
                "DELETE" => ("delete_collection", "collections/delete".to_string()),
                "PATCH" => ("update_collection", "collections/update".to_string()),
                "GET" => ("describe", "collections/get".to_string()),
                _ => return None,
            }
        }
        _ => return None,
    };
    let mut draft = Draft::new(SYSTEM, operation, vendor);
    draft.collection = rest
        .first()
        .map(|c| crate::semantics::vector::values::path_decode(c));
    if let Some(req) = &request {
        read_request(&mut draft, req, "qdrant.request");
    }
    if let Some(result) = response.as_ref().and_then(|r| r.get("result")) {
        read_result(&mut draft, result, "qdrant.response.result");
    }
    if operation == "create_collection" {
        draft.dimension = request
            .as_ref()
            .and_then(|r| r.get("vectors"))
            .and_then(collection_size);
    }
    Some(draft.finish())
}

/// `{"result": ..., "status": "ok", "time": 0.001}` is every Qdrant REST answer.
fn looks_like_qdrant_response(resp: Option<&Value>) -> bool {
    resp.is_some_and(|r| {
        r.get("time").is_some() && (r.get("result").is_some() || r.get("status").is_some())
    })
}

fn creates_collection(req: Option<&Value>) -> bool {
    req.and_then(|r| r.get("vectors"))
        .is_some_and(|v| collection_size(v).is_some())
}

/// `{"size": 768, "distance": "Cosine"}` or named `{"text": {"size": ...}}`.
fn collection_size(v: &Value) -> Option<i32> {
    integer(v, &["size"])
        .or_else(|| v.as_object()?.values().find_map(|x| integer(x, &["size"])))
        .and_then(|n| i32::try_from(n).ok())
}

/// Qdrant's gRPC services (`qdrant.Points`, `qdrant.Collections`).
pub(crate) fn recognise_grpc(call: &GrpcCall) -> Option<VectorRecognition> {
    let service = call.service.as_deref()?;
    let method = call.method.as_deref()?;
    let operation = match service {
        "qdrant.Points" => match method {
            "Upsert" => "upsert",
            "Delete" => "delete",
            "Get" | "Scroll" => "fetch",
            "Count" => "count",
            "UpdateVectors" | "DeleteVectors" | "SetPayload" | "OverwritePayload"
            | "DeletePayload" | "ClearPayload" | "UpdateBatch" => "update",
            "CreateFieldIndex" => "create_index",
            "DeleteFieldIndex" => "delete_index",
            m if m.starts_with("Search")
                || m.starts_with("Query")
                || m.starts_with("Recommend")
                || m.starts_with("Discover")
                || m == "Facet" =>
            {
                "query"
            }
            _ => "admin",
        },
        "qdrant.Collections" => match method {
            "Create" => "create_collection",
            "Delete" => "delete_collection",
            "Update" => "update_collection",
            "Get" | "CollectionExists" | "CollectionClusterInfo" => "describe",
            "List" => "list",
            _ => "admin",
        },
        "qdrant.Snapshots" => "snapshot",
        _ => return None,
    };
    let mut draft = Draft::new(SYSTEM, operation, format!("{service}/{method}"));
    if let Some(req) = call.request.values().next() {
        draft.collection = string(req, &["collection_name"]);
        read_request(&mut draft, req, "qdrant.request");
    }
    if let Some(result) = call.response.values().next().and_then(|r| r.get("result")) {
        read_result(&mut draft, result, "qdrant.response.result");
    }
    Some(draft.finish())
}

/// limit, filter, query vector, and (upserts) the stored payloads of a request (REST or gRPC).
fn read_request(draft: &mut Draft, req: &Value, location: &str) {
    // Batches: the first search/query stands for the batch.
    let first = field(
        req,
        &[
            "searches",
            "search_points",
            "query_points",
            "searches_points",
        ],
    )
    .and_then(Value::as_array)
    .and_then(|a| a.first())
    .unwrap_or(req);
    draft.top_k = integer(first, &["limit"]);
    draft.filter_present = filter_present(first, &["filter"]);
    draft.dimension = field(first, &["vector", "query", "nearest"])
        .and_then(|v| dimension(v, 0))
        .or_else(|| {
            field(first, &["prefetch"])
                .and_then(|p| p.as_array().and_then(|a| a.first()).or(Some(p)))
                .and_then(|p| field(p, &["query"]))
                .and_then(|v| dimension(v, 0))
        });
    if draft.operation == "upsert" {
        if let Some(points) = field(req, &["points"]).and_then(Value::as_array) {
            draft.dimension = points
                .iter()
                .find_map(|p| field(p, &["vector", "vectors"]).and_then(|v| dimension(v, 0)));
            draft.results = None;
            for (i, p) in points.iter().enumerate() {
                if let Some(payload) = p.get("payload") {
                    draft
                        .payloads
                        .add(format!("{location}.points[{i}].payload"), payload);
                }
            }
        } else if let Some(batch) = req.get("batch") {
            draft.dimension = field(batch, &["vectors"])
                .and_then(|v| v.as_array().and_then(|a| a.first()).or(Some(v)))
                .and_then(|v| dimension(v, 0));
            if let Some(payloads) = batch.get("payloads").and_then(Value::as_array) {
                for (i, p) in payloads.iter().enumerate() {
                    draft
                        .payloads
                        .add(format!("{location}.batch.payloads[{i}]"), p);
                }
            }
        }
    }
    if draft.operation == "delete" {
        draft.filter_present |= field(req, &["points"]).is_some_and(|p| p.get("filter").is_some());
    }
}

/// The number of points a `result` holds, and their payloads.
fn read_result(draft: &mut Draft, result: &Value, location: &str) {
    match result {
        Value::Array(items) => {
            let nested = items
                .iter()
                .all(|i| i.is_array() || i.get("result").is_some() || i.get("points").is_some());
            if nested && !items.is_empty() {
                let mut total = 0;
                for (b, batch) in items.iter().enumerate() {
                    let points = batch
                        .as_array()
                        .or_else(|| field(batch, &["result", "points"]).and_then(Value::as_array));
                    for (i, p) in points.into_iter().flatten().enumerate() {
                        total += 1;
                        add_payload(draft, p, format!("{location}[{b}][{i}]"));
                    }
                }
                draft.results = Some(total);
            } else {
                draft.results = Some(items.len() as i64);
                for (i, p) in items.iter().enumerate() {
                    add_payload(draft, p, format!("{location}[{i}]"));
                }
            }
        }
        Value::Object(_) => {
            if let Some(points) = field(result, &["points"]).and_then(Value::as_array) {
                draft.results = Some(points.len() as i64);
                for (i, p) in points.iter().enumerate() {
                    add_payload(draft, p, format!("{location}.points[{i}]"));
                }
            } else if let Some(count) = integer(result, &["count"]) {
                draft.results = Some(count);
            } else if result.get("id").is_some() && result.get("status").is_none() {
                draft.results = Some(1);
                add_payload(draft, result, location.to_string());
            } else if let Some(groups) = array_len(result, &["groups"]) {
                draft.results = Some(groups);
            } else if let Some(collections) = array_len(result, &["collections"]) {
                draft.results = Some(collections);
            }
        }
        _ => {}
    }
}

fn add_payload(draft: &mut Draft, point: &Value, location: String) {
    if let Some(payload) = point.get("payload") {
        draft.payloads.add(format!("{location}.payload"), payload);
    }
}

/// Dense vector length in a REST vector (array, named `{name, vector}`, `{nearest: ...}`,
/// named map) or a gRPC `Vector`/`VectorInput` (`dense.data`, `data`); sparse ones have none.
fn dimension(v: &Value, depth: usize) -> Option<i32> {
    if depth > MAX_VECTOR_DEPTH {
        return None;
    }
    match v {
        Value::Array(a) => {
            dense_len(v).or_else(|| a.first().filter(|x| x.is_array()).and_then(dense_len))
        }
        Value::Object(m) => {
            if m.contains_key("indices") {
                return None;
            }
            for key in [
                "vector",
                "nearest",
                "dense",
                "data",
                "vectors",
                "multi_dense",
            ] {
                if let Some(d) = m.get(key).and_then(|x| dimension(x, depth + 1)) {
                    return Some(d);
                }
            }
            // A map of named vectors: `{"image": [..]}` or gRPC `{"image": {"dense": ..}}`.
            m.iter()
                .filter(|(k, _)| !NOT_VECTORS.contains(&k.as_str()))
                .find_map(|(_, x)| match x {
                    Value::Array(_) => dense_len(x),
                    Value::Object(o) if o.contains_key("dense") || o.contains_key("data") => {
                        dimension(x, depth + 1)
                    }
                    _ => None,
                })
        }
        _ => None,
    }
}
