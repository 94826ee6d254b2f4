//! Joining a connection mid-way never invents a header. A reference HPACK encoder (indexing
//! everything it can, so later blocks lean on the dynamic table) writes random conversations;
//! decoded from the start they must round-trip exactly, and decoded after skipping a random
//! prefix (reported as a gap) every header, pseudo-header and status that comes out must be
//! one the stream really carried.

use chainwatch_parser_workers::protocols::Direction;
use chainwatch_parser_workers::protocols::http2::hpack::STATIC_TABLE;
use chainwatch_parser_workers::protocols::http2::{
    CONNECTION_PREFACE, Http2Config, Http2Connection, Http2Exchange,
};
use proptest::prelude::*;

/// A small HPACK encoder: indexed when the pair is in a table, else literal with incremental
/// indexing (static name index when there is one), raw strings.
struct RefEncoder {
    table: Vec<(String, String)>,
}

impl RefEncoder {
    fn size(&self) -> usize {
        self.table.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
    }

    fn int(out: &mut Vec<u8>, first: u8, prefix: u32, mut v: usize) {
        let max = (1usize << prefix) - 1;
        if v < max {
            out.push(first | v as u8);
            return;
        }
        out.push(first | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128 + 128) as u8);
            v /= 128;
        }
        out.push(v as u8);
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        Self::int(out, 0, 7, s.len());
        out.extend_from_slice(s.as_bytes());
    }

    fn encode(&mut self, fields: &[(String, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            let pair = |(n, v): &(&str, &str)| n == name && v == value;
            if let Some(i) = STATIC_TABLE.iter().position(pair) {
                Self::int(&mut out, 0x80, 7, i + 1);
                continue;
            }
            if let Some(i) = self.table.iter().position(|(n, v)| n == name && v == value) {
                Self::int(&mut out, 0x80, 7, 62 + i);
                continue;
            }
            match STATIC_TABLE.iter().position(|(n, _)| n == name) {
                Some(i) => Self::int(&mut out, 0x40, 6, i + 1),
                None => {
                    out.push(0x40);
                    Self::string(&mut out, name);
                }
            }
            Self::string(&mut out, value);
            self.table.insert(0, (name.clone(), value.clone()));
            while self.size() > 4096 {
                self.table.pop();
            }
        }
        out
    }
}

fn frame(ty: u8, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, fl];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[derive(Debug, Clone)]
struct Call {
    path: String,
    extra: Vec<(String, String)>,
    status: u16,
    resp_extra: Vec<(String, String)>,
    body: Vec<u8>,
}

fn call() -> impl Strategy<Value = Call> {
    let pick = |pool: &'static [&'static str]| prop::sample::select(pool).prop_map(str::to_string);
    let header = (
        pick(&[
            "content-type",
            "user-agent",
            "x-request-id",
            "accept",
            "grpc-timeout",
            "x-tenant",
        ]),
        pick(&[
            "application/grpc",
            "a",
            "tenant-7",
            "text/plain",
            "1S",
            "openai-python/1.0",
        ]),
    );
    (
        pick(&[
            "/",
            "/v1/chat/completions",
            "/qdrant.Points/Search",
            "/index.html",
            "/a/b",
        ]),
        prop::collection::vec(header.clone(), 0..5),
        prop::sample::select(&[200u16, 204, 404, 500, 302][..]),
        prop::collection::vec(header, 0..4),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(path, extra, status, resp_extra, body)| Call {
            path,
            extra,
            status,
            resp_extra,
            body,
        })
}

fn request_fields(c: &Call) -> Vec<(String, String)> {
    let mut f = vec![
        (":method".to_string(), "POST".to_string()),
        (":scheme".to_string(), "https".to_string()),
        (":path".to_string(), c.path.clone()),
        (":authority".to_string(), "api.example.com".to_string()),
    ];
    f.extend(c.extra.iter().cloned());
    f
}

fn response_fields(c: &Call) -> Vec<(String, String)> {
    let mut f = vec![(":status".to_string(), c.status.to_string())];
    f.extend(c.resp_extra.iter().cloned());
    f
}

/// Segments of the conversation: each request, then each response, one segment per frame pair.
fn conversation(calls: &[Call]) -> Vec<(Direction, Vec<u8>)> {
    let (mut client, mut server) = (RefEncoder { table: vec![] }, RefEncoder { table: vec![] });
    let mut c = CONNECTION_PREFACE.to_vec();
    c.extend(frame(4, 0, 0, &[]));
    let mut segs = vec![
        (Direction::ClientToServer, c),
        (Direction::ServerToClient, frame(4, 0, 0, &[])),
    ];
    for (i, call) in calls.iter().enumerate() {
        let id = 2 * i as u32 + 1;
        let mut bytes = frame(1, 4, id, &client.encode(&request_fields(call)));
        bytes.extend(frame(0, 1, id, &call.body));
        segs.push((Direction::ClientToServer, bytes));
        let mut bytes = frame(1, 4, id, &server.encode(&response_fields(call)));
        bytes.extend(frame(0, 1, id, &call.body));
        segs.push((Direction::ServerToClient, bytes));
    }
    segs
}

fn run(segs: &[(Direction, Vec<u8>)], skip: usize) -> Vec<Http2Exchange> {
    let mut conn = Http2Connection::new(Http2Config::default());
    let mut out = Vec::new();
    for (i, (dir, bytes)) in segs.iter().enumerate() {
        if i < skip {
            conn.gap(*dir, bytes.len() as u64);
        } else {
            out.extend(conn.feed(*dir, bytes, i as u64));
        }
    }
    out.extend(conn.flush());
    out
}

fn redacted(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn from_the_start_everything_round_trips(calls in prop::collection::vec(call(), 1..12)) {
        let out = run(&conversation(&calls), 0);
        prop_assert_eq!(out.len(), calls.len());
        for (ex, c) in out.iter().zip(&calls) {
            prop_assert_eq!(ex.path.as_deref(), Some(c.path.as_str()));
            prop_assert_eq!(ex.status, Some(c.status));
            let req: Vec<_> = ex.request_headers.iter().map(|h| redacted(&h.name, &h.value)).collect();
            let resp: Vec<_> = ex.response_headers.iter().map(|h| redacted(&h.name, &h.value)).collect();
            prop_assert_eq!(&req, &c.extra);
            prop_assert_eq!(&resp, &c.resp_extra);
            prop_assert_eq!(&ex.response_body, &c.body);
            prop_assert!(!ex.flags.headers_incomplete && !ex.flags.partial);
        }
    }

    #[test]
    fn joining_late_never_invents_a_header(calls in prop::collection::vec(call(), 1..12), skip in 0usize..26) {
        let segs = conversation(&calls);
        let out = run(&segs, skip.min(segs.len()));
        for ex in &out {
            let i = (ex.stream_id as usize).saturating_sub(1) / 2;
            prop_assert!(ex.stream_id % 2 == 1 && i < calls.len(), "stream {} never existed", ex.stream_id);
            let c = &calls[i];
            if let Some(p) = &ex.path { prop_assert_eq!(p, &c.path); }
            if let Some(m) = &ex.method { prop_assert_eq!(m, "POST"); }
            if let Some(a) = &ex.authority { prop_assert_eq!(a, "api.example.com"); }
            if let Some(s) = ex.status { prop_assert_eq!(s, c.status); }
            for h in &ex.request_headers {
                prop_assert!(c.extra.contains(&redacted(&h.name, &h.value)), "invented request header {:?}", h);
            }
            for h in &ex.response_headers {
                prop_assert!(c.resp_extra.contains(&redacted(&h.name, &h.value)), "invented response header {:?}", h);
            }
            let complete = ex.path.is_some() && ex.status.is_some()
                && ex.request_headers.len() == c.extra.len() && ex.response_headers.len() == c.resp_extra.len();
            prop_assert!(complete || ex.flags.headers_incomplete || ex.flags.partial, "{:?}", ex);
        }
    }
}

#[test]
fn joining_late_flags_what_it_cannot_decode() {
    let c = Call {
        path: "/v1/chat/completions".to_string(),
        extra: vec![("x-tenant".to_string(), "tenant-7".to_string())],
        status: 200,
        resp_extra: vec![("content-type".to_string(), "text/plain".to_string())],
        body: b"{}".to_vec(),
    };
    let calls = vec![c.clone(), c.clone(), c];
    let segs = conversation(&calls);
    // Skip the preface, both SETTINGS and the first call: the later calls are fully indexed.
    let out = run(&segs, 4);
    assert_eq!(out.len(), 2);
    for ex in &out {
        assert!(ex.flags.headers_incomplete, "{ex:?}");
        assert_eq!(
            ex.method.as_deref(),
            Some("POST"),
            "static entries still decode"
        );
        assert_eq!(ex.path, None, "dynamic entries are not invented");
        assert!(ex.request_headers.is_empty());
        assert_eq!(ex.status, Some(200));
    }
}
