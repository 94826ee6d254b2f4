//! Event-time watermark: "no event older than this is expected any more". It trails the newest
//! event time seen (or an explicit event-time clock) by the allowed lateness and never goes
//! back. A chain closes once its last step plus the idle gap is behind the watermark; a closed
//! chain stays reopenable for one more allowed lateness, so a late event becomes an update of
//! the same chain (version + 1), never a second chain.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    lateness_ns: i64,
    max_event_ns: i64,
    current: i64,
}

impl Watermark {
    pub fn new(allowed_lateness_ns: i64) -> Self {
        Watermark { lateness_ns: allowed_lateness_ns.max(0), max_event_ns: i64::MIN, current: i64::MIN }
    }

    pub fn lateness_ns(&self) -> i64 {
        self.lateness_ns
    }

    /// Note an event's time (does not move the watermark by itself; `advance` does).
    pub fn observe(&mut self, event_ns: i64) {
        self.max_event_ns = self.max_event_ns.max(event_ns);
    }

    /// The newest event time observed.
    pub fn max_event_ns(&self) -> i64 {
        self.max_event_ns
    }

    /// Move to `max(newest event, clock_ns) - lateness`, never backwards. Returns the watermark.
    pub fn advance(&mut self, clock_ns: i64) -> i64 {
        let head = self.max_event_ns.max(clock_ns);
        if head != i64::MIN {
            self.current = self.current.max(head.saturating_sub(self.lateness_ns));
        }
        self.current
    }

    /// Jump to the end of time (flush everything).
    pub fn finish(&mut self) -> i64 {
        self.current = i64::MAX;
        self.current
    }

    pub fn current(&self) -> i64 {
        self.current
    }

    /// Whether an event at `ts` is behind the watermark (late).
    pub fn is_late(&self, ts: i64) -> bool {
        ts < self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trails_by_lateness_and_never_goes_back() {
        let mut w = Watermark::new(10);
        assert_eq!(w.advance(i64::MIN), i64::MIN);
        w.observe(100);
        assert_eq!(w.advance(0), 90);
        w.observe(50);
        assert_eq!(w.advance(0), 90);
        assert!(w.is_late(80));
        assert_eq!(w.advance(200), 190);
        assert_eq!(w.finish(), i64::MAX);
    }
}
