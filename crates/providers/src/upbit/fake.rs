//! A protocol-faithful Upbit quotation server on loopback, driven by the crypto sim
//! ([`super::sim_market`]) on a `model::Clock`.
//!
//! REST (axum) answers the real paths under `/v1` with `Remaining-Req` headers, enforces the
//! 10/s per-group window and answers 429, then 418 for repeated abuse. The WebSocket
//! (`/websocket/v1`, tokio-tungstenite) validates subscribe messages like the real server
//! (error frame, then close 1000), replaces the subscription on every request, sends a
//! SNAPSHOT then REALTIME messages as binary JSON in DEFAULT or SIMPLE keys (and the
//! `*_LIST` array forms), answers `PING` with `{"status":"UP"}`, and drops idle connections.
//! [`Faults`] switches change its behaviour at runtime; [`Counters`] let tests see what it
//! saw. All windows and timeouts run on the clock, so an accelerated clock scales them.

use std::collections::{HashMap, VecDeque};
use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use model::settings::Interval;
use model::{Clock, Price, Qty, Side, UtcTime};
use rust_decimal::Decimal;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as WsRequest, Response as WsResponse};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::sim_market::{CryptoBook, CryptoEvent, CryptoMarket, CryptoSimConfig, CryptoTrade, PairStats};
use super::wire::{eight_decimals, exponent_form};

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

/// Runtime fault switches. Counts are "the next N" and run down as they fire.
#[derive(Debug)]
pub struct Faults {
    /// WebSocket connections stay open but send nothing and answer no `PING`.
    pub stall: AtomicBool,
    /// The next N data frames are cut in half (the JSON is torn).
    pub torn_frames: AtomicU32,
    /// The next N data frames are replaced by bytes that are not JSON (nor UTF-8).
    pub malformed_frames: AtomicU32,
    rest_status: AtomicU32,
    rest_status_count: AtomicU32,
    refuse_until_ms: AtomicI64,
    drop_gen: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            stall: AtomicBool::new(false),
            torn_frames: AtomicU32::new(0),
            malformed_frames: AtomicU32::new(0),
            rest_status: AtomicU32::new(0),
            rest_status_count: AtomicU32::new(0),
            refuse_until_ms: AtomicI64::new(i64::MIN),
            drop_gen: watch::Sender::new(0),
        }
    }
}

impl Faults {
    /// Drops every open WebSocket connection abruptly (no close frame, like a 1006).
    pub fn drop_connections(&self) {
        self.drop_gen.send_modify(|g| *g += 1);
    }
    /// Answers the next `n` REST requests with `status` (429, 500, 503, …) instead.
    pub fn fail_rest(&self, status: u16, n: u32) {
        self.rest_status.store(status as u32, Ordering::SeqCst);
        self.rest_status_count.store(n, Ordering::SeqCst);
    }
    /// Refuses new WebSocket connections (closes the TCP socket at once) until `until`.
    pub fn refuse_connections_until(&self, until: UtcTime) {
        self.refuse_until_ms.store(until.as_millis(), Ordering::SeqCst);
    }
    pub fn set_stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }
    pub fn tear_next(&self, n: u32) {
        self.torn_frames.store(n, Ordering::SeqCst);
    }
    pub fn garble_next(&self, n: u32) {
        self.malformed_frames.store(n, Ordering::SeqCst);
    }
}

fn take(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

/// What the server saw, for tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub rest_requests: AtomicU64,
    pub rest_ok: AtomicU64,
    pub rest_429: AtomicU64,
    pub rest_418: AtomicU64,
    pub rest_injected: AtomicU64,
    /// Most requests accepted in one group within any 1 s window.
    pub rest_max_per_second: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_refused: AtomicU64,
    pub ws_connect_rejected: AtomicU64,
    pub ws_client_messages: AtomicU64,
    pub ws_message_violations: AtomicU64,
    pub ws_subscribes: AtomicU64,
    pub ws_subscribe_errors: AtomicU64,
    pub ws_pings: AtomicU64,
    pub ws_data_frames: AtomicU64,
    pub ws_idle_drops: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
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
    let app = Router::new()
        .route("/v1/market/all", get(market_all))
        .route("/v1/ticker", get(ticker))
        .route("/v1/ticker/all", get(ticker_all))
        .route("/v1/candles/minutes/{unit}", get(candles_minutes))
        .route("/v1/candles/days", get(candles_days))
        .route("/v1/trades/ticks", get(trades_ticks))
        .route("/v1/orderbook", get(orderbook))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                None,
                r#"{"error":{"name":"not_found","message":"no Route matched with those values"}}"#.into(),
            )
        })
        .with_state(shared.clone());
    let tasks = vec![
        tokio::spawn(async move {
            let _ = axum::serve(rest, app).await;
        }),
        tokio::spawn(accept_loop(ws, shared.clone())),
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

// ---------------------------------------------------------------------------------------
// REST.

fn json_response(status: StatusCode, remaining: Option<String>, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json;charset=UTF-8"));
    if let Some(rem) = remaining
        && let Ok(v) = HeaderValue::from_str(&rem)
    {
        r.headers_mut().insert("remaining-req", v);
        r.headers_mut().insert("limit-by-ip", HeaderValue::from_static("Yes"));
    }
    r
}

fn error_body(name: impl Display, quoted: bool, message: &str) -> String {
    if quoted {
        format!(r#"{{"error":{{"name":"{name}","message":"{message}"}}}}"#)
    } else {
        format!(r#"{{"error":{{"name":{name},"message":"{message}"}}}}"#)
    }
}

/// Counts the request against `group`; `Err` is the refusal to send instead.
#[allow(clippy::result_large_err)] // axum's own response type; boxing it buys nothing here
fn gate(s: &Shared, group: &'static str) -> Result<String, Response> {
    let c = &s.counters;
    bump(&c.rest_requests);
    let now = s.clock.now().as_millis();
    if take(&s.faults.rest_status_count) {
        bump(&c.rest_injected);
        let status = s.faults.rest_status.load(Ordering::SeqCst) as u16;
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code == StatusCode::TOO_MANY_REQUESTS {
            bump(&c.rest_429);
        }
        return Err(json_response(code, None, error_body("injected", true, "injected fault")));
    }
    let mut abuse = lock(&s.abuse);
    if now < abuse.banned_until {
        bump(&c.rest_418);
        let secs = (abuse.banned_until - now + 999) / 1000;
        let msg = format!("Too many API requests. IP blocked for {secs} seconds.");
        return Err(json_response(StatusCode::IM_A_TEAPOT, None, error_body(418, false, &msg)));
    }
    let limit = s.cfg.rest_per_second as usize;
    let mut windows = lock(&s.windows);
    let w = windows.entry(group).or_default();
    while w.front().is_some_and(|&t| t <= now - 1000) {
        w.pop_front();
    }
    if w.len() >= limit {
        bump(&c.rest_429);
        abuse.violations.push_back(now);
        while abuse.violations.front().is_some_and(|&t| t <= now - 60_000) {
            abuse.violations.pop_front();
        }
        if abuse.violations.len() >= s.cfg.ban_after_violations as usize {
            let len = s.cfg.ban.as_millis() as i64 * (1i64 << abuse.bans.min(10));
            abuse.banned_until = now + len;
            abuse.bans += 1;
            abuse.violations.clear();
        }
        return Err(json_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!("group={group}; min=1800; sec=0")),
            error_body("too_many_requests", true, "Too many API requests."),
        ));
    }
    w.push_back(now);
    c.rest_max_per_second.fetch_max(w.len() as u64, Ordering::SeqCst);
    bump(&c.rest_ok);
    Ok(format!("group={group}; min=1800; sec={}", limit - w.len()))
}

/// Query parameters by name. A repeated name joins its values with commas, as the real
/// server (Spring) binds them: pyupbit asks for several tickers as `markets=A&markets=B`.
fn query(raw: &Option<String>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for pair in raw.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = pct_decode(v);
        out.entry(pct_decode(k))
            .and_modify(|all| {
                all.push(',');
                all.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn missing_param() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        None,
        error_body(400, false, "Missing request parameter error. Check the required parameters!"),
    )
}

fn code_not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, None, error_body(404, false, "Code not found"))
}

/// Indexes of the listed codes; REST accepts lowercase, and one unknown code fails all.
fn resolve(m: &CryptoMarket, list: &str) -> Option<Vec<usize>> {
    list.split(',').map(|c| m.index_of(&c.trim().to_ascii_uppercase())).collect()
}

fn ok(remaining: String, body: String) -> Response {
    json_response(StatusCode::OK, Some(remaining), body)
}

async fn market_all(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "market") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let details = query(&q).get("is_details").or(query(&q).get("isDetails")).is_some_and(|v| v == "true");
    let m = s.market(s.clock.now());
    let mut body = String::from("[");
    for (i, l) in m.listings().iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"market":"{}","korean_name":"{}","english_name":"{}""#,
            l.symbol, l.korean_name, l.english_name
        );
        if details {
            body.push_str(
                r#","market_event":{"warning":false,"caution":{"PRICE_FLUCTUATIONS":false,"TRADING_VOLUME_SOARING":false,"DEPOSIT_AMOUNT_SOARING":false,"GLOBAL_PRICE_DIFFERENCES":false,"CONCENTRATION_OF_SMALL_ACCOUNTS":false}}"#,
            );
        }
        body.push('}');
    }
    body.push(']');
    ok(rem, body)
}

fn tickers_body(s: &Shared, idxs: &[usize]) -> String {
    let now = s.clock.now();
    let mut m = s.market(now);
    let mut body = String::from("[");
    for (i, &idx) in idxs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        if let Some(st) = m.stats(idx, now) {
            body.push_str(&encode_ticker(&st, Fmt::Rest, "", now));
        }
    }
    body.push(']');
    body
}

async fn ticker(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "ticker") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(list) = query(&q).remove("markets") else { return missing_param() };
    let Some(idxs) = resolve(&s.market(s.clock.now()), &list) else { return code_not_found() };
    ok(rem, tickers_body(&s, &idxs))
}

async fn ticker_all(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "ticker") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(quotes) = query(&q).remove("quote_currencies") else { return missing_param() };
    let idxs: Vec<usize> = {
        let m = s.market(s.clock.now());
        let quotes: Vec<String> = quotes.split(',').map(|q| format!("{}-", q.trim().to_ascii_uppercase())).collect();
        (0..m.listings().len())
            .filter(|&i| quotes.iter().any(|q| m.listings()[i].symbol.as_str().starts_with(q.as_str())))
            .collect()
    };
    ok(rem, tickers_body(&s, &idxs))
}

/// Minute candles carry their unit; day candles the change against the day before.
#[derive(Clone, Copy)]
enum CandleKind {
    Minutes(u32),
    Day(Price),
}

fn candle_json(body: &mut String, market: &str, start_ms: i64, c: &super::sim_market::MinuteCandle, kind: CandleKind) {
    let fmt = |ms: i64, kst: bool| {
        UtcTime::from_millis(ms + if kst { model::time::KST_OFFSET_MS } else { 0 })
            .to_timestamp()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let _ = write!(
        body,
        r#"{{"market":"{market}","candle_date_time_utc":"{}","candle_date_time_kst":"{}","opening_price":{},"high_price":{},"low_price":{},"trade_price":{},"timestamp":{},"candle_acc_trade_price":{},"candle_acc_trade_volume":{}"#,
        fmt(start_ms, false),
        fmt(start_ms, true),
        c.open,
        c.high,
        c.low,
        c.close,
        c.last_time.as_millis(),
        eight_decimals(c.value),
        eight_decimals(c.volume.0),
    );
    match kind {
        CandleKind::Minutes(u) => {
            let _ = write!(body, r#","unit":{u}"#);
        }
        CandleKind::Day(prev) => {
            let change = c.close.0 - prev.0;
            let rate = if prev.0.is_zero() { Decimal::ZERO } else { change / prev.0 };
            let _ = write!(
                body,
                r#","prev_closing_price":{},"change_price":{},"change_rate":{}"#,
                eight_decimals(prev.0),
                eight_decimals(change),
                rate.round_dp(10).normalize(),
            );
        }
    }
    body.push('}');
}

/// Folds one-minute candles into `unit`-minute ones, newest first, at most `count`.
fn fold_candles(
    mins: &[super::sim_market::MinuteCandle],
    unit: u32,
    count: usize,
) -> Vec<(u32, super::sim_market::MinuteCandle)> {
    let mut out: Vec<(u32, super::sim_market::MinuteCandle)> = Vec::new();
    for c in mins {
        let start = c.minute / unit * unit;
        match out.last_mut() {
            Some((s, acc)) if *s == start => {
                acc.high = acc.high.max(c.high);
                acc.low = acc.low.min(c.low);
                acc.close = c.close;
                acc.volume = Qty(acc.volume.0 + c.volume.0);
                acc.value += c.value;
                acc.last_time = c.last_time;
            }
            _ => out.push((start, c.clone())),
        }
    }
    out.reverse();
    out.truncate(count);
    out
}

fn type_mismatch() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        None,
        error_body(400, false, "Type mismatch error. Check the parameters type!"),
    )
}

/// The `to` parameter (spec §2: ISO 8601 with a zone, or without one meaning UTC, `T` or a
/// space between date and time).
fn parse_to(text: &str) -> Option<UtcTime> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(UtcTime::from_timestamp(ts));
    }
    let dt = text.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>().ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| UtcTime::from_timestamp(z.timestamp()))
}

/// Candle requests share their parameters: the market, `count` (1..=200, default 1) and the
/// exclusive end `to` (default now; a later `to` is now, since the future has no candles).
struct CandleQuery {
    idx: usize,
    count: usize,
    /// Candles start before this (ms).
    end_ms: i64,
}

#[allow(clippy::result_large_err)] // axum's own response type; boxing it buys nothing here
fn candle_query(s: &Shared, raw: &Option<String>, now: UtcTime) -> Result<CandleQuery, Response> {
    let q = query(raw);
    let Some(market) = q.get("market") else { return Err(missing_param()) };
    let count = match q.get("count").map(|c| c.parse::<usize>()) {
        None => 1,
        Some(Ok(c)) => c.clamp(1, MAX_CANDLES),
        Some(Err(_)) => return Err(type_mismatch()),
    };
    // The candle in progress starts at or before now, so "before now + 1 ms" keeps it.
    let mut end_ms = now.as_millis() + 1;
    if let Some(to) = q.get("to").filter(|t| !t.is_empty()) {
        let Some(to) = parse_to(to) else { return Err(type_mismatch()) };
        end_ms = end_ms.min(to.as_millis());
    }
    let Some(idx) = s.market(now).index_of(&market.to_ascii_uppercase()) else { return Err(code_not_found()) };
    Ok(CandleQuery { idx, count, end_ms })
}

/// Most candles one request returns (spec §2).
const MAX_CANDLES: usize = 200;

fn day_start_ms(day: jiff::civil::Date) -> i64 {
    day.to_zoned(jiff::tz::TimeZone::UTC).map_or(0, |z| z.timestamp().as_millisecond())
}

async fn candles_minutes(State(s): State<Arc<Shared>>, Path(unit): Path<String>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "candle") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let unit: u32 = match unit.parse() {
        Ok(u) if [1, 3, 5, 10, 15, 30, 60, 240].contains(&u) => u,
        _ => return type_mismatch(),
    };
    let now = s.clock.now();
    let cq = match candle_query(&s, &q, now) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut m = s.market(now);
    let sym = m.listings()[cq.idx].symbol.clone();
    let first_day = m.first_history_day();
    // Walk back day by day (every unit divides a day, so no candle spans two) until
    // `count` candles or the start of the history.
    let mut day = CryptoMarket::day_of(UtcTime::from_millis(cq.end_ms - 1)).min(m.day());
    let mut candles: Vec<(i64, super::sim_market::MinuteCandle)> = Vec::new();
    while candles.len() < cq.count && day >= first_day {
        let start = day_start_ms(day);
        let mins = if day == m.day() {
            m.minute_candles(cq.idx, now)
        } else {
            m.past_minutes(cq.idx, day).unwrap_or_default()
        };
        // A candle is in when it starts before the end, even if `to` cuts into it.
        let kept: Vec<_> =
            mins.into_iter().filter(|c| start + (c.minute / unit * unit) as i64 * 60_000 < cq.end_ms).collect();
        let want = cq.count - candles.len();
        candles.extend(fold_candles(&kept, unit, want).into_iter().map(|(st, c)| (start + st as i64 * 60_000, c)));
        let Ok(prev) = day.yesterday() else { break };
        day = prev;
    }
    drop(m);
    let mut body = String::from("[");
    for (i, (start, c)) in candles.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        candle_json(&mut body, sym.as_str(), *start, c, CandleKind::Minutes(unit));
    }
    body.push(']');
    ok(rem, body)
}

async fn candles_days(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "candle") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = s.clock.now();
    let cq = match candle_query(&s, &q, now) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut m = s.market(now);
    let sym = m.listings()[cq.idx].symbol.clone();
    let first_day = m.first_history_day();
    let mut day = CryptoMarket::day_of(UtcTime::from_millis(cq.end_ms - 1)).min(m.day());
    let mut candles = Vec::new();
    while candles.len() < cq.count && day >= first_day {
        let candle = if day == m.day() {
            let mins = m.minute_candles(cq.idx, now);
            fold_candles(&mins, 1440, 1).into_iter().next().map(|(_, c)| (c, m.listings()[cq.idx].prev_close))
        } else {
            m.past_day(cq.idx, day).map(|c| (c.clone(), c.open))
        };
        if let Some((c, prev_close)) = candle {
            candles.push((day_start_ms(day), c, prev_close));
        }
        let Ok(prev) = day.yesterday() else { break };
        day = prev;
    }
    drop(m);
    let mut body = String::from("[");
    for (i, (start, c, prev_close)) in candles.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        candle_json(&mut body, sym.as_str(), *start, c, CandleKind::Day(*prev_close));
    }
    body.push(']');
    ok(rem, body)
}

async fn trades_ticks(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "trade") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let q = query(&q);
    let Some(market) = q.get("market") else { return missing_param() };
    let count = q.get("count").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1).clamp(1, 500);
    let now = s.clock.now();
    let mut m = s.market(now);
    let Some(idx) = m.index_of(&market.to_ascii_uppercase()) else { return code_not_found() };
    let pc = m.listings()[idx].prev_close;
    let trades = m.recent_trades(idx, now);
    drop(m);
    let mut body = String::from("[");
    for (i, t) in trades.iter().take(count).enumerate() {
        if i > 0 {
            body.push(',');
        }
        let ts = t.time.to_timestamp();
        let _ = write!(
            body,
            r#"{{"market":"{}","trade_date_utc":"{}","trade_time_utc":"{}","timestamp":{},"trade_price":{},"trade_volume":{},"prev_closing_price":{},"change_price":{},"ask_bid":"{}","sequential_id":{}}}"#,
            t.symbol,
            ts.strftime("%Y-%m-%d"),
            ts.strftime("%H:%M:%S"),
            t.time.as_millis(),
            eight_decimals(t.price.0),
            eight_decimals(t.size.0),
            eight_decimals(pc.0),
            eight_decimals((t.price.0 - pc.0).abs()),
            ask_bid(t.side),
            t.sequential_id,
        );
    }
    body.push(']');
    ok(rem, body)
}

async fn orderbook(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "orderbook") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let q = query(&q);
    let Some(list) = q.get("markets") else { return missing_param() };
    let count = q.get("count").and_then(|c| c.parse::<usize>().ok()).unwrap_or(30).clamp(1, 30);
    let now = s.clock.now();
    let mut m = s.market(now);
    let Some(idxs) = resolve(&m, list) else { return code_not_found() };
    let mut body = String::from("[");
    for (i, idx) in idxs.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        if let Some(b) = m.book(idx, now, count) {
            body.push_str(&encode_book(&b, Fmt::Rest, "", count));
        }
    }
    body.push(']');
    ok(rem, body)
}

// ---------------------------------------------------------------------------------------
// Message encoding (DEFAULT / SIMPLE keys, and the REST shapes).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Default,
    Simple,
    Rest,
}

struct Obj {
    out: String,
    fmt: Fmt,
    first: bool,
}

impl Obj {
    fn new(fmt: Fmt) -> Obj {
        Obj { out: String::with_capacity(512), fmt, first: true }
    }
    fn key(&mut self, default: &str, simple: &str) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        self.out.push('"');
        self.out.push_str(if self.fmt == Fmt::Simple { simple } else { default });
        self.out.push_str("\":");
    }
    fn raw(&mut self, default: &str, simple: &str, v: impl Display) -> &mut Self {
        self.key(default, simple);
        let _ = write!(self.out, "{v}");
        self
    }
    fn str(&mut self, default: &str, simple: &str, v: impl Display) -> &mut Self {
        self.key(default, simple);
        let _ = write!(self.out, "\"{v}\"");
        self
    }
    fn done(&mut self) -> String {
        if self.first {
            self.out.push('{');
        }
        self.out.push('}');
        std::mem::take(&mut self.out)
    }
}

fn ask_bid(side: Side) -> &'static str {
    match side {
        Side::Buy => "BID",
        Side::Sell => "ASK",
    }
}

/// Upbit's renderings (spec §4.8): DEFAULT prices of 10^7 or more in exponent form,
/// SIMPLE small sizes in exponent form, eight-decimal prices elsewhere.
fn px_text(p: Price, fmt: Fmt, exp_ok: bool) -> String {
    match fmt {
        Fmt::Default if exp_ok && p.0 >= Decimal::from(10_000_000) => exponent_form(p.0),
        Fmt::Simple => p.0.normalize().to_string(),
        _ => eight_decimals(p.0),
    }
}

fn qty_text(q: Qty, fmt: Fmt) -> String {
    if fmt == Fmt::Simple && q.0 < Decimal::new(1, 3) && !q.0.is_zero() {
        exponent_form(q.0)
    } else {
        eight_decimals(q.0)
    }
}

fn change(last: Price, pc: Price) -> (&'static str, Decimal, Decimal) {
    let diff = last.0 - pc.0;
    let word = if diff.is_zero() {
        "EVEN"
    } else if diff.is_sign_positive() {
        "RISE"
    } else {
        "FALL"
    };
    let rate = if pc.0.is_zero() { Decimal::ZERO } else { (diff / pc.0).round_dp(10) };
    (word, diff, rate)
}

fn encode_ticker(st: &PairStats, fmt: Fmt, stream_type: &str, now: UtcTime) -> String {
    let mut o = Obj::new(fmt);
    let (word, diff, rate) = change(st.last, st.prev_close);
    let trade_ms = st.last_trade.as_ref().map_or(st.time.as_millis(), |t| t.time.as_millis());
    let tv = st.last_trade.as_ref().map_or(Qty::ZERO, |t| t.size);
    let side = st.last_trade.as_ref().map_or(Side::Buy, |t| t.side);
    let ts = UtcTime::from_millis(trade_ms).to_timestamp();
    let p = |x: Price| px_text(x, fmt, false);
    if fmt == Fmt::Rest {
        o.str("market", "", &st.symbol);
    } else {
        o.str("type", "ty", "ticker").str("code", "cd", &st.symbol);
    }
    o.raw("opening_price", "op", p(st.open))
        .raw("high_price", "hp", p(st.high))
        .raw("low_price", "lp", p(st.low))
        .raw("trade_price", "tp", p(st.last))
        .raw("prev_closing_price", "pcp", p(st.prev_close))
        .str("change", "c", word)
        .raw("change_price", "cp", p(Price(diff.abs())))
        .raw("signed_change_price", "scp", p(Price(diff)))
        .raw("change_rate", "cr", rate.abs())
        .raw("signed_change_rate", "scr", rate)
        .raw("trade_volume", "tv", qty_text(tv, fmt))
        .raw("acc_trade_volume", "atv", qty_text(st.acc_volume, fmt))
        .raw("acc_trade_volume_24h", "atv24h", eight_decimals(st.volume_24h.0))
        .raw("acc_trade_price", "atp", eight_decimals(st.acc_value))
        .raw("acc_trade_price_24h", "atp24h", eight_decimals(st.value_24h))
        .str("trade_date", "tdt", ts.strftime("%Y%m%d"))
        .str("trade_time", "ttm", ts.strftime("%H%M%S"))
        .raw("trade_timestamp", "ttms", trade_ms);
    if fmt == Fmt::Rest {
        let kst = UtcTime::from_millis(trade_ms + model::time::KST_OFFSET_MS).to_timestamp();
        o.str("trade_date_kst", "", kst.strftime("%Y%m%d")).str("trade_time_kst", "", kst.strftime("%H%M%S"));
    } else {
        o.str("ask_bid", "ab", ask_bid(side)).raw("acc_ask_volume", "aav", qty_text(st.acc_ask_volume, fmt)).raw(
            "acc_bid_volume",
            "abv",
            qty_text(st.acc_bid_volume, fmt),
        );
    }
    o.raw("highest_52_week_price", "h52wp", p(Price(st.prev_close.0 * Decimal::new(16, 1))))
        .str("highest_52_week_date", "h52wdt", "2025-10-06")
        .raw("lowest_52_week_price", "l52wp", p(Price((st.prev_close.0 * Decimal::new(55, 2)).round())))
        .str("lowest_52_week_date", "l52wdt", "2025-04-07");
    if fmt != Fmt::Rest {
        o.str("market_state", "ms", "ACTIVE")
            .raw("is_trading_suspended", "its", false)
            .raw("delisting_date", "dd", "null")
            .str("market_warning", "mw", "NONE");
    }
    o.raw("timestamp", "tms", now.as_millis().max(trade_ms));
    if fmt != Fmt::Rest {
        o.str("stream_type", "st", stream_type);
    }
    o.done()
}

fn encode_trade(t: &CryptoTrade, pc: Price, fmt: Fmt, stream_type: &str, now: UtcTime) -> String {
    let mut o = Obj::new(fmt);
    let (word, diff, _) = change(t.price, pc);
    let ts = t.time.to_timestamp();
    o.str("type", "ty", "trade")
        .str("code", "cd", &t.symbol)
        .raw("timestamp", "tms", now.as_millis().max(t.time.as_millis()))
        .str("trade_date", "td", ts.strftime("%Y-%m-%d"))
        .str("trade_time", "ttm", ts.strftime("%H:%M:%S"))
        .raw("trade_timestamp", "ttms", t.time.as_millis())
        .raw("trade_price", "tp", px_text(t.price, fmt, false))
        .raw("trade_volume", "tv", qty_text(t.size, fmt))
        .str("ask_bid", "ab", ask_bid(t.side))
        .raw("prev_closing_price", "pcp", px_text(pc, fmt, false))
        .str("change", "c", word)
        .raw("change_price", "cp", px_text(Price(diff.abs()), fmt, false))
        .raw("sequential_id", "sid", t.sequential_id)
        .raw("best_ask_price", "bap", px_text(t.best_ask.0, fmt, true))
        .raw("best_ask_size", "bas", qty_text(t.best_ask.1, fmt))
        .raw("best_bid_price", "bbp", px_text(t.best_bid.0, fmt, true))
        .raw("best_bid_size", "bbs", qty_text(t.best_bid.1, fmt))
        .str("stream_type", "st", stream_type);
    o.done()
}

fn encode_book(b: &CryptoBook, fmt: Fmt, stream_type: &str, depth: usize) -> String {
    let n = depth.min(b.bids.len().max(b.asks.len()));
    let total = |side: &[(Price, Qty)]| side.iter().take(n).fold(Decimal::ZERO, |a, l| a + l.1.0);
    let mut o = Obj::new(fmt);
    if fmt == Fmt::Rest {
        o.str("market", "", &b.symbol);
    } else {
        o.str("type", "ty", "orderbook").str("code", "cd", &b.symbol);
    }
    o.raw("timestamp", "tms", b.time.as_millis()).raw("total_ask_size", "tas", eight_decimals(total(&b.asks))).raw(
        "total_bid_size",
        "tbs",
        eight_decimals(total(&b.bids)),
    );
    o.key("orderbook_units", "obu");
    o.out.push('[');
    let zero = (Price::ZERO, Qty::ZERO);
    for i in 0..n {
        if i > 0 {
            o.out.push(',');
        }
        // REST pads a thin side with zeros so the array keeps `count` entries.
        let (a, bl) = (b.asks.get(i).copied().unwrap_or(zero), b.bids.get(i).copied().unwrap_or(zero));
        let mut u = Obj::new(fmt);
        if fmt == Fmt::Rest {
            u.raw("bid_price", "bp", px_text(bl.0, fmt, true)).raw("ask_price", "ap", px_text(a.0, fmt, true));
            u.raw("bid_size", "bs", qty_text(bl.1, fmt)).raw("ask_size", "as", qty_text(a.1, fmt));
        } else {
            u.raw("ask_price", "ap", px_text(a.0, fmt, true)).raw("bid_price", "bp", px_text(bl.0, fmt, true));
            u.raw("ask_size", "as", qty_text(a.1, fmt)).raw("bid_size", "bs", qty_text(bl.1, fmt));
        }
        o.out.push_str(&u.done());
    }
    o.out.push(']');
    if fmt != Fmt::Rest {
        o.str("stream_type", "st", stream_type);
    }
    o.raw("level", "lv", 0);
    o.done()
}

// ---------------------------------------------------------------------------------------
// WebSocket.

const WS_PATH: &str = "/websocket/v1";

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let now = shared.clock.now().as_millis();
        if now < shared.faults.refuse_until_ms.load(Ordering::SeqCst) {
            bump(&shared.counters.ws_refused);
            drop(tcp);
            continue;
        }
        let allowed = {
            let mut c = lock(&shared.connects);
            while c.front().is_some_and(|&t| t <= now - 1000) {
                c.pop_front();
            }
            let ok = c.len() < shared.cfg.ws_connect_per_second as usize;
            if ok {
                c.push_back(now);
            }
            ok
        };
        tokio::spawn(connection(tcp, shared.clone(), allowed));
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Sub {
    ticker: bool,
    trade: bool,
    /// Depth when subscribed.
    book: Option<usize>,
}

struct Conn {
    shared: Arc<Shared>,
    fmt: Fmt,
    list: bool,
    subs: HashMap<usize, Sub>,
    sent: VecDeque<i64>,
}

impl Conn {
    fn unwatch_all(&mut self) {
        for (idx, _) in self.subs.drain() {
            self.shared.watch(idx, false);
        }
    }

    fn wrap(&self, msg: String) -> String {
        if self.list { format!("[{msg}]") } else { msg }
    }

    /// Applies the per-connection message limits; false = over the limit.
    fn message_allowed(&mut self, now: i64) -> bool {
        let cfg = &self.shared.cfg;
        while self.sent.front().is_some_and(|&t| t <= now - 60_000) {
            self.sent.pop_front();
        }
        let last_sec = self.sent.iter().filter(|&&t| t > now - 1000).count();
        if last_sec >= cfg.ws_messages_per_second as usize || self.sent.len() >= cfg.ws_messages_per_minute as usize {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

fn ws_error(name: &str, message: &str) -> String {
    format!(r#"{{"error":{{"name":"{name}","message":"{message}"}}}}"#)
}

const TYPES: &[&str] = &[
    "ticker",
    "trade",
    "orderbook",
    "candle.1s",
    "candle.1m",
    "candle.3m",
    "candle.5m",
    "candle.10m",
    "candle.15m",
    "candle.30m",
    "candle.60m",
    "candle.240m",
];

enum Request {
    Subscribe { subs: HashMap<usize, Sub>, snapshot: Vec<(usize, &'static str, usize)>, fmt: Fmt, list: bool },
    List { ticket: String },
}

/// Validates a request like the real server; `Err` is the error frame to send.
fn parse_request(text: &str, m: &CryptoMarket) -> Result<Request, String> {
    let wrong = || ws_error("WRONG_FORMAT", "Format 이 맞지 않습니다.");
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| wrong())?;
    let items = v.as_array().ok_or_else(wrong)?;
    let ticket = items
        .first()
        .and_then(|t| t.get("ticket"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ws_error("NO_TICKET", "티켓이 존재하지 않거나, 유효하지 않습니다."))?;
    let mut fmt = Fmt::Default;
    let mut list = false;
    let mut subs: HashMap<usize, Sub> = HashMap::new();
    let mut snapshot = Vec::new();
    let mut any_type = false;
    for item in &items[1..] {
        let obj = item.as_object().ok_or_else(wrong)?;
        if obj.get("method").and_then(|x| x.as_str()) == Some("LIST_SUBSCRIPTIONS") {
            return Ok(Request::List { ticket: ticket.to_string() });
        }
        if let Some(f) = obj.get("format") {
            (fmt, list) = match f.as_str() {
                Some("DEFAULT") => (Fmt::Default, false),
                Some("SIMPLE") => (Fmt::Simple, false),
                Some("JSON_LIST") => (Fmt::Default, true),
                Some("SIMPLE_LIST") => (Fmt::Simple, true),
                other => {
                    let shown = other.map_or_else(|| f.to_string(), str::to_string);
                    return Err(ws_error("INVALID_PARAM", &format!("{shown} 은 지원하지 않는 포맷입니다.")));
                }
            };
            continue;
        }
        let Some(ty) = obj.get("type") else {
            continue;
        };
        any_type = true;
        let ty = ty.as_str().ok_or_else(wrong)?;
        let ty: &'static str = TYPES
            .iter()
            .find(|t| **t == ty)
            .ok_or_else(|| ws_error("INVALID_PARAM", &format!("{ty} 은 지원하지 않는 타입입니다.")))?;
        let codes = obj.get("codes").ok_or_else(|| ws_error("NO_CODES", "codes 가 존재하지 않습니다."))?;
        let codes = codes.as_array().ok_or_else(wrong)?;
        let flag = |a: &str, b: &str| obj.get(a).or(obj.get(b)).and_then(|x| x.as_bool()).unwrap_or(false);
        let only_snapshot = flag("is_only_snapshot", "isOnlySnapshot");
        let only_realtime = flag("is_only_realtime", "isOnlyRealtime");
        for code in codes {
            let code = code.as_str().ok_or_else(wrong)?;
            let (base, depth) = match code.split_once('.') {
                Some((b, n)) => (b, n.parse::<usize>().ok().filter(|n| [1, 5, 15, 30].contains(n)).unwrap_or(30)),
                None => (code, 30),
            };
            // Lowercase or unknown codes are silently ignored, as the real server does.
            let Some(idx) = m.index_of(base) else { continue };
            if !only_realtime {
                snapshot.push((idx, ty, depth));
            }
            if only_snapshot {
                continue;
            }
            let s = subs.entry(idx).or_default();
            match ty {
                "ticker" => s.ticker = true,
                "trade" => s.trade = true,
                "orderbook" => s.book = Some(depth),
                // Candle streams are accepted but not simulated (no data, like an idle pair).
                _ => {}
            }
        }
    }
    if !any_type {
        return Err(ws_error("NO_TYPE", "type 이 존재하지 않습니다."));
    }
    Ok(Request::Subscribe { subs, snapshot, fmt, list })
}

type WsSink = futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, Message>;

async fn send_data(sink: &mut WsSink, shared: &Shared, text: String) -> bool {
    let f = &shared.faults;
    let bytes: Vec<u8> = if take(&f.malformed_frames) {
        b"\xff\xfe{\"type\":trade,,\x00garbage".to_vec()
    } else if take(&f.torn_frames) {
        let b = text.into_bytes();
        b[..b.len() / 2].to_vec()
    } else {
        text.into_bytes()
    };
    bump(&shared.counters.ws_data_frames);
    sink.send(Message::Binary(bytes.into())).await.is_ok()
}

#[allow(clippy::result_large_err)] // the handshake callback's signature is tungstenite's
async fn connection(tcp: TcpStream, shared: Arc<Shared>, allowed: bool) {
    let callback = |req: &WsRequest, mut resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        let status = if req.uri().path() != WS_PATH {
            Some(StatusCode::NOT_FOUND)
        } else if !allowed {
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else {
            None
        };
        if let Some(status) = status {
            let mut e = ErrorResponse::new(Some(error_body(status.as_u16(), false, status.as_str())));
            *e.status_mut() = status;
            return Err(e);
        }
        resp.headers_mut().insert("remaining-req", HeaderValue::from_static("group=websocket; min=300; sec=3"));
        Ok(resp)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(tcp, callback).await {
        Ok(ws) => ws,
        Err(_) => {
            bump(&shared.counters.ws_connect_rejected);
            return;
        }
    };
    bump(&shared.counters.ws_connections);
    let (mut sink, mut src) = ws.split();
    let mut feed = shared.feed.subscribe();
    let mut dropper = shared.faults.drop_gen.subscribe();
    dropper.mark_unchanged();
    let clock = shared.clock;
    let mut conn =
        Conn { shared: shared.clone(), fmt: Fmt::Default, list: false, subs: HashMap::new(), sent: VecDeque::new() };
    let idle = shared.cfg.idle_timeout.as_millis() as i64;
    let status_every = shared.cfg.status_interval.as_millis() as i64;
    let mut last_traffic = clock.now().as_millis();
    let mut last_status = last_traffic;
    loop {
        let tick = UtcTime::from_millis(clock.now().as_millis() + status_every.min(idle).clamp(10, 1000));
        tokio::select! {
            msg = src.next() => {
                let now = clock.now();
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_))) => {
                        last_traffic = now.as_millis();
                        let _ = sink.flush().await;
                        continue;
                    }
                    Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                last_traffic = now.as_millis();
                bump(&shared.counters.ws_client_messages);
                if !conn.message_allowed(now.as_millis()) {
                    // The docs give the limit but not the reaction; we count and ignore.
                    bump(&shared.counters.ws_message_violations);
                    continue;
                }
                if shared.faults.stall.load(Ordering::SeqCst) {
                    continue;
                }
                if text.trim() == "PING" {
                    bump(&shared.counters.ws_pings);
                    if sink.send(Message::Binary(br#"{"status":"UP"}"#.to_vec().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                let req = {
                    let m = shared.market(now);
                    parse_request(&text, &m)
                };
                match req {
                    Err(frame) => {
                        bump(&shared.counters.ws_subscribe_errors);
                        let _ = sink.send(Message::Binary(frame.into_bytes().into())).await;
                        clock.sleep(shared.cfg.error_close_delay.get()).await;
                        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                    Ok(Request::List { ticket }) => {
                        let mut result = String::from("[");
                        let mut by_type: Vec<(&str, Vec<String>)> = vec![("ticker", vec![]), ("trade", vec![]), ("orderbook", vec![])];
                        {
                            let m = shared.market(now);
                            for (idx, s) in &conn.subs {
                                let code = m.listings()[*idx].symbol.to_string();
                                if s.ticker { by_type[0].1.push(code.clone()); }
                                if s.trade { by_type[1].1.push(code.clone()); }
                                if let Some(d) = s.book { by_type[2].1.push(format!("{code}.{d}")); }
                            }
                        }
                        let mut first = true;
                        for (ty, codes) in by_type.iter().filter(|t| !t.1.is_empty()) {
                            if !first { result.push(','); }
                            first = false;
                            let _ = write!(result, r#"{{"type":"{ty}","codes":{}}}"#, serde_json::json!(codes));
                        }
                        result.push(']');
                        let reply = format!(r#"{{"method":"LIST_SUBSCRIPTIONS","result":{result},"ticket":{}}}"#, serde_json::json!(ticket));
                        if sink.send(Message::Binary(reply.into_bytes().into())).await.is_err() {
                            break;
                        }
                    }
                    Ok(Request::Subscribe { subs, snapshot, fmt, list }) => {
                        bump(&shared.counters.ws_subscribes);
                        // A new request replaces the whole subscription.
                        let old: Vec<usize> = conn.subs.keys().copied().collect();
                        for idx in subs.keys() {
                            shared.watch(*idx, true);
                        }
                        for idx in old {
                            shared.watch(idx, false);
                        }
                        conn.subs = subs;
                        conn.fmt = fmt;
                        conn.list = list;
                        let mut frames = Vec::new();
                        {
                            let mut m = shared.market(now);
                            for (idx, ty, depth) in snapshot {
                                let pc = m.listings()[idx].prev_close;
                                match ty {
                                    "ticker" => if let Some(st) = m.stats(idx, now) {
                                        frames.push(encode_ticker(&st, fmt, "SNAPSHOT", now));
                                    },
                                    "trade" => if let Some(t) = m.stats(idx, now).and_then(|s| s.last_trade) {
                                        frames.push(encode_trade(&t, pc, fmt, "SNAPSHOT", now));
                                    },
                                    "orderbook" => if let Some(b) = m.book(idx, now, depth) {
                                        frames.push(encode_book(&b, fmt, "SNAPSHOT", depth));
                                    },
                                    _ => {}
                                }
                            }
                        }
                        for f in frames {
                            let f = conn.wrap(f);
                            if !send_data(&mut sink, &shared, f).await {
                                break;
                            }
                        }
                    }
                }
            }
            ev = feed.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    // A client too slow for the feed is cut off, as a real server would.
                    Err(_) => break,
                };
                if shared.faults.stall.load(Ordering::SeqCst) {
                    continue;
                }
                let Some(idx) = ({ let m = lock(&shared.market); m.index_of(ev.symbol().as_str()) }) else { continue };
                let Some(sub) = conn.subs.get(&idx).copied() else { continue };
                let now = clock.now();
                let mut frames = Vec::new();
                match &*ev {
                    CryptoEvent::Trade(b) => {
                        let (t, st) = (&b.0, &b.1);
                        if sub.trade {
                            frames.push(encode_trade(t, st.prev_close, conn.fmt, "REALTIME", now));
                        }
                        if sub.ticker {
                            frames.push(encode_ticker(st, conn.fmt, "REALTIME", now));
                        }
                    }
                    CryptoEvent::Book(b) => {
                        if let Some(depth) = sub.book {
                            frames.push(encode_book(b, conn.fmt, "REALTIME", depth));
                        }
                    }
                }
                let mut ok = true;
                for f in frames {
                    let f = conn.wrap(f);
                    last_traffic = now.as_millis();
                    if !send_data(&mut sink, &shared, f).await {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    break;
                }
            }
            _ = dropper.changed() => break,
            _ = clock.sleep_until(tick) => {
                let now = clock.now().as_millis();
                if now - last_traffic >= idle {
                    bump(&shared.counters.ws_idle_drops);
                    break;
                }
                if conn.subs.is_empty() && now - last_status >= status_every && !shared.faults.stall.load(Ordering::SeqCst) {
                    last_status = now;
                    if sink.send(Message::Binary(br#"{"status":"UP"}"#.to_vec().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    conn.unwatch_all();
}
