//! Tool-call attribution: the LLM answer that requested tool call X, the actions the agent's
//! processes took before the next LLM request that carries X's result id, and that request,
//! are linked as the execution of X ("query_database" -> the SQL statement and its rows).
//!
//! When one answer requests several tools at once, each action goes to the tool whose name
//! fits it best (a `query_database` gets the SQL, a `search_docs` the vector query, a
//! `create_jira_ticket` the call to the Jira host); an action that fits none goes to the first
//! tool that has none yet, or stays unattributed (an action nobody asked for). An inbound user request between the request and the execution
//! marks the call approved.

use crate::chain_view::ToolExecutionView;

use crate::hashing::{FastMap, fx_str};
use crate::step::StepRecord;

/// Which tool call an action executed: the requesting step and the call's index in its
/// `tool_calls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutedFor {
    pub requested_at: usize,
    pub call: usize,
}

/// What attribution works out from names alone, remembered across chain versions (every
/// version of every chain asks again about the same few tool names and hosts). Bounded: it
/// starts over past `MAX_MEMO` entries.
#[derive(Debug, Default)]
pub struct AttributionMemo {
    classes: FastMap<Box<str>, u8>,
    /// (hash of a tool name, hash of a host) -> the host names the tool.
    by_host: FastMap<(u64, u64), bool>,
}

const MAX_MEMO: usize = 4_096;

impl AttributionMemo {
    fn class(&mut self, tool: &str) -> u8 {
        if let Some(c) = self.classes.get(tool) {
            return *c;
        }
        let c = tool_class(tool);
        if self.classes.len() >= MAX_MEMO {
            self.classes.clear();
        }
        self.classes.insert(tool.into(), c);
        c
    }

    /// Whether `host` names `tool`; `key` is (`fx_str` of the tool name, of the host). The host
    /// is read only when the pair is not in the memo.
    fn names_host<'h>(&mut self, key: (u64, u64), tool: &str, host: impl FnOnce() -> &'h str) -> bool {
        if let Some(b) = self.by_host.get(&key) {
            return *b;
        }
        let b = tool_names_host(tool, host());
        if self.by_host.len() >= MAX_MEMO {
            self.by_host.clear();
        }
        self.by_host.insert(key, b);
        b
    }
}

/// A requested tool call as attribution compares it with actions: its name, the name's hash
/// and what the name suggests (`tool_class`), worked out once per chain version.
struct CallKey<'a> {
    id: &'a str,
    name: &'a str,
    name_hash: u64,
    class: u8,
}

/// The tool class an action of this kind fits (0: none); kept on the step (`action_class`).
pub fn kind_class(kind: &str) -> u8 {
    match kind {
        "sql" | "db_session" => TOOL_SQL,
        "vector_query" | "embeddings" => TOOL_SEARCH,
        "upload" => TOOL_UPLOAD,
        _ => 0,
    }
}

/// The executions of every tool call in `steps` (ordered; index = position), and per step the
/// call it executed (`None`: not a tool's action). Borrows the steps: the printed step gets its
/// `tool_name` / `tool_call_id` from `by_step` in the chain view.
pub fn attribute<'a>(steps: &'a [Box<StepRecord>], memo: &mut AttributionMemo) -> (Vec<ToolExecutionView<'a>>, Vec<Option<ExecutedFor>>) {
    let mut out = Vec::new();
    let mut by_step: Vec<Option<ExecutedFor>> = vec![None; steps.len()];
    let mut windows: Vec<(Option<usize>, usize)> = Vec::new();
    let mut executed: Vec<Vec<i32>> = Vec::new();
    let mut call_keys: Vec<CallKey<'a>> = Vec::new();
    for i in 0..steps.len() {
        let requesting: &'a StepRecord = &steps[i];
        if !requesting.is_llm() || requesting.tool_call_count() == 0 {
            continue;
        }
        let next_llm = (i + 1..steps.len()).find(|&k| steps[k].is_llm()).unwrap_or(steps.len());
        call_keys.clear();
        call_keys.extend(requesting.tool_calls().map(|(id, name)| CallKey { id, name, name_hash: fx_str(name), class: memo.class(name) }));
        // Result step and action window per call.
        windows.clear();
        windows.extend(call_keys.iter().map(|c| {
            let result = (i + 1..steps.len()).find(|&k| steps[k].is_llm() && steps[k].tool_result_ids().iter().any(|r| r == c.id));
            (result, result.unwrap_or(next_llm))
        }));
        executed.clear();
        executed.resize_with(call_keys.len(), Vec::new);
        let last = windows.iter().map(|w| w.1).max().unwrap_or(next_llm);
        for j in i + 1..last {
            if by_step[j].is_some() || steps[j].is_llm() || steps[j].user_request {
                continue;
            }
            let mut eligible = (0..call_keys.len()).filter(|&c| j < windows[c].1);
            let Some(first) = eligible.next() else { continue };
            let chosen = if eligible.next().is_none() {
                first
            } else {
                // The best fit (the first of equals); 0 = fits no tool.
                let action: &StepRecord = &steps[j];
                let (mut best, mut best_fit) = (first, affinity(memo, &call_keys[first], action));
                for c in (first + 1..call_keys.len()).filter(|&c| j < windows[c].1) {
                    let fit = affinity(memo, &call_keys[c], action);
                    if fit > best_fit {
                        (best, best_fit) = (c, fit);
                    }
                }
                if best_fit > 0 {
                    best
                } else {
                    // Fits no tool: the first tool without an action, else nobody's.
                    match (first..call_keys.len()).find(|&c| j < windows[c].1 && executed[c].is_empty()) {
                        Some(c) => c,
                        None => continue,
                    }
                }
            };
            by_step[j] = Some(ExecutedFor { requested_at: i, call: chosen });
            executed[chosen].push(j as i32);
        }
        for (c, call) in call_keys.iter().enumerate() {
            let (result, end) = windows[c];
            let first_action = executed[c].first().map_or(end, |&j| j as usize);
            let approved = (i + 1..first_action.min(steps.len())).any(|u| steps[u].user_request);
            out.push(ToolExecutionView {
                tool_call_id: call.id,
                tool_name: call.name,
                requested_at_step: i as i32,
                executed_steps: std::mem::take(&mut executed[c]),
                result_step: result.map(|r| r as i32),
                approved,
            });
        }
    }
    (out, by_step)
}

/// What a tool's name suggests it does: bits `TOOL_SQL`, `TOOL_SEARCH`, `TOOL_UPLOAD`.
const TOOL_SQL: u8 = 1;
const TOOL_SEARCH: u8 = 2;
const TOOL_UPLOAD: u8 = 4;

fn tool_class(tool: &str) -> u8 {
    let has = |words: &[&str]| words.iter().any(|w| contains_ignore_case(tool, w));
    let mut class = 0;
    if has(&["sql", "database", "db", "query", "customer", "postgres", "table", "record"]) {
        class |= TOOL_SQL;
    }
    if has(&["search", "vector", "retriev", "doc", "knowledge", "rag", "embed", "similar"]) {
        class |= TOOL_SEARCH;
    }
    if has(&["upload", "share", "export", "send", "file", "paste"]) {
        class |= TOOL_UPLOAD;
    }
    class
}

/// Whether `host` names the tool `tool` (a word of the name, or Jira's and GitHub's hosts).
fn tool_names_host(tool: &str, host: &str) -> bool {
    tool.split(['_', '-', '.', ' ']).filter(|t| t.len() >= 3).any(|t| {
        contains_ignore_case(host, t)
            || (t.eq_ignore_ascii_case("jira") && contains_ignore_case(host, "atlassian"))
            || (t.eq_ignore_ascii_case("github") && contains_ignore_case(host, "githubusercontent"))
    })
}

/// How well an action fits a tool call: 2 = its destination names the tool, 1 = its kind is
/// what the tool's name suggests, 0 = nothing.
fn affinity(memo: &mut AttributionMemo, call: &CallKey<'_>, action: &StepRecord) -> u8 {
    if let Some(host_hash) = action.host_hash
        && memo.names_host((call.name_hash, host_hash), call.name, || action.destination().unwrap_or(""))
    {
        return 2;
    }
    u8::from(call.class & action.action_class != 0)
}

/// Whether `haystack` contains `needle`, ignoring ASCII case (names and hosts are short: a
/// window scan beats a substring searcher's setup).
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
