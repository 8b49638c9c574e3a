//! Value types for configuration, shared by every component's config section, and the
//! validation helper that names the offending key.
//!
//! Each component owns its config struct (Vector's split of config from running task); the
//! `config` crate only layers the sources and runs `Validate` over the whole tree.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::Time;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A strictly positive duration written the friendly way: `500ms`, `30s`, `10m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(Duration);

impl Interval {
    pub const fn from_millis(ms: u64) -> Self {
        Interval(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Days and weeks are 24-hour days here: retention is written "30d", and an interval
        // is a fixed length, never a calendar step. Months and years are refused (no fixed
        // length).
        let d = s
            .trim()
            .parse::<jiff::Span>()
            .ok()
            .and_then(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok())
            .ok_or_else(|| format!("{s:?} is not a duration (write e.g. 500ms, 30s, 10m, 1h, 30d)"))?;
        if d.is_negative() || d.is_zero() {
            return Err(format!("{s:?} must be a positive duration"));
        }
        Duration::try_from(d).map(Interval).map_err(|e| format!("{s:?}: {e}"))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = jiff::SignedDuration::try_from(self.0).map_err(|_| fmt::Error)?;
        write!(f, "{d:#}")
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A Seoul wall-clock window within a day, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

impl Window {
    pub fn contains(&self, t: Time) -> bool {
        self.start <= t && t < self.end
    }
}

/// One problem found in the configuration: the key path and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Collects problems under a key prefix, so nested sections report `tracks.scalp.slots`.
#[derive(Debug, Default)]
pub struct Checker {
    prefix: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Checker {
    pub fn section(&mut self, name: &str, f: impl FnOnce(&mut Checker)) {
        self.prefix.push(name.to_string());
        f(self);
        self.prefix.pop();
    }

    pub fn key(&self, name: &str) -> String {
        let mut k = self.prefix.join(".");
        if !k.is_empty() {
            k.push('.');
        }
        k.push_str(name);
        k
    }

    /// Records a problem for `name` unless `ok`.
    pub fn check(&mut self, ok: bool, name: &str, message: impl fmt::Display) {
        if !ok {
            let key = self.key(name);
            self.problems.push(Problem { key, message: message.to_string() });
        }
    }

    pub fn range<T: PartialOrd + fmt::Display + Copy>(&mut self, name: &str, v: T, lo: T, hi: T) {
        self.check(lo <= v && v <= hi, name, format_args!("{v} is outside {lo}..={hi}"));
    }

    pub fn window(&mut self, name: &str, w: &Window) {
        self.check(w.start < w.end, name, format_args!("start {} is not before end {}", w.start, w.end));
    }
}

/// Implemented by every config section.
pub trait Validate {
    fn validate(&self, c: &mut Checker);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_friendly_and_reject_bad() {
        assert_eq!("500ms".parse::<Interval>().unwrap().as_millis(), 500);
        assert_eq!("10m".parse::<Interval>().unwrap().as_millis(), 600_000);
        assert_eq!("1h 30m".parse::<Interval>().unwrap().as_millis(), 5_400_000);
        assert!("-5s".parse::<Interval>().unwrap_err().contains("positive"));
        assert!("0s".parse::<Interval>().unwrap_err().contains("positive"));
        assert!("ten minutes".parse::<Interval>().unwrap_err().contains("not a duration"));
        // Retention is written in days and weeks; a month has no fixed length.
        assert_eq!("30d".parse::<Interval>().unwrap().get(), Duration::from_secs(30 * 86_400));
        assert_eq!("2w".parse::<Interval>().unwrap().get(), Duration::from_secs(14 * 86_400));
        assert_eq!("1d 12h".parse::<Interval>().unwrap().get(), Duration::from_secs(36 * 3_600));
        assert!("1mo".parse::<Interval>().unwrap_err().contains("not a duration"));
    }

    #[test]
    fn checker_names_nested_keys() {
        let mut c = Checker::default();
        c.section("tracks", |c| c.section("scalp", |c| c.range("slots", 0u32, 1, 200)));
        assert_eq!(c.problems[0].key, "tracks.scalp.slots");
    }
}
