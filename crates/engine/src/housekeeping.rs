//! Archive housekeeping on the wall clock: fsync for durability (`archive.fsync_interval`)
//! and closing files whose window ended (`pipeline.housekeeping_interval`). Wall clock, not
//! market clock: durability is about this machine's time, whatever the simulation speed.

use std::time::Duration;

use tokio::sync::watch;

use model::Clock;

use crate::sink::SinkHandle;

pub struct Housekeeping {
    pub sink: SinkHandle,
    pub clock: Clock,
    pub fsync_every: Duration,
    pub housekeep_every: Duration,
}

impl Housekeeping {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut sync_tick = tokio::time::interval(self.fsync_every);
        let mut house_tick = tokio::time::interval(self.housekeep_every);
        loop {
            tokio::select! {
                _ = sync_tick.tick() => self.sink.sync().await,
                _ = house_tick.tick() => self.sink.housekeep(self.clock.now()).await,
                _ = model::stopped(&mut stop) => return,
            }
        }
    }
}
