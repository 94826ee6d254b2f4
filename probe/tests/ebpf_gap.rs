//! Integration test (root, real eBPF): a 1 MiB request body sent in one call is captured up
//! to the per-call cap (256 KiB) in chunks of at most 16 KiB, and the rest is one GAP with the
//! exact byte count; the truncation is counted.

mod ebpf_support;

use chainwatch_probe::events::{Direction, GapReason, ProbeEvent, DEFAULT_CALL_CAP, MAX_CHUNK};
use ebpf_support::*;

const BIG_CLIENT: &str = r#"
import socket, sys
port = int(sys.argv[1])
body = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
head = b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(head)
s.sendall(body)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    got += chunk
s.close()
sys.exit(0 if b'"received":1048576' in got else 3)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_body_is_captured_up_to_the_cap_and_the_rest_is_an_exact_gap() {
    require_root();
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let port = server.port.to_string();
    let (events, root, status, loss) = capture(&[PYTHON, "-c", BIG_CLIENT, &port], config()).await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "client failed: {status:?}");

    let body: Vec<u8> = (0..1usize << 20).map(|i| ((i * 7 + 3) % 251) as u8).collect();
    let head = format!("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n", body.len());
    let conn = opens(&events, root)
        .into_iter()
        .find(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port))
        .expect("the connection");

    let (egress, gap_bytes) = stream(&events, &conn, Direction::Egress, false);
    let cap = DEFAULT_CALL_CAP as usize;
    let mut expected = head.as_bytes().to_vec();
    expected.extend_from_slice(&body[..cap]);
    assert_eq!(egress.len(), expected.len());
    assert!(egress == expected, "captured bytes differ from the sent head + first 256 KiB");
    assert_eq!(gap_bytes, (body.len() - cap) as u64, "the gap must be the exact uncaptured count");

    let gaps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ProbeEvent::Gap(g) if g.id == conn.id => Some(g.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].reason, GapReason::CallCap);
    assert_eq!(gaps[0].position, (head.len() + cap) as u64);
    // every data event is a chunk of at most 16 KiB that knows the length of its call
    for e in &events {
        if let ProbeEvent::Data(d) = e
            && d.id == conn.id
            && d.direction == Direction::Egress
            && d.position >= head.len() as u64
        {
            assert!(d.payload.len() <= MAX_CHUNK);
            assert_eq!(d.call_len, body.len() as u64);
        }
    }
    assert_eq!(loss.truncated_calls, 1, "{loss:?}");
    assert_eq!(loss.truncated_bytes, (body.len() - cap) as u64);
    assert_eq!(loss.ring_full_events, 0);
}

/// Under load nothing is lost silently: 32 MiB sent in 64 KiB calls on one connection is
/// accounted byte for byte as captured data plus explicit gaps (ring-full gaps included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_under_load_is_captured_or_an_explicit_gap() {
    require_root();
    const SINK: &str = r#"
import socket
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    n = 0
    while True:
        b = c.recv(1 << 20)
        if not b: break
        n += len(b)
    c.close()
"#;
    const LOAD: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
block = bytes(range(256)) * 256
for _ in range(512):
    s.sendall(block)
s.close()
"#;
    let sink = start_server(PYTHON, &["-c", SINK]);
    let port = sink.port.to_string();
    let (events, root, status, loss) = capture(&[PYTHON, "-c", LOAD, &port], config()).await;
    assert_eq!(status.map(|s| s >> 8), Some(0));
    let conn = opens(&events, root)
        .into_iter()
        .find(|c| c.tuple.is_some_and(|t| t.remote.port() == sink.port))
        .expect("the connection");
    let (bytes, gaps) = stream(&events, &conn, Direction::Egress, false);
    assert_eq!(bytes.len() as u64 + gaps, 512 * 65536, "captured + gaps must be every byte sent ({loss:?})");
    assert_pattern(&events, &conn);
    eprintln!("captured {} bytes, {} in gaps, losses {loss:?}", bytes.len(), gaps);
}

/// The same with a ring buffer far too small: the kernel counts what the ring refused and
/// userspace turns every missing range into an explicit ring-full GAP, so the accounting
/// still adds up to every byte sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ring_becomes_counted_explicit_gaps() {
    require_root();
    const SINK: &str = r#"
import socket
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    while c.recv(1 << 20): pass
    c.close()
"#;
    const LOAD: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
block = bytes(range(256)) * 256
for _ in range(512):
    s.sendall(block)
s.close()
"#;
    let sink = start_server(PYTHON, &["-c", SINK]);
    let port = sink.port.to_string();
    let cfg = chainwatch_probe::ebpf::ProbeConfig { ring_buffer_bytes: 64 * 1024, ..config() };
    let (events, root, status, loss) = capture(&[PYTHON, "-c", LOAD, &port], cfg).await;
    assert_eq!(status.map(|s| s >> 8), Some(0));
    let conn = opens(&events, root)
        .into_iter()
        .find(|c| c.tuple.is_some_and(|t| t.remote.port() == sink.port))
        .expect("the connection open event (first in an empty ring)");
    let (bytes, gaps) = stream(&events, &conn, Direction::Egress, false);
    eprintln!("captured {} bytes, {} in gaps, losses {loss:?}", bytes.len(), gaps);
    assert_pattern(&events, &conn);
    assert!(loss.ring_full_events > 0, "a 64 KiB ring must overflow under 32 MiB: {loss:?}");
    let closed = events.iter().any(|e| matches!(e, ProbeEvent::Connection(c) if c.id == conn.id && c.kind == chainwatch_probe::events::ConnectionEventKind::Close));
    if closed {
        assert_eq!(bytes.len() as u64 + gaps, 512 * 65536, "captured + gaps must be every byte sent");
    } else {
        // the close record itself was refused: still no byte is unaccounted for
        assert!(bytes.len() as u64 + gaps + loss.ring_full_bytes >= 512 * 65536);
    }
}

/// The load sends bytes(range(256)) repeated: the byte at stream position p is p % 256.
fn assert_pattern(events: &[ProbeEvent], conn: &chainwatch_probe::events::ConnectionEvent) {
    for e in events {
        if let ProbeEvent::Data(d) = e
            && d.id == conn.id
        {
            for (i, b) in d.payload.iter().enumerate() {
                assert_eq!(*b as u64, (d.position + i as u64) % 256, "wrong byte at position {}", d.position + i as u64);
            }
        }
    }
}
