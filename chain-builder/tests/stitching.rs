//! Cross-service stitching: an agent on node-a calls an internal HTTP tool service on node-b,
//! which queries Postgres; the service's query joins the agent's chain whichever side's events
//! arrive first, and the service makes no chain of its own.

mod common;

use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::ChainConfig;
use chainwatch_schemas::{Chain, ConnRole, SemanticEvent};
use common::*;

const SERVICE: P<'static> = P { node: "node-b", tgid: 500, start: T0 - 3_600 * SEC, comm: "gunicorn" };
const OTHER_SERVICE: P<'static> = P { node: "node-c", tgid: 600, start: T0 - 3_600 * SEC, comm: "java" };

struct Scenario {
    agent: Vec<SemanticEvent>,
    service: Vec<SemanticEvent>,
}

fn scenario() -> Scenario {
    let s = stitched_service(SERVICE);
    Scenario { agent: vec![s.plan, s.call, s.next], service: vec![s.query, s.served] }
}

fn finals(all: Vec<Chain>) -> Vec<Chain> {
    let mut last: std::collections::BTreeMap<String, Chain> = Default::default();
    for c in all {
        if last.get(&c.chain_id).is_none_or(|o| o.version < c.version) {
            last.insert(c.chain_id.clone(), c);
        }
    }
    last.into_values().filter(|c| !c.steps.is_empty()).collect()
}

fn check(chains: &[Chain], b: &ChainBuilder) {
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let c = &chains[0];
    let ids: Vec<&str> = c.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["plan", "tool-http", "svc-sql", "next"]);
    assert_eq!(c.agent.node, "node-a");
    assert_eq!(c.steps[2].node, "node-b");
    let lookup = &c.tool_calls[0];
    assert_eq!(lookup.executed_steps, [1, 2], "the HTTP call and the service's query");
    assert_eq!(b.stats().stitched_requests, 1);
    assert_eq!(b.stats().stitched_steps, 1);
}

#[test]
fn service_events_first_then_the_client() {
    let s = scenario();
    let mut b = ChainBuilder::new(&ChainConfig::default());
    let mut out = Vec::new();
    let mut agent = s.agent.into_iter();
    out.extend(b.push_event(agent.next().unwrap()));
    for e in s.service {
        // The service's own chain is held back: nothing about it is published yet.
        let ups = b.push_event(e);
        assert!(ups.iter().all(|c| c.agent.node == "node-a"), "{ups:#?}");
        out.extend(ups);
    }
    for e in agent {
        out.extend(b.push_event(e));
    }
    out.extend(b.finish());
    check(&finals(out), &b);
}

#[test]
fn client_first_then_the_service_and_a_later_service_action() {
    let s = scenario();
    let mut b = ChainBuilder::new(&ChainConfig::default());
    let mut out = Vec::new();
    let mut service = s.service.into_iter();
    let q = service.next().unwrap();
    let served = service.next().unwrap();
    for e in s.agent {
        out.extend(b.push_event(e));
    }
    out.extend(b.push_event(served));
    // The query arrives after the served exchange: routed by the handling window.
    out.extend(b.push_event(q));
    out.extend(b.finish());
    check(&finals(out), &b);
}

#[test]
fn an_unrelated_tuple_does_not_stitch_and_the_service_gets_its_own_chain() {
    let s = scenario();
    let mut b = ChainBuilder::new(&ChainConfig::default());
    let mut out = Vec::new();
    for e in s.agent {
        out.extend(b.push_event(e));
    }
    for mut e in s.service {
        if let Some(t) = e.tuple.as_mut() {
            t.remote_port = 40_001; // another client connection
        }
        out.extend(b.push_event(e));
    }
    out.extend(b.finish());
    let chains = finals(out);
    assert_eq!(chains.len(), 2, "{chains:#?}");
    let svc = chains.iter().find(|c| c.agent.node == "node-b").unwrap();
    let ids: Vec<&str> = svc.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["svc-http", "svc-sql"]);
    assert_eq!(b.stats().stitched_requests, 0);
}

#[test]
fn nested_services_stitch_up_to_max_depth() {
    // agent -> service (node-b) -> other service (node-c) which runs the query.
    let build = |max_depth: usize| {
        let s = scenario();
        let mut b = ChainBuilder::new(&ChainConfig { max_depth, ..ChainConfig::default() });
        let mut out = Vec::new();
        for e in s.agent {
            out.extend(b.push_event(e));
        }
        let mut hop = event("svc-hop", SERVICE, "http", 1_050, 1_300, "inner.internal", "internal");
        hop.tuple = Some(tuple("10.0.0.2", 50_000, "10.0.0.3", 9_000));
        let mut served2 = event("svc2-http", OTHER_SERVICE, "http", 1_060, 1_290, "inner.internal", "internal");
        served2.role = ConnRole::Server;
        served2.tuple = Some(tuple("10.0.0.3", 9_000, "10.0.0.2", 50_000));
        let q2 = sql("svc2-sql", OTHER_SERVICE, 1_100, 1_150, "SELECT 1", 1);
        let served = s.service.into_iter().nth(1).unwrap();
        for e in [served, hop, q2, served2] {
            out.extend(b.push_event(e));
        }
        out.extend(b.finish());
        (finals(out), b.stats())
    };
    let (chains, stats) = build(16);
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let ids: Vec<&str> = chains[0].steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["plan", "tool-http", "svc-hop", "svc2-sql", "next"]);
    assert_eq!(stats.stitched_requests, 2);
    let (chains, stats) = build(1);
    assert_eq!(stats.depth_limited, 1);
    assert_eq!(chains.len(), 2);
}
