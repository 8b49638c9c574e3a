//! The live database sink as an engine tap: accepted records and samples are offered to the
//! store's bounded queue, which never makes the archive wait.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use engine::tap::Tap;
use model::{MarketEvent, Record, ScalpSample};
use store::{LiveSink, SinkSnapshot, Store, StoreConfig};

pub struct LiveTap(pub Arc<LiveSink>);

impl Tap for LiveTap {
    fn market_event(&self, rec: &Record<MarketEvent>) {
        self.0.offer_event(rec);
    }
    fn sample(&self, rec: &Record<ScalpSample>) {
        self.0.offer_sample(rec);
    }
}

/// Starts the live sink if the configuration asks for it.
pub async fn start(cfg: &StoreConfig, data_dir: &Path) -> anyhow::Result<Option<Arc<LiveSink>>> {
    if !cfg.live_sink.enabled {
        return Ok(None);
    }
    // The data dir's mode, as the archive would create it (the database may come first).
    let mut mkdir = std::fs::DirBuilder::new();
    mkdir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut mkdir, archive::DIR_MODE);
    mkdir.create(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let store = Store::open(cfg, data_dir).await.context("opening the database for the live sink")?;
    Ok(Some(Arc::new(LiveSink::spawn(Arc::new(store), &cfg.live_sink, cfg.batch_rows))))
}

/// Drains and stops the sink; reports what reached the database.
pub async fn finish(sink: Arc<LiveSink>) -> Option<SinkSnapshot> {
    match Arc::try_unwrap(sink) {
        Ok(s) => Some(s.close().await),
        Err(shared) => Some(shared.stats().snapshot()),
    }
}
