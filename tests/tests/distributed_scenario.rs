//! Issue #8 end to end: the seed scenario (tests/scenario) live, watched by the real eBPF probe.
//!
//! `distributed_pipeline_flags_the_exfiltration_and_not_its_benign_twin`: a tansu broker, then
//! `chainwatch probe` (scoped by comm to the agent's wrapper and its descendants), two
//! `chainwatch parse` workers in group cw-parsers, two `chainwatch chain` members in group
//! cw-chains (process and semantic events are co-partitioned by node, so whichever owns the
//! agent's node sees its whole process tree), and one
//! `chainwatch policy`, each a separate process; PostgreSQL and the stand-ins of
//! tests/scenario; then the exfiltration agent and its benign twin. The exfiltration's
//! "PII uploaded to an unauthorized external destination" violation must arrive on
//! cw.violations (OCSF JSON) for a 7-step chain (cw.chains, Avro) with the pastebin upload and a
//! PII flow from the PostgreSQL step to the upload step, within 5 s of the agent's exit; the
//! benign twin's chain must close without a violation.
//!
//! `embedded_run_gives_the_same_chain_and_violation`: `chainwatch run --format json --
//! tests/scenario/run-agent-only` against the same servers.
//!
//! Needs root (eBPF, PostgreSQL as the postgres user), `tests/scenario/setup.sh` done, tansu
//! (see chainwatch_testkit::tansu_binary) and the `chainwatch` binary built in the same target
//! dir (`cargo build -p chainwatch`) or named by $CHAINWATCH_BIN. Without them the tests print
//! why and pass, unless CHAINWATCH_REQUIRE_E2E=1, where they fail.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use chainwatch_schemas::{Chain, ChainStatus, JsonRecord, Violation};

mod support;

use support::distributed::*;
use support::observer::*;
use support::procs::*;
use support::scenario::*;

/// The scenario's chain: chat, SQL, chat (stream), vector query, Jira, Slack, upload.
const EXFIL_STEPS: usize = 7;
/// Issue #8's acceptance: the violation is on cw.violations within 5 s of the upload.
const LATENCY_BUDGET: Duration = Duration::from_secs(5);
/// The fake OpenAI key of agent.py: it must never leave the parsers.
const FAKE_API_KEY: &str = "sk-test-chainwatch-0000";

/// One test at a time: both watch the scenario and start servers.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The checks issue #8 makes on the exfiltration chain, whichever mode produced it.
fn assert_exfiltration_chain(c: &Chain, evidence_steps: &[i64]) {
    let why = describe(c);
    assert_eq!(c.steps.len(), EXFIL_STEPS, "the exfiltration chain has {EXFIL_STEPS} steps:\n{why}");
    assert!(c.destinations.iter().any(|d| d.starts_with("personal-pastebin.com")), "no pastebin destination:\n{why}");
    let step = |i: i64| c.steps.iter().find(|s| i64::from(s.index) == i);
    let upload = c.steps.iter().find(|s| s.kind == "upload").unwrap_or_else(|| panic!("no upload step:\n{why}"));
    assert!(
        upload.destination.as_deref().is_some_and(|d| d.starts_with("personal-pastebin.com")),
        "the upload goes to the pastebin:\n{why}"
    );
    let postgres =
        c.steps.iter().find(|s| s.protocol == "postgres").unwrap_or_else(|| panic!("no PostgreSQL step:\n{why}"));
    assert!(
        c.pii_flows.iter().any(|f| f.from_step == postgres.index && f.to_step == upload.index),
        "no PII flow from the PostgreSQL step [{}] to the upload step [{}]:\n{why}",
        postgres.index,
        upload.index
    );
    assert!(
        evidence_steps.iter().any(|&i| step(i).is_some_and(|s| s.protocol == "postgres")),
        "evidence {evidence_steps:?}:\n{why}"
    );
    assert!(
        evidence_steps.iter().any(|&i| step(i).is_some_and(|s| s.kind == "upload")),
        "evidence {evidence_steps:?}:\n{why}"
    );
}

// ---------------------------------------------------------------------------------------------
// The distributed pipeline
// ---------------------------------------------------------------------------------------------

#[test]
fn distributed_pipeline_flags_the_exfiltration_and_not_its_benign_twin() {
    let _serial = serial();
    let Some(p) = prerequisites("distributed_pipeline_flags_the_exfiltration_and_not_its_benign_twin") else { return };
    let dir = run_dir("distributed");
    println!("run dir {} (logs of every stage)", dir.display());

    // 1. The broker and the topics.
    let broker = chainwatch_testkit::TansuBroker::start();
    let config = distributed_config(&dir, &broker.bootstrap());
    run_checked("chainwatch topics", Command::new(&p.chainwatch).arg("--config").arg(&config).arg("topics"));

    // 2. The stages, each its own process (and process group).
    let observer = Observer::start(broker.bootstrap());
    let mut stages = start_stages(&p, &config, &dir);

    // 3. PostgreSQL and the stand-ins (not watched: only the agent's tree is).
    let mut servers = ScenarioServers::start(&p, &dir.join("scenario"));
    let agent = servers.work.join(AGENT_COMM);
    fs::copy(servers.work.join("run-agent-only"), &agent).unwrap();

    // Readiness: a curl under the agent's comm until the probe and the workers carry it.
    let warmup_pids = wait_until_ready(&mut stages, &observer, &servers, &dir);
    println!("pipeline ready (warm-up curls: {warmup_pids:?})");

    // 4. The exfiltration scenario.
    let exfil = servers.run_agent(&agent, false);
    println!("agent (pid {}) finished:\n{}", exfil.pid, exfil.output);
    let got =
        observer.wait_for(Duration::from_secs(30), |seen| violations(seen).iter().any(|v| v.title == EXFIL_TITLE));
    let seen = observer.snapshot();
    assert!(got, "no {EXFIL_TITLE:?} violation within 30 s of the agent's exit; chains:\n{}", chains_text(&seen));
    let first = violations(&seen).into_iter().filter(|v| v.title == EXFIL_TITLE).min_by_key(|v| v.at).unwrap();
    // Signed: the violation may come before the agent's exit (an open chain's upsert).
    let after_exit_ms = if first.at >= exfil.exited {
        i128::try_from(first.at.duration_since(exfil.exited).as_millis()).unwrap_or(i128::MAX)
    } else {
        -i128::try_from(exfil.exited.duration_since(first.at).as_millis()).unwrap_or(i128::MAX)
    };

    // The chain: wait until it closed (idle gap), then check its last version.
    let closed = observer.wait_for(Duration::from_secs(30), |seen| {
        latest_chains(seen).get(&first.chain_id).is_some_and(|c| c.status == ChainStatus::Closed)
    });
    let seen = observer.snapshot();
    let chains = latest_chains(&seen);
    let chain = chains.get(&first.chain_id).unwrap_or_else(|| {
        panic!("the violation's chain {} is not on cw.chains:\n{}", first.chain_id, chains_text(&seen))
    });
    println!("{}", describe(chain));
    assert!(closed, "the exfiltration chain did not close within 30 s:\n{}", describe(chain));
    // The upload step's end is wall-clock time stamped by the probe (the response's last byte).
    let upload_end_ns =
        chain.steps.iter().filter(|s| s.kind == "upload").map(|s| s.ts_end_ns).max().unwrap_or(i64::MAX);
    let after_upload_ms = (i128::from(first.wall_ns) - i128::from(upload_end_ns)) / 1_000_000;
    println!(
        "LATENCY: the violation arrived on cw.violations {after_upload_ms} ms after the upload's last byte, {after_exit_ms} ms after the agent's exit"
    );
    println!("LATENCY by stage (ms after the upload's last byte): {}", stage_arrivals(&seen, chain, upload_end_ns));
    assert_eq!(chain.agent.tgid, exfil.pid as i32, "the chain belongs to the agent process:\n{}", describe(chain));
    // The evidence indexes the steps of the chain version it was found on: a step that arrives
    // late renumbers the ones after it, and the violation is re-emitted (version + 1) with the
    // new indexes once the policy engine evaluates the later version. Check the latest version
    // against the closed chain, after giving the engine time to see it.
    let upload_index = chain.steps.iter().find(|s| s.kind == "upload").map(|s| i64::from(s.index));
    let latest_of = |seen: &[Seen]| {
        violations(seen).into_iter().filter(|v| v.uid == first.uid).max_by_key(|v| (v.version, v.at))
    };
    observer.wait_for(Duration::from_secs(15), |seen| {
        latest_of(seen).is_some_and(|v| upload_index.is_some_and(|u| v.evidence_steps.contains(&u)))
    });
    let latest = latest_of(&observer.snapshot()).unwrap_or_else(|| first.clone());
    println!("violation {} v{} evidence {:?} (first v{} evidence {:?})", latest.uid, latest.version, latest.evidence_steps, first.version, first.evidence_steps);
    assert_exfiltration_chain(chain, &latest.evidence_steps);

    // 5. The benign twin.
    let benign = servers.run_agent(&agent, true);
    println!("benign agent (pid {}) finished:\n{}", benign.pid, benign.output);
    let closed = observer.wait_for(Duration::from_secs(30), |seen| {
        latest_chains(seen).values().any(|c| c.agent.tgid == benign.pid as i32 && c.status == ChainStatus::Closed)
    });
    assert!(closed, "the benign twin's chain did not close within 30 s:\n{}", chains_text(&observer.snapshot()));
    // A few seconds more for a late violation.
    std::thread::sleep(Duration::from_secs(4));
    let seen = observer.snapshot();
    let chains = latest_chains(&seen);
    let benign_chains: Vec<&Chain> = chains.values().filter(|c| c.agent.tgid == benign.pid as i32).collect();
    for c in &benign_chains {
        println!("{}", describe(c));
        assert!(!c.steps.iter().any(|s| s.kind == "upload"), "the benign twin uploads nothing:\n{}", describe(c));
    }
    let all = violations(&seen);
    let on_benign: Vec<&OcsfViolation> =
        all.iter().filter(|v| benign_chains.iter().any(|c| c.chain_id == v.chain_id)).collect();
    assert!(
        on_benign.is_empty(),
        "the benign twin raised violations: {:#?}",
        on_benign.iter().map(|v| &v.json).collect::<Vec<_>>()
    );

    // Exactly one exfiltration violation over everything (versions of it may repeat).
    let exfil_ids: BTreeSet<&str> = all.iter().filter(|v| v.title == EXFIL_TITLE).map(|v| v.uid.as_str()).collect();
    assert_eq!(
        exfil_ids.len(),
        1,
        "one {EXFIL_TITLE:?} violation: {:#?}",
        all.iter().map(|v| &v.json).collect::<Vec<_>>()
    );
    assert!(
        all.iter().filter(|v| v.title == EXFIL_TITLE).all(|v| v.chain_id == first.chain_id),
        "every version of it is on the exfiltration chain"
    );
    // The fake API key never reaches the chains or the violations.
    for s in seen.iter().filter(|s| s.topic != chainwatch_schemas::topics::PROC_EVENTS) {
        assert!(!contains(&s.value, FAKE_API_KEY.as_bytes()), "the fake API key leaked to {}", s.topic);
    }

    // 6. Everything down, cleanly.
    drop(observer);
    let mut failures = Vec::new();
    // The probe first (it feeds the rest), then the workers.
    for s in stages.iter_mut().rev() {
        let pgid = s.pid();
        let status = s.stop(Duration::from_secs(60));
        if !status.success() {
            failures.push(format!("{} exited with {status} on SIGINT:\n{}", s.name, tail(&s.log, 20)));
        }
        if group_alive(pgid) {
            failures.push(format!("{} left processes behind", s.name));
        }
        println!("{}: {}", s.name, tail(&s.log, 1));
    }
    servers.stop();
    drop(servers);
    drop(broker);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The latency budget last, after everything else held (the figures are printed above).
    let budget = i128::try_from(LATENCY_BUDGET.as_millis()).unwrap_or(i128::MAX);
    assert!(
        after_upload_ms < budget && after_exit_ms < budget,
        "the violation came {after_upload_ms} ms after the upload, {after_exit_ms} ms after the agent's exit (budget {LATENCY_BUDGET:?})"
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The embedded pipeline
// ---------------------------------------------------------------------------------------------

#[test]
fn embedded_run_gives_the_same_chain_and_violation() {
    let _serial = serial();
    let Some(p) = prerequisites("embedded_run_gives_the_same_chain_and_violation") else { return };
    let dir = run_dir("embedded");
    let mut servers = ScenarioServers::start(&p, &dir.join("scenario"));

    // No chainwatch.toml in the run dir: the defaults (embedded bus), data in ./chainwatch-data.
    let mut cmd = Command::new(&p.chainwatch);
    cmd.args(["run", "--format", "json", "--"]).arg(p.scenario.join("run-agent-only")).current_dir(&dir);
    cmd.envs(servers.env.iter().map(|(k, v)| (k, v)));
    for (k, _) in std::env::vars() {
        if k.starts_with("CHAINWATCH__") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chainwatch run failed ({}):\n{stderr}", out.status);
    println!("{stderr}");

    let mut chains = Vec::new();
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
        match JsonRecord::from_line(line) {
            Ok(JsonRecord::Chain(c)) => chains.push(c),
            Ok(JsonRecord::Violation(v)) => found.push(v),
            other => panic!("unexpected line from chainwatch run: {line}: {other:?}"),
        }
    }
    for c in &chains {
        println!("{}", describe(c));
    }
    let exfil: Vec<&Violation> = found.iter().filter(|v| v.policy_title == EXFIL_TITLE).collect();
    assert_eq!(exfil.len(), 1, "{found:#?}");
    let v = exfil[0];
    let chain = chains
        .iter()
        .find(|c| c.chain_id == v.chain_id)
        .unwrap_or_else(|| panic!("the violation's chain {} was not printed", v.chain_id));
    let evidence: Vec<i64> = v.evidence_steps.iter().map(|&i| i64::from(i)).collect();
    assert_exfiltration_chain(chain, &evidence);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(FAKE_API_KEY), "the fake API key leaked into the output");
    assert!(dir.join("chainwatch-data").is_dir(), "chainwatch run left no data directory");

    servers.stop();
    drop(servers);
    let _ = fs::remove_dir_all(&dir);
    let _ = std::io::stdout().flush();
}
