//! PII propagation: a fingerprint first seen at step i (a Postgres row in a response, a user's
//! request) and sent at a later step j (an LLM request, a SaaS call, an upload) gives the edge
//! i -> j with j's destination. Fingerprints are keyed HMACs from the detectors, never values.
//!
//! Bounded: at most `MAX_TRACKED_FINGERPRINTS` distinct fingerprints and `MAX_FLOWS` edges per
//! chain; what is cut is counted in the returned `FlowStats`.

use chainwatch_schemas::{PiiFinding, PiiFlow};

use crate::hashing::FastMap;
use crate::step::StepRecord;

pub const MAX_TRACKED_FINGERPRINTS: usize = 16_384;
pub const MAX_FLOWS: usize = 4_096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowStats {
    pub fingerprints_untracked: u64,
    pub flows_dropped: u64,
}

/// The flows of `steps` (ordered; index = position), first-seen step to each later sender.
/// Edges are found and deduplicated on borrowed strings; only the kept ones are copied out.
pub fn pii_flows(steps: &[Box<StepRecord>]) -> (Vec<PiiFlow>, FlowStats) {
    let findings: usize = steps.iter().flat_map(|s| &s.pii).map(|f| f.fingerprints.len()).sum();
    let mut first_seen: FastMap<&str, usize> = FastMap::with_capacity_and_hasher(findings.min(MAX_TRACKED_FINGERPRINTS), Default::default());
    // (to, from, fingerprint, finding): the edge and where its PII type is.
    let mut edges: Vec<(usize, usize, &str, &PiiFinding)> = Vec::new();
    let mut stats = FlowStats::default();
    for (j, s) in steps.iter().enumerate() {
        for finding in &s.pii {
            let sent = s.sends(&finding.location);
            for fp in &finding.fingerprints {
                match first_seen.get(fp.as_str()) {
                    Some(&i) if i < j => {
                        if sent {
                            if edges.len() >= MAX_FLOWS {
                                stats.flows_dropped += 1;
                            } else {
                                edges.push((j, i, fp.as_str(), finding));
                            }
                        }
                    }
                    Some(_) => {}
                    None => {
                        if first_seen.len() >= MAX_TRACKED_FINGERPRINTS {
                            stats.fingerprints_untracked += 1;
                        } else {
                            first_seen.insert(fp.as_str(), j);
                        }
                    }
                }
            }
        }
    }
    // One edge per (fingerprint, from, to) even when a step reports it in several places (the
    // first reported stays: a stable sort).
    edges.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    edges.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
    let flows = edges
        .iter()
        .map(|&(to, from, fp, finding)| PiiFlow {
            fingerprint: fp.to_string(),
            pii_type: finding.pii_type.clone(),
            from_step: from as i32,
            to_step: to as i32,
            destination: steps.get(to).and_then(|s| s.step.destination.clone()),
        })
        .collect();
    (flows, stats)
}
