//! PostgreSQL protocol behaviour on hand-built message sequences (built from the protocol
//! documentation's message formats): pipelined extended protocol, named/unnamed statements,
//! multi-statement simple queries, COPY, binary values, size bounds, gaps and resync.

use chainwatch_parser_workers::protocols::Direction::{ClientToServer as C, ServerToClient as S};
use chainwatch_parser_workers::protocols::postgres::{
    PgConfig, PgConnection, PgExchange, PgExchangeKind, PgValue, rows_from_command_tag,
};

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn startup(user: &str, db: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [
        ("user", user),
        ("database", db),
        ("application_name", "agent"),
    ] {
        body.extend(cstr(k));
        body.extend(cstr(v));
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend(body);
    m
}

fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}
fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend(0u16.to_be_bytes());
    msg(b'P', &b)
}
fn bind(portal: &str, stmt: &str, result_formats: &[i16]) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(stmt));
    b.extend(0u16.to_be_bytes());
    b.extend(0u16.to_be_bytes());
    b.extend((result_formats.len() as u16).to_be_bytes());
    for f in result_formats {
        b.extend(f.to_be_bytes());
    }
    msg(b'B', &b)
}
fn describe_portal(name: &str) -> Vec<u8> {
    let mut b = vec![b'P'];
    b.extend(cstr(name));
    msg(b'D', &b)
}
fn execute(portal: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(0i32.to_be_bytes());
    msg(b'E', &b)
}
fn sync() -> Vec<u8> {
    msg(b'S', &[])
}
fn row_description(cols: &[(&str, i16)]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for (name, format) in cols {
        b.extend(cstr(name));
        b.extend(0i32.to_be_bytes());
        b.extend(0i16.to_be_bytes());
        b.extend(25i32.to_be_bytes());
        b.extend((-1i16).to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(format.to_be_bytes());
    }
    msg(b'T', &b)
}
fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        match v {
            None => b.extend((-1i32).to_be_bytes()),
            Some(v) => {
                b.extend((v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
        }
    }
    msg(b'D', &b)
}
fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', &cstr(tag))
}
fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}
fn error(code: &str, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (f, v) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', text)] {
        b.push(f);
        b.extend(cstr(v));
    }
    b.push(0);
    msg(b'E', &b)
}
fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    msg(b'R', &b)
}

fn logged_in() -> (PgConnection, Vec<PgExchange>) {
    let mut c = PgConnection::new(PgConfig::default());
    let mut out = c.feed(C, &startup("alice", "crm"), 1);
    out.extend(c.feed(S, &auth(5, b"salt"), 2));
    out.extend(c.feed(C, &msg(b'p', &cstr("md5secretsecret")), 3));
    let mut s = auth(0, &[]);
    s.extend(msg(b'S', &[cstr("server_version"), cstr("15.4")].concat()));
    s.extend(ready());
    out.extend(c.feed(S, &s, 4));
    (c, out)
}

#[test]
fn startup_md5_login_keeps_identity_and_drops_password() {
    let (_, out) = logged_in();
    assert_eq!(out.len(), 1);
    let st = &out[0];
    assert_eq!(st.kind, PgExchangeKind::Startup);
    assert_eq!(st.user.as_deref(), Some("alice"));
    assert_eq!(st.database.as_deref(), Some("crm"));
    assert_eq!(st.application_name.as_deref(), Some("agent"));
    assert!(st.authenticated() && st.succeeded());
    assert_eq!(
        st.auth.iter().map(|a| a.name()).collect::<Vec<_>>(),
        ["MD5Password", "Ok"]
    );
    assert!(!format!("{out:?}").contains("secret"));
}

#[test]
fn pipelined_extended_protocol_carries_sql_through_named_and_unnamed_statements() {
    let (mut c, _) = logged_in();
    // Two pipelined executions in one Sync group, then reuse of the named statement.
    let mut req = parse("s1", "SELECT name FROM customers WHERE id = $1");
    req.extend(parse("", "UPDATE customers SET seen = true"));
    req.extend(bind("p1", "s1", &[]));
    req.extend(describe_portal("p1"));
    req.extend(execute("p1"));
    req.extend(bind("", "", &[]));
    req.extend(execute(""));
    req.extend(sync());
    // The unnamed statement is replaced before the first Execute is answered: the text was
    // bound at Bind time, so the answers still carry the right SQL.
    req.extend(parse("", "DELETE FROM audit"));
    req.extend(bind("", "s1", &[]));
    req.extend(execute(""));
    req.extend(sync());
    assert!(c.feed(C, &req, 10).is_empty());
    let mut resp = msg(b'1', &[]);
    resp.extend(msg(b'1', &[]));
    resp.extend(msg(b'2', &[]));
    resp.extend(row_description(&[("name", 0)]));
    resp.extend(data_row(&[Some(b"Ada Lovelace")]));
    resp.extend(complete("SELECT 1"));
    resp.extend(msg(b'2', &[]));
    resp.extend(complete("UPDATE 7"));
    resp.extend(ready());
    resp.extend(msg(b'1', &[]));
    resp.extend(msg(b'2', &[]));
    resp.extend(data_row(&[Some(b"Grace Hopper")]));
    resp.extend(complete("SELECT 1"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 20);
    assert_eq!(out.len(), 3, "{out:#?}");
    assert_eq!(
        out[0].sql.as_deref(),
        Some("SELECT name FROM customers WHERE id = $1")
    );
    assert_eq!(out[0].statement.as_deref(), Some("s1"));
    assert_eq!(out[0].portal.as_deref(), Some("p1"));
    assert_eq!(out[0].rows, Some(1));
    assert_eq!(out[0].samples[0].columns[0].name, "name");
    assert_eq!(
        out[0].samples[0].rows[0][0].value,
        PgValue::Text("Ada Lovelace".into())
    );
    assert_eq!(
        out[1].sql.as_deref(),
        Some("UPDATE customers SET seen = true")
    );
    assert_eq!(out[1].command_tag.as_deref(), Some("UPDATE 7"));
    assert_eq!(out[1].rows, Some(7));
    assert_eq!(
        out[2].sql.as_deref(),
        Some("SELECT name FROM customers WHERE id = $1")
    );
    assert_eq!(
        out[2].samples[0].rows[0][0].value,
        PgValue::Text("Grace Hopper".into())
    );
    assert!(
        out.iter()
            .all(|e| e.user.as_deref() == Some("alice") && !e.flags.partial)
    );
    assert!(
        out.iter()
            .all(|e| e.request_bytes > 0 && e.response_bytes > 0)
    );
    assert_eq!(c.stats().stitcher.unmatched_responses, 0);
}

#[test]
fn parse_error_reports_the_statement_and_skips_to_sync() {
    let (mut c, _) = logged_in();
    let mut req = parse("", "SELEC 1");
    req.extend(bind("", "", &[]));
    req.extend(execute(""));
    req.extend(sync());
    c.feed(C, &req, 10);
    let mut resp = error("42601", "syntax error at or near \"SELEC\"");
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, PgExchangeKind::ExtendedQuery);
    assert_eq!(out[0].sql.as_deref(), Some("SELEC 1"));
    assert_eq!(
        out[0].error.as_ref().map(|e| e.code.as_str()),
        Some("42601")
    );
    assert_eq!(c.stats().stitcher.unmatched_responses, 0);
}

#[test]
fn multi_statement_simple_query_gives_one_exchange_per_statement() {
    let (mut c, _) = logged_in();
    let sql =
        "BEGIN; INSERT INTO t VALUES (1),(2),(3); SELECT a, b FROM t WHERE c <> ';'; COMMIT;\n";
    c.feed(C, &query(sql), 10);
    let mut resp = complete("BEGIN");
    resp.extend(complete("INSERT 0 3"));
    resp.extend(row_description(&[("a", 0), ("b", 1)]));
    resp.extend(data_row(&[Some(b"1"), Some(&[0, 0, 0, 7])]));
    resp.extend(data_row(&[None, Some(&[1])]));
    resp.extend(complete("SELECT 2"));
    resp.extend(complete("COMMIT"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    let texts: Vec<_> = out.iter().map(|e| e.sql.as_deref().unwrap_or("")).collect();
    assert_eq!(
        texts,
        [
            "BEGIN",
            "INSERT INTO t VALUES (1),(2),(3)",
            "SELECT a, b FROM t WHERE c <> ';'",
            "COMMIT"
        ]
    );
    let tags: Vec<_> = out.iter().map(|e| e.command_tags.clone()).collect();
    assert_eq!(tags, [["BEGIN"], ["INSERT 0 3"], ["SELECT 2"], ["COMMIT"]]);
    let rows: Vec<_> = out.iter().map(|e| e.rows).collect();
    assert_eq!(rows, [None, Some(3), Some(2), None]);
    assert!(
        out.iter()
            .all(|e| e.kind == PgExchangeKind::SimpleQuery && e.succeeded())
    );
    assert!(out.iter().all(|e| e.user.as_deref() == Some("alice")));
    // the request's bytes go to the first statement; every statement got its response bytes
    assert_eq!(out[0].request_bytes, query(sql).len() as u64);
    assert!(out[1..].iter().all(|e| e.request_bytes == 0));
    assert!(out.iter().all(|e| e.response_bytes > 0));
    let e = &out[2];
    assert_eq!((e.data_rows, e.samples.len()), (2, 1));
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, e)| i == 2 || e.samples.is_empty())
    );
    let set = &e.samples[0];
    assert_eq!(set.rows[0][0].value, PgValue::Text("1".into()));
    assert_eq!(set.rows[0][1].value, PgValue::Binary(vec![0, 0, 0, 7]));
    assert_eq!(set.rows[1][0].value, PgValue::Null);
    // one statement (a trailing semicolon does not make two): one exchange, text as sent
    c.feed(C, &query("SELECT 1;\n"), 12);
    let mut resp = complete("SELECT 1");
    resp.extend(ready());
    let out = c.feed(S, &resp, 13);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sql.as_deref(), Some("SELECT 1;\n"));
}

#[test]
fn multi_statement_simple_query_fed_byte_by_byte_then_cut() {
    // the responses of a three-statement query, fed one byte at a time, then the connection
    // ends before the third statement finished: the first two come out whole (the second
    // once the connection ends: only the next response message could start the third)
    let (mut c, _) = logged_in();
    c.feed(C, &query("UPDATE t SET a = 1; DELETE FROM t; VACUUM t"), 10);
    let mut out = Vec::new();
    let mut resp = complete("UPDATE 4");
    resp.extend(complete("DELETE 4"));
    for b in resp {
        out.extend(c.feed(S, &[b], 11));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].sql.as_deref(), out[0].rows),
        (Some("UPDATE t SET a = 1"), Some(4))
    );
    assert!(!out[0].flags.partial);
    let rest = c.flush();
    let texts: Vec<_> = rest
        .iter()
        .map(|e| e.sql.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(texts, ["DELETE FROM t", "VACUUM t"]);
    assert_eq!(rest[0].command_tag.as_deref(), Some("DELETE 4"));
    assert_eq!(rest[0].start_ts_ns, 11);
    assert!(!rest[0].flags.partial);
    assert!(rest[1].flags.partial && rest[1].command_tag.is_none());
}

#[test]
fn statements_the_server_ran_as_one_share_an_exchange() {
    // the split saw three statements, the server ran two (say a body it reads differently):
    // the last exchange takes the text of the statements no CommandComplete answered
    let (mut c, _) = logged_in();
    c.feed(C, &query("SELECT 1; SELECT 2; SELECT 3"), 10);
    let mut resp = complete("SELECT 1");
    resp.extend(complete("SELECT 1"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    let texts: Vec<_> = out.iter().map(|e| e.sql.as_deref().unwrap_or("")).collect();
    assert_eq!(texts, ["SELECT 1", "SELECT 2; SELECT 3"]);
    assert_eq!(c.stats().stitcher.statements_not_run, 0);
}

#[test]
fn empty_query_notice_and_copy_out_are_noted() {
    let (mut c, _) = logged_in();
    c.feed(C, &query(""), 10);
    let mut resp = msg(b'I', &[]);
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    assert_eq!(out.len(), 1);
    assert!(out[0].command_tag.is_none() && out[0].error.is_none());

    c.feed(C, &query("COPY customers TO STDOUT"), 12);
    let mut resp = msg(b'H', &[0, 0, 1, 0, 0]);
    resp.extend(msg(b'd', b"1\tAda\n"));
    resp.extend(msg(b'd', b"2\tGrace\n"));
    resp.extend(msg(b'c', &[]));
    resp.extend(complete("COPY 2"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 13);
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.copy_out);
    assert_eq!(out[0].rows, Some(2));
}

#[test]
fn row_sampling_is_bounded() {
    let (mut c, _) = logged_in();
    c.feed(C, &query("SELECT * FROM big"), 10);
    let long = vec![b'x'; 1000];
    let mut resp = row_description(&[("v", 0)]);
    for _ in 0..300 {
        resp.extend(data_row(&[Some(&long)]));
    }
    resp.extend(complete("SELECT 300"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    let e = &out[0];
    assert_eq!(e.data_rows, 300);
    assert_eq!(e.samples[0].rows_seen, 300);
    assert_eq!(e.samples[0].rows.len(), PgConfig::default().max_sample_rows);
    let v = &e.samples[0].rows[0][0];
    assert!(v.truncated);
    assert_eq!(v.full_len, 1000);
    assert_eq!(v.value, PgValue::Text("x".repeat(256)));
}

#[test]
fn oversized_query_is_cut_and_counted() {
    let config = PgConfig {
        max_message_len: 1024,
        max_sql_len: 100,
        ..PgConfig::default()
    };
    let mut c = PgConnection::new(config);
    c.feed(C, &startup("bob", "db"), 1);
    let mut s = auth(0, &[]);
    s.extend(ready());
    c.feed(S, &s, 2);
    let sql = format!("SELECT '{}'", "y".repeat(5000));
    let q = query(&sql);
    // Fed in small pieces: the buffer never holds the whole message.
    for chunk in q.chunks(300) {
        c.feed(C, chunk, 3);
    }
    let mut resp = complete("SELECT 1");
    resp.extend(ready());
    let out = c.feed(S, &resp, 4);
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.truncated);
    assert_eq!(out[0].sql.as_deref().map(str::len), Some(100));
    assert_eq!(out[0].request_bytes, q.len() as u64);
    assert_eq!(c.stats().oversized_messages, 1);
}

#[test]
fn gap_inside_a_data_row_is_skipped_exactly() {
    let (mut c, _) = logged_in();
    c.feed(C, &query("SELECT v FROM t"), 10);
    let mut resp = row_description(&[("v", 0)]);
    let row = data_row(&[Some(&[b'z'; 100])]);
    resp.extend(&row[..20]);
    c.feed(S, &resp, 11);
    c.gap(S, 50);
    let mut rest = row[70..].to_vec();
    rest.extend(complete("SELECT 1"));
    rest.extend(ready());
    let out = c.feed(S, &rest, 12);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].command_tag.as_deref(), Some("SELECT 1"));
    assert!(out[0].flags.partial);
    let stats = c.stats();
    assert_eq!(stats.resyncs, 0, "{stats:?}");
    assert_eq!(stats.gap_bytes, 50);
}

#[test]
fn gap_across_boundaries_resyncs_at_next_plausible_message() {
    let (mut c, _) = logged_in();
    c.feed(C, &query("SELECT v FROM t"), 10);
    let mut resp = row_description(&[("v", 0)]);
    for i in 0..10u8 {
        resp.extend(data_row(&[Some(&[b'a' + i; 30])]));
    }
    resp.extend(complete("SELECT 10"));
    resp.extend(ready());
    // Lose bytes from the middle of row 2 to the middle of row 5, with nothing buffered.
    let cut_from = 60;
    let cut_to = 200;
    c.feed(S, &resp[..cut_from], 11);
    let before = c.stats().server_frames;
    // Drop the partial message buffered so far by reporting the rest of it plus more as lost.
    c.gap(S, (cut_to - cut_from) as u64);
    let out = c.feed(S, &resp[cut_to..], 12);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].command_tag.as_deref(), Some("SELECT 10"));
    assert!(out[0].flags.partial);
    assert!(c.stats().server_frames > before);
    // Later traffic parses normally.
    c.feed(C, &query("SELECT 1"), 13);
    let mut r = complete("SELECT 1");
    r.extend(ready());
    let out = c.feed(S, &r, 14);
    assert_eq!(out.len(), 1);
    assert!(!out[0].flags.partial);
}

#[test]
fn attaching_mid_connection_starts_at_a_query() {
    let mut c = PgConnection::new(PgConfig::default());
    // Server bytes from an earlier response arrive first (tail of a DataRow), then a query.
    c.feed(S, b"tail of an old row\0\0\0", 1);
    c.feed(C, &query("SELECT 42"), 2);
    let mut r = row_description(&[("?column?", 0)]);
    r.extend(data_row(&[Some(b"42")]));
    r.extend(complete("SELECT 1"));
    r.extend(ready());
    let out = c.feed(S, &r, 3);
    let q = out
        .iter()
        .find(|e| e.kind == PgExchangeKind::SimpleQuery)
        .expect("query");
    assert_eq!(q.sql.as_deref(), Some("SELECT 42"));
    assert_eq!(q.rows, Some(1));
    assert!(q.user.is_none());
}

#[test]
fn ssl_request_refused_then_plaintext_continues() {
    let mut c = PgConnection::new(PgConfig::default());
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend(80_877_103u32.to_be_bytes());
    c.feed(C, &ssl, 1);
    let out = c.feed(S, b"N", 2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, PgExchangeKind::SslRequest);
    assert_eq!(out[0].encryption_accepted, Some(false));
    c.feed(C, &startup("u", "d"), 3);
    let mut s = auth(3, &[]);
    c.feed(S, &s, 4);
    c.feed(C, &msg(b'p', &cstr("hunter2")), 5);
    s = auth(0, &[]);
    s.extend(ready());
    let out = c.feed(S, &s, 6);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].auth.iter().map(|a| a.name()).collect::<Vec<_>>(),
        ["CleartextPassword", "Ok"]
    );
    assert!(!format!("{out:?}").contains("hunter2"));
}

#[test]
fn command_tag_row_counts() {
    assert_eq!(rows_from_command_tag("SELECT 5"), Some(5));
    assert_eq!(rows_from_command_tag("INSERT 0 3"), Some(3));
    assert_eq!(rows_from_command_tag("UPDATE 2"), Some(2));
    assert_eq!(rows_from_command_tag("DELETE 0"), Some(0));
    assert_eq!(rows_from_command_tag("MERGE 4"), Some(4));
    assert_eq!(rows_from_command_tag("COPY 9"), Some(9));
    assert_eq!(rows_from_command_tag("CREATE TABLE"), None);
    assert_eq!(rows_from_command_tag("BEGIN"), None);
}

#[test]
fn bind_result_formats_flag_binary_values() {
    let (mut c, _) = logged_in();
    let mut req = parse("", "SELECT id, name FROM users");
    req.extend(bind("", "", &[1, 0]));
    req.extend(describe_portal(""));
    req.extend(execute(""));
    req.extend(sync());
    c.feed(C, &req, 10);
    let mut resp = msg(b'1', &[]);
    resp.extend(msg(b'2', &[]));
    resp.extend(row_description(&[("id", 1), ("name", 0)]));
    resp.extend(data_row(&[
        Some(&[0, 0, 0, 0, 0, 0, 0, 9]),
        Some("Zoë".as_bytes()),
    ]));
    resp.extend(complete("SELECT 1"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    assert_eq!(out.len(), 1);
    let row = &out[0].samples[0].rows[0];
    assert_eq!(row[0].value, PgValue::Binary(vec![0, 0, 0, 0, 0, 0, 0, 9]));
    assert_eq!(row[1].value, PgValue::Text("Zoë".into()));
    assert_eq!(
        out[0].samples[0]
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["id", "name"]
    );
}

#[test]
fn copy_in_is_noted_and_its_bytes_counted() {
    let (mut c, _) = logged_in();
    c.feed(C, &query("COPY t FROM STDIN"), 10);
    c.feed(S, &msg(b'G', &[0, 0, 1, 0, 0]), 11);
    let mut data = msg(b'd', b"1\tx\n2\ty\n");
    data.extend(msg(b'c', &[]));
    c.feed(C, &data, 12);
    let mut resp = complete("COPY 2");
    resp.extend(ready());
    let out = c.feed(S, &resp, 13);
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.copy_in && !out[0].flags.copy_out);
    assert_eq!(out[0].rows, Some(2));
    assert_eq!(
        out[0].request_bytes,
        (query("COPY t FROM STDIN").len() + data.len()) as u64
    );
}

#[test]
fn cancel_request_and_terminate_are_one_way() {
    let mut c = PgConnection::new(PgConfig::default());
    let mut cancel = 16u32.to_be_bytes().to_vec();
    cancel.extend(80_877_102u32.to_be_bytes());
    cancel.extend(4242u32.to_be_bytes());
    cancel.extend(0xdead_beefu32.to_be_bytes());
    let out = c.feed(C, &cancel, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, PgExchangeKind::CancelRequest);
    let (mut c, _) = logged_in();
    let out = c.feed(C, &msg(b'X', &[]), 5);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, PgExchangeKind::Terminate);
    assert_eq!(out[0].user.as_deref(), Some("alice"));
}

#[test]
fn gssenc_accepted_stops_postgres_parsing() {
    let mut c = PgConnection::new(PgConfig::default());
    let mut gss = 8u32.to_be_bytes().to_vec();
    gss.extend(80_877_104u32.to_be_bytes());
    c.feed(C, &gss, 1);
    let out = c.feed(S, b"G", 2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, PgExchangeKind::GssEncRequest);
    assert_eq!(out[0].encryption_accepted, Some(true));
    assert!(c.feed(C, &query("SELECT 1"), 3).is_empty());
    assert_eq!(
        c.state(),
        chainwatch_parser_workers::protocols::postgres::PgConnectionState::Encrypted
    );
    assert!(c.stats().encrypted_bytes > 0);
}

#[test]
fn error_in_simple_query_aborts_and_is_reported() {
    let (mut c, _) = logged_in();
    c.feed(C, &query("SELECT 1; SELECT * FROM missing; SELECT 3"), 10);
    let mut resp = row_description(&[("?column?", 0)]);
    resp.extend(data_row(&[Some(b"1")]));
    resp.extend(complete("SELECT 1"));
    resp.extend(error("42P01", "relation \"missing\" does not exist"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 11);
    // the first statement ran; the second failed; the server never ran the third
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].sql.as_deref(), Some("SELECT 1"));
    assert_eq!(out[0].command_tags, ["SELECT 1"]);
    assert!(out[0].succeeded());
    assert_eq!(out[1].sql.as_deref(), Some("SELECT * FROM missing"));
    let e = out[1].error.as_ref().expect("error");
    assert_eq!((e.severity.as_str(), e.code.as_str()), ("ERROR", "42P01"));
    assert_eq!(e.message, "relation \"missing\" does not exist");
    assert!(out[1].command_tags.is_empty());
    assert!(!out[1].succeeded());
    assert_eq!(c.stats().stitcher.statements_not_run, 1);
}

#[test]
fn statement_table_is_bounded_and_evictions_counted() {
    let config = PgConfig {
        max_statements: 4,
        ..PgConfig::default()
    };
    let mut c = PgConnection::new(config);
    c.feed(C, &startup("u", "d"), 1);
    let mut s = auth(0, &[]);
    s.extend(ready());
    c.feed(S, &s, 2);
    let mut req = Vec::new();
    for i in 0..10 {
        req.extend(parse(&format!("s{i}"), &format!("SELECT {i}")));
    }
    req.extend(sync());
    c.feed(C, &req, 3);
    let mut resp = Vec::new();
    for _ in 0..10 {
        resp.extend(msg(b'1', &[]));
    }
    resp.extend(ready());
    c.feed(S, &resp, 4);
    assert_eq!(c.stats().stitcher.statement_evictions, 6);
    // An evicted statement executed later has no text: flagged partial, counted.
    let mut req = bind("", "s0", &[]);
    req.extend(execute(""));
    req.extend(sync());
    c.feed(C, &req, 5);
    let mut resp = msg(b'2', &[]);
    resp.extend(complete("SELECT 1"));
    resp.extend(ready());
    let out = c.feed(S, &resp, 6);
    assert_eq!(out.len(), 1);
    assert!(out[0].sql.is_none() && out[0].flags.partial);
    assert!(c.stats().stitcher.unknown_statements >= 1);
}
