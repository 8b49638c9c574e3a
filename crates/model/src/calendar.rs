//! The KRX trading calendar: weekdays that are not listed holidays. Holidays come from the
//! config (`calendar.holidays`; KRX publishes them yearly).

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};

#[derive(Debug, Clone, Default)]
pub struct KrxCalendar {
    holidays: BTreeSet<Date>,
}

impl KrxCalendar {
    pub fn new(holidays: impl IntoIterator<Item = Date>) -> Self {
        KrxCalendar { holidays: holidays.into_iter().collect() }
    }

    pub fn is_trading_day(&self, d: Date) -> bool {
        !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) && !self.holidays.contains(&d)
    }

    /// The latest trading day on or before `d` (searches back at most a year, which any
    /// sane holiday list satisfies).
    pub fn latest_trading_day(&self, d: Date) -> Option<Date> {
        let mut day = d;
        for _ in 0..366 {
            if self.is_trading_day(day) {
                return Some(day);
            }
            day = day.yesterday().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn weekends_and_holidays_are_closed() {
        let cal = KrxCalendar::new([date(2026, 1, 1)]);
        assert!(!cal.is_trading_day(date(2026, 1, 1)));
        assert!(cal.is_trading_day(date(2026, 1, 2)));
        assert!(!cal.is_trading_day(date(2026, 1, 3)));
        // Sunday 2026-01-04 → Friday 2026-01-02.
        assert_eq!(cal.latest_trading_day(date(2026, 1, 4)), Some(date(2026, 1, 2)));
        // Thursday holiday → Wednesday.
        assert_eq!(cal.latest_trading_day(date(2026, 1, 1)), Some(date(2025, 12, 31)));
    }
}
