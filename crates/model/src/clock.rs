//! The one source of time. Nothing else in the workspace reads the system clock, so a whole
//! trading day can run in seconds against the simulated clock, and tests can place the
//! market at any instant.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::time::UtcTime;

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The operating system's wall clock.
    Real,
    /// Market time that starts at `origin` when the clock is created and runs `speed` times
    /// faster than the wall clock while the process runs (see [`Stalls`]).
    Sim { origin: UtcTime, speed: f64, stalls: &'static Stalls },
    /// Tests only, never selected by configuration: market time is `origin` plus the time
    /// tokio's clock has moved since `start`, and sleeping is `tokio::time::sleep_until`.
    ///
    /// Under a paused runtime (`#[tokio::test(start_paused = true)]`) tokio's clock moves
    /// only when every task is idle, straight to the next timer (auto-advance), so a whole
    /// engine run takes virtual time and the instants it records are exact: no wall-clock
    /// tolerance, and a minute of market costs no more than the work done in it. A
    /// `spawn_blocking` task holds auto-advance back while it runs (file I/O through it
    /// does not let time jump); a dedicated thread (the archive sink's writer) does not,
    /// so a test must not let a task wait on one: see `so_engine::testing`. On a running
    /// (unpaused) runtime this is simply the wall clock from `origin`.
    Tokio { origin: UtcTime, start: Instant },
}

/// Wall time during which the process was frozen (SIGSTOP, a host pausing the VM, a CPU
/// starved for seconds), which a simulated market does not count. At 60x a one-second host
/// stall would otherwise be a minute of market time in which nothing could be received, and
/// the recorder would rightly report an outage that the simulated market never had: the
/// servers and the recorder share this clock, so the whole market pauses with the process.
///
/// A watcher thread looks at the wall clock every quarter of `grace`; any gap between two
/// looks (by it or by a `now()`) beyond `grace` is counted as frozen. The real clock has no
/// such thing: a real market does not wait.
#[derive(Debug)]
pub struct Stalls(Mutex<StallState>);

#[derive(Debug)]
struct StallState {
    /// `Duration::MAX` when no watcher could be started: then nothing counts as frozen,
    /// since an idle process would look frozen without one.
    grace: Duration,
    started: std::time::Instant,
    last_seen: std::time::Instant,
    frozen: Duration,
}

impl StallState {
    fn new(grace: Duration, now: std::time::Instant) -> StallState {
        StallState { grace, started: now, last_seen: now, frozen: Duration::ZERO }
    }

    /// Wall time from the start to `now`, less the time frozen; a gap since the last look
    /// beyond the grace is frozen time.
    fn observe(&mut self, now: std::time::Instant) -> Duration {
        let gap = now.saturating_duration_since(self.last_seen);
        if gap > self.grace {
            self.frozen += gap - self.grace;
        }
        self.last_seen = self.last_seen.max(now);
        (now - self.started).saturating_sub(self.frozen)
    }
}

impl Stalls {
    /// Starts counting from now; leaked so that `Clock` stays `Copy` (one per simulated clock).
    fn start(grace: Duration) -> &'static Stalls {
        let stalls: &'static Stalls =
            Box::leak(Box::new(Stalls(Mutex::new(StallState::new(grace, std::time::Instant::now())))));
        let look_every = grace / 4;
        let watcher = std::thread::Builder::new().name("sim-clock-stalls".into()).spawn(move || {
            loop {
                std::thread::sleep(look_every);
                stalls.running_time();
            }
        });
        if let Err(e) = watcher {
            tracing::warn!("simulated clock: no stall watcher ({e}); host stalls count as market time");
            stalls.lock().grace = Duration::MAX;
        }
        stalls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StallState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wall time since the start, less the time frozen. Computed under the lock from one
    /// reading of the wall clock, so it never goes backwards between callers.
    fn running_time(&self) -> Duration {
        self.lock().observe(std::time::Instant::now())
    }

    /// The wall-clock instant at which `running` time will have passed, if nothing more
    /// is frozen.
    fn wall_instant(&self, running: Duration) -> Instant {
        let s = self.lock();
        Instant::from_std(s.started + s.frozen + running)
    }
}

impl Clock {
    pub fn real() -> Self {
        Clock::Real
    }

    /// `speed` must be finite and positive (the config and CLI validate it); host stalls
    /// longer than `stall_grace` of wall time do not advance the market (see [`Stalls`]).
    pub fn simulated(origin: UtcTime, speed: f64, stall_grace: Duration) -> Self {
        Clock::Sim { origin, speed, stalls: Stalls::start(stall_grace) }
    }

    /// Market time at `origin` now, moving with tokio's clock (see [`Clock::Tokio`]).
    /// Tests only. Needs a tokio runtime's clock only when tokio's is paused.
    pub fn on_tokio_time(origin: UtcTime) -> Self {
        Clock::Tokio { origin, start: Instant::now() }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self, Clock::Sim { .. })
    }

    pub fn speed(&self) -> f64 {
        match self {
            Clock::Real | Clock::Tokio { .. } => 1.0,
            Clock::Sim { speed, .. } => *speed,
        }
    }

    pub fn now(&self) -> UtcTime {
        match self {
            Clock::Real => {
                let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                UtcTime::from_millis(since.as_millis() as i64)
            }
            Clock::Sim { origin, speed, stalls } => {
                let wall = stalls.running_time().as_secs_f64();
                origin.plus_millis((wall * speed * 1000.0) as i64)
            }
            // Whole milliseconds, rounded down: a timer set for `t` wakes at or after it.
            Clock::Tokio { origin, start } => origin.plus_millis(start.elapsed().as_millis() as i64),
        }
    }

    /// How long the wall clock takes for `market` time to pass.
    pub fn wall_duration(&self, market: Duration) -> Duration {
        market.div_f64(self.speed())
    }

    /// The wall-clock instant at which market time reaches `t`.
    pub fn wall_instant(&self, t: UtcTime) -> Instant {
        let ahead = t.millis_since(self.now()).max(0) as u64;
        Instant::now() + self.wall_duration(Duration::from_millis(ahead))
    }

    /// Returns once `now() >= t`.
    pub async fn sleep_until(&self, t: UtcTime) {
        loop {
            let left = t.millis_since(self.now());
            if left <= 0 {
                return;
            }
            match self {
                Clock::Sim { origin, speed, stalls } => {
                    // Aim at the wall instant without further stalls; a stall meanwhile wakes
                    // us early and the loop sleeps again. The extra millisecond absorbs the
                    // float rounding that would otherwise wake us a hair before `t`.
                    let market_ms = t.millis_since(*origin).max(0) as f64 + 1.0;
                    let running = Duration::from_secs_f64(market_ms / 1000.0 / speed);
                    tokio::time::sleep_until(stalls.wall_instant(running)).await;
                }
                // Re-check after waking: the system clock may have been stepped while we slept.
                Clock::Real => tokio::time::sleep(Duration::from_millis(left as u64)).await,
                Clock::Tokio { origin, start } => {
                    let ms = t.millis_since(*origin).max(0) as u64;
                    tokio::time::sleep_until(*start + Duration::from_millis(ms)).await;
                }
            }
        }
    }

    pub async fn sleep(&self, market: Duration) {
        self.sleep_until(self.now().plus(market)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_clock_runs_fast() {
        let origin = UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap();
        let clock = Clock::simulated(origin, 1000.0, Duration::from_millis(100));
        let target = origin.plus(Duration::from_secs(60));
        let wall = std::time::Instant::now();
        clock.sleep_until(target).await;
        assert!(clock.now() >= target);
        // 60 market seconds at 1000x is 60 ms of wall time; allow generous scheduling slack.
        assert!(wall.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_frozen_process_advances_the_market_by_the_grace_only() {
        let t0 = std::time::Instant::now();
        let mut s = StallState::new(Duration::from_millis(100), t0);
        let mut looks = |at: u64| s.observe(t0 + Duration::from_millis(at)).as_millis();
        // The watcher looks every 25 ms: nothing is frozen.
        assert_eq!([looks(25), looks(50), looks(75)], [25, 50, 75]);
        // Nobody looked for two seconds: the process was frozen; the market moved 100 ms.
        assert_eq!(looks(2_075), 175);
        assert_eq!(looks(2_100), 200);
        // A look just over the grace apart (a starved watcher) costs only the excess.
        assert_eq!(looks(2_210), 300);
    }

    #[tokio::test]
    async fn the_tokio_clock_starts_at_its_origin_and_wakes_at_its_instants() {
        // On a running runtime it is the wall clock from `origin`; under a paused one it is
        // exact (the engine's scripted tests, which have tokio's test-util).
        let origin = UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap();
        let clock = Clock::on_tokio_time(origin);
        assert!(clock.now() >= origin && clock.now().millis_since(origin) < 1_000);
        assert_eq!(clock.speed(), 1.0);
        for ms in [5, 20] {
            let t = origin.plus_millis(ms);
            clock.sleep_until(t).await;
            assert!(clock.now() >= t, "woke at {} before {t}", clock.now());
        }
    }

    #[tokio::test]
    async fn sleep_until_returns_only_when_market_time_has_come() {
        let origin = UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap();
        let clock = Clock::simulated(origin, 60.0, Duration::from_millis(100));
        for secs in [1, 2, 3] {
            let t = origin.plus(Duration::from_secs(secs));
            clock.sleep_until(t).await;
            assert!(clock.now() >= t, "woke at {} before {t}", clock.now());
        }
    }
}
