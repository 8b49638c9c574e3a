//! `UpbitProvider`: the `MarketProvider` over Upbit's public quotation REST API and
//! WebSocket. REST calls are paced per rate-limit group on the `Clock` and slow down as
//! `Remaining-Req` runs out; a 429 holds the group back and retries, a 418 (blocked) holds
//! it back longer and fails. The stream archives everything it sends and every connection
//! open/close, and reports any end it was not asked for as `StreamEnded`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use jiff::civil::Date;
use model::{Clock, Market, MarketEvent, Provider, RawFrame, RawFrameKind, Symbol, UtcTime};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::config::UpbitConfig;
use super::wire::{self, CH_WS, Candle, MarketInfo, OrderbookSnapshot, Ticker, TradeTick};
use crate::provider::{MarketProvider, ProviderError, UniverseEntry, evidence};
use crate::ratelimit::RateLimiter;

/// Where a subscribed code stands. Upbit sends no acknowledgement and ignores unknown codes
/// silently, so the first data frame is the only confirmation there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// Requested, no data yet.
    Pending,
    /// Data arrived for it on the current connection.
    Confirmed,
    /// No data within `confirm_timeout` (unknown code, delisted, or a very quiet pair).
    Failed,
}

/// Upbit's quotation rate-limit groups (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Market = 0,
    Candle = 1,
    Trade = 2,
    Ticker = 3,
    Orderbook = 4,
}

pub struct UpbitProvider {
    cfg: UpbitConfig,
    clock: Clock,
    http: reqwest::Client,
    limiters: [RateLimiter; 5],
    connects: RateLimiter,
    messages: RateLimiter,
    subs: Mutex<HashMap<Box<str>, (SubState, UtcTime)>>,
    tickets: AtomicU64,
}

fn request_err(what: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::Request { provider: Provider::Upbit, what: what.to_string(), why: why.into() }
}

fn ended(why: impl Into<String>) -> ProviderError {
    ProviderError::StreamEnded { provider: Provider::Upbit, why: why.into() }
}

/// `group=ticker; min=1800; sec=9` → 9.
fn remaining_sec(h: &str) -> Option<u32> {
    h.split(';').find_map(|p| p.trim().strip_prefix("sec=")).and_then(|v| v.trim().parse().ok())
}

/// The code a data frame is about, found without parsing the frame (`"code":"…"` or `"cd":"…"`).
fn frame_code(text: &str) -> Option<&str> {
    for key in ["\"code\":\"", "\"cd\":\""] {
        if let Some(i) = text.find(key) {
            let rest = &text[i + key.len()..];
            return rest.find('"').map(|j| &rest[..j]);
        }
    }
    None
}

impl UpbitProvider {
    pub fn new(cfg: UpbitConfig, clock: Clock) -> Result<Self, ProviderError> {
        // No redirects, HTTPS unless the endpoint is on loopback (the fake server).
        let http = crate::transport::broker_http(cfg.request_timeout.get(), &[cfg.rest_base.as_str()])
            .map_err(|e| request_err("client", e.to_string()))?;
        let rl = || RateLimiter::new(clock, cfg.rest_per_second, cfg.rest_burst);
        Ok(UpbitProvider {
            limiters: [rl(), rl(), rl(), rl(), rl()],
            connects: RateLimiter::new(clock, cfg.ws_connect_per_second, 1),
            messages: RateLimiter::new(clock, cfg.ws_messages_per_second, cfg.ws_message_burst),
            cfg,
            clock,
            http,
            subs: Mutex::new(HashMap::new()),
            tickets: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &UpbitConfig {
        &self.cfg
    }

    /// The state of each subscribed code on the current (or last) connection.
    pub fn subscription_states(&self) -> Vec<(Symbol, SubState)> {
        let subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(Symbol, SubState)> =
            subs.iter().filter_map(|(k, v)| Symbol::new(k).ok().map(|s| (s, v.0))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn frame(&self, kind: RawFrameKind, channel: &str, frame: String) -> RawFrame {
        RawFrame {
            provider: Provider::Upbit,
            kind,
            channel: channel.to_string(),
            frame,
            receive_time: self.clock.now(),
        }
    }

    /// One GET, paced and retried as the module docs describe; the body as a REST frame.
    async fn get(&self, group: Group, path: &str, channel: &str) -> Result<RawFrame, ProviderError> {
        let limiter = &self.limiters[group as usize];
        let url = format!("{}{path}", self.cfg.rest_base.trim_end_matches('/'));
        let mut last = String::new();
        for attempt in 0..=self.cfg.max_retries {
            limiter.acquire().await;
            let resp = match self.http.get(&url).header("accept", "application/json").send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("transport: {}", e.without_url());
                    self.clock.sleep(self.cfg.retry_backoff.get() * (1 << attempt.min(6))).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if let Some(sec) = resp.headers().get("remaining-req").and_then(|h| h.to_str().ok()).and_then(remaining_sec)
                && sec <= self.cfg.remaining_req_threshold
            {
                // Nearly out of this second's allowance: space the next requests out.
                let missing = self.cfg.remaining_req_threshold - sec + 1;
                limiter.penalize(self.cfg.remaining_req_pause.get() * missing);
            }
            let body = crate::limits::read_text(resp, self.cfg.max_body_bytes, "providers.upbit.max_body_bytes")
                .await
                .map_err(|e| request_err(path, format!("body: {}", e.why(|e| e.to_string()))))?;
            match status {
                200 => return Ok(self.frame(RawFrameKind::Rest, channel, body)),
                429 => {
                    limiter.penalize(self.cfg.penalty_429.get());
                    last = format!("429 too many requests: {}", evidence(&body));
                }
                418 => {
                    // Blocked: retrying would only lengthen the block.
                    limiter.penalize(self.cfg.penalty_418.get());
                    return Err(request_err(path, format!("418 blocked: {}", evidence(&body))));
                }
                500..=599 => {
                    last = format!("{status}: {}", evidence(&body));
                    self.clock.sleep(self.cfg.retry_backoff.get() * (1 << attempt.min(6))).await;
                }
                _ => {
                    let (name, msg) = wire::parse_error_body(&body).unwrap_or_default();
                    return Err(request_err(path, format!("{status} {name}: {msg} ({})", evidence(&body))));
                }
            }
        }
        Err(request_err(path, format!("gave up after {} attempts: {last}", self.cfg.max_retries + 1)))
    }

    pub async fn market_all_frame(&self) -> Result<RawFrame, ProviderError> {
        self.get(Group::Market, "/market/all?is_details=true", wire::CH_MARKET_ALL).await
    }

    pub async fn market_all(&self) -> Result<Vec<MarketInfo>, ProviderError> {
        wire::parse_market_all(&self.market_all_frame().await?.frame)
    }

    /// `/ticker` for up to `ticker_chunk` markets, as the raw frame.
    pub async fn ticker_frame(&self, markets: &[Symbol]) -> Result<RawFrame, ProviderError> {
        let list: Vec<&str> = markets.iter().map(Symbol::as_str).collect();
        self.get(Group::Ticker, &format!("/ticker?markets={}", list.join(",")), wire::CH_TICKER).await
    }

    /// Typed tickers for any number of markets (requested in chunks).
    pub async fn tickers(&self, markets: &[Symbol]) -> Result<Vec<Ticker>, ProviderError> {
        let mut out = Vec::with_capacity(markets.len());
        for chunk in markets.chunks(self.cfg.ticker_chunk.max(1) as usize) {
            out.extend(wire::parse_tickers(&self.ticker_frame(chunk).await?.frame)?);
        }
        Ok(out)
    }

    /// `unit` ∈ 1, 3, 5, 10, 15, 30, 60, 240; newest first.
    pub async fn candles_minutes(&self, market: &Symbol, unit: u32, count: u32) -> Result<Vec<Candle>, ProviderError> {
        let path = format!("/candles/minutes/{unit}?market={market}&count={}", count.clamp(1, 200));
        wire::parse_candles(&self.get(Group::Candle, &path, wire::CH_CANDLES).await?.frame)
    }

    pub async fn candles_days(&self, market: &Symbol, count: u32) -> Result<Vec<Candle>, ProviderError> {
        let path = format!("/candles/days?market={market}&count={}", count.clamp(1, 200));
        wire::parse_candles(&self.get(Group::Candle, &path, wire::CH_CANDLES).await?.frame)
    }

    pub async fn trades_frame(&self, market: &Symbol, count: u32) -> Result<RawFrame, ProviderError> {
        let path = format!("/trades/ticks?market={market}&count={}", count.clamp(1, 500));
        self.get(Group::Trade, &path, wire::CH_TRADES).await
    }

    /// Most recent first.
    pub async fn trades(&self, market: &Symbol, count: u32) -> Result<Vec<TradeTick>, ProviderError> {
        wire::parse_trades(&self.trades_frame(market, count).await?.frame)
    }

    pub async fn orderbook_frame(&self, markets: &[Symbol], count: u32) -> Result<RawFrame, ProviderError> {
        let list: Vec<&str> = markets.iter().map(Symbol::as_str).collect();
        let path = format!("/orderbook?markets={}&count={}", list.join(","), count.clamp(1, 30));
        self.get(Group::Orderbook, &path, wire::CH_ORDERBOOK).await
    }

    pub async fn orderbooks(&self, markets: &[Symbol], count: u32) -> Result<Vec<OrderbookSnapshot>, ProviderError> {
        wire::parse_orderbooks(&self.orderbook_frame(markets, count).await?.frame)
    }

    /// The quote market's pairs with their tickers: what the engine's crypto universe filter
    /// (quote market, 24 h traded value) ranks.
    pub async fn listed_with_tickers(&self) -> Result<Vec<(MarketInfo, Ticker)>, ProviderError> {
        let prefix = format!("{}-", self.cfg.quote_currency);
        let infos: Vec<MarketInfo> =
            self.market_all().await?.into_iter().filter(|m| m.market.as_str().starts_with(&prefix)).collect();
        let symbols: Vec<Symbol> = infos.iter().map(|m| m.market.clone()).collect();
        let mut tickers: HashMap<Symbol, Ticker> =
            self.tickers(&symbols).await?.into_iter().map(|t| (t.market.clone(), t)).collect();
        Ok(infos.into_iter().filter_map(|i| tickers.remove(&i.market).map(|t| (i, t))).collect())
    }

    fn subscribe_message(&self, symbols: &[Symbol]) -> String {
        let n = self.tickets.fetch_add(1, Ordering::Relaxed);
        let ticket = format!("stock-observer-{}-{n}", self.clock.now().as_millis());
        let codes: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
        let mut parts = vec![serde_json::json!({ "ticket": ticket })];
        if self.cfg.subscribe_ticker {
            parts.push(serde_json::json!({ "type": "ticker", "codes": codes }));
        }
        if self.cfg.subscribe_trade {
            parts.push(serde_json::json!({ "type": "trade", "codes": codes }));
        }
        if self.cfg.subscribe_orderbook {
            let depth = self.cfg.orderbook_depth;
            let book: Vec<String> = codes.iter().map(|c| format!("{c}.{depth}")).collect();
            parts.push(serde_json::json!({ "type": "orderbook", "codes": book }));
        }
        parts.push(serde_json::json!({ "format": self.cfg.format.wire_name() }));
        serde_json::Value::Array(parts).to_string()
    }

    /// Every code back to pending: after a (re)subscribe nothing is confirmed until data arrives.
    fn reset_subs(&self, symbols: &[Symbol]) {
        let now = self.clock.now();
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.clear();
        for s in symbols {
            subs.insert(s.as_str().into(), (SubState::Pending, now));
        }
    }

    fn confirm(&self, text: &str) {
        if let Some(code) = frame_code(text) {
            let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = subs.get_mut(code)
                && e.0 != SubState::Confirmed
            {
                *e = (SubState::Confirmed, self.clock.now());
            }
        }
    }

    fn expire_pending(&self) {
        let now = self.clock.now();
        let limit = self.cfg.confirm_timeout.as_millis() as i64;
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        for (code, e) in subs.iter_mut() {
            if e.0 == SubState::Pending && now.millis_since(e.1) >= limit {
                tracing::warn!(code = %code, "upbit subscription got no data; marking failed");
                *e = (SubState::Failed, now);
            }
        }
    }

    async fn run_stream(
        &self,
        subscriptions: &mut watch::Receiver<Vec<Symbol>>,
        out: &mpsc::Sender<RawFrame>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        let send = |f: RawFrame| async move { out.send(f).await.map_err(|_| ended("the pipeline stopped reading")) };
        self.connects.acquire().await;
        let url = self.cfg.ws_base.clone();
        let limits = crate::limits::ws_config(self.cfg.ws_max_message_bytes);
        let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(limits), false);
        let ws = tokio::select! {
            r = connect => r.map_err(|e| ended(format!("connect to {url} failed: {e}")))?.0,
            _ = self.clock.sleep(self.cfg.connect_timeout.get()) => return Err(ended(format!("connect to {url} timed out"))),
            _ = model::stopped(stop) => return Ok(()),
        };
        send(self.frame(RawFrameKind::Open, CH_WS, serde_json::json!({ "url": url }).to_string())).await?;
        let (mut sink, mut src) = ws.split();
        let close_frame =
            |why: &str| self.frame(RawFrameKind::Close, CH_WS, serde_json::json!({ "closed": why }).to_string());

        let mut symbols = subscriptions.borrow_and_update().clone();
        // The subscription to (re)send, and when the message limiter lets it go.
        let mut resubscribe: Option<UtcTime> = (!symbols.is_empty()).then(|| self.messages.reserve());
        self.reset_subs(&symbols);
        let keepalive = self.cfg.keepalive.as_millis() as i64;
        let stall = self.cfg.stall_timeout.as_millis() as i64;
        let mut last_rx = self.clock.now();
        let mut next_ping = last_rx.plus_millis(keepalive);
        let mut subs_open = true;
        let mut last_error: Option<String> = None;
        loop {
            let now = self.clock.now();
            let mut deadline = next_ping.min(last_rx.plus_millis(stall)).min(now.plus_millis(1_000));
            if let Some(at) = resubscribe {
                deadline = deadline.min(at);
            }
            tokio::select! {
                biased;
                _ = model::stopped(stop) => {
                    let _ = sink.send(Message::Close(None)).await;
                    send(close_frame("requested")).await?;
                    return Ok(());
                }
                changed = subscriptions.changed(), if subs_open => {
                    if changed.is_err() {
                        subs_open = false;
                        continue;
                    }
                    let next = subscriptions.borrow_and_update().clone();
                    // Upbit has no unsubscribe and rejects empty codes: an empty set keeps the
                    // last subscription until the next non-empty one.
                    if next != symbols && !next.is_empty() {
                        symbols = next;
                        resubscribe.get_or_insert_with(|| self.messages.reserve());
                    }
                }
                msg = src.next() => {
                    let text = match msg {
                        Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                            Ok(t) => t,
                            // Archived with replacement characters; `parse` reports it malformed.
                            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        },
                        Some(Ok(Message::Text(t))) => t.to_string(),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                            last_rx = self.clock.now();
                            continue;
                        }
                        Some(Ok(Message::Close(c))) => {
                            let why = match (c, last_error.take()) {
                                (Some(c), e) => format!("server closed ({} {}){}", c.code, c.reason, e.map(|e| format!(" after {e}")).unwrap_or_default()),
                                (None, e) => format!("server closed{}", e.map(|e| format!(" after {e}")).unwrap_or_default()),
                            };
                            send(close_frame(&why)).await?;
                            return Err(ended(why));
                        }
                        Some(Err(e)) => {
                            let why = format!("connection lost: {e}");
                            send(close_frame(&why)).await?;
                            return Err(ended(why));
                        }
                        None => {
                            let why = "connection closed without a close frame".to_string();
                            send(close_frame(&why)).await?;
                            return Err(ended(why));
                        }
                    };
                    last_rx = self.clock.now();
                    if text.starts_with("{\"error\"") {
                        last_error = Some(evidence(&text));
                    } else {
                        self.confirm(&text);
                    }
                    let mut f = self.frame(RawFrameKind::Ws, CH_WS, text);
                    f.receive_time = last_rx;
                    send(f).await?;
                }
                _ = self.clock.sleep_until(deadline) => {
                    let now = self.clock.now();
                    if now.millis_since(last_rx) >= stall {
                        let why = format!("no frame for {} ms", now.millis_since(last_rx));
                        send(close_frame(&why)).await?;
                        return Err(ended(why));
                    }
                    if let Some(at) = resubscribe && now >= at {
                        resubscribe = None;
                        let text = self.subscribe_message(&symbols);
                        self.reset_subs(&symbols);
                        sink.send(Message::Text(text.clone().into())).await.map_err(|e| ended(format!("send failed: {e}")))?;
                        send(self.frame(RawFrameKind::Sent, CH_WS, text)).await?;
                    }
                    if now >= next_ping {
                        next_ping = now.plus_millis(keepalive);
                        // `PING` counts against the message limit like any request.
                        self.messages.reserve();
                        sink.send(Message::Text("PING".into())).await.map_err(|e| ended(format!("send failed: {e}")))?;
                        send(self.frame(RawFrameKind::Sent, CH_WS, "PING".into())).await?;
                    }
                    self.expire_pending();
                }
            }
        }
    }
}

impl MarketProvider for UpbitProvider {
    fn id(&self) -> Provider {
        Provider::Upbit
    }

    fn market(&self) -> Market {
        Market::Crypto
    }

    fn mapper_version(&self) -> &'static str {
        wire::MAPPER_VERSION
    }

    fn parse(&self, frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, ProviderError> {
        wire::parse(frame)
    }

    /// Crypto trades around the clock, so the universe is the current listing whatever `day`.
    async fn universe(&self, _day: Date) -> Result<Vec<UniverseEntry>, ProviderError> {
        Ok(self
            .listed_with_tickers()
            .await?
            .into_iter()
            .map(|(info, t)| UniverseEntry {
                symbol: info.market,
                name: info.korean_name,
                prev_close: t.prev_closing_price,
                traded_value_24h: Some(model::Price::from(t.acc_trade_price_24h)),
            })
            .collect())
    }

    async fn snapshot(&self, symbol: &Symbol) -> Result<RawFrame, ProviderError> {
        match self.ticker_frame(std::slice::from_ref(symbol)).await {
            Err(ProviderError::Request { why, .. }) if why.contains("Code not found") => {
                Err(ProviderError::UnknownSymbol(symbol.clone()))
            }
            other => other,
        }
    }

    async fn stream(
        &self,
        mut subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        if *stop.borrow() {
            return Ok(());
        }
        self.run_stream(&mut subscriptions, &out, &mut stop).await
    }
}
