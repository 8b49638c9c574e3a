//! Alerts in a running `collect`: the event source as an engine tap, the monitor, the task
//! that writes alerts to the outbox, and (with `TELEGRAM_BOT_TOKEN` and chats configured)
//! the Telegram worker. None of it can hold up recording: a database that is down at start
//! or later only makes alerts wait in memory.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use alerts::AlertsConfig;
use alerts::config::TOKEN_ENV;
use alerts::outbox::{self, AlertCounts, AlertStats, AlertTx};
use alerts::sources::{EventAlerts, Monitor, Readings};
use alerts::telegram::api::BotApi;
use alerts::worker::Worker;
use engine::Live;
use lifecycle::package::Packages;
use lifecycle::receipt::Receipts;
use model::Clock;
use store::{Backend, SinkStats, Store, StoreConfig};

/// The bot token, if set: read here and handed to the client, never logged.
fn token() -> Option<String> {
    std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty())
}

pub struct Wiring<'a> {
    pub settings: &'a config::Settings,
    pub data_dir: &'a Path,
    pub clock: Clock,
    pub live: Arc<Live>,
    pub sink: Option<Arc<SinkStats>>,
    pub packages: Packages,
}

/// The outbox task and (with a token and chats) the Telegram worker, over the store
/// `store_cfg` names (or `<dir>/observer.db`): what every long-running command runs.
pub struct Delivery {
    pub tx: AlertTx,
    pub stats: Arc<AlertStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Delivery {
    pub async fn start(
        cfg: &AlertsConfig,
        store_cfg: &StoreConfig,
        dir: &Path,
        clock: Clock,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Delivery> {
        let token = token();
        let chats = cfg.telegram.chats.clone();
        match (&token, chats.is_empty()) {
            (Some(_), true) => eprintln!(
                "{TOKEN_ENV} is set but alerts.telegram.chats lists no chat: nothing will be sent to Telegram (alerts go to the log)"
            ),
            (None, false) => eprintln!(
                "alerts.telegram.chats is configured but {TOKEN_ENV} is not set: alerts are kept in the outbox, not sent"
            ),
            (Some(_), false) => eprintln!("alerts: Telegram to {} chat(s) via {}", chats.len(), cfg.telegram.api_base),
            (None, true) => {}
        }
        let api = match &token {
            Some(t) if !chats.is_empty() => {
                Some(BotApi::new(&cfg.telegram.api_base, t.clone(), cfg.telegram.request_timeout.get())?)
            }
            _ => None,
        };

        let store = Arc::new(Store::open(store_cfg, dir).await?);
        let (tx, rx, stats) = outbox::channel(&cfg.outbox);
        let mut tasks = Vec::new();

        // The outbox opens once the schema is there and the chats are synced; until then (a
        // database down at start) alerts wait in the channel.
        {
            let (store, stats, ocfg, stop) = (store.clone(), stats.clone(), cfg.outbox.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut stop_wait = stop.clone();
                let mut told = false;
                loop {
                    let ready = match store.migrate().await {
                        Ok(_) => store.sync_chats(&chats).await,
                        Err(e) => Err(e),
                    };
                    match ready {
                        Ok(()) => break,
                        Err(e) => {
                            stats.db_errors.fetch_add(1, Relaxed);
                            if !told {
                                told = true;
                                tracing::warn!("alerts wait in memory: the outbox database is not ready: {e}");
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(clock.wall_duration(ocfg.db_retry.get())) => {}
                        _ = model::stopped(&mut stop_wait) => return,
                    }
                }
                outbox::deliver(store, rx, stats, ocfg, clock, stop).await;
            }));
        }
        if let Some(api) = api {
            let worker = Worker::new(store, api, cfg.outbox.clone(), tx.clone(), stats.clone());
            tasks.push(tokio::spawn(worker.run(clock, stop)));
        }
        Ok(Delivery { tx, stats, tasks })
    }

    /// Waits for the tasks after `stop` (the outbox task makes one last write).
    pub async fn finish(self) -> AlertCounts {
        for t in self.tasks {
            let _ = t.await;
        }
        self.stats.snapshot()
    }
}

pub struct Alerting {
    pub tap: Arc<EventAlerts>,
    pub delivery: Delivery,
    monitor: JoinHandle<()>,
}

/// Starts alerting in `collect` as configured; `None` when `alerts.enabled` is false.
pub async fn start(w: Wiring<'_>, stop: watch::Receiver<bool>) -> anyhow::Result<Option<Alerting>> {
    let cfg = &w.settings.alerts;
    if !cfg.enabled {
        return Ok(None);
    }
    let delivery = Delivery::start(cfg, &w.settings.store, w.data_dir, w.clock, stop.clone()).await?;
    let dir = w.data_dir.to_path_buf();
    let packages = w.packages;
    let readings = Readings {
        disk: Arc::new(move || archive::disk_usage(&dir)),
        sink_lost: w.sink.map(|s| -> Arc<dyn Fn() -> u64 + Send + Sync> {
            Arc::new(move || s.dropped_queue_full.load(Relaxed) + s.rows_failed.load(Relaxed))
        }),
        backup_state: Arc::new(move || backup_state(&packages)),
    };
    let monitor = Monitor::new(w.live, delivery.tx.clone(), cfg.rules.clone(), readings);
    let monitor = tokio::spawn(monitor.run(w.clock, stop));
    Ok(Some(Alerting { tap: Arc::new(EventAlerts::new(delivery.tx.clone())), delivery, monitor }))
}

/// The newest package and whether a coordinator holds it, for the daily summary.
fn backup_state(packages: &Packages) -> String {
    match packages.complete() {
        Ok(days) => match days.last() {
            Some(day) => {
                let held = Receipts::of(packages)
                    .load(*day)
                    .ok()
                    .flatten()
                    .map_or("no receipt yet".to_string(), |r| format!("held by {}", r.held_by));
                format!("newest package {day} ({held}), {} package(s) on disk", days.len())
            }
            None => "no package yet".to_string(),
        },
        Err(e) => format!("packages unreadable: {e}"),
    }
}

impl Alerting {
    pub fn stats(&self) -> Arc<AlertStats> {
        self.delivery.stats.clone()
    }

    /// Waits for the monitor and the delivery tasks after `stop`.
    pub async fn finish(self) -> AlertCounts {
        let _ = self.monitor.await;
        self.delivery.finish().await
    }
}
