//! Evaluation latency per micro-batch of 1,000 chains with the whole built-in pack loaded, and
//! violations per second. Each round is a new micro-batch of 1,000 chains (new chain ids, one
//! minute later than the previous round, 50 agents) so the history window of the rate policy
//! fills up as in production. 10% of the chains are the seed exfiltration chain (two HIGH
//! violations each), the rest its benign twin. Prints p50/p99 of the rounds measured.

use std::time::{Duration, Instant};

use chainwatch_config::PolicyConfig;
use chainwatch_policy_engine::PolicyEngine;
use chainwatch_schemas::{AgentRef, Autonomy, Chain, ChainStatus, ChainStep, PiiFlow, ToolExecution};
use criterion::{Criterion, criterion_group, criterion_main};

const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;
const BATCH: usize = 1_000;

fn step(index: i32, t0: i64, kind: &str, category: &str, destination: Option<&str>) -> ChainStep {
    ChainStep {
        index,
        event_id: format!("ev-{index}"),
        ts_start_ns: t0 + i64::from(index) * SEC,
        ts_end_ns: t0 + i64::from(index) * SEC + SEC / 2,
        kind: kind.into(),
        protocol: "http1".into(),
        tgid: 4242,
        comm: "python3".into(),
        node: "node-a".into(),
        destination: destination.map(String::from),
        category: category.into(),
        summary: kind.into(),
        ..Default::default()
    }
}

fn seed_like(id: String, agent: String, t0: i64, exfil: bool) -> Chain {
    let pii: Vec<String> = ["email", "phone"].iter().map(|s| s.to_string()).collect();
    let mut steps = vec![
        ChainStep { input_tokens: 900, output_tokens: 80, method: Some("POST".into()), ..step(0, t0, "llm_call", "llm", Some("api.openai.com")) },
        ChainStep {
            statement: Some("SELECT id, email FROM customers WHERE plan = 'premium'".into()),
            rows: Some(24),
            pii_types: pii.clone(),
            ..step(1, t0, "sql", "database", Some("db.internal.test"))
        },
        ChainStep { input_tokens: 4000, output_tokens: 200, pii_types: pii.clone(), ..step(2, t0, "llm_call", "llm", Some("api.openai.com")) },
        ChainStep { top_k: Some(3), ..step(3, t0, "vector_query", "vectordb", Some("vectors.internal.test")) },
        ChainStep { method: Some("POST".into()), ..step(4, t0, "saas_call", "saas", Some("jira.example.test")) },
        ChainStep { method: Some("POST".into()), ..step(5, t0, "saas_call", "saas", Some("slack.example.test")) },
        ChainStep { comm: "gzip".into(), ..step(6, t0, "process", "internal", None) },
    ];
    let mut tools = vec![
        ToolExecution { tool_call_id: "c1".into(), tool_name: "query_database".into(), requested_at_step: 0, executed_steps: vec![1], result_step: Some(2), approved: false },
        ToolExecution { tool_call_id: "c2".into(), tool_name: "post_slack".into(), requested_at_step: 2, executed_steps: vec![5], result_step: None, approved: false },
    ];
    if exfil {
        steps.push(ChainStep { method: Some("POST".into()), archive_format: Some("gzip".into()), ..step(7, t0, "upload", "unknown-external", Some("personal-pastebin.com")) });
        tools.push(ToolExecution { tool_call_id: "c3".into(), tool_name: "upload_file".into(), requested_at_step: 2, executed_steps: vec![7], result_step: None, approved: false });
    }
    let flows = vec![PiiFlow { fingerprint: "f".into(), pii_type: "email".into(), from_step: 1, to_step: 2, destination: Some("api.openai.com".into()) }];
    Chain {
        chain_id: id,
        version: 1,
        status: ChainStatus::Closed,
        agent: AgentRef { node: "node-a".into(), agent_key: agent, tgid: 4242, comm: "python3".into(), ..Default::default() },
        start_ns: t0,
        end_ns: t0 + 8 * SEC,
        tools: vec!["query_database".into(), "post_slack".into()],
        destinations: vec!["api.openai.com".into()],
        pii_types: pii,
        bytes_out: 0,
        bytes_in: 0,
        input_tokens: 4900,
        output_tokens: 280,
        cost_usd: 0.0,
        max_tool_repeats: 1,
        autonomy: Autonomy::Autonomous,
        risk_score: 0.5,
        risk_reasons: vec![],
        steps,
        tool_calls: tools,
        pii_flows: flows,
    }
}

fn batch(round: usize) -> Vec<Chain> {
    let t0 = T0 + round as i64 * 60 * SEC;
    (0..BATCH)
        .map(|i| seed_like(format!("r{round}-c{i}"), format!("node-a/agent-{}", i % 50), t0 + (i as i64 % 60) * SEC, i % 10 == 0))
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut engine = rt.block_on(PolicyEngine::new(&PolicyConfig::default())).unwrap();
    assert!(engine.policy_errors().is_empty(), "{:?}", engine.policy_errors());
    let mut round = 0usize;
    let mut samples: Vec<Duration> = Vec::new();
    let mut violations = 0usize;
    let mut eval_time = Duration::ZERO;
    let mut group = c.benchmark_group("policy_eval");
    group.sample_size(20).measurement_time(Duration::from_secs(30));
    group.throughput(criterion::Throughput::Elements(BATCH as u64));
    group.bench_function("micro_batch_1000_chains_full_pack", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let chains = batch(round);
                round += 1;
                let start = Instant::now();
                let v = rt.block_on(engine.evaluate(&chains)).unwrap();
                let took = start.elapsed();
                total += took;
                samples.push(took);
                violations += v.len();
                eval_time += took;
            }
            total
        })
    });
    group.finish();
    samples.sort();
    if !samples.is_empty() {
        eprintln!(
            "policy_eval: {} micro-batches of {BATCH} chains, {} policies: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} violations, {:.0} violations/s, {:.0} chains/s",
            samples.len(),
            engine.policies().len(),
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples[samples.len() - 1].as_secs_f64() * 1e3,
            violations,
            violations as f64 / eval_time.as_secs_f64(),
            (samples.len() * BATCH) as f64 / eval_time.as_secs_f64(),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
