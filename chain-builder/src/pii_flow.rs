//! PII propagation: a fingerprint first seen at step i (a Postgres row in a response, a user's
//! request) and sent at a later step j (an LLM request, a SaaS call, an upload) gives the edge
//! i -> j with j's destination. Fingerprints are keyed HMACs from the detectors, never values.
//!
//! Bounded: at most `MAX_TRACKED_FINGERPRINTS` distinct fingerprints and `MAX_FLOWS` edges per
//! chain; what is cut is counted in the returned `FlowStats`.

use chainwatch_schemas::PiiFlow;

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
pub fn pii_flows(steps: &[StepRecord]) -> (Vec<PiiFlow>, FlowStats) {
    let mut first_seen: FastMap<&str, usize> = FastMap::default();
    let mut flows = Vec::new();
    let mut stats = FlowStats::default();
    for (j, s) in steps.iter().enumerate() {
        for finding in &s.pii {
            let sent = s.sends(&finding.location);
            for fp in &finding.fingerprints {
                match first_seen.get(fp.as_str()) {
                    Some(&i) if i < j => {
                        if sent {
                            if flows.len() >= MAX_FLOWS {
                                stats.flows_dropped += 1;
                            } else {
                                flows.push(PiiFlow {
                                    fingerprint: fp.clone(),
                                    pii_type: finding.pii_type.clone(),
                                    from_step: i as i32,
                                    to_step: j as i32,
                                    destination: s.step.destination.clone(),
                                });
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
    // One edge per (fingerprint, from, to) even when a step reports it in several places.
    flows.sort_by(|a, b| (a.to_step, a.from_step, &a.fingerprint).cmp(&(b.to_step, b.from_step, &b.fingerprint)));
    flows.dedup_by(|a, b| a.to_step == b.to_step && a.from_step == b.from_step && a.fingerprint == b.fingerprint);
    (flows, stats)
}
