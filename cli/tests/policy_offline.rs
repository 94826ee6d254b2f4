//! `chainwatch policy --chains FILE|-` offline, on the chain `chainwatch demo` builds from the
//! recorded seed scenario: by default it prints the OCSF Detection Finding JSON that
//! cw.violations carries (one line per violation, the same violation ids as the demo),
//! `--format internal` prints chainwatch's Violation records, and a bad format fails by name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chainwatch_schemas::JsonRecord;

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-policy-offline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chainwatch(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(args)
        .current_dir(dir)
        .env_remove("CHAINWATCH__BUS__KIND")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(out: Output, args: &str) -> String {
    assert!(out.status.success(), "chainwatch {args}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn offline_policy_prints_ocsf_findings_by_default_and_internal_records_on_request() {
    let dir = workdir("seed");
    let demo = ok(chainwatch(&dir, &["demo", "--format", "json", "--report", "report.html"], None), "demo");
    let mut chain_lines = String::new();
    let mut demo_ids = Vec::new();
    for line in demo.lines() {
        match JsonRecord::from_line(line).unwrap() {
            JsonRecord::Chain(_) => {
                chain_lines.push_str(line);
                chain_lines.push('\n');
            }
            JsonRecord::Violation(v) => demo_ids.push(v.violation_id),
            other => panic!("unexpected record {other:?}"),
        }
    }
    demo_ids.sort();
    assert_eq!(demo_ids.len(), 2, "the seed chain raises two violations");
    std::fs::write(dir.join("chains.jsonl"), &chain_lines).unwrap();

    // Default: OCSF Detection Findings, one JSON object per line.
    let text = ok(chainwatch(&dir, &["policy", "--chains", "chains.jsonl"], None), "policy --chains chains.jsonl");
    let findings: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(findings.len(), 2, "{text}");
    let mut ids: Vec<String> = Vec::new();
    for f in &findings {
        assert_eq!((f["class_uid"].as_i64(), f["category_uid"].as_i64()), (Some(2004), Some(2)), "{f}");
        assert!(f.get("record_type").is_none(), "not the internal record: {f}");
        assert!(f["unmapped"]["chain_id"].is_string(), "{f}");
        ids.push(f["finding_info"]["uid"].as_str().unwrap().to_string());
    }
    ids.sort();
    assert_eq!(ids, demo_ids, "the same violations as the embedded pipeline");
    let exfil: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["finding_info"]["title"] == "PII uploaded to an unauthorized external destination")
        .collect();
    assert_eq!(exfil.len(), 1, "{text}");
    assert_eq!(exfil[0]["severity_id"], 4, "High");

    // --format internal, chains from stdin: chainwatch's Violation records.
    let text = ok(
        chainwatch(&dir, &["policy", "--chains", "-", "--format", "internal"], Some(chain_lines.as_bytes())),
        "policy --chains - --format internal",
    );
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| match JsonRecord::from_line(l).unwrap() {
            JsonRecord::Violation(v) => v.violation_id,
            other => panic!("not a violation: {other:?}"),
        })
        .collect();
    ids.sort();
    assert_eq!(ids, demo_ids);

    let out = chainwatch(&dir, &["policy", "--chains", "chains.jsonl", "--format", "xml"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ocsf or internal"), "{}", String::from_utf8_lossy(&out.stderr));
}
