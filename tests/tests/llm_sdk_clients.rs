//! Issue #5's real-clients acceptance: the official Python `openai` and `anthropic` SDKs (pinned
//! in tests/scenario/requirements.txt) talk to a local server that answers with recorded bodies
//! from ../shared/corpora/llm_sse, streaming and not; `dumpcap` captures the loopback traffic of
//! that server's port only; `chainwatch parse --pcap` turns the capture into semantic events.
//! What each SDK sent (model, message count, tool names) and what it parsed from the answer
//! (model, usage, tool calls with their arguments, finish reason) must be what chainwatch
//! extracted, call by call, and neither API key may appear anywhere in chainwatch's output.
//!
//! The calls (tests/scenario/llm_sdk_replay.py makes them):
//! - both interactions of the pydantic-ai cassettes test_openai_tool_output and
//!   test_anthropic_tool_output (their recorded request bodies go through the SDK, their
//!   recorded JSON answers come back), non-streaming;
//! - openai-python's recorded stream of test_parse_pydantic_tool (chat completion chunks with a
//!   tool call and a usage chunk) and anthropic-sdk-python's tool_use_response.txt (messages
//!   stream with a tool_use block), each for the request the upstream test makes.
//!
//! Needs root (dumpcap on lo), dumpcap (Debian tshark), the scenario venv
//! (tests/scenario/setup.sh) and the chainwatch binary; otherwise it skips, or fails with
//! CHAINWATCH_REQUIRE_E2E=1.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chainwatch_schemas::SemanticEvent;
use serde_json::{Value, json};

mod support;

/// The keys llm_sdk_replay.py gives the SDKs (their common part, which is already key-like).
const KEY_MARKER: &str = "chainwatch-sdk-0000";

#[test]
fn openai_and_anthropic_sdks_see_what_chainwatch_extracts() {
    let test = "openai_and_anthropic_sdks_see_what_chainwatch_extracts";
    let mut missing = Vec::new();
    if support::effective_uid() != Some(0) {
        missing.push("not root (dumpcap captures on lo)".to_string());
    }
    if !support::on_path("dumpcap") {
        missing.push("`dumpcap` is not on PATH (Debian package tshark)".into());
    }
    let python = support::scenario_venv_python();
    if !python.is_file() {
        missing.push(format!("no scenario venv ({}): run tests/scenario/setup.sh as root", python.display()));
    }
    let chainwatch = support::chainwatch_binary();
    if let Err(e) = &chainwatch {
        missing.push(e.clone());
    }
    let corpus = support::corpora_dir().join("llm_sse");
    if !corpus.is_dir() {
        missing.push(format!("corpus {} missing (set CHAINWATCH_CORPORA)", corpus.display()));
    }
    if !missing.is_empty() {
        support::skip_or_fail(test, &missing);
        return;
    }
    let chainwatch = chainwatch.unwrap_or_default();

    let work = std::env::temp_dir().join(format!("cw-llm-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let plan = plan(&corpus, &work);
    let plan_path = work.join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec_pretty(&plan).expect("plan json")).expect("plan");

    // the SDKs and their server; the server's port is known before any call is made
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenario/llm_sdk_replay.py");
    let mut sdk = Command::new(&python)
        .args(["-W", "ignore"])
        .arg(&script)
        .arg(&plan_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting llm_sdk_replay.py");
    let mut sdk_out = BufReader::new(sdk.stdout.take().expect("stdout"));
    let mut line = String::new();
    sdk_out.read_line(&mut line).expect("port line");
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let _ = sdk.kill();
            let mut err = String::new();
            if let Some(mut e) = sdk.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("llm_sdk_replay.py printed {line:?} instead of its port (is the scenario venv current? run tests/scenario/setup.sh):\n{err}")
        });

    // capture that port on lo, and only it: other processes on this machine make connections
    let pcap = work.join("sdk.pcap");
    let mut dumpcap = Command::new("dumpcap")
        .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-P", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting dumpcap");
    let mut dump_err = BufReader::new(dumpcap.stderr.take().expect("dumpcap stderr"));
    let mut dump_log = String::new();
    loop {
        let mut l = String::new();
        if dump_err.read_line(&mut l).unwrap_or(0) == 0 {
            panic!("dumpcap exited before capturing:\n{dump_log}");
        }
        dump_log.push_str(&l);
        if l.contains("Capturing on") {
            break;
        }
    }

    // go: every call, one JSON line each
    sdk.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
    let seen: Vec<Value> = sdk_out
        .lines()
        .map(|l| l.expect("sdk line"))
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("sdk line {l:?}: {e}")))
        .collect();
    let status = sdk.wait().expect("sdk wait");
    let mut sdk_err = String::new();
    if let Some(mut e) = sdk.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut sdk_err);
    }
    assert!(status.success(), "llm_sdk_replay.py failed ({status}):\n{sdk_err}");
    assert_eq!(seen.len(), plan.as_array().map_or(0, Vec::len), "one line per call:\n{sdk_err}");

    // let the last packets reach the capture, then stop it cleanly (SIGINT flushes the file)
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill").args(["-INT", &dumpcap.id().to_string()]).status();
    let _ = std::io::Read::read_to_string(&mut dump_err.into_inner(), &mut dump_log);
    let _ = dumpcap.wait();

    let out = Command::new(&chainwatch).arg("parse").arg("--pcap").arg(&pcap).output().expect("chainwatch parse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chainwatch parse failed:\n{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(KEY_MARKER), "an API key reached chainwatch's output");
        assert!(!text.contains("sk-ant-api03"), "the Anthropic key's prefix reached chainwatch's output");
    }
    let mut events: Vec<SemanticEvent> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line {l}: {e}")))
        .filter(|e: &SemanticEvent| e.llm.is_some())
        .collect();
    events.sort_by_key(|e| e.ts_start_ns);
    assert_eq!(
        events.len(),
        seen.len(),
        "one LLM event per SDK call (capture: {dump_log}; parse: {stderr})"
    );

    for (i, (sdk, ev)) in seen.iter().zip(&events).enumerate() {
        let llm = ev.llm.as_ref().expect("llm");
        let what = format!("call {i} ({} stream={})", sdk["sdk"], sdk["stream"]);
        eprintln!(
            "{what}: sdk sent {} / received {}; chainwatch: {} {:?} -> {:?}, {} messages, tools {:?}, calls {:?}, usage {:?}/{:?}, finish {:?}",
            sdk["sent"],
            sdk["received"],
            ev.kind,
            llm.request_model,
            llm.response_model,
            llm.message_count,
            llm.tool_definitions,
            llm.tool_calls.iter().map(|c| &c.name).collect::<Vec<_>>(),
            llm.input_tokens,
            llm.output_tokens,
            llm.finish_reasons
        );
        let sent = &sdk["sent"];
        let got = &sdk["received"];
        assert_eq!(ev.kind, "llm_call", "{what}");
        assert_eq!(ev.path.as_deref(), sdk["path"].as_str(), "{what}: path");
        assert_eq!(llm.stream, sdk["stream"].as_bool().unwrap_or(false), "{what}: stream flag");
        assert_eq!(llm.provider, if sdk["sdk"] == "anthropic" { "anthropic" } else { "openai_compatible" }, "{what}: provider");
        assert_eq!(llm.request_model.as_deref(), sent["model"].as_str(), "{what}: request model");
        assert_eq!(Some(llm.message_count as u64), sent["messages"].as_u64(), "{what}: message count");
        assert_eq!(json!(llm.tool_definitions), sent["tools"], "{what}: tool definitions");
        assert_eq!(llm.response_model.as_deref(), got["model"].as_str(), "{what}: response model");
        assert_eq!(llm.input_tokens.map(|n| n as u64), got["input_tokens"].as_u64(), "{what}: input tokens");
        assert_eq!(llm.output_tokens.map(|n| n as u64), got["output_tokens"].as_u64(), "{what}: output tokens");
        assert_eq!(llm.finish_reasons, vec![got["finish_reason"].as_str().unwrap_or_default().to_string()], "{what}: finish reason");
        let calls: Vec<Value> = llm
            .tool_calls
            .iter()
            .map(|c| {
                let args: Value = serde_json::from_str(&c.arguments)
                    .unwrap_or_else(|e| panic!("{what}: tool call {} arguments are not JSON ({e}): {}", c.name, c.arguments));
                json!({"name": c.name, "arguments": args})
            })
            .collect();
        assert_eq!(Value::Array(calls), got["tool_calls"], "{what}: tool calls");
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// The calls, in order, with their recorded answers written under `work`.
fn plan(corpus: &Path, work: &Path) -> Value {
    let mut calls = Vec::new();
    for (sdk, cassette) in [
        ("openai", "pydantic-ai-cassettes/test_openai__test_openai_tool_output.yaml"),
        ("anthropic", "pydantic-ai-cassettes/test_anthropic__test_anthropic_tool_output.yaml"),
    ] {
        let path = corpus.join(cassette);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let interactions = doc["interactions"].as_array().cloned().unwrap_or_default();
        assert!(!interactions.is_empty(), "{}: no interactions", path.display());
        for (i, it) in interactions.iter().enumerate() {
            let answer: PathBuf = work.join(format!("{sdk}-{i}.json"));
            std::fs::write(&answer, serde_json::to_vec(&it["response"]["parsed_body"]).expect("answer json")).expect("answer");
            calls.push(json!({
                "sdk": sdk,
                "stream": false,
                "request": it["request"]["parsed_body"],
                "response_file": answer,
            }));
        }
    }
    // openai-python tests/lib/chat/test_completions_streaming.py::test_parse_pydantic_tool
    calls.push(json!({
        "sdk": "openai",
        "stream": true,
        "request": {
            "model": "gpt-4o-2024-08-06",
            "messages": [{"role": "user", "content": "What's the weather like in Edinburgh?"}],
            "tools": [{"type": "function", "function": {"name": "GetWeatherArgs", "strict": true, "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "country": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "country", "units"],
                "additionalProperties": false
            }}}],
            "stream_options": {"include_usage": true}
        },
        "response_file": corpus.join("openai-python/c6aa7e397b7123c3501f25df3a05d4daf7e8ad6d61ffa406ab5361fe36a8d5b1.bin"),
    }));
    // anthropic-sdk-python tests/lib/streaming: the tool_use fixture's call
    calls.push(json!({
        "sdk": "anthropic",
        "stream": true,
        "request": {
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [{"name": "get_weather", "description": "Get the weather at a specific location",
                       "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]
        },
        "response_file": corpus.join("anthropic-sdk-python/tool_use_response.txt"),
    }));
    Value::Array(calls)
}
