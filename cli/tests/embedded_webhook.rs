//! The embedded pipeline's webhook hook: `chainwatch demo` with `policy.webhook.url` (and the
//! bearer token from the environment) POSTs each violation's OCSF JSON to a real HTTP server on
//! 127.0.0.1 before it exits, and the token never shows up in its output, even at trace level.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;

const TOKEN: &str = "embedded-hook-token-93e1";

/// One HTTP/1.1 request off a keep-alive connection: (request head, body); None at EOF.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Answers 200 to every request on every connection; sends what it got down `seen`.
fn serve(listener: TcpListener, seen: mpsc::Sender<(String, Vec<u8>)>) {
    for stream in listener.incoming().flatten() {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            while let Some(request) = read_request(&mut reader) {
                let _ = seen.send(request);
                if writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                    return;
                }
            }
        });
    }
}

#[test]
fn demo_posts_every_violation_to_the_webhook() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || serve(listener, tx));

    let dir = std::env::temp_dir().join(format!("cw-embedded-webhook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["--log", "trace", "demo", "--format", "json", "--report", "report.html"])
        .current_dir(&dir)
        .env_remove("CHAINWATCH__BUS__KIND")
        .env("CHAINWATCH__POLICY__WEBHOOK__URL", format!("http://{addr}/siem"))
        .env("CHAINWATCH__POLICY__WEBHOOK__BEARER_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN), "the token was printed");

    let requests: Vec<(String, Vec<u8>)> = rx.try_iter().collect();
    assert_eq!(requests.len(), 2, "the seed scenario's two violations: {requests:?}");
    for (head, body) in &requests {
        assert!(head.starts_with("POST /siem HTTP/1.1"), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("authorization: bearer {}", TOKEN.to_ascii_lowercase())), "{head}");
        let finding: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["metadata"]["product"]["name"], "chainwatch", "{finding}");
    }
    let titles: Vec<String> = requests
        .iter()
        .map(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).unwrap()["finding_info"]["title"].as_str().unwrap().to_string())
        .collect();
    assert!(titles.contains(&"PII uploaded to an unauthorized external destination".to_string()), "{titles:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
