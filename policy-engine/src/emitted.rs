//! Which violations were already emitted, with which evidence: a violation is emitted once per
//! (policy, chain, key) with a deterministic id, re-emitted with version + 1 when its evidence
//! changes, and not at all when nothing changed. Bounded (oldest entries evicted, counted).

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

/// The state of one emitted violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmittedState {
    pub version: i64,
    pub fingerprint: [u8; 32],
    pub first_seen_ns: i64,
}

/// What to do with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Emit with this version and first-seen time.
    Emit { version: i64, first_seen_ns: i64 },
    /// Same evidence as last time.
    Unchanged,
}

/// Emitted violations by id.
#[derive(Debug)]
pub struct EmittedViolations {
    states: HashMap<String, EmittedState>,
    order: VecDeque<String>,
    cap: usize,
    evicted: u64,
}

impl Default for EmittedViolations {
    fn default() -> Self {
        EmittedViolations::new(500_000)
    }
}

impl EmittedViolations {
    pub fn new(cap: usize) -> Self {
        EmittedViolations { states: HashMap::new(), order: VecDeque::new(), cap: cap.max(1), evicted: 0 }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Record a finding's fingerprint; says whether (and as which version) to emit it.
    pub fn decide(&mut self, violation_id: &str, fingerprint: [u8; 32], now_ns: i64) -> Decision {
        match self.states.get_mut(violation_id) {
            Some(s) if s.fingerprint == fingerprint => Decision::Unchanged,
            Some(s) => {
                s.version += 1;
                s.fingerprint = fingerprint;
                Decision::Emit { version: s.version, first_seen_ns: s.first_seen_ns }
            }
            None => {
                self.states.insert(violation_id.to_string(), EmittedState { version: 1, fingerprint, first_seen_ns: now_ns });
                self.order.push_back(violation_id.to_string());
                while self.order.len() > self.cap {
                    if let Some(old) = self.order.pop_front() {
                        self.states.remove(&old);
                        self.evicted += 1;
                    }
                }
                Decision::Emit { version: 1, first_seen_ns: now_ns }
            }
        }
    }
}

/// Deterministic violation id: SHA-256 of policy id, chain id and key values (hex, 32 chars).
pub fn violation_id(policy_id: &str, chain_id: &str, key: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(policy_id.as_bytes());
    h.update([0]);
    h.update(chain_id.as_bytes());
    for k in key {
        h.update([0]);
        h.update(k.as_bytes());
    }
    hex(&h.finalize()[..16])
}

/// SHA-256 of a sequence of fields (separated so that ("ab","c") != ("a","bc")).
pub fn fingerprint<'a>(fields: impl IntoIterator<Item = &'a str>) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in fields {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_once_update_on_change() {
        let mut e = EmittedViolations::new(2);
        let id = violation_id("p", "c", &[]);
        assert_eq!(id.len(), 32);
        assert_eq!(id, violation_id("p", "c", &[]));
        assert_ne!(id, violation_id("p", "c", &["x".into()]));
        let f1 = fingerprint(["a"]);
        let f2 = fingerprint(["b"]);
        assert_eq!(e.decide(&id, f1, 5), Decision::Emit { version: 1, first_seen_ns: 5 });
        assert_eq!(e.decide(&id, f1, 6), Decision::Unchanged);
        assert_eq!(e.decide(&id, f2, 7), Decision::Emit { version: 2, first_seen_ns: 5 });
        e.decide("x", f1, 0);
        e.decide("y", f1, 0);
        assert_eq!(e.len(), 2);
        assert_eq!(e.evicted(), 1);
    }
}
