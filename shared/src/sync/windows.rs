//! Which time windows a run pulls: from the watermark minus the overlap (late fields and edits
//! land inside it) to now minus the source's lag, in pieces no longer than the API accepts.

use crate::sources::Window;
use chrono::{DateTime, Duration, Utc};

pub struct WindowPlan {
    pub watermark: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    pub overlap: Duration,
    pub backfill: Duration,
    pub lag: Duration,
    pub max_span: Duration,
    /// FULL syncs ignore the watermark.
    pub full: bool,
}

impl WindowPlan {
    pub fn windows(&self) -> Vec<Window> {
        let end = self.now - self.lag;
        let earliest = self.now - self.backfill;
        let start = match (self.full, self.watermark) {
            (false, Some(mark)) => (mark - self.overlap).max(earliest),
            _ => earliest,
        };
        let mut windows = Vec::new();
        let mut cursor = start;
        while cursor < end {
            let next = (cursor + self.max_span).min(end);
            windows.push(Window {
                start: cursor,
                end: next,
            });
            cursor = next;
        }
        windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn plan(watermark: Option<DateTime<Utc>>, full: bool) -> WindowPlan {
        WindowPlan {
            watermark,
            now: Utc.with_ymd_and_hms(2025, 6, 30, 12, 0, 0).unwrap(),
            overlap: Duration::minutes(30),
            backfill: Duration::days(30),
            lag: Duration::minutes(10),
            max_span: Duration::days(7),
            full,
        }
    }

    #[test]
    fn first_sync_backfills_in_pieces_up_to_the_lag() {
        let p = plan(None, false);
        let w = p.windows();
        assert_eq!(w.first().unwrap().start, p.now - Duration::days(30));
        assert_eq!(w.last().unwrap().end, p.now - Duration::minutes(10));
        assert!(w.iter().all(|w| w.span() <= Duration::days(7)));
        assert!(w.windows(2).all(|pair| pair[0].end == pair[1].start), "contiguous");
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn incremental_starts_an_overlap_before_the_watermark() {
        let p = plan(Some(Utc.with_ymd_and_hms(2025, 6, 30, 11, 0, 0).unwrap()), false);
        let w = p.windows();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].start, Utc.with_ymd_and_hms(2025, 6, 30, 10, 30, 0).unwrap());
        assert_eq!(plan(p.watermark, true).windows().len(), 5, "FULL ignores the watermark");
    }

    #[test]
    fn nothing_to_do_when_the_watermark_is_past_the_lag() {
        let p = plan(Some(Utc.with_ymd_and_hms(2025, 6, 30, 12, 0, 0).unwrap()), false);
        let w = p.windows();
        assert_eq!(w.len(), 1, "the overlap still re-reads the last half hour");
        let p = WindowPlan {
            overlap: Duration::zero(),
            ..p
        };
        assert!(p.windows().is_empty());
    }
}
