//! OTLP/HTTP endpoint URLs: `[metrics].otlp_endpoint` is the collector's base URL
//! (e.g. `http://collector:4318`); each signal posts to `<base>/v1/<signal>`. Plain http only:
//! no TLS stack is compiled in (a local collector or sidecar is the usual hop).

use crate::error::TelemetryError;

/// The configured endpoint, or `None` when unset or blank (= off).
pub(crate) fn configured(value: Option<&String>) -> Option<&str> {
    value.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// `<base>/v1/<signal>` (`signal` is `traces` or `metrics`); a base that already ends in
/// `/v1/<signal>` is kept as is.
pub(crate) fn signal_url(base: &str, signal: &str) -> Result<String, TelemetryError> {
    let base = base.trim();
    if base.starts_with("https://") {
        return Err(TelemetryError::Config {
            key: "metrics.otlp_endpoint",
            reason: format!(
                "{base:?}: https is not built in (no TLS stack in this binary); send to a local collector or \
                 sidecar over http://, or enable opentelemetry-otlp's reqwest-rustls feature"
            ),
        });
    }
    let rest = base.strip_prefix("http://").ok_or_else(|| TelemetryError::Config {
        key: "metrics.otlp_endpoint",
        reason: format!("{base:?} must start with http:// (OTLP/HTTP base URL, e.g. http://collector:4318)"),
    })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(TelemetryError::Config { key: "metrics.otlp_endpoint", reason: format!("{base:?} has no host") });
    }
    let suffix = format!("/v1/{signal}");
    if base.ends_with(&suffix) {
        return Ok(base.to_string());
    }
    Ok(format!("{}{suffix}", base.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_signal_path() {
        assert_eq!(signal_url("http://c:4318", "traces").unwrap(), "http://c:4318/v1/traces");
        assert_eq!(signal_url("http://c:4318/", "metrics").unwrap(), "http://c:4318/v1/metrics");
        assert_eq!(signal_url("http://c/otlp", "traces").unwrap(), "http://c/otlp/v1/traces");
        assert_eq!(signal_url("http://c:4318/v1/traces", "traces").unwrap(), "http://c:4318/v1/traces");
    }

    #[test]
    fn rejects_bad_urls_naming_the_key() {
        let e = signal_url("collector:4318", "traces").unwrap_err().to_string();
        assert!(e.contains("metrics.otlp_endpoint"), "{e}");
        assert!(signal_url("http://", "traces").is_err());
        let e = signal_url("https://c:4318", "traces").unwrap_err().to_string();
        assert!(e.contains("https is not built in"), "{e}");
    }

    #[test]
    fn blank_is_off() {
        assert_eq!(configured(Some(&"  ".to_string())), None);
        assert_eq!(configured(None), None);
        assert_eq!(configured(Some(&"http://x".to_string())), Some("http://x"));
    }
}
