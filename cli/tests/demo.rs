//! `chainwatch demo` as the README runs it: the recorded seed scenario through the embedded
//! pipeline, no root, no broker. The exfiltration chain raises exactly one "PII uploaded to an
//! unauthorized external destination" and one compression-then-upload violation, with evidence
//! naming the Postgres step and the upload step; the benign twin raises none. The data it
//! leaves behind answers `chainwatch sql`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chainwatch_schemas::{Chain, JsonRecord, Violation};

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chainwatch(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(args)
        .current_dir(dir)
        .env_remove("CHAINWATCH__BUS__KIND")
        .output()
        .unwrap();
    assert!(out.status.success(), "chainwatch {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn records(out: &Output) -> (Vec<Chain>, Vec<Violation>) {
    let mut chains = Vec::new();
    let mut violations = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match JsonRecord::from_line(line) {
            Ok(JsonRecord::Chain(c)) => chains.push(c),
            Ok(JsonRecord::Violation(v)) => violations.push(v),
            other => panic!("unexpected line {line}: {other:?}"),
        }
    }
    (chains, violations)
}

#[test]
fn demo_finds_the_exfiltration_chain_and_its_violations() {
    let dir = workdir("exfil");
    let out = chainwatch(&dir, &["demo", "--format", "json", "--report", "report.html"]);
    let (chains, violations) = records(&out);
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let chain = &chains[0];
    let kinds: Vec<&str> = chain.steps.iter().map(|s| s.kind.as_str()).collect();
    assert!(kinds.contains(&"llm_call") && kinds.contains(&"sql") && kinds.contains(&"upload"), "{kinds:?}");
    assert!(chain.destinations.iter().any(|d| d.starts_with("personal-pastebin.com")), "{:?}", chain.destinations);
    assert!(chain.tools.iter().any(|t| t == "query_database"), "{:?}", chain.tools);

    let exfil: Vec<&Violation> =
        violations.iter().filter(|v| v.policy_title == "PII uploaded to an unauthorized external destination").collect();
    assert_eq!(exfil.len(), 1, "{violations:#?}");
    let v = exfil[0];
    assert_eq!(format!("{:?}", v.severity), "High");
    let step = |i: &i32| chain.steps.iter().find(|s| s.index == *i).unwrap();
    assert!(v.evidence_steps.iter().any(|i| step(i).protocol == "postgres"), "evidence {:?}", v.evidence_steps);
    assert!(v.evidence_steps.iter().any(|i| step(i).kind == "upload"), "evidence {:?}", v.evidence_steps);
    assert!(chain.pii_flows.iter().any(|f| step(&f.from_step).protocol == "postgres" && step(&f.to_step).kind == "upload"));
    let compress = violations.iter().filter(|v| v.policy_id == "compress-then-upload").count();
    assert_eq!(compress, 1, "{violations:#?}");
    assert_eq!(violations.len(), 2, "{violations:#?}");

    // The fake API key the agent used never comes out.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-test-chainwatch"));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("PII uploaded to an unauthorized external destination"));

    // The data directory answers SQL afterwards.
    let sql = chainwatch(&dir, &["sql", "--format", "json", "SELECT policy_id FROM violations ORDER BY policy_id"]);
    let text = String::from_utf8_lossy(&sql.stdout);
    assert!(text.contains("pii-exfiltration") && text.contains("compress-then-upload"), "{text}");
}

#[test]
fn demo_benign_twin_raises_nothing() {
    let dir = workdir("benign");
    let out = chainwatch(&dir, &["demo", "--benign", "--format", "json", "--report", "report.html"]);
    let (chains, violations) = records(&out);
    assert_eq!(chains.len(), 1, "{chains:#?}");
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(!chains[0].steps.iter().any(|s| s.kind == "upload"));
}

#[test]
fn demo_timeline_is_readable() {
    let dir = workdir("timeline");
    let out = chainwatch(&dir, &["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("VIOLATION HIGH") && text.contains("PII email"), "{text}");
}
