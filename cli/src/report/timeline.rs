//! The terminal timeline of a chain: one line per step (offset, kind, destination, what it
//! did), its PII flows, tokens and cost, risk, and the violations raised on it.

use std::collections::BTreeMap;
use std::fmt::Write;

use chainwatch_schemas::{Chain, ChainStep, Violation};

use super::{duration_text, step_target, violations_of};

/// The whole timeline of `chains`, each followed by its violations.
pub fn render(chains: &[Chain], violations: &[Violation]) -> String {
    let mut out = String::new();
    for chain in chains {
        render_chain(&mut out, chain, &violations_of(chain, violations));
        out.push('\n');
    }
    let orphans: Vec<&Violation> =
        violations.iter().filter(|v| !chains.iter().any(|c| c.chain_id == v.chain_id)).collect();
    for v in orphans {
        let _ = writeln!(out, "violation on chain {} (not shown): {} {}", short(&v.chain_id), severity(v), v.policy_title);
    }
    if chains.is_empty() {
        out.push_str("no chains\n");
    }
    out
}

fn render_chain(out: &mut String, c: &Chain, violations: &[&Violation]) {
    let agent = if c.agent.exe.is_empty() { c.agent.comm.as_str() } else { c.agent.exe.as_str() };
    let _ = writeln!(
        out,
        "chain {}  agent {} (pid {}, node {})  {} steps over {}  [{:?} v{}]",
        short(&c.chain_id),
        agent,
        c.agent.tgid,
        c.agent.node,
        c.steps.len(),
        duration_text(c.end_ns - c.start_ns),
        c.status,
        c.version
    );
    for s in &c.steps {
        let _ = writeln!(
            out,
            "  #{:<2} +{:>8}  {:<12} {:<28} {}",
            s.index,
            duration_text(s.ts_start_ns - c.start_ns),
            s.kind,
            clip(&step_target(s), 28),
            step_detail(s)
        );
    }
    render_flows(out, c);
    let _ = writeln!(
        out,
        "  tokens in {} / out {}   cost ${:.4}   data out {} B / in {} B   autonomy {:?}",
        c.input_tokens, c.output_tokens, c.cost_usd, c.bytes_out, c.bytes_in, c.autonomy
    );
    if !c.tools.is_empty() {
        let _ = writeln!(out, "  tools: {}", c.tools.join(", "));
    }
    let _ = writeln!(out, "  risk {:.2}{}", c.risk_score, reasons(&c.risk_reasons));
    if violations.is_empty() {
        let _ = writeln!(out, "  no violations");
    }
    for v in violations {
        let steps: Vec<String> = v.evidence_steps.iter().map(|i| format!("#{i}")).collect();
        let _ = writeln!(
            out,
            "  VIOLATION {:<8} {}  [{}]  steps {}",
            severity(v),
            v.policy_title,
            v.policy_id,
            if steps.is_empty() { "-".into() } else { steps.join(", ") }
        );
    }
}

/// One line per PII type: the path its values took through the steps.
fn render_flows(out: &mut String, c: &Chain) {
    let mut by_type: BTreeMap<&str, (BTreeMap<i32, ()>, usize)> = BTreeMap::new();
    let mut values: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for f in &c.pii_flows {
        let e = by_type.entry(f.pii_type.as_str()).or_default();
        e.0.insert(f.from_step, ());
        e.0.insert(f.to_step, ());
        values.entry(f.pii_type.as_str()).or_default().insert(f.fingerprint.as_str());
    }
    for (ty, (steps, _)) in &mut by_type {
        let path: Vec<String> = steps
            .keys()
            .map(|i| {
                let target = c.steps.iter().find(|s| s.index == *i).map(step_target).unwrap_or_default();
                format!("#{i} {target}")
            })
            .collect();
        let n = values.get(ty).map_or(0, |v| v.len());
        let _ = writeln!(out, "  PII {ty} ({n} values): {}", path.join(" -> "));
    }
}

fn step_detail(s: &ChainStep) -> String {
    let mut parts = Vec::new();
    if !s.summary.is_empty() {
        parts.push(s.summary.clone());
    } else if let Some(m) = &s.method {
        parts.push(m.clone());
    }
    if let Some(model) = &s.model {
        if !s.summary.contains(model.as_str()) {
            parts.push(model.clone());
        }
    }
    if s.input_tokens > 0 || s.output_tokens > 0 {
        parts.push(format!("{}/{} tok", s.input_tokens, s.output_tokens));
    }
    if s.cost_usd > 0.0 {
        parts.push(format!("${:.4}", s.cost_usd));
    }
    if let Some(t) = &s.tool_name {
        parts.push(format!("tool {t}"));
    }
    if let Some(r) = s.rows {
        parts.push(format!("{r} rows"));
    }
    if s.bytes_out > 0 {
        parts.push(format!("{} B out", s.bytes_out));
    }
    if !s.pii_types.is_empty() {
        parts.push(format!("PII {}", s.pii_types.join("+")));
    }
    if !s.secret_types.is_empty() {
        parts.push(format!("SECRET {}", s.secret_types.join("+")));
    }
    if !s.injection_rules.is_empty() {
        parts.push(format!("INJECTION {}", s.injection_rules.join("+")));
    }
    parts.join("  ")
}

fn reasons(r: &[String]) -> String {
    if r.is_empty() { String::new() } else { format!(" ({})", r.join("; ")) }
}

fn severity(v: &Violation) -> String {
    format!("{:?}", v.severity).to_uppercase()
}

/// The first 12 characters of an id.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}
