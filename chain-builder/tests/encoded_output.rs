//! The worker's encoded output (`set_encoded_output`: versions Avro-encoded straight from the
//! builder's state through `ChainView`) is byte for byte `Chain::encode` of the records the
//! builder gives otherwise, on every version of: the seed scenario, its benign twin, a
//! stitched service, and a mix of agents with tool calls, PII flows, user requests, loops,
//! secrets, injections and uploads, taken at every step and at closings.

mod common;

use chainwatch_chain_builder::ChainBuilder;
use chainwatch_chain_builder::chain_view::EncodedChain;
use chainwatch_config::ChainConfig;
use chainwatch_schemas::{AvroRecord, Chain, ConnRole, InjectionSignal, ProcessEvent, SecretFinding, SemanticEvent, Upload};
use common::*;

#[allow(clippy::large_enum_variant)]
enum Input {
    Event(SemanticEvent),
    Process(ProcessEvent),
}

/// Feed `inputs` taking versions every `every` inputs; returns the records, or the encoded
/// versions (then no record may come out).
fn run(inputs: &[Input], every: usize, encoded: bool) -> (Vec<Chain>, Vec<EncodedChain>) {
    let mut b = ChainBuilder::new(&ChainConfig::default());
    b.set_encoded_output(encoded);
    let (mut records, mut bytes) = (Vec::new(), Vec::new());
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Event(e) => b.ingest_event(e.clone()),
            Input::Process(p) => b.push_process(p),
        }
        if i % every == every - 1 {
            records.extend(b.take_updates());
            records.extend(b.advance_watermark(i64::MIN));
            bytes.extend(b.take_encoded());
        }
    }
    records.extend(b.finish());
    bytes.extend(b.take_encoded());
    (records, bytes)
}

fn assert_same(name: &str, inputs: &[Input], every: usize) -> usize {
    let (records, none) = run(inputs, every, false);
    assert!(none.is_empty());
    let (empty, encoded) = run(inputs, every, true);
    assert!(empty.is_empty(), "{name}: encoded mode gave records");
    assert_eq!(records.len(), encoded.len(), "{name}: versions");
    for (r, e) in records.iter().zip(&encoded) {
        assert_eq!((&e.chain_id, e.version), (&r.chain_id, r.version), "{name}");
        assert!(e.bytes == r.encode().expect("encode"), "{name}: {} v{} differs", r.chain_id, r.version);
        assert_eq!(&Chain::decode(&e.bytes).expect("decode"), r, "{name}");
    }
    records.len()
}

fn seed(upload: bool) -> Vec<Input> {
    let mut v: Vec<Input> = seed_processes().into_iter().map(Input::Process).collect();
    v.extend(seed_events(upload).into_iter().map(Input::Event));
    v
}

fn stitched() -> Vec<Input> {
    let s = stitched_service(P { node: "node-b", tgid: 500, start: T0 - 3_600 * SEC, comm: "gunicorn" });
    [s.query, s.served, s.plan, s.call, s.next].into_iter().map(Input::Event).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Agents on two nodes running tasks with every kind of step, interleaved.
fn mix() -> Vec<Input> {
    let mut out: Vec<(i64, Input)> = Vec::new();
    for a in 0..12usize {
        let node = if a % 2 == 0 { "n0" } else { "n1" };
        let p = P { node, tgid: 1_000 + a as i32, start: T0 - 3_600 * SEC, comm: "python3" };
        for t in 0..4usize {
            let base = t as i64 * 90_000 + a as i64 * 700;
            let id = |s: &str| format!("{a}-{t}-{s}");
            let conv = |n: usize| (0..n).map(|i| format!("c{a}-{t}-{i}")).collect::<Vec<_>>();
            let (c2, c4) = (conv(2), conv(4));
            let fps: Vec<String> = (0..3 + a % 4).map(|i| format!("fp-{a}-{i}")).collect();
            let (db, docs, up) = (id("db"), id("docs"), id("up"));
            let mut push = |e: SemanticEvent| out.push((e.ts_start_ns, Input::Event(e)));
            if t % 2 == 1 {
                let mut req = event(&id("user"), p, "http", base - 100, base + 9_000, "agent.local", "internal");
                req.role = ConnRole::Server;
                push(req);
            }
            push(llm(&id("plan"), p, base, base + 800, &strs(&c2), &[(&db, "query_database"), (&docs, "search_docs")], &[]));
            for k in 0..(1 + a % 3) {
                let mut q = sql(&id(&format!("sql{k}")), p, base + 1_000 + k as i64 * 60, base + 1_050 + k as i64 * 60, "SELECT email FROM customers", 2_000);
                q.pii = vec![pii("response", &fps)];
                push(q);
            }
            let v = event(&id("vec"), p, "vector_query", base + 1_300, base + 1_350, "qdrant.internal", "vectordb");
            push(v);
            let mut s = llm(&id("synth"), p, base + 1_400, base + 2_800, &strs(&c4), &[(&up, "upload_file")], &[&db, &docs]);
            s.pii = vec![pii("request", &fps)];
            if a % 5 == 0 {
                s.injection = vec![InjectionSignal { rule: "ignore-previous".into(), score: 0.9, location: "request".into() }];
            }
            push(s);
            let mut u = event(&id("upload"), p, "upload", base + 3_000, base + 3_500, "paste.example", "unknown-external");
            u.upload = Some(Upload { bytes: 9_000, archive_format: Some("gzip".into()), ..Upload::default() });
            u.pii = vec![pii("request", &fps[..2])];
            if a % 3 == 0 {
                u.secrets = vec![SecretFinding { secret_type: "aws_access_key".into(), count: 1, fingerprints: vec![], location: "request".into() }];
            }
            push(u);
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, i)| i).collect()
}

/// `inputs` delivered out of order: each run of 7 reversed, so steps are inserted before steps
/// already published (a version then reuses only the steps before the insertion).
fn out_of_order(inputs: Vec<Input>) -> Vec<Input> {
    let mut v = inputs;
    for run in v.chunks_mut(7) {
        run.reverse();
    }
    v
}

#[test]
fn encoded_versions_equal_the_records_encoding() {
    let mut versions = 0;
    for every in [1, 3, 1_000] {
        versions += assert_same("seed", &seed(true), every);
        versions += assert_same("benign", &seed(false), every);
        versions += assert_same("stitched", &stitched(), every);
        versions += assert_same("mix", &mix(), every);
        versions += assert_same("mix, out of order", &out_of_order(mix()), every);
    }
    assert!(versions > 300, "only {versions} versions compared");
}

#[allow(clippy::large_enum_variant)]
enum Op {
    Event(SemanticEvent),
    Take,
    Advance(i64),
    CheckpointRestore,
}

/// `ops` on a builder in one output mode: the records, or the encoded versions.
fn script(ops: &[Op], encoded: bool) -> (Vec<Chain>, Vec<EncodedChain>) {
    let cfg = ChainConfig { idle_gap_secs: 60, allowed_lateness_secs: 10, ..ChainConfig::default() };
    let mut b = ChainBuilder::new(&cfg);
    b.set_encoded_output(encoded);
    let (mut records, mut bytes) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::Event(e) => b.ingest_event(e.clone()),
            Op::Take => records.extend(b.take_updates()),
            Op::Advance(t) => records.extend(b.advance_watermark(*t)),
            Op::CheckpointRestore => {
                let state = b.checkpoint().expect("checkpoint");
                b = ChainBuilder::restore(&cfg, &state).expect("restore");
                b.set_encoded_output(encoded);
            }
        }
        bytes.extend(b.take_encoded());
    }
    records.extend(b.finish());
    bytes.extend(b.take_encoded());
    (records, bytes)
}

/// The closing version of an unchanged chain is its last encoding with a new version and
/// status; a late event after the closing changes the chain again (its next versions are
/// encoded afresh), and a restored builder, which keeps no encodings, encodes its closings.
/// Every version equals the record's encoding.
#[test]
fn closings_after_a_reopen_and_after_a_restore_equal_the_records_encoding() {
    let mut events = seed_events(false);
    let late = events.remove(2); // the vector query arrives after the closing
    let mut ops: Vec<Op> = events.into_iter().map(Op::Event).collect();
    ops.extend([Op::Take, Op::Advance(T0 + 74 * SEC), Op::Event(late), Op::Take, Op::Advance(T0 + 80 * SEC)]);
    // a second chain of another agent, closed after a restore
    ops.extend(seed_events(true).into_iter().map(|mut e| {
        e.tgid += 1_000;
        e.event_id.push_str("-b");
        e.ts_start_ns += 200 * SEC;
        e.ts_end_ns += 200 * SEC;
        Op::Event(e)
    }));
    ops.extend([Op::Take, Op::CheckpointRestore, Op::Advance(T0 + 300 * SEC)]);

    let (records, none) = script(&ops, false);
    assert!(none.is_empty());
    let (empty, encoded) = script(&ops, true);
    assert!(empty.is_empty());
    let closings = records.iter().filter(|r| r.status == chainwatch_schemas::ChainStatus::Closed).count();
    assert!(closings >= 3, "closed, closed again after the reopen, closed after the restore: {closings}");
    assert_eq!(records.len(), encoded.len());
    for (r, e) in records.iter().zip(&encoded) {
        assert_eq!((&e.chain_id, e.version), (&r.chain_id, r.version));
        assert!(e.bytes == r.encode().expect("encode"), "{} v{} ({:?}) differs", r.chain_id, r.version, r.status);
    }
}
