//! What the PostgreSQL stitcher emits: one `PgExchange` per startup, statement execution or
//! one-way message, with the session identity, SQL text, outcome and a bounded row sample.

use super::message::{AuthRequest, PgColumn, PgNotice};

/// What kind of exchange this is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgExchangeKind {
    /// SSLRequest and its one-byte answer.
    SslRequest,
    /// GSSENCRequest and its one-byte answer.
    GssEncRequest,
    /// StartupMessage through authentication to the first ReadyForQuery (or the login failure).
    Startup,
    /// CancelRequest (one-way).
    CancelRequest,
    /// One statement of a 'Q' message up to its CommandComplete (the last one up to
    /// ReadyForQuery); a 'Q' holding several statements gives one exchange per statement.
    SimpleQuery,
    /// One Execute of the extended protocol (or the Parse/Bind that failed before it).
    ExtendedQuery,
    /// FunctionCall up to ReadyForQuery.
    FunctionCall,
    /// Terminate (one-way).
    Terminate,
    /// A server response with no request seen (attached mid-connection, or lost bytes).
    #[default]
    Unmatched,
}

impl PgExchangeKind {
    /// Short lowercase name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            PgExchangeKind::SslRequest => "ssl_request",
            PgExchangeKind::GssEncRequest => "gssenc_request",
            PgExchangeKind::Startup => "startup",
            PgExchangeKind::CancelRequest => "cancel",
            PgExchangeKind::SimpleQuery => "simple_query",
            PgExchangeKind::ExtendedQuery => "extended_query",
            PgExchangeKind::FunctionCall => "function_call",
            PgExchangeKind::Terminate => "terminate",
            PgExchangeKind::Unmatched => "unmatched",
        }
    }
}

/// A sampled DataRow value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgValue {
    /// SQL NULL.
    Null,
    /// Text format, decoded as UTF-8 (invalid sequences replaced).
    Text(String),
    /// Binary format (or text that was not UTF-8): the raw bytes.
    Binary(Vec<u8>),
}

/// One sampled value with its length on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSampledValue {
    /// The (possibly cut) value.
    pub value: PgValue,
    /// Length of the whole value on the wire (0 for NULL).
    pub full_len: usize,
    /// Whether the value was cut to the value bound.
    pub truncated: bool,
}

/// One result set: its columns and the first rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgResultSample {
    /// Columns from the RowDescription (bounded).
    pub columns: Vec<PgColumn>,
    /// Sampled rows (bounded), each with at most as many values as sampled columns.
    pub rows: Vec<Vec<PgSampledValue>>,
    /// DataRows seen in this result set, sampled or not.
    pub rows_seen: u64,
}

/// Flags on an exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgExchangeFlags {
    /// Request or response incomplete (connection ended, bytes lost, pipeline bound hit).
    pub partial: bool,
    /// Some content was cut by a bound (SQL text, rows, values, tags, result sets).
    pub truncated: bool,
    /// Execute stopped at its row limit (PortalSuspended).
    pub suspended: bool,
    /// COPY FROM STDIN happened (data sent to the server).
    pub copy_in: bool,
    /// COPY TO STDOUT happened (data sent to the client).
    pub copy_out: bool,
}

/// One request/response exchange on a PostgreSQL connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgExchange {
    /// What kind of exchange.
    pub kind: PgExchangeKind,
    /// `user` from the StartupMessage.
    pub user: Option<String>,
    /// `database` from the StartupMessage.
    pub database: Option<String>,
    /// `application_name` from the StartupMessage (or ParameterStatus).
    pub application_name: Option<String>,
    /// SQL text (the statement of a simple query, or the Parse text behind an Execute).
    pub sql: Option<String>,
    /// Prepared statement name (extended protocol; empty = unnamed).
    pub statement: Option<String>,
    /// Portal name (extended protocol; empty = unnamed).
    pub portal: Option<String>,
    /// The last CommandComplete tag ("SELECT 5", "INSERT 0 3"...).
    pub command_tag: Option<String>,
    /// Every CommandComplete tag, bounded: one per statement, more only when the server ran
    /// more statements than the text was split into.
    pub command_tags: Vec<String>,
    /// Rows affected or returned according to the command tags (sum), if any tag had a count.
    pub rows: Option<u64>,
    /// DataRow messages received.
    pub data_rows: u64,
    /// The ErrorResponse, if one ended the exchange (login failure, SQL error).
    pub error: Option<PgNotice>,
    /// NoticeResponses received during the exchange (bounded).
    pub notices: Vec<PgNotice>,
    /// Authentication requests and outcome in order (startup only).
    pub auth: Vec<AuthRequest>,
    /// Answer to SSLRequest/GSSENCRequest: true = encrypted from here on.
    pub encryption_accepted: Option<bool>,
    /// Result sets with column names and sampled rows (bounded).
    pub samples: Vec<PgResultSample>,
    /// Timestamp of the first request byte (ns).
    pub start_ts_ns: u64,
    /// Timestamp of the last response message (ns); equals start for one-way messages.
    pub end_ts_ns: u64,
    /// Request bytes on the wire (all frontend messages of this exchange).
    pub request_bytes: u64,
    /// Response bytes on the wire.
    pub response_bytes: u64,
    /// Partial / truncated / suspended / COPY flags.
    pub flags: PgExchangeFlags,
}

impl PgExchange {
    /// A fresh exchange of `kind` started at `ts_ns`.
    pub fn new(kind: PgExchangeKind, ts_ns: u64) -> Self {
        PgExchange {
            kind,
            start_ts_ns: ts_ns,
            end_ts_ns: ts_ns,
            ..PgExchange::default()
        }
    }

    /// Completed without an error and without missing parts (for startup: the login worked).
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && !self.flags.partial && self.encryption_accepted != Some(false)
    }

    /// Whether the startup reached AuthenticationOk.
    pub fn authenticated(&self) -> bool {
        self.auth.contains(&AuthRequest::Ok)
    }
}

/// Rows counted by a CommandComplete tag: the last number of "SELECT 5", "INSERT 0 3",
/// "UPDATE 2", "DELETE 1", "MERGE 4", "FETCH 7", "MOVE 2", "COPY 9"; `None` for other tags.
pub fn rows_from_command_tag(tag: &str) -> Option<u64> {
    let mut words = tag.split(' ');
    let verb = words.next()?;
    if !matches!(
        verb,
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY"
    ) {
        return None;
    }
    tag.rsplit(' ').next()?.parse().ok()
}
