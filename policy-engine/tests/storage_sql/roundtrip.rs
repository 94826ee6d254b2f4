//! Write/read round trip of the chain store: several micro-batches over two days, upserts of
//! the same chain (the latest version wins in every table), append-only part files, and a store
//! reopened later that continues the numbering instead of overwriting.


use chainwatch_policy_engine::sql::SqlSession;
use chainwatch_policy_engine::storage::{ChainStore, part_files, partition_dir, stored_days};
use chainwatch_schemas::Chain;
use super::fixtures::*;

/// A chain that starts on `day_start` and grows by one LLM step per version.
fn growing(id: &str, version: i64, start: i64) -> Chain {
    let steps = (0..version).map(|i| llm("api.openai.com", "gpt-4o", 100 * (i + 1), 10, &["email"])).collect();
    chain(id, version, "support-agent", start, steps)
}

async fn one_column(session: &SqlSession, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    rows(&session.query(sql).await.unwrap())
}

#[tokio::test]
async fn two_days_of_micro_batches_with_upserts_read_back_latest_versions() {
    let dir = TempDir::new("roundtrip");
    let day1 = 1_767_225_600 * SEC + 10 * HOUR; // 2026-01-01T10:00Z
    let day2 = day1 + DAY; // 2026-01-02
    let mut store = ChainStore::open_dir(dir.path(), 1.0).unwrap();

    // Batch 1: A v1, B v1 on day 1. Batch 2: A v2, C v1 on day 2, and A v1 again (a replay).
    // Batch 3: A v3, C v2 (the same batch also carries C v1: the higher version wins).
    let r1 = store.append(&[growing("A", 1, day1), growing("B", 1, day1 + HOUR)], &[]).unwrap();
    let r2 = store.append(&[growing("A", 2, day1), growing("C", 1, day2), growing("A", 1, day1)], &[]).unwrap();
    assert_eq!(r2.chains_seen, 2, "A v1 and v2 in one batch count once");
    let files_after_2: Vec<_> = r1.files_written.iter().chain(&r2.files_written).cloned().collect();
    let sizes_after_2: Vec<u64> = files_after_2.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect();
    let r3 = store.append(&[growing("A", 3, day1), growing("C", 1, day2), growing("C", 2, day2)], &[]).unwrap();
    assert!(!r3.files_written.is_empty());

    // Append-only: earlier parts are untouched, new ones were added.
    for (f, size) in files_after_2.iter().zip(&sizes_after_2) {
        assert_eq!(std::fs::metadata(f).unwrap().len(), *size, "{} was rewritten", f.display());
    }
    assert_eq!(stored_days(dir.path(), "chains").unwrap(), vec!["2026-01-01", "2026-01-02"]);
    assert_eq!(part_files(&partition_dir(dir.path(), "chains", "2026-01-01")).unwrap().len(), 3);
    assert_eq!(part_files(&partition_dir(dir.path(), "chains", "2026-01-02")).unwrap().len(), 2);

    let session = SqlSession::open(dir.path()).await.unwrap();
    let chains = one_column(&session, "SELECT chain_id, version, day, step_count FROM chains ORDER BY chain_id").await;
    let got: Vec<(String, i64, String, i64)> = chains
        .iter()
        .map(|r| {
            (
                r["chain_id"].as_str().unwrap().to_string(),
                r["version"].as_i64().unwrap(),
                r["day"].as_str().unwrap().to_string(),
                r["step_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("A".to_string(), 3, "2026-01-01".to_string(), 3),
            ("B".to_string(), 1, "2026-01-01".to_string(), 1),
            ("C".to_string(), 2, "2026-01-02".to_string(), 2),
        ]
    );
    // Every stored version stays queryable.
    let versions = one_column(&session, "SELECT COUNT(*) AS n FROM chains_versions").await;
    assert_eq!(versions[0]["n"], 6, "A1, B1, A2, C1, A3, C2");

    // Child tables hold the latest version's rows only, once each.
    let steps = one_column(&session, "SELECT chain_id, COUNT(*) AS n, SUM(input_tokens) AS t FROM steps GROUP BY chain_id ORDER BY chain_id").await;
    let steps: Vec<(String, i64, i64)> =
        steps.iter().map(|r| (r["chain_id"].as_str().unwrap().into(), r["n"].as_i64().unwrap(), r["t"].as_i64().unwrap())).collect();
    assert_eq!(steps, vec![("A".into(), 3, 600), ("B".into(), 1, 100), ("C".into(), 2, 300)]);
    let processes = one_column(&session, "SELECT COUNT(*) AS n FROM processes").await;
    assert_eq!(processes[0]["n"], 3, "one agent row per chain");

    // The partition column prunes by day.
    let day2_rows = one_column(&session, "SELECT chain_id FROM steps WHERE day = '2026-01-02'").await;
    assert_eq!(day2_rows.len(), 2);
    assert!(day2_rows.iter().all(|r| r["chain_id"] == "C"));

    // Counts count each chain once, at its latest version.
    let counts = one_column(&session, "SELECT day, chains, steps, input_tokens FROM agent_daily_counts ORDER BY day").await;
    assert_eq!(counts.len(), 2);
    assert_eq!((counts[0]["chains"].as_i64(), counts[0]["steps"].as_i64(), counts[0]["input_tokens"].as_i64()), (Some(2), Some(4), Some(700)));
    assert_eq!((counts[1]["chains"].as_i64(), counts[1]["steps"].as_i64(), counts[1]["input_tokens"].as_i64()), (Some(1), Some(2), Some(300)));

    // A store reopened later continues after the highest part number: nothing is overwritten.
    drop(store);
    let mut reopened = ChainStore::open_dir(dir.path(), 1.0).unwrap();
    let r4 = reopened.append(&[growing("B", 2, day1 + HOUR)], &[]).unwrap();
    let earlier: Vec<_> = r1.files_written.iter().chain(&r2.files_written).chain(&r3.files_written).collect();
    for f in &r4.files_written {
        assert!(!earlier.contains(&f), "{} reused a part name", f.display());
    }
    let session = SqlSession::open(dir.path()).await.unwrap();
    let b = one_column(&session, "SELECT version, step_count FROM chains WHERE chain_id = 'B'").await;
    assert_eq!((b[0]["version"].as_i64(), b[0]["step_count"].as_i64()), (Some(2), Some(2)));

    // Compaction merges each partition into one part without changing any answer.
    let questions = [
        "SELECT chain_id, version, day, step_count FROM chains ORDER BY chain_id",
        "SELECT chain_id, step_index, input_tokens FROM steps ORDER BY chain_id, step_index",
        "SELECT chain_id, role, tgid FROM processes ORDER BY chain_id",
        "SELECT day, agent_key, chains, steps, input_tokens FROM agent_daily_counts ORDER BY day",
    ];
    let mut before = Vec::new();
    for q in questions {
        before.push(one_column(&session, q).await);
    }
    let report = reopened.compact(1).await.unwrap();
    assert!(report.partitions_compacted >= 8, "{report:?}");
    assert!(report.rows_after < report.rows_before, "superseded versions dropped: {report:?}");
    assert_eq!(part_files(&partition_dir(dir.path(), "chains", "2026-01-01")).unwrap().len(), 1);
    assert_eq!(part_files(&partition_dir(dir.path(), "steps", "2026-01-02")).unwrap().len(), 1);
    let session = SqlSession::open(dir.path()).await.unwrap();
    let versions = one_column(&session, "SELECT COUNT(*) AS n FROM chains_versions").await;
    assert_eq!(versions[0]["n"], 3, "one version per chain left");
    for (q, want) in questions.iter().zip(&before) {
        assert_eq!(&one_column(&session, q).await, want, "{q}");
    }
    // Appends after a compaction go on with new parts.
    let r5 = reopened.append(&[growing("A", 4, day1)], &[]).unwrap();
    assert!(!r5.files_written.is_empty());
    let session = SqlSession::open(dir.path()).await.unwrap();
    let a = one_column(&session, "SELECT version FROM chains WHERE chain_id = 'A'").await;
    assert_eq!(a[0]["version"], 4);
}

#[tokio::test]
async fn an_empty_data_dir_still_answers_every_table() {
    let dir = TempDir::new("empty");
    let missing = dir.path().join("never-written");
    let session = SqlSession::open(&missing).await.unwrap();
    for table in [
        "chains",
        "steps",
        "tool_calls",
        "pii_flows",
        "processes",
        "violations",
        "chain_counts",
        "agent_daily_counts",
        "allowed_destinations",
        "agent_profiles",
        "chains_versions",
    ] {
        let batches = session.query(&format!("SELECT * FROM {table}")).await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0, "{table}");
    }
    assert!(!missing.exists(), "reading must not create the data directory");
}

#[tokio::test]
async fn violations_are_stored_and_their_updates_replace_them() {
    let dir = TempDir::new("violations");
    let now = now_ns();
    let mut store = ChainStore::open_dir(dir.path(), 0.01).unwrap();
    let mut v = exfil_violation(now);
    store.append(&[support_chain_v1(now)], &[v.clone()]).unwrap();
    v.version = 2;
    v.evidence_steps = vec![2, 4, 5];
    store.append(&[support_chain_v2(now)], &[v]).unwrap();
    let session = SqlSession::open(dir.path()).await.unwrap();
    let got = rows(&session.query("SELECT violation_id, version, severity, evidence_steps, chain_id FROM violations").await.unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["version"], 2);
    assert_eq!(got[0]["severity"], "HIGH");
    assert_eq!(got[0]["evidence_steps"], serde_json::json!([2, 4, 5]));
    let joined = rows(
        &session
            .query("SELECT c.version, v.policy_id FROM violations v JOIN chains c ON c.chain_id = v.chain_id")
            .await
            .unwrap(),
    );
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["version"], 2);
}

#[tokio::test]
async fn ddl_and_writes_are_refused() {
    let dir = TempDir::new("readonly");
    let session = SqlSession::open(dir.path()).await.unwrap();
    let err = session.query("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("ddl"), "{err}");
    assert!(session.query("DROP VIEW chains").await.is_err());
}
