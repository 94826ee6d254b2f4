//! Detectors on decoded bodies: PII (email, phone, card, SSN, IBAN, IP), secrets (API keys,
//! JWTs, private keys) with keyed fingerprints, prompt-injection signals, archive uploads,
//! and redaction of what is published.
//!
//! `Detector` is built once per worker (it holds the compiled automata and the fingerprint
//! key) and is `Send + Sync`. Each `scan*` call returns `Findings`, which merge, and turn into
//! the `pii` / `secrets` / `injection` fields of a SemanticEvent.

pub mod archive;
pub mod checksums;
pub mod findings;
pub mod fingerprint;
pub mod injection;
pub mod pii;
pub mod redact;
pub mod scanner;
pub mod secrets;
pub mod text;

use chainwatch_config::ContentCapture;

pub use archive::ArchiveLimits;
pub use findings::{DetectStats, Findings, TypeFindings};
pub use fingerprint::Fingerprinter;
pub use injection::{RULES as INJECTION_RULES, Rule as InjectionRule};
pub use redact::{REDACTED, is_secret_header};
pub use scanner::{FindingType, Match, PatternScanner};

/// Bounds of the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectLimits {
    /// Distinct fingerprints kept per (type, location); further matches are counted only.
    pub max_fingerprints: usize,
    /// Bytes of one buffer scanned; the rest is counted in `DetectStats::bytes_not_scanned`.
    pub max_scan_bytes: usize,
    pub archive: ArchiveLimits,
}

impl Default for DetectLimits {
    fn default() -> Self {
        DetectLimits { max_fingerprints: 64, max_scan_bytes: 16 * 1024 * 1024, archive: ArchiveLimits::default() }
    }
}

/// The detectors with their compiled automata and the deployment's fingerprint key.
pub struct Detector {
    fingerprinter: Fingerprinter,
    limits: DetectLimits,
    patterns: PatternScanner,
    injection: injection::InjectionScanner,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Detector {
    /// Detectors with default limits; `fingerprint_key` is the per-deployment HMAC key
    /// (`parser.fingerprint_key`).
    pub fn new(fingerprint_key: &[u8]) -> Self {
        Self::with_limits(fingerprint_key, DetectLimits::default())
    }

    pub fn with_limits(fingerprint_key: &[u8], limits: DetectLimits) -> Self {
        Detector {
            fingerprinter: Fingerprinter::new(fingerprint_key),
            limits,
            patterns: PatternScanner::new(),
            injection: injection::InjectionScanner::new(),
        }
    }

    pub fn limits(&self) -> &DetectLimits {
        &self.limits
    }

    /// PII, secrets and prompt-injection signals in one buffer (a body, a message text, SQL
    /// rows), all reported at `location` ("request.body", "response.body", "sql.rows", ...).
    pub fn scan(&self, bytes: &[u8], location: &str) -> Findings {
        self.scan_inner(bytes, location, true)
    }

    /// PII and secrets only (no injection rules): for data that never reaches a model.
    pub fn scan_patterns(&self, bytes: &[u8], location: &str) -> Findings {
        self.scan_inner(bytes, location, false)
    }

    fn scan_inner(&self, bytes: &[u8], location: &str, with_injection: bool) -> Findings {
        let mut f = Findings::new(self.limits.max_fingerprints);
        let bytes = if bytes.len() > self.limits.max_scan_bytes {
            f.stats.bytes_not_scanned += (bytes.len() - self.limits.max_scan_bytes) as u64;
            &bytes[..self.limits.max_scan_bytes]
        } else {
            bytes
        };
        f.stats.bytes_scanned += bytes.len() as u64;
        let out = self.patterns.scan(bytes);
        if out.unescaped.is_some() {
            f.stats.bodies_unescaped += 1;
        }
        f.stats.match_cap_hits += out.matches_dropped;
        for m in &out.matches {
            f.add(m.kind, location, || self.fingerprinter.fingerprint(m.kind, out.text(bytes, m)));
        }
        if with_injection {
            let text = out.unescaped.as_deref().unwrap_or(bytes);
            let st = self.injection.scan(text, &mut |rule, score| f.add_injection(rule, score, location));
            f.stats.base64_cap_hits += st.base64_cap_hits;
        }
        f
    }

    /// An uploaded payload: archives (gzip, zip, tar, tar.gz; magic bytes decide) are opened
    /// within `limits.archive` and each entry scanned at `location[:filename]/entry/path`;
    /// anything else is scanned as it is at `location[:filename]`.
    pub fn scan_upload(&self, bytes: &[u8], location: &str, filename: Option<&str>) -> Findings {
        let base = match filename {
            Some(name) if !name.is_empty() => format!("{location}:{name}"),
            _ => location.to_string(),
        };
        let mut all = Findings::new(self.limits.max_fingerprints);
        let mut stats = DetectStats::default();
        archive::for_each_entry(bytes, &base, self.limits.archive, &mut stats, |loc, data| {
            all.merge(self.scan(data, loc));
        });
        all.stats.merge(&stats);
        all
    }

    /// `text` as it may be published: `Off` gives "", `Redacted` masks PII and secrets, `Full`
    /// masks secrets only (secrets never leave the node).
    pub fn redact_text(&self, text: &str, mode: ContentCapture) -> String {
        redact::redact_with(&self.patterns, text, mode)
    }

    /// A header value as it may be published (credential headers become `[REDACTED]`).
    pub fn redact_header_value(&self, name: &str, value: &str) -> String {
        redact::redact_header_value(&self.patterns, name, value)
    }

    /// The keyed fingerprint of a raw value of a type (normalised first).
    pub fn fingerprint(&self, kind: FindingType, raw: &[u8]) -> String {
        self.fingerprinter.fingerprint(kind, raw)
    }
}

#[cfg(test)]
mod tests;
