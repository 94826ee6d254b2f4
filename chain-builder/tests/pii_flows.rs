//! `pii_flows` gives, on every version of a growing chain and after a step is removed, what a
//! plain reading of the rule gives: an edge i -> j for every fingerprint sent at step j and
//! first seen at an earlier step i, one per (j, i, fingerprint), sorted by (j, i) and then in
//! the order step j reports them. Steps come from a small deterministic generator with
//! repeated fingerprints, several findings per step, request and response locations and
//! server steps.

mod common;

use chainwatch_chain_builder::cost::PriceTable;
use chainwatch_chain_builder::pii_flow::pii_flows;
use chainwatch_chain_builder::process_tree::ProcKey;
use chainwatch_chain_builder::step::{StepRecord, take_step};
use chainwatch_schemas::{ConnRole, PiiFinding};
use common::*;

/// (to, from, fingerprint, pii type, destination) by the definition, without an index.
fn reference(steps: &[Box<StepRecord>]) -> Vec<(i32, i32, String, String, Option<String>)> {
    let first_seen = |fp: &str| steps.iter().position(|s| s.findings().any(|f| f.fingerprints.iter().any(|x| x == fp)));
    let mut out: Vec<(i32, i32, String, String, Option<String>)> = Vec::new();
    for (j, s) in steps.iter().enumerate() {
        for f in s.findings() {
            if !s.sends(f.location) {
                continue;
            }
            for fp in f.fingerprints.iter() {
                let Some(i) = first_seen(fp).filter(|&i| i < j) else { continue };
                if !out.iter().any(|e| e.0 == j as i32 && e.1 == i as i32 && e.2 == fp) {
                    out.push((j as i32, i as i32, fp.to_string(), f.pii_type.to_string(), s.destination().map(str::to_string)));
                }
            }
        }
    }
    // stable: within (to, from), the order the step reports its findings in
    out.sort_by_key(|e| (e.0, e.1));
    out
}

fn flows_of(steps: &[Box<StepRecord>]) -> Vec<(i32, i32, String, String, Option<String>)> {
    pii_flows(steps)
        .0
        .iter()
        .map(|f| (f.to_step, f.from_step, f.fingerprint.to_string(), f.pii_type.to_string(), f.destination.map(str::to_string)))
        .collect()
}

/// A xorshift generator: the same steps on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_step(rng: &mut Rng, n: usize) -> Box<StepRecord> {
    let p = P { node: "n1", tgid: 10, start: T0, comm: "python3" };
    let mut e = event(&format!("e{n}"), p, "saas_call", n as i64 * 10, n as i64 * 10 + 5, &format!("host{}.example", rng.next(4)), "saas");
    e.role = if rng.next(5) == 0 { ConnRole::Server } else { ConnRole::Client };
    for _ in 0..rng.next(4) {
        let fps: Vec<String> = (0..rng.next(6)).map(|_| format!("fp{}", rng.next(12))).collect();
        let location = if rng.next(2) == 0 { "request.body" } else { "response.body" };
        let pii_type = ["email", "phone", "iban"][rng.next(3) as usize];
        e.pii.push(PiiFinding { pii_type: pii_type.into(), count: fps.len() as i32, fingerprints: fps, location: location.into() });
    }
    let proc = ProcKey { node: 0, tgid: 10, start_ns: T0 };
    Box::new(take_step(&e, proc, &PriceTable::default()))
}

#[test]
fn every_version_of_a_growing_chain_gives_the_flows_of_the_definition() {
    let mut flows = 0;
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut steps: Vec<Box<StepRecord>> = Vec::new();
        for n in 0..(3 + rng.next(14) as usize) {
            steps.push(random_step(&mut rng, n));
            let want = reference(&steps);
            flows += want.len();
            assert_eq!(flows_of(&steps), want, "seed {seed}, {} steps", steps.len());
        }
        if steps.len() > 2 {
            steps.remove(1);
            assert_eq!(flows_of(&steps), reference(&steps), "seed {seed}: after a removal");
        }
    }
    assert!(flows > 1_000, "the generator makes flows: {flows}");
}

#[test]
fn the_seed_scenario_flows_follow_the_definition() {
    let steps: Vec<Box<StepRecord>> = seed_events(true)
        .into_iter()
        .map(|e| Box::new(take_step(&e, ProcKey { node: 0, tgid: 1, start_ns: T0 }, &PriceTable::default())))
        .collect();
    let want = reference(&steps);
    assert!(!want.is_empty(), "the seed scenario has flows");
    assert_eq!(flows_of(&steps), want);
}

/// Past `MAX_TRACKED_FINGERPRINTS` distinct fingerprints and `MAX_FLOWS` edges a chain's flows
/// are cut, and what was cut is counted.
#[test]
fn flows_past_the_caps_are_cut_and_counted() {
    use chainwatch_chain_builder::pii_flow::{MAX_FLOWS, MAX_TRACKED_FINGERPRINTS};
    let p = P { node: "n1", tgid: 10, start: T0, comm: "python3" };
    let proc = ProcKey { node: 0, tgid: 10, start_ns: T0 };
    let mut steps: Vec<Box<StepRecord>> = Vec::new();
    let mut n = 0;
    let mut step = |fps: Vec<String>, location: &str| {
        n += 1;
        let mut e = event(&format!("e{n}"), p, "saas_call", n, n + 1, "h.example", "saas");
        e.pii.push(PiiFinding { pii_type: "email".into(), count: fps.len() as i32, fingerprints: fps, location: location.into() });
        Box::new(take_step(&e, proc, &PriceTable::default()))
    };
    // 17 responses of 1,000 distinct fingerprints each: 17,000 distinct
    for s in 0..17 {
        steps.push(step((0..1_000).map(|i| format!("fp-{s}-{i}")).collect(), "response.body"));
    }
    // 5 requests sending 1,000 of the first response's fingerprints each: 5,000 edges
    for _ in 0..5 {
        steps.push(step((0..1_000).map(|i| format!("fp-0-{i}")).collect(), "request.body"));
    }
    let (flows, stats) = pii_flows(&steps);
    assert_eq!(flows.len(), MAX_FLOWS);
    assert_eq!(stats.flows_dropped, 5_000 - MAX_FLOWS as u64);
    assert_eq!(stats.fingerprints_untracked, 17_000 - MAX_TRACKED_FINGERPRINTS as u64);
}

/// A chain closed with its flows cut is counted in the builder's stats.
#[test]
fn a_chain_closed_with_its_flows_cut_is_counted() {
    use chainwatch_chain_builder::ChainBuilder;
    use chainwatch_config::ChainConfig;
    let mut b = ChainBuilder::new(&ChainConfig::default());
    let p = P { node: "n1", tgid: 10, start: T0, comm: "python3" };
    for s in 0..18i64 {
        let mut e = event(&format!("r{s}"), p, "sql", s * 10, s * 10 + 5, "db.internal:5432", "database");
        let fps = (0..1_000).map(|i| format!("fp-{s}-{i}")).collect::<Vec<_>>();
        e.pii.push(PiiFinding { pii_type: "email".into(), count: 1_000, fingerprints: fps, location: "response.rows".into() });
        b.ingest_event(e);
    }
    b.take_updates();
    assert_eq!(b.stats().pii_flows_cut, 0, "counted at the closing");
    b.finish();
    assert_eq!(b.stats().pii_flows_cut, 1);
}
