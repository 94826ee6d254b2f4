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

/// The executions of every tool call in `steps` (ordered; index = position). Also writes
/// `tool_name` / `tool_call_id` into the executed steps.
pub fn attribute(steps: &mut [StepRecord]) -> Vec<ToolExecution> {
    let mut out = Vec::new();
    let mut taken = vec![false; steps.len()];
    for i in 0..steps.len() {
        if !steps[i].is_llm() || steps[i].tool_calls.is_empty() {
            continue;
        }
        let next_llm = (i + 1..steps.len()).find(|&k| steps[k].is_llm()).unwrap_or(steps.len());
        let calls = steps[i].tool_calls.clone();
        // Result step and action window per call.
        let windows: Vec<(Option<usize>, usize)> = calls
            .iter()
            .map(|c| {
                let result = (i + 1..steps.len()).find(|&k| steps[k].is_llm() && steps[k].tool_result_ids.iter().any(|r| r == &c.id));
                (result, result.unwrap_or(next_llm))
            })
            .collect();
        let mut executed: Vec<Vec<i32>> = vec![Vec::new(); calls.len()];
        let last = windows.iter().map(|w| w.1).max().unwrap_or(next_llm);
        for j in i + 1..last {
            if taken[j] || steps[j].is_llm() || steps[j].user_request {
                continue;
            }
            let eligible: Vec<usize> = (0..calls.len()).filter(|&c| j < windows[c].1).collect();
            let Some(&first) = eligible.first() else { continue };
            let chosen = if eligible.len() == 1 {
                first
            } else {
                let best = eligible.iter().copied().max_by_key(|&c| (affinity(&calls[c].name, &steps[j]), std::cmp::Reverse(c)));
                match best {
                    Some(c) if affinity(&calls[c].name, &steps[j]) > 0 => c,
                    // Fits no tool: the first tool without an action, else nobody's.
                    _ => match eligible.iter().copied().find(|&c| executed[c].is_empty()) {
                        Some(c) => c,
                        None => continue,
                    },
                }
            };
            taken[j] = true;
            executed[chosen].push(j as i32);
            steps[j].step.tool_name = Some(calls[chosen].name.clone());
            steps[j].step.tool_call_id = Some(calls[chosen].id.clone());
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
    out
}

/// How well a tool name fits an action: 2 = its host, 1 = its kind, 0 = nothing.
fn affinity(tool: &str, step: &StepRecord) -> u8 {
    let name = lower(tool);
    if let Some(host) = step.step.destination.as_deref() {
        let host = lower(host);
        let by_host = name.split(['_', '-', '.', ' ']).filter(|t| t.len() >= 3).any(|t| {
            host.contains(t) || (t == "jira" && host.contains("atlassian")) || (t == "github" && host.contains("githubusercontent"))
        });
        if by_host {
            return 2;
        }
    }
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    let fits = match step.step.kind.as_str() {
        "sql" | "db_session" => has(&["sql", "database", "db", "query", "customer", "postgres", "table", "record"]),
        "vector_query" | "embeddings" => has(&["search", "vector", "retriev", "doc", "knowledge", "rag", "embed", "similar"]),
        "upload" => has(&["upload", "share", "export", "send", "file", "paste"]),
        _ => false,
    };
    u8::from(fits)
}

/// `s` in lower case, allocating only when it has upper-case letters.
fn lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}
