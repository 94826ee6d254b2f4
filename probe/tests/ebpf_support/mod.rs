//! Shared helpers of the eBPF integration tests: local servers, running a command
//! under the real probe, and reassembling captured streams.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use chainwatch_probe::capture::run_capture_with;
use chainwatch_probe::ebpf::{LossCounters, ProbeConfig};
use chainwatch_probe::events::{ConnectionEvent, ConnectionEventKind, Direction, ProbeEvent};

pub const PYTHON: &str = "/usr/bin/python3";

/// These tests load real eBPF programs: say so loudly when not root. Also arms the binary's
/// watchdog.
pub fn require_root() {
    arm_watchdog();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the eBPF tests load kernel programs and must run as root (euid is {euid})");
}

/// A whole eBPF test binary gets this long. These tests stop and continue real processes and
/// join kernel-facing threads: a bug there hangs rather than fails, and one hung test must
/// fail CI with its name instead of eating CI's time limit.
const BINARY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

fn arm_watchdog() {
    static ARMED: std::sync::Once = std::sync::Once::new();
    ARMED.call_once(|| {
        std::thread::spawn(|| {
            std::thread::sleep(BINARY_DEADLINE);
            eprintln!(
                "eBPF test binary still running after {} s: a test hangs (the harness named it above); aborting",
                BINARY_DEADLINE.as_secs()
            );
            std::process::abort();
        });
    });
}

/// A server process that prints its port on the first stdout line; killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(program: &str, args: &[&str]) -> Server {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting server {program}: {e}"));
    let stdout = child.stdout.take().expect("server stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("server port line");
    let port = line.trim().parse().unwrap_or_else(|_| panic!("server printed {line:?} instead of a port"));
    Server { child, port }
}

/// An HTTP/1.1 server (python http.server) answering POST with a fixed body, on 127.0.0.1:0.
pub const HTTP_SERVER: &str = r#"
import http.server, sys, ssl
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = b""
        while len(body) < n:
            chunk = self.rfile.read(n - len(body))
            if not chunk: break
            body += chunk
        resp = b'{"ok":true,"received":%d}' % len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(resp)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(resp)
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// Run `cmd` under a fresh probe and return every event of its tree, plus the loss counters.
pub async fn capture(cmd: &[&str], config: ProbeConfig) -> (Vec<ProbeEvent>, u32, Option<i32>, LossCounters) {
    require_root();
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let mut cap = run_capture_with(&cmd, config).unwrap_or_else(|e| panic!("starting the probe failed: {e}"));
    let root = cap.root_pid();
    let events = tokio::time::timeout(std::time::Duration::from_secs(60), cap.collect())
        .await
        .expect("the captured command did not finish within 60 s");
    let loss = cap.probe().loss_counters().expect("loss counters");
    (events, root, cap.exit_status(), loss)
}

/// The connection-open events of a process.
pub fn opens(events: &[ProbeEvent], tgid: u32) -> Vec<ConnectionEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            ProbeEvent::Connection(c) if c.kind == ConnectionEventKind::Open && c.id.tgid == tgid => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// One direction of one connection, reassembled by position; panics on holes or overlaps.
/// Returns (bytes, gap bytes reported).
pub fn stream(events: &[ProbeEvent], conn: &ConnectionEvent, dir: Direction, tls: bool) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut gaps = 0u64;
    let mut next = 0u64;
    for e in events {
        match e {
            ProbeEvent::Data(d) if d.id == conn.id && d.direction == dir && d.tls == tls => {
                assert_eq!(d.position, next, "data at {} but {} expected ({dir:?}, tls={tls})", d.position, next);
                out.extend_from_slice(&d.payload);
                next += d.payload.len() as u64;
            }
            ProbeEvent::Gap(g) if g.id == conn.id && g.direction == dir && g.tls == tls => {
                assert_eq!(g.position, next, "gap at {} but {} expected", g.position, next);
                gaps += g.len;
                next += g.len;
            }
            _ => {}
        }
    }
    (out, gaps)
}

/// Data events (any direction) of a connection with the given tls flag.
pub fn data_count(events: &[ProbeEvent], conn: &ConnectionEvent, tls: bool) -> usize {
    events.iter().filter(|e| matches!(e, ProbeEvent::Data(d) if d.id == conn.id && d.tls == tls)).count()
}

/// Make a self-signed certificate for 127.0.0.1 with openssl req; returns (cert, key) paths.
pub fn self_signed_cert(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running openssl req");
    assert!(status.success(), "openssl req failed");
    (cert.display().to_string(), key.display().to_string())
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("chainwatch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn config() -> ProbeConfig {
    ProbeConfig { node: "test-node".into(), ..ProbeConfig::default() }
}
