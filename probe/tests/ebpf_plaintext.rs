//! Integration test (root, real eBPF): a python3 child POSTs plaintext HTTP/1.1 to a local
//! http.server; the captured bytes equal what was sent and received, with the right tuple,
//! role, direction and process; in both socket-call hook modes (libc uprobes, the default
//! here, and the syscall tracepoints).

mod ebpf_support;

use chainwatch_probe::capture::run_capture_with;
use chainwatch_probe::ebpf::{ProbeConfig, SyscallHooks};
use chainwatch_probe::events::{Direction, ProbeEvent, Role};
use ebpf_support::*;

/// The client sends REQUEST as-is and writes what it received to argv[2].
const CLIENT: &str = r#"
import socket, sys
port = int(sys.argv[1])
body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body
s = socket.create_connection(("127.0.0.1", port))
s.sendall(req)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    got += chunk
s.close()
open(sys.argv[2], "wb").write(req + b"\n---\n" + got)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_post_is_captured_exactly() {
    plaintext_post_captured_with(config(), "plain").await;
}

/// The same POST with `probe.syscall_hooks = "tracepoints"`: the global syscall tracepoints
/// see the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_post_is_captured_exactly_with_tracepoints() {
    plaintext_post_captured_with(ProbeConfig { syscall_hooks: SyscallHooks::Tracepoints, ..config() }, "plain-tp").await;
}

/// Each mode loads its own socket-call programs and not the other's: in libc mode no syscall
/// tracepoint is attached (what keeps unwatched processes off the traced syscall path), and the
/// libc uprobes are attached to the watched command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hook_mode_loads_only_its_programs() {
    require_root();
    for (hooks, expected) in [(SyscallHooks::Auto, SyscallHooks::Libc), (SyscallHooks::Libc, SyscallHooks::Libc), (SyscallHooks::Tracepoints, SyscallHooks::Tracepoints)] {
        let cmd: Vec<String> = ["/bin/sleep", "2"].iter().map(|s| s.to_string()).collect();
        let mut cap = run_capture_with(&cmd, ProbeConfig { syscall_hooks: hooks, ..config() }).expect("starting the probe");
        let probe = cap.probe();
        assert_eq!(probe.syscall_hooks().expect("hooks"), expected, "{hooks:?}");
        let loaded: Vec<String> = probe.program_stats().expect("program stats").into_iter().map(|p| p.name).collect();
        let tracepoints = loaded.iter().filter(|n| n.starts_with("tp_")).count();
        let libc = loaded.iter().filter(|n| n.starts_with("libc_")).count();
        if expected == SyscallHooks::Libc {
            assert_eq!(tracepoints, 0, "{hooks:?}: syscall tracepoint programs loaded: {loaded:?}");
            assert_eq!(libc, 12, "{hooks:?}: libc programs: {loaded:?}");
            // the exec hold keeps sleep stopped until its uprobes are attached
            let root = cap.root_pid();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !cap.probe().libc_attached_pids().expect("pids").contains(&root) {
                assert!(std::time::Instant::now() < deadline, "no libc uprobes on the watched command");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        } else {
            assert_eq!(libc, 0, "{hooks:?}: libc programs loaded: {loaded:?}");
            assert_eq!(tracepoints, 23, "{hooks:?}: syscall tracepoint programs: {loaded:?}");
            assert!(cap.probe().libc_attached_pids().expect("pids").is_empty());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), cap.collect()).await.expect("sleep ends");
    }
}

async fn plaintext_post_captured_with(config: ProbeConfig, tag: &str) {
    require_root();
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let dir = temp_dir(tag);
    let out = dir.join("client.out");
    let port = server.port.to_string();
    let (events, root, status, loss) =
        capture(&[PYTHON, "-c", CLIENT, &port, out.to_str().unwrap()], config).await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "client failed: {status:?}");
    let written = std::fs::read(&out).expect("client output");
    let sep = b"\n---\n";
    let at = written.windows(sep.len()).position(|w| w == sep).expect("separator");
    let (sent, received) = (&written[..at], &written[at + sep.len()..]);

    // every event belongs to the command's process
    assert!(events.iter().all(|e| e.tgid() == root), "events of other processes leaked in");
    let conns: Vec<_> = opens(&events, root)
        .into_iter()
        .filter(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port))
        .collect();
    assert_eq!(conns.len(), 1, "one connection to the server expected, got {conns:?}");
    let conn = &conns[0];
    let tuple = conn.tuple.unwrap();
    assert_eq!(tuple.remote, format!("127.0.0.1:{}", server.port).parse().unwrap());
    assert_eq!(tuple.local.ip().to_string(), "127.0.0.1");
    assert_eq!(conn.role, Role::Client);

    let (egress, eg_gap) = stream(&events, conn, Direction::Egress, false);
    let (ingress, in_gap) = stream(&events, conn, Direction::Ingress, false);
    assert_eq!((eg_gap, in_gap), (0, 0));
    assert_eq!(egress, sent, "captured request differs from what was sent");
    assert_eq!(ingress, received, "captured response differs from what was received");
    assert!(received.starts_with(b"HTTP/1.1 200"));
    assert_eq!(data_count(&events, conn, true), 0, "no TLS on a plaintext connection");
    assert!(events.iter().any(|e| matches!(e, ProbeEvent::Connection(c) if c.id == conn.id && c.kind == chainwatch_probe::events::ConnectionEventKind::Close)));
    assert_eq!(loss.ring_full_events + loss.map_full + loss.read_faults, 0, "losses: {loss:?}");
}

/// IPv6 server on ::1; the client sends with sendmsg (three iovecs) and writev, receives with
/// recvmsg and readv: the iovec paths and the IPv6 tuple.
const V6_SERVER: &str = r#"
import socket
srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv.bind(("::1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    got = b""
    while not got.endswith(b"END"):
        chunk = c.recv(4096)
        if not chunk: break
        got += chunk
    c.sendall(b"ACK:" + str(len(got)).encode() + b":" + got[:16])
    c.close()
"#;

const V6_CLIENT: &str = r#"
import socket, sys, os
port = int(sys.argv[1])
s = socket.create_connection(("::1", port))
parts = [b"first-part|", b"second-part|", b"third-part|"]
n = s.sendmsg(parts)
assert n == sum(map(len, parts))
os.writev(s.fileno(), [b"writev-a|", b"writev-bEND"])
buf1, buf2 = bytearray(5), bytearray(200)
got = s.recvmsg_into([buf1, buf2])[0]
rest = b""
while True:
    b = bytearray(100)
    k = os.readv(s.fileno(), [b])
    if k == 0: break
    rest += bytes(b[:k])
s.close()
open(sys.argv[2], "wb").write((bytes(buf1) + bytes(buf2))[:got] + rest)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_and_iovec_calls_are_captured_exactly() {
    require_root();
    let server = start_server(PYTHON, &["-c", V6_SERVER]);
    let dir = temp_dir("v6");
    let out = dir.join("client.out");
    let port = server.port.to_string();
    let (events, root, status, _loss) = capture(&[PYTHON, "-c", V6_CLIENT, &port, out.to_str().unwrap()], config()).await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "client failed: {status:?}");
    let received = std::fs::read(&out).expect("client output");

    let conn = opens(&events, root)
        .into_iter()
        .find(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port))
        .expect("the IPv6 connection");
    let t = conn.tuple.unwrap();
    assert_eq!(t.remote, format!("[::1]:{}", server.port).parse().unwrap());
    assert_eq!(t.local.ip().to_string(), "::1");
    let (egress, _) = stream(&events, &conn, Direction::Egress, false);
    let (ingress, _) = stream(&events, &conn, Direction::Ingress, false);
    assert_eq!(egress, b"first-part|second-part|third-part|writev-a|writev-bEND".to_vec());
    assert_eq!(ingress, received);
    assert!(received.starts_with(b"ACK:"));
}
