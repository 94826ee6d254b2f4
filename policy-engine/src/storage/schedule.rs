//! Scheduled compaction: a background task that, every `interval`, merges the part files of the
//! closed days (every day partition before today, UTC) of a store while its writer keeps
//! appending. A failed run is logged and counted, never fatal; the next interval tries again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::compaction::{self, CompactionReport};
use super::error::StorageError;
use super::layout::PartWriter;

/// Compacts one store's closed days from another task (`ChainStore::compactor`). It shares the
/// writer's part numbering and deletes only the parts it merged, so appends may go on meanwhile.
#[derive(Debug, Clone)]
pub struct StoreCompactor {
    writer: PartWriter,
}

impl StoreCompactor {
    pub(super) fn new(writer: PartWriter) -> Self {
        StoreCompactor { writer }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.writer.data_dir()
    }

    /// Merges every partition of a day before `today` (YYYY-MM-DD) that holds more than one part.
    pub async fn compact_before(&mut self, today: &str) -> Result<CompactionReport, StorageError> {
        compaction::compact_all(&mut self.writer, 1, |day| day < today).await
    }
}

/// What the scheduled runs did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionTotals {
    pub runs: u64,
    pub failed_runs: u64,
    pub partitions_compacted: u64,
    pub parts_removed: u64,
}

/// The running schedule; `stop` ends it (a run in progress finishes first).
#[derive(Debug)]
pub struct ScheduledCompaction {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    totals: Arc<Mutex<CompactionTotals>>,
}

impl ScheduledCompaction {
    /// Starts the schedule on the current tokio runtime; the first run is one `interval` from now.
    pub fn start(mut compactor: StoreCompactor, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let totals = Arc::new(Mutex::new(CompactionTotals::default()));
        let shared = totals.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => break,
                }
                let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
                let result = compactor.compact_before(&today).await;
                let mut t = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                t.runs += 1;
                match result {
                    Ok(r) => {
                        t.partitions_compacted += r.partitions_compacted as u64;
                        t.parts_removed += r.parts_removed as u64;
                        if r.partitions_compacted > 0 {
                            tracing::info!(
                                data_dir = %compactor.data_dir().display(),
                                partitions = r.partitions_compacted,
                                parts_removed = r.parts_removed,
                                rows_before = r.rows_before,
                                rows_after = r.rows_after,
                                "compacted closed days"
                            );
                        }
                    }
                    Err(e) => {
                        t.failed_runs += 1;
                        tracing::warn!(error = %e, "scheduled compaction failed; trying again at the next interval");
                    }
                }
            }
        });
        ScheduledCompaction { stop, task, totals }
    }

    pub fn totals(&self) -> CompactionTotals {
        *self.totals.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the schedule, waiting for a run in progress; returns the totals.
    pub async fn stop(self) -> CompactionTotals {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the scheduled compaction task ended abnormally");
        }
        *self.totals.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
