//! `chainwatch capture -- CMD` as a user runs it (root: it loads the real eBPF programs):
//! JSON lines of the command's process, connection and bytes, readable by `JsonRecord`.

use std::process::Command;

use chainwatch_schemas::{ConnRole, ConnectionEventKind, Direction, JsonRecord, ProcessEventKind, SegmentKind};

#[test]
fn capture_prints_the_commands_process_connection_and_bytes() {
    let dir = std::env::temp_dir().join(format!("cw-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from the server\n").unwrap();
    let server = chainwatch_testkit::HttpServer::start(&dir);
    let port = server.port;
    let url = format!("http://127.0.0.1:{port}/hello.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["capture", "--", "curl", "-s", "-o", "/dev/null", &url])
        .current_dir(&dir)
        .output()
        .unwrap();
    drop(server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "capture failed: {stderr}");
    let records: Vec<JsonRecord> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| JsonRecord::from_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();

    let exec = records.iter().find_map(|r| match r {
        JsonRecord::ProcessEvent(p) if p.kind == ProcessEventKind::Exec && p.comm == "curl" => Some(p),
        _ => None,
    });
    let exec = exec.unwrap_or_else(|| panic!("no exec of curl in {records:?}"));
    assert!(exec.argv.contains(&url), "{:?}", exec.argv);
    let connect = records
        .iter()
        .find_map(|r| match r {
            JsonRecord::ConnectionEvent(c) if c.kind == ConnectionEventKind::Connect => Some(c),
            _ => None,
        })
        .expect("a connect");
    assert_eq!(connect.tgid, exec.tgid);
    assert_eq!(connect.role, ConnRole::Client);
    assert_eq!(connect.tuple.as_ref().map(|t| t.remote_port), Some(i32::from(port)));
    let bytes = |dir: Direction| -> Vec<u8> {
        records
            .iter()
            .filter_map(|r| match r {
                JsonRecord::RawSegment(s) if s.conn_id == connect.conn_id && s.direction == dir => {
                    assert_eq!(s.kind, SegmentKind::Data);
                    Some(s.payload.clone())
                }
                _ => None,
            })
            .flatten()
            .collect()
    };
    let sent = bytes(Direction::Egress);
    let received = bytes(Direction::Ingress);
    assert!(sent.starts_with(b"GET /hello.txt HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&sent));
    assert!(received.starts_with(b"HTTP/1.0 200 OK\r\n"), "{}", String::from_utf8_lossy(&received));
    assert!(received.ends_with(b"hello from the server\n"));
    assert!(records.iter().any(|r| matches!(r, JsonRecord::ConnectionEvent(c) if c.kind == ConnectionEventKind::Close && c.conn_id == connect.conn_id)));
    assert!(records.iter().any(|r| matches!(r, JsonRecord::ProcessEvent(p) if p.kind == ProcessEventKind::Exit && p.tgid == exec.tgid && p.exit_code == Some(0))));
    let _ = std::fs::remove_dir_all(dir);
}
