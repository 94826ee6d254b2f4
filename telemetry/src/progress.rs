//! Progress bar for long work on a terminal (e.g. `chainwatch parse --pcap` on a large
//! capture); hidden, printing nothing, when stderr is not a terminal.
//!
//! ```no_run
//! # fn f(path: &std::path::Path) -> std::io::Result<()> {
//! let file = std::fs::File::open(path)?;
//! let bar = chainwatch_telemetry::progress::bytes_progress(file.metadata()?.len(), "parsing capture");
//! let reader = bar.wrap_read(std::io::BufReader::new(file)); // advances as the pcap is read
//! // ... parse from `reader`, call bar.set_message(format!("{n} events")) now and then ...
//! bar.finish_and_clear();
//! # Ok(()) }
//! ```

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const BYTES_TEMPLATE: &str =
    "{prefix} [{bar:32}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, eta {eta}) {msg}";

/// A bar over `total_bytes` labelled `label`; hidden unless stderr is a terminal.
pub fn bytes_progress(total_bytes: u64, label: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(8)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total_bytes), target);
    if let Ok(style) = ProgressStyle::with_template(BYTES_TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn counts_bytes_read_through_it() {
        let bar = bytes_progress(10, "test");
        if !std::io::stderr().is_terminal() {
            assert!(bar.is_hidden());
        }
        let mut r = bar.wrap_read(&b"0123456789"[..]);
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        assert_eq!(bar.position(), 10);
        assert_eq!(bar.length(), Some(10));
    }

    #[test]
    fn template_parses() {
        assert!(ProgressStyle::with_template(BYTES_TEMPLATE).is_ok());
    }
}
