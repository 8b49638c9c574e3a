//! The day's universe (seed 001 §2.2), fixed for the day: built at start-up and again before
//! each trading day's open (`universe.build_at`), or reloaded from its file after a restart.
//! At the day roll per-symbol state shrinks to the new universe and the slots held.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::watch;

use model::{Clock, Market, Price, Symbol};
use providers::{MarketProvider, ProviderError};

use crate::book::LatestBook;
use crate::config::UniverseConfig;
use crate::live::Live;
use crate::schedule::Schedule;
use crate::watchdog::Activity;
use archive::universe::{self, Filter, UniverseError, UniverseFile};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Universe(#[from] UniverseError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("a universe task failed: {0}")]
    Task(String),
}

/// The universe rule for `market` from the config (seed 001 §2.2).
pub fn filter_for(market: Market, cfg: &UniverseConfig) -> Filter {
    match market {
        Market::Crypto => Filter {
            min_prev_close: Price::ZERO,
            quote: Some(cfg.crypto.quote.clone()),
            min_traded_value_24h: Some(cfg.crypto.min_traded_value_24h),
        },
        _ => Filter { min_prev_close: cfg.min_prev_close, quote: None, min_traded_value_24h: None },
    }
}

/// Loads the day's universe file, or builds it from the provider's listings.
pub async fn fetch_universe<P: MarketProvider>(
    provider: &P,
    root: &Path,
    cfg: &UniverseConfig,
    day: jiff::civil::Date,
) -> Result<UniverseFile, FetchError> {
    let (market, pid) = (provider.market(), provider.id());
    let date = day.strftime("%Y%m%d").to_string();
    let (r, d) = (root.to_path_buf(), date.clone());
    let existing = tokio::task::spawn_blocking(move || universe::load(&r, &d, market))
        .await
        .map_err(|e| FetchError::Task(e.to_string()))??;
    if let Some(u) = existing {
        return Ok(u);
    }
    let listings = provider.universe(day).await?;
    let filter = filter_for(market, cfg);
    let root = root.to_path_buf();
    let (u, _) =
        tokio::task::spawn_blocking(move || universe::load_or_build(&root, &date, market, pid, filter, || listings))
            .await
            .map_err(|e| FetchError::Task(e.to_string()))??;
    Ok(u)
}

/// Rebuilds the universe before each trading day; Track A and the slot manager pick it up
/// at their next cycle.
pub struct DayRoll<P> {
    pub provider: Arc<P>,
    pub data_dir: PathBuf,
    pub config: UniverseConfig,
    pub clock: Clock,
    /// Fires at `universe.build_at` on each trading day.
    pub schedule: Schedule,
    pub live: Arc<Live>,
    pub book: Arc<LatestBook>,
    pub activity: Arc<Activity>,
    pub slots: watch::Receiver<Vec<Symbol>>,
    pub universe: watch::Sender<Arc<Vec<Symbol>>>,
}

impl<P: MarketProvider> DayRoll<P> {
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), FetchError> {
        let pid = self.provider.id();
        let mut from = self.clock.now().plus_millis(1);
        while let Some(at) = self.schedule.next_at_or_after(from) {
            tokio::select! {
                _ = self.clock.sleep_until(at) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            from = at.plus_millis(1);
            let old = self.universe.borrow().len() as u64;
            let uni = match fetch_universe(self.provider.as_ref(), &self.data_dir, &self.config, at.kst().date()).await
            {
                Ok(u) => u,
                Err(e) => {
                    // Yesterday's universe keeps the tracks running; the failure is loud.
                    tracing::error!(provider = %pid, error = %e, "building the day's universe failed");
                    continue;
                }
            };
            let symbols = Arc::new(uni.symbols());
            let keep: HashSet<Symbol> = symbols.iter().chain(self.slots.borrow().iter()).cloned().collect();
            self.book.retain(|s| keep.contains(s));
            self.activity.retain(|s| keep.contains(s));
            self.live.universe_size.fetch_sub(old, Relaxed);
            self.live.universe_size.fetch_add(symbols.len() as u64, Relaxed);
            if let Some(feed) = self.live.feed(pid) {
                feed.universe.store(symbols.len() as u64, Relaxed);
            }
            tracing::info!(provider = %pid, date = %uni.date, count = uni.count, "universe for the day");
            let _ = self.universe.send(symbols);
        }
        Ok(())
    }
}
