//! Weaviate: REST `/v1/objects`, `/v1/batch/objects`, `/v1/schema`, GraphQL `POST /v1/graphql`
//! (`Get { Class(nearVector: ..., limit: ..., where: ...) }`, `Aggregate`), and gRPC
//! `weaviate.v1.Weaviate/*` (Search, BatchObjects, BatchDelete, ...).

use serde_json::Value;

use super::values::{
    array_len, base64_f32_len, dense_len, field, filter_present, integer, path_decode, segments,
    string, url_decode,
};
use super::{Draft, VectorRecognition};
use crate::protocols::grpc::GrpcCall;
use crate::semantics::http_view::HttpView;

const SYSTEM: &str = "weaviate";
const SEARCH_OPERATORS: &[&str] = &[
    "nearVector",
    "nearText",
    "nearObject",
    "nearImage",
    "nearAudio",
    "nearVideo",
    "nearDepth",
    "nearThermal",
    "nearIMU",
    "hybrid",
    "bm25",
    "ask",
];

/// Weaviate's REST and GraphQL endpoints (any host).
pub(crate) fn recognise_rest(view: &HttpView) -> Option<VectorRecognition> {
    let segs = segments(view.path());
    let at = segs.iter().position(|s| *s == "v1")?;
    let rest = &segs[at + 1..];
    let method = view.method.to_ascii_uppercase();
    let request = view.request_json();
    let response = view.response_json();
    if rest.first() == Some(&"graphql") && method == "POST" {
        return graphql(request.as_ref()?, response.as_ref());
    }
    let weaviate_shaped = request.as_ref().is_some_and(|r| {
        r.get("class").is_some() || r.get("objects").is_some() || r.get("match").is_some()
    }) || response.as_ref().is_some_and(|r| {
        r.get("class").is_some()
            || r.get("objects").is_some()
            || r.get("classes").is_some()
            || r.as_array()
                .is_some_and(|a| a.first().is_some_and(|o| o.get("class").is_some()))
    }) || view.query_param("class").is_some();
    if !weaviate_shaped {
        return None;
    }
    let (operation, vendor): (&'static str, &str) = match (method.as_str(), rest) {
        ("POST", ["objects"]) => ("upsert", "objects/create"),
        ("GET", ["objects"]) => ("fetch", "objects/list"),
        ("GET" | "HEAD", ["objects", ..]) => ("fetch", "objects/get"),
        ("PUT" | "PATCH", ["objects", ..]) => ("update", "objects/update"),
        ("DELETE", ["objects", ..]) => ("delete", "objects/delete"),
        ("POST", ["batch", "objects"]) => ("upsert", "batch/objects"),
        ("DELETE", ["batch", "objects"]) => ("delete", "batch/objects/delete"),
        ("GET", ["schema"]) => ("list", "schema/get"),
        ("GET", ["schema", _]) => ("describe", "schema/get"),
        ("POST", ["schema"]) => ("create_collection", "schema/create"),
        ("DELETE", ["schema", _]) => ("delete_collection", "schema/delete"),
        _ => return None,
    };
    let mut draft = Draft::new(SYSTEM, operation, vendor);
    draft.collection = match rest {
        ["objects", class, _] | ["schema", class] => Some(path_decode(class)),
        _ => view.query_param("class").map(url_decode),
    };
    draft.namespace = view.query_param("tenant").map(url_decode);
    draft.top_k = view.query_param("limit").and_then(|l| l.parse().ok());
    if let Some(req) = &request {
        let objects: Vec<&Value> = match req.get("objects").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None if req.get("class").is_some() => vec![req],
            None => Vec::new(),
        };
        if let Some(first) = objects.first() {
            draft.collection = draft.collection.or_else(|| string(first, &["class"]));
            draft.namespace = draft.namespace.or_else(|| string(first, &["tenant"]));
            draft.dimension = field(first, &["vector"]).and_then(dense_len);
        }
        for (i, o) in objects.iter().enumerate() {
            if let Some(p) = o.get("properties") {
                draft
                    .payloads
                    .add(format!("weaviate.request.objects[{i}].properties"), p);
            }
        }
        if let Some(m) = req.get("match") {
            draft.collection = draft.collection.or_else(|| string(m, &["class"]));
            draft.filter_present = filter_present(m, &["where"]);
        }
        if operation == "create_collection" {
            draft.collection = string(req, &["class"]);
        }
    }
    if let Some(resp) = &response {
        let objects: Vec<&Value> = match resp {
            Value::Array(list) => list.iter().collect(),
            Value::Object(_) => match resp.get("objects").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None if resp.get("id").is_some() && resp.get("class").is_some() => vec![resp],
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        if matches!(operation, "fetch" | "upsert")
            && (resp.is_array() || !objects.is_empty() || resp.get("objects").is_some())
        {
            draft.results = Some(objects.len() as i64);
        }
        if operation == "delete" {
            draft.results = resp
                .get("results")
                .and_then(|r| integer(r, &["successful", "matches"]));
        }
        if operation == "fetch" {
            for (i, o) in objects.iter().enumerate() {
                if let Some(p) = o.get("properties") {
                    draft
                        .payloads
                        .add(format!("weaviate.response.objects[{i}].properties"), p);
                }
            }
        }
    }
    Some(draft.finish())
}

/// `{"query": "{ Get { Article(nearVector: {vector: [..]}, limit: 5) { title } } }"}`.
fn graphql(request: &Value, response: Option<&Value>) -> Option<VectorRecognition> {
    let query = request.get("query").and_then(Value::as_str)?;
    let (kind, class, args) = parse_graphql(query)?;
    let searched = SEARCH_OPERATORS.iter().any(|op| args.contains(op));
    let operation = match kind {
        "Get" if searched => "query",
        "Get" => "fetch",
        _ => "count",
    };
    let mut draft = Draft::new(SYSTEM, operation, format!("graphql/{kind}"));
    draft.collection = Some(class.to_string());
    draft.top_k = number_after(args, "limit").or_else(|| number_after(args, "autocut"));
    draft.filter_present = args.contains("where");
    draft.dimension = args
        .find("nearVector")
        .and_then(|at| vector_literal_len(&args[at..]));
    draft.namespace = quoted_after(args, "tenant");
    if let Some(results) = response
        .and_then(|r| r.get("data"))
        .and_then(|d| d.get(kind))
        .and_then(|g| g.get(class))
        .and_then(Value::as_array)
        && kind == "Get"
    {
        {
            draft.results = Some(results.len() as i64);
            for (i, o) in results.iter().enumerate() {
                draft
                    .payloads
                    .add(format!("weaviate.response.data.Get.{class}[{i}]"), o);
            }
        }
    }
    Some(draft.finish())
}

/// The query kind (`Get`, `Aggregate`), the first class and its argument text.
fn parse_graphql(query: &str) -> Option<(&'static str, &str, &str)> {
    let (kind, at) = ["Get", "Aggregate"].iter().find_map(|k| {
        query.match_indices(k).find_map(|(i, _)| {
            let before_ok = query[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let after = query[i + k.len()..].trim_start();
            (before_ok && after.starts_with('{')).then(|| (*k, query.len() - after.len() + 1))
        })
    })?;
    let rest = query[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let class = &rest[..end];
    if class.is_empty() {
        return None;
    }
    let after = rest[end..].trim_start();
    let args = if after.starts_with('(') {
        balanced(after, '(', ')')
    } else {
        ""
    };
    Some((kind, class, args))
}

/// The text from an opening bracket to its matching close (bounded by the input).
fn balanced(s: &str, open: char, close: char) -> &str {
    let mut depth = 0usize;
    let mut in_string = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_string = !in_string,
            c if c == open && !in_string => depth += 1,
            c if c == close && !in_string => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &s[..=i];
                }
            }
            _ => {}
        }
    }
    s
}

fn number_after(args: &str, key: &str) -> Option<i64> {
    let at = args.find(&format!("{key}:"))? + key.len() + 1;
    let rest = args[at..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn quoted_after(args: &str, key: &str) -> Option<String> {
    let at = args.find(&format!("{key}:"))? + key.len() + 1;
    let rest = args[at..].trim_start().strip_prefix('"')?;
    rest.split_once('"').map(|(v, _)| v.to_string())
}

/// Number of elements of the first `vector: [..]` literal.
fn vector_literal_len(s: &str) -> Option<i32> {
    let at = s.find("vector")?;
    let open = s[at..].find('[')? + at;
    let close = s[open..].find(']')? + open;
    let inner = s[open + 1..close].trim();
    if inner.is_empty() {
        return None;
    }
    i32::try_from(inner.split(',').filter(|x| !x.trim().is_empty()).count()).ok()
}

/// Weaviate's gRPC service.
pub(crate) fn recognise_grpc(call: &GrpcCall) -> Option<VectorRecognition> {
    let service = call.service.as_deref()?;
    if !service.starts_with("weaviate.") || !service.ends_with(".Weaviate") {
        return None;
    }
    let method = call.method.as_deref()?;
    let req = call.request.values().next();
    let operation = match method {
        "Search" => {
            let searched = req.is_some_and(|r| {
                [
                    "near_vector",
                    "near_text",
                    "near_object",
                    "hybrid_search",
                    "bm25_search",
                    "near_image",
                ]
                .iter()
                .any(|k| r.get(*k).is_some())
            });
            if searched { "query" } else { "fetch" }
        }
        "BatchObjects" | "BatchStream" => "upsert",
        "BatchDelete" => "delete",
        "BatchReferences" => "update",
        "TenantsGet" => "list",
        "Aggregate" => "count",
        _ => "admin",
    };
    let mut draft = Draft::new(SYSTEM, operation, format!("{service}/{method}"));
    if let Some(req) = req {
        draft.collection = string(req, &["collection"]);
        draft.namespace = string(req, &["tenant"]);
        draft.top_k = integer(req, &["limit"]).filter(|l| *l > 0);
        draft.filter_present = filter_present(req, &["filters"]);
        let near = field(req, &["near_vector"]).or_else(|| req.get("hybrid_search"));
        draft.dimension = near.and_then(grpc_vector_dimension);
        if let Some(objects) = req.get("objects").and_then(Value::as_array) {
            if let Some(first) = objects.first() {
                draft.collection = string(first, &["collection"]);
                draft.namespace = string(first, &["tenant"]);
                draft.dimension = grpc_vector_dimension(first);
            }
            for (i, o) in objects.iter().enumerate() {
                if let Some(p) = o.get("properties") {
                    draft
                        .payloads
                        .add(format!("weaviate.request.objects[{i}].properties"), p);
                }
            }
            draft.results = Some(objects.len() as i64);
        }
    }
    if let Some(resp) = call.response.values().next() {
        match operation {
            "query" | "fetch" => {
                draft.results = Some(array_len(resp, &["results"]).unwrap_or(0));
                if let Some(results) = resp.get("results").and_then(Value::as_array) {
                    for (i, r) in results.iter().enumerate() {
                        if let Some(p) = r.get("properties") {
                            draft
                                .payloads
                                .add(format!("weaviate.response.results[{i}].properties"), p);
                        }
                    }
                }
            }
            "delete" => draft.results = integer(resp, &["successful", "matches"]),
            _ => {}
        }
    }
    Some(draft.finish())
}

/// `vectors[0].vector_bytes`, `vector_bytes` (base64 f32) or `vector` (floats).
fn grpc_vector_dimension(v: &Value) -> Option<i32> {
    field(v, &["vectors"])
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|x| field(x, &["vector_bytes"]))
        .and_then(base64_f32_len)
        .or_else(|| field(v, &["vector_bytes"]).and_then(base64_f32_len))
        .or_else(|| field(v, &["vector"]).and_then(dense_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_get_is_parsed() {
        let q = r#"{ Get { Article(nearVector: {vector: [0.1, 0.2, 0.3]}, limit: 5, where: {path: ["x"], operator: Equal, valueText: "a)b"}) { title _additional { distance } } } }"#;
        let (kind, class, args) = parse_graphql(q).unwrap();
        assert_eq!((kind, class), ("Get", "Article"));
        assert!(args.ends_with(')'), "{args}");
        assert_eq!(number_after(args, "limit"), Some(5));
        assert_eq!(vector_literal_len(args), Some(3));
        assert!(parse_graphql("{ Target { x } }").is_none());
    }
}
