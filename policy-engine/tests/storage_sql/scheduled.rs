//! Scheduled compaction on a store that keeps appending: with a tiny interval the task merges
//! the parts of closed (earlier) days into one, leaves today's partition alone, keeps every SQL
//! answer, never reuses a part name; a run that fails is counted and the schedule goes on.

use std::time::Duration;

use chainwatch_policy_engine::sql::SqlSession;
use chainwatch_policy_engine::storage::{ChainStore, CompactionTotals, ScheduledCompaction, part_files, partition_dir, stored_days};
use chainwatch_schemas::Chain;
use super::fixtures::*;

fn growing(id: &str, version: i64, start: i64) -> Chain {
    let steps = (0..version).map(|i| llm("api.openai.com", "gpt-4o", 100 * (i + 1), 10, &["email"])).collect();
    chain(id, version, "support-agent", start, steps)
}

fn day(ns: i64) -> String {
    chainwatch_policy_engine::tables::day_of(ns)
}

fn parts(dir: &TempDir, table: &str, day: &str) -> usize {
    part_files(&partition_dir(dir.path(), table, day)).unwrap().len()
}

async fn until(schedule: &ScheduledCompaction, done: impl Fn(&CompactionTotals) -> bool) -> CompactionTotals {
    for _ in 0..1_000 {
        let t = schedule.totals();
        if done(&t) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    schedule.totals()
}

async fn answer(dir: &TempDir, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    rows(&SqlSession::open(dir.path()).await.unwrap().query(sql).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_days_are_compacted_on_schedule_while_appends_go_on() {
    let dir = TempDir::new("scheduled");
    let now = now_ns();
    let old = now - 3 * DAY;
    let (old_day, today) = (day(old), day(now));
    let mut store = ChainStore::open_dir(dir.path(), 1.0).unwrap();
    for v in 1..=3 {
        store.append(&[growing("old", v, old), growing("new", v, now)], &[]).unwrap();
    }
    assert_eq!((parts(&dir, "chains", &old_day), parts(&dir, "chains", &today)), (3, 3));
    let question = "SELECT chain_id, version, step_count FROM chains ORDER BY chain_id";
    let before = answer(&dir, question).await;

    let schedule = ScheduledCompaction::start(store.compactor(), Duration::from_millis(20));
    let totals = until(&schedule, |t| t.partitions_compacted > 0).await;
    assert_eq!(totals.failed_runs, 0, "{totals:?}");
    assert_eq!(parts(&dir, "chains", &old_day), 1, "{totals:?}");
    assert_eq!(parts(&dir, "steps", &old_day), 1);
    assert_eq!(parts(&dir, "chain_counts", &old_day), 1);
    assert_eq!(parts(&dir, "chains", &today), 3, "today's partition is still being written: left alone");
    assert_eq!(answer(&dir, question).await, before);

    // Appends go on meanwhile, to today and to the closed day (a late update), with fresh part
    // names; the next runs merge the closed day again.
    let r = store.append(&[growing("old", 4, old), growing("new", 4, now)], &[]).unwrap();
    let runs = schedule.totals().runs;
    let totals = until(&schedule, |t| t.runs >= runs + 2).await;
    let stopped = schedule.stop().await;
    assert!(stopped.runs >= totals.runs && stopped.failed_runs == 0, "{stopped:?}");
    assert!(!r.files_written.is_empty());
    // The compactor and the writer share the numbering: no part number is used twice.
    let mut seqs = Vec::new();
    for table in ["chains", "steps", "tool_calls", "pii_flows", "processes", "violations", "chain_counts"] {
        for d in stored_days(dir.path(), table).unwrap() {
            seqs.extend(part_files(&partition_dir(dir.path(), table, &d)).unwrap().into_iter().map(|(seq, _)| seq));
        }
    }
    let distinct: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), seqs.len(), "{seqs:?}");
    assert_eq!(parts(&dir, "chains", &old_day), 1);
    assert_eq!(parts(&dir, "chains", &today), 4);
    let after = answer(&dir, question).await;
    let versions: Vec<(String, i64)> =
        after.iter().map(|r| (r["chain_id"].as_str().unwrap().to_string(), r["version"].as_i64().unwrap())).collect();
    assert_eq!(versions, vec![("new".to_string(), 4), ("old".to_string(), 4)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_counted_and_the_schedule_goes_on() {
    let dir = TempDir::new("scheduled-fail");
    let old = now_ns() - 2 * DAY;
    let old_day = day(old);
    let mut store = ChainStore::open_dir(dir.path(), 1.0).unwrap();
    for v in 1..=2 {
        store.append(&[growing("old", v, old)], &[]).unwrap();
    }
    // A part that is not Parquet: compaction of that partition fails.
    let garbage = partition_dir(dir.path(), "chains", &old_day).join("part-999999999999.parquet");
    std::fs::write(&garbage, b"not parquet").unwrap();

    let schedule = ScheduledCompaction::start(store.compactor(), Duration::from_millis(20));
    let totals = until(&schedule, |t| t.failed_runs >= 2).await;
    assert!(totals.failed_runs >= 2 && totals.runs >= 2, "{totals:?}");
    std::fs::remove_file(&garbage).unwrap();
    let totals = until(&schedule, |t| t.runs > t.failed_runs && t.partitions_compacted > 0).await;
    let stopped = schedule.stop().await;
    assert!(totals.partitions_compacted > 0, "{totals:?} {stopped:?}");
    assert_eq!(parts(&dir, "chains", &old_day), 1);
}
