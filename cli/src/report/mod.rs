//! How chains and their violations are shown to a person: a terminal timeline and an HTML
//! report that draws each chain as a graph with its PII flows highlighted.

pub mod html;
pub mod timeline;

use chainwatch_schemas::{Chain, Violation};

/// The violations that belong to `chain`, most severe first.
pub fn violations_of<'a>(chain: &Chain, violations: &'a [Violation]) -> Vec<&'a Violation> {
    let mut v: Vec<&Violation> = violations.iter().filter(|v| v.chain_id == chain.chain_id).collect();
    v.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.policy_id.cmp(&b.policy_id)));
    v
}

/// A step's destination, or what it ran on.
pub fn step_target(step: &chainwatch_schemas::ChainStep) -> String {
    step.destination.clone().unwrap_or_else(|| {
        if step.comm.is_empty() { step.kind.clone() } else { step.comm.clone() }
    })
}

/// "1.2 s", "340 ms".
pub fn duration_text(ns: i64) -> String {
    let ns = ns.max(0);
    if ns >= 1_000_000_000 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else {
        format!("{} ms", ns / 1_000_000)
    }
}
