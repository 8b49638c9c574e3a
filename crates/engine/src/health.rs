//! The run's health task: every mitigation sample interval (market clock) it reads the
//! machine and the engine's gauges, moves the mitigation level, evaluates the anomaly-day
//! conditions, and publishes the day's figures for the status line and `/health`. One per
//! run: resources belong to the machine, not to a provider, so its events go to every
//! provider's event log.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use model::{Clock, SystemEvent};

use crate::anomaly::{AnomalyMonitor, Interim, disk_percent};
use crate::config::EngineConfig;
use crate::live::Live;
use crate::mitigation::{Controller, MitigationTask, Probe};
use crate::pipeline::Events;
use crate::sink::SinkError;

pub struct HealthTask {
    pub config: EngineConfig,
    pub live: Arc<Live>,
    pub data_dir: PathBuf,
    pub events: Vec<Events>,
}

impl HealthTask {
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let clock: Clock = self.live.clock;
        let stats = self.live.stats.clone();
        let mut mitigation = MitigationTask {
            controller: Controller::new(self.config.mitigation.clone()),
            probe: Probe::new(&self.config.mitigation),
            pressure: self.live.pressure.clone(),
            stats: stats.clone(),
            level: self.live.mitigation.clone(),
            clock,
        };
        let mut anomaly = AnomalyMonitor::new(self.config.anomaly.clone());
        let long_gap = self.config.anomaly.long_gap.get().as_secs() as i64;
        let mut prev = stats.snapshot();
        loop {
            tokio::select! {
                _ = clock.sleep(self.config.mitigation.sample_interval.get()) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            let scalp = &self.config.tracks.scalp;
            let (readings, change) = mitigation.tick(|level| scalp.interval_ms(level));
            let now = clock.now();
            if let Some(ev) = change {
                for e in &self.events {
                    e.system(now, ev.clone()).await?;
                }
            }
            let s = stats.snapshot();
            let disconnected = self.live.outages().iter().any(|o| o.is_open());
            let gaps = stats.gauges.take_gaps();
            let interim = Interim {
                reconnect_attempts: s.reconnect_attempts.saturating_sub(prev.reconnect_attempts),
                disconnected,
                gaps: gaps.len() as u64,
                long_gaps: gaps.iter().filter(|g| **g >= long_gap).count() as u64,
                scalp_written: s.scalp_written.saturating_sub(prev.scalp_written),
                scalp_no_data: s.scalp_no_data.saturating_sub(prev.scalp_no_data),
                scalp_stale: s.scalp_stale.saturating_sub(prev.scalp_stale),
                scalp_expected: s.scalp_expected.saturating_sub(prev.scalp_expected),
                cpu_percent: readings.cpu_percent,
                disk_percent: disk_percent(&self.data_dir),
            };
            prev = s;
            for trip in anomaly.observe(now, interim) {
                tracing::warn!(condition = trip.condition, value = trip.value, "anomaly-day condition tripped");
                let ev = SystemEvent::AnomalyDay {
                    condition: trip.condition.into(),
                    value: trip.value,
                    threshold: trip.threshold,
                    date: trip.date,
                };
                for e in &self.events {
                    e.system(now, ev.clone()).await?;
                }
            }
            *self.live.day.lock().unwrap_or_else(|p| p.into_inner()) = anomaly.day().clone();
        }
    }
}
