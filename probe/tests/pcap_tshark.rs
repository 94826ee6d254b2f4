//! Acceptance test of the pcap source (issue 3): every capture in `tests/fixtures/pcap`
//! replays to the same per-direction TCP byte streams as `tshark -z follow,tcp,raw,N`.
//! Fails (does not skip) when tshark is not installed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use chainwatch_probe::pcap::{PcapConfig, PcapEvent, StreamDirection, read_pcap_file};

/// One TCP stream as tshark follows it.
#[derive(Debug, Default)]
struct TsharkStream {
    node0: Option<SocketAddr>,
    node1: Option<SocketAddr>,
    from_node0: Vec<u8>,
    from_node1: Vec<u8>,
}

/// One connection as the pcap source replays it.
#[derive(Debug, Default)]
struct OurStream {
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    client_to_server: Vec<u8>,
    server_to_client: Vec<u8>,
    gap_bytes: u64,
    /// Bytes delivered before the first gap of each direction (`None`: no gap).
    client_to_server_before_gap: Option<usize>,
    server_to_client_before_gap: Option<usize>,
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pcap");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn require_tshark() {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "tshark is missing: this acceptance test needs it as the oracle \
         (Debian/Ubuntu: apt-get install -y tshark)"
    );
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tshark output is UTF-8")
}

fn parse_endpoint(text: &str) -> SocketAddr {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return addr;
    }
    // tshark prints IPv6 endpoints as "addr:port" without brackets.
    let (ip, port) = text.rsplit_once(':').expect("endpoint has a port");
    format!("[{ip}]:{port}").parse().expect("endpoint parses")
}

fn hex_decode(text: &str) -> Vec<u8> {
    let text = text.trim();
    assert!(
        text.len().is_multiple_of(2),
        "odd hex line from tshark: {text}"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn tshark_streams(file: &Path) -> BTreeMap<u64, TsharkStream> {
    let name = file.to_str().expect("utf-8 path");
    let ids = tshark(&["-r", name, "-T", "fields", "-e", "tcp.stream"]);
    let max = ids
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .max();
    let Some(max) = max else {
        return BTreeMap::new();
    };
    let mut args: Vec<String> = vec!["-r".into(), name.into(), "-q".into()];
    for n in 0..=max {
        args.push("-z".into());
        args.push(format!("follow,tcp,raw,{n}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = tshark(&args);
    let mut streams = BTreeMap::new();
    let mut current: Option<(u64, TsharkStream)> = None;
    for line in text.lines() {
        if line.starts_with("=====") {
            if let Some((n, s)) = current.take() {
                streams.insert(n, s);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("Filter: tcp.stream eq ") {
            current = Some((
                rest.trim().parse().expect("stream id"),
                TsharkStream::default(),
            ));
            continue;
        }
        let Some((_, stream)) = current.as_mut() else {
            continue;
        };
        if line.starts_with("Follow:") || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Node 0: ") {
            stream.node0 = Some(parse_endpoint(rest));
        } else if let Some(rest) = line.strip_prefix("Node 1: ") {
            stream.node1 = Some(parse_endpoint(rest));
        } else if let Some(rest) = line.strip_prefix('\t') {
            stream.from_node1.extend(hex_decode(rest));
        } else {
            stream.from_node0.extend(hex_decode(line));
        }
    }
    if let Some((n, s)) = current.take() {
        streams.insert(n, s);
    }
    streams
}

fn our_streams(file: &Path) -> BTreeMap<u64, OurStream> {
    let (events, _stats) = read_pcap_file(file, &PcapConfig::default()).expect("read capture");
    let mut streams: BTreeMap<u64, OurStream> = BTreeMap::new();
    for event in events {
        match event {
            PcapEvent::ConnectionOpened { conn, index, .. } => {
                let s = streams.entry(index).or_default();
                s.client = Some(conn.client);
                s.server = Some(conn.server);
            }
            PcapEvent::Data {
                index, dir, bytes, ..
            } => {
                let s = streams.entry(index).or_default();
                match dir {
                    StreamDirection::ClientToServer => s.client_to_server.extend(bytes),
                    StreamDirection::ServerToClient => s.server_to_client.extend(bytes),
                }
            }
            PcapEvent::Gap {
                index, dir, len, ..
            } => {
                let s = streams.entry(index).or_default();
                s.gap_bytes += len;
                match dir {
                    StreamDirection::ClientToServer => {
                        s.client_to_server_before_gap
                            .get_or_insert(s.client_to_server.len());
                    }
                    StreamDirection::ServerToClient => {
                        s.server_to_client_before_gap
                            .get_or_insert(s.server_to_client.len());
                    }
                }
            }
            PcapEvent::ConnectionClosed { .. } => {}
        }
    }
    streams
}

fn pair_key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Streams where our output is known to differ from tshark's: (file name suffix, tshark
/// stream id, why). Each exception is still checked: in every direction tshark's bytes must be
/// exactly our bytes before our first gap.
const DOCUMENTED_EXCEPTIONS: &[(&str, u64, &str)] = &[(
    "deepflow/http/grpc-server-stream.pcap",
    0,
    "three 17-byte server segments were never captured (tshark: 'Previous segment(s) not \
     captured'); tshark 4.0 follow stops at the first unfilled hole and drops the 1,797 bytes \
     after it, we report a 17-byte Gap for each hole and keep delivering",
)];

/// For a documented exception: tshark's bytes equal ours up to our first gap, per direction.
fn tshark_is_prefix_up_to_gap(ours: &OurStream, theirs: &TsharkStream) -> bool {
    let (c2s, s2c) = (&ours.client_to_server, &ours.server_to_client);
    let cut = |bytes: &Vec<u8>, gap: Option<usize>| -> Vec<u8> {
        bytes[..gap.unwrap_or(bytes.len())].to_vec()
    };
    let c2s = cut(c2s, ours.client_to_server_before_gap);
    let s2c = cut(s2c, ours.server_to_client_before_gap);
    let (from0, from1) = if ours.client == theirs.node0 {
        (c2s, s2c)
    } else {
        (s2c, c2s)
    };
    from0 == theirs.from_node0 && from1 == theirs.from_node1
}

#[test]
fn corpus_replays_like_tshark_follow() {
    require_tshark();
    let files = fixtures();
    assert!(
        files.len() >= 40,
        "expected the corpus captures, found {}",
        files.len()
    );
    let mut table = Vec::new();
    let mut failures = Vec::new();
    // (exactly matched, tshark streams, documented exceptions verified)
    let mut total = (0usize, 0usize, 0usize);
    for file in &files {
        let theirs = tshark_streams(file);
        let ours = our_streams(file);
        // Match tshark stream N to our connection with the same endpoints, k-th occurrence.
        let mut ours_by_pair: HashMap<(SocketAddr, SocketAddr), Vec<&OurStream>> = HashMap::new();
        for s in ours.values() {
            if let (Some(c), Some(sv)) = (s.client, s.server) {
                ours_by_pair.entry(pair_key(c, sv)).or_default().push(s);
            }
        }
        let mut used: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
        let mut matched = 0;
        let mut excepted = 0;
        let rel = file
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap_or(file);
        for (n, t) in &theirs {
            let (Some(n0), Some(n1)) = (t.node0, t.node1) else {
                failures.push(format!(
                    "{}: tshark stream {n} has no endpoints",
                    rel.display()
                ));
                continue;
            };
            let key = pair_key(n0, n1);
            let k = used.entry(key).or_default();
            let candidate = ours_by_pair.get(&key).and_then(|v| v.get(*k));
            *k += 1;
            let verdict = match candidate {
                None => Err((None, "no connection with these endpoints".to_string())),
                Some(o) => {
                    let (ours0, ours1) = if o.client == Some(n0) {
                        (&o.client_to_server, &o.server_to_client)
                    } else {
                        (&o.server_to_client, &o.client_to_server)
                    };
                    if ours0 == &t.from_node0 && ours1 == &t.from_node1 {
                        Ok(())
                    } else {
                        Err((
                            Some(*o),
                            format!(
                                "node0 {n0}: ours {} bytes vs tshark {} (first diff at {}); node1 {n1}: ours {} vs tshark {} (first diff at {}); our gap bytes {}",
                                ours0.len(),
                                t.from_node0.len(),
                                first_difference(ours0, &t.from_node0),
                                ours1.len(),
                                t.from_node1.len(),
                                first_difference(ours1, &t.from_node1),
                                o.gap_bytes
                            ),
                        ))
                    }
                }
            };
            match verdict {
                Ok(()) => matched += 1,
                Err((ours_stream, why)) => {
                    let documented = DOCUMENTED_EXCEPTIONS
                        .iter()
                        .find(|(f, id, _)| rel.to_string_lossy().ends_with(f) && id == n);
                    let verified = ours_stream.is_some_and(|o| tshark_is_prefix_up_to_gap(o, t));
                    match documented {
                        Some((_, _, reason)) if verified => {
                            println!("documented exception {} stream {n}: {reason} ({why})", rel.display());
                            excepted += 1;
                        }
                        Some(_) => failures.push(format!(
                            "{} stream {n}: documented exception no longer holds (tshark is not our prefix up to the first gap): {why}",
                            rel.display()
                        )),
                        None => failures.push(format!("{} stream {n}: {why}", rel.display())),
                    }
                }
            }
        }
        total.0 += matched;
        total.1 += theirs.len();
        total.2 += excepted;
        table.push(format!(
            "{:<62} {:>4} / {:<4} documented exceptions: {excepted}  (our connections: {})",
            rel.display().to_string(),
            matched,
            theirs.len(),
            ours.len()
        ));
    }
    println!("{:<62} matched / tshark streams", "capture");
    for row in &table {
        println!("{row}");
    }
    println!(
        "TOTAL {} / {} streams byte-identical, {} documented exception(s)",
        total.0, total.1, total.2
    );
    assert!(
        failures.is_empty(),
        "streams differing from tshark:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        total.2,
        DOCUMENTED_EXCEPTIONS.len(),
        "a documented exception now matches exactly (or its stream vanished): update the list"
    );
    assert_eq!(total.0 + total.2, total.1);
}

/// Per sender endpoint: (data bytes, gap bytes) we produced.
fn our_totals(
    file: &Path,
) -> (
    HashMap<SocketAddr, (u64, u64)>,
    chainwatch_probe::pcap::PcapStats,
) {
    let (events, stats) = read_pcap_file(file, &PcapConfig::default()).expect("read capture");
    let mut totals: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
    let mut keys = HashMap::new();
    for event in &events {
        let (index, dir, data, gap) = match event {
            PcapEvent::ConnectionOpened { conn, index, .. } => {
                keys.insert(*index, *conn);
                continue;
            }
            PcapEvent::Data {
                index, dir, bytes, ..
            } => (index, dir, bytes.len() as u64, 0),
            PcapEvent::Gap {
                index, dir, len, ..
            } => (index, dir, 0, *len),
            PcapEvent::ConnectionClosed { .. } => continue,
        };
        let conn = keys[index];
        let sender = match dir {
            StreamDirection::ClientToServer => conn.client,
            StreamDirection::ServerToClient => conn.server,
        };
        let t = totals.entry(sender).or_default();
        t.0 += data;
        t.1 += gap;
    }
    (totals, stats)
}

/// A snap length of 200 cuts every large segment: tshark's follow shows only the captured
/// bytes (which the main test matches against our `Data`), and we must account for every byte
/// the IP length promises: data + gaps per sender = the sum of tshark's `tcp.len`, and the gap
/// bytes = what the snap length cut off.
#[test]
fn snaplen_cut_bytes_become_exact_gaps() {
    require_tshark();
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pcap/local/lo-snaplen200.pcap");
    let name = file.to_str().expect("utf-8 path");
    let fields = tshark(&[
        "-r",
        name,
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.len",
        "-e",
        "frame.cap_len",
        "-e",
        "frame.len",
    ]);
    let mut expected: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
    for line in fields.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [ip, port, tcp_len, cap_len, len] = cols[..] else {
            panic!("unexpected tshark line {line:?}");
        };
        let sender: SocketAddr = format!("{ip}:{port}").parse().expect("endpoint");
        let tcp_len: u64 = tcp_len.parse().expect("tcp.len");
        let cut = len.parse::<u64>().expect("len") - cap_len.parse::<u64>().expect("cap_len");
        let e = expected.entry(sender).or_default();
        e.0 += tcp_len;
        e.1 += cut.min(tcp_len);
    }
    let (ours, stats) = our_totals(&file);
    assert!(
        stats.truncated > 0,
        "the fixture must contain truncated packets"
    );
    for (sender, (tcp_bytes, cut_bytes)) in &expected {
        let (data, gaps) = ours.get(sender).copied().unwrap_or_default();
        assert_eq!(
            data + gaps,
            *tcp_bytes,
            "{sender}: data + gaps = tshark's tcp.len sum"
        );
        assert_eq!(
            gaps, *cut_bytes,
            "{sender}: gap bytes = bytes cut by the snap length"
        );
    }
    assert_eq!(stats.gap_bytes, expected.values().map(|e| e.1).sum::<u64>());
}

/// The documented exception above, pinned: exactly three 17-byte holes in the server stream.
#[test]
fn grpc_server_stream_holes_are_three_17_byte_gaps() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap/deepflow/http/grpc-server-stream.pcap");
    let (events, stats) = read_pcap_file(&file, &PcapConfig::default()).expect("read");
    let gaps: Vec<(StreamDirection, u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            PcapEvent::Gap {
                dir,
                stream_offset,
                len,
                ..
            } => Some((*dir, *stream_offset, *len)),
            _ => None,
        })
        .collect();
    let s2c = StreamDirection::ServerToClient;
    // Relative sequence numbers (tshark): segments end at 1575, 2098, 2867; next start 17 later.
    assert_eq!(
        gaps,
        vec![(s2c, 1544, 17), (s2c, 2067, 17), (s2c, 2836, 17)]
    );
    assert_eq!((stats.gaps, stats.gap_bytes), (3, 51));
}
