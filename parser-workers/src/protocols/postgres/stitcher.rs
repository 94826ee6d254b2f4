//! Pairs PostgreSQL frontend and backend messages into `PgExchange`s: startup and
//! authentication outcome, simple queries (one exchange per statement of a 'Q' holding
//! several, each matched to its CommandComplete in order), and the extended protocol
//! (Parse/Bind/Describe/Execute/Sync, pipelined) with SQL text carried from Parse to Execute
//! through named and unnamed statements and portals. Every table and queue is bounded and
//! evictions are counted.

use std::collections::VecDeque;
use std::ops::Range;

use super::config::PgConfig;
use super::exchange::{
    PgExchange, PgExchangeKind, PgResultSample, PgSampledValue, PgValue, rows_from_command_tag,
};
use super::message::{
    BackendMessage, FrontendMessage, PgColumn, PgFrame, PgMessage, PgNotice, SampledBytes,
};
use super::statements::split_statements;
use crate::protocols::parsed::{Direction, Stitcher};

/// Most authentication steps kept on a startup exchange.
const MAX_AUTH_STEPS: usize = 16;
/// Most notices kept on an exchange.
const MAX_NOTICES: usize = 8;
/// Most statements of one simple query reported apart; the rest share the last exchange.
const MAX_QUERY_STATEMENTS: usize = 64;

/// Counters of the stitcher: bounds hit and responses that matched nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgStitcherStats {
    /// Backend messages that answered no pending request.
    pub unmatched_responses: u64,
    /// Named statements evicted because the statement table was full.
    pub statement_evictions: u64,
    /// Named portals evicted because the portal table was full.
    pub portal_evictions: u64,
    /// Bind/Execute naming a statement/portal never seen (prepared before capture began).
    pub unknown_statements: u64,
    /// Pending requests completed early because the pipeline bound was hit.
    pub pending_evictions: u64,
    /// Executes skipped by the server after an error earlier in their Sync group.
    pub discarded_after_error: u64,
    /// Response bytes that could be given to no exchange.
    pub unattributed_response_bytes: u64,
    /// Statements of a multi-statement simple query that never ran (an error aborted them).
    pub statements_not_run: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Encryption,
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    FunctionCall,
}

/// A frontend request awaiting its response, in the order the server will answer.
#[derive(Debug, Clone)]
struct PendingOp {
    kind: OpKind,
    /// The exchange this request reports (Query, Execute, FunctionCall, Encryption).
    exchange: Option<PgExchange>,
    /// For Parse/Bind: what an error exchange should name.
    sql: Option<String>,
    statement: Option<String>,
    portal: Option<String>,
    /// Bind result format codes carried to Execute.
    result_formats: Vec<i16>,
    /// Index into `exchange.samples` of the result set being filled.
    current_set: Option<usize>,
    /// Columns of the result set being filled (also when no longer sampled).
    current_columns: Vec<PgColumn>,
    /// A simple query of several statements: the ones after `exchange`'s.
    script: Option<QueryScript>,
}

/// The statements of one simple query still to run, and the text they come from.
#[derive(Debug, Clone)]
struct QueryScript {
    text: String,
    /// Where the running statement (`PendingOp::exchange`) starts in `text`.
    running_from: usize,
    /// When the running statement got its CommandComplete: the next response message starts
    /// the next statement (a ReadyForQuery instead means the server ran no more of them).
    completed_at: Option<u64>,
    /// The statements after it: their range in `text` and their exchange.
    next: VecDeque<(Range<usize>, PgExchange)>,
}

impl PendingOp {
    fn new(kind: OpKind, exchange: Option<PgExchange>) -> Self {
        PendingOp {
            kind,
            exchange,
            sql: None,
            statement: None,
            portal: None,
            result_formats: Vec::new(),
            current_set: None,
            current_columns: Vec::new(),
            script: None,
        }
    }

    /// Every exchange the op holds: its own, then the statements its query never reached.
    fn into_exchanges(self) -> impl Iterator<Item = PgExchange> {
        let rest = self
            .script
            .into_iter()
            .flat_map(|s| s.next.into_iter().map(|(_, ex)| ex));
        self.exchange.into_iter().chain(rest)
    }

    /// The running statement of a simple query completed and a response to the next one
    /// came: hand back its exchange and start the next one. `None` (nothing changes) when the
    /// running statement is not complete or no statement follows.
    fn next_statement(&mut self) -> Option<PgExchange> {
        let script = self.script.as_mut()?;
        let ts_ns = script.completed_at?;
        let (range, mut next) = script.next.pop_front()?;
        script.completed_at = None;
        script.running_from = range.start;
        next.start_ts_ns = ts_ns;
        next.end_ts_ns = ts_ns;
        self.current_set = None;
        self.current_columns.clear();
        self.exchange.replace(next)
    }

    fn carries_result(&self) -> bool {
        matches!(
            self.kind,
            OpKind::Query | OpKind::Execute | OpKind::FunctionCall
        )
    }
}

#[derive(Debug, Clone, Default)]
struct Session {
    user: Option<String>,
    database: Option<String>,
    application_name: Option<String>,
}

#[derive(Debug, Clone)]
struct PortalInfo {
    statement: String,
    sql: Option<String>,
    sql_truncated: bool,
    result_formats: Vec<i16>,
}

/// The stitcher of one PostgreSQL connection.
#[derive(Debug, Clone)]
pub struct PgStitcher {
    config: PgConfig,
    session: Session,
    startup: Option<PgExchange>,
    pending: VecDeque<PendingOp>,
    /// Named and unnamed prepared statements: name -> SQL text (oldest first).
    statements: VecDeque<(String, (String, bool))>,
    /// Portals: name -> statement info (oldest first).
    portals: VecDeque<(String, PortalInfo)>,
    last_row_description: Vec<PgColumn>,
    /// Frontend bytes (and the first timestamp) not yet given to an exchange.
    request_acc: Option<(u64, u64)>,
    encrypted: bool,
    stats: PgStitcherStats,
}

impl PgStitcher {
    /// A stitcher for a new connection.
    pub fn new(config: PgConfig) -> Self {
        PgStitcher {
            config,
            session: Session::default(),
            startup: None,
            pending: VecDeque::new(),
            statements: VecDeque::new(),
            portals: VecDeque::new(),
            last_row_description: Vec::new(),
            request_acc: None,
            encrypted: false,
            stats: PgStitcherStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &PgStitcherStats {
        &self.stats
    }

    /// True once the server accepted SSLRequest/GSSENCRequest: what follows is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Whether the exchange now receiving rows still wants sampled DataRow values.
    pub fn wants_row_samples(&self) -> bool {
        match self
            .pending
            .iter()
            .find(|op| op.carries_result())
            .and_then(|op| op.exchange.as_ref())
        {
            Some(ex) => sampled_rows(ex) < self.config.max_sample_rows,
            None => true,
        }
    }

    /// Bytes were lost in `dir`: everything in flight becomes partial.
    pub fn note_gap(&mut self, _dir: Direction) {
        if let Some(s) = self.startup.as_mut() {
            s.flags.partial = true;
        }
        for op in self.pending.iter_mut() {
            let running_done = op.script.as_ref().is_some_and(|s| s.completed_at.is_some());
            let running = op.exchange.iter_mut().filter(|_| !running_done);
            let queued = op
                .script
                .iter_mut()
                .flat_map(|s| s.next.iter_mut().map(|(_, ex)| ex));
            for ex in running.chain(queued) {
                ex.flags.partial = true;
            }
        }
    }

    /// The connection ended: emit everything still in flight, flagged partial.
    pub fn flush(&mut self) -> Vec<PgExchange> {
        let mut out = Vec::new();
        if let Some(mut s) = self.startup.take() {
            s.flags.partial = true;
            out.push(s);
        }
        for op in self.pending.drain(..) {
            // A statement that got its CommandComplete is whole; the ones after it are not.
            let running_done = op.script.as_ref().is_some_and(|s| s.completed_at.is_some());
            for (i, mut ex) in op.into_exchanges().enumerate() {
                ex.flags.partial |= !(i == 0 && running_done);
                out.push(ex);
            }
        }
        out
    }

    fn new_exchange(&self, kind: PgExchangeKind, ts_ns: u64) -> PgExchange {
        let mut ex = PgExchange::new(kind, ts_ns);
        ex.user = self.session.user.clone();
        ex.database = self.session.database.clone();
        ex.application_name = self.session.application_name.clone();
        ex
    }

    fn enqueue(&mut self, op: PendingOp, out: &mut Vec<PgExchange>) {
        if self.pending.len() >= self.config.max_pending.max(1) {
            self.stats.pending_evictions += 1;
            for mut ex in self
                .pending
                .pop_front()
                .into_iter()
                .flat_map(PendingOp::into_exchanges)
            {
                ex.flags.partial = true;
                out.push(ex);
            }
        }
        self.pending.push_back(op);
    }

    /// Take the accumulated request bytes (plus `wire_len`) for a new exchange.
    fn take_request(&mut self, wire_len: usize, ts_ns: u64) -> (u64, u64) {
        let (start, bytes) = self.request_acc.take().unwrap_or((ts_ns, 0));
        (start, bytes + wire_len as u64)
    }

    fn accumulate_request(&mut self, wire_len: usize, ts_ns: u64) {
        let acc = self.request_acc.get_or_insert((ts_ns, 0));
        acc.1 += wire_len as u64;
    }

    fn remember_statement(&mut self, name: String, sql: String, truncated: bool) {
        if let Some(slot) = self.statements.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = (sql, truncated);
            return;
        }
        if self.statements.len() >= self.config.max_statements.max(1) {
            self.statements.pop_front();
            self.stats.statement_evictions += 1;
        }
        self.statements.push_back((name, (sql, truncated)));
    }

    fn remember_portal(&mut self, name: String, info: PortalInfo) {
        if let Some(slot) = self.portals.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = info;
            return;
        }
        if self.portals.len() >= self.config.max_portals.max(1) {
            self.portals.pop_front();
            self.stats.portal_evictions += 1;
        }
        self.portals.push_back((name, info));
    }

    fn frontend(&mut self, msg: FrontendMessage, wire_len: usize, ts_ns: u64) -> Vec<PgExchange> {
        let mut out = Vec::new();
        match msg {
            FrontendMessage::SslRequest | FrontendMessage::GssEncRequest => {
                let kind = if msg == FrontendMessage::SslRequest {
                    PgExchangeKind::SslRequest
                } else {
                    PgExchangeKind::GssEncRequest
                };
                let mut ex = self.new_exchange(kind, ts_ns);
                ex.request_bytes = wire_len as u64;
                self.enqueue(PendingOp::new(OpKind::Encryption, Some(ex)), &mut out);
            }
            FrontendMessage::CancelRequest { .. } => {
                let mut ex = self.new_exchange(PgExchangeKind::CancelRequest, ts_ns);
                ex.request_bytes = wire_len as u64;
                out.push(ex);
            }
            FrontendMessage::Startup {
                params, truncated, ..
            } => {
                for (k, v) in params {
                    match k.as_str() {
                        "user" => self.session.user = Some(v),
                        "database" => self.session.database = Some(v),
                        "application_name" => self.session.application_name = Some(v),
                        _ => {}
                    }
                }
                if self.session.database.is_none() {
                    // The server defaults the database to the user name.
                    self.session.database = self.session.user.clone();
                }
                if let Some(mut old) = self.startup.take() {
                    old.flags.partial = true;
                    out.push(old);
                }
                let mut ex = self.new_exchange(PgExchangeKind::Startup, ts_ns);
                ex.request_bytes = wire_len as u64;
                ex.flags.truncated = truncated;
                self.startup = Some(ex);
            }
            FrontendMessage::Password { .. } => match self.startup.as_mut() {
                Some(s) => s.request_bytes += wire_len as u64,
                None => self.accumulate_request(wire_len, ts_ns),
            },
            FrontendMessage::Query { sql, truncated } => {
                let (start, bytes) = self.take_request(wire_len, ts_ns);
                let op = self.simple_query(sql, truncated, start, bytes);
                self.enqueue(op, &mut out);
            }
            FrontendMessage::Parse {
                statement,
                sql,
                truncated,
                ..
            } => {
                self.accumulate_request(wire_len, ts_ns);
                let mut op = PendingOp::new(OpKind::Parse, None);
                op.sql = Some(sql.clone());
                op.statement = Some(statement.clone());
                self.remember_statement(statement, sql, truncated);
                self.enqueue(op, &mut out);
            }
            FrontendMessage::Bind {
                portal,
                statement,
                result_formats,
                ..
            } => {
                self.accumulate_request(wire_len, ts_ns);
                let found = self
                    .statements
                    .iter()
                    .find(|(n, _)| *n == statement)
                    .map(|(_, s)| s.clone());
                let (sql, sql_truncated) = match found {
                    Some((s, t)) => (Some(s), t),
                    None => (None, false),
                };
                if sql.is_none() {
                    self.stats.unknown_statements += 1;
                }
                let mut op = PendingOp::new(OpKind::Bind, None);
                op.sql = sql.clone();
                op.statement = Some(statement.clone());
                op.portal = Some(portal.clone());
                self.remember_portal(
                    portal,
                    PortalInfo {
                        statement,
                        sql,
                        sql_truncated,
                        result_formats,
                    },
                );
                self.enqueue(op, &mut out);
            }
            FrontendMessage::Describe { .. } => {
                self.accumulate_request(wire_len, ts_ns);
                self.enqueue(PendingOp::new(OpKind::Describe, None), &mut out);
            }
            FrontendMessage::Execute { portal, .. } => {
                let (start, bytes) = self.take_request(wire_len, ts_ns);
                let mut ex = self.new_exchange(PgExchangeKind::ExtendedQuery, start);
                ex.request_bytes = bytes;
                ex.portal = Some(portal.clone());
                let mut op = PendingOp::new(OpKind::Execute, None);
                match self.portals.iter().find(|(n, _)| *n == portal) {
                    Some((_, info)) => {
                        ex.sql = info.sql.clone();
                        ex.flags.truncated = info.sql_truncated;
                        ex.statement = Some(info.statement.clone());
                        op.result_formats = info.result_formats.clone();
                        if info.sql.is_none() {
                            ex.flags.partial = true;
                        }
                    }
                    None => {
                        self.stats.unknown_statements += 1;
                        ex.flags.partial = true;
                    }
                }
                op.exchange = Some(ex);
                self.enqueue(op, &mut out);
            }
            FrontendMessage::Close { target, name } => {
                self.accumulate_request(wire_len, ts_ns);
                if target == b'S' {
                    self.statements.retain(|(n, _)| *n != name);
                } else {
                    self.portals.retain(|(n, _)| *n != name);
                }
                self.enqueue(PendingOp::new(OpKind::Close, None), &mut out);
            }
            FrontendMessage::Sync | FrontendMessage::Flush => {
                match self
                    .pending
                    .iter_mut()
                    .rev()
                    .find_map(|op| op.exchange.as_mut())
                {
                    Some(ex) if self.request_acc.is_none() => ex.request_bytes += wire_len as u64,
                    _ => self.accumulate_request(wire_len, ts_ns),
                }
                if msg == FrontendMessage::Sync {
                    self.enqueue(PendingOp::new(OpKind::Sync, None), &mut out);
                }
            }
            FrontendMessage::Terminate => {
                let mut ex = self.new_exchange(PgExchangeKind::Terminate, ts_ns);
                ex.request_bytes = wire_len as u64;
                out.push(ex);
            }
            FrontendMessage::FunctionCall { .. } => {
                let (start, bytes) = self.take_request(wire_len, ts_ns);
                let mut ex = self.new_exchange(PgExchangeKind::FunctionCall, start);
                ex.request_bytes = bytes;
                self.enqueue(PendingOp::new(OpKind::FunctionCall, Some(ex)), &mut out);
            }
            FrontendMessage::CopyData { .. }
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail { .. } => {
                match self.result_target_mut().and_then(|op| op.exchange.as_mut()) {
                    Some(ex) => {
                        ex.request_bytes += wire_len as u64;
                        ex.flags.copy_in = true;
                    }
                    None => self.accumulate_request(wire_len, ts_ns),
                }
            }
        }
        out
    }

    /// The op of a simple query: one exchange per statement when the text holds several (the
    /// request bytes go to the first; a text cut by the SQL bound flags the last), else one
    /// exchange with the whole text.
    fn simple_query(&self, sql: String, truncated: bool, start: u64, bytes: u64) -> PendingOp {
        let exchange = |text: String, cut: bool| {
            let mut ex = self.new_exchange(PgExchangeKind::SimpleQuery, start);
            ex.sql = Some(text);
            ex.flags.truncated = cut;
            ex
        };
        let mut ranges = split_statements(&sql, MAX_QUERY_STATEMENTS).into_iter();
        let (Some(first), Some(_)) = (ranges.next(), ranges.clone().next()) else {
            let mut ex = exchange(sql, truncated);
            ex.request_bytes = bytes;
            return PendingOp::new(OpKind::Query, Some(ex));
        };
        let text_of = |r: &Range<usize>| sql.get(r.clone()).unwrap_or_default().to_string();
        let last = ranges.len();
        let next: VecDeque<_> = ranges
            .enumerate()
            .map(|(i, r)| {
                let ex = exchange(text_of(&r), truncated && i + 1 == last);
                (r, ex)
            })
            .collect();
        let mut ex = exchange(text_of(&first), false);
        ex.request_bytes = bytes;
        let mut op = PendingOp::new(OpKind::Query, Some(ex));
        op.script = Some(QueryScript {
            running_from: first.start,
            completed_at: None,
            next,
            text: sql,
        });
        op
    }

    fn result_target_mut(&mut self) -> Option<&mut PendingOp> {
        self.pending.iter_mut().find(|op| op.carries_result())
    }

    /// True between StartupMessage and the first ReadyForQuery or login failure.
    pub fn in_startup(&self) -> bool {
        self.startup.is_some()
    }

    /// Pop ops from the front up to and including the first one of `kind`, emitting any
    /// exchange popped on the way as partial. Returns the op, or None (nothing popped).
    fn pop_through(&mut self, kinds: &[OpKind], out: &mut Vec<PgExchange>) -> Option<PendingOp> {
        let idx = self
            .pending
            .iter()
            .position(|op| kinds.contains(&op.kind))?;
        for _ in 0..idx {
            for mut ex in self
                .pending
                .pop_front()
                .into_iter()
                .flat_map(PendingOp::into_exchanges)
            {
                ex.flags.partial = true;
                out.push(ex);
            }
        }
        self.pending.pop_front()
    }

    /// Pop the front op if it is of `kind`; count a mismatch otherwise.
    fn pop_front_if(&mut self, kind: OpKind) -> Option<PendingOp> {
        if self.pending.front().is_some_and(|op| op.kind == kind) {
            self.pending.pop_front()
        } else {
            self.stats.unmatched_responses += 1;
            None
        }
    }

    fn backend(&mut self, msg: BackendMessage, wire_len: usize, ts_ns: u64) -> Vec<PgExchange> {
        let mut out = Vec::new();
        if answers_a_statement(&msg)
            && let Some(done) = self.result_target_mut().and_then(PendingOp::next_statement)
        {
            out.push(done);
        }
        self.attribute_response(&msg, wire_len, ts_ns);
        match msg {
            BackendMessage::EncryptionReply { accepted, .. } => {
                match self.pop_front_if(OpKind::Encryption) {
                    Some(op) => {
                        if let Some(mut ex) = op.exchange {
                            ex.encryption_accepted = Some(accepted);
                            ex.end_ts_ns = ts_ns;
                            ex.response_bytes += wire_len as u64;
                            out.push(ex);
                        }
                        self.encrypted = accepted;
                    }
                    None => self.encrypted = accepted,
                }
            }
            BackendMessage::Authentication(a) => {
                if self.startup.is_none() {
                    self.startup = Some(self.new_exchange(PgExchangeKind::Startup, ts_ns));
                }
                if let Some(s) = self.startup.as_mut() {
                    if s.auth.len() < MAX_AUTH_STEPS {
                        s.auth.push(a);
                    } else {
                        s.flags.truncated = true;
                    }
                    s.end_ts_ns = ts_ns;
                }
            }
            BackendMessage::ParameterStatus { name, value } => {
                let slot = match name.as_str() {
                    "application_name" => Some(&mut self.session.application_name),
                    "session_authorization" => Some(&mut self.session.user),
                    _ => None,
                };
                if let Some(slot) = slot
                    && slot.is_none()
                    && !value.is_empty()
                {
                    *slot = Some(value.clone());
                    if let Some(s) = self.startup.as_mut() {
                        if name == "application_name" {
                            s.application_name.get_or_insert(value);
                        } else {
                            s.user.get_or_insert(value);
                        }
                    }
                }
            }
            BackendMessage::ReadyForQuery { .. } => {
                if let Some(mut s) = self.startup.take() {
                    s.end_ts_ns = ts_ns;
                    out.push(s);
                    return out;
                }
                match self.pop_through(
                    &[OpKind::Query, OpKind::Sync, OpKind::FunctionCall],
                    &mut out,
                ) {
                    Some(op) => {
                        let ex = self.end_of_query(op);
                        if let Some(mut ex) = ex {
                            ex.end_ts_ns = ts_ns;
                            out.push(ex);
                        }
                    }
                    None => self.stats.unmatched_responses += 1,
                }
            }
            BackendMessage::Error(n) => self.on_error(n, wire_len, ts_ns, &mut out),
            BackendMessage::Notice(n) => {
                let target = match self.startup.as_mut() {
                    Some(s) => Some(s),
                    None => self
                        .pending
                        .iter_mut()
                        .find(|op| op.carries_result())
                        .and_then(|op| op.exchange.as_mut()),
                };
                if let Some(ex) = target {
                    if ex.notices.len() < MAX_NOTICES {
                        ex.notices.push(n);
                    } else {
                        ex.flags.truncated = true;
                    }
                }
            }
            BackendMessage::RowDescription {
                columns,
                column_count,
            } => {
                if self
                    .pending
                    .front()
                    .is_some_and(|op| op.kind == OpKind::Describe)
                {
                    self.pending.pop_front();
                    self.last_row_description = columns;
                    return out;
                }
                self.last_row_description = columns.clone();
                let max_sets = self.config.max_result_sets;
                match self.result_target_mut() {
                    Some(op) => start_result_set(op, columns, usize::from(column_count), max_sets),
                    None => self.stats.unmatched_responses += 1,
                }
            }
            BackendMessage::DataRow {
                values, truncated, ..
            } => {
                let cfg_rows = self.config.max_sample_rows;
                let max_sets = self.config.max_result_sets;
                let fallback = self.last_row_description.clone();
                match self.result_target_mut() {
                    Some(op) => {
                        if op.current_set.is_none() && op.current_columns.is_empty() {
                            let n = fallback.len();
                            start_result_set(op, fallback, n, max_sets);
                        }
                        add_row(op, values, truncated, cfg_rows);
                    }
                    None => self.stats.unmatched_responses += 1,
                }
            }
            BackendMessage::CommandComplete { tag } => {
                self.on_command_complete(Some(tag), false, ts_ns, &mut out)
            }
            BackendMessage::EmptyQuery => self.on_command_complete(None, false, ts_ns, &mut out),
            BackendMessage::PortalSuspended => {
                self.on_command_complete(None, true, ts_ns, &mut out)
            }
            BackendMessage::ParseComplete => {
                self.pop_front_if(OpKind::Parse);
            }
            BackendMessage::BindComplete => {
                self.pop_front_if(OpKind::Bind);
            }
            BackendMessage::CloseComplete => {
                self.pop_front_if(OpKind::Close);
            }
            BackendMessage::NoData => {
                self.pop_front_if(OpKind::Describe);
            }
            BackendMessage::ParameterDescription { .. } => {}
            BackendMessage::CopyInResponse { .. }
            | BackendMessage::CopyOutResponse { .. }
            | BackendMessage::CopyBothResponse { .. } => {
                if let Some(ex) = self.result_target_mut().and_then(|op| op.exchange.as_mut()) {
                    match msg {
                        BackendMessage::CopyInResponse { .. } => ex.flags.copy_in = true,
                        BackendMessage::CopyOutResponse { .. } => ex.flags.copy_out = true,
                        _ => {
                            ex.flags.copy_in = true;
                            ex.flags.copy_out = true;
                        }
                    }
                }
            }
            BackendMessage::BackendKeyData { .. }
            | BackendMessage::CopyData { .. }
            | BackendMessage::CopyDone
            | BackendMessage::Notification { .. }
            | BackendMessage::FunctionCallResponse
            | BackendMessage::NegotiateProtocolVersion { .. } => {}
        }
        out
    }

    /// ReadyForQuery ended `op`: its exchange, with the statements its query never reached
    /// settled. After an error the server ran none of them (counted); without one the split
    /// found more statements than the server ran, so the last exchange takes their text.
    fn end_of_query(&mut self, op: PendingOp) -> Option<PgExchange> {
        let mut ex = op.exchange?;
        let Some(script) = op.script else {
            return Some(ex);
        };
        let Some((last, _)) = script.next.back() else {
            return Some(ex);
        };
        if ex.error.is_some() {
            self.stats.statements_not_run += script.next.len() as u64;
        } else {
            let end = last.end;
            let cut = script.next.back().is_some_and(|(_, e)| e.flags.truncated);
            if let Some(text) = script.text.get(script.running_from..end) {
                ex.sql = Some(text.to_string());
                ex.flags.truncated |= cut;
            }
        }
        Some(ex)
    }

    /// Give a backend message's bytes to the exchange it belongs to.
    fn attribute_response(&mut self, msg: &BackendMessage, wire_len: usize, ts_ns: u64) {
        if matches!(msg, BackendMessage::EncryptionReply { .. }) {
            return;
        }
        let target = match self.startup.as_mut() {
            Some(s) => Some(s),
            None => self.pending.iter_mut().find_map(|op| op.exchange.as_mut()),
        };
        match target {
            Some(ex) => {
                ex.response_bytes += wire_len as u64;
                ex.end_ts_ns = ts_ns;
            }
            None => self.stats.unattributed_response_bytes += wire_len as u64,
        }
    }

    fn on_command_complete(
        &mut self,
        tag: Option<String>,
        suspended: bool,
        ts_ns: u64,
        out: &mut Vec<PgExchange>,
    ) {
        let max_tags = self.config.max_command_tags;
        let Some(op) = self.result_target_mut() else {
            self.stats.unmatched_responses += 1;
            let mut ex = self.new_exchange(PgExchangeKind::Unmatched, ts_ns);
            ex.flags.partial = true;
            if let Some(t) = tag {
                ex.rows = rows_from_command_tag(&t);
                ex.command_tags.push(t.clone());
                ex.command_tag = Some(t);
            }
            out.push(ex);
            return;
        };
        op.current_set = None;
        op.current_columns.clear();
        let is_execute = op.kind == OpKind::Execute;
        let is_query = op.kind == OpKind::Query;
        if let Some(ex) = op.exchange.as_mut() {
            ex.end_ts_ns = ts_ns;
            ex.flags.suspended |= suspended;
            if let Some(t) = tag {
                if let Some(n) = rows_from_command_tag(&t) {
                    ex.rows = Some(ex.rows.unwrap_or(0).saturating_add(n));
                }
                if ex.command_tags.len() < max_tags {
                    ex.command_tags.push(t.clone());
                } else {
                    ex.flags.truncated = true;
                }
                ex.command_tag = Some(t);
            }
        }
        if is_execute
            && let Some(op) = self.pop_through(&[OpKind::Execute], out)
            && let Some(ex) = op.exchange
        {
            out.push(ex);
        }
        // A statement of a multi-statement simple query is done; the next response message
        // starts the next one.
        if is_query
            && !suspended
            && let Some(script) = self.result_target_mut().and_then(|op| op.script.as_mut())
            && !script.next.is_empty()
        {
            script.completed_at = Some(ts_ns);
        }
    }

    fn on_error(&mut self, n: PgNotice, _wire_len: usize, ts_ns: u64, out: &mut Vec<PgExchange>) {
        if let Some(mut s) = self.startup.take() {
            s.error = Some(n);
            s.end_ts_ns = ts_ns;
            out.push(s);
            return;
        }
        let Some(front) = self.pending.front_mut() else {
            self.stats.unmatched_responses += 1;
            let mut ex = self.new_exchange(PgExchangeKind::Unmatched, ts_ns);
            ex.error = Some(n);
            out.push(ex);
            return;
        };
        match front.kind {
            OpKind::Query | OpKind::FunctionCall => {
                // The server aborts the rest of the query string; ReadyForQuery completes it.
                if let Some(ex) = front.exchange.as_mut() {
                    ex.error = Some(n);
                    ex.end_ts_ns = ts_ns;
                }
                front.current_set = None;
            }
            OpKind::Encryption => {
                if let Some(mut ex) = self.pending.pop_front().and_then(|o| o.exchange) {
                    ex.encryption_accepted = Some(false);
                    ex.error = Some(n);
                    ex.end_ts_ns = ts_ns;
                    out.push(ex);
                }
            }
            OpKind::Sync => {
                self.stats.unmatched_responses += 1;
                let mut ex = self.new_exchange(PgExchangeKind::Unmatched, ts_ns);
                ex.error = Some(n);
                out.push(ex);
            }
            OpKind::Parse | OpKind::Bind | OpKind::Describe | OpKind::Execute | OpKind::Close => {
                // The failing message and the rest of its Sync group: the server skips them.
                let mut reported: Option<PgExchange> = None;
                let mut failed_sql: (Option<String>, Option<String>, Option<String>) =
                    (None, None, None);
                let mut first = true;
                while let Some(op) = self.pending.front() {
                    if matches!(op.kind, OpKind::Sync | OpKind::Query) {
                        break;
                    }
                    let Some(op) = self.pending.pop_front() else {
                        break;
                    };
                    if first {
                        failed_sql = (op.sql.clone(), op.statement.clone(), op.portal.clone());
                    }
                    match op.exchange {
                        Some(ex) if reported.is_none() => reported = Some(ex),
                        Some(_) => self.stats.discarded_after_error += 1,
                        None => {}
                    }
                    first = false;
                }
                let mut ex = match reported {
                    Some(ex) => ex,
                    None => {
                        let (start, bytes) = self.request_acc.take().unwrap_or((ts_ns, 0));
                        let mut ex = self.new_exchange(PgExchangeKind::ExtendedQuery, start);
                        ex.request_bytes = bytes;
                        ex
                    }
                };
                if ex.sql.is_none() {
                    ex.sql = failed_sql.0;
                    ex.statement = ex.statement.or(failed_sql.1);
                    ex.portal = ex.portal.or(failed_sql.2);
                }
                ex.error = Some(n);
                ex.end_ts_ns = ts_ns;
                out.push(ex);
            }
        }
    }
}

impl Stitcher for PgStitcher {
    type Frame = PgFrame;
    type Exchange = PgExchange;

    fn push(&mut self, dir: Direction, frame: PgFrame, ts_ns: u64) -> Vec<PgExchange> {
        match frame.message {
            PgMessage::Frontend(m) => self.frontend(m, frame.wire_len, ts_ns),
            PgMessage::Backend(m) => self.backend(m, frame.wire_len, ts_ns),
            PgMessage::Oversized { .. } | PgMessage::Continuation => {
                let truncated = matches!(frame.message, PgMessage::Oversized { .. });
                let n = frame.wire_len as u64;
                let target = match self.startup.as_mut() {
                    Some(s) => Some(s),
                    None => self.pending.iter_mut().find_map(|op| op.exchange.as_mut()),
                };
                match (target, dir) {
                    (Some(ex), Direction::ClientToServer) => {
                        ex.request_bytes += n;
                        ex.flags.truncated |= truncated;
                    }
                    (Some(ex), Direction::ServerToClient) => {
                        ex.response_bytes += n;
                        ex.flags.truncated |= truncated;
                    }
                    (None, Direction::ClientToServer) => {
                        self.accumulate_request(frame.wire_len, ts_ns)
                    }
                    (None, Direction::ServerToClient) => {
                        self.stats.unattributed_response_bytes += n
                    }
                }
                Vec::new()
            }
        }
    }
}

/// Whether a backend message is part of a statement's answer (so it starts the next statement
/// of a simple query once the running one completed); session-level messages are not.
fn answers_a_statement(msg: &BackendMessage) -> bool {
    !matches!(
        msg,
        BackendMessage::ReadyForQuery { .. }
            | BackendMessage::EncryptionReply { .. }
            | BackendMessage::Authentication(_)
            | BackendMessage::ParameterStatus { .. }
            | BackendMessage::BackendKeyData { .. }
            | BackendMessage::Notification { .. }
            | BackendMessage::NegotiateProtocolVersion { .. }
    )
}

fn sampled_rows(ex: &PgExchange) -> usize {
    ex.samples.iter().map(|s| s.rows.len()).sum()
}

fn start_result_set(
    op: &mut PendingOp,
    columns: Vec<PgColumn>,
    column_count: usize,
    max_sets: usize,
) {
    op.current_columns = columns.clone();
    op.current_set = None;
    if let Some(ex) = op.exchange.as_mut() {
        if columns.len() < column_count {
            ex.flags.truncated = true;
        }
        if ex.samples.len() < max_sets {
            ex.samples.push(PgResultSample {
                columns,
                rows: Vec::new(),
                rows_seen: 0,
            });
            op.current_set = Some(ex.samples.len() - 1);
        } else {
            ex.flags.truncated = true;
        }
    }
}

fn add_row(op: &mut PendingOp, values: Vec<Option<SampledBytes>>, row_cut: bool, max_rows: usize) {
    let formats: Vec<i16> = (0..values.len()).map(|i| column_format(op, i)).collect();
    let Some(ex) = op.exchange.as_mut() else {
        return;
    };
    ex.data_rows += 1;
    ex.flags.truncated |= row_cut;
    let room = sampled_rows(ex) < max_rows;
    let Some(set) = op.current_set.and_then(|i| ex.samples.get_mut(i)) else {
        return;
    };
    set.rows_seen += 1;
    if !room || values.is_empty() {
        return;
    }
    let row = values
        .into_iter()
        .zip(formats)
        .map(|(v, format)| match v {
            None => PgSampledValue {
                value: PgValue::Null,
                full_len: 0,
                truncated: false,
            },
            Some(SampledBytes { bytes, full_len }) => {
                let truncated = bytes.len() < full_len;
                let value = if format == 1 {
                    PgValue::Binary(bytes)
                } else {
                    match String::from_utf8(bytes) {
                        Ok(s) => PgValue::Text(s),
                        // A cut inside a multi-byte character still reads as text.
                        Err(e) if truncated && e.utf8_error().error_len().is_none() => {
                            let valid = e.utf8_error().valid_up_to();
                            let mut b = e.into_bytes();
                            b.truncate(valid);
                            PgValue::Text(String::from_utf8_lossy(&b).into_owned())
                        }
                        Err(e) => PgValue::Binary(e.into_bytes()),
                    }
                };
                PgSampledValue {
                    value,
                    full_len,
                    truncated,
                }
            }
        })
        .collect();
    set.rows.push(row);
}

/// Format code of column `i`: Bind's result formats override the RowDescription.
fn column_format(op: &PendingOp, i: usize) -> i16 {
    match op.result_formats.len() {
        0 => op.current_columns.get(i).map(|c| c.format).unwrap_or(0),
        1 => op.result_formats.first().copied().unwrap_or(0),
        _ => op.result_formats.get(i).copied().unwrap_or(0),
    }
}
