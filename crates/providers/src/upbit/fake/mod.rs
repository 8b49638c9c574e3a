//! A protocol-faithful Upbit quotation server on loopback, driven by the crypto sim
//! ([`crate::sim::crypto`]) on a `model::Clock`.
//!
//! REST (axum) answers the real paths under `/v1` with `Remaining-Req` headers, enforces the
//! 10/s per-group window and answers 429, then 418 for repeated abuse. The WebSocket
//! (`/websocket/v1`, tokio-tungstenite) validates subscribe messages like the real server
//! (error frame, then close 1000), replaces the subscription on every request, sends a
//! SNAPSHOT then REALTIME messages as binary JSON in DEFAULT or SIMPLE keys (and the
//! `*_LIST` array forms), answers `PING` with `{"status":"UP"}`, and drops idle connections.
//! [`Faults`] switches change its behaviour at runtime; [`Counters`] let tests see what it
//! saw. All windows and timeouts run on the clock, so an accelerated clock scales them.

mod encode;
mod faults;
mod rest;
mod ws;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use model::settings::Interval;
use model::{Clock, UtcTime};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::sim::crypto::{CryptoEvent, CryptoMarket, CryptoSimConfig};

pub use faults::{Counters, Faults};

/// The fake server's own limits and timings (the real server's, by default).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeConfig {
    pub market: CryptoSimConfig,
    /// Per REST group (`market`, `candle`, `trade`, `ticker`, `orderbook`), sliding 1 s window.
    pub rest_per_second: u32,
    /// 429s within a minute after which the IP is blocked with 418.
    pub ban_after_violations: u32,
    /// First block length; each further block doubles it.
    pub ban: Interval,
    pub ws_connect_per_second: u32,
    pub ws_messages_per_second: u32,
    pub ws_messages_per_minute: u32,
    /// A connection with no traffic either way for this long is dropped without a close
    /// frame (docs: 120 s; a 2026 probe saw about 60 s).
    pub idle_timeout: Interval,
    /// With no subscription the server sends `{"status":"UP"}` this often.
    pub status_interval: Interval,
    /// Delay between an error frame and the close (about 150–180 ms observed).
    pub error_close_delay: Interval,
    /// Where REST and WebSocket listen; port 0 picks a free one.
    pub rest_bind: std::net::SocketAddr,
    pub ws_bind: std::net::SocketAddr,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            market: CryptoSimConfig::upbit_default(),
            rest_per_second: 10,
            ban_after_violations: 20,
            ban: Interval::from_millis(30_000),
            ws_connect_per_second: 5,
            ws_messages_per_second: 5,
            ws_messages_per_minute: 100,
            idle_timeout: Interval::from_millis(120_000),
            status_interval: Interval::from_millis(10_000),
            error_close_delay: Interval::from_millis(150),
            rest_bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ws_bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

#[derive(Default)]
struct Abuse {
    violations: VecDeque<i64>,
    banned_until: i64,
    bans: u32,
}

struct Shared {
    cfg: FakeConfig,
    clock: Clock,
    market: Mutex<CryptoMarket>,
    /// Pair index → number of connections that subscribed it.
    watchers: Mutex<HashMap<usize, u32>>,
    faults: Arc<Faults>,
    counters: Arc<Counters>,
    windows: Mutex<HashMap<&'static str, VecDeque<i64>>>,
    abuse: Mutex<Abuse>,
    connects: Mutex<VecDeque<i64>>,
    feed: broadcast::Sender<Arc<CryptoEvent>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The market of `now`'s UTC day: a run across 00:00 UTC rolls over like Upbit's day.
    fn market(&self, now: UtcTime) -> MutexGuard<'_, CryptoMarket> {
        let mut m = lock(&self.market);
        let day = CryptoMarket::day_of(now);
        if m.day() != day
            && let Ok(next) = CryptoMarket::try_new(&self.cfg.market, day)
        {
            *m = next;
            for (&idx, &n) in lock(&self.watchers).iter() {
                m.watch(idx, n > 0, now);
            }
        }
        m
    }

    fn watch(&self, idx: usize, on: bool) {
        let mut w = lock(&self.watchers);
        let n = w.entry(idx).or_insert(0);
        *n = if on { *n + 1 } else { n.saturating_sub(1) };
        let active = *n > 0;
        drop(w);
        let now = self.clock.now();
        self.market(now).watch(idx, active, now);
    }
}

/// A running fake. Dropping it stops the servers.
pub struct FakeUpbit {
    pub rest_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub faults: Arc<Faults>,
    pub counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeUpbit {
    /// `UpbitConfig::rest_base` for this fake.
    pub fn rest_base(&self) -> String {
        format!("http://{}/v1", self.rest_addr)
    }
    /// `UpbitConfig::ws_base` for this fake.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket/v1", self.ws_addr)
    }
}

impl Drop for FakeUpbit {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds REST and WebSocket listeners on loopback (ephemeral ports) and serves until the
/// returned `FakeUpbit` is dropped.
pub async fn serve(cfg: FakeConfig, clock: Clock) -> std::io::Result<FakeUpbit> {
    let (rest_bind, ws_bind) = (cfg.rest_bind, cfg.ws_bind);
    let now = clock.now();
    let market = CryptoMarket::try_new(&cfg.market, CryptoMarket::day_of(now)).map_err(|p| {
        let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        std::io::Error::new(std::io::ErrorKind::InvalidInput, text.join("; "))
    })?;
    let mut market = market;
    // Run every pair to now up front: a first request that had to compute hours of steps
    // would hold the market lock and make queued requests arrive at the gate in a bunch.
    for idx in 0..market.listings().len() {
        market.advance(idx, now);
    }
    let (feed, _) = broadcast::channel(1 << 16);
    let faults = Arc::new(Faults::default());
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        cfg,
        clock,
        market: Mutex::new(market),
        watchers: Mutex::new(HashMap::new()),
        faults: faults.clone(),
        counters: counters.clone(),
        windows: Mutex::new(HashMap::new()),
        abuse: Mutex::new(Abuse::default()),
        connects: Mutex::new(VecDeque::new()),
        feed,
    });
    let rest = TcpListener::bind(rest_bind).await?;
    let ws = TcpListener::bind(ws_bind).await?;
    let (rest_addr, ws_addr) = (rest.local_addr()?, ws.local_addr()?);
    let app = rest::router(shared.clone());
    let tasks = vec![
        tokio::spawn(async move {
            let _ = axum::serve(rest, app).await;
        }),
        tokio::spawn(ws::accept_loop(ws, shared.clone())),
        tokio::spawn(pump(shared)),
    ];
    Ok(FakeUpbit { rest_addr, ws_addr, faults, counters, tasks })
}

/// Advances the watched pairs one sim step at a time and fans their events out.
async fn pump(shared: Arc<Shared>) {
    let step = shared.cfg.market.step.as_millis() as i64;
    let mut events = Vec::new();
    loop {
        let now = shared.clock.now();
        let next = UtcTime::from_millis((now.as_millis().div_euclid(step) + 1) * step);
        shared.clock.sleep_until(next).await;
        let now = shared.clock.now();
        events.clear();
        {
            let idxs: Vec<usize> = lock(&shared.watchers).iter().filter(|e| *e.1 > 0).map(|e| *e.0).collect();
            let mut m = shared.market(now);
            for idx in idxs {
                m.drain(idx, now, &mut events);
            }
        }
        events.sort_by_key(|e| e.time());
        for e in events.drain(..) {
            let _ = shared.feed.send(Arc::new(e));
        }
    }
}
