//! Times at which tracks fire: `window.start + k × interval` on KRX trading days, in Seoul
//! time, computed from the `Clock` (never from the system time) so accelerated runs and tests
//! follow the same schedule as a real day.

use jiff::civil::DateTime;

use model::settings::Window;
use model::{KrxCalendar, Market, UtcTime};

/// Whether a window's end instant is itself a firing time (Track A's 15:30 cycle records
/// the close) or not (Track B samples stop before 15:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Inclusive,
    Exclusive,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub window: Window,
    pub interval_ms: i64,
    pub end: End,
    pub calendar: KrxCalendar,
    /// Crypto trades every day; KR stocks only on KRX trading days.
    pub market: Market,
    /// The run ends here (`collect --until`): nothing fires at or after it.
    pub until: Option<UtcTime>,
}

/// How many days ahead to look for the next trading day: more than any holiday run.
const SEARCH_DAYS: i32 = 370;

impl Schedule {
    fn open_on(&self, date: jiff::civil::Date) -> bool {
        self.market == Market::Crypto || self.calendar.is_trading_day(date)
    }

    /// The first firing time at or after `now`.
    pub fn next_at_or_after(&self, now: UtcTime) -> Option<UtcTime> {
        self.next_unbounded(now).filter(|t| self.until.is_none_or(|u| *t < u))
    }

    fn next_unbounded(&self, now: UtcTime) -> Option<UtcTime> {
        let mut date = now.kst().date();
        for _ in 0..SEARCH_DAYS {
            if self.open_on(date) {
                let start = UtcTime::from_kst(DateTime::from_parts(date, self.window.start));
                let end = UtcTime::from_kst(DateTime::from_parts(date, self.window.end));
                let from = now.max(start);
                let k = (from.millis_since(start) + self.interval_ms - 1) / self.interval_ms;
                let t = start.plus_millis(k * self.interval_ms);
                if t < end || (self.end == End::Inclusive && t == end) {
                    return Some(t);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Whether `t` is inside the window on an open day.
    pub fn in_window(&self, t: UtcTime) -> bool {
        let local = t.kst();
        let time = local.time();
        self.open_on(local.date())
            && self.window.start <= time
            && (time < self.window.end || (self.end == End::Inclusive && time == self.window.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;

    fn kst(s: &str) -> UtcTime {
        UtcTime::from_kst(s.parse().unwrap())
    }

    fn track_a() -> Schedule {
        Schedule {
            window: Window { start: time(9, 0, 0, 0), end: time(15, 30, 0, 0) },
            interval_ms: 600_000,
            end: End::Inclusive,
            calendar: KrxCalendar::new([jiff::civil::date(2026, 1, 15)]),
            market: Market::KrStocks,
            until: None,
        }
    }

    #[test]
    fn track_a_fires_forty_times_a_day() {
        let s = track_a();
        let mut t = kst("2026-01-14T08:00:00");
        let mut fired = vec![];
        while let Some(next) = s.next_at_or_after(t) {
            if next.kst().date() != jiff::civil::date(2026, 1, 14) {
                break;
            }
            fired.push(next);
            t = next.plus_millis(1);
        }
        assert_eq!(fired.len(), 40);
        assert_eq!(fired[0], kst("2026-01-14T09:00:00"));
        assert_eq!(*fired.last().unwrap(), kst("2026-01-14T15:30:00"));
    }

    #[test]
    fn skips_holidays_and_weekends() {
        let s = track_a();
        // After the close on Wed 14th: Thu 15th is a holiday → Fri 16th 09:00.
        assert_eq!(s.next_at_or_after(kst("2026-01-14T15:30:00.001")), Some(kst("2026-01-16T09:00:00")));
        // Saturday → Monday.
        assert_eq!(s.next_at_or_after(kst("2026-01-17T10:00:00")), Some(kst("2026-01-19T09:00:00")));
        let b = Schedule { end: End::Exclusive, interval_ms: 500, ..track_a() };
        assert_eq!(b.next_at_or_after(kst("2026-01-14T10:00:00.001")), Some(kst("2026-01-14T10:00:00.500")));
        assert!(!b.in_window(kst("2026-01-14T15:30:00")));
        assert!(s.in_window(kst("2026-01-14T15:30:00")));
        let bounded = Schedule { until: Some(kst("2026-01-14T11:00:00")), ..track_a() };
        assert_eq!(bounded.next_at_or_after(kst("2026-01-14T10:50:00.001")), None);
        assert_eq!(bounded.next_at_or_after(kst("2026-01-14T10:49:00")), Some(kst("2026-01-14T10:50:00")));
    }
}
