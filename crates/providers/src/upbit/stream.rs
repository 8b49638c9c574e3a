//! Upbit's hooks to the shared WebSocket session loop ([`crate::ws_session`]): paced
//! connects, one subscribe message listing every code (Upbit has no unsubscribe, so a change
//! re-sends the whole set, paced by the message limit), `PING` every `keepalive`, and the
//! first data frame of a code as its only confirmation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{Clock, Provider, Symbol, UtcTime};

use super::config::UpbitConfig;
use super::wire::CH_WS;
use crate::provider::{ProviderError, evidence};
use crate::ratelimit::RateLimiter;
use crate::ws_session::{Changes, Endpoint, Incoming, Outgoing, Venue};

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

/// What outlives one `stream` call: the pacing of connects and sent messages, and the state
/// of each subscribed code on the current (or last) connection.
pub(crate) struct StreamState {
    connects: RateLimiter,
    messages: RateLimiter,
    subs: Mutex<HashMap<Box<str>, (SubState, UtcTime)>>,
    tickets: AtomicU64,
}

impl StreamState {
    pub(crate) fn new(cfg: &UpbitConfig, clock: Clock) -> Self {
        StreamState {
            connects: RateLimiter::new(clock, cfg.ws_connect_per_second, 1),
            messages: RateLimiter::new(clock, cfg.ws_messages_per_second, cfg.ws_message_burst),
            subs: Mutex::new(HashMap::new()),
            tickets: AtomicU64::new(0),
        }
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, (SubState, UtcTime)>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of each subscribed code, by code.
    pub(crate) fn subscription_states(&self) -> Vec<(Symbol, SubState)> {
        let mut v: Vec<(Symbol, SubState)> =
            self.subs().iter().filter_map(|(k, v)| Symbol::new(k).ok().map(|s| (s, v.0))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
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

/// One `stream` call's hooks.
pub(crate) struct UpbitVenue<'a> {
    cfg: &'a UpbitConfig,
    clock: Clock,
    state: &'a StreamState,
    /// The codes of the current connection's subscription (`None` before its first).
    symbols: Option<Vec<Symbol>>,
    /// The subscription to (re)send, and when the message limiter lets it go.
    resubscribe: Option<UtcTime>,
    next_ping: UtcTime,
}

impl<'a> UpbitVenue<'a> {
    pub(crate) fn new(cfg: &'a UpbitConfig, clock: Clock, state: &'a StreamState) -> Self {
        UpbitVenue { cfg, clock, state, symbols: None, resubscribe: None, next_ping: clock.now() }
    }

    fn subscribe_message(&self, symbols: &[Symbol]) -> String {
        let n = self.state.tickets.fetch_add(1, Ordering::Relaxed);
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
        let mut subs = self.state.subs();
        subs.clear();
        for s in symbols {
            subs.insert(s.as_str().into(), (SubState::Pending, now));
        }
    }

    fn confirm(&self, text: &str) {
        if let Some(code) = frame_code(text) {
            let mut subs = self.state.subs();
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
        for (code, e) in self.state.subs().iter_mut() {
            if e.0 == SubState::Pending && now.millis_since(e.1) >= limit {
                tracing::warn!(code = %code, "upbit subscription got no data; marking failed");
                *e = (SubState::Failed, now);
            }
        }
    }
}

impl Venue for UpbitVenue<'_> {
    const PROVIDER: Provider = Provider::Upbit;

    /// Waits for the connect limiter (the server allows 5 connects a second per IP).
    async fn prepare(&mut self) -> Result<Endpoint, ProviderError> {
        self.state.connects.acquire().await;
        Ok(Endpoint {
            url: self.cfg.ws_base.clone(),
            channel: CH_WS,
            connect_timeout: self.cfg.connect_timeout.get(),
            max_message_bytes: self.cfg.ws_max_message_bytes,
            idle_timeout: self.cfg.stall_timeout,
            idle_key: "providers.upbit.stall_timeout",
        })
    }

    fn opened(&mut self) {
        self.symbols = None;
        self.resubscribe = None;
        self.next_ping = self.clock.now().plus_millis(self.cfg.keepalive.as_millis() as i64);
    }

    /// Upbit has no unsubscribe and rejects empty codes: a change schedules the whole new set
    /// for when the message limiter allows (sent by `tick`), and an empty set keeps the last
    /// subscription until the next non-empty one.
    fn subscribe(&mut self, symbols: &[Symbol]) -> Changes {
        match &self.symbols {
            None => {
                self.reset_subs(symbols);
                if !symbols.is_empty() {
                    self.resubscribe = Some(self.state.messages.reserve());
                }
                self.symbols = Some(symbols.to_vec());
            }
            Some(current) => {
                if current != symbols && !symbols.is_empty() {
                    self.symbols = Some(symbols.to_vec());
                    self.resubscribe.get_or_insert_with(|| self.state.messages.reserve());
                }
            }
        }
        Changes::default()
    }

    fn classify(&mut self, text: &str, _binary: bool) -> Incoming {
        let channel = CH_WS.to_string();
        if text.starts_with("{\"error\"") {
            return Incoming::Error { channel, why: evidence(text), fatal: false };
        }
        self.confirm(text);
        Incoming::Data { channel }
    }

    /// The next `PING`, the paced subscribe, and at least once a second the expiry of codes
    /// that never confirmed.
    fn next_tick(&self) -> Option<UtcTime> {
        let mut at = self.next_ping.min(self.clock.now().plus_millis(1_000));
        if let Some(t) = self.resubscribe {
            at = at.min(t);
        }
        Some(at)
    }

    fn tick(&mut self, now: UtcTime) -> Vec<Outgoing> {
        let mut due = Vec::new();
        if let Some(at) = self.resubscribe
            && now >= at
        {
            self.resubscribe = None;
            let symbols = self.symbols.clone().unwrap_or_default();
            due.push(Outgoing::plain(CH_WS, self.subscribe_message(&symbols)));
            self.reset_subs(&symbols);
        }
        if now >= self.next_ping {
            self.next_ping = now.plus_millis(self.cfg.keepalive.as_millis() as i64);
            // `PING` counts against the message limit like any request.
            self.state.messages.reserve();
            due.push(Outgoing::plain(CH_WS, "PING"));
        }
        self.expire_pending();
        due
    }

    async fn closed(&mut self) {}
}
