//! Cross-member stitching at the builder level: the agent's node (node-a) belongs to one
//! chain-builder member, the service's node (node-b) to another. The test carries the stitch
//! records (fragments, claims) between the two builders as the bus would: exactly one chain, the
//! agent's, holds the service's SQL, the PII read from the service's Postgres row flows to the
//! agent's later upload, and the service publishes no chain of its own; an unrelated tuple still
//! gives the service its own chain once the waits are over.

mod common;

use std::collections::BTreeMap;

use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::ChainConfig;
use chainwatch_schemas::{Chain, SemanticEvent, StitchKind, StitchRecord, Upload};
use common::*;

const SERVICE: P<'static> = P { node: "node-b", tgid: 500, start: T0 - 3_600 * SEC, comm: "gunicorn" };
const LATENESS_SECS: u64 = 2;

fn cfg() -> ChainConfig {
    ChainConfig { allowed_lateness_secs: LATENESS_SECS, ..ChainConfig::default() }
}

fn member(name: &str) -> ChainBuilder {
    let mut b = ChainBuilder::new(&cfg());
    b.set_member(name);
    b.set_remote_stitching(true);
    b
}

/// The agent's events: plan, an HTTP tool call to the service, the next LLM call, and an upload
/// of what the service returned (the email's fingerprint) to an unknown site.
fn agent_events() -> Vec<SemanticEvent> {
    let StitchedService { plan, call, next, .. } = stitched_service(SERVICE);
    let mut up = event("upload", AGENT, "upload", 2_100, 2_300, "personal-pastebin.com", "unknown-external");
    up.upload = Some(Upload { content_type: Some("text/plain".into()), filename: Some("x.txt".into()), bytes: 100, archive_format: None });
    up.pii = vec![pii("request", &emails(1))];
    vec![plan, call, next, up]
}

/// The service's view of the request (client port `client_port`) and its query, whose rows
/// hold the email.
fn service_events(client_port: i32) -> Vec<SemanticEvent> {
    let StitchedService { query, mut served, .. } = stitched_service(SERVICE);
    served.tuple = Some(tuple("10.0.0.2", 8_080, "10.0.0.1", client_port));
    vec![query, served]
}

/// Latest version of each chain, the emptied ones left out.
fn finals(all: Vec<Chain>) -> Vec<Chain> {
    let mut last: BTreeMap<String, Chain> = BTreeMap::new();
    for c in all {
        if last.get(&c.chain_id).is_none_or(|o| o.version < c.version) {
            last.insert(c.chain_id.clone(), c);
        }
    }
    last.into_values().filter(|c| !c.steps.is_empty()).collect()
}

/// A clock (event time) `ms` after T0 plus `latenesses` allowed latenesses.
fn clock(ms: i64, latenesses: i64) -> i64 {
    T0 + ms * MS + latenesses * LATENESS_SECS as i64 * SEC
}

/// Move the watermark to `clock - lateness`, then take what that released (as the worker's
/// flush does).
fn tick(b: &mut ChainBuilder, clock_ns: i64) -> Vec<Chain> {
    let mut out = b.advance_watermark(clock_ns);
    out.extend(b.take_updates());
    out
}

fn kinds(records: &[StitchRecord]) -> Vec<StitchKind> {
    records.iter().map(|r| r.kind).collect()
}

fn check_agent_chain(chains: &[Chain]) {
    assert_eq!(chains.len(), 1, "one chain: {chains:#?}");
    let c = &chains[0];
    assert_eq!(c.agent.node, "node-a");
    let ids: Vec<&str> = c.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["plan", "tool-http", "svc-sql", "next", "upload"]);
    assert_eq!(c.steps[2].node, "node-b");
    assert_eq!(c.steps[2].statement.as_deref(), Some("SELECT * FROM customers WHERE id = $1"));
    assert_eq!(c.tool_calls[0].executed_steps, [1, 2], "the HTTP call and the service's query");
    let flow = c.pii_flows.iter().find(|f| f.to_step == 4).expect("a PII flow to the upload");
    assert_eq!((flow.from_step, flow.destination.as_deref()), (2, Some("personal-pastebin.com")), "{:#?}", c.pii_flows);
}

#[test]
fn the_service_on_another_member_joins_the_agent_chain_through_a_fragment_and_a_claim() {
    let (mut a, mut b) = (member("member-a"), member("member-b"));
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for e in agent_events() {
        out_a.extend(a.push_event(e));
    }
    for e in service_events(40_000) {
        out_b.extend(b.push_event(e));
    }
    // The service's hold ends one lateness after its exchange: B offers a fragment, and keeps
    // the service's chain held.
    out_b.extend(tick(&mut b, clock(1_390, 2)));
    let fragments = b.take_stitch_records();
    assert_eq!(kinds(&fragments), [StitchKind::Fragment]);
    assert_eq!(fragments[0].steps.len(), 1, "the query; the served exchange is the client's step");
    assert!(finals(out_b.clone()).is_empty(), "nothing of the service published yet: {out_b:#?}");
    // A member ignores its own records.
    b.push_stitch(fragments[0].clone());
    assert_eq!(b.stats().remote_fragments_received, 0);

    // A holds the client exchange: it merges the fragment and claims it.
    for f in fragments {
        a.push_stitch(f);
    }
    out_a.extend(a.take_updates());
    let claims = a.take_stitch_records();
    assert_eq!(kinds(&claims), [StitchKind::Claim]);
    assert_eq!(claims[0].fragment_member, "member-b");
    // The claim drops the service's held chain on B: nothing published, ever.
    for c in claims {
        b.push_stitch(c);
    }
    out_b.extend(tick(&mut b, clock(1_390, 10)));
    out_b.extend(b.finish());
    assert!(finals(out_b.clone()).is_empty(), "no service chain: {:#?}", finals(out_b));
    assert_eq!(b.stats().remote_claims_received, 1);
    assert!(b.take_stitch_records().is_empty());

    out_a.extend(a.finish());
    check_agent_chain(&finals(out_a));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.remote_fragments_received, sa.remote_stitched_requests, sa.stitched_requests, sa.stitched_steps), (1, 1, 1, 1));
    assert_eq!((sb.remote_fragments_published, sb.remote_exports_unclaimed), (1, 0));
}

#[test]
fn a_fragment_before_its_client_exchange_waits_for_it() {
    let (mut a, mut b) = (member("member-a"), member("member-b"));
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for e in service_events(40_000) {
        out_b.extend(b.push_event(e));
    }
    out_b.extend(tick(&mut b, clock(1_390, 2)));
    for f in b.take_stitch_records() {
        a.push_stitch(f);
    }
    assert_eq!(a.stitch_waiting(), (0, 1), "the fragment waits for the client exchange");
    for e in agent_events() {
        out_a.extend(a.push_event(e));
    }
    let claims = a.take_stitch_records();
    assert_eq!(kinds(&claims), [StitchKind::Claim]);
    for c in claims {
        b.push_stitch(c);
    }
    out_b.extend(b.finish());
    assert!(finals(out_b).is_empty());
    out_a.extend(a.finish());
    check_agent_chain(&finals(out_a));
}

#[test]
fn the_service_state_survives_a_checkpoint_between_fragment_and_claim() {
    let (mut a, mut b) = (member("member-a"), member("member-b"));
    let mut out_b = Vec::new();
    for e in agent_events() {
        a.push_event(e);
    }
    for e in service_events(40_000) {
        out_b.extend(b.push_event(e));
    }
    out_b.extend(tick(&mut b, clock(1_390, 2)));
    let fragments = b.take_stitch_records();
    // Both members restart from checkpoints before the fragment and the claim are handled; the
    // claim names the fragment's original member and still reaches the restored fragment.
    let mut a = {
        let bytes = a.checkpoint().unwrap();
        let mut r = ChainBuilder::restore(&cfg(), &bytes).unwrap();
        r.set_member("member-a");
        r.set_remote_stitching(true);
        r
    };
    let mut b = {
        let bytes = b.checkpoint().unwrap();
        let mut r = ChainBuilder::restore(&cfg(), &bytes).unwrap();
        // restarted under a new name (the default member id has the process id in it)
        r.set_member("member-b-restarted");
        r.set_remote_stitching(true);
        r
    };
    for f in fragments {
        a.push_stitch(f);
    }
    for c in a.take_stitch_records() {
        b.push_stitch(c);
    }
    out_b.extend(b.finish());
    assert!(finals(out_b).is_empty());
    assert_eq!(b.stats().remote_claims_received, 1);
    check_agent_chain(&finals(a.finish()));
}

#[test]
fn an_unrelated_tuple_leaves_the_service_its_own_chain_after_the_waits() {
    let (mut a, mut b) = (member("member-a"), member("member-b"));
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for e in agent_events() {
        out_a.extend(a.push_event(e));
    }
    for e in service_events(40_001) {
        out_b.extend(b.push_event(e));
    }
    out_b.extend(tick(&mut b, clock(1_390, 2)));
    let fragments = b.take_stitch_records();
    assert_eq!(kinds(&fragments), [StitchKind::Fragment]);
    for f in fragments {
        a.push_stitch(f);
    }
    assert!(a.take_stitch_records().is_empty(), "no client exchange with that tuple: no claim");
    // Still held during the further wait, published after it.
    out_b.extend(tick(&mut b, clock(1_390, 2) + SEC));
    assert!(finals(out_b.clone()).is_empty(), "held one lateness more: {out_b:#?}");
    out_b.extend(tick(&mut b, clock(1_390, 3)));
    let service = finals(out_b);
    assert_eq!(service.len(), 1, "{service:#?}");
    let ids: Vec<&str> = service[0].steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["svc-http", "svc-sql"]);
    assert_eq!(b.stats().remote_exports_unclaimed, 0, "counted once its entry expires");
    tick(&mut b, clock(1_390, 4));
    assert_eq!(b.stats().remote_exports_unclaimed, 1);

    // The agent's chain is whole without the service; the waiting fragment expires, counted.
    out_a.extend(tick(&mut a, clock(2_300, 6)));
    out_a.extend(a.finish());
    let agent = finals(out_a);
    assert_eq!(agent.len(), 1);
    let ids: Vec<&str> = agent[0].steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["plan", "tool-http", "next", "upload"]);
    assert_eq!((a.stats().remote_fragments_expired, a.stats().remote_stitched_requests), (1, 0));
}

#[test]
fn one_member_alone_offers_nothing_and_publishes_as_before() {
    let mut b = ChainBuilder::new(&cfg());
    b.set_member("member-b");
    let mut out = Vec::new();
    for e in service_events(40_000) {
        out.extend(b.push_event(e));
    }
    out.extend(tick(&mut b, clock(1_390, 2)));
    assert!(b.take_stitch_records().is_empty());
    assert_eq!(finals(out).len(), 1, "published when its hold ended, as alone");
}
