//! Bounded history of recent chains for policies with a `window` (rate policies), kept as the
//! Arrow tables of past micro-batches so a window costs no re-flattening: each micro-batch's
//! tables are stored as they were registered; when a chain comes again, its old rows are
//! filtered out of the stored batches (only the latest version stays). Batches whose chains all
//! ended before the newest chain end minus the largest window are dropped, and so are the
//! oldest batches beyond a cap on the chains kept (evictions counted).

use std::collections::{HashSet, VecDeque};

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::compute::filter_record_batch;

use crate::tables::{ChainTables, TableError};

/// Bounds of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Keep batches with a chain that ended within this many nanoseconds of the newest end.
    pub window_ns: i64,
    /// At most this many chains in all kept batches.
    pub max_chains: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { window_ns: 0, max_chains: 200_000 }
    }
}

#[derive(Debug)]
struct StoredBatch {
    tables: ChainTables,
    chain_ids: HashSet<String>,
    max_end_ns: i64,
}

/// Past micro-batches as Arrow tables.
#[derive(Debug, Default)]
pub struct ChainHistory {
    limits: HistoryLimits,
    batches: VecDeque<StoredBatch>,
    newest_end_ns: i64,
    evicted_chains: u64,
}

impl ChainHistory {
    pub fn new(limits: HistoryLimits) -> Self {
        ChainHistory { limits, ..Default::default() }
    }

    pub fn set_window_ns(&mut self, window_ns: i64) {
        self.limits.window_ns = window_ns;
    }

    /// Chains dropped by the window or the cap.
    pub fn evicted_chains(&self) -> u64 {
        self.evicted_chains
    }

    /// Chains kept.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|b| b.chain_ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a micro-batch (its tables, its chain ids and its latest chain end), replacing older
    /// rows of the same chains, then evict.
    pub fn insert(&mut self, tables: ChainTables, chain_ids: HashSet<String>, max_end_ns: i64) -> Result<(), TableError> {
        for old in self.batches.iter_mut() {
            if old.chain_ids.is_disjoint(&chain_ids) {
                continue;
            }
            old.chain_ids.retain(|id| !chain_ids.contains(id));
            old.tables = without_chains(&old.tables, &chain_ids)?;
            old.max_end_ns = max_end(&old.tables.chains).unwrap_or(old.max_end_ns);
        }
        self.batches.retain(|b| !b.chain_ids.is_empty());
        self.newest_end_ns = self.newest_end_ns.max(max_end_ns);
        self.batches.push_back(StoredBatch { tables, chain_ids, max_end_ns });
        let floor = self.newest_end_ns.saturating_sub(self.limits.window_ns);
        let mut kept = self.len();
        while let Some(first) = self.batches.front() {
            let too_old = first.max_end_ns < floor;
            let too_many = kept > self.limits.max_chains && self.batches.len() > 1;
            if !(too_old || too_many) {
                break;
            }
            if let Some(b) = self.batches.pop_front() {
                kept -= b.chain_ids.len();
                self.evicted_chains += b.chain_ids.len() as u64;
            }
        }
        Ok(())
    }

    /// The kept batches of each table, oldest first: (chains, steps, tool_calls, pii_flows,
    /// processes).
    pub fn table_batches(&self) -> [Vec<RecordBatch>; 5] {
        let mut out: [Vec<RecordBatch>; 5] = Default::default();
        for b in &self.batches {
            let t = &b.tables;
            for (slot, batch) in out.iter_mut().zip([&t.chains, &t.steps, &t.tool_calls, &t.pii_flows, &t.processes]) {
                if batch.num_rows() > 0 {
                    slot.push(batch.clone());
                }
            }
        }
        out
    }
}

/// The latest `end_time` of a chains batch.
fn max_end(chains: &RecordBatch) -> Option<i64> {
    let col = chains.column_by_name("end_time")?;
    datafusion::arrow::compute::max(col.as_primitive_opt::<TimestampNanosecondType>()?)
}

fn without_chains(t: &ChainTables, ids: &HashSet<String>) -> Result<ChainTables, TableError> {
    let keep = |table: &'static str, b: &RecordBatch| -> Result<RecordBatch, TableError> {
        let Some(col) = b.column_by_name("chain_id").and_then(|c| c.as_any().downcast_ref::<StringArray>()) else {
            return Ok(b.clone());
        };
        let mask: BooleanArray = (0..col.len()).map(|i| Some(col.is_null(i) || !ids.contains(col.value(i)))).collect();
        filter_record_batch(b, &mask).map_err(|source| TableError::Arrow { table, source })
    };
    Ok(ChainTables {
        chains: keep("chains", &t.chains)?,
        steps: keep("steps", &t.steps)?,
        tool_calls: keep("tool_calls", &t.tool_calls)?,
        pii_flows: keep("pii_flows", &t.pii_flows)?,
        processes: keep("processes", &t.processes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::{Chain, samples};

    fn chain(id: &str, end_s: i64) -> Chain {
        let mut c = samples::chain();
        c.chain_id = id.into();
        c.end_ns = end_s * 1_000_000_000;
        c
    }

    fn add(h: &mut ChainHistory, chains: &[Chain]) {
        let t = ChainTables::from_chains(chains).unwrap();
        let ids = chains.iter().map(|c| c.chain_id.clone()).collect();
        h.insert(t, ids, chains.iter().map(|c| c.end_ns).max().unwrap()).unwrap();
    }

    fn steps(h: &ChainHistory) -> usize {
        h.table_batches()[1].iter().map(|b| b.num_rows()).sum()
    }

    #[test]
    fn latest_version_only_window_and_cap() {
        let mut h = ChainHistory::new(HistoryLimits { window_ns: 600 * 1_000_000_000, max_chains: 3 });
        add(&mut h, &[chain("a", 0), chain("b", 100)]);
        assert_eq!((h.len(), steps(&h)), (2, 2));
        let mut b2 = chain("b", 200);
        b2.steps.push(b2.steps[0].clone());
        add(&mut h, &[b2]);
        assert_eq!((h.len(), steps(&h)), (2, 3), "b's old row is gone, its two new steps are in");
        add(&mut h, &[chain("c", 700)]);
        assert_eq!(h.len(), 2, "the batch of a (ended 0) fell out of the 10-minute window");
        add(&mut h, &[chain("d", 701), chain("e", 702)]);
        assert!(h.len() <= 3, "cap");
        assert!(h.evicted_chains() >= 2);
    }
}
