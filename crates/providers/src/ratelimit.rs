//! A request-rate limiter on our `Clock` (GCRA, as governor and nautilus use): requests are
//! handed start times spaced `1/rate` apart with a configured burst, so a fast simulated
//! clock and the real one obey the same limit. `penalize` holds every request back after
//! the server says we went too fast (KIS `EGW00201`, Upbit 429), whatever our own count says.
//!
//! Callers of `acquire` take turns, and each start is decided when its turn comes, from the
//! clock at that moment. Start times handed out in advance would all fall due together after
//! a stall (a busy core; at a fast simulated clock a few wall-clock milliseconds are seconds)
//! and go out as one burst the server refuses; decided late, a stall releases at most one
//! start more than `burst` (see `try_start`).

use std::sync::Mutex;
use std::time::Duration;

use model::{Clock, UtcTime};

#[derive(Debug)]
struct State {
    /// Theoretical arrival time of the next request, in market milliseconds.
    tat: f64,
    /// No request starts before this (set by `penalize`).
    hold_until: UtcTime,
}

#[derive(Debug)]
pub struct RateLimiter {
    clock: Clock,
    interval_ms: f64,
    tolerance_ms: f64,
    state: Mutex<State>,
    /// Held by the `acquire` caller whose start is being decided (tokio's lock is FIFO).
    turn: tokio::sync::Mutex<()>,
}

impl RateLimiter {
    /// `per_second` > 0 and `burst` ≥ 1 (validated by the provider's config).
    pub fn new(clock: Clock, per_second: f64, burst: u32) -> Self {
        let interval_ms = 1000.0 / per_second;
        RateLimiter {
            clock,
            interval_ms,
            tolerance_ms: interval_ms * (burst.max(1) - 1) as f64,
            state: Mutex::new(State { tat: 0.0, hold_until: UtcTime::from_millis(0) }),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Reserves the next start time and returns it (market time) without waiting, for a
    /// single caller that schedules its own sends (Upbit's subscribe messages).
    pub fn reserve(&self) -> UtcTime {
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now_ms = now.max(s.hold_until).as_millis() as f64;
        let tat = s.tat.max(now_ms);
        let start = (tat - self.tolerance_ms).max(now_ms);
        s.tat = tat + self.interval_ms;
        UtcTime::from_millis(start.ceil() as i64)
    }

    /// Waits (on the clock) until a request may start. A `penalize` that arrives while we
    /// wait still holds us back.
    pub async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        let mut due = self.clock.now();
        while let Err(at) = self.try_start(self.clock.now(), due) {
            self.clock.sleep_until(at).await;
            due = at;
        }
    }

    /// Starts a request at `now` if the rate, burst and any penalty allow it; otherwise
    /// the earliest time it may start. `due` is when the caller's turn was due (the time it
    /// slept until): the next start counts from it, not from a late wake-up, so timer
    /// resolution (1 ms of wall time is 120 ms of market time at the fastest simulated
    /// clock) does not push every later start back. A stall while sleeping thus lets one
    /// start more than the burst go at once, no more.
    fn try_start(&self, now: UtcTime, due: UtcTime) -> Result<(), UtcTime> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now_ms = now.as_millis() as f64;
        let earliest = (s.tat - self.tolerance_ms).max(s.hold_until.as_millis() as f64);
        if earliest > now_ms {
            return Err(UtcTime::from_millis(earliest.ceil() as i64));
        }
        s.tat = s.tat.max(due.min(now).as_millis() as f64) + self.interval_ms;
        Ok(())
    }

    /// Holds every request back for `d` of market time from now.
    pub fn penalize(&self, d: Duration) {
        let until = self.clock.now().plus(d);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.hold_until = s.hold_until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;

    /// A limiter on a clock so slow that no time passes during the test, and its origin.
    fn on_a_still_clock(rate: f64, burst: u32) -> (RateLimiter, UtcTime) {
        let origin = UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap();
        let clock = Clock::simulated(origin, 1e-9, SimConfig::krx_default().clock_stall_grace.get());
        (RateLimiter::new(clock, rate, burst), origin)
    }

    #[test]
    fn reservations_are_spaced_by_the_rate_after_the_burst() {
        let (rl, origin) = on_a_still_clock(20.0, 3);
        let starts: Vec<i64> = (0..6).map(|_| rl.reserve().millis_since(origin)).collect();
        assert_eq!(starts, vec![0, 0, 0, 50, 100, 150]);
        rl.penalize(Duration::from_secs(1));
        assert!(rl.reserve().millis_since(origin) >= 1000);
    }

    #[test]
    fn after_a_stall_no_more_than_the_burst_starts_at_once() {
        let (rl, origin) = on_a_still_clock(20.0, 3);
        let at = |ms: i64| origin.plus_millis(ms);
        let start = |ms: i64| rl.try_start(at(ms), at(ms));
        // The burst, then one start per 50 ms.
        let starts: Vec<_> = (0..5).map(|_| start(0)).collect();
        assert_eq!(starts, vec![Ok(()), Ok(()), Ok(()), Err(at(50)), Err(at(50))]);
        assert_eq!(start(50), Ok(()));
        // Ten seconds go by without a start (200 at the rate): the next turns get the burst
        // and are then paced again, not 200 at once.
        let after: Vec<_> = (0..4).map(|_| start(10_000)).collect();
        assert_eq!(after, vec![Ok(()), Ok(()), Ok(()), Err(at(10_050))]);
        // A penalty (counted from the clock, which stands at the origin) holds every start back.
        rl.penalize(Duration::from_secs(20));
        assert_eq!(start(10_050), Err(at(20_000)));
    }

    #[test]
    fn a_late_wake_up_keeps_the_pace_and_a_stall_releases_one_extra_start() {
        let (rl, origin) = on_a_still_clock(20.0, 1);
        let at = |ms: i64| origin.plus_millis(ms);
        assert_eq!(rl.try_start(at(0), at(0)), Ok(()));
        assert_eq!(rl.try_start(at(0), at(0)), Err(at(50)));
        // Due at 50, woken at 90: the next start is due at 100, not at 140.
        assert_eq!(rl.try_start(at(90), at(50)), Ok(()));
        assert_eq!(rl.try_start(at(90), at(90)), Err(at(100)));
        // Due at 100, woken ten seconds late: that start and one more, then the pace.
        assert_eq!(rl.try_start(at(10_000), at(100)), Ok(()));
        assert_eq!(rl.try_start(at(10_000), at(10_000)), Ok(()));
        assert_eq!(rl.try_start(at(10_000), at(10_000)), Err(at(10_050)));
    }
}
