//! The observer core of seed 001 §2.6: validate → guard → enrich. Pure and synchronous, so
//! it runs inline in whichever task owns the stream and is benchmarked on its own.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Validate, Window};
use model::{KrxCalendar, Market, MarketEvent, Meta, QualityFlag, Record, SessionId, Symbol, UtcTime};

use crate::stats::{Stats, inc};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// KRX closed days besides weekends.
    pub holidays: Vec<Date>,
    /// The regular session (Seoul time); the guard rejects KR stock data outside it.
    pub session: Window,
}

impl CalendarConfig {
    pub fn krx(&self) -> KrxCalendar {
        KrxCalendar::new(self.holidays.iter().copied())
    }
}

impl Validate for CalendarConfig {
    fn validate(&self, c: &mut Checker) {
        c.window("session", &self.session);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverConfig {
    /// Largest distance between a record's event time and its receive time before
    /// validation calls the timestamp wrong.
    pub max_clock_skew: Interval,
    /// How many recent trade ids per provider the duplicate guard remembers.
    pub dedupe_capacity: usize,
    /// Plausible ranges of a provider's numbers and times; anything outside is rejected at
    /// validation like any other invalid record.
    #[serde(default)]
    pub limits: ObserverLimits,
}

/// Bounds on what a provider may send (issue 14: a frame on the wire, or a damaged archive
/// line in `replay`, must not be able to overflow the arithmetic behind it). They can narrow
/// the archive format's domain ([`model::num::PLAUSIBLE_ABS_MAX`],
/// [`model::time::PLAUSIBLE_TIMES`]), never widen it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverLimits {
    /// Largest |value| of any price, size or volume.
    pub max_abs_number: rust_decimal::Decimal,
    /// Event and receive times before this are refused.
    pub earliest_time: UtcTime,
    /// Event and receive times at or after this are refused.
    pub latest_time: UtcTime,
    /// Largest |event_time − receive_time| whatever the clock speed (`max_clock_skew` is
    /// scaled by the simulated clock's speed; this is not).
    pub max_receipt_distance: Interval,
}

impl Default for ObserverLimits {
    fn default() -> Self {
        ObserverLimits {
            max_abs_number: model::num::PLAUSIBLE_ABS_MAX,
            earliest_time: model::time::PLAUSIBLE_TIMES.start,
            latest_time: model::time::PLAUSIBLE_TIMES.end,
            max_receipt_distance: Interval::from_millis(MS_PER_DAY),
        }
    }
}

const MS_PER_DAY: u64 = 86_400_000;

impl Validate for ObserverConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(self.max_clock_skew.as_millis() <= 3_600_000, "max_clock_skew", "must be at most 1h");
        c.range("dedupe_capacity", self.dedupe_capacity, 16, 10_000_000);
        c.section("limits", |c| self.limits.validate(c));
    }
}

impl Validate for ObserverLimits {
    fn validate(&self, c: &mut Checker) {
        let max = model::num::PLAUSIBLE_ABS_MAX;
        c.check(
            self.max_abs_number.is_sign_positive() && !self.max_abs_number.is_zero() && self.max_abs_number <= max,
            "max_abs_number",
            format_args!("{} must be positive and at most {max}", self.max_abs_number),
        );
        let domain = model::time::PLAUSIBLE_TIMES;
        c.check(
            domain.start <= self.earliest_time
                && self.earliest_time < self.latest_time
                && self.latest_time <= domain.end,
            "earliest_time",
            format_args!(
                "{}..{} must be a non-empty span within {}..{}",
                self.earliest_time, self.latest_time, domain.start, domain.end
            ),
        );
        let d = self.max_receipt_distance.as_millis();
        c.check(
            d > 0 && d <= MS_PER_DAY,
            "max_receipt_distance",
            format_args!("{} must be longer than zero and at most 1d", self.max_receipt_distance),
        );
    }
}

/// Why the core refused an event. `stage` is `validate` or `guard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub stage: &'static str,
    pub reason: String,
    /// The refused event's symbol, set by [`ObserverCore::observe`] (which consumes the
    /// event): only a refusal pays for the copy.
    pub symbol: Option<Symbol>,
}

impl Rejection {
    fn validate(reason: impl Into<String>) -> Self {
        Rejection { stage: "validate", reason: reason.into(), symbol: None }
    }
    fn guard(reason: impl Into<String>) -> Self {
        Rejection { stage: "guard", reason: reason.into(), symbol: None }
    }

    fn of(mut self, event: &MarketEvent) -> Self {
        self.symbol = Some(event.symbol().clone());
        self
    }
}

/// Refuses a trade seen before. Numeric trade ids are per-symbol sequence numbers (the sim's
/// `seq`, Upbit's `sequential_id`): one at or below the highest seen for its symbol is a
/// duplicate or a replay after a reconnect, which needs no memory beyond one number per
/// symbol. Other ids are remembered in a bounded set of the last `capacity`.
struct Dedupe {
    highest: HashMap<Symbol, u64>,
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
    hasher: RandomState,
}

impl Dedupe {
    fn new(capacity: usize) -> Self {
        Dedupe {
            highest: HashMap::new(),
            seen: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
            hasher: RandomState::new(),
        }
    }

    /// True if `(symbol, id)` was new.
    fn insert(&mut self, symbol: &Symbol, id: &str) -> bool {
        if let Ok(seq) = id.parse::<u64>() {
            return match self.highest.get_mut(symbol) {
                Some(h) if seq <= *h => false,
                Some(h) => {
                    *h = seq;
                    true
                }
                None => {
                    self.highest.insert(symbol.clone(), seq);
                    true
                }
            };
        }
        let mut h = self.hasher.build_hasher();
        symbol.hash(&mut h);
        id.hash(&mut h);
        let key = h.finish();
        if !self.seen.insert(key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(key);
        true
    }
}

fn time_ms(t: jiff::civil::Time) -> i64 {
    ((t.hour() as i64 * 60 + t.minute() as i64) * 60 + t.second() as i64) * 1000
        + t.subsec_nanosecond() as i64 / 1_000_000
}

pub struct ObserverCore {
    max_skew_ms: i64,
    limits: ObserverLimits,
    calendar: KrxCalendar,
    session_id: SessionId,
    mapper_version: &'static str,
    mitigation: Arc<AtomicU8>,
    dedupe: Dedupe,
    /// Session window in milliseconds of the Seoul day, and the last day checked against
    /// the calendar: the market-hours guard runs for every event.
    session_ms: (i64, i64),
    open_day: Option<(i64, bool)>,
    /// Newest accepted event time per (symbol, kind), for the stale guard.
    newest: HashMap<(Symbol, &'static str), UtcTime>,
    stats: Arc<Stats>,
}

impl ObserverCore {
    pub fn new(
        cfg: &ObserverConfig,
        calendar: &CalendarConfig,
        session_id: SessionId,
        mapper_version: &'static str,
        mitigation: Arc<AtomicU8>,
        stats: Arc<Stats>,
    ) -> Self {
        ObserverCore {
            max_skew_ms: i64::try_from(cfg.max_clock_skew.as_millis()).unwrap_or(i64::MAX),
            limits: cfg.limits.clone(),
            calendar: calendar.krx(),
            session_id,
            mapper_version,
            mitigation,
            dedupe: Dedupe::new(cfg.dedupe_capacity),
            session_ms: (time_ms(calendar.session.start), time_ms(calendar.session.end)),
            open_day: None,
            newest: HashMap::new(),
            stats,
        }
    }

    /// Runs one normalized event through validation, the guard and enrichment.
    pub fn observe(
        &mut self,
        event_time: UtcTime,
        receive_time: UtcTime,
        event: MarketEvent,
        raw_ref: Option<String>,
    ) -> Result<Record<MarketEvent>, Rejection> {
        inc(&self.stats.events_normalized);
        if let Err(r) = self.validate(event_time, receive_time, &event) {
            inc(&self.stats.rejected_validate);
            return Err(r.of(&event));
        }
        if let Err(r) = self.guard(event_time, &event) {
            inc(&self.stats.rejected_guard);
            return Err(r.of(&event));
        }
        inc(&self.stats.events_passed);
        self.stats.last_record_ms.fetch_max(receive_time.as_millis(), Ordering::Relaxed);
        Ok(self.enrich(event_time, receive_time, event, raw_ref))
    }

    pub fn validate(&self, event_time: UtcTime, receive_time: UtcTime, event: &MarketEvent) -> Result<(), Rejection> {
        let lim = &self.limits;
        for (name, t) in [("event_time", event_time), ("receive_time", receive_time)] {
            if t < lim.earliest_time || t >= lim.latest_time {
                return Err(Rejection::validate(format!(
                    "implausible {name} {t} (ms {}): outside {}..{}",
                    t.as_millis(),
                    lim.earliest_time,
                    lim.latest_time
                )));
            }
        }
        let skew = event_time.millis_since(receive_time);
        let distance = skew.unsigned_abs();
        let max_distance = lim.max_receipt_distance.as_millis();
        if distance > max_distance {
            return Err(Rejection::validate(format!(
                "implausible event_time {event_time}: {distance}ms from receive_time {receive_time} \
                 (max_receipt_distance {max_distance}ms)"
            )));
        }
        if distance > self.max_skew_ms.unsigned_abs() {
            return Err(Rejection::validate(format!(
                "event_time {event_time} is {distance}ms {} receive_time {receive_time} (max skew {}ms)",
                if skew > 0 { "after" } else { "before" },
                self.max_skew_ms
            )));
        }
        if let Some((name, v)) = event.number_beyond(lim.max_abs_number) {
            return Err(Rejection::validate(format!("implausible {name} {v}: |value| above {}", lim.max_abs_number)));
        }
        match event {
            MarketEvent::Tick(t) => {
                if t.cum_volume.is_some_and(|v| v.is_negative()) {
                    return Err(Rejection::validate(format!(
                        "negative cum_volume {}",
                        t.cum_volume.unwrap_or_default()
                    )));
                }
                if !t.price.is_positive() {
                    return Err(Rejection::validate(format!("non-positive price {}", t.price)));
                }
                if !t.size.is_positive() {
                    return Err(Rejection::validate(format!("non-positive size {}", t.size)));
                }
            }
            MarketEvent::Quote(q) => {
                if !q.bid_price.is_positive() || !q.ask_price.is_positive() {
                    return Err(Rejection::validate(format!("non-positive bid {} / ask {}", q.bid_price, q.ask_price)));
                }
                if q.bid_size.is_negative() || q.ask_size.is_negative() {
                    return Err(Rejection::validate(format!("negative size bid {} / ask {}", q.bid_size, q.ask_size)));
                }
                if let Some(l) = q.bids.iter().chain(&q.asks).find(|l| l.size.is_negative()) {
                    return Err(Rejection::validate(format!("negative level size {} at {}", l.size, l.price)));
                }
                if q.bid_price > q.ask_price {
                    return Err(Rejection::validate(format!(
                        "crossed book: bid {} > ask {}",
                        q.bid_price, q.ask_price
                    )));
                }
            }
            MarketEvent::Snapshot(s) => {
                for (name, p) in [
                    ("last_price", s.last_price),
                    ("open", s.open),
                    ("high", s.high),
                    ("low", s.low),
                    ("prev_close", s.prev_close),
                ] {
                    if !p.is_positive() {
                        return Err(Rejection::validate(format!("non-positive {name} {p}")));
                    }
                }
                if s.low > s.high {
                    return Err(Rejection::validate(format!("low {} above high {}", s.low, s.high)));
                }
                if s.volume.is_negative() {
                    return Err(Rejection::validate(format!("negative volume {}", s.volume)));
                }
                if let (Some(b), Some(a)) = (s.bid_price, s.ask_price)
                    && b > a
                {
                    return Err(Rejection::validate(format!("crossed book: bid {b} > ask {a}")));
                }
            }
        }
        Ok(())
    }

    fn guard(&mut self, event_time: UtcTime, event: &MarketEvent) -> Result<(), Rejection> {
        // Exchange events of KR stocks only happen in the regular session (the closing
        // auction prints at its end, so the end is inclusive). REST snapshots may be taken
        // at any time: their values are the session's, whenever we ask.
        if event.market() == Market::KrStocks && !matches!(event, MarketEvent::Snapshot(_)) {
            let (day, ms) = event_time.kst_day_ms();
            let open_day = match self.open_day {
                Some((d, open)) if d == day => open,
                _ => {
                    let open = self.calendar.is_trading_day(event_time.kst().date());
                    self.open_day = Some((day, open));
                    open
                }
            };
            if !open_day || ms < self.session_ms.0 || ms > self.session_ms.1 {
                return Err(Rejection::guard(format!("outside_market_hours: {} KST", event_time.kst())));
            }
        }
        if let MarketEvent::Tick(t) = event
            && let Some(id) = &t.trade_id
            && !self.dedupe.insert(&t.symbol, id)
        {
            return Err(Rejection::guard(format!("duplicate trade id {id}")));
        }
        // Trades may legitimately share or interleave timestamps; book states and snapshots
        // that go back in time would move the recorded state backwards.
        if !matches!(event, MarketEvent::Tick(_)) {
            let key = (event.symbol().clone(), event.kind());
            if let Some(prev) = self.newest.get(&key)
                && event_time < *prev
            {
                return Err(Rejection::guard(format!("stale: event_time {event_time} older than accepted {prev}")));
            }
            self.newest.insert(key, event_time);
        }
        Ok(())
    }

    fn enrich(
        &self,
        event_time: UtcTime,
        receive_time: UtcTime,
        event: MarketEvent,
        raw_ref: Option<String>,
    ) -> Record<MarketEvent> {
        let level = self.mitigation.load(Ordering::Relaxed);
        let mut meta = Meta::new(event_time, receive_time, self.session_id.clone());
        meta.mitigation_level = level;
        meta.quality_flag = if level > 0 { QualityFlag::Degraded } else { QualityFlag::Normal };
        meta.raw_ref = raw_ref;
        meta.mapper_version = Some(Cow::Borrowed(self.mapper_version));
        Record { body: event, meta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::settings::{Interval, Window};
    use model::{Price, Provider, Qty, Quote, Tick};

    fn core() -> ObserverCore {
        let cfg = ObserverConfig {
            max_clock_skew: "10s".parse::<Interval>().unwrap(),
            dedupe_capacity: 16,
            limits: ObserverLimits::default(),
        };
        let cal = CalendarConfig {
            holidays: vec![jiff::civil::date(2026, 1, 1)],
            session: Window { start: jiff::civil::time(9, 0, 0, 0), end: jiff::civil::time(15, 30, 0, 0) },
        };
        let t0 = at("10:00:00");
        ObserverCore::new(&cfg, &cal, SessionId::starting_at(t0), "test/1", Arc::default(), Arc::default())
    }

    fn at(hms: &str) -> UtcTime {
        // 2026-01-14 is a Wednesday.
        UtcTime::from_kst(format!("2026-01-14T{hms}").parse().unwrap())
    }

    fn tick(price: &str, id: &str) -> MarketEvent {
        MarketEvent::Tick(Tick {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: Symbol::new("005930").unwrap(),
            price: price.parse().unwrap(),
            size: Qty::from_int(10),
            side: None,
            cum_volume: None,
            trade_id: Some(id.into()),
        })
    }

    fn quote(bid: i64, ask: i64) -> MarketEvent {
        MarketEvent::Quote(Quote {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: Symbol::new("005930").unwrap(),
            bid_price: Price::from_int(bid),
            bid_size: Qty::from_int(1),
            ask_price: Price::from_int(ask),
            ask_size: Qty::from_int(1),
            bids: vec![],
            asks: vec![],
        })
    }

    #[test]
    fn every_refusal_names_its_reason_and_is_counted() {
        let mut c = core();
        let t = at("10:00:00");
        assert!(c.observe(t, t, tick("71500", "1"), None).is_ok());
        let dup = c.observe(t, t, tick("71500", "1"), None).unwrap_err();
        assert_eq!(dup.stage, "guard");
        assert!(dup.reason.contains("duplicate"));
        assert!(c.observe(t, t, tick("0", "2"), None).unwrap_err().reason.contains("non-positive price"));
        assert!(c.observe(t, t, quote(71600, 71500), None).unwrap_err().reason.contains("crossed"));
        let skewed = c.observe(t.plus_millis(11_000), t, tick("71500", "3"), None).unwrap_err();
        assert!(skewed.reason.contains("max skew"), "{skewed:?}");
        let late = at("15:31:00");
        assert!(c.observe(late, late, tick("71500", "4"), None).unwrap_err().reason.contains("outside_market_hours"));
        assert!(c.observe(t, t, quote(71400, 71500), None).is_ok());
        // A sequence number at or below the highest seen is a replay.
        assert!(c.observe(t, t, tick("71500", "10"), None).is_ok());
        assert!(c.observe(t, t, tick("71500", "9"), None).unwrap_err().reason.contains("duplicate"));
        // Opaque ids are remembered exactly.
        assert!(c.observe(t, t, tick("71500", "a-7"), None).is_ok());
        assert!(c.observe(t, t, tick("71500", "a-7"), None).unwrap_err().reason.contains("duplicate"));
        assert!(c.observe(t, t, tick("71500", "a-6"), None).is_ok());
        let older = t.plus_millis(-1);
        assert!(c.observe(older, t, quote(71400, 71500), None).unwrap_err().reason.contains("stale"));
        let s = c.stats.snapshot();
        assert_eq!(s.events_normalized, 13);
        assert_eq!(s.events_passed, 5);
        assert_eq!(s.rejected_validate + s.rejected_guard + s.events_passed, s.events_normalized);
    }

    /// Issue 14: numbers and times no market produces are refused at validation, counted,
    /// and never reach the arithmetic behind the core (nor panic in it).
    #[test]
    fn implausible_numbers_and_times_are_refused() {
        let mut c = core();
        let t = at("10:00:00");
        let with_cum = |cum: &str| {
            let MarketEvent::Tick(mut tk) = tick("71500", "1") else { unreachable!() };
            tk.trade_id = None;
            tk.cum_volume = Some(cum.parse().unwrap());
            MarketEvent::Tick(tk)
        };
        let refused = |c: &mut ObserverCore, et: UtcTime, rt: UtcTime, e: MarketEvent| {
            let r = c.observe(et, rt, e, None).unwrap_err();
            assert_eq!(r.stage, "validate", "{r:?}");
            r.reason
        };
        assert!(refused(&mut c, t, t, with_cum("-5")).contains("negative cum_volume"));
        // ±7.9e28 parses as a Decimal; it is still no volume.
        let huge = "79228162514264337593543950335";
        assert!(refused(&mut c, t, t, with_cum(huge)).contains("implausible cum_volume"));
        assert!(refused(&mut c, t, t, with_cum("1000000000000000001")).contains("implausible"));
        assert!(c.observe(t, t, with_cum("1000000000000000000"), None).is_ok());
        assert!(refused(&mut c, t, t, tick("1e19", "2")).contains("implausible price"));
        // Upbit's timestamp of i64::MIN (wrapped past the skew check in release builds).
        let r = refused(&mut c, UtcTime::from_millis(i64::MIN), t, tick("71500", "3"));
        assert!(r.contains("implausible event_time"), "{r}");
        let r = refused(&mut c, UtcTime::from_millis(i64::MAX), t, tick("71500", "3"));
        assert!(r.contains("implausible event_time"), "{r}");
        let far = UtcTime::parse("9999-12-31T20:00:00.000Z").unwrap();
        assert!(refused(&mut c, t, far, tick("71500", "3")).contains("implausible receive_time"));
        assert!(refused(&mut c, far, far, tick("71500", "3")).contains("implausible event_time"));
        let r = refused(&mut c, t.plus_millis(-2 * 86_400_000), t, tick("71500", "3"));
        assert!(r.contains("max_receipt_distance"), "{r}");
        let mut q = quote(71400, 71500);
        if let MarketEvent::Quote(q) = &mut q {
            q.asks.push(model::Level { price: Price::from_int(71500), size: Qty::from_int(-1) });
        }
        assert!(refused(&mut c, t, t, q).contains("negative level size"));
        let s = c.stats.snapshot();
        assert_eq!(s.events_passed, 1);
        assert_eq!(s.rejected_validate + s.rejected_guard + s.events_passed, s.events_normalized);
    }

    #[test]
    fn session_bounds_are_inclusive_of_the_close() {
        let mut c = core();
        let close = at("15:30:00");
        assert!(c.observe(close, close, tick("71500", "20"), None).is_ok());
        let early = at("08:59:59.999");
        assert!(
            c.observe(early, early, tick("71500", "21"), None).unwrap_err().reason.contains("outside_market_hours")
        );
        let open = at("09:00:00");
        assert!(c.observe(open, open, tick("71500", "22"), None).is_ok());
    }

    #[test]
    fn holidays_are_outside_market_hours() {
        let mut c = core();
        let t = UtcTime::from_kst("2026-01-01T10:00:00".parse().unwrap());
        assert!(c.observe(t, t, tick("71500", "9"), None).unwrap_err().reason.contains("outside_market_hours"));
    }

    #[test]
    fn enrichment_adds_the_common_meta() {
        let mut c = core();
        let t = at("10:00:00");
        let rec =
            c.observe(t, t.plus_millis(5), tick("71500", "1"), Some("raw/sim/20260114/10.jsonl#7".into())).unwrap();
        assert_eq!(rec.meta.receive_time, t.plus_millis(5));
        assert_eq!(rec.meta.session_id.as_str(), "sess_20260114_100000");
        assert_eq!(rec.meta.mapper_version.as_deref(), Some("test/1"));
        let line = serde_json::to_value(&rec).unwrap();
        for key in model::meta::REQUIRED_META_FIELDS {
            assert!(line.get(key).is_some(), "{key} missing from {line}");
        }
    }

    fn limit_problems(l: &ObserverLimits) -> Vec<String> {
        let mut c = Checker::default();
        c.section("observer", |c| c.section("limits", |c| l.validate(c)));
        c.problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn limits_narrow_the_archive_domain_and_never_widen_it() {
        assert!(limit_problems(&ObserverLimits::default()).is_empty());
        let narrower = ObserverLimits {
            max_abs_number: rust_decimal::Decimal::from(1_000_000_000_000i64),
            earliest_time: UtcTime::parse("2020-01-01T00:00:00Z").unwrap(),
            latest_time: UtcTime::parse("2050-01-01T00:00:00Z").unwrap(),
            max_receipt_distance: "1h".parse().unwrap(),
        };
        assert!(limit_problems(&narrower).is_empty());
        let wider = ObserverLimits {
            max_abs_number: rust_decimal::Decimal::MAX,
            earliest_time: UtcTime::parse("1990-01-01T00:00:00Z").unwrap(),
            latest_time: UtcTime::parse("2200-01-01T00:00:00Z").unwrap(),
            max_receipt_distance: "2d".parse().unwrap(),
        };
        let p = limit_problems(&wider);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("observer.limits.max_abs_number:"), "{p:?}");
        assert!(p[1].starts_with("observer.limits.earliest_time:"), "{p:?}");
        assert!(p[2].starts_with("observer.limits.max_receipt_distance:"), "{p:?}");
        let empty = ObserverLimits { latest_time: ObserverLimits::default().earliest_time, ..Default::default() };
        assert_eq!(limit_problems(&empty).len(), 1);
        let zero = ObserverLimits { max_abs_number: rust_decimal::Decimal::ZERO, ..Default::default() };
        assert_eq!(limit_problems(&zero).len(), 1);
    }
}
