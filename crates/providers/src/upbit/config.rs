//! The adapter's configuration. Defaults are Upbit's documented quotation limits with a
//! safety margin, so the adapter never relies on the server's 429 to pace itself.

use model::settings::{Checker, Interval, Validate};
use serde::{Deserialize, Serialize};

/// The WebSocket message format requested in the subscribe message (applies to the whole
/// connection). Both are parsed whatever is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WsFormat {
    #[default]
    Default,
    Simple,
}

impl WsFormat {
    pub fn wire_name(self) -> &'static str {
        match self {
            WsFormat::Default => "DEFAULT",
            WsFormat::Simple => "SIMPLE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpbitConfig {
    pub enabled: bool,
    /// REST base including `/v1`.
    pub rest_base: String,
    /// Public quotation WebSocket URL.
    pub ws_base: String,
    pub format: WsFormat,
    /// Quote market the universe is drawn from (`KRW` → `KRW-…` pairs).
    pub quote_currency: String,
    /// Which WS types to subscribe for each symbol.
    pub subscribe_ticker: bool,
    pub subscribe_trade: bool,
    pub subscribe_orderbook: bool,
    /// Orderbook depth requested with the `.N` code suffix: 1, 5, 15 or 30.
    pub orderbook_depth: u8,

    /// Our pace per REST group (`market`, `candle`, `trade`, `ticker`, `orderbook`); the
    /// server allows 10/s per group per IP.
    pub rest_per_second: f64,
    pub rest_burst: u32,
    /// When `Remaining-Req: sec=` falls to this or below, the group is held back for
    /// `remaining_req_pause` per missing request, so we slow down before the server refuses.
    pub remaining_req_threshold: u32,
    pub remaining_req_pause: Interval,
    /// Hold on the whole group after a 429 (too many requests).
    pub penalty_429: Interval,
    /// Hold after a 418 (IP blocked for repeated abuse); the server lengthens the block each time.
    pub penalty_418: Interval,
    /// Retries of a REST call after 429 or 5xx (with the penalty / backoff in between).
    pub max_retries: u32,
    pub retry_backoff: Interval,
    pub request_timeout: Interval,
    /// Markets per `/ticker?markets=` request.
    pub ticker_chunk: u32,

    /// Opening WS connections: the server allows 5/s per IP.
    pub ws_connect_per_second: f64,
    /// Messages we send on a connection: the server allows 5/s and 100/min, so the default
    /// stays under the per-minute cap even when subscriptions change constantly.
    pub ws_messages_per_second: f64,
    pub ws_message_burst: u32,
    /// Wall-clock bound on opening the WebSocket (TCP, TLS and handshake): a connect that
    /// hangs says nothing about market time, so a fast simulated clock does not shorten it.
    pub connect_timeout: Interval,
    /// `PING` is sent this often; the server drops idle connections after 60–120 s.
    pub keepalive: Interval,
    /// No frame at all for this long ends the stream as stalled (2 × keepalive is the
    /// spec's recommendation).
    pub stall_timeout: Interval,
    /// A subscribed code with no data for this long is marked failed: Upbit ignores unknown
    /// codes silently instead of answering with an error.
    pub confirm_timeout: Interval,
    /// Largest WebSocket message or frame accepted (a 30-level orderbook is about 4 KB).
    pub ws_max_message_bytes: usize,
    /// Largest REST response body read (a 200-row candle page is about 60 KB).
    pub max_body_bytes: usize,
}

impl Default for UpbitConfig {
    fn default() -> Self {
        UpbitConfig {
            enabled: false,
            rest_base: "https://api.upbit.com/v1".into(),
            ws_base: "wss://api.upbit.com/websocket/v1".into(),
            format: WsFormat::Default,
            quote_currency: "KRW".into(),
            subscribe_ticker: true,
            subscribe_trade: true,
            subscribe_orderbook: true,
            orderbook_depth: 15,
            rest_per_second: 8.0,
            rest_burst: 1,
            remaining_req_threshold: 1,
            remaining_req_pause: Interval::from_millis(100),
            penalty_429: Interval::from_millis(1_000),
            penalty_418: Interval::from_millis(60_000),
            max_retries: 3,
            retry_backoff: Interval::from_millis(500),
            request_timeout: Interval::from_millis(10_000),
            ticker_chunk: 100,
            ws_connect_per_second: 4.0,
            ws_messages_per_second: 1.5,
            ws_message_burst: 3,
            connect_timeout: Interval::from_millis(10_000),
            keepalive: Interval::from_millis(20_000),
            stall_timeout: Interval::from_millis(45_000),
            confirm_timeout: Interval::from_millis(10_000),
            ws_max_message_bytes: 1 << 20,
            max_body_bytes: 8 << 20,
        }
    }
}

impl Validate for UpbitConfig {
    fn validate(&self, c: &mut Checker) {
        // Plain text only to loopback (the fake server): Upbit publishes no ws:// endpoint.
        if let Some(why) = crate::transport::rest_base_problem(&self.rest_base) {
            c.check(false, "rest_base", why);
        }
        if let Some(why) = crate::transport::ws_base_problem(&self.ws_base, &[]) {
            c.check(false, "ws_base", why);
        }
        c.range("ws_max_message_bytes", self.ws_max_message_bytes, 4096, 64 << 20);
        c.range("max_body_bytes", self.max_body_bytes, 4096, 256 << 20);
        c.check(
            !self.quote_currency.is_empty() && self.quote_currency.bytes().all(|b| b.is_ascii_uppercase()),
            "quote_currency",
            format_args!("{:?} must be an uppercase currency code such as KRW", self.quote_currency),
        );
        c.check(
            self.subscribe_ticker || self.subscribe_trade || self.subscribe_orderbook,
            "subscribe_ticker",
            "at least one of subscribe_ticker, subscribe_trade, subscribe_orderbook must be true",
        );
        c.check(
            [1, 5, 15, 30].contains(&self.orderbook_depth),
            "orderbook_depth",
            format_args!("{} is not one of 1, 5, 15, 30", self.orderbook_depth),
        );
        c.range("rest_per_second", self.rest_per_second, 0.1, 10.0);
        c.range("rest_burst", self.rest_burst, 1, 10);
        c.range("remaining_req_threshold", self.remaining_req_threshold, 0, 9);
        c.range("max_retries", self.max_retries, 0, 10);
        c.range("ticker_chunk", self.ticker_chunk, 1, 500);
        c.range("ws_connect_per_second", self.ws_connect_per_second, 0.1, 5.0);
        c.range("ws_messages_per_second", self.ws_messages_per_second, 0.05, 5.0);
        c.range("ws_message_burst", self.ws_message_burst, 1, 5);
        c.range("connect_timeout", self.connect_timeout, Interval::from_millis(100), Interval::from_millis(300_000));
        c.check(
            self.stall_timeout > self.keepalive,
            "stall_timeout",
            format_args!("{} must be longer than keepalive ({})", self.stall_timeout, self.keepalive),
        );
        c.range("keepalive", self.keepalive, Interval::from_millis(1_000), Interval::from_millis(60_000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cfg: &UpbitConfig) -> Vec<String> {
        let mut c = Checker::default();
        cfg.validate(&mut c);
        c.problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn default_is_valid_and_disabled() {
        let cfg = UpbitConfig::default();
        assert!(!cfg.enabled);
        assert_eq!(keys(&cfg), Vec::<String>::new());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let cfg = UpbitConfig {
            rest_base: "ftp://x".into(),
            orderbook_depth: 7,
            rest_per_second: 50.0,
            stall_timeout: Interval::from_millis(1_000),
            connect_timeout: Interval::from_millis(0),
            ..UpbitConfig::default()
        };
        let k = keys(&cfg);
        for want in ["rest_base", "orderbook_depth", "rest_per_second", "stall_timeout", "connect_timeout"] {
            assert!(k.iter().any(|x| x == want), "{want} missing from {k:?}");
        }
        let plain = UpbitConfig {
            rest_base: "http://api.upbit.com/v1".into(),
            ws_base: "ws://api.upbit.com/websocket/v1".into(),
            ..UpbitConfig::default()
        };
        assert_eq!(keys(&plain), ["rest_base", "ws_base"]);
        let local = UpbitConfig {
            rest_base: "http://127.0.0.1:1/v1".into(),
            ws_base: "ws://127.0.0.1:2/websocket/v1".into(),
            ..UpbitConfig::default()
        };
        assert_eq!(keys(&local), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_are_rejected_and_defaults_fill_in() {
        let cfg: UpbitConfig = serde_json::from_str(r#"{"enabled":true,"format":"simple"}"#).unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.format, WsFormat::Simple);
        assert_eq!(cfg.rest_per_second, 8.0);
        assert!(serde_json::from_str::<UpbitConfig>(r#"{"bogus":1}"#).is_err());
    }
}
