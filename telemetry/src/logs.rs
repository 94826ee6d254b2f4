//! Structured logs: one `tracing` subscriber for every chainwatch process.
//!
//! Format: JSON lines when stderr is not a terminal (or when asked), human-readable otherwise.
//! Filter: `RUST_LOG` when set, else the given default (e.g. `info`).
//!
//! Field conventions (use these names so logs join with records, traces and metrics):
//! - `conn_id`: a connection (`RawSegment.conn_id`); put it on a span around per-connection work:
//!   `let _g = tracing::info_span!("conn", conn_id = %seg.conn_id).entered();`
//! - `chain_id`: a chain; `event_id`: a semantic event; `agent_key`: the agent;
//! - `policy_id`, `violation_id`: the policy engine;
//! - `stage` (probe, parser, chains, policy), `topic`, `partition`, `offset`: the bus.
//!
//! In JSON the current span's fields appear under `span`, so a `conn_id` set on a span is on
//! every line logged inside it. The same names are the [`fields`] constants.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

use crate::error::TelemetryError;

/// The field names of the conventions above.
pub mod fields {
    pub const CONN_ID: &str = "conn_id";
    pub const CHAIN_ID: &str = "chain_id";
    pub const EVENT_ID: &str = "event_id";
    pub const AGENT_KEY: &str = "agent_key";
    pub const POLICY_ID: &str = "policy_id";
    pub const VIOLATION_ID: &str = "violation_id";
    pub const STAGE: &str = "stage";
    pub const TOPIC: &str = "topic";
    pub const PARTITION: &str = "partition";
    pub const OFFSET: &str = "offset";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, human otherwise.
    #[default]
    Auto,
    Json,
    Human,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "human" | "text" | "pretty" => Ok(LogFormat::Human),
            other => Err(TelemetryError::Config {
                key: "log format",
                reason: format!("{other:?} is not one of auto, json, human"),
            }),
        }
    }
}

impl LogFormat {
    /// Whether this format writes JSON given whether stderr is a terminal.
    pub fn is_json(self, stderr_is_terminal: bool) -> bool {
        match self {
            LogFormat::Auto => !stderr_is_terminal,
            LogFormat::Json => true,
            LogFormat::Human => false,
        }
    }
}

/// Install the global subscriber writing to stderr. Fails if one is already installed or the
/// filter does not parse.
pub fn init_logging(format: LogFormat, default_filter: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default_filter.to_string(),
    };
    let subscriber = build_subscriber(format.is_json(std::io::stderr().is_terminal()), &filter, std::io::stderr)?;
    tracing::subscriber::set_global_default(subscriber).map_err(|e| TelemetryError::Logging(e.to_string()))
}

/// The subscriber `init_logging` installs, writing to `writer`.
pub fn build_subscriber<W>(
    json: bool,
    filter: &str,
    writer: W,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_new(filter).map_err(|e| TelemetryError::Logging(format!("log filter {filter:?}: {e}")))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    Ok(if json {
        Box::new(builder.json().with_current_span(true).with_span_list(false).flatten_event(true).finish())
    } else {
        Box::new(builder.finish())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!("xml".parse::<LogFormat>().unwrap_err().to_string().contains("xml"));
        assert!(LogFormat::Auto.is_json(false));
        assert!(!LogFormat::Auto.is_json(true));
        assert!(!LogFormat::Human.is_json(false));
    }

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_span_conn_id() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let sub = build_subscriber(true, "info", move || writer.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            let _conn = tracing::info_span!("conn", conn_id = "node-a/42/7").entered();
            tracing::info!(chain_id = "chain-1", "event published");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["span"][fields::CONN_ID], "node-a/42/7", "{v}");
        assert_eq!(v[fields::CHAIN_ID], "chain-1", "{v}");
        assert_eq!(v["message"], "event published");
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn bad_filter_is_named() {
        let e = build_subscriber(false, "info,[[[", std::io::sink).err().unwrap().to_string();
        assert!(e.contains("[[["), "{e}");
    }
}
