//! Storage sampling: every interesting chain (PII, tools, external destination, first-time
//! pattern, violation) is stored in full, routine chains are sampled at the configured rate
//! (deterministically), and the aggregate counts stay exact over all chains.


use std::collections::BTreeSet;

use chainwatch_policy_engine::sql::SqlSession;
use chainwatch_policy_engine::storage::{ChainStore, KeepReason, StorageSampler};
use chainwatch_schemas::Chain;
use super::fixtures::*;

/// A routine chain: one LLM call to the agent's usual provider, no PII, no tools.
fn routine(i: usize, start: i64) -> Chain {
    chain(&format!("routine-{i:05}"), 1, "faq-agent", start + i as i64 * SEC, vec![llm("api.openai.com", "gpt-4o-mini", 200 + i as i64, 20, &[])])
}

fn interesting(start: i64) -> Vec<(Chain, &'static str)> {
    let pii = chain("int-pii", 1, "faq-agent", start, vec![llm("api.openai.com", "gpt-4o-mini", 300, 20, &["email"])]);
    let tools = with_tool(
        chain("int-tools", 1, "faq-agent", start, vec![llm("api.openai.com", "gpt-4o-mini", 300, 20, &[])]),
        "call_9",
        "lookup_order",
        0,
        &[],
        None,
    );
    let external = chain(
        "int-external",
        1,
        "faq-agent",
        start,
        vec![llm("api.openai.com", "gpt-4o-mini", 300, 20, &[]), upload("transfer.sh", "unknown-external", 5_000, &[], None)],
    );
    // Routine in shape, but this agent never talked to this provider before.
    let first_time = chain("int-first-time", 1, "faq-agent", start, vec![llm("api.mistral.ai", "mistral-large", 300, 20, &[])]);
    // Routine in every way, but a policy fired on it.
    let violated = chain("int-violation", 1, "faq-agent", start, vec![llm("api.openai.com", "gpt-4o-mini", 300, 20, &[])]);
    vec![(pii, "pii"), (tools, "tools"), (external, "external"), (first_time, "first-time"), (violated, "violation")]
}

#[tokio::test]
async fn interesting_chains_are_kept_routine_ones_sampled_and_counts_stay_exact() {
    let dir = TempDir::new("sampling");
    let start = now_ns() - 2 * HOUR;
    let mut store = ChainStore::open_dir(dir.path(), 0.01).unwrap();

    let routine: Vec<Chain> = (0..2_000).map(|i| routine(i, start)).collect();
    let interesting = interesting(start);
    let mut violation = exfil_violation(start);
    violation.chain_id = "int-violation".into();
    violation.agent_key = "node-a/faq-agent".into();

    // Routine traffic first (so the provider is known), then interesting chains mixed with more
    // routine ones, in micro-batches of 250.
    for batch in routine[..1_000].chunks(250) {
        store.append(batch, &[]).unwrap();
    }
    let mut mixed: Vec<Chain> = interesting.iter().map(|(c, _)| c.clone()).collect();
    mixed.extend_from_slice(&routine[1_000..]);
    for (i, batch) in mixed.chunks(250).enumerate() {
        let violations = if i == 0 { vec![violation.clone()] } else { vec![] };
        store.append(batch, &violations).unwrap();
    }
    // An update of a routine chain: counted once at its new version.
    let mut updated = routine[7].clone();
    updated.version = 2;
    updated.steps.push(llm("api.openai.com", "gpt-4o-mini", 1_000, 50, &[]));
    updated.input_tokens += 1_000;
    updated.output_tokens += 50;
    store.append(&[updated.clone()], &[]).unwrap();

    let session = SqlSession::open(dir.path()).await.unwrap();
    let stored: BTreeSet<String> =
        rows(&session.query("SELECT chain_id FROM chains").await.unwrap()).iter().map(|r| r["chain_id"].as_str().unwrap().to_string()).collect();

    for (c, why) in &interesting {
        assert!(stored.contains(&c.chain_id), "the {why} chain {} was sampled out", c.chain_id);
    }
    let routine_stored = stored.iter().filter(|id| id.starts_with("routine-")).count();
    // The first routine chain is a first-time pattern (new provider for the agent) and is kept;
    // the rest are kept at about 1 in 100.
    assert!(stored.contains("routine-00000"), "the agent's first chain is a first-time pattern");
    assert!((3..=60).contains(&routine_stored), "routine chains kept: {routine_stored} of 2000");

    // Deterministic: the same chain ids are sampled in by a fresh sampler.
    let mut again = StorageSampler::new(0.01);
    let resampled: BTreeSet<String> = routine
        .iter()
        .filter(|c| again.decide(c, false).is_some())
        .map(|c| c.chain_id.clone())
        .collect();
    let stored_routine: BTreeSet<String> = stored.iter().filter(|id| id.starts_with("routine-")).cloned().collect();
    assert_eq!(resampled, stored_routine);

    // Exact aggregates over all 2,005 chains, whatever was sampled.
    let all: Vec<Chain> = routine
        .iter()
        .map(|c| if c.chain_id == updated.chain_id { updated.clone() } else { c.clone() })
        .chain(interesting.iter().map(|(c, _)| c.clone()))
        .collect();
    let expect_chains = all.len() as i64;
    let expect_steps: i64 = all.iter().map(|c| c.steps.len() as i64).sum();
    let expect_llm: i64 = all.iter().map(|c| c.steps.iter().filter(|s| s.kind == "llm_call").count() as i64).sum();
    let expect_input: i64 = all.iter().map(|c| c.input_tokens).sum();
    let expect_output: i64 = all.iter().map(|c| c.output_tokens).sum();
    let expect_bytes_out: i64 = all.iter().map(|c| c.bytes_out).sum();
    let counts = rows(
        &session
            .query(
                "SELECT SUM(chains) AS chains, SUM(steps) AS steps, SUM(llm_calls) AS llm_calls, SUM(input_tokens) AS input_tokens, \
                 SUM(output_tokens) AS output_tokens, SUM(bytes_out) AS bytes_out FROM agent_daily_counts WHERE agent_key = 'node-a/faq-agent'",
            )
            .await
            .unwrap(),
    );
    let c = &counts[0];
    assert_eq!(c["chains"].as_i64(), Some(expect_chains));
    assert_eq!(c["steps"].as_i64(), Some(expect_steps));
    assert_eq!(c["llm_calls"].as_i64(), Some(expect_llm));
    assert_eq!(c["input_tokens"].as_i64(), Some(expect_input));
    assert_eq!(c["output_tokens"].as_i64(), Some(expect_output));
    assert_eq!(c["bytes_out"].as_i64(), Some(expect_bytes_out));

    let counters = store.sampling_counters();
    assert_eq!(counters.chains_seen, 2_006, "2,005 chains plus one update");
    assert_eq!(counters.chains_kept as usize + counters.routine_dropped as usize, 2_006);
}

#[test]
fn keep_reasons_name_why_a_chain_was_kept() {
    let start = 1_767_225_600 * SEC;
    let mut s = StorageSampler::new(0.000_001);
    // The first routine chain is a first-time pattern; the second, identical in shape, is not.
    assert_eq!(s.decide(&routine(1, start), false), Some(KeepReason::FirstTimePattern));
    let reasons: Vec<_> = interesting(start).iter().map(|(c, _)| s.decide(c, c.chain_id == "int-violation")).collect();
    assert_eq!(
        reasons,
        vec![
            Some(KeepReason::Pii),
            Some(KeepReason::ToolCalls),
            Some(KeepReason::ExternalDestination),
            Some(KeepReason::FirstTimePattern),
            Some(KeepReason::Violation),
        ]
    );
    // A chain kept once keeps being stored as it grows, even when it looks routine later.
    let mut first = routine(2, start);
    first.chain_id = "int-violation".into();
    assert_eq!(s.decide(&first, false), Some(KeepReason::KeptBefore));
}
