//! The investigation examples of SQL_EXAMPLES.md, run exactly as written (the ```sql blocks are
//! read from the file) against a store filled with realistic chains, with their answers checked.


use std::collections::BTreeSet;

use chainwatch_policy_engine::reference::ReferenceData;
use chainwatch_policy_engine::sql::SqlSession;
use chainwatch_policy_engine::storage::ChainStore;
use super::fixtures::*;

/// The ```sql blocks of SQL_EXAMPLES.md, in order.
fn examples() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("SQL_EXAMPLES.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sql") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

async fn investigation_store(dir: &TempDir) -> SqlSession {
    let now = now_ns();
    // Default sampling (1 in 100): every one of these chains is interesting and kept.
    let mut store = ChainStore::open_dir(dir.path(), 0.01).unwrap();
    store.append(&[support_chain_v1(now), billing_chain(now)], &[]).unwrap();
    store
        .append(&[support_chain_v2(now), old_support_chain(now), staging_chain(now), research_chain(now)], &[exfil_violation(now)])
        .unwrap();
    let reference_dir = dir.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    std::fs::write(reference_dir.join("allowed_destinations.toml"), ALLOWED_DESTINATIONS_TOML).unwrap();
    let session = SqlSession::open(dir.path()).await.unwrap();
    session.register_reference(&ReferenceData::load(&reference_dir).unwrap()).unwrap();
    session
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn investigation_examples_run_as_written_and_answer_correctly() {
    let sql = examples();
    assert_eq!(sql.len(), 4, "SQL_EXAMPLES.md has four investigation queries");
    let dir = TempDir::new("examples");
    let session = investigation_store(&dir).await;

    // 1. LLM calls with customer PII in the last 24 hours: the support chain's second call
    //    (the three-day-old one and the PII-free calls are not listed).
    let llm_pii = rows(&session.query(&sql[0]).await.unwrap());
    assert_eq!(llm_pii.len(), 1, "{llm_pii:?}");
    assert_eq!(llm_pii[0]["chain_id"], "chain-sup-4711");
    assert_eq!(llm_pii[0]["step_index"], 3);
    assert_eq!(llm_pii[0]["agent_key"], "node-a/support-agent");
    assert_eq!(llm_pii[0]["destination"], "api.openai.com");
    assert_eq!(strs(&llm_pii[0]["pii_types"]), vec!["email", "phone"]);
    assert_eq!(llm_pii[0]["input_tokens"], 48_000);

    // 2. Production database: billing and support agents (twice: today and three days ago),
    //    not the analytics agent on staging.
    let prod = rows(&session.query(&sql[1]).await.unwrap());
    let got: Vec<(String, String, i64)> = prod
        .iter()
        .map(|r| (r["agent_key"].as_str().unwrap().into(), r["statement"].as_str().unwrap().into(), r["rows"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("node-a/billing-agent".into(), "SELECT SUM(amount) FROM invoices WHERE month = '2026-10'".into(), 1),
            ("node-a/support-agent".into(), "SELECT email FROM customers WHERE id = 7".into(), 1),
            ("node-a/support-agent".into(), "SELECT name, email, phone FROM customers WHERE region = 'EU'".into(), 1_200),
        ]
    );
    assert_eq!(strs(&prod[2]["pii_types"]), vec!["email", "phone"]);

    // 3. The ticket's whole workflow, once per step at the chain's latest version.
    let workflow = rows(&session.query(&sql[2]).await.unwrap());
    let kinds: Vec<&str> = workflow.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["saas_call", "llm_call", "sql", "llm_call", "process", "upload"]);
    assert!(workflow.iter().all(|r| r["chain_id"] == "chain-sup-4711"));
    assert_eq!(workflow[1]["tool_name"], "query_database");
    assert_eq!(workflow[5]["destination"], "files.evil-drop.io");

    // 4. Sent outside the allowlist: the support agent's upload and the research agent's paste.
    let outside = rows(&session.query(&sql[3]).await.unwrap());
    let got: BTreeSet<(String, String, i64)> = outside
        .iter()
        .map(|r| (r["agent_key"].as_str().unwrap().into(), r["destination"].as_str().unwrap().into(), r["bytes_out"].as_i64().unwrap()))
        .collect();
    let want: BTreeSet<(String, String, i64)> = [
        ("node-a/support-agent".to_string(), "files.evil-drop.io".to_string(), 250_000),
        ("node-a/research-agent".to_string(), "pastebin.com".to_string(), 9_000),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    assert_eq!(outside[0]["destination"], "files.evil-drop.io", "largest first");
}

#[tokio::test]
async fn without_an_allowlist_every_send_is_outside_it() {
    // The reference table is registered empty when policy.reference_dir is unset: the query
    // still runs, and lists every destination that received bytes.
    let dir = TempDir::new("examples-no-allowlist");
    let now = now_ns();
    let mut store = ChainStore::open_dir(dir.path(), 0.01).unwrap();
    store.append(&[research_chain(now)], &[]).unwrap();
    let session = SqlSession::open(dir.path()).await.unwrap();
    let outside = rows(&session.query(&examples()[3]).await.unwrap());
    let hosts: BTreeSet<&str> = outside.iter().map(|r| r["destination"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["api.anthropic.com", "pastebin.com"].into_iter().collect());
}
