//! REST side of the adapter: one client whose calls go through the shared rate limiter with
//! KIS's error handling (`EGW00201` → penalize and retry; expired token → reissue once; HTTP
//! 429/5xx → back off and retry). Its rooms: [`auth`] (access token and WebSocket approval
//! key) and [`quotations`] (the endpoints a feature uses).

mod auth;
mod quotations;

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::Mutex;

use model::{Clock, Provider, RawFrame, RawFrameKind};

use super::config::{KisConfig, KisCredentials, KisEnv};
use super::token_cache::TokenCache;
use super::wire;
use crate::provider::{ProviderError, evidence};
use crate::ratelimit::RateLimiter;

pub const PATH_TOKEN: &str = "/oauth2/tokenP";
pub const PATH_APPROVAL: &str = "/oauth2/Approval";
pub const QUOTATIONS: &str = "/uapi/domestic-stock/v1/quotations/";

/// Quotation endpoints: (path below `QUOTATIONS`, tr_id, available on the mock domain).
pub mod endpoint {
    pub const PRICE: (&str, &str, bool) = ("inquire-price", "FHKST01010100", true);
    pub const VOLUME_RANK: (&str, &str, bool) = ("volume-rank", "FHPST01710000", false);
}

pub const EGW_RATE: &str = "EGW00201";
pub const EGW_EXPIRED: &str = "EGW00123";
pub const EGW_INVALID: &str = "EGW00121";
pub const EGW_TOKEN_TOO_SOON: &str = "EGW00133";

pub use quotations::RankRow;

use auth::{ApprovalState, TokenState};

pub(crate) struct RestClient {
    cfg: KisConfig,
    creds: KisCredentials,
    clock: Clock,
    http: reqwest::Client,
    limiter: RateLimiter,
    cache: TokenCache,
    token: Mutex<TokenState>,
    approval: Mutex<ApprovalState>,
}

fn req_err(what: &str, why: impl std::fmt::Display) -> ProviderError {
    ProviderError::Request { provider: Provider::Kis, what: what.to_string(), why: why.to_string() }
}

fn encode_query(q: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in q.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                s.push(b as char);
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
    }
    s
}

/// A reqwest error without anything that could carry a secret (the URL has none, but the
/// message is kept short and generic on purpose).
fn http_why(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "transport error".to_string() + &e.status().map(|s| format!(" (HTTP {})", s.as_u16())).unwrap_or_default()
    }
}

/// A credential as a header value marked sensitive (never indexed by HPACK, `Sensitive` in
/// `Debug`); an unusable value is reported by header name only.
fn secret_header(value: &str, name: &str) -> Result<reqwest::header::HeaderValue, ProviderError> {
    crate::transport::sensitive(value)
        .ok_or_else(|| req_err("request", format_args!("the {name} value is not a valid HTTP header value")))
}

impl RestClient {
    pub(crate) fn new(cfg: KisConfig, creds: KisCredentials, clock: Clock) -> Result<Self, ProviderError> {
        let timeout = cfg.request_timeout.get();
        // No redirects (the key headers and the token body stay with KIS), HTTPS unless both
        // endpoints are on loopback (the fake server).
        let http = crate::transport::broker_http(timeout, &[cfg.rest_base(), cfg.master_base.as_str()])
            .map_err(|e| req_err("client", http_why(&e)))?;
        let limiter = RateLimiter::new(clock, cfg.rate(), cfg.burst);
        let cache = TokenCache::new(cfg.token_cache.clone(), &creds);
        Ok(RestClient {
            cfg,
            creds,
            clock,
            http,
            limiter,
            cache,
            token: Mutex::new(TokenState::default()),
            approval: Mutex::new(ApprovalState::default()),
        })
    }

    pub(crate) fn config(&self) -> &KisConfig {
        &self.cfg
    }

    fn frame(&self, kind: RawFrameKind, channel: &str, frame: String) -> RawFrame {
        RawFrame { provider: Provider::Kis, kind, channel: channel.into(), frame, receive_time: self.clock.now() }
    }

    // ---------------------------------------------------------------- quotation calls

    /// One GET through the limiter, with KIS's retry rules. Returns the body of a success
    /// (`rt_cd` "0"); `accept_no_data` also accepts `rt_cd` "7" (search-* "no such item").
    pub(crate) async fn get(
        &self,
        ep: (&str, &str, bool),
        query: &[(&str, &str)],
        accept_no_data: bool,
    ) -> Result<RawFrame, ProviderError> {
        let (path, tr_id, on_mock) = ep;
        if !on_mock && self.cfg.env == KisEnv::Mock {
            return Err(req_err(tr_id, "not available on the mock (모의투자) domain"));
        }
        let url = format!("{}{QUOTATIONS}{path}?{}", self.cfg.rest_base(), encode_query(query));
        let mut reissued = false;
        let mut last_why = String::new();
        for attempt in 0..=self.cfg.max_retries {
            self.limiter.acquire().await;
            let token = self.token().await?;
            let sent = self
                .http
                .get(&url)
                .header("content-type", "application/json; charset=utf-8")
                .header("authorization", secret_header(&format!("Bearer {}", token.expose_secret()), "authorization")?)
                .header("appkey", secret_header(self.creds.key(), "appkey")?)
                .header("appsecret", secret_header(self.creds.secret(), "appsecret")?)
                .header("tr_id", tr_id)
                .header("custtype", &self.cfg.custtype)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last_why = http_why(&e);
                    self.back_off(attempt);
                    continue;
                }
            };
            let status = resp.status();
            let text = match self.body(resp).await {
                Ok(t) => t,
                Err(e) => {
                    last_why = e;
                    self.back_off(attempt);
                    continue;
                }
            };
            let v: Option<Value> = serde_json::from_str(&text).ok();
            let st = v.as_ref().map(wire::rest_status);
            match st.as_ref().map(|s| s.msg_cd.as_str()) {
                // Arrives as HTTP 500 usually, sometimes 200: the body decides.
                Some(EGW_RATE) => {
                    tracing::debug!(tr_id, "kis: EGW00201, holding requests back");
                    self.limiter.penalize(self.cfg.penalty.get());
                    last_why = "rate limit exceeded (EGW00201)".into();
                    continue;
                }
                Some(EGW_EXPIRED | EGW_INVALID) if !reissued => {
                    reissued = true;
                    self.invalidate(&token).await;
                    last_why = "access token refused".into();
                    continue;
                }
                _ => {}
            }
            match st {
                Some(s) if s.rt_cd == "0" || (accept_no_data && s.rt_cd == "7") => {
                    return Ok(self.frame(RawFrameKind::Rest, tr_id, text));
                }
                Some(s) if !s.rt_cd.is_empty() => {
                    return Err(req_err(tr_id, format_args!("HTTP {} {} {}", status.as_u16(), s.msg_cd, s.msg1)));
                }
                _ if status.as_u16() == 429 || status.is_server_error() => {
                    last_why = format!("HTTP {}", status.as_u16());
                    self.back_off(attempt);
                }
                _ => {
                    return Err(req_err(
                        tr_id,
                        format_args!("HTTP {} unexpected body: {}", status.as_u16(), evidence(&text)),
                    ));
                }
            }
        }
        Err(req_err(tr_id, format_args!("gave up after {} retries: {last_why}", self.cfg.max_retries)))
    }

    /// Exponential back-off through the limiter, so every caller slows down, not just this one.
    fn back_off(&self, attempt: u32) {
        let base = self.cfg.server_error_backoff.get();
        self.limiter.penalize(base.saturating_mul(1u32 << attempt.min(6)));
    }

    /// A response body as text, within `max_body_bytes`.
    async fn body(&self, resp: reqwest::Response) -> Result<String, String> {
        let key = "providers.kis.max_body_bytes";
        crate::limits::read_text(resp, self.cfg.max_body_bytes, key).await.map_err(|e| e.why(http_why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_percent_encoded() {
        assert_eq!(encode_query(&[("A", "005930"), ("B", ""), ("C", "a b")]), "A=005930&B=&C=a%20b");
    }
}
