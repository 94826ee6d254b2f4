//! Chain lifecycle: watermarks close chains, late events reopen them as updates (same id,
//! higher version), too-late events never make a second chain, and every bound is counted.

mod common;

use std::collections::HashSet;

use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::ChainConfig;
use chainwatch_schemas::{Chain, ChainStatus};
use common::*;

fn cfg() -> ChainConfig {
    ChainConfig { idle_gap_secs: 60, allowed_lateness_secs: 10, ..ChainConfig::default() }
}

#[test]
fn upserts_grow_in_version_and_the_watermark_closes_after_the_idle_gap() {
    let mut b = ChainBuilder::new(&cfg());
    let mut seen: Vec<Chain> = Vec::new();
    for e in seed_events(false) {
        let ups = b.push_event(e);
        assert_eq!(ups.len(), 1, "one upsert per event here");
        seen.extend(ups);
    }
    let versions: Vec<i64> = seen.iter().map(|c| c.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert!(seen.iter().all(|c| c.status == ChainStatus::Open && c.chain_id == seen[0].chain_id));
    // Last step ends at T0+3.7s: closes once watermark >= 63.7s, i.e. clock >= 73.7s.
    assert!(b.advance_watermark(T0 + 73 * SEC).is_empty());
    let closed = b.advance_watermark(T0 + 74 * SEC);
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].status, closed[0].version, closed[0].chain_id.as_str()), (ChainStatus::Closed, 7, seen[0].chain_id.as_str()));
    assert_eq!(b.open_chains(), 0);
    assert_eq!(b.retained_closed_chains(), 1);
}

#[test]
fn a_late_event_reopens_the_chain_as_an_update_never_a_second_chain() {
    let mut b = ChainBuilder::new(&cfg());
    let mut events = seed_events(false);
    let late = events.remove(2); // the vector query arrives late
    for e in events {
        b.push_event(e);
    }
    let closed = b.advance_watermark(T0 + 74 * SEC);
    assert_eq!(closed.len(), 1);
    let (id, v) = (closed[0].chain_id.clone(), closed[0].version);
    assert_eq!(closed[0].steps.len(), 5);

    let reopened = b.push_event(late);
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0].chain_id, id);
    assert_eq!(reopened[0].version, v + 1);
    assert_eq!(reopened[0].status, ChainStatus::Open);
    assert_eq!(reopened[0].steps.len(), 6);
    assert_eq!(reopened[0].steps[2].kind, "vector_query", "inserted in time order");
    let search = reopened[0].tool_calls.iter().find(|t| t.tool_name == "search_docs").unwrap();
    assert_eq!(search.executed_steps, [2]);

    let final_ = b.advance_watermark(T0 + 80 * SEC);
    assert_eq!(final_.len(), 1);
    assert_eq!((final_[0].chain_id.as_str(), final_[0].version, final_[0].status), (id.as_str(), v + 2, ChainStatus::Closed));
    assert_eq!(b.stats().chains_reopened, 1);
    assert_eq!(b.stats().chains_opened, 1);
}

#[test]
fn an_event_later_than_the_lateness_is_dropped_not_a_second_chain() {
    let mut b = ChainBuilder::new(&cfg());
    let mut events = seed_events(false);
    let late = events.remove(2);
    for e in events {
        b.push_event(e);
    }
    let mut ids: HashSet<String> = HashSet::new();
    for c in b.advance_watermark(T0 + 74 * SEC) {
        ids.insert(c.chain_id);
    }
    // Retained for one more lateness after closing (end 3.7 + gap 60 + lateness 10): forgotten.
    assert!(b.advance_watermark(T0 + 90 * SEC).is_empty());
    assert_eq!(b.retained_closed_chains(), 0);
    assert!(b.push_event(late).is_empty());
    assert!(b.finish().is_empty());
    assert_eq!(b.stats().late_dropped, 1);
    assert_eq!(b.stats().chains_opened, 1);
    assert_eq!(ids.len(), 1);
}

#[test]
fn open_chains_are_bounded_and_evictions_counted() {
    let cfg = ChainConfig { max_open_chains: 3, ..cfg() };
    let mut b = ChainBuilder::new(&cfg);
    let mut out = Vec::new();
    for i in 0..5 {
        let p = P { node: "node-a", tgid: 1_000 + i, start: T0, comm: "python3" };
        out.extend(b.push_event(llm(&format!("e{i}"), p, i as i64 * 10, i as i64 * 10 + 5, &[], &[], &[])));
        assert!(b.open_chains() <= 3);
    }
    assert_eq!(b.stats().evicted_open_chains, 2);
    assert_eq!(b.open_chains(), 3);
    let closed: Vec<&Chain> = out.iter().filter(|c| c.status == ChainStatus::Closed).collect();
    assert_eq!(closed.len(), 2);
    // The least recently active went first.
    let evicted: HashSet<i32> = closed.iter().map(|c| c.agent.tgid).collect();
    assert_eq!(evicted, HashSet::from([1_000, 1_001]));
    // Retained closed chains are bounded too.
    for i in 5..20 {
        let p = P { node: "node-a", tgid: 1_000 + i, start: T0, comm: "python3" };
        b.push_event(llm(&format!("e{i}"), p, i as i64 * 10, i as i64 * 10 + 5, &[], &[], &[]));
    }
    assert!(b.retained_closed_chains() <= 3);
    assert!(b.stats().forgotten_early > 0);
}

#[test]
fn a_full_chain_closes_and_a_new_one_continues() {
    let cfg = ChainConfig { max_steps: 3, ..cfg() };
    let mut b = ChainBuilder::new(&cfg);
    let mut out = Vec::new();
    for i in 0..7 {
        out.extend(b.push_event(sql(&format!("q{i}"), AGENT, i * 100, i * 100 + 50, "SELECT 1", 1)));
    }
    out.extend(b.finish());
    let mut last: std::collections::BTreeMap<String, Chain> = Default::default();
    for c in out {
        last.insert(c.chain_id.clone(), c);
    }
    let mut sizes: Vec<usize> = last.values().map(|c| c.steps.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 3, 3]);
    assert_eq!(b.stats().split_max_steps, 2);
}

#[test]
fn exited_processes_leave_the_tree_after_the_grace_period() {
    let mut b = ChainBuilder::new(&cfg());
    for p in seed_processes() {
        b.push_process(&p);
    }
    let mut exit = proc_event("node-a", chainwatch_schemas::ProcessEventKind::Exit, GZIP.tgid, GZIP.start, AGENT.tgid, AGENT.start, "/usr/bin/gzip");
    exit.ts_ns = T0 + 9 * SEC;
    b.push_process(&exit);
    assert_eq!(b.process_stats().processes, 3);
    b.advance_watermark(T0 + 200 * SEC);
    assert_eq!(b.process_stats().processes, 2);
    assert_eq!(b.process_stats().evicted_exited, 1);
}

#[test]
fn an_agent_whose_first_event_arrives_before_its_llm_call_is_published_at_that_call() {
    // Two parser workers: the SQL of the agent's connection to Postgres reaches the builder
    // before the planning call that preceded it. Until that call, the process looks like a
    // service (its chain is held for a client's claim); the call shows it is an agent.
    let mut b = ChainBuilder::new(&cfg());
    let mut events = seed_events(false);
    let plan = events.remove(0);
    let query = events.remove(0);
    assert_eq!(query.kind, "sql");
    assert!(b.push_event(query).is_empty(), "a process not known as an agent is held");
    let ups = b.push_event(plan);
    assert_eq!(ups.len(), 1, "the agent's chain is published at its first LLM call, not after the lateness");
    assert_eq!(ups[0].steps.len(), 2);
    assert_eq!(ups[0].steps[0].kind, "llm_call", "in time order");
    assert_eq!(b.stats().agent_holds_released, 1);
    let mut last = ups[0].clone();
    for e in events {
        for c in b.push_event(e) {
            assert_eq!(c.chain_id, last.chain_id, "one chain");
            last = c;
        }
    }
    assert_eq!(last.steps.len(), 6);
}

#[test]
fn a_service_that_never_calls_an_llm_stays_held_for_the_lateness() {
    let mut b = ChainBuilder::new(&cfg());
    let query = seed_events(false).remove(1);
    let end = query.ts_end_ns;
    assert!(b.push_event(query).is_empty());
    // Held until the watermark (clock - lateness 10 s) passes its start + lateness.
    assert!(b.advance_watermark(end + 15 * SEC).is_empty());
    assert!(b.take_updates().is_empty(), "still held");
    assert!(b.advance_watermark(end + 21 * SEC).is_empty());
    let released = b.take_updates();
    assert_eq!(released.len(), 1, "released once the watermark passed the hold");
    assert_eq!(b.stats().agent_holds_released, 0);
}
