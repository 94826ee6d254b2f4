//! Integration tests (root, real eBPF): TLS plaintext through the per-process OpenSSL uprobes,
//! with CPython's ssl module (SSL_*_ex) and with curl (SSL_read/SSL_write), against a local
//! python TLS server with a self-signed certificate made by `openssl req`. The plaintext carries
//! the socket's connection id, and no ciphertext is emitted as data for that connection.

mod ebpf_support;

use chainwatch_probe::events::{ConnectionEvent, Direction, ProbeEvent, Role};
use ebpf_support::*;

const TLS_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = b'{"model":"claude","messages":[{"role":"user","content":"secret plaintext"}]}'
req = (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port))
s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
s.sendall(req)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    got += chunk
s.close()
open(out, "wb").write(req + b"\n---\n" + got)
"#;

fn the_connection(events: &[ProbeEvent], tgid: u32, port: u16) -> ConnectionEvent {
    let conns: Vec<_> =
        opens(events, tgid).into_iter().filter(|c| c.tuple.is_some_and(|t| t.remote.port() == port)).collect();
    assert_eq!(conns.len(), 1, "one connection to the TLS server expected, got {conns:?}");
    conns[0].clone()
}

fn assert_no_ciphertext(events: &[ProbeEvent], conn: &ConnectionEvent) {
    assert_eq!(data_count(events, conn, false), 0, "ciphertext of a TLS connection was emitted as data");
    assert!(
        !events.iter().any(|e| matches!(e, ProbeEvent::Gap(g) if g.id == conn.id && !g.tls)),
        "ciphertext of a TLS connection was reported as a gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ssl_plaintext_is_captured_under_the_socket_connection() {
    require_root();
    let dir = temp_dir("tls-py");
    let (cert, key) = self_signed_cert(&dir);
    let server = start_server(PYTHON, &["-c", HTTP_SERVER, &cert, &key]);
    let out = dir.join("client.out");
    let port = server.port.to_string();
    let (events, root, status, loss) =
        capture(&[PYTHON, "-c", TLS_CLIENT, &port, &cert, out.to_str().unwrap()], config()).await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "client failed: {status:?}");
    let written = std::fs::read(&out).expect("client output");
    let sep = b"\n---\n";
    let at = written.windows(sep.len()).position(|w| w == sep).expect("separator");
    let (sent, received) = (&written[..at], &written[at + sep.len()..]);

    let conn = the_connection(&events, root, server.port);
    assert_eq!(conn.role, Role::Client);
    let (egress, g1) = stream(&events, &conn, Direction::Egress, true);
    let (ingress, g2) = stream(&events, &conn, Direction::Ingress, true);
    assert_eq!((g1, g2), (0, 0));
    assert_eq!(egress, sent, "TLS plaintext request differs");
    assert_eq!(ingress, received, "TLS plaintext response differs");
    assert!(received.starts_with(b"HTTP/1.1 200"));
    assert_no_ciphertext(&events, &conn);
    assert_eq!(loss.unpaired_ssl_calls, 0, "{loss:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_tls_plaintext_is_captured_under_the_socket_connection() {
    require_root();
    let dir = temp_dir("tls-curl");
    let (cert, key) = self_signed_cert(&dir);
    let server = start_server(PYTHON, &["-c", HTTP_SERVER, &cert, &key]);
    let body_file = dir.join("body.json");
    let body = br#"{"query":"select * from customers","limit":10000}"#;
    std::fs::write(&body_file, body).unwrap();
    let headers = dir.join("headers.txt");
    let resp = dir.join("resp.txt");
    let url = format!("https://127.0.0.1:{}/upload", server.port);
    let data_arg = format!("@{}", body_file.display());
    let (events, root, status, loss) = capture(
        &[
            "curl", "-sS", "--http1.1", "--cacert", &cert, "-H", "Content-Type: application/json",
            "--data-binary", &data_arg, "-D", headers.to_str().unwrap(), "-o", resp.to_str().unwrap(), &url,
        ],
        config(),
    )
    .await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "curl failed: {status:?}");

    let conn = the_connection(&events, root, server.port);
    let (egress, g1) = stream(&events, &conn, Direction::Egress, true);
    let (ingress, g2) = stream(&events, &conn, Direction::Ingress, true);
    assert_eq!((g1, g2), (0, 0));
    assert!(egress.starts_with(b"POST /upload HTTP/1.1\r\n"), "egress: {:?}", String::from_utf8_lossy(&egress));
    assert!(egress.ends_with(body), "the request body is the end of the plaintext");
    let mut expected = std::fs::read(&headers).unwrap();
    expected.extend(std::fs::read(&resp).unwrap());
    assert_eq!(ingress, expected, "TLS plaintext response differs from curl's headers + body");
    assert_no_ciphertext(&events, &conn);
    assert_eq!(loss.unpaired_ssl_calls, 0, "{loss:?}");
}

/// An unwatched process doing TLS pays nothing for TLS or socket capture: the probe's SSL and
/// libc programs never run for it (per-process uprobes) and no syscall tracepoint is attached
/// (libc mode, the default), while the probe is watching another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatched_tls_process_never_runs_the_ssl_programs() {
    require_root();
    let _stats = chainwatch_probe::ebpf::enable_bpf_stats().expect("BPF_ENABLE_STATS");
    let dir = temp_dir("tls-unwatched");
    let (cert, key) = self_signed_cert(&dir);
    let server = start_server(PYTHON, &["-c", HTTP_SERVER, &cert, &key]);
    let mut probe = chainwatch_probe::ebpf::Probe::start(config()).expect("probe");
    let _rx = probe.events();
    // watch something else: a python that has libssl mapped and, once it said so, sleeps
    // without making a call (watched only then, so its start-up reads do not count)
    let mut other = std::process::Command::new(PYTHON)
        .args(["-c", "import ssl, sys, time; print('ready', flush=True); time.sleep(30)"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(other.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    probe.watch_pid(other.id()).expect("watch");
    let url = format!("https://127.0.0.1:{}/unwatched", server.port);
    let status = std::process::Command::new("curl")
        .args(["-sS", "--http1.1", "--cacert", &cert, "-d", "x", "-o", "/dev/null", &url])
        .status()
        .expect("curl");
    assert!(status.success());
    let stats = probe.program_stats().expect("stats");
    assert_eq!(probe.tls_attached_pids().unwrap(), vec![other.id()], "only the watched process has SSL uprobes");
    assert_eq!(probe.libc_attached_pids().unwrap(), vec![other.id()], "only the watched process has libc uprobes");
    let _ = other.kill();
    let _ = other.wait();
    let runs = |prefix: &str| -> u64 { stats.iter().filter(|s| s.name.starts_with(prefix)).map(|s| s.run_count).sum() };
    // curl's fork and exec ran the process programs: the statistics count
    assert!(runs("raw_") > 0, "statistics are not counting: {stats:?}");
    assert_eq!(runs("ssl_"), 0, "SSL programs ran for an unwatched process: {stats:?}");
    assert_eq!(runs("libc_"), 0, "libc programs ran for an unwatched process: {stats:?}");
    assert!(!stats.iter().any(|s| s.name.starts_with("tp_")), "syscall tracepoints loaded in libc mode: {stats:?}");
}

/// The watched process is the server: accept() gives a Server connection, and the TLS
/// plaintext of the request (ingress) and response (egress) is captured through SSL_accept
/// pairing, with no ciphertext as data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_tls_server_side_is_captured() {
    require_root();
    let dir = temp_dir("tls-server");
    let (cert, key) = self_signed_cert(&dir);
    let port = free_port();
    let ready = dir.join("ready");
    let server_script = format!(
        "import socket, ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\nctx.load_cert_chain({cert:?}, {key:?})\n\
         srv = socket.create_server(('127.0.0.1', {port}))\nsrv.settimeout(50)\nopen({ready:?}, 'w').close()\nc, _ = srv.accept()\ns = ctx.wrap_socket(c, server_side=True)\n\
         req = b''\nwhile not req.endswith(b'\\r\\n\\r\\n'):\n    req += s.recv(4096)\n\
         s.sendall(b'HTTP/1.1 204 No Content\\r\\nConnection: close\\r\\n\\r\\n')\ns.close()\n"
    );
    let client_cert = cert.clone();
    let client = std::thread::spawn(move || {
        // wait for the watched server to listen, then make one unwatched TLS request; the wait
        // is long because a loaded CI machine (and the kernel still closing uprobes of earlier
        // tests) can take more than 10 s to start python under the probe
        for _ in 0..1000 {
            if ready.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::process::Command::new("curl")
            .args(["-sS", "--http1.1", "--cacert", &client_cert, "-o", "/dev/null"])
            .arg(format!("https://127.0.0.1:{port}/served"))
            .status()
    });
    let (events, root, status, loss) = capture(&[PYTHON, "-c", &server_script], config()).await;
    let _ = client.join();
    assert_eq!(status.map(|s| s >> 8), Some(0), "server failed: {status:?}");
    let accepted: Vec<_> = opens(&events, root).into_iter().filter(|c| c.role == Role::Server).collect();
    assert_eq!(accepted.len(), 1, "one accepted connection: {accepted:?}");
    let conn = &accepted[0];
    assert_eq!(conn.tuple.map(|t| t.local.port()), Some(port));
    let (ingress, _) = stream(&events, conn, Direction::Ingress, true);
    let (egress, _) = stream(&events, conn, Direction::Egress, true);
    assert!(ingress.starts_with(b"GET /served HTTP/1.1\r\n"), "{:?}", String::from_utf8_lossy(&ingress));
    assert_eq!(egress, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_vec());
    assert_no_ciphertext(&events, conn);
    assert_eq!(loss.unpaired_ssl_calls, 0);
}
