//! `Day`: a Seoul calendar day, the unit of the archive's partitions, manifests, backup
//! packages and retention. Written `YYYYMMDD` everywhere it is named (folders, manifests,
//! package directories, command lines).

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::UtcTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(Date);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a date in YYYYMMDD form (e.g. 20260114)")]
pub struct DayError(pub String);

impl Day {
    pub fn new(date: Date) -> Self {
        Day(date)
    }

    /// The Seoul day `at` falls on.
    pub fn of(at: UtcTime) -> Self {
        Day(at.kst().date())
    }

    pub fn date(self) -> Date {
        self.0
    }

    /// 00:00 Seoul of this day.
    pub fn start(self) -> UtcTime {
        UtcTime::from_kst(DateTime::from_parts(self.0, Time::midnight()))
    }

    /// 00:00 Seoul of the next day: every record of the day is before it.
    pub fn end(self) -> UtcTime {
        self.plus(1).start()
    }

    /// The day `n` days later (earlier for negative `n`); saturates at jiff's date range.
    pub fn plus(self, n: i32) -> Self {
        Day(self.0.checked_add(jiff::Span::new().days(n)).unwrap_or(self.0))
    }

    /// Whole days from `self` to `later` (negative if `later` is earlier).
    pub fn days_until(self, later: Day) -> i64 {
        (later.start().millis_since(self.start())).div_euclid(86_400_000)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.0.year(), self.0.month(), self.0.day())
    }
}

impl FromStr for Day {
    type Err = DayError;
    fn from_str(s: &str) -> Result<Self, DayError> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DayError(s.to_string()));
        }
        Date::strptime("%Y%m%d", s).map(Day).map_err(|_| DayError(s.to_string()))
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_counts() {
        let d: Day = "20260114".parse().unwrap();
        assert_eq!(d.to_string(), "20260114");
        assert_eq!(d.start(), UtcTime::parse("2026-01-13T15:00:00.000Z").unwrap());
        assert_eq!(d.end(), UtcTime::parse("2026-01-14T15:00:00.000Z").unwrap());
        assert_eq!(Day::of(UtcTime::parse("2026-01-14T14:59:59.999Z").unwrap()), d);
        assert_eq!(d.plus(18).to_string(), "20260201");
        assert_eq!(d.days_until(d.plus(10)), 10);
        assert_eq!(d.plus(3).days_until(d), -3);
        for bad in ["2026011", "20261301", "2026-01-14", "20260230", "abcdefgh", "+2026011"] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"20260114\"");
        assert_eq!(serde_json::from_str::<Day>(&json).unwrap(), d);
    }
}
