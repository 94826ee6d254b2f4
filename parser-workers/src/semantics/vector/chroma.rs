//! Chroma: REST `/api/v1/collections/{id}/{query|add|upsert|update|delete|get|count}` and the
//! v2 form `/api/v2/tenants/{t}/databases/{d}/collections/{id}/...`, plus collection calls.

use serde_json::Value;

use super::values::{dense_len, field, filter_present, integer, path_decode, segments};
use super::{Draft, VectorRecognition};
use crate::semantics::http_view::HttpView;

const SYSTEM: &str = "chroma";

/// Chroma's REST API (any host), recognised by its `/api/v1|v2/.../collections` paths.
pub(crate) fn recognise_rest(view: &HttpView) -> Option<VectorRecognition> {
    let segs = segments(view.path());
    let api = segs.iter().position(|s| *s == "api")?;
    if !matches!(segs.get(api + 1), Some(&("v1" | "v2"))) {
        return None;
    }
    let at = segs.iter().position(|s| *s == "collections")?;
    let namespace = match &segs[api + 2..at] {
        ["tenants", tenant, "databases", database] => {
            Some(format!("{}/{}", path_decode(tenant), path_decode(database)))
        }
        [] => None,
        _ => return None,
    };
    let method = view.method.to_ascii_uppercase();
    let rest = &segs[at + 1..];
    let (operation, vendor): (&'static str, &str) = match (method.as_str(), rest) {
        ("POST", [_, "query"]) => ("query", "query"),
        ("POST", [_, "add"]) => ("upsert", "add"),
        ("POST", [_, "upsert"]) => ("upsert", "upsert"),
        ("POST", [_, "update"]) => ("update", "update"),
        ("POST", [_, "delete"]) => ("delete", "delete"),
        ("POST", [_, "get"]) => ("fetch", "get"),
        ("GET", [_, "count"]) => ("count", "count"),
        ("GET", []) => ("list", "list_collections"),
        ("POST", []) => ("create_collection", "create_collection"),
        ("GET", [_]) => ("describe", "get_collection"),
        ("DELETE", [_]) => ("delete_collection", "delete_collection"),
        _ => return None,
    };
    let mut draft = Draft::new(SYSTEM, operation, vendor);
    draft.namespace = namespace;
    draft.collection = rest.first().map(|c| path_decode(c));
    if let Some(req) = view.request_json() {
        draft.top_k = integer(&req, &["n_results", "limit"]);
        draft.filter_present =
            filter_present(&req, &["where"]) || filter_present(&req, &["where_document"]);
        draft.dimension = field(&req, &["query_embeddings", "embeddings"])
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(dense_len);
        if operation == "create_collection" {
            draft.collection = field(&req, &["name"])
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if matches!(operation, "upsert" | "update") {
            for key in ["documents", "metadatas"] {
                if let Some(v) = req.get(key) {
                    draft.payloads.add(format!("chroma.request.{key}"), v);
                }
            }
        }
    }
    if let Some(resp) = view.response_json() {
        read_response(&mut draft, &resp);
    }
    Some(draft.finish())
}

/// `ids` is `[[...], ...]` per query (query) or `[...]` (get); documents and metadatas follow it.
fn read_response(draft: &mut Draft, resp: &Value) {
    if draft.operation == "count" {
        draft.results = resp.as_i64();
        return;
    }
    let Some(ids) = resp.get("ids").and_then(Value::as_array) else {
        return;
    };
    let nested = ids.iter().all(Value::is_array) && !ids.is_empty();
    draft.results = Some(if nested {
        ids.iter()
            .filter_map(Value::as_array)
            .map(|a| a.len() as i64)
            .sum()
    } else {
        ids.len() as i64
    });
    for key in ["documents", "metadatas"] {
        match resp.get(key) {
            Some(Value::Array(items)) if nested => {
                for (q, per_query) in items.iter().enumerate() {
                    draft
                        .payloads
                        .add(format!("chroma.response.{key}[{q}]"), per_query);
                }
            }
            Some(v) => draft.payloads.add(format!("chroma.response.{key}"), v),
            None => {}
        }
    }
}
