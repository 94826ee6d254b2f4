//! The SQL endpoint for dashboards: `POST /sql` with a bearer token; the body is the query, as
//! text or as JSON `{"sql": "..."}`. Answers 200 with a JSON array of row objects, 401 without
//! the right token, 400 with the DataFusion message for a bad query. Queries are read-only and
//! the answer is capped at `max_rows` rows (header `x-chainwatch-truncated: true` when cut).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use datafusion::arrow::array::RecordBatch;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::error::SqlError;
use super::format::json_array;
use super::session::SqlSession;

/// Rows one answer may carry by default.
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Header set when the answer was cut at the row cap.
pub const TRUNCATED_HEADER: &str = "x-chainwatch-truncated";

/// What the endpoint serves.
#[derive(Debug, Clone)]
pub struct SqlEndpoint {
    pub data_dir: PathBuf,
    /// The bearer token every request must present.
    pub bearer_token: String,
    /// In-memory tables registered with every session (reference tables).
    pub extra_tables: Vec<(String, RecordBatch)>,
    pub max_rows: usize,
}

impl SqlEndpoint {
    /// An endpoint over `data_dir`; refuses an empty token (the endpoint must not run open).
    pub fn new(data_dir: PathBuf, bearer_token: Option<String>) -> Result<Self, SqlError> {
        let bearer_token = bearer_token.filter(|t| !t.trim().is_empty()).ok_or(SqlError::NoBearerToken)?;
        Ok(SqlEndpoint { data_dir, bearer_token, extra_tables: Vec::new(), max_rows: DEFAULT_MAX_ROWS })
    }

    /// The axum router (`POST /sql`).
    pub fn router(self) -> Router {
        Router::new().route("/sql", post(post_sql)).with_state(Arc::new(self))
    }
}

/// Binds `addr` (host:port).
pub async fn bind(addr: &str) -> Result<TcpListener, SqlError> {
    TcpListener::bind(addr).await.map_err(|source| SqlError::Listen { addr: addr.to_string(), source })
}

/// Serves `endpoint` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    endpoint: SqlEndpoint,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SqlError> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    axum::serve(listener, endpoint.router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| SqlError::Listen { addr, source })
}

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

async fn post_sql(State(endpoint): State<Arc<SqlEndpoint>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &endpoint.bearer_token) {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let sql = match query_text(&body) {
        Ok(sql) => sql,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let session = match SqlSession::open(&endpoint.data_dir).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    for (name, batch) in &endpoint.extra_tables {
        if let Err(e) = session.register_batch(name, batch.clone()) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    }
    let result = match session.query_limited(&sql, endpoint.max_rows).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let body = match json_array(&result.batches) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if result.truncated {
        response.headers_mut().insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// The query from the body: JSON `{"sql": ...}` or the text itself.
fn query_text(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?.trim();
    let sql = if text.starts_with('{') {
        serde_json::from_str::<SqlBody>(text).map_err(|e| format!("the JSON body needs a string field \"sql\": {e}"))?.sql
    } else {
        text.to_string()
    };
    if sql.trim().is_empty() {
        return Err("the body holds no SQL query".to_string());
    }
    Ok(sql)
}

/// `Authorization: Bearer <token>`, compared in constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ").or_else(|| given.strip_prefix("bearer ")) else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_text_accepts_plain_and_json_bodies() {
        assert_eq!(query_text(b"SELECT 1").unwrap(), "SELECT 1");
        assert_eq!(query_text(br#"{"sql": "SELECT 2"}"#).unwrap(), "SELECT 2");
        assert!(query_text(br#"{"query": "SELECT 2"}"#).unwrap_err().contains("\"sql\""));
        assert!(query_text(b"  ").is_err());
        assert!(query_text(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert!(!authorized(&h, "s3cret"));
    }
}
