//! The SQL HTTP endpoint on 127.0.0.1 (a free port): 401 without or with a wrong bearer token,
//! 400 with DataFusion's message for bad SQL, 200 with JSON rows for a good query, as text or
//! as JSON `{"sql": ...}`.


use chainwatch_policy_engine::sql::{SqlEndpoint, bind, serve};
use chainwatch_policy_engine::storage::ChainStore;
use super::fixtures::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "dashboards-7f3a9c";

/// One HTTP/1.1 request; returns the status code and the body.
async fn post(addr: &str, token: Option<&str>, content_type: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /sql HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[tokio::test]
async fn endpoint_requires_the_token_reports_bad_sql_and_answers_rows() {
    let dir = TempDir::new("http");
    let now = now_ns();
    let mut store = ChainStore::open_dir(dir.path(), 0.01).unwrap();
    store.append(&[support_chain_v2(now), billing_chain(now), staging_chain(now)], &[exfil_violation(now)]).unwrap();

    let endpoint = SqlEndpoint::new(dir.path().to_path_buf(), Some(TOKEN.into())).unwrap();
    let listener = bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, endpoint, async {
        let _ = stopped.await;
    }));

    let query = "SELECT chain_id, agent_key, step_count FROM chains ORDER BY chain_id";
    let (status, body) = post(&addr, None, "text/plain", query).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bearer token"), "{body}");
    let (status, _) = post(&addr, Some("dashboards-7f3a9d"), "text/plain", query).await;
    assert_eq!(status, 401);

    let (status, body) = post(&addr, Some(TOKEN), "text/plain", "SELECT nope FROM chains").await;
    assert_eq!(status, 400, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("nope"), "DataFusion names the unknown column: {message}");
    let (status, body) = post(&addr, Some(TOKEN), "text/plain", "SELEC 1").await;
    assert_eq!(status, 400);
    assert!(body.contains("SELEC"), "{body}");
    let (status, body) = post(&addr, Some(TOKEN), "text/plain", "DROP VIEW chains").await;
    assert_eq!(status, 400, "writes are refused: {body}");

    let (status, body) = post(&addr, Some(TOKEN), "text/plain", query).await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["chain_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["chain-billing-1", "chain-staging-1", "chain-sup-4711"]);
    assert_eq!(rows[2]["step_count"], 6);
    assert_eq!(rows[2]["agent_key"], "node-a/support-agent");

    let json = serde_json::json!({ "sql": "SELECT policy_id, severity FROM violations" }).to_string();
    let (status, body) = post(&addr, Some(TOKEN), "application/json", &json).await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows, vec![serde_json::json!({"policy_id": "pii-to-unauthorized-destination", "severity": "HIGH"})]);

    let (status, body) = post(&addr, Some(TOKEN), "text/plain", "SELECT chain_id FROM chains WHERE false").await;
    assert_eq!((status, body.as_str()), (200, "[]"));

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn endpoint_refuses_to_start_without_a_token() {
    let err = SqlEndpoint::new("data".into(), None).unwrap_err();
    assert!(err.to_string().contains("sql.bearer_token"), "{err}");
    assert!(SqlEndpoint::new("data".into(), Some("  ".into())).is_err());
}
