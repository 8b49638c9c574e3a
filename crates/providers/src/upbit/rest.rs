//! Upbit's public quotation REST API. Calls are paced per rate-limit group on the `Clock`
//! and slow down as `Remaining-Req` runs out; a 429 holds the group back and retries, a 418
//! (blocked) holds it back longer and fails. Every success is returned as the raw frame the
//! engine archives, with a typed reading beside it where the adapter needs one.

use std::collections::HashMap;

use model::{Clock, Provider, RawFrame, RawFrameKind, Symbol};

use super::config::UpbitConfig;
use super::wire::{self, MarketInfo, Ticker};
use crate::provider::{ProviderError, evidence};
use crate::ratelimit::RateLimiter;

/// Upbit's quotation rate-limit groups the recorder calls (spec §3); each has its own
/// budget at Upbit. (Candles, trades and order books are served by the fake for outside
/// clients; no feature of ours reads them over REST.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Market = 0,
    Ticker = 1,
}

pub(crate) struct RestClient {
    cfg: UpbitConfig,
    clock: Clock,
    http: reqwest::Client,
    limiters: [RateLimiter; 2],
}

fn request_err(what: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::Request { provider: Provider::Upbit, what: what.to_string(), why: why.into() }
}

/// `group=ticker; min=1800; sec=9` → 9.
fn remaining_sec(h: &str) -> Option<u32> {
    h.split(';').find_map(|p| p.trim().strip_prefix("sec=")).and_then(|v| v.trim().parse().ok())
}

impl RestClient {
    pub(crate) fn new(cfg: UpbitConfig, clock: Clock) -> Result<Self, ProviderError> {
        // No redirects, HTTPS unless the endpoint is on loopback (the fake server).
        let http = crate::transport::broker_http(cfg.request_timeout.get(), &[cfg.rest_base.as_str()])
            .map_err(|e| request_err("client", e.to_string()))?;
        let rl = || RateLimiter::new(clock, cfg.rest_per_second, cfg.rest_burst);
        Ok(RestClient { limiters: [rl(), rl()], cfg, clock, http })
    }

    pub(crate) fn config(&self) -> &UpbitConfig {
        &self.cfg
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
                200 => {
                    let receive_time = self.clock.now();
                    return Ok(RawFrame {
                        provider: Provider::Upbit,
                        kind: RawFrameKind::Rest,
                        channel: channel.to_string(),
                        frame: body,
                        receive_time,
                    });
                }
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

    pub(crate) async fn market_all_frame(&self) -> Result<RawFrame, ProviderError> {
        self.get(Group::Market, "/market/all?is_details=true", wire::CH_MARKET_ALL).await
    }

    pub(crate) async fn market_all(&self) -> Result<Vec<MarketInfo>, ProviderError> {
        wire::parse_market_all(&self.market_all_frame().await?.frame)
    }

    /// `/ticker` for up to `ticker_chunk` markets, as the raw frame.
    pub(crate) async fn ticker_frame(&self, markets: &[Symbol]) -> Result<RawFrame, ProviderError> {
        let list: Vec<&str> = markets.iter().map(Symbol::as_str).collect();
        self.get(Group::Ticker, &format!("/ticker?markets={}", list.join(",")), wire::CH_TICKER).await
    }

    /// Typed tickers for any number of markets (requested in chunks).
    pub(crate) async fn tickers(&self, markets: &[Symbol]) -> Result<Vec<Ticker>, ProviderError> {
        let mut out = Vec::with_capacity(markets.len());
        for chunk in markets.chunks(self.cfg.ticker_chunk.max(1) as usize) {
            out.extend(wire::parse_tickers(&self.ticker_frame(chunk).await?.frame)?);
        }
        Ok(out)
    }

    /// The quote market's pairs with their tickers: what the engine's crypto universe filter
    /// (quote market, 24 h traded value) ranks.
    pub(crate) async fn listed_with_tickers(&self) -> Result<Vec<(MarketInfo, Ticker)>, ProviderError> {
        let prefix = format!("{}-", self.cfg.quote_currency);
        let infos: Vec<MarketInfo> =
            self.market_all().await?.into_iter().filter(|m| m.market.as_str().starts_with(&prefix)).collect();
        let symbols: Vec<Symbol> = infos.iter().map(|m| m.market.clone()).collect();
        let mut tickers: HashMap<Symbol, Ticker> =
            self.tickers(&symbols).await?.into_iter().map(|t| (t.market.clone(), t)).collect();
        Ok(infos.into_iter().filter_map(|i| tickers.remove(&i.market).map(|t| (i, t))).collect())
    }
}
