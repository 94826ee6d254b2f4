//! Detector throughput on realistic JSON bodies (criterion, Throughput::Bytes): an LLM chat
//! request with messages and a DB-rows-like JSON with some PII. Reports MB/s per core for the
//! pattern detectors together (PII + secrets, one pass each with prefilters), and for
//! everything `Detector::scan` does (plus the prompt-injection rules). Also prints the numbers.

use std::hint::black_box;
use std::time::Instant;

use chainwatch_parser_workers::detect::{Detector, PatternScanner};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// An OpenAI-style chat request of ~`target` bytes: system prompt, turns of prose with the
/// odd number, a tool result with JSON inside, one email and one phone per few turns.
fn chat_request(target: usize) -> Vec<u8> {
    let prose = [
        "Can you summarise the quarterly report for the board? Focus on revenue growth, churn and the 3 biggest risks.",
        "Sure. Revenue grew 14% quarter over quarter to $4.2M, driven by the enterprise tier; churn fell to 2.1%.",
        "The main risks are supplier concentration, the delayed EU launch (now Q3 2025) and hiring in the support team.",
        "Please draft an email to the CFO with these points and ask for the updated forecast by Friday at 10:30.",
        "Here is the draft:\\n\\nHi Maria,\\n\\nThanks for the numbers. Could you send the updated forecast by Friday?\\n\\nBest, Tom",
    ];
    let mut msgs = vec![r#"{"role":"system","content":"You are a helpful assistant for Acme Corp. Answer concisely, cite sources, never reveal internal data."}"#.to_string()];
    let mut i = 0usize;
    let mut size = 200;
    while size < target {
        let role = if i.is_multiple_of(2) { "user" } else { "assistant" };
        let mut content = prose[i % prose.len()].to_string();
        if i % 7 == 3 {
            content.push_str(&format!(" Contact: maria.lopez{i}@acme-corp.example, +1 415 555 {:04}.", i % 10_000));
        }
        if i % 11 == 5 {
            content.push_str(r#" Tool result: {\"id\": 18273645, \"status\": \"ok\", \"items\": [1, 2, 3], \"updated_at\": \"2024-05-01T12:00:00Z\"}"#);
        }
        let m = format!(r#"{{"role":"{role}","content":"{content}"}}"#);
        size += m.len() + 1;
        msgs.push(m);
        i += 1;
    }
    format!(r#"{{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":1024,"stream":true,"messages":[{}]}}"#, msgs.join(",")).into_bytes()
}

/// A JSON array of customer rows (as an API or a SQL-to-JSON layer returns them).
fn db_rows(target: usize) -> Vec<u8> {
    let mut rows = Vec::new();
    let mut size = 2;
    let mut i = 0u64;
    while size < target {
        let card = if i.is_multiple_of(10) { "4111 1111 1111 1111" } else { "" };
        let r = format!(
            r#"{{"id":{},"uuid":"6f1c{:04x}-9b2e-4c1a-8d7e-2a9f{:08x}","name":"Customer {}","email":"customer{}@example.com","phone":"(415) 555-{:04}","created_at":"2024-03-{:02} 10:{:02}:00","balance":{}.{:02},"country":"US","card":"{}","notes":"prefers email contact; account in good standing"}}"#,
            i,
            i % 65536,
            i * 7919,
            i,
            i,
            i % 10_000,
            1 + i % 28,
            i % 60,
            i * 37 % 100_000,
            i % 100,
            card
        );
        size += r.len() + 1;
        rows.push(r);
        i += 1;
    }
    format!("[{}]", rows.join(",")).into_bytes()
}

/// Nanoseconds this thread has run on a CPU (/proc/thread-self/schedstat), so the figure is
/// per core even on a busy shared machine; None where that file does not exist.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// (MB/s by wall clock, MB/s per CPU-second of this thread).
fn mb_per_s(bytes: usize, f: impl Fn()) -> (f64, Option<f64>) {
    f();
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < 1.5 {
        f();
        n += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let total = (bytes * n) as f64 / 1e6;
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => Some(total / ((b - a) as f64 / 1e9)),
        _ => None,
    };
    (total / wall, cpu)
}

fn show((wall, cpu): (f64, Option<f64>)) -> String {
    match cpu {
        Some(c) => format!("{c:.0} MB/s per CPU-second ({wall:.0} MB/s wall clock)"),
        None => format!("{wall:.0} MB/s wall clock"),
    }
}

fn bench(c: &mut Criterion) {
    let detector = Detector::new(b"bench-key");
    let patterns = PatternScanner::new();
    let bodies = [("chat_request_256k", chat_request(256 * 1024)), ("db_rows_256k", db_rows(256 * 1024))];
    for (name, body) in &bodies {
        let p = mb_per_s(body.len(), || {
            black_box(patterns.scan(black_box(body)));
        });
        let q = mb_per_s(body.len(), || {
            black_box(detector.scan_patterns(black_box(body), "request.body"));
        });
        let a = mb_per_s(body.len(), || {
            black_box(detector.scan(black_box(body), "request.body"));
        });
        println!("detectors/{name}: {} bytes, one thread", body.len());
        println!("  pattern pass (PII + secrets):                {}", show(p));
        println!("  + fingerprints and aggregation (scan_patterns): {}", show(q));
        println!("  + prompt-injection rules (Detector::scan):      {}", show(a));
        let mut g = c.benchmark_group("detectors");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{name}/patterns"), |b| b.iter(|| black_box(patterns.scan(black_box(body)))));
        g.bench_function(format!("{name}/scan_patterns"), |b| b.iter(|| black_box(detector.scan_patterns(black_box(body), "request.body"))));
        g.bench_function(format!("{name}/scan_all"), |b| b.iter(|| black_box(detector.scan(black_box(body), "request.body"))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
