//! Feeding the stage metric sets of chainwatch-telemetry from what the stages already count:
//! each stage's stats turned into its snapshot, FSM errors by protocol counted by an exchange
//! hook, and the status-line sample. Snapshots are published every [`PUBLISH_EVERY`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chainwatch_chain_builder::BuilderStats;
use chainwatch_parser_workers::connection::{ParsedExchange, ProtocolExchange, TableStats};
use chainwatch_parser_workers::events::ExchangeHook;
use chainwatch_probe::ebpf::LossCounters;
use chainwatch_probe::records::MapperStats;
use chainwatch_schemas::{JsonRecord, SemanticEvent};
use chainwatch_telemetry::status_line::{StatusLine, StatusSample};
use chainwatch_telemetry::{ChainSnapshot, ParserSnapshot, ProbeMetrics, ProbeSnapshot, SharedSnapshot, Telemetry};

/// How often a running stage publishes its snapshot (and the status line redraws).
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The protocol whose FSM could recover an exchange only in part, if so: a request or response
/// missing or cut (bad framing, a capture gap, the connection ending or evicted mid-exchange),
/// an HTTP/2 stream reset with an error code, a gRPC call with framing/status errors.
pub(crate) fn fsm_error_protocol(ex: &ParsedExchange) -> Option<&'static str> {
    match &ex.exchange {
        ProtocolExchange::Http1(e) => e.flags.partial.then_some("http1"),
        ProtocolExchange::Http2(_, Some(call)) if !call.errors.is_empty() => Some("grpc"),
        ProtocolExchange::Http2(e, _) => {
            (e.flags.partial || e.reset_error_code.is_some_and(|c| c != 0)).then_some("http2")
        }
        ProtocolExchange::Postgres(e) => e.flags.partial.then_some("postgres"),
        ProtocolExchange::Tls(_) => None,
    }
}

/// Protocols whose FSM errors are counted; each starts at 0 so every series exists from the
/// first export (a missing series and "no errors" look the same otherwise).
const FSM_PROTOCOLS: [&str; 4] = ["http1", "http2", "grpc", "postgres"];

/// FSM errors by protocol since start, shared between the hook that counts them and the
/// snapshot that reports them. One key per protocol in `FSM_PROTOCOLS`.
#[derive(Debug, Clone)]
pub(crate) struct FsmErrors(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Default for FsmErrors {
    fn default() -> Self {
        FsmErrors(Arc::new(Mutex::new(FSM_PROTOCOLS.iter().map(|p| (*p, 0)).collect())))
    }
}

impl FsmErrors {
    pub(crate) fn note(&self, ex: &ParsedExchange) {
        if let Some(protocol) = fsm_error_protocol(ex) {
            tracing::debug!(conn_id = %ex.meta.conn_id, protocol, "exchange parsed only in part");
            *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(protocol).or_default() += 1;
        }
    }

    pub(crate) fn totals(&self) -> BTreeMap<String, u64> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    }
}

/// An exchange hook that counts FSM errors, then hands the exchange to the next hook.
pub(crate) struct CountingHook<H> {
    pub(crate) inner: H,
    pub(crate) errors: FsmErrors,
}

impl<H: ExchangeHook> ExchangeHook for CountingHook<H> {
    fn on_exchange(&mut self, exchange: &ParsedExchange, event: &mut SemanticEvent) {
        self.errors.note(exchange);
        self.inner.on_exchange(exchange, event);
    }
}

/// Bounds of the connection table that were hit, by kind.
pub(crate) fn parser_cap_hits(t: &TableStats) -> BTreeMap<String, u64> {
    BTreeMap::from([
        ("connections_evicted_lru".to_string(), t.evicted_lru),
        ("connections_evicted_idle".to_string(), t.evicted_idle),
    ])
}

/// A parser's snapshot: `segments`/`bytes` in, `events` out, the table's bounds and FSM errors.
pub(crate) fn parser_snapshot(
    segments: u64,
    bytes: u64,
    events: u64,
    dead_lettered: u64,
    table: &TableStats,
    fsm: &FsmErrors,
) -> ParserSnapshot {
    ParserSnapshot {
        segments_in: segments,
        bytes_in: bytes,
        events_out: events,
        dead_lettered,
        fsm_errors: fsm.totals(),
        cap_hits: parser_cap_hits(table),
    }
}

/// The chain builder's snapshot from its counters and current open-chain count.
pub(crate) fn chain_snapshot(b: &BuilderStats, open_chains: usize) -> ChainSnapshot {
    ChainSnapshot {
        events_in: b.semantic_events + b.process_events,
        open_chains: open_chains as u64,
        chains_closed: b.chains_closed,
        evictions: b.evicted_open_chains,
        late_events: b.late_dropped,
        stitch_fragments_published: b.remote_fragments_published,
        stitch_fragments_received: b.remote_fragments_received,
        stitch_claimed: b.remote_stitched_requests,
        stitch_claims_received: b.remote_claims_received,
        stitch_unclaimed: b.remote_exports_unclaimed,
        stitch_dropped: b.remote_fragments_late
            + b.remote_fragments_expired
            + b.remote_fragments_evicted
            + b.remote_claims_unmatched
            + b.remote_pending_evicted,
        cap_hits: vec![
            ("fingerprints_dropped", b.fingerprints_dropped),
            ("pii_flows_cut", b.pii_flows_cut),
            ("split_max_steps", b.split_max_steps),
            ("depth_limited", b.depth_limited),
            ("tuple_index_evicted", b.tuple_index_evicted),
            ("window_evicted", b.window_evicted),
            ("closed_forgotten_early", b.forgotten_early),
        ],
        ..ChainSnapshot::default()
    }
}

/// The probe's snapshot: what was published (`segments`, payload `bytes`), the kernel's loss
/// counters (when readable) and the record mapper's table counters.
pub(crate) fn probe_snapshot(
    segments: u64,
    bytes: u64,
    loss: Option<&LossCounters>,
    mapper: &MapperStats,
) -> ProbeSnapshot {
    let l = loss.copied().unwrap_or_default();
    ProbeSnapshot {
        segments,
        bytes,
        ring_full_events: l.ring_full_events,
        ring_full_bytes: l.ring_full_bytes,
        truncated_calls: l.truncated_calls,
        truncated_bytes: l.truncated_bytes,
        unpaired_ssl_calls: l.unpaired_ssl_calls,
        unpaired_ssl_bytes: l.unpaired_ssl_bytes,
        map_full: l.map_full,
        gap_bytes: 0,
        read_faults: l.read_faults,
        undecodable: l.undecodable,
        seed_events_dropped: l.seed_events_dropped,
        holds_timed_out: l.holds_timed_out,
        uprobe_attaches_deferred: l.uprobe_attaches_deferred,
        segments_without_connection: mapper.segments_without_connection,
        uprobe_attach_failures: l.uprobe_attach_failures,
        connections_evicted: mapper.connections_evicted,
        processes_evicted: mapper.processes_evicted,
    }
}

/// Captures lost, all reasons together (the status line's "lost").
pub(crate) fn probe_lost(s: &ProbeSnapshot) -> u64 {
    s.ring_full_events
        + s.truncated_calls
        + s.unpaired_ssl_calls
        + s.map_full
        + s.read_faults
        + s.undecodable
        + s.seed_events_dropped
        + s.segments_without_connection
}

/// The live probe's feeds (`chainwatch probe`, `chainwatch run`): its metric set when metrics
/// are configured, and the status line on a terminal (inert when stderr is piped).
pub(crate) struct ProbeFeed {
    metrics: Option<(SharedSnapshot<ProbeSnapshot>, ProbeMetrics)>,
    status: SharedSnapshot<StatusSample>,
    line: StatusLine,
    records: u64,
    segments: u64,
    bytes: u64,
    published_at: Instant,
}

impl ProbeFeed {
    pub(crate) fn start(telemetry: Option<&Telemetry>) -> anyhow::Result<ProbeFeed> {
        let metrics = telemetry.map(|t| {
            let shared = SharedSnapshot::new(ProbeSnapshot::default());
            let set = ProbeMetrics::register(&t.meter("chainwatch.probe"), "", shared.source());
            (shared, set)
        });
        let status = SharedSnapshot::new(StatusSample::default());
        let line = StatusLine::start(PUBLISH_EVERY, status.source())?;
        Ok(ProbeFeed { metrics, status, line, records: 0, segments: 0, bytes: 0, published_at: Instant::now() })
    }

    /// Count one record the probe produced.
    pub(crate) fn on_record(&mut self, record: &JsonRecord) {
        self.records += 1;
        if let JsonRecord::RawSegment(s) = record {
            self.segments += 1;
            self.bytes += s.payload.len() as u64;
        }
    }

    /// Whether a second passed since the last publish.
    pub(crate) fn due(&self) -> bool {
        self.published_at.elapsed() >= PUBLISH_EVERY
    }

    /// Publish the probe snapshot and the status sample (`pipeline`: the embedded pipeline's
    /// totals under `run`; else the records published count as events).
    pub(crate) fn publish(
        &mut self,
        loss: Option<&LossCounters>,
        mapper: &MapperStats,
        pipeline: Option<StatusSample>,
    ) {
        let snapshot = probe_snapshot(self.segments, self.bytes, loss, mapper);
        let lost_total = probe_lost(&snapshot);
        if let Some((shared, _)) = &self.metrics {
            shared.publish(snapshot);
        }
        let sample = match pipeline {
            Some(p) => StatusSample { lost_total, ..p },
            None => StatusSample { events_total: self.records, lost_total, ..StatusSample::default() },
        };
        self.status.publish(sample);
        self.published_at = Instant::now();
    }

    /// A line for the user above the status line (plain stderr when piped).
    pub(crate) fn println(&self, line: &str) {
        self.line.println(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_parser_workers::connection::{ConnectionMeta, ParsedExchange};
    use chainwatch_parser_workers::protocols::http1::exchange::Http1Exchange;

    fn http1(partial: bool) -> ParsedExchange {
        let mut e = Http1Exchange::default();
        e.flags.partial = partial;
        ParsedExchange {
            meta: ConnectionMeta::default(),
            exchange: ProtocolExchange::Http1(Box::new(e)),
            request_offset: 0,
            rank_at_offset: 0,
        }
    }

    #[test]
    fn partial_exchanges_count_as_fsm_errors_of_their_protocol() {
        let errors = FsmErrors::default();
        errors.note(&http1(false));
        errors.note(&http1(true));
        errors.note(&http1(true));
        let totals = errors.totals();
        assert_eq!(totals.get("http1"), Some(&2));
        assert_eq!(totals.get("postgres"), Some(&0), "every protocol reported from the start");
    }
}
