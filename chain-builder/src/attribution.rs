//! Tool-call attribution: the LLM answer that requested tool call X, the actions the agent's
//! processes took before the next LLM request that carries X's result id, and that request,
//! are linked as the execution of X ("query_database" -> the SQL statement and its rows).
//!
//! When one answer requests several tools at once, each action goes to the tool whose name
//! fits it best (a `query_database` gets the SQL, a `search_docs` the vector query, a
//! `create_jira_ticket` the call to the Jira host); an action that fits none goes to the first
//! tool that has none yet, or stays unattributed (an action nobody asked for). An inbound user request between the request and the execution
//! marks the call approved.

use chainwatch_schemas::ToolExecution;

use crate::step::StepRecord;

/// Which tool call an action executed: the requesting step and the call's index in its
/// `tool_calls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutedFor {
    pub requested_at: usize,
    pub call: usize,
}

/// The executions of every tool call in `steps` (ordered; index = position), and per step the
/// call it executed (`None`: not a tool's action). Borrows the steps: the printed step gets its
/// `tool_name` / `tool_call_id` from `by_step` when it is materialized.
pub fn attribute(steps: &[Box<StepRecord>]) -> (Vec<ToolExecution>, Vec<Option<ExecutedFor>>) {
    let mut out = Vec::new();
    let mut by_step: Vec<Option<ExecutedFor>> = vec![None; steps.len()];
    let mut windows: Vec<(Option<usize>, usize)> = Vec::new();
    let mut executed: Vec<Vec<i32>> = Vec::new();
    for i in 0..steps.len() {
        if !steps[i].is_llm() || steps[i].tool_calls.is_empty() {
            continue;
        }
        let next_llm = (i + 1..steps.len()).find(|&k| steps[k].is_llm()).unwrap_or(steps.len());
        let calls = &steps[i].tool_calls;
        // Result step and action window per call.
        windows.clear();
        windows.extend(calls.iter().map(|c| {
            let result = (i + 1..steps.len()).find(|&k| steps[k].is_llm() && steps[k].tool_result_ids.iter().any(|r| r == &c.id));
            (result, result.unwrap_or(next_llm))
        }));
        executed.clear();
        executed.resize_with(calls.len(), Vec::new);
        let last = windows.iter().map(|w| w.1).max().unwrap_or(next_llm);
        for j in i + 1..last {
            if by_step[j].is_some() || steps[j].is_llm() || steps[j].user_request {
                continue;
            }
            let mut eligible = (0..calls.len()).filter(|&c| j < windows[c].1);
            let Some(first) = eligible.next() else { continue };
            let chosen = if eligible.next().is_none() {
                first
            } else {
                // The best fit (the first of equals); 0 = fits no tool.
                let (mut best, mut best_fit) = (first, affinity(&calls[first].name, &steps[j]));
                for c in (first + 1..calls.len()).filter(|&c| j < windows[c].1) {
                    let fit = affinity(&calls[c].name, &steps[j]);
                    if fit > best_fit {
                        (best, best_fit) = (c, fit);
                    }
                }
                if best_fit > 0 {
                    best
                } else {
                    // Fits no tool: the first tool without an action, else nobody's.
                    match (first..calls.len()).find(|&c| j < windows[c].1 && executed[c].is_empty()) {
                        Some(c) => c,
                        None => continue,
                    }
                }
            };
            by_step[j] = Some(ExecutedFor { requested_at: i, call: chosen });
            executed[chosen].push(j as i32);
        }
        for (c, call) in calls.iter().enumerate() {
            let (result, end) = windows[c];
            let first_action = executed[c].first().map_or(end, |&j| j as usize);
            let approved = (i + 1..first_action.min(steps.len())).any(|u| steps[u].user_request);
            out.push(ToolExecution {
                tool_call_id: call.id.clone(),
                tool_name: call.name.clone(),
                requested_at_step: i as i32,
                executed_steps: std::mem::take(&mut executed[c]),
                result_step: result.map(|r| r as i32),
                approved,
            });
        }
    }
    (out, by_step)
}

/// How well a tool name fits an action: 2 = its host, 1 = its kind, 0 = nothing. Compared
/// ignoring ASCII case, without lower-casing copies (this runs for every candidate pair at
/// every upsert).
fn affinity(tool: &str, step: &StepRecord) -> u8 {
    if let Some(host) = step.step.destination.as_deref() {
        let by_host = tool.split(['_', '-', '.', ' ']).filter(|t| t.len() >= 3).any(|t| {
            contains_ignore_case(host, t)
                || (t.eq_ignore_ascii_case("jira") && contains_ignore_case(host, "atlassian"))
                || (t.eq_ignore_ascii_case("github") && contains_ignore_case(host, "githubusercontent"))
        });
        if by_host {
            return 2;
        }
    }
    let has = |words: &[&str]| words.iter().any(|w| contains_ignore_case(tool, w));
    let fits = match step.step.kind.as_str() {
        "sql" | "db_session" => has(&["sql", "database", "db", "query", "customer", "postgres", "table", "record"]),
        "vector_query" | "embeddings" => has(&["search", "vector", "retriev", "doc", "knowledge", "rag", "embed", "similar"]),
        "upload" => has(&["upload", "share", "export", "send", "file", "paste"]),
        _ => false,
    };
    u8::from(fits)
}

/// Whether `haystack` contains `needle`, ignoring ASCII case (names and hosts are short: a
/// window scan beats a substring searcher's setup).
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
