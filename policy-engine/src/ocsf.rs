//! A violation as an OCSF Detection Finding (class_uid 2004, category_uid 2), the JSON that goes
//! to cw.violations and the webhook. Our own fields (chain id, PII types, risk score, policy id,
//! evidence) and the OpenTelemetry `gen_ai.security.*` attributes ride in `unmapped`.

use chainwatch_schemas::{Severity, Violation};
use serde_json::{Value, json};

/// The OCSF schema version this shape follows.
pub const OCSF_VERSION: &str = "1.3.0";
const CLASS_UID: i64 = 2004;
const CATEGORY_UID: i64 = 2;

/// OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical.
pub fn severity_id(s: Severity) -> (i64, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// The OCSF Detection Finding of a violation. Version 1 is activity Create, later versions Update.
pub fn to_ocsf_json(v: &Violation) -> Value {
    let (activity_id, activity_name) = if v.version <= 1 { (1, "Create") } else { (2, "Update") };
    let (sev_id, sev_name) = severity_id(v.severity);
    let ms = |ns: i64| ns.div_euclid(1_000_000);
    let evidences: Vec<Value> = v
        .evidence_steps
        .iter()
        .map(|s| json!({"name": "chain_step", "data": {"chain_id": v.chain_id, "step_index": s}}))
        .collect();
    let attacks: Vec<Value> = v
        .tags
        .iter()
        .filter(|t| t.starts_with("AML.T"))
        .map(|t| json!({"technique": {"uid": t}, "version": "MITRE ATLAS"}))
        .collect();
    let mut evidence_data = serde_json::Map::new();
    for (k, val) in &v.evidence {
        evidence_data.insert(k.clone(), Value::String(val.clone()));
    }
    json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": sev_id,
        "severity": sev_name,
        "status_id": 1,
        "status": "New",
        "time": ms(v.ts_ns),
        "message": v.policy_title,
        "risk_score": (v.risk_score.clamp(0.0, 1.0) * 100.0).round() as i64,
        "finding_info": {
            "uid": v.violation_id,
            "title": v.policy_title,
            "desc": v.description,
            "types": [v.policy_id],
            "first_seen_time": ms(v.first_seen_ns),
            "last_seen_time": ms(v.ts_ns),
            "attacks": attacks,
            "analytic": {"uid": v.policy_id, "name": v.policy_title, "type_id": 1, "type": "Rule"},
        },
        "evidences": evidences,
        "device": {"hostname": v.node},
        "metadata": {
            "version": OCSF_VERSION,
            "uid": v.violation_id,
            "correlation_uid": v.chain_id,
            "log_version": v.version.to_string(),
            "product": {"name": "chainwatch", "vendor_name": "chainwatch", "version": env!("CARGO_PKG_VERSION")},
        },
        "unmapped": {
            "chain_id": v.chain_id,
            "agent_key": v.agent_key,
            "policy_id": v.policy_id,
            "violation_version": v.version,
            "pii_types": v.pii_types,
            "risk_score": v.risk_score,
            "tags": v.tags,
            "evidence": evidence_data,
            "evidence_steps": v.evidence_steps,
            "gen_ai.security.policy.id": v.policy_id,
            "gen_ai.security.policy.name": v.policy_title,
            "gen_ai.security.decision.type": "audit",
            "gen_ai.security.target.type": "agent_chain",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::samples;

    #[test]
    fn detection_finding_shape() {
        let v = samples::violation();
        let j = to_ocsf_json(&v);
        assert_eq!(j["class_uid"], 2004);
        assert_eq!(j["category_uid"], 2);
        assert_eq!(j["activity_id"], 1);
        assert_eq!(j["type_uid"], 200401);
        assert_eq!(j["severity_id"], 4);
        assert_eq!(j["finding_info"]["uid"], "v-1");
        assert_eq!(j["finding_info"]["title"], "PII uploaded to an unauthorized external destination");
        assert_eq!(j["evidences"][1]["data"]["step_index"], 6);
        assert_eq!(j["metadata"]["product"]["name"], "chainwatch");
        assert_eq!(j["unmapped"]["chain_id"], "chain-1");
        assert_eq!(j["unmapped"]["pii_types"][0], "email");
        assert_eq!(j["unmapped"]["gen_ai.security.decision.type"], "audit");
        assert_eq!(j["time"], 1_700_000_010_000i64);
        let updated = to_ocsf_json(&Violation { version: 2, ..v });
        assert_eq!(updated["activity_id"], 2);
    }
}
