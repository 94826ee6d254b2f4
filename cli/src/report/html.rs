//! The HTML report: each chain drawn as a graph (an inline SVG, no scripts, no network) with
//! its steps in order, tool executions linking an LLM answer to what it caused, PII flows
//! highlighted in red, and the violations with their evidence steps outlined.

use std::fmt::Write;

use chainwatch_schemas::{Chain, ChainStep, Violation};

use super::{duration_text, step_target, violations_of};

const ROW: i32 = 74;
const TOP: i32 = 30;
const BOX_X: i32 = 170;
const BOX_W: i32 = 560;
const BOX_H: i32 = 54;

/// A whole report page for `chains` and their `violations`.
pub fn render(title: &str, chains: &[Chain], violations: &[Violation]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{}</style></head><body>\n<h1>{}</h1>\n",
        esc(title),
        STYLE,
        esc(title)
    );
    if chains.is_empty() {
        out.push_str("<p>No chains.</p>\n");
    }
    for c in chains {
        chain_section(&mut out, c, &violations_of(c, violations));
    }
    out.push_str("</body></html>\n");
    out
}

fn chain_section(out: &mut String, c: &Chain, violations: &[&Violation]) {
    let agent = if c.agent.exe.is_empty() { &c.agent.comm } else { &c.agent.exe };
    let _ = write!(
        out,
        "<section class=\"chain\"><h2>Chain <code>{}</code></h2>\n<p class=\"meta\">agent <b>{}</b> (pid {}, node {}) &middot; {} steps over {} &middot; tokens {} in / {} out &middot; cost ${:.4} &middot; autonomy {:?} &middot; risk {:.2}</p>\n",
        esc(&c.chain_id),
        esc(agent),
        c.agent.tgid,
        esc(&c.agent.node),
        c.steps.len(),
        duration_text(c.end_ns - c.start_ns),
        c.input_tokens,
        c.output_tokens,
        c.cost_usd,
        c.autonomy,
        c.risk_score
    );
    if !violations.is_empty() {
        out.push_str("<table class=\"violations\"><tr><th>severity</th><th>policy</th><th>evidence steps</th><th>PII types</th></tr>\n");
        for v in violations {
            let steps: Vec<String> = v.evidence_steps.iter().map(|i| format!("#{i}")).collect();
            let _ = writeln!(
                out,
                "<tr class=\"sev-{}\"><td>{:?}</td><td>{} <small>({})</small></td><td>{}</td><td>{}</td></tr>",
                format!("{:?}", v.severity).to_lowercase(),
                v.severity,
                esc(&v.policy_title),
                esc(&v.policy_id),
                steps.join(", "),
                esc(&v.pii_types.join(", "))
            );
        }
        out.push_str("</table>\n");
    }
    graph(out, c, violations);
    out.push_str("</section>\n");
}

/// The SVG: one box per step, top to bottom; tool executions as blue arcs on the left, PII
/// flows as red arcs on the right.
fn graph(out: &mut String, c: &Chain, violations: &[&Violation]) {
    let n = i32::try_from(c.steps.len()).unwrap_or(i32::MAX).min(500);
    let height = TOP * 2 + n * ROW;
    let _ = writeln!(out, "<svg class=\"graph\" width=\"1000\" height=\"{height}\" viewBox=\"0 0 1000 {height}\" xmlns=\"http://www.w3.org/2000/svg\">");
    out.push_str("<defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"6\" refY=\"3\" orient=\"auto\"><path d=\"M0,0 L6,3 L0,6 z\" fill=\"#555\"/></marker><marker id=\"pii\" markerWidth=\"8\" markerHeight=\"8\" refX=\"6\" refY=\"3\" orient=\"auto\"><path d=\"M0,0 L6,3 L0,6 z\" fill=\"#d62728\"/></marker></defs>\n");
    let evidence: Vec<i32> = violations.iter().flat_map(|v| v.evidence_steps.iter().copied()).collect();
    let pos = |index: i32| -> Option<i32> {
        c.steps.iter().position(|s| s.index == index).and_then(|p| i32::try_from(p).ok()).filter(|p| *p < n)
    };
    for (i, s) in c.steps.iter().take(n as usize).enumerate() {
        let y = TOP + i32::try_from(i).unwrap_or(0) * ROW;
        if i > 0 {
            let _ = writeln!(out, "<line x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{y}\" stroke=\"#999\" marker-end=\"url(#arrow)\"/>", x = BOX_X + BOX_W / 2, y1 = y - ROW + BOX_H);
        }
        step_box(out, c, s, y, evidence.contains(&s.index));
    }
    for t in &c.tool_calls {
        let Some(from) = pos(t.requested_at_step) else { continue };
        for to in t.executed_steps.iter().chain(t.result_step.iter()).filter_map(|i| pos(*i)) {
            arc(out, from, to, BOX_X, -1, "#1f77b4", "arrow", &format!("tool call {} ({})", t.tool_name, t.tool_call_id));
        }
    }
    let mut drawn = Vec::new();
    for f in &c.pii_flows {
        let (Some(from), Some(to)) = (pos(f.from_step), pos(f.to_step)) else { continue };
        if drawn.contains(&(from, to)) {
            continue;
        }
        drawn.push((from, to));
        arc(out, from, to, BOX_X + BOX_W, 1, "#d62728", "pii", &format!("PII {} flows #{} -> #{}", f.pii_type, f.from_step, f.to_step));
    }
    out.push_str("</svg>\n");
}

fn step_box(out: &mut String, c: &Chain, s: &ChainStep, y: i32, evidence: bool) {
    let fill = match s.category.as_str() {
        "llm" => "#eef5ff",
        "database" => "#fff6e6",
        "vectordb" => "#f3ecff",
        "saas" | "object-storage" => "#eefaf0",
        "unknown-external" => "#ffecec",
        _ => "#f5f5f5",
    };
    let stroke = if evidence { "stroke=\"#d62728\" stroke-width=\"3\"" } else { "stroke=\"#888\"" };
    let _ = writeln!(
        out,
        "<g><title>{}</title><rect x=\"{BOX_X}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\" fill=\"{fill}\" {stroke}/>",
        esc(&format!("event {}", s.event_id))
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" class=\"t1\">#{} {} &#8594; {}</text>",
        BOX_X + 10,
        y + 20,
        s.index,
        esc(&s.kind),
        esc(&step_target(s))
    );
    let mut second = s.summary.clone();
    if !s.pii_types.is_empty() {
        second.push_str(&format!("  [PII {}]", s.pii_types.join(", ")));
    }
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" class=\"t2\">{}</text>", BOX_X + 10, y + 40, esc(&clip(&second, 90)));
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" class=\"t3\" text-anchor=\"end\">+{}</text></g>",
        BOX_X - 70,
        y + 32,
        duration_text(s.ts_start_ns - c.start_ns)
    );
}

/// A curved arc between the rows `from` and `to`, bulging to `side` (-1 left, 1 right) of x.
#[allow(clippy::too_many_arguments)]
fn arc(out: &mut String, from: i32, to: i32, x: i32, side: i32, color: &str, marker: &str, title: &str) {
    let y1 = TOP + from * ROW + BOX_H / 2;
    let y2 = TOP + to * ROW + BOX_H / 2;
    let bulge = x + side * (30 + 12 * (to - from).abs().min(12));
    let _ = writeln!(
        out,
        "<path d=\"M{x},{y1} C{bulge},{y1} {bulge},{y2} {x},{y2}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" marker-end=\"url(#{marker})\"><title>{}</title></path>",
        esc(title)
    );
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n).collect::<String>() + "..." }
}

/// HTML escaping of text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}code{font-size:.9em}\
.meta{color:#555}.graph text{font-family:ui-monospace,monospace}.t1{font-size:13px;font-weight:600}\
.t2{font-size:12px;fill:#333}.t3{font-size:12px;fill:#777}table.violations{border-collapse:collapse;margin:1em 0}\
table.violations td,table.violations th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
.sev-critical,.sev-high{background:#ffe3e3}.sev-medium{background:#fff4d6}section.chain{margin-bottom:3em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
