//! PostgreSQL against real captures: zeek's postgresql traces checked against zeek's own
//! expected logs (user, database, application name, SQL, outcome, row counts, login failures,
//! non-PostgreSQL negatives), and deepflow's captures (extended protocol, mid-connection).

use std::path::PathBuf;

use chainwatch_parser_workers::protocols::Direction;
use chainwatch_parser_workers::protocols::postgres::{
    PgConfig, PgConnection, PgConnectionState, PgExchange, PgExchangeKind, PgValue,
    looks_like_postgres_client,
};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/postgres")
        .join(path)
}

/// The `C <hex>` / `S <hex>` lines of a fixture.
fn load_stream(path: &str) -> Vec<(Direction, Vec<u8>)> {
    let text =
        std::fs::read_to_string(fixture(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
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

fn run(path: &str) -> (Vec<PgExchange>, PgConnection) {
    let mut conn = PgConnection::new(PgConfig::default());
    let mut out = Vec::new();
    for (i, (dir, bytes)) in load_stream(path).into_iter().enumerate() {
        out.extend(conn.feed(dir, &bytes, 1_000 * (i as u64 + 1)));
    }
    out.extend(conn.flush());
    (out, conn)
}

/// One row of zeek's postgresql.log that we compare.
#[derive(Debug, Clone, PartialEq)]
struct ZeekRow {
    orig_p: u16,
    user: Option<String>,
    database: Option<String>,
    application_name: Option<String>,
    frontend: String,
    frontend_arg: Option<String>,
    backend_arg: Option<String>,
    success: Option<bool>,
    rows: Option<u64>,
}

/// Undo zeek's log escaping of `\x0a`-style bytes.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn zeek_rows(test: &str) -> Vec<ZeekRow> {
    let text = std::fs::read_to_string(fixture(&format!("zeek_baseline/{test}.postgresql.log")))
        .expect("baseline");
    let mut lines = text.lines().filter(|l| !l.starts_with("###"));
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let opt = |v: &str| if v == "-" { None } else { Some(unescape(v)) };
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            ZeekRow {
                orig_p: f[col("id.orig_p")].parse().expect("port"),
                user: opt(f[col("user")]),
                database: opt(f[col("database")]),
                application_name: opt(f[col("application_name")]),
                frontend: f[col("frontend")].to_string(),
                frontend_arg: opt(f[col("frontend_arg")]),
                backend_arg: opt(f[col("backend_arg")]),
                success: match f[col("success")] {
                    "T" => Some(true),
                    "F" => Some(false),
                    _ => None,
                },
                rows: f[col("rows")].parse().ok(),
            }
        })
        .collect()
}

/// Our exchanges in zeek's vocabulary.
fn as_zeek(ex: &PgExchange, orig_p: u16) -> Option<ZeekRow> {
    let frontend = match ex.kind {
        PgExchangeKind::SslRequest => "ssl_request",
        PgExchangeKind::Startup => "startup",
        PgExchangeKind::SimpleQuery => "simple_query",
        PgExchangeKind::Terminate => "terminate",
        _ => return None,
    };
    let is_ssl = ex.kind == PgExchangeKind::SslRequest;
    let success = match ex.kind {
        PgExchangeKind::Terminate => None,
        PgExchangeKind::SslRequest => ex.encryption_accepted,
        PgExchangeKind::Startup if ex.flags.partial && ex.error.is_none() => None,
        PgExchangeKind::Startup => Some(ex.authenticated() && ex.error.is_none()),
        _ => Some(ex.error.is_none()),
    };
    let rows = match ex.kind {
        PgExchangeKind::SimpleQuery if ex.error.is_none() => Some(ex.data_rows),
        _ => None,
    };
    // zeek's backend_arg: auth methods and error/notice fields; we compare methods and codes.
    let mut backend = Vec::new();
    if is_ssl {
        backend.push(if ex.encryption_accepted == Some(true) {
            "S".to_string()
        } else {
            "N".to_string()
        });
    }
    for a in &ex.auth {
        if a.name() != "Ok" {
            backend.push(a.name().to_string());
        }
    }
    for n in ex.notices.iter().chain(ex.error.iter()) {
        backend.push(format!("Code={}", n.code));
    }
    Some(ZeekRow {
        orig_p,
        user: if is_ssl { None } else { ex.user.clone() },
        database: if is_ssl { None } else { ex.database.clone() },
        application_name: if is_ssl {
            None
        } else {
            ex.application_name.clone()
        },
        frontend: frontend.to_string(),
        frontend_arg: ex.sql.clone(),
        backend_arg: if backend.is_empty() {
            None
        } else {
            Some(backend.join(","))
        },
        success,
        rows,
    })
}

/// zeek's backend_arg reduced to what `as_zeek` produces: method names and Code= fields.
fn reduce_backend_arg(arg: &Option<String>) -> Option<String> {
    let arg = arg.as_ref()?;
    let kept: Vec<&str> = arg
        .split(',')
        .filter(|p| {
            p.starts_with("Code=")
                || matches!(
                    *p,
                    "S" | "N"
                        | "SASL"
                        | "SASLContinue"
                        | "SASLFinal"
                        | "MD5Password"
                        | "CleartextPassword"
                )
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join(","))
    }
}

fn check_against_zeek(test: &str, streams: &[(&str, u16)]) {
    let expected = zeek_rows(test);
    assert!(!expected.is_empty(), "{test}: baseline has rows");
    for &(file, port) in streams {
        let (exchanges, conn) = run(file);
        let ours: Vec<ZeekRow> = exchanges.iter().filter_map(|e| as_zeek(e, port)).collect();
        let mut theirs: Vec<ZeekRow> = expected
            .iter()
            .filter(|r| r.orig_p == port)
            .cloned()
            .collect();
        for r in theirs.iter_mut() {
            r.backend_arg = reduce_backend_arg(&r.backend_arg);
        }
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{file}: row count\nours: {ours:#?}\nzeek: {theirs:#?}"
        );
        for (o, z) in ours.iter().zip(&theirs) {
            assert_eq!(o, z, "{file}");
        }
        let stats = conn.stats();
        assert_eq!(stats.invalid_bytes, 0, "{file}: {stats:?}");
        assert_eq!(stats.stitcher.unmatched_responses, 0, "{file}: {stats:?}");
    }
}

#[test]
fn zeek_select_now() {
    check_against_zeek("psql-select-now", &[("zeek/psql-select-now.hex", 35336)]);
}

#[test]
fn zeek_create_insert_select_delete_drop() {
    check_against_zeek(
        "psql-create-insert-select",
        &[("zeek/psql-create-insert-select-delete-drop.hex", 40190)],
    );
}

#[test]
fn zeek_insert_fail_drop_fail() {
    check_against_zeek(
        "psql-insert-fail-drop-fail",
        &[("zeek/psql-insert-fail-drop-fail.hex", 56698)],
    );
}

#[test]
fn zeek_login_fail() {
    check_against_zeek("psql-login-fail", &[("zeek/psql-login-fail.hex", 51732)]);
}

#[test]
fn zeek_login_no_role() {
    check_against_zeek(
        "psql-login-no-role",
        &[("zeek/psql-login-no-role.hex", 51625)],
    );
}

#[test]
fn zeek_login_no_sslrequest() {
    check_against_zeek(
        "psql-login-no-sslrequest",
        &[
            ("zeek/psql-login-no-sslrequest.hex", 37268),
            ("zeek/psql-login-no-sslrequest.1.hex", 37272),
        ],
    );
}

#[test]
fn zeek_aws_ssl_disable() {
    check_against_zeek(
        "psql-aws-ssl-disable",
        &[("zeek/psql-aws-ssl-disable.hex", 36060)],
    );
}

#[test]
fn zeek_greenhouse_app() {
    check_against_zeek(
        "greenhouse-app",
        &[
            ("zeek/greenhouse-app.hex", 59060),
            ("zeek/greenhouse-app.1.hex", 52960),
        ],
    );
}

#[test]
fn zeek_aws_ssl_require_stops_at_tls_and_reads_its_sni() {
    check_against_zeek(
        "psql-aws-ssl-require",
        &[("zeek/psql-aws-ssl-require.hex", 36934)],
    );
    let (exchanges, conn) = run("zeek/psql-aws-ssl-require.hex");
    assert_eq!(conn.state(), PgConnectionState::Encrypted);
    assert_eq!(exchanges.len(), 1);
    assert!(conn.stats().encrypted_bytes > 0);
    // zeek's ssl.log: TLSv12, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, the RDS host name.
    let ch = conn.tls_client_hello().expect("ClientHello after 'S'");
    assert_eq!(
        ch.server_name.as_deref(),
        Some("database-1.cyx4x7yvdoay.us-east-1.rds.amazonaws.com")
    );
    let sh = conn.tls_server_hello().expect("ServerHello");
    assert_eq!(sh.version_name(), "TLSv12");
    assert_eq!(sh.cipher_suite, Some(0xc030));
}

#[test]
fn login_failure_carries_sqlstate_and_message_and_no_password() {
    let (exchanges, _) = run("zeek/psql-login-fail.hex");
    let startup = exchanges
        .iter()
        .find(|e| e.kind == PgExchangeKind::Startup)
        .expect("startup");
    let err = startup.error.as_ref().expect("login failure");
    assert_eq!(err.code, "28P01");
    assert_eq!(err.severity, "FATAL");
    assert_eq!(
        err.message,
        "password authentication failed for user \"postgres\""
    );
    assert!(!startup.succeeded());
    // The SCRAM client-final message (with its proof) went by; nothing of it is kept.
    let dump = format!("{exchanges:?}");
    assert!(
        !dump.contains("c=biws"),
        "SASL response content leaked: {dump}"
    );
    assert!(!dump.contains("n,,n="), "SASL initial response leaked");
}

#[test]
fn select_samples_column_names_and_text_values() {
    let (exchanges, _) = run("zeek/psql-create-insert-select-delete-drop.hex");
    let select = exchanges
        .iter()
        .find(|e| e.sql.as_deref() == Some("SELECT * from t;"))
        .expect("select");
    assert_eq!(select.command_tag.as_deref(), Some("SELECT 2"));
    assert_eq!(select.rows, Some(2));
    let set = select.samples.first().expect("result set");
    let names: Vec<&str> = set.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["i", "s", "t"]);
    assert_eq!(set.rows.len(), 2);
    assert_eq!(set.rows[0][0].value, PgValue::Text("42".into()));
    assert_eq!(set.rows[0][1].value, PgValue::Text("forty-two".into()));
    assert_eq!(set.rows[1][1].value, PgValue::Text("eighty-six".into()));
    let insert = exchanges
        .iter()
        .find(|e| e.sql.as_deref() == Some("INSERT INTO t VALUES (42, 'forty-two', now());"));
    let insert = insert.expect("insert");
    assert_eq!(insert.command_tag.as_deref(), Some("INSERT 0 1"));
    assert_eq!(insert.rows, Some(1));
    assert!(insert.start_ts_ns < insert.end_ts_ns);
    assert!(insert.request_bytes > 0 && insert.response_bytes > 0);
}

#[test]
fn http_and_mysql_on_port_5432_are_not_postgres() {
    for f in ["zeek/http-on-port-5432.hex", "zeek/mysql-on-port-5432.hex"] {
        let stream = load_stream(f);
        let first_client = stream
            .iter()
            .find(|(d, _)| *d == Direction::ClientToServer)
            .expect("client bytes");
        assert!(
            !looks_like_postgres_client(&first_client.1),
            "{f} detected as PostgreSQL"
        );
        let (exchanges, conn) = run(f);
        assert_eq!(conn.state(), PgConnectionState::NotPostgres, "{f}");
        assert!(exchanges.is_empty(), "{f}: {exchanges:?}");
        assert!(conn.stats().ignored_bytes > 0);
        assert!(conn.stats().last_error.is_some());
    }
}

#[test]
fn every_real_client_stream_is_detected() {
    for f in [
        "zeek/psql-select-now.hex",
        "zeek/psql-login-no-sslrequest.1.hex",
        "zeek/greenhouse-app.hex",
        "zeek/psql-aws-ssl-require.hex",
        "deepflow/pgsql-all.hex",
        "deepflow/simple_query.hex",
        "deepflow/prepare_stat.hex",
        "deepflow/error.hex",
    ] {
        let stream = load_stream(f);
        let first_client = stream
            .iter()
            .find(|(d, _)| *d == Direction::ClientToServer)
            .expect("client bytes");
        assert!(
            looks_like_postgres_client(&first_client.1),
            "{f} not detected"
        );
    }
}

#[test]
fn zeek_bad_messages_do_not_produce_exchanges_from_garbage() {
    // bad-startup-message: zeek never confirms PostgreSQL. bad-backend-message: a backend
    // message with length < 4 (zeek: "requires failed: self.length >= 4").
    let (ex, conn) = run("zeek/bad-startup-message-1.hex");
    assert!(
        ex.iter().all(|e| e.kind != PgExchangeKind::SimpleQuery),
        "{ex:?}"
    );
    assert!(conn.stats().last_error.is_some() || conn.state() == PgConnectionState::NotPostgres);
    let (_, conn) = run("zeek/bad-backend-message-1.hex");
    let stats = conn.stats();
    assert!(stats.invalid_events > 0, "{stats:?}");
}

#[test]
fn deepflow_simple_query_prepared_and_error() {
    let (ex, _) = run("deepflow/simple_query.hex");
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].kind, PgExchangeKind::SimpleQuery);
    assert_eq!(ex[0].sql.as_deref(), Some("delete  from test;"));
    assert_eq!(ex[0].command_tag.as_deref(), Some("DELETE 1"));
    assert_eq!(ex[0].rows, Some(1));

    // deepflow's snippet pairs a client packet (Parse "1" / Describe / Sync) with a server
    // packet answering another request (BindComplete / CommandComplete / ReadyForQuery): the
    // stitcher reports the answer as unmatched instead of inventing a pairing.
    let (ex, conn) = run("deepflow/prepare_stat.hex");
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(ex[0].kind, PgExchangeKind::Unmatched);
    assert_eq!(ex[0].command_tag.as_deref(), Some("DELETE 0"));
    assert_eq!(ex[0].rows, Some(0));
    assert!(conn.stats().stitcher.unmatched_responses > 0);

    let (ex, _) = run("deepflow/error.hex");
    assert_eq!(ex.len(), 1);
    let err = ex[0].error.as_ref().expect("error");
    assert_eq!(err.code, "42601");
    assert_eq!(err.severity, "ERROR");
    assert_eq!(err.message, "syntax error at or near \"asdsdfdsf\"");
    assert_eq!(ex[0].sql.as_deref(), Some("asdsdfdsf;"));
}

/// deepflow's expected `.result`: one JSON object per line plus a trailing flag.
fn deepflow_result() -> Vec<String> {
    std::fs::read_to_string(fixture("deepflow/pgsql-all.result"))
        .expect("result")
        .lines()
        .map(str::to_string)
        .collect()
}

fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    if let Some(stripped) = rest.strip_prefix('"') {
        // Strings in this file have no escaped quotes except \n.
        let end = stripped.find("\",")?;
        Some(&stripped[..end])
    } else {
        let end = rest.find([',', '}'])?;
        Some(&rest[..end])
    }
}

#[test]
fn deepflow_pgsql_all_extended_protocol_mid_connection() {
    let (ex, conn) = run("deepflow/pgsql-all.hex");
    let stats = conn.stats();
    assert_eq!(stats.invalid_bytes, 0, "{stats:?}");
    assert_eq!(stats.stitcher.unmatched_responses, 0, "{stats:?}");
    assert!(
        ex.iter()
            .all(|e| e.kind == PgExchangeKind::ExtendedQuery && e.error.is_none())
    );
    assert!(ex.iter().all(|e| e.command_tag.is_some()));
    let result = deepflow_result();
    // Every statement text deepflow saw in a Parse is carried to an Execute of ours.
    let texts: Vec<String> = result
        .iter()
        .filter_map(|l| json_field(l, "request_resource"))
        .map(|s| s.replace("\\n", "\n"))
        .collect();
    assert_eq!(texts.len(), 4);
    for t in &texts {
        assert!(
            ex.iter().any(|e| e.sql.as_deref() == Some(t.as_str())),
            "missing statement {t:?}"
        );
    }
    // Response sizes: deepflow's (which include the 6-byte ReadyForQuery after the Execute's
    // CommandComplete) appear in the same order among ours; deepflow missed three responses
    // that spanned many segments.
    let theirs: Vec<u64> = result
        .iter()
        .filter(|l| json_field(l, "msg_type") == Some("Response"))
        .filter_map(|l| json_field(l, "captured_response_byte")?.parse().ok())
        .collect();
    let ours: Vec<u64> = ex.iter().map(|e| e.response_bytes + 6).collect();
    let mut it = ours.iter();
    for t in &theirs {
        assert!(
            it.any(|o| o == t),
            "response of {t} bytes not found in order in {ours:?}"
        );
    }
    assert_eq!(theirs.len(), 29);
    assert_eq!(ours.len(), 32);
    // Affected rows: deepflow's counts (1 and 6) all appear with the same sizes.
    let six = ex
        .iter()
        .find(|e| e.rows == Some(6))
        .expect("the 6-row select");
    assert_eq!(six.response_bytes + 6, 5344);
    assert_eq!(six.data_rows, 6);
    assert_eq!(six.samples[0].rows.len(), 6);
}
