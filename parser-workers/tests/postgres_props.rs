//! Property tests for PostgreSQL: any split of real streams gives the same exchanges, and
//! arbitrary or mutated bytes never panic (parsers, stitcher, driver, detection).

use chainwatch_parser_workers::protocols::postgres::{
    PgBackendParser, PgConfig, PgConnection, PgExchange, PgFrontendParser,
    looks_like_postgres_client,
};
use chainwatch_parser_workers::protocols::{Direction, FrameParser, Parsed};
use proptest::prelude::*;

fn load_stream(path: &str) -> Vec<(Direction, Vec<u8>)> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/postgres")
        .join(path);
    let text = std::fs::read_to_string(p).expect("fixture");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (d, hex) = l.split_at(2);
            let dir = if d.starts_with('C') {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            (dir, bytes)
        })
        .collect()
}

/// Feed each run cut at the given fractions (per mille of its length); timestamps per run.
fn run_split(stream: &[(Direction, Vec<u8>)], cuts: &[u16]) -> Vec<PgExchange> {
    let mut conn = PgConnection::new(PgConfig::default());
    let mut out = Vec::new();
    let mut k = 0usize;
    for (i, (dir, bytes)) in stream.iter().enumerate() {
        let mut points: Vec<usize> = (0..3)
            .map(|_| {
                let c = cuts.get(k % cuts.len().max(1)).copied().unwrap_or(0);
                k += 1;
                bytes.len() * usize::from(c % 1001) / 1000
            })
            .collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        for w in points.windows(2) {
            out.extend(conn.feed(*dir, &bytes[w[0]..w[1]], 1_000 * (i as u64 + 1)));
        }
    }
    out.extend(conn.flush());
    out
}

const STREAMS: [&str; 7] = [
    "psycopg/psycopg-workload.hex",
    "zeek/psql-create-insert-select-delete-drop.hex",
    "zeek/psql-insert-fail-drop-fail.hex",
    "zeek/greenhouse-app.hex",
    "zeek/psql-login-fail.hex",
    "deepflow/pgsql-all.hex",
    "zeek/psql-aws-ssl-require.hex",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_exchanges(which in 0..STREAMS.len(), cuts in proptest::collection::vec(any::<u16>(), 1..64)) {
        let stream = load_stream(STREAMS[which]);
        let whole = run_split(&stream, &[0]);
        let split = run_split(&stream, &cuts);
        prop_assert!(!whole.is_empty());
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_exchanges(which in 0..4usize) {
        let stream = load_stream(STREAMS[which]);
        let whole = run_split(&stream, &[0]);
        let mut conn = PgConnection::new(PgConfig::default());
        let mut out = Vec::new();
        for (i, (dir, bytes)) in stream.iter().enumerate() {
            for b in bytes {
                out.extend(conn.feed(*dir, std::slice::from_ref(b), 1_000 * (i as u64 + 1)));
            }
        }
        out.extend(conn.flush());
        prop_assert_eq!(whole, out);
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20)) {
        let mut conn = PgConnection::new(PgConfig { max_message_len: 512, resync_max_len: 256, ..PgConfig::default() });
        for (i, (client, bytes)) in chunks.iter().enumerate() {
            let dir = if *client { Direction::ClientToServer } else { Direction::ServerToClient };
            if i % 5 == 4 {
                conn.gap(dir, bytes.len() as u64);
            } else {
                let _ = conn.feed(dir, bytes, i as u64);
            }
            let _ = looks_like_postgres_client(bytes);
        }
        let _ = conn.flush();
        let _ = conn.stats();
    }

    #[test]
    fn parsers_never_panic_and_make_progress(bytes in proptest::collection::vec(any::<u8>(), 0..2000), typed in any::<bool>()) {
        let config = PgConfig { max_message_len: 300, ..PgConfig::default() };
        let mut f = PgFrontendParser::new(config.clone());
        let mut b = PgBackendParser::new(config);
        if typed {
            f.resync();
            b.expect_encryption_reply();
        }
        for parser in 0..2 {
            let mut pos = 0;
            while pos < bytes.len() {
                let p = if parser == 0 { f.parse(&bytes[pos..]) } else { b.parse(&bytes[pos..]) };
                match p {
                    Parsed::NeedMore => break,
                    Parsed::Frame { consumed, .. } => { prop_assert!(consumed >= 1 && consumed <= bytes.len() - pos); pos += consumed; }
                    Parsed::Invalid { skip } => { prop_assert!(skip >= 1); pos += skip; }
                }
            }
        }
    }

    #[test]
    fn mutated_real_streams_never_panic(which in 0..STREAMS.len(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..20)) {
        let mut stream = load_stream(STREAMS[which]);
        for (at, v) in flips {
            let i = at % stream.len();
            let run = &mut stream[i].1;
            if !run.is_empty() {
                let j = at % run.len();
                run[j] = v;
            }
        }
        let _ = run_split(&stream, &[0]);
    }
}
