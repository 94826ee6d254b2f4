//! The error a vector database answered with: a gRPC status other than OK, an HTTP error
//! status, or GraphQL `errors` on a 200, with the vendor's own message (Qdrant
//! `status.error`, Pinecone `message` / `error.message`, Chroma `error` / `message`, Weaviate
//! `error[0].message`, GraphQL `errors[0].message`).

use serde_json::Value;

use crate::protocols::grpc::grpc_code_name;
use crate::semantics::http_view::HttpView;

/// Longest message kept.
const MAX_MESSAGE_CHARS: usize = 300;

/// `db.response.status_code` and `error.type` when the call failed; empty when it did not.
pub(crate) fn error_attributes(view: &HttpView) -> Vec<(String, String)> {
    if let Some(call) = view.grpc {
        return match call.grpc_status() {
            Some(code) if code != 0 => {
                let name = grpc_code_name(code).to_string();
                let message = call.grpc_message().map_or_else(|| name.clone(), cut);
                vec![
                    ("db.response.status_code".into(), name),
                    ("error.type".into(), message),
                ]
            }
            _ => Vec::new(),
        };
    }
    let body = view.response_json();
    let graphql_error = body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str);
    match view.status {
        Some(status) if status >= 400 => {
            let message = body
                .as_ref()
                .and_then(message_of)
                .or(graphql_error.map(cut));
            vec![
                ("db.response.status_code".into(), status.to_string()),
                (
                    "error.type".into(),
                    message.unwrap_or_else(|| format!("HTTP {status}")),
                ),
            ]
        }
        _ => graphql_error.map_or_else(Vec::new, |m| vec![("error.type".into(), cut(m))]),
    }
}

fn message_of(body: &Value) -> Option<String> {
    let candidates = [
        body.pointer("/status/error"),
        body.get("message"),
        body.get("error").filter(|e| e.is_string()),
        body.pointer("/error/message"),
        body.pointer("/error/0/message"),
        body.pointer("/errors/0/message"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(Value::as_str)
        .map(cut)
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_MESSAGE_CHARS).collect()
}
