//! Aggregation of matches into what a SemanticEvent publishes: per (type, location) a count
//! and the deduplicated fingerprints (capped per type, cap hits counted), plus the injection
//! signals; never the values themselves.

use std::collections::BTreeMap;

use chainwatch_schemas::{InjectionSignal, PiiFinding, SecretFinding};

use super::scanner::FindingType;

/// Counters of what the detectors skipped or cut short (caps hit), per scan or merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Bytes handed to the pattern scanner (archive entries included).
    pub bytes_scanned: u64,
    /// Bodies scanned after JSON-unescaping (they held `\uXXXX` escapes).
    pub bodies_unescaped: u64,
    /// Matches not kept because one buffer had more than `scanner::MAX_MATCHES`.
    pub match_cap_hits: u64,
    /// Matches not fingerprinted because their type already had `max_fingerprints` distinct values.
    pub fingerprint_cap_hits: u64,
    /// Bytes of a body beyond `max_scan_bytes` that were not scanned.
    pub bytes_not_scanned: u64,
    /// Archives whose decompressed bytes reached `max_archive_bytes` (scanning stopped there).
    pub archive_bytes_cap_hits: u64,
    /// Archives with more than `max_archive_entries` entries (the rest not scanned).
    pub archive_entries_cap_hits: u64,
    /// Archives inside archives beyond the nesting limit (not opened).
    pub archive_depth_cap_hits: u64,
    /// Archive entries scanned.
    pub archive_entries_scanned: u64,
    /// Archives that could not be read (corrupt, encrypted, unsupported method).
    pub archive_errors: u64,
    /// Base64 runs not decoded for the injection rescan (budget spent).
    pub base64_cap_hits: u64,
}

impl DetectStats {
    pub fn merge(&mut self, o: &DetectStats) {
        self.bytes_scanned += o.bytes_scanned;
        self.bodies_unescaped += o.bodies_unescaped;
        self.match_cap_hits += o.match_cap_hits;
        self.fingerprint_cap_hits += o.fingerprint_cap_hits;
        self.bytes_not_scanned += o.bytes_not_scanned;
        self.archive_bytes_cap_hits += o.archive_bytes_cap_hits;
        self.archive_entries_cap_hits += o.archive_entries_cap_hits;
        self.archive_depth_cap_hits += o.archive_depth_cap_hits;
        self.archive_entries_scanned += o.archive_entries_scanned;
        self.archive_errors += o.archive_errors;
        self.base64_cap_hits += o.base64_cap_hits;
    }
}

/// Count and distinct fingerprints of one type at one location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFindings {
    pub count: u64,
    /// Distinct fingerprints in first-seen order, at most the cap.
    pub fingerprints: Vec<String>,
}

/// Everything the detectors found in one or more buffers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    by_type: BTreeMap<(FindingType, String), TypeFindings>,
    /// (rule id, location) -> score.
    injection: BTreeMap<(&'static str, String), f64>,
    pub stats: DetectStats,
    max_fingerprints: usize,
}

impl Findings {
    pub fn new(max_fingerprints: usize) -> Self {
        Findings { max_fingerprints, ..Default::default() }
    }

    /// Records one match: counted always, its fingerprint kept if new and under the cap.
    /// `fingerprint` is only called when the value can still be kept.
    pub fn add(&mut self, kind: FindingType, location: &str, fingerprint: impl FnOnce() -> String) {
        let cap = self.max_fingerprints;
        let entry = match self.by_type.get_mut(&(kind, location.to_string())) {
            Some(e) => e,
            None => self.by_type.entry((kind, location.to_string())).or_default(),
        };
        entry.count += 1;
        if entry.fingerprints.len() < cap {
            let fp = fingerprint();
            if !entry.fingerprints.contains(&fp) {
                entry.fingerprints.push(fp);
            }
        } else {
            self.stats.fingerprint_cap_hits += 1;
        }
    }

    /// Records an injection rule hit (the highest score per rule and location is kept).
    pub fn add_injection(&mut self, rule: &'static str, score: f64, location: &str) {
        let e = self.injection.entry((rule, location.to_string())).or_insert(score);
        if score > *e {
            *e = score;
        }
    }

    /// Folds `other` into `self` (counts add, fingerprints union under the cap).
    pub fn merge(&mut self, other: Findings) {
        if self.max_fingerprints == 0 {
            self.max_fingerprints = other.max_fingerprints;
        }
        let cap = self.max_fingerprints;
        for (k, v) in other.by_type {
            let e = self.by_type.entry(k).or_default();
            e.count += v.count;
            for fp in v.fingerprints {
                if e.fingerprints.contains(&fp) {
                    continue;
                }
                if e.fingerprints.len() < cap {
                    e.fingerprints.push(fp);
                } else {
                    self.stats.fingerprint_cap_hits += 1;
                }
            }
        }
        for ((rule, loc), score) in other.injection {
            self.add_injection(rule, score, &loc);
        }
        self.stats.merge(&other.stats);
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty() && self.injection.is_empty()
    }

    /// Total count of a type over all locations.
    pub fn count(&self, kind: FindingType) -> u64 {
        self.by_type.iter().filter(|((t, _), _)| *t == kind).map(|(_, v)| v.count).sum()
    }

    /// Distinct fingerprints of a type over all locations.
    pub fn fingerprints(&self, kind: FindingType) -> Vec<String> {
        let mut v: Vec<String> = self.by_type.iter().filter(|((t, _), _)| *t == kind).flat_map(|(_, v)| v.fingerprints.iter().cloned()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every (type, location) entry.
    pub fn entries(&self) -> impl Iterator<Item = (FindingType, &str, &TypeFindings)> {
        self.by_type.iter().map(|((t, l), v)| (*t, l.as_str(), v))
    }

    /// Every injection (rule, location, score).
    pub fn injection_signals(&self) -> impl Iterator<Item = (&'static str, &str, f64)> {
        self.injection.iter().map(|((r, l), s)| (*r, l.as_str(), *s))
    }

    /// The SemanticEvent fields: `pii`, `secrets`, `injection`.
    pub fn into_event_parts(self) -> (Vec<PiiFinding>, Vec<SecretFinding>, Vec<InjectionSignal>) {
        let mut pii = Vec::new();
        let mut secrets = Vec::new();
        for ((t, location), v) in self.by_type {
            let count = i32::try_from(v.count).unwrap_or(i32::MAX);
            if t.is_secret() {
                secrets.push(SecretFinding { secret_type: t.name().to_string(), count, fingerprints: v.fingerprints, location });
            } else {
                pii.push(PiiFinding { pii_type: t.name().to_string(), count, fingerprints: v.fingerprints, location });
            }
        }
        let injection = self.injection.into_iter().map(|((rule, location), score)| InjectionSignal { rule: rule.to_string(), score, location }).collect();
        (pii, secrets, injection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_cap_and_merge() {
        let mut a = Findings::new(2);
        for v in ["a", "b", "a", "c"] {
            a.add(FindingType::Email, "request.body", || v.to_string());
        }
        assert_eq!(a.count(FindingType::Email), 4);
        assert_eq!(a.fingerprints(FindingType::Email), ["a", "b"]);
        // The third "a" and "c" came after the cap: counted, not fingerprinted.
        assert_eq!(a.stats.fingerprint_cap_hits, 2);
        let mut b = Findings::new(2);
        b.add(FindingType::Email, "request.body", || "z".into());
        b.add_injection("instruction_override", 0.8, "request.body");
        a.merge(b);
        assert_eq!(a.count(FindingType::Email), 5);
        assert_eq!(a.stats.fingerprint_cap_hits, 3);
        let (pii, secrets, inj) = a.into_event_parts();
        assert_eq!(pii.len(), 1);
        assert_eq!(pii[0].pii_type, "email");
        assert_eq!(pii[0].count, 5);
        assert!(secrets.is_empty());
        assert_eq!(inj[0].rule, "instruction_override");
    }
}
