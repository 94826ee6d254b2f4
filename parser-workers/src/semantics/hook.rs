//! `SemanticsHook`: the exchange hook that gives every wire-level event its meaning. It runs the
//! recognisers (LLM APIs, vector databases, SaaS actions, uploads), sets the event's kind and
//! destination category, runs the detectors (PII, secrets, prompt injection) on the bodies,
//! and redacts what is published according to the content-capture setting.
//!
//! Finding locations tell the chain builder which way data went: `response.*` (an HTTP or gRPC
//! response, `response.rows` of a SQL result) was RECEIVED by the client; everything else
//! (`request.*`, `request.sql`, `upload:*`) was SENT.

use std::net::IpAddr;

use chainwatch_config::{ContentCapture, ParserConfig};
use chainwatch_schemas::SemanticEvent;

use super::destination::{self, Recognised};
use super::http_view::HttpView;
use super::llm::{self, TextSource};
use super::{saas, upload, vector};
use crate::connection::{ParsedExchange, ProtocolExchange};
use crate::detect::{DetectStats, Detector, Findings};
use crate::events::ExchangeHook;
use crate::protocols::postgres::{PgExchange, PgValue};

/// Bytes of content published per event when content capture is on.
pub const MAX_CONTENT_BYTES: usize = 8 * 1024;
/// Bytes of decoded gRPC messages scanned per side.
const MAX_GRPC_SCAN_BYTES: usize = 4 * 1024 * 1024;
/// Key used when `parser.fingerprint_key` is empty: fingerprints still link values inside one
/// deployment, but anyone can recompute them, so production sets its own key.
const DEFAULT_FINGERPRINT_KEY: &[u8] = b"chainwatch-default-fingerprint-key";

/// What the hook recognised and found, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SemanticsStats {
    pub exchanges: u64,
    pub llm_calls: u64,
    pub vector_operations: u64,
    pub saas_actions: u64,
    pub uploads: u64,
    pub sql_statements: u64,
    pub pii_findings: u64,
    pub secret_findings: u64,
    pub injection_signals: u64,
    /// Events that went out with content (capture on).
    pub content_published: u64,
    pub detect: DetectStats,
}

/// The semantics layer as an [`ExchangeHook`].
pub struct SemanticsHook {
    detector: Detector,
    capture: ContentCapture,
    stats: SemanticsStats,
}

impl std::fmt::Debug for SemanticsHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticsHook").field("capture", &self.capture).field("stats", &self.stats).finish()
    }
}

impl SemanticsHook {
    /// The hook with the `[parser]` settings (fingerprint key, content capture).
    pub fn new(cfg: &ParserConfig) -> Self {
        let key = if cfg.fingerprint_key.is_empty() {
            DEFAULT_FINGERPRINT_KEY
        } else {
            cfg.fingerprint_key.as_bytes()
        };
        SemanticsHook { detector: Detector::new(key), capture: cfg.content_capture, stats: SemanticsStats::default() }
    }

    pub fn stats(&self) -> &SemanticsStats {
        &self.stats
    }

    fn on_http(&mut self, view: &HttpView, event: &mut SemanticEvent) -> Findings {
        let mut findings = Findings::new(self.detector.limits().max_fingerprints);
        let remote_ip = event.tuple.as_ref().and_then(|t| t.remote_addr.parse::<IpAddr>().ok());
        let mut recognised = Recognised::Nothing;
        let mut content = String::new();
        let mut scanned_request = false;
        let mut saas_payloads: Vec<(String, Vec<u8>)> = Vec::new();
        let mut scanned_response = false;

        if let Some(r) = llm::recognise(view) {
            self.stats.llm_calls += 1;
            recognised = Recognised::Llm;
            event.kind = r.kind.into();
            put_attributes(event, &r.attributes);
            for t in &r.texts {
                // Injection comes in through user input, tool outputs and embedded documents.
                let found = match t.source {
                    TextSource::User | TextSource::ToolOutput | TextSource::EmbeddingInput => {
                        self.detector.scan(t.text.as_bytes(), &t.location)
                    }
                    _ => self.detector.scan_patterns(t.text.as_bytes(), &t.location),
                };
                findings.merge(found);
                if content.len() < MAX_CONTENT_BYTES {
                    content.push_str(&format!("[{}] {}\n", t.role, t.text));
                }
            }
            scanned_request = !r.texts.is_empty();
            scanned_response = r.texts.iter().any(|t| t.location.starts_with("response"));
            event.llm = Some(r.call);
        } else if let Some(v) = vector::recognise_http(view) {
            self.stats.vector_operations += 1;
            recognised = Recognised::Vector;
            event.kind = "vector_query".into();
            put_attributes(event, &v.attributes);
            for (location, text) in &v.payload_texts {
                findings.merge(self.detector.scan(text, &directed(location)));
            }
            scanned_response = !v.payload_texts.is_empty();
            event.vector = Some(v.op);
        } else if let Some(s) = saas::recognise(view) {
            self.stats.saas_actions += 1;
            recognised = Recognised::Saas(s.category);
            event.kind = s.kind.into();
            event.attributes.insert("chainwatch.saas.service".into(), s.service.into());
            event.attributes.insert("chainwatch.saas.action".into(), s.action.clone());
            if let Some(t) = &s.target {
                event.attributes.insert("chainwatch.saas.target".into(), t.clone());
            }
            if let Some(e) = &s.error {
                event.attributes.insert("error.type".into(), e.clone());
            }
            put_attributes(event, &s.attributes);
            if s.kind == saas::KIND_UPLOAD {
                event.upload = upload::describe_request_body(view);
                // what the action writes out, decoded (a GitHub contents put is base64 in JSON)
                saas_payloads = saas::upload_payloads(view, &s);
            }
        }

        if event.upload.is_none() && recognised == Recognised::Nothing {
            event.upload = upload::recognise(view);
            if event.upload.is_some() {
                event.kind = "upload".into();
            }
        }
        if event.upload.is_some() {
            self.stats.uploads += 1;
            for (location, bytes) in std::mem::take(&mut saas_payloads) {
                findings.merge(self.detector.scan_upload(&bytes, &location, None));
                scanned_request = true;
            }
            let payloads = if scanned_request { Vec::new() } else { upload::payloads(view) };
            if payloads.is_empty() && !scanned_request {
                findings.merge(self.detector.scan_upload(&view.request_body, "upload:body", None));
            }
            for (location, bytes, filename) in payloads {
                // scan_upload names the file itself: "upload:<filename>/<entry>".
                let base = if filename.is_some() { "upload" } else { location.as_str() };
                findings.merge(self.detector.scan_upload(bytes, base, filename.as_deref()));
            }
            scanned_request = true;
        }

        if let Some(call) = view.grpc {
            if !scanned_request {
                scan_grpc(&self.detector, &call.request.messages, "request.grpc", false, &mut findings);
                scanned_request = true;
            }
            if !scanned_response {
                scan_grpc(&self.detector, &call.response.messages, "response.grpc", true, &mut findings);
                scanned_response = true;
            }
        }
        if !scanned_request && !view.request_body.is_empty() {
            findings.merge(self.detector.scan_patterns(&view.request_body, "request.body"));
        }
        if !scanned_response && !view.response_body.is_empty() {
            findings.merge(self.detector.scan(&view.response_body, "response.body"));
        }
        if content.is_empty() && !view.request_body.is_empty() && std::str::from_utf8(&view.request_body).is_ok() {
            content = String::from_utf8_lossy(&view.request_body[..view.request_body.len().min(MAX_CONTENT_BYTES)]).into_owned();
        }
        event.destination_category = destination::category(view.host, remote_ip, recognised).into();
        self.set_content(event, &content);
        findings
    }

    fn on_postgres(&mut self, e: &PgExchange, event: &mut SemanticEvent) -> Findings {
        let mut findings = Findings::new(self.detector.limits().max_fingerprints);
        let statement = e.sql.as_deref().or(e.statement.as_deref()).unwrap_or("");
        if !statement.is_empty() {
            self.stats.sql_statements += 1;
            findings.merge(self.detector.scan_patterns(statement.as_bytes(), "request.sql"));
            if let Some(v) = vector::recognise_sql(statement, e.rows.and_then(|r| i64::try_from(r).ok())) {
                self.stats.vector_operations += 1;
                put_attributes(event, &v.attributes);
                event.kind = "vector_query".into();
                event.vector = Some(v.op);
            }
        }
        let mut rows = Vec::new();
        for sample in &e.samples {
            for row in &sample.rows {
                for value in row {
                    match &value.value {
                        PgValue::Text(t) => rows.extend_from_slice(t.as_bytes()),
                        PgValue::Binary(b) => rows.extend_from_slice(b),
                        PgValue::Null => {}
                    }
                    rows.push(b'\t');
                }
                rows.push(b'\n');
            }
        }
        if !rows.is_empty() {
            // Rows may be documents an agent retrieves for its model: injection counts there.
            findings.merge(self.detector.scan(&rows, "response.rows"));
        }
        self.set_content(event, statement);
        findings
    }

    /// `content` per the capture setting: off publishes nothing, redacted masks PII and
    /// secrets, full masks secrets only.
    fn set_content(&mut self, event: &mut SemanticEvent, content: &str) {
        if self.capture == ContentCapture::Off || content.is_empty() {
            event.content = None;
            return;
        }
        let mut end = content.len().min(MAX_CONTENT_BYTES);
        while !content.is_char_boundary(end) {
            end -= 1;
        }
        event.content = Some(self.detector.redact_text(&content[..end], self.capture));
        self.stats.content_published += 1;
    }

    /// Secrets never leave the node; with capture redacted (the default) neither do PII values.
    fn redact_event(&self, event: &mut SemanticEvent) {
        let mode = if self.capture == ContentCapture::Off { ContentCapture::Redacted } else { self.capture };
        let redact = |s: &str| self.detector.redact_text(s, mode);
        if let Some(p) = &event.path {
            event.path = Some(redact(p));
        }
        for v in event.attributes.values_mut() {
            *v = redact(v);
        }
        if let Some(sql) = &mut event.sql {
            sql.statement = redact(&sql.statement);
            if let Some(m) = &sql.error_message {
                sql.error_message = Some(redact(m));
            }
        }
        if let Some(llm) = &mut event.llm {
            for call in &mut llm.tool_calls {
                call.arguments = redact(&call.arguments);
            }
        }
    }
}

impl ExchangeHook for SemanticsHook {
    fn on_exchange(&mut self, exchange: &ParsedExchange, event: &mut SemanticEvent) {
        self.stats.exchanges += 1;
        let findings = match &exchange.exchange {
            ProtocolExchange::Postgres(e) => self.on_postgres(e, event),
            ProtocolExchange::Http1(_) | ProtocolExchange::Http2(..) => match HttpView::from_exchange(exchange) {
                Some(view) => self.on_http(&view, event),
                None => Findings::new(0),
            },
            ProtocolExchange::Tls(_) => {
                let remote_ip = event.tuple.as_ref().and_then(|t| t.remote_addr.parse::<IpAddr>().ok());
                event.destination_category =
                    destination::category(event.host.as_deref(), remote_ip, Recognised::Nothing).into();
                Findings::new(0)
            }
        };
        self.stats.detect.merge(&findings.stats);
        let (pii, secrets, injection) = findings.into_event_parts();
        self.stats.pii_findings += pii.len() as u64;
        self.stats.secret_findings += secrets.len() as u64;
        self.stats.injection_signals += injection.len() as u64;
        event.pii = pii;
        event.secrets = secrets;
        event.injection = injection;
        self.redact_event(event);
    }
}

/// A recogniser's location ("qdrant.response.result[0].payload") as the chain builder reads
/// it: `response.*` for what came back, `request.*` for what was sent.
fn directed(location: &str) -> String {
    if location.starts_with("response") || location.starts_with("request") {
        location.to_string()
    } else if location.contains("response") {
        format!("response.{location}")
    } else {
        format!("request.{location}")
    }
}

/// Attributes from a recogniser; a repeated key (one per tool call) is joined with commas.
fn put_attributes(event: &mut SemanticEvent, attributes: &[(String, String)]) {
    for (k, v) in attributes {
        event
            .attributes
            .entry(k.clone())
            .and_modify(|old| {
                if old != v {
                    old.push(',');
                    old.push_str(v);
                }
            })
            .or_insert_with(|| v.clone());
    }
}

/// Decoded gRPC messages (JSON by descriptor or by field walk) through the detectors.
fn scan_grpc(
    detector: &Detector,
    messages: &[crate::protocols::grpc::GrpcMessageRecord],
    location: &str,
    with_injection: bool,
    findings: &mut Findings,
) {
    let mut text = Vec::new();
    for m in messages {
        if let Some(v) = &m.value {
            if serde_json::to_writer(&mut text, v).is_err() {
                continue;
            }
            text.push(b'\n');
        }
        if text.len() >= MAX_GRPC_SCAN_BYTES {
            text.truncate(MAX_GRPC_SCAN_BYTES);
            break;
        }
    }
    if text.is_empty() {
        return;
    }
    let found = if with_injection { detector.scan(&text, location) } else { detector.scan_patterns(&text, location) };
    findings.merge(found);
}
