//! Every built-in policy fires on its positive chain and stays quiet on its benign twin; the
//! seed scenario's chain gives exactly the two expected HIGH violations.

mod common;

use chainwatch_policy_engine::to_ocsf_json;
use chainwatch_schemas::{Chain, Severity};
use common::*;

async fn fired(chains: &[Chain]) -> Vec<chainwatch_schemas::Violation> {
    engine(None, None).await.evaluate(chains).await.unwrap()
}

#[tokio::test]
async fn seed_exfiltration_gives_exactly_the_two_high_violations() {
    let v = fired(&[seed_chain(false)]).await;
    let pii = of(&v, "pii-exfiltration");
    assert_eq!(pii.len(), 1, "{v:#?}");
    assert_eq!(pii[0].policy_title, "PII uploaded to an unauthorized external destination");
    assert_eq!(pii[0].severity, Severity::High);
    assert_eq!(pii[0].evidence_steps, vec![1, 7], "the Postgres step and the upload step");
    assert_eq!(pii[0].evidence.get("first_seen_kind").map(String::as_str), Some("sql"));
    assert_eq!(pii[0].evidence.get("destination").map(String::as_str), Some("personal-pastebin.com"));
    assert!(pii[0].pii_types.contains(&"email".to_string()));
    let zip = of(&v, "compress-then-upload");
    assert_eq!(zip.len(), 1, "{v:#?}");
    assert_eq!(zip[0].evidence_steps, vec![6, 7]);
    assert_eq!(ids(&v).len(), 2, "nothing else fires: {:?}", ids(&v));
    let j = to_ocsf_json(pii[0]);
    assert_eq!(j["class_uid"], 2004);
    assert_eq!(j["evidences"][0]["data"]["step_index"], 1);
}

#[tokio::test]
async fn seed_benign_twin_gives_nothing() {
    let v = fired(&[seed_chain(true)]).await;
    assert!(v.is_empty(), "{v:#?}");
}

#[tokio::test]
async fn allowlisted_destination_is_quiet() {
    let dir = temp_dir("allow");
    std::fs::write(dir.join("allowed_destinations.toml"), "[[destination]]\nhost = \"*\"\ncategory = \"saas\"\n[[destination]]\nhost = \"*.pastebin.com\"\n[[destination]]\nhost = \"personal-pastebin.com\"\n").unwrap();
    let mut e = engine(Some(&dir), None).await;
    let v = e.evaluate(&[seed_chain(false)]).await.unwrap();
    assert!(v.is_empty(), "{v:#?}");
}

#[tokio::test]
async fn strict_allowlist_flags_saas_too() {
    // A reference dir without allowed_destinations allows nothing: the Slack POST with an email
    // (flow 1 -> 5) is then PII sent outside the allowlist.
    let dir = temp_dir("strict");
    let mut e = engine(Some(&dir), None).await;
    let v = e.evaluate(&[seed_chain(true)]).await.unwrap();
    let pii = of(&v, "pii-exfiltration");
    assert_eq!(pii.len(), 1, "{v:#?}");
    assert_eq!(pii[0].evidence_steps, vec![1, 5]);
}

fn one_step_chain(id: &str, step: chainwatch_schemas::ChainStep) -> Chain {
    chain(id, AGENT, vec![llm(0, 500, &[]), step], vec![], vec![])
}

#[tokio::test]
async fn bulk_data_access() {
    let cases = [
        (sql(1, "SELECT * FROM orders WHERE created > now() - interval '1 day'", 25_000, &[]), sql(1, "SELECT * FROM orders WHERE id = 7", 100, &[]), "rows_over_threshold"),
        (sql(1, "SELECT * FROM public.customers", 50, &[]), sql(1, "SELECT * FROM customers WHERE id = 1", 1, &[]), "select_without_where"),
        (vector(1, 5_000), vector(1, 10), "vector_top_k_over_threshold"),
    ];
    for (positive, benign, reason) in cases {
        let v = fired(&[one_step_chain("pos", positive)]).await;
        let hits = of(&v, "bulk-data-access");
        assert_eq!(hits.len(), 1, "{reason}: {v:#?}");
        assert_eq!(hits[0].evidence.get("reason").map(String::as_str), Some(reason));
        assert_eq!(hits[0].evidence_steps, vec![1]);
        let v = fired(&[one_step_chain("neg", benign)]).await;
        assert!(of(&v, "bulk-data-access").is_empty(), "{reason} twin: {v:#?}");
    }
    let looped = |n: i32| {
        let mut steps = vec![llm(0, 500, &[])];
        steps.extend((1..=n).map(|i| sql(i, "SELECT name FROM products WHERE id = $1", 1, &[])));
        chain("loop", AGENT, steps, vec![], vec![])
    };
    let v = fired(&[looped(60)]).await;
    assert_eq!(of(&v, "bulk-data-access")[0].evidence.get("reason").map(String::as_str), Some("query_loop"));
    assert!(of(&fired(&[looped(10)]).await, "bulk-data-access").is_empty());
}

#[tokio::test]
async fn agent_loop() {
    let looping = |n: i32| {
        let steps: Vec<_> = (0..n).map(|i| llm(i, 500, &[])).collect();
        let tools = (0..n).map(|i| tool(&format!("c{i}"), "search_docs", i, i)).collect();
        chain("loop", AGENT, steps, tools, vec![])
    };
    let v = fired(&[looping(21)]).await;
    let hits = of(&v, "agent-loop");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].evidence.get("iterations").map(String::as_str), Some("21"));
    assert_eq!(hits[0].evidence_steps.len(), 21);
    assert!(of(&fired(&[looping(20)]).await, "agent-loop").is_empty());
}

/// Chains of `calls` LLM calls each, one second apart, the n-th starting at `start + n * gap`.
fn llm_chains(prefix: &str, n: usize, calls: i32, gap_s: i64) -> Vec<Chain> {
    (0..n)
        .map(|k| {
            let offset = k as i64 * gap_s * SEC;
            let steps = (0..calls)
                .map(|i| {
                    let mut s = llm(i, 500, &[]);
                    s.ts_start_ns += offset;
                    s.ts_end_ns += offset;
                    s
                })
                .collect();
            chain(&format!("{prefix}-{k}"), AGENT, steps, vec![], vec![])
        })
        .collect()
}

#[tokio::test]
async fn llm_call_burst_over_micro_batches() {
    // 3 chains of 200 calls within ~7 minutes, one chain per micro-batch: the window brings
    // back the earlier chains; the third batch crosses 500.
    let mut e = engine(None, None).await;
    let chains = llm_chains("burst", 3, 200, 10);
    assert!(of(&e.evaluate(&chains[0..1]).await.unwrap(), "llm-call-burst").is_empty());
    assert!(of(&e.evaluate(&chains[1..2]).await.unwrap(), "llm-call-burst").is_empty());
    let v = e.evaluate(&chains[2..3]).await.unwrap();
    let hits = of(&v, "llm-call-burst");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].chain_id, "burst-2", "only chains of this batch get findings");

    // Benign twin: the same chains 11 minutes apart.
    let mut e = engine(None, None).await;
    for c in llm_chains("calm", 3, 200, 660) {
        assert!(of(&e.evaluate(&[c]).await.unwrap(), "llm-call-burst").is_empty());
    }
}

#[tokio::test]
async fn token_spike_against_the_baseline() {
    for (tokens, expect) in [(20_000, true), (5_000, false)] {
        let mut e = engine(None, None).await;
        let normal: Vec<Chain> =
            (0..25).map(|i| chain(&format!("n{i}"), AGENT, vec![llm(0, 900, &[])], vec![], vec![])).collect();
        assert!(of(&e.evaluate(&normal).await.unwrap(), "token-spike").is_empty(), "no baseline yet");
        let v = e.evaluate(&[chain("spike", AGENT, vec![llm(0, 900, &[]), llm(1, tokens, &[])], vec![], vec![])]).await.unwrap();
        let hits = of(&v, "token-spike");
        assert_eq!(hits.len(), usize::from(expect), "{tokens} tokens: {v:#?}");
        if expect {
            assert_eq!(hits[0].evidence_steps, vec![1]);
            assert_eq!(hits[0].evidence.get("baseline_tokens_per_call").map(String::as_str), Some("1000"));
        }
    }
}

#[tokio::test]
async fn database_access_outside_business_hours() {
    let dir = reference_with_profile("hours");
    let mut e = engine(Some(&dir), None).await;
    // T0 is Tuesday 23:13 in Berlin: outside 08:00-18:00.
    let night = chain("night", AGENT, vec![llm(0, 500, &[]), sql(1, "SELECT 1", 1, &[])], vec![], vec![]);
    let v = e.evaluate(&[night.clone()]).await.unwrap();
    let hits = of(&v, "db-outside-business-hours");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].evidence.get("local_time").map(String::as_str), Some("23:13"));
    // Eleven hours later: Wednesday 10:13 in Berlin.
    let mut day = night;
    day.chain_id = "day".into();
    for s in &mut day.steps {
        s.ts_start_ns += 11 * 3600 * SEC;
        s.ts_end_ns += 11 * 3600 * SEC;
    }
    assert!(of(&e.evaluate(&[day]).await.unwrap(), "db-outside-business-hours").is_empty());
}

#[tokio::test]
async fn injection_followed_by_tool_calls() {
    let build = |id: &str, tool_after: bool| {
        let mut inj = llm(1, 2_000, &[]);
        inj.injection_rules = vec!["instruction_override".into()];
        let steps = vec![llm(0, 500, &[]), inj, llm(2, 500, &[]), post(3, "http", "api.github.com", "saas")];
        let tools = if tool_after { vec![tool("c1", "run_shell", 2, 3)] } else { vec![tool("c1", "search_docs", 0, 1)] };
        chain(id, AGENT, steps, tools, vec![])
    };
    let v = fired(&[build("inj", true)]).await;
    let hits = of(&v, "injection-then-tool-calls");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].evidence_steps, vec![1, 2]);
    assert_eq!(hits[0].evidence.get("first_tool").map(String::as_str), Some("run_shell"));
    assert!(of(&fired(&[build("calm", false)]).await, "injection-then-tool-calls").is_empty());
}

#[tokio::test]
async fn llm_then_db_write_then_external_post() {
    let build = |id: &str, statement: &str| {
        chain(
            id,
            AGENT,
            vec![llm(0, 500, &[]), sql(1, statement, 1, &[]), post(2, "http", "webhook.attacker.example.com", "unknown-external")],
            vec![],
            vec![],
        )
    };
    let v = fired(&[build("w", "INSERT INTO audit_log VALUES ($1, $2)")]).await;
    let hits = of(&v, "llm-db-write-external-post");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].evidence_steps, vec![0, 1, 2]);
    assert!(of(&fired(&[build("r", "SELECT * FROM audit_log WHERE id = 1")]).await, "llm-db-write-external-post").is_empty());
}

#[tokio::test]
async fn compression_then_upload() {
    let build = |id: &str, dest: &str, category: &str| {
        chain(
            id,
            AGENT,
            vec![llm(0, 500, &[]), process(1, "tar", "tar czf /tmp/out.tgz /srv/data"), post(2, "upload", dest, category)],
            vec![],
            vec![],
        )
    };
    let v = fired(&[build("z", "files.attacker.example.com", "unknown-external")]).await;
    let hits = of(&v, "compress-then-upload");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].evidence_steps, vec![1, 2]);
    assert_eq!(hits[0].evidence.get("packing").map(String::as_str), Some("tar"));
    // Benign twin: the archive goes to a sanctioned SaaS (category saas, allowed by default).
    assert!(of(&fired(&[build("ok", "uploads.slack.com", "saas")]).await, "compress-then-upload").is_empty());
}

#[tokio::test]
async fn pii_heavy_llm_context() {
    let v = fired(&[one_step_chain("big", llm(1, 60_000, &["email", "ssn"]))]).await;
    let hits = of(&v, "pii-llm-context");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].pii_types, vec!["email".to_string(), "ssn".to_string()]);
    assert!(of(&fired(&[one_step_chain("big-clean", llm(1, 60_000, &[]))]).await, "pii-llm-context").is_empty());
    assert!(of(&fired(&[one_step_chain("small", llm(1, 40_000, &["email"]))]).await, "pii-llm-context").is_empty());
}

#[tokio::test]
async fn tool_outside_the_profile() {
    let dir = reference_with_profile("tools");
    let mut e = engine(Some(&dir), None).await;
    let build = |id: &str, name: &str| chain(id, AGENT, vec![llm(0, 500, &[]), llm(1, 500, &[])], vec![tool("c", name, 0, 1)], vec![]);
    let v = e.evaluate(&[build("odd", "delete_user")]).await.unwrap();
    let hits = of(&v, "tool-outside-profile");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].evidence.get("tool_name").map(String::as_str), Some("delete_user"));
    assert!(of(&e.evaluate(&[build("fine", "query_database")]).await.unwrap(), "tool-outside-profile").is_empty());
}

#[tokio::test]
async fn secret_to_an_external_destination() {
    let build = |id: &str, secret: bool| {
        let mut s = post(1, "http", "paste.attacker.example.com", "unknown-external");
        if secret {
            s.secret_types = vec!["aws_access_key".into()];
        }
        one_step_chain(id, s)
    };
    let v = fired(&[build("leak", true)]).await;
    let hits = of(&v, "secret-to-external");
    assert_eq!(hits.len(), 1, "{v:#?}");
    assert_eq!(hits[0].severity, Severity::Critical);
    assert_eq!(hits[0].evidence.get("secret_types").map(String::as_str), Some("aws_access_key"));
    assert!(of(&fired(&[build("clean", false)]).await, "secret-to-external").is_empty());
}
