//! A policy file (TOML): id, title, severity, description, SQL over the chain tables, optional
//! history window, identity key columns and tags. Parsing only; planning the SQL is the engine's.

use std::time::Duration;

use chainwatch_schemas::Severity;
use serde::Deserialize;

/// One policy as written in its file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    #[serde(default)]
    pub description: String,
    /// Returns `chain_id` plus evidence columns; an `evidence_steps` column (int, list of int or
    /// comma-separated string) names steps; `pii_types` and `risk_score` columns, if present,
    /// fill those fields of the violation.
    pub sql: String,
    /// History of chains the policy needs besides the micro-batch (rate policies), e.g. "10m".
    #[serde(default)]
    pub window: Option<String>,
    /// Columns that tell apart several findings of this policy on one chain (each gets its own
    /// violation); rows with the same key are merged. Empty: one violation per chain.
    #[serde(default)]
    pub key: Vec<String>,
    /// MITRE ATLAS technique ids (and free tags).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A loaded policy: the file's content plus where it came from and its parsed window.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub file: PolicyFile,
    /// The file path, or `builtin:<name>` for the embedded pack.
    pub source: String,
    pub window: Option<Duration>,
}

/// A policy that could not be loaded or run, named by its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub source: String,
    pub policy_id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.policy_id {
            Some(id) => write!(f, "{} (policy {id}): {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

/// Parse one policy file's text.
pub fn parse_policy(source: &str, text: &str) -> Result<Policy, PolicyError> {
    let err = |policy_id: Option<String>, message: String| PolicyError { source: source.to_string(), policy_id, message };
    let file: PolicyFile = toml::from_str(text).map_err(|e| err(None, format!("invalid policy TOML: {e}")))?;
    if file.id.trim().is_empty() {
        return Err(err(None, "`id` must not be empty".into()));
    }
    if file.sql.trim().is_empty() {
        return Err(err(Some(file.id.clone()), "`sql` must not be empty".into()));
    }
    let window = match &file.window {
        None => None,
        Some(w) => Some(parse_duration(w).map_err(|m| err(Some(file.id.clone()), format!("`window`: {m}")))?),
    };
    Ok(Policy { file, source: source.to_string(), window })
}

/// "90s", "10m", "2h", "1d" (a number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration like \"10m\""))?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        other => return Err(format!("unknown unit {other:?} in {text:?} (s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// The built-in pack, embedded at compile time: (file name, text).
pub const BUILTIN_PACK: &[(&str, &str)] = &[
    ("pii_exfiltration.toml", include_str!("../policies/pii_exfiltration.toml")),
    ("bulk_data_access.toml", include_str!("../policies/bulk_data_access.toml")),
    ("agent_loop.toml", include_str!("../policies/agent_loop.toml")),
    ("llm_call_burst.toml", include_str!("../policies/llm_call_burst.toml")),
    ("token_spike.toml", include_str!("../policies/token_spike.toml")),
    ("db_outside_business_hours.toml", include_str!("../policies/db_outside_business_hours.toml")),
    ("injection_then_tools.toml", include_str!("../policies/injection_then_tools.toml")),
    ("llm_db_write_post.toml", include_str!("../policies/llm_db_write_post.toml")),
    ("compress_then_upload.toml", include_str!("../policies/compress_then_upload.toml")),
    ("pii_llm_context.toml", include_str!("../policies/pii_llm_context.toml")),
    ("tool_outside_profile.toml", include_str!("../policies/tool_outside_profile.toml")),
    ("secret_to_external.toml", include_str!("../policies/secret_to_external.toml")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn every_builtin_policy_parses() {
        for (name, text) in BUILTIN_PACK {
            let p = parse_policy(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert!(!p.file.tags.is_empty(), "{name} has no tag");
        }
    }

    #[test]
    fn broken_toml_names_the_file() {
        let e = parse_policy("/x/bad.toml", "id = ").unwrap_err();
        assert_eq!(e.source, "/x/bad.toml");
        assert!(e.message.contains("invalid policy TOML"));
    }
}
