//! PII propagation: a fingerprint first seen at step i (a Postgres row in a response, a user's
//! request) and sent at a later step j (an LLM request, a SaaS call, an upload) gives the edge
//! i -> j with j's destination. Fingerprints are keyed HMACs from the detectors, never values.
//!
//! Bounded: at most `MAX_TRACKED_FINGERPRINTS` distinct fingerprints and `MAX_FLOWS` edges per
//! chain; what is cut is counted in the returned `FlowStats`.

use crate::chain_view::PiiFlowView;

use crate::hashing::FastMap;
use crate::step::StepRecord;

pub const MAX_TRACKED_FINGERPRINTS: usize = 16_384;
pub const MAX_FLOWS: usize = 4_096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowStats {
    pub fingerprints_untracked: u64,
    pub flows_dropped: u64,
}

/// Where a fingerprint was first seen, and the last step that sent it (+1; 0 = none).
#[derive(Clone, Copy)]
struct Seen {
    step: usize,
    last_sent_to: usize,
}

/// The flows of `steps` (ordered; index = position), first-seen step to each later sender:
/// one per (destination step, source step, fingerprint), sorted by destination step, then
/// source step, then the order the destination step reports its findings in. On borrowed
/// strings.
pub fn pii_flows(steps: &[Box<StepRecord>]) -> (Vec<PiiFlowView<'_>>, FlowStats) {
    let findings: usize = steps.iter().flat_map(|s| s.findings()).map(|f| f.fingerprints.len()).sum();
    let mut first_seen: FastMap<&str, Seen> = FastMap::with_capacity_and_hasher(findings.min(MAX_TRACKED_FINGERPRINTS), Default::default());
    let mut flows: Vec<PiiFlowView<'_>> = Vec::with_capacity(findings.min(MAX_FLOWS));
    let mut stats = FlowStats::default();
    for (j, s) in steps.iter().enumerate() {
        let first_new = flows.len();
        for finding in s.findings() {
            let sent = s.sends(finding.location);
            for fp in finding.fingerprints.iter() {
                match first_seen.get_mut(fp) {
                    Some(seen) => {
                        // once per (step, fingerprint) even when the step reports it in
                        // several places (the first place is the one kept)
                        if sent && seen.step < j && seen.last_sent_to != j + 1 {
                            seen.last_sent_to = j + 1;
                            if flows.len() >= MAX_FLOWS {
                                stats.flows_dropped += 1;
                            } else {
                                flows.push(PiiFlowView {
                                    fingerprint: fp,
                                    pii_type: finding.pii_type,
                                    from_step: seen.step as i32,
                                    to_step: j as i32,
                                    destination: s.destination(),
                                });
                            }
                        }
                    }
                    None => {
                        if first_seen.len() >= MAX_TRACKED_FINGERPRINTS {
                            stats.fingerprints_untracked += 1;
                        } else {
                            first_seen.insert(fp, Seen { step: j, last_sent_to: 0 });
                        }
                    }
                }
            }
        }
        let new = &mut flows[first_new..];
        if !new.is_sorted_by_key(|f| f.from_step) {
            new.sort_by_key(|f| f.from_step);
        }
    }
    (flows, stats)
}
