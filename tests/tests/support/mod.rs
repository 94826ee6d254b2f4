//! Prerequisites shared by the end-to-end tests: root, the `chainwatch` binary, the scenario's
//! venv and PKI (tests/scenario/setup.sh), tools on PATH, and the skip-or-fail rule
//! (CHAINWATCH_REQUIRE_E2E=1 turns a skip into a failure).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// Where tests/scenario/setup.sh keeps the venv and PKI.
fn scenario_cache() -> PathBuf {
    PathBuf::from(std::env::var("CW_SCENARIO_CACHE").unwrap_or_else(|_| "/var/cache/chainwatch".into()))
}

/// The python3 of the scenario's venv (pinned openai, anthropic, psycopg, qdrant-client).
pub fn scenario_venv_python() -> PathBuf {
    let venv = std::env::var("CW_SCENARIO_VENV").map(PathBuf::from).unwrap_or_else(|_| scenario_cache().join("scenario-venv"));
    venv.join("bin/python3")
}

/// The scenario's throwaway CA and server certificate.
pub fn scenario_pki() -> PathBuf {
    std::env::var("CW_SCENARIO_PKI").map(PathBuf::from).unwrap_or_else(|_| scenario_cache().join("scenario-pki"))
}

/// ../shared/corpora, or $CHAINWATCH_CORPORA.
pub fn corpora_dir() -> PathBuf {
    match std::env::var_os("CHAINWATCH_CORPORA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"),
    }
}

/// Print why `test` is skipped and return, or panic when CHAINWATCH_REQUIRE_E2E=1.
pub fn skip_or_fail(test: &str, missing: &[String]) {
    let why = missing.join("\n  - ");
    if std::env::var("CHAINWATCH_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("{test}: CHAINWATCH_REQUIRE_E2E=1 but prerequisites are missing:\n  - {why}");
    }
    // Straight to stderr, past the test harness's capture: a skip must be visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: prerequisites missing (set CHAINWATCH_REQUIRE_E2E=1 to fail instead):\n  - {why}"
    );
}

/// The effective uid, from /proc/self/status (`Uid: real effective saved fs`).
pub fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `$CHAINWATCH_BIN`, else `chainwatch` next to this test's `deps/` directory (the same target
/// dir and profile), else one level further up.
pub fn chainwatch_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("CHAINWATCH_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("CHAINWATCH_BIN={} is not a file", p.display())) };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let candidates: Vec<PathBuf> = exe.ancestors().skip(1).take(3).map(|d| d.join("chainwatch")).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "the chainwatch binary is not built next to this test (looked at {}): run `cargo build -p chainwatch` with the same CARGO_TARGET_DIR, or set CHAINWATCH_BIN",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}


pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

pub mod distributed;
pub mod observer;
pub mod procs;
pub mod scenario;
