//! The background tasks of the embedded pipeline (`chainwatch run`, `demo`), started and ended
//! together: the violation webhook (`policy.webhook`) and the scheduled compaction of the chain
//! store's closed days (`storage.compaction_interval_secs`). Neither ever blocks the pipeline:
//! violations are only offered to the webhook's bounded queue, compaction runs on its own task.

use std::time::Duration;

use chainwatch_config::ChainwatchConfig;
use chainwatch_schemas::Violation;

use crate::storage::{ChainStore, CompactionTotals, ScheduledCompaction};
use crate::webhook::{WebhookError, WebhookSink, WebhookStats};

/// How long `finish` waits for the webhook queue to drain.
const WEBHOOK_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What the tasks did, when they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddedTasksReport {
    pub webhook: Option<WebhookStats>,
    pub compaction: Option<CompactionTotals>,
}

/// The running tasks (none when neither is configured).
#[derive(Debug, Default)]
pub struct EmbeddedTasks {
    webhook: Option<WebhookSink>,
    compaction: Option<ScheduledCompaction>,
}

impl EmbeddedTasks {
    /// Starts what `cfg` asks for on the current tokio runtime; compaction only with a `store`.
    pub fn start(cfg: &ChainwatchConfig, store: Option<&ChainStore>) -> Result<Self, WebhookError> {
        let webhook = WebhookSink::from_config(&cfg.policy.webhook)?;
        let compaction = match (store, cfg.storage.compaction_interval_secs) {
            (Some(store), secs) if secs > 0 => {
                Some(ScheduledCompaction::start(store.compactor(), Duration::from_secs(secs)))
            }
            _ => None,
        };
        Ok(EmbeddedTasks { webhook, compaction })
    }

    /// Hands new or updated violations to the webhook (never waits).
    pub fn on_violations(&self, violations: &[Violation]) {
        if let Some(w) = &self.webhook {
            for v in violations {
                w.offer_violation(v);
            }
        }
    }

    /// Ends the schedule and drains the webhook queue (bounded wait); logs what was lost.
    pub async fn finish(self) -> EmbeddedTasksReport {
        let compaction = match self.compaction {
            Some(c) => Some(c.stop().await),
            None => None,
        };
        let webhook = match self.webhook {
            Some(w) => {
                let origin = w.origin().to_string();
                let s = w.close(WEBHOOK_CLOSE_GRACE).await;
                if s.dropped_queue_full + s.rejected + s.gave_up + s.pending() > 0 {
                    tracing::warn!(webhook = %origin, stats = ?s, "webhook: some violations were not delivered");
                } else {
                    tracing::info!(webhook = %origin, delivered = s.delivered, "webhook: every violation delivered");
                }
                Some(s)
            }
            None => None,
        };
        EmbeddedTasksReport { webhook, compaction }
    }
}
