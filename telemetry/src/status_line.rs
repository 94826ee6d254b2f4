//! A live status line for `chainwatch probe` / `run` on a terminal: events/s, losses and open
//! chains, redrawn in place on stderr. When stderr is not a terminal it prints nothing at all
//! (logs and piped output stay clean).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::TelemetryError;

/// Totals since start, read at each redraw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusSample {
    pub events_total: u64,
    /// Everything lost (probe losses + dead letters ...).
    pub lost_total: u64,
    pub open_chains: u64,
    pub violations_total: u64,
}

/// The line for two samples `elapsed` apart.
pub fn render_status(prev: &StatusSample, cur: &StatusSample, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { cur.events_total.saturating_sub(prev.events_total) as f64 / secs } else { 0.0 };
    format!(
        "{} events/s | {} events | {} lost | {} open chains | {} violations",
        human(rate),
        cur.events_total,
        cur.lost_total,
        cur.open_chains,
        cur.violations_total
    )
}

fn human(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// A running status line; stops (and clears the line) on drop.
pub struct StatusLine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl StatusLine {
    /// Redraw every `interval` from `source`, only if stderr is a terminal; otherwise inert.
    pub fn start(
        interval: Duration,
        source: impl Fn() -> StatusSample + Send + 'static,
    ) -> Result<StatusLine, TelemetryError> {
        if !std::io::stderr().is_terminal() {
            return Ok(StatusLine { stop: Arc::new(AtomicBool::new(true)), thread: None, bar: None });
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_stop, thread_bar) = (Arc::clone(&stop), bar.clone());
        let thread = std::thread::Builder::new()
            .name("status-line".into())
            .spawn(move || {
                let mut prev = source();
                let mut prev_at = Instant::now();
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(interval);
                    if thread_stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let cur = source();
                    let now = Instant::now();
                    thread_bar.set_message(render_status(&prev, &cur, now - prev_at));
                    thread_bar.tick();
                    (prev, prev_at) = (cur, now);
                }
            })
            .map_err(|e| TelemetryError::Thread("status line", e))?;
        Ok(StatusLine { stop, thread: Some(thread), bar: Some(bar) })
    }

    /// Whether anything is drawn (stderr is a terminal).
    pub fn is_active(&self) -> bool {
        self.bar.is_some()
    }

    /// Print a line above the status line without garbling it (plain eprintln when inactive).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rate_and_totals() {
        let prev = StatusSample { events_total: 1000, ..Default::default() };
        let cur = StatusSample { events_total: 31_000, lost_total: 7, open_chains: 12, violations_total: 1 };
        let line = render_status(&prev, &cur, Duration::from_secs(2));
        assert_eq!(line, "15.0k events/s | 31000 events | 7 lost | 12 open chains | 1 violations");
        // A counter reset or zero interval never panics or goes negative.
        assert!(render_status(&cur, &prev, Duration::ZERO).starts_with("0 events/s"));
    }

    #[test]
    fn inert_when_not_a_terminal() {
        // cargo test captures stderr through a pipe unless run with --nocapture on a tty.
        if std::io::stderr().is_terminal() {
            return;
        }
        let line = StatusLine::start(Duration::from_millis(10), StatusSample::default).unwrap();
        assert!(!line.is_active());
    }
}
