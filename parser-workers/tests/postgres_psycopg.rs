//! PostgreSQL against a capture of a real client and server made for this project: psycopg 3.3
//! (libpq 15) talking to PostgreSQL 15 — SCRAM login, a pipelined executemany (one Parse, 100
//! Bind/Describe/Execute, one Sync), named prepared statements, binary results, COPY in and out,
//! a multi-statement simple query (one exchange per statement), a pipeline aborted by a syntax
//! error, and a failed login.
//! Tags, SQLSTATEs and query texts are checked against what tshark's dissector read.

use chainwatch_parser_workers::protocols::Direction;
use chainwatch_parser_workers::protocols::postgres::{
    PgConfig, PgConnection, PgExchange, PgExchangeKind, PgValue,
};

fn fixture(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/postgres/psycopg")
        .join(path)
}

fn run(path: &str) -> (Vec<PgExchange>, PgConnection) {
    let text = std::fs::read_to_string(fixture(path)).expect("fixture");
    let mut conn = PgConnection::new(PgConfig::default());
    let mut out = Vec::new();
    for (i, l) in text.lines().filter(|l| !l.is_empty()).enumerate() {
        let (d, hex) = l.split_at(2);
        let dir = if d.starts_with('C') {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        out.extend(conn.feed(dir, &bytes, 1_000 * (i as u64 + 1)));
    }
    out.extend(conn.flush());
    (out, conn)
}

/// (kind, value) lines of the tshark oracle file.
fn oracle(path: &str, kind: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(path))
        .expect("oracle")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .filter(|(k, _)| *k == kind)
        .map(|(_, v)| v.replace("\\n", "\n").replace("\\\\", "\\"))
        .collect()
}

#[test]
fn tags_codes_and_texts_match_tshark() {
    let (ex, conn) = run("psycopg-workload.hex");
    let stats = conn.stats();
    assert_eq!(stats.invalid_bytes, 0, "{stats:?}");
    assert_eq!(stats.stitcher.unmatched_responses, 0, "{stats:?}");
    let ours: Vec<String> = ex.iter().flat_map(|e| e.command_tags.clone()).collect();
    assert_eq!(ours, oracle("psycopg-workload.tshark.txt", "tag"));
    let codes: Vec<String> = ex
        .iter()
        .flat_map(|e| {
            e.notices
                .iter()
                .chain(e.error.iter())
                .map(|n| n.code.clone())
        })
        .collect();
    assert_eq!(codes, oracle("psycopg-workload.tshark.txt", "code"));
    // Every statement text the client sent is on an exchange, except the one the server
    // skipped after the syntax error earlier in its pipeline. A simple query of several
    // statements gives one exchange per statement (none of these texts quotes a semicolon).
    let on_exchange = |q: &str| ex.iter().any(|e| e.sql.as_deref() == Some(q));
    for q in oracle("psycopg-workload.tshark.txt", "query") {
        let found =
            on_exchange(&q) || (q.contains(';') && q.split(';').map(str::trim).all(on_exchange));
        assert_eq!(found, q != "SELECT 1 WHERE $1", "{q}");
    }
    assert_eq!(stats.stitcher.discarded_after_error, 1);
    assert_eq!(ex.last().map(|e| e.kind), Some(PgExchangeKind::Terminate));
}

#[test]
fn scram_login_identity_is_on_every_exchange() {
    let (ex, _) = run("psycopg-workload.hex");
    let st = &ex[0];
    assert_eq!(st.kind, PgExchangeKind::Startup);
    assert!(st.succeeded());
    assert_eq!(
        st.auth.iter().map(|a| a.name()).collect::<Vec<_>>(),
        ["SASL", "SASLContinue", "SASLFinal", "Ok"]
    );
    for e in &ex {
        assert_eq!(e.user.as_deref(), Some("agent"));
        assert_eq!(e.database.as_deref(), Some("crm"));
        assert_eq!(e.application_name.as_deref(), Some("pgtls-agent"));
    }
    assert!(!format!("{ex:?}").contains("agent-pw"));
}

#[test]
fn pipelined_executemany_gives_one_exchange_per_execute() {
    let (ex, _) = run("psycopg-workload.hex");
    let inserts: Vec<&PgExchange> = ex
        .iter()
        .filter(|e| e.sql.as_deref() == Some("INSERT INTO customers VALUES ($1, $2, $3, $4)"))
        .collect();
    assert_eq!(inserts.len(), 100);
    assert!(
        inserts
            .iter()
            .all(|e| e.kind == PgExchangeKind::ExtendedQuery
                && e.command_tag.as_deref() == Some("INSERT 0 1")
                && e.rows == Some(1)
                && !e.flags.partial)
    );
    assert!(
        inserts
            .windows(2)
            .all(|w| w[0].start_ts_ns <= w[1].start_ts_ns)
    );
}

#[test]
fn named_prepared_statement_reused() {
    let (ex, _) = run("psycopg-workload.hex");
    let prepared: Vec<&PgExchange> = ex
        .iter()
        .filter(|e| {
            e.sql.as_deref()
                == Some("SELECT id, name, email FROM customers WHERE id <= $1 ORDER BY id")
        })
        .collect();
    assert_eq!(prepared.len(), 2);
    assert!(prepared.iter().all(|e| {
        e.statement
            .as_deref()
            .is_some_and(|s| s.starts_with("_pg3_"))
    }));
    assert_eq!(prepared[0].rows, Some(3));
    assert_eq!(prepared[1].rows, Some(5));
    let names: Vec<&str> = prepared[1].samples[0]
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "name", "email"]);
    assert_eq!(
        prepared[1].samples[0].rows[4][2].value,
        PgValue::Text("user5@example.com".into())
    );
}

#[test]
fn sampled_rows_are_bounded_and_binary_is_flagged() {
    let (ex, _) = run("psycopg-workload.hex");
    let all = ex
        .iter()
        .find(|e| e.sql.as_deref() == Some("SELECT * FROM customers ORDER BY id"))
        .expect("select *");
    assert_eq!(all.data_rows, 100);
    assert_eq!(all.samples[0].rows.len(), PgConfig::default().max_sample_rows);
    assert!(PgConfig::default().max_sample_rows < 100);
    assert_eq!(
        all.samples[0].rows[0][2].value,
        PgValue::Text("user1@example.com".into())
    );
    assert_eq!(
        all.samples[0].rows[19][1].value,
        PgValue::Text("Customer 20".into())
    );

    let bin = ex
        .iter()
        .find(|e| e.sql.as_deref() == Some("SELECT id, balance FROM customers WHERE id = $1"))
        .expect("binary");
    let row = &bin.samples[0].rows[0];
    assert_eq!(row[0].value, PgValue::Binary(42i32.to_be_bytes().to_vec()));
    assert!(matches!(row[1].value, PgValue::Binary(_)));
}

#[test]
fn copy_multi_statement_and_pipeline_error() {
    let (ex, _) = run("psycopg-workload.hex");
    let copy_in = ex
        .iter()
        .find(|e| e.sql.as_deref().is_some_and(|s| s.ends_with("FROM STDIN")))
        .expect("copy in");
    assert!(copy_in.flags.copy_in);
    assert_eq!(copy_in.rows, Some(2));
    let copy_out = ex
        .iter()
        .find(|e| e.sql.as_deref().is_some_and(|s| s.ends_with("TO STDOUT")))
        .expect("copy out");
    assert!(copy_out.flags.copy_out);
    // "BEGIN; UPDATE ...; COMMIT" in one simple query: one exchange per statement.
    let at = ex
        .iter()
        .position(|e| e.sql.as_deref() == Some("BEGIN"))
        .expect("multi");
    let multi = ex.get(at..at + 3).expect("three statements");
    let texts: Vec<_> = multi
        .iter()
        .map(|e| e.sql.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        [
            "BEGIN",
            "UPDATE customers SET balance = 0 WHERE id < 10",
            "COMMIT"
        ]
    );
    let tags: Vec<_> = multi.iter().map(|e| e.command_tags.clone()).collect();
    assert_eq!(tags, [["BEGIN"], ["UPDATE 9"], ["COMMIT"]]);
    let rows: Vec<_> = multi.iter().map(|e| e.rows).collect();
    assert_eq!(rows, [None, Some(9), None]);
    assert!(
        multi
            .iter()
            .all(|e| e.kind == PgExchangeKind::SimpleQuery && e.succeeded())
    );
    let bad = ex.iter().find(|e| e.error.is_some()).expect("syntax error");
    assert_eq!(bad.sql.as_deref(), Some("SELEC broken $1"));
    assert_eq!(bad.error.as_ref().map(|e| e.code.as_str()), Some("42601"));
    assert_eq!(bad.kind, PgExchangeKind::ExtendedQuery);
}

#[test]
fn failed_login_is_reported() {
    let (ex, _) = run("psycopg-workload.1.hex");
    let st = ex
        .iter()
        .find(|e| e.kind == PgExchangeKind::Startup)
        .expect("startup");
    assert!(!st.succeeded() && !st.authenticated());
    let err = st.error.as_ref().expect("error");
    assert_eq!(err.code, oracle("psycopg-workload.1.tshark.txt", "code")[0]);
    assert_eq!(
        err.message,
        "password authentication failed for user \"agent\""
    );
    assert_eq!(st.user.as_deref(), Some("agent"));
}
