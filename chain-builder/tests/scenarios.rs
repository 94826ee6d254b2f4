//! The chain builder on hand-built events: the seed scenario and its benign twin, agents and
//! conversations that must split, tool attribution, PII flows, autonomy, loops and cost.

mod common;

use std::collections::{BTreeMap, HashSet};

use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::{ChainConfig, ModelPrice};
use chainwatch_schemas::{Autonomy, Chain, ChainStatus, ConnRole, SemanticEvent};
use common::*;

/// Run everything through a builder; the last version of each chain, in start order.
fn run(cfg: &ChainConfig, procs: &[chainwatch_schemas::ProcessEvent], events: Vec<SemanticEvent>) -> (Vec<Chain>, ChainBuilder) {
    let mut b = ChainBuilder::new(cfg);
    for p in procs {
        b.push_process(p);
    }
    let mut all = Vec::new();
    for e in events {
        all.extend(b.push_event(e));
    }
    all.extend(b.finish());
    (finals(all), b)
}

fn finals(all: Vec<Chain>) -> Vec<Chain> {
    let mut last: BTreeMap<String, Chain> = BTreeMap::new();
    for c in all {
        match last.get(&c.chain_id) {
            Some(old) if old.version >= c.version => {}
            _ => {
                last.insert(c.chain_id.clone(), c);
            }
        }
    }
    let mut v: Vec<Chain> = last.into_values().collect();
    v.sort_by_key(|c| c.start_ns);
    v
}

fn kinds(c: &Chain) -> Vec<&str> {
    c.steps.iter().map(|s| s.kind.as_str()).collect()
}

#[test]
fn seed_scenario_is_one_autonomous_chain_with_attribution_and_pii_flows() {
    let (chains, b) = run(&ChainConfig::default(), &seed_processes(), seed_events(true));
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let c = &chains[0];
    assert_eq!(c.status, ChainStatus::Closed);
    assert_eq!(kinds(c), ["llm_call", "sql", "vector_query", "llm_call", "saas_call", "saas_call", "upload"]);
    // The child curl belongs to the python agent.
    assert_eq!(c.agent.tgid, AGENT.tgid);
    assert_eq!(c.agent.exe, "/usr/bin/python3");
    assert_eq!(c.steps[6].comm, "curl");

    // query_database -> the SQL statement and its rows; result carried by the synthesis call.
    let db = c.tool_calls.iter().find(|t| t.tool_name == "query_database").unwrap();
    assert_eq!((db.requested_at_step, db.executed_steps.as_slice(), db.result_step), (0, &[1][..], Some(3)));
    assert_eq!(c.steps[1].tool_name.as_deref(), Some("query_database"));
    assert_eq!(c.steps[1].rows, Some(10));
    assert!(c.steps[1].summary.contains("FROM customers"), "{}", c.steps[1].summary);
    let docs = c.tool_calls.iter().find(|t| t.tool_name == "search_docs").unwrap();
    assert_eq!(docs.executed_steps, [2]);
    let jira = c.tool_calls.iter().find(|t| t.tool_name == "create_jira_ticket").unwrap();
    assert_eq!(jira.executed_steps, [4]);
    let slack = c.tool_calls.iter().find(|t| t.tool_name == "post_to_slack").unwrap();
    assert_eq!(slack.executed_steps, [5]);
    assert_eq!(c.steps[6].tool_name, None, "nobody asked for the upload");
    assert_eq!(c.autonomy, Autonomy::Autonomous);

    // PII: Postgres row -> LLM, Jira, Slack, upload.
    let targets: HashSet<(i32, i32)> = c.pii_flows.iter().map(|f| (f.from_step, f.to_step)).collect();
    assert_eq!(targets, HashSet::from([(1, 3), (1, 4), (1, 5), (1, 6)]));
    let to_upload = c.pii_flows.iter().filter(|f| f.to_step == 6).count();
    assert_eq!(to_upload, 10);
    assert!(c.pii_flows.iter().filter(|f| f.to_step == 6).all(|f| f.destination.as_deref() == Some("personal-pastebin.com")));
    assert_eq!(c.pii_types, ["email"]);
    assert!(c.destinations.contains(&"personal-pastebin.com".to_string()));
    assert!(c.risk_score > 0.7, "{} {:?}", c.risk_score, c.risk_reasons);
    assert!(c.risk_reasons[0].contains("personal-pastebin.com"), "{:?}", c.risk_reasons);
    assert_eq!((c.input_tokens, c.output_tokens), (2_000, 1_000));
    assert_eq!(b.stats().duplicate_events, 0);
}

#[test]
fn benign_version_has_no_upload_and_less_risk() {
    let (chains, _) = run(&ChainConfig::default(), &seed_processes(), seed_events(false));
    assert_eq!(chains.len(), 1);
    let c = &chains[0];
    assert_eq!(c.steps.len(), 6);
    assert!(!kinds(c).contains(&"upload"));
    assert!(c.risk_score < 0.7, "{} {:?}", c.risk_score, c.risk_reasons);
    assert!(!c.risk_reasons.iter().any(|r| r.contains("pastebin")));
}

#[test]
fn replayed_events_are_deduplicated() {
    let mut events = seed_events(true);
    events.extend(seed_events(true));
    let (chains, b) = run(&ChainConfig::default(), &seed_processes(), events);
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].steps.len(), 7);
    assert_eq!(b.stats().duplicate_events, 7);
}

#[test]
fn two_agents_interleaved_on_one_node_are_two_chains() {
    let other = P { node: "node-a", tgid: 300, start: T0 - 5 * SEC, comm: "node" };
    let mut a = seed_events(false);
    let b_events = vec![
        llm("b-1", other, 50, 800, &["sysB", "sysB+u"], &[("b_call", "query_database")], &[]),
        sql("b-2", other, 1_020, 1_030, "SELECT 1", 1),
        llm("b-3", other, 1_300, 2_000, &["sysB", "sysB+u", "sysB+u+a", "sysB+u+a+t"], &[], &["b_call"]),
    ];
    // Interleave.
    let mut events = Vec::new();
    for (i, e) in b_events.into_iter().enumerate() {
        events.push(e);
        if i < a.len() {
            events.push(a.remove(0));
        }
    }
    events.append(&mut a);
    let (chains, _) = run(&ChainConfig::default(), &seed_processes(), events);
    assert_eq!(chains.len(), 2, "{chains:#?}");
    let tgids: HashSet<i32> = chains.iter().map(|c| c.agent.tgid).collect();
    assert_eq!(tgids, HashSet::from([AGENT.tgid, 300]));
    for c in &chains {
        assert!(c.steps.iter().all(|s| s.tgid == c.agent.tgid), "steps of one agent only");
    }
    let b = chains.iter().find(|c| c.agent.tgid == 300).unwrap();
    assert_eq!(b.steps.len(), 3);
    assert_ne!(chains[0].agent.agent_key, chains[1].agent.agent_key);
}

#[test]
fn a_fresh_conversation_of_the_same_agent_starts_a_new_chain() {
    let mut events = seed_events(false);
    events.push(llm("fresh", AGENT, 5_000, 6_000, &["sys", "sys+u2"], &[], &[]));
    events.push(llm("fresh-2", AGENT, 6_100, 6_500, &["sys", "sys+u2", "sys+u2+a"], &[], &[]));
    let (chains, _) = run(&ChainConfig::default(), &seed_processes(), events);
    assert_eq!(chains.len(), 2, "{chains:#?}");
    assert_eq!(chains[0].steps.len(), 6);
    let ids: Vec<&str> = chains[1].steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["fresh", "fresh-2"]);
    assert_eq!(chains[0].agent.agent_key, chains[1].agent.agent_key);
}

#[test]
fn an_idle_gap_splits_chains() {
    let cfg = ChainConfig { idle_gap_secs: 60, ..ChainConfig::default() };
    let events = vec![
        llm("a", AGENT, 0, 500, &[], &[], &[]),
        sql("b", AGENT, 1_000, 1_100, "SELECT 1", 1),
        // 2 minutes later: the same agent, no conversation link.
        sql("c", AGENT, 121_100, 121_200, "SELECT 2", 1),
    ];
    let (chains, _) = run(&cfg, &seed_processes(), events);
    assert_eq!(chains.len(), 2);
    assert_eq!(chains[0].steps.len(), 2);
    assert_eq!(chains[1].steps[0].event_id, "c");
    // With a longer gap they stay together.
    let cfg = ChainConfig { idle_gap_secs: 600, ..ChainConfig::default() };
    let events = vec![llm("a", AGENT, 0, 500, &[], &[], &[]), sql("c", AGENT, 121_100, 121_200, "SELECT 2", 1)];
    assert_eq!(run(&cfg, &seed_processes(), events).0.len(), 1);
}

#[test]
fn a_user_request_starts_a_task_and_approves_pending_tool_calls() {
    // A served request on the agent starts a new task (chain) with what follows.
    let mut served = event("user-1", AGENT, "http", 10_000, 30_000, "agent.local", "internal");
    served.role = ConnRole::Server;
    served.tuple = Some(tuple("10.0.0.5", 8000, "192.168.1.20", 51000));
    let mut events = vec![llm("old", AGENT, 0, 500, &["s", "s+u0"], &[], &[])];
    events.push(llm("t1", AGENT, 10_100, 11_000, &["s", "s+u1"], &[("c1", "query_database")], &[]));
    // The user approves in the UI (another served request), then the tool runs.
    let mut approve = event("approve", AGENT, "http", 11_500, 11_600, "agent.local", "internal");
    approve.role = ConnRole::Server;
    events.push(approve);
    events.push(sql("q1", AGENT, 12_000, 12_100, "SELECT * FROM customers", 3));
    events.push(llm("t2", AGENT, 12_200, 13_000, &["s", "s+u1", "s+u1+a+t"], &[], &["c1"]));
    events.push(served); // the task's request ends last
    let (chains, b) = run(&ChainConfig::default(), &seed_processes(), events);
    assert_eq!(chains.len(), 2, "{chains:#?}");
    let task = &chains[1];
    assert_eq!(task.steps[0].event_id, "user-1");
    let ids: Vec<&str> = task.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["user-1", "t1", "approve", "q1", "t2"]);
    assert_eq!(task.tool_calls.len(), 1);
    assert!(task.tool_calls[0].approved);
    assert_eq!(task.tool_calls[0].executed_steps, [3]);
    assert_eq!(task.autonomy, Autonomy::Supervised);
    assert_eq!((b.stats().user_requests, b.stats().approvals), (1, 1));
}

#[test]
fn loops_count_the_same_tool_repeated() {
    let mut events = Vec::new();
    let mut prefix: Vec<String> = vec!["s".into(), "s+u".into()];
    for i in 0..6 {
        let p: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let call = format!("call_{i}");
        let prev = format!("call_{}", i.max(1) - 1);
        let results: Vec<&str> = if i == 0 { vec![] } else { vec![prev.as_str()] };
        let tools: Vec<(&str, &str)> = if i < 5 { vec![(call.as_str(), "search_docs")] } else { vec![] };
        events.push(llm(&format!("l{i}"), AGENT, i * 1_000, i * 1_000 + 400, &p, &tools, &results));
        let mut v = event(&format!("v{i}"), AGENT, "vector_query", i * 1_000 + 500, i * 1_000 + 600, "qdrant.internal", "vectordb");
        v.vector = None;
        if i < 5 {
            events.push(v);
        }
        prefix.push(format!("s+u+{i}"));
    }
    let (chains, _) = run(&ChainConfig::default(), &seed_processes(), events);
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let c = &chains[0];
    assert_eq!(c.tool_calls.len(), 5);
    assert_eq!(c.max_tool_repeats, 5);
    assert_eq!(c.tools, ["search_docs"]);
    assert!(c.risk_reasons.iter().any(|r| r.starts_with("loop")), "{:?}", c.risk_reasons);
    assert!(c.tool_calls.iter().all(|t| t.executed_steps.len() == 1 && t.result_step.is_some()));
}

#[test]
fn cost_comes_from_the_price_table_per_step_chain_agent_and_team() {
    let mut prices = BTreeMap::new();
    prices.insert("gpt-4o".to_string(), ModelPrice { input: 2.5, output: 10.0 });
    let cfg = ChainConfig { prices, ..ChainConfig::default() };
    let mut events = seed_events(false);
    for e in &mut events {
        e.attributes.insert("k8s.namespace.name".into(), "support".into());
    }
    let (chains, b) = run(&cfg, &seed_processes(), events);
    let c = &chains[0];
    // Each call: 1,000 input at $2.5/M + 500 output at $10/M = $0.0075.
    let llm_steps: Vec<_> = c.steps.iter().filter(|s| s.kind == "llm_call").collect();
    assert_eq!(llm_steps.len(), 2);
    for s in &llm_steps {
        assert!((s.cost_usd - 0.0075).abs() < 1e-12, "{}", s.cost_usd);
    }
    assert!((c.cost_usd - 0.015).abs() < 1e-12);
    assert_eq!(c.agent.team.as_deref(), Some("support"));
    let agent = &b.ledger().by_agent[&c.agent.agent_key];
    assert!((agent.cost_usd - 0.015).abs() < 1e-12);
    assert_eq!(agent.llm_calls, 2);
    assert!((b.ledger().by_team["support"].cost_usd - 0.015).abs() < 1e-12);
    // No price: no cost.
    let no_prices = ChainConfig { prices: BTreeMap::new(), ..ChainConfig::default() };
    let (chains, _) = run(&no_prices, &seed_processes(), seed_events(false));
    assert_eq!(chains[0].cost_usd, 0.0);
}

/// The seed scenario with the curl's process records held back: the builder after every
/// semantic event, the upserts so far, and the held-back records.
fn seed_without_the_curl_records() -> (ChainBuilder, Vec<Chain>, Vec<chainwatch_schemas::ProcessEvent>) {
    let (late, early): (Vec<_>, Vec<_>) = seed_processes().into_iter().partition(|p| p.tgid == CURL.tgid);
    let mut b = ChainBuilder::new(&ChainConfig::default());
    for p in &early {
        b.push_process(p);
    }
    let mut all = Vec::new();
    for e in seed_events(true) {
        all.extend(b.push_event(e));
    }
    assert_eq!(b.waiting_events(), 1, "the upload waits for its process");
    (b, all, late)
}

#[test]
fn a_child_whose_events_arrive_before_its_fork_still_joins_its_agent() {
    // Two topics, no order between them: the curl's upload is read before its fork and exec.
    let (mut b, mut all, late) = seed_without_the_curl_records();
    for p in &late {
        b.push_process(p);
    }
    assert_eq!(b.waiting_events(), 0);
    all.extend(b.finish());
    let chains = finals(all);
    assert_eq!(chains.len(), 1, "{chains:#?}");
    assert_eq!(kinds(&chains[0]), ["llm_call", "sql", "vector_query", "llm_call", "saas_call", "saas_call", "upload"]);
    assert_eq!(chains[0].agent.tgid, AGENT.tgid);
    assert_eq!(b.stats().waited_for_process, 1);
    assert_eq!(b.stats().process_never_seen, 0);
}

#[test]
fn an_event_whose_process_never_comes_joins_after_the_wait() {
    let (mut b, mut all, _) = seed_without_the_curl_records();
    // a second later (event time), it joins as its own agent's: counted, not lost
    let upload_end = seed_events(true).iter().map(|e| e.ts_end_ns).max().unwrap_or_default();
    all.extend(b.advance_watermark(upload_end + 2_000_000_000));
    assert_eq!(b.waiting_events(), 0);
    all.extend(b.finish());
    let chains = finals(all);
    assert_eq!(chains.len(), 2, "the python agent's chain and the curl's own: {chains:#?}");
    assert_eq!(b.stats().process_never_seen, 1);
}
