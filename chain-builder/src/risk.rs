//! The risk score of a chain, in [0, 1], with its reasons. Each signal has a weight; signals
//! combine as independent evidence (1 - Π(1 - w)), so no single weak signal saturates the score
//! and strong ones add up. Reasons are stable short sentences, sorted by weight.

use chainwatch_schemas::Autonomy;

use crate::chain_view::{PiiFlowView, ToolExecutionView};

use crate::step::{KIND_UPLOAD, StepRecord};

/// A tool repeated this many times in one chain counts as a loop.
pub const LOOP_REPEATS: i32 = 5;
/// A SQL result this large counts as bulk access.
pub const BULK_ROWS: i64 = 1_000;

/// The parts joined: a reason is built for every chain version, and `format!` costs several
/// times a plain concatenation.
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Categories where data leaves to a party the organisation did not vet.
fn is_unvetted(category: &str) -> bool {
    matches!(category, "unknown-external" | "object-storage")
}

pub fn score(steps: &[Box<StepRecord>], flows: &[PiiFlowView<'_>], tools: &[ToolExecutionView<'_>], autonomy: Autonomy, max_tool_repeats: i32) -> (f64, Vec<String>) {
    let mut signals: Vec<(f64, String)> = Vec::new();
    let mut add = |w: f64, reason: String| {
        if !signals.iter().any(|(_, r)| *r == reason) {
            signals.push((w, reason));
        }
    };
    let mut last: Option<(i32, &str)> = None;
    for f in flows {
        // Flows come sorted by destination step: one reason per (step, PII type).
        if last == Some((f.to_step, f.pii_type)) {
            continue;
        }
        last = Some((f.to_step, f.pii_type));
        let Some(to) = steps.get(f.to_step as usize) else { continue };
        let dest = to.destination().unwrap_or("?");
        let cat = to.category();
        if is_unvetted(cat) {
            add(0.6, concat(&[f.pii_type, " sent to ", cat, " destination ", dest]));
        } else if cat == "llm" {
            add(0.15, concat(&[f.pii_type, " sent to an LLM (", dest, ")"]));
        } else if cat == "saas" {
            add(0.1, concat(&[f.pii_type, " sent to SaaS ", dest]));
        }
    }
    for s in steps {
        let cat = s.category();
        let dest = s.destination().unwrap_or("?");
        if s.kind() == KIND_UPLOAD && is_unvetted(cat) {
            add(0.35, concat(&["upload to ", cat, " destination ", dest]));
        }
        let rules = s.injection_rules();
        if !rules.is_empty() {
            add(0.3, format!("prompt injection signal ({})", rules.join(", ")));
        }
        let secrets = s.secret_types();
        if !secrets.is_empty() && s.sends("request") {
            add(0.3, format!("secret sent to {dest} ({})", secrets.join(", ")));
        }
        if s.rows.is_some_and(|r| r >= BULK_ROWS) {
            add(0.15, format!("bulk read: {} rows", s.rows.unwrap_or(0)));
        }
    }
    if max_tool_repeats >= LOOP_REPEATS {
        add(0.2, format!("loop: the same tool {max_tool_repeats} times"));
    }
    if autonomy == Autonomy::Autonomous && !tools.is_empty() {
        add(0.1, "autonomous: tool calls executed without a human in between".to_string());
    }
    signals.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let keep = 1.0 - signals.iter().fold(1.0, |acc, (w, _)| acc * (1.0 - w));
    let score = (keep * 1000.0).round() / 1000.0;
    (score, signals.into_iter().map(|(_, r)| r).collect())
}
