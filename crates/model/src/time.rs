//! `UtcTime`: an instant with millisecond resolution, printed as RFC 3339 UTC
//! (`2026-01-14T09:31:05.123Z`) as seed 001 §2.14.3 asks.
//!
//! It is a plain `i64` of milliseconds so the hot path (hundreds of thousands of records a
//! second) formats and compares it without allocation; zone work (Asia/Seoul partitions,
//! the KRX calendar) goes through `jiff` at the edges.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid timestamp {text:?}: {why}")]
pub struct TimeError {
    pub text: String,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UtcTime(i64);

const MS_PER_DAY: i64 = 86_400_000;

/// Korea Standard Time. Seoul has kept UTC+9 without daylight saving since 1988, so for any
/// date this recorder can see the offset is fixed; `seoul()` is used where a real zone is
/// wanted (calendar arithmetic, parsing user input).
pub const KST_OFFSET_MS: i64 = 9 * 3_600_000;

pub fn seoul() -> TimeZone {
    // The bundled tzdb always has Asia/Seoul; falling back to the fixed offset keeps this
    // infallible without hiding a real difference (there is none since 1988).
    TimeZone::get("Asia/Seoul").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(9)))
}

/// The span of instants a record may carry: 2000-01-01T00:00:00Z (inclusive) to
/// 2100-01-01T00:00:00Z (exclusive). It is the archive format's domain: the observer
/// refuses events outside it (`observer.limits` may narrow it, never widen it), and
/// `verify`, `replay` and `etl` report an archive line outside it as a bad line.
pub const PLAUSIBLE_TIMES: std::ops::Range<UtcTime> = UtcTime(946_684_800_000)..UtcTime(4_102_444_800_000);

/// The earliest and latest instants `kst()` and the RFC 3339 formatter can show
/// (0000-01-01T00:00:00.000 and 9999-12-31T23:59:59.999 on their clocks); instants beyond are
/// shown clamped to these, so neither ever panics. Nothing in range is affected.
const CIVIL_MIN_MS: i64 = -62_167_219_200_000;
const CIVIL_MAX_MS: i64 = 253_402_300_799_999;

impl UtcTime {
    pub const fn from_millis(ms: i64) -> Self {
        UtcTime(ms)
    }
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    /// `self` moved by `ms` milliseconds, saturating at the ends of `i64` (never panics).
    pub fn plus_millis(self, ms: i64) -> Self {
        UtcTime(self.0.saturating_add(ms))
    }
    /// `self` moved by `secs` seconds, saturating (never panics): for durations a peer
    /// sends, such as a token's `expires_in`.
    pub fn plus_secs(self, secs: i64) -> Self {
        self.plus_millis(secs.saturating_mul(1000))
    }
    /// `self` moved by `ms` milliseconds, or `None` if that leaves `i64`.
    pub fn checked_plus_millis(self, ms: i64) -> Option<Self> {
        self.0.checked_add(ms).map(UtcTime)
    }
    pub fn plus(self, d: std::time::Duration) -> Self {
        self.plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later), saturating at
    /// the ends of `i64`, so a distance between absurd instants is still huge, never wrapped.
    pub fn millis_since(self, earlier: UtcTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
    /// Inside [`PLAUSIBLE_TIMES`].
    pub fn is_plausible(self) -> bool {
        PLAUSIBLE_TIMES.contains(&self)
    }

    pub fn from_timestamp(ts: jiff::Timestamp) -> Self {
        UtcTime(ts.as_millisecond())
    }
    pub fn to_timestamp(self) -> jiff::Timestamp {
        // Clocks and parsed RFC 3339 strings are inside jiff's range (years -9999..9999);
        // anything else (arithmetic on a hostile value) is clamped to its nearest end.
        let (lo, hi) = (jiff::Timestamp::MIN.as_millisecond(), jiff::Timestamp::MAX.as_millisecond());
        jiff::Timestamp::from_millisecond(self.0.clamp(lo, hi)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// The Asia/Seoul wall-clock date and time of this instant. Total: an instant whose Seoul
    /// time is outside years 0000..=9999 shows as the nearest end of that span (such an
    /// instant is never plausible, see [`PLAUSIBLE_TIMES`], and is refused where it matters).
    pub fn kst(self) -> DateTime {
        let local = self.0.saturating_add(KST_OFFSET_MS).clamp(CIVIL_MIN_MS, CIVIL_MAX_MS);
        let (days, ms) = (local.div_euclid(MS_PER_DAY), local.rem_euclid(MS_PER_DAY));
        let (y, m, d) = civil_from_days(days);
        let secs = ms / 1000;
        DateTime::from_parts(
            Date::constant(y as i16, m as i8, d as i8),
            Time::constant(
                (secs / 3600) as i8,
                ((secs / 60) % 60) as i8,
                (secs % 60) as i8,
                ((ms % 1000) * 1_000_000) as i32,
            ),
        )
    }

    /// The instant at which Seoul's wall clock shows `dt`.
    pub fn from_kst(dt: DateTime) -> Self {
        let days = days_from_civil(dt.year() as i64, dt.month() as i64, dt.day() as i64);
        let ms = days * MS_PER_DAY
            + (dt.hour() as i64 * 3600 + dt.minute() as i64 * 60 + dt.second() as i64) * 1000
            + dt.subsec_nanosecond() as i64 / 1_000_000;
        UtcTime(ms - KST_OFFSET_MS)
    }

    /// Seoul day number (days since 1970-01-01 in Seoul) and milliseconds into that day:
    /// the cheap form of `kst()` for hot-path window checks.
    pub fn kst_day_ms(self) -> (i64, i64) {
        let local = self.0.saturating_add(KST_OFFSET_MS);
        (local.div_euclid(MS_PER_DAY), local.rem_euclid(MS_PER_DAY))
    }

    /// `YYYYMMDD` of the Seoul date, as used in partition folders.
    pub fn kst_yyyymmdd(self) -> String {
        let d = self.kst().date();
        format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
    }

    /// Writes `2026-01-14T09:31:05.123Z` into `out`.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 24];
        self.format_into(&mut buf);
        out.extend_from_slice(&buf);
    }

    /// The 24 ASCII bytes of `write_rfc3339`, for callers that reuse them.
    pub fn rfc3339_bytes(self) -> [u8; 24] {
        let mut buf = [0u8; 24];
        self.format_into(&mut buf);
        buf
    }

    fn format_into(self, buf: &mut [u8; 24]) {
        // Records come in bursts within a second: reuse that second's date and time and
        // write only the milliseconds.
        thread_local! {
            static LAST_SECOND: std::cell::Cell<(i64, [u8; 24])> = const { std::cell::Cell::new((i64::MIN, [0; 24])) };
        }
        if !(CIVIL_MIN_MS..=CIVIL_MAX_MS).contains(&self.0) {
            return self.format_full(buf);
        }
        let second = self.0.div_euclid(1000);
        let (cached, text) = LAST_SECOND.with(std::cell::Cell::get);
        if cached == second {
            *buf = text;
            put(&mut buf[20..23], self.0.rem_euclid(1000));
            return;
        }
        self.format_full(buf);
        LAST_SECOND.with(|c| c.set((second, *buf)));
    }

    /// Years 0000..=9999 fit the 24 bytes; an instant beyond is written clamped (see `kst`).
    fn format_full(self, buf: &mut [u8; 24]) {
        let t = self.0.clamp(CIVIL_MIN_MS, CIVIL_MAX_MS);
        let (days, ms) = (t.div_euclid(MS_PER_DAY), t.rem_euclid(MS_PER_DAY));
        let (y, m, d) = civil_from_days(days);
        let secs = ms / 1000;
        *buf = *b"0000-00-00T00:00:00.000Z";
        put(&mut buf[0..4], y);
        put(&mut buf[5..7], m);
        put(&mut buf[8..10], d);
        put(&mut buf[11..13], secs / 3600);
        put(&mut buf[14..16], (secs / 60) % 60);
        put(&mut buf[17..19], secs % 60);
        put(&mut buf[20..23], ms % 1000);
    }

    pub fn parse(s: &str) -> Result<Self, TimeError> {
        parse_fast(s.as_bytes()).map(UtcTime).map_or_else(
            || {
                s.parse::<jiff::Timestamp>()
                    .map(UtcTime::from_timestamp)
                    .map_err(|e| TimeError { text: s.to_string(), why: e.to_string() })
            },
            Ok,
        )
    }
}

fn put(dst: &mut [u8], mut v: i64) {
    for slot in dst.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The exact shape we write; anything else goes through jiff's full RFC 3339 parser.
fn parse_fast(b: &[u8]) -> Option<i64> {
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms (public domain), exact for the proleptic
// Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(24);
        self.write_rfc3339(&mut buf);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for UtcTime {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, TimeError> {
        UtcTime::parse(s)
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        self.format_into(&mut buf);
        // format_into only writes ASCII digits and separators.
        s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        UtcTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_like_jiff() {
        for ms in [0i64, 1_768_382_465_123, 951_782_400_000, -86_400_001, 4_102_444_799_999] {
            let t = UtcTime::from_millis(ms);
            let ours = t.to_string();
            let theirs = jiff::Timestamp::from_millisecond(ms).unwrap().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            if ms >= 0 {
                assert_eq!(ours, theirs);
                assert_eq!(UtcTime::parse(&ours).unwrap(), t);
            }
        }
        assert_eq!(UtcTime::parse("2026-01-14T18:31:05.123+09:00").unwrap().to_string(), "2026-01-14T09:31:05.123Z");
        assert!(UtcTime::parse("2026-02-30T00:00:00.000Z").is_err());
    }

    #[test]
    fn cached_seconds_format_like_a_full_format() {
        // Same second, next second, back again, across a day, and before 1970.
        for ms in [1_768_382_465_123i64, 1_768_382_465_999, 1_768_382_466_000, 1_768_382_465_001, 1_768_435_199_999]
            .into_iter()
            .chain([1_768_435_200_000, -1, -1000, -999, 0])
        {
            let mut full = [0u8; 24];
            UtcTime(ms).format_full(&mut full);
            assert_eq!(UtcTime(ms).rfc3339_bytes(), full, "{ms}");
        }
    }

    #[test]
    fn arithmetic_saturates_and_kst_is_total() {
        let (min, max) = (UtcTime(i64::MIN), UtcTime(i64::MAX));
        assert_eq!(max.plus_millis(1), max);
        assert_eq!(min.plus_millis(-1), min);
        assert_eq!(UtcTime(0).plus_secs(i64::MAX), max);
        assert_eq!(max.checked_plus_millis(1), None);
        assert_eq!(UtcTime(0).plus(std::time::Duration::MAX), max);
        assert_eq!(min.millis_since(max), i64::MIN);
        assert_eq!(max.millis_since(min), i64::MAX);
        // The reproduction of issue 14: 9999-12-31T20:00Z is year 10000 in Seoul.
        let far = UtcTime::parse("9999-12-31T20:00:00.000Z").unwrap();
        assert_eq!(far.kst().to_string(), "9999-12-31T23:59:59.999");
        assert_eq!(far.kst_yyyymmdd(), "99991231");
        assert!(!far.is_plausible());
        for ms in [i64::MIN, i64::MIN + 1, -62_167_219_200_001, 253_402_300_800_000, i64::MAX - 1, i64::MAX] {
            let t = UtcTime(ms);
            let _ = (t.kst(), t.kst_day_ms(), t.kst_yyyymmdd(), t.to_timestamp());
            let text = t.to_string();
            assert_eq!(text.len(), 24, "{text}");
            assert!(UtcTime::parse(&text).is_ok(), "{text}");
            assert_eq!(t.rfc3339_bytes(), t.rfc3339_bytes());
            let _ = crate::SessionId::starting_at(t);
        }
        assert_eq!(UtcTime(i64::MIN).to_string(), "0000-01-01T00:00:00.000Z");
        assert_eq!(UtcTime(i64::MAX).to_string(), "9999-12-31T23:59:59.999Z");
        assert!(UtcTime::parse("2000-01-01T00:00:00.000Z").unwrap().is_plausible());
        assert!(!UtcTime::parse("2100-01-01T00:00:00.000Z").unwrap().is_plausible());
        assert!(!UtcTime::parse("1999-12-31T23:59:59.999Z").unwrap().is_plausible());
    }

    proptest::proptest! {
        /// Any instant at all: arithmetic, `kst()`, formatting and partition names never
        /// panic, and what is formatted parses back (clamped at the ends of years 0..=9999).
        #[test]
        fn every_instant_is_total(ms in proptest::prelude::any::<i64>(), d in proptest::prelude::any::<i64>()) {
            let t = UtcTime(ms);
            let _ = (t.plus_millis(d), t.plus_secs(d), t.checked_plus_millis(d), t.millis_since(UtcTime(d)));
            let _ = (t.kst(), t.kst_day_ms(), t.kst_yyyymmdd(), t.to_timestamp(), crate::SessionId::starting_at(t));
            let back = UtcTime::parse(&t.to_string()).unwrap();
            proptest::prop_assert_eq!(back, UtcTime(ms.clamp(CIVIL_MIN_MS, CIVIL_MAX_MS)));
        }
    }

    #[test]
    fn kst_partitions() {
        let t = UtcTime::parse("2026-01-14T15:00:00.000Z").unwrap();
        assert_eq!(t.kst_yyyymmdd(), "20260115");
        assert_eq!(t.kst().hour(), 0);
        assert_eq!(UtcTime::from_kst(t.kst()), t);
        let z = t.to_timestamp().to_zoned(seoul());
        assert_eq!(z.datetime(), t.kst());
    }
}
