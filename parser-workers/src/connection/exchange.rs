//! What a connection FSM hands on: one protocol exchange (bodies included, for the semantics
//! layer) with the identity of its connection and the stream position its request started at.

use chainwatch_schemas::{ConnRole, SocketTuple};

use crate::protocols::grpc::GrpcCall;
use crate::protocols::http1::Http1Exchange;
use crate::protocols::http2::Http2Exchange;
use crate::protocols::postgres::PgExchange;
use crate::protocols::tls::TlsHello;

/// Who a connection belongs to, copied from its first record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionMeta {
    pub node: String,
    pub conn_id: String,
    pub tgid: i32,
    pub process_start_ns: i64,
    pub comm: String,
    /// The watched process's role as the capture reported it (`Unknown` if it did not).
    pub role: ConnRole,
    pub tuple: Option<SocketTuple>,
}

/// The TLS handshake of a connection whose plaintext we do not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsHandshake {
    pub client_hello: TlsHello,
    /// The ServerHello when it was seen before the exchange was emitted.
    pub server_hello: Option<TlsHello>,
    pub ts_ns: u64,
    /// Bytes of the ClientHello stream fed up to the hello.
    pub client_bytes: u64,
}

/// One exchange of whichever protocol the connection speaks.
#[derive(Debug, Clone)]
pub enum ProtocolExchange {
    Http1(Box<Http1Exchange>),
    /// An HTTP/2 stream, and its gRPC decoding when the content-type was application/grpc.
    Http2(Box<Http2Exchange>, Option<Box<GrpcCall>>),
    Postgres(Box<PgExchange>),
    Tls(Box<TlsHandshake>),
}

impl ProtocolExchange {
    /// Start and end timestamps (ns).
    pub fn timestamps(&self) -> (u64, u64) {
        match self {
            ProtocolExchange::Http1(e) => (e.start_ns, e.end_ns),
            ProtocolExchange::Http2(e, _) => (e.start_ts_ns, e.end_ts_ns),
            ProtocolExchange::Postgres(e) => (e.start_ts_ns, e.end_ts_ns),
            ProtocolExchange::Tls(t) => (t.ts_ns, t.ts_ns),
        }
    }
}

/// An exchange with what the event layer needs to name it.
#[derive(Debug, Clone)]
pub struct ParsedExchange {
    pub meta: ConnectionMeta,
    pub exchange: ProtocolExchange,
    /// Client-to-server stream offset of the segment the request started in (the anchor of
    /// the deterministic event id), and the exchange's rank among those sharing that anchor.
    pub request_offset: u64,
    pub rank_at_offset: u32,
}
