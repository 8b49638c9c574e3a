//! The one source of time. Nothing else in the workspace reads the system clock, so a whole
//! trading day can run in seconds against the simulated clock, and tests can place the
//! market at any instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::time::UtcTime;

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The operating system's wall clock.
    Real,
    /// Market time that starts at `origin` when the clock is created and runs `speed` times
    /// faster than the wall clock.
    Sim { origin: UtcTime, started: Instant, speed: f64 },
}

impl Clock {
    pub fn real() -> Self {
        Clock::Real
    }

    /// `speed` must be finite and positive (the config and CLI validate it).
    pub fn simulated(origin: UtcTime, speed: f64) -> Self {
        Clock::Sim { origin, started: Instant::now(), speed }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self, Clock::Sim { .. })
    }

    pub fn speed(&self) -> f64 {
        match self {
            Clock::Real => 1.0,
            Clock::Sim { speed, .. } => *speed,
        }
    }

    pub fn now(&self) -> UtcTime {
        match self {
            Clock::Real => {
                let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                UtcTime::from_millis(since.as_millis() as i64)
            }
            Clock::Sim { origin, started, speed } => {
                let wall = started.elapsed().as_secs_f64();
                origin.plus_millis((wall * speed * 1000.0) as i64)
            }
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

    pub async fn sleep_until(&self, t: UtcTime) {
        match self {
            Clock::Sim { origin, started, speed } => {
                let market_ms = t.millis_since(*origin).max(0) as f64;
                let wall = Duration::from_secs_f64(market_ms / 1000.0 / speed);
                tokio::time::sleep_until(*started + wall).await;
            }
            Clock::Real => {
                // Re-check after waking: the system clock may have been stepped while we slept.
                loop {
                    let left = t.millis_since(self.now());
                    if left <= 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
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
        let clock = Clock::simulated(origin, 1000.0);
        let target = origin.plus(Duration::from_secs(60));
        let wall = std::time::Instant::now();
        clock.sleep_until(target).await;
        assert!(clock.now() >= target);
        // 60 market seconds at 1000x is 60 ms of wall time; allow generous scheduling slack.
        assert!(wall.elapsed() < Duration::from_secs(5));
    }
}
