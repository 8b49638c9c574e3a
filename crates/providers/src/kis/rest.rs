//! REST side of the adapter: access token (cached on disk, encrypted: [`super::token_cache`];
//! reissued only within KIS's issuance rules), WebSocket approval key, and quotation calls
//! through the shared rate limiter with KIS's error handling (`EGW00201` → penalize and
//! retry; expired token → reissue once; HTTP 429/5xx → back off and retry).

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;

use model::{Clock, Price, Provider, Qty, RawFrame, RawFrameKind, Snapshot, Symbol, UtcTime};

use super::config::{KisConfig, KisCredentials, KisEnv};
use super::token_cache::{CachedToken, Load, TokenCache};
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

struct Token {
    value: SecretString,
    expires_at: UtcTime,
}

#[derive(Default)]
struct TokenState {
    current: Option<Token>,
    /// Last tokenP call (from the cache file across processes), for the 1/min rule.
    last_attempt: Option<UtcTime>,
}

impl TokenState {
    fn note_issue(&mut self, at: UtcTime) {
        self.last_attempt = Some(self.last_attempt.map_or(at, |a| a.max(at)));
    }
}

struct Approval {
    key: SecretString,
    issued_at: UtcTime,
}

#[derive(Default)]
struct ApprovalState {
    current: Option<Approval>,
    last_attempt: Option<UtcTime>,
}

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

    // ---------------------------------------------------------------- access token

    fn usable(&self, expires_at: UtcTime) -> bool {
        let margin = self.cfg.token_refresh_before.as_millis() as i64;
        expires_at.millis_since(self.clock.now()) > margin
    }

    /// A valid access token: the one in memory, else the cached one, else a new one issued
    /// no sooner than `token_min_interval` after the previous issuance.
    pub(crate) async fn token(&self) -> Result<SecretString, ProviderError> {
        let mut st = self.token.lock().await;
        if let Some(t) = &st.current
            && self.usable(t.expires_at)
        {
            return Ok(t.value.clone());
        }
        match self.cache.load() {
            Load::Found(c) => {
                st.note_issue(c.issued_at);
                if c.rest_base == self.cfg.rest_base() && self.usable(c.expires_at) {
                    st.current = Some(Token { value: c.access_token.clone(), expires_at: c.expires_at });
                    return Ok(c.access_token);
                }
            }
            // The file's issue time is unauthenticated. A past one is believed: were it wrong,
            // the worst is one call too early, which KIS refuses with EGW00133 and the loop
            // below waits out. Without one (or with one in the future) the last issuance may
            // have been a moment ago, so the next call waits one full interval, never longer.
            Load::Discarded { issued_at_hint } => {
                let now = self.clock.now();
                st.note_issue(issued_at_hint.filter(|t| *t <= now).unwrap_or(now));
            }
            Load::Missing => {}
        }
        let min = self.cfg.token_min_interval.get();
        for _ in 0..=self.cfg.max_retries {
            if let Some(last) = st.last_attempt {
                self.clock.sleep_until(last.plus(min)).await;
            }
            st.last_attempt = Some(self.clock.now());
            match self.issue_token().await? {
                Some(t) => {
                    let value = t.value.clone();
                    st.current = Some(t);
                    return Ok(value);
                }
                // EGW00133: issued too recently (perhaps by another process); wait a minute.
                None => continue,
            }
        }
        Err(req_err("tokenP", "token issuance kept being refused (EGW00133)"))
    }

    async fn issue_token(&self) -> Result<Option<Token>, ProviderError> {
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "appkey": self.creds.key(),
            "appsecret": self.creds.secret(),
        })
        .to_string();
        let url = format!("{}{PATH_TOKEN}", self.cfg.rest_base());
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=UTF-8")
            .header("accept", "text/plain")
            .body(body)
            .send()
            .await
            .map_err(|e| req_err("tokenP", http_why(&e)))?;
        let status = resp.status();
        let text = self.body(resp).await.map_err(|e| req_err("tokenP", e))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = v.get("error_code").and_then(Value::as_str).unwrap_or_default();
        if code == EGW_TOKEN_TOO_SOON {
            return Ok(None);
        }
        let (Some(tok), Some(secs)) =
            (v.get("access_token").and_then(Value::as_str), v.get("expires_in").and_then(Value::as_i64))
        else {
            // The body of a refusal names the problem without echoing credentials.
            let why = v.get("error_description").and_then(Value::as_str).unwrap_or("no access_token in the answer");
            return Err(req_err("tokenP", format_args!("HTTP {} {code} {why}", status.as_u16())));
        };
        let now = self.clock.now();
        let expires_at = now.plus_secs(secs);
        let value = SecretString::from(tok.to_string());
        let cached = CachedToken {
            access_token: value.clone(),
            expires_at,
            issued_at: now,
            rest_base: self.cfg.rest_base().to_string(),
        };
        if let Err(e) = self.cache.save(&cached) {
            tracing::warn!(path = %self.cache.path().display(), error = %e, "kis: could not write the token cache");
        }
        tracing::info!(expires_at = %expires_at, "kis: access token issued");
        Ok(Some(Token { value, expires_at }))
    }

    /// Drops a token the server refused, so the next call issues a new one.
    async fn invalidate(&self, used: &SecretString) {
        let mut st = self.token.lock().await;
        if st.current.as_ref().is_some_and(|t| t.value.expose_secret() == used.expose_secret()) {
            st.current = None;
        }
        if let Load::Found(c) = self.cache.load()
            && c.access_token.expose_secret() == used.expose_secret()
        {
            self.cache.remove();
        }
    }

    // ---------------------------------------------------------------- approval key

    /// The WebSocket approval key, reissued when older than `approval_max_age` or after
    /// the server refused it.
    pub(crate) async fn approval_key(&self) -> Result<SecretString, ProviderError> {
        let mut st = self.approval.lock().await;
        let max_age = self.cfg.approval_max_age.as_millis() as i64;
        if let Some(a) = &st.current
            && self.clock.now().millis_since(a.issued_at) < max_age
        {
            return Ok(a.key.clone());
        }
        if let Some(last) = st.last_attempt {
            self.clock.sleep_until(last.plus(self.cfg.approval_min_interval.get())).await;
        }
        st.last_attempt = Some(self.clock.now());
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "appkey": self.creds.key(),
            "secretkey": self.creds.secret(),
        })
        .to_string();
        let url = format!("{}{PATH_APPROVAL}", self.cfg.rest_base());
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| req_err("Approval", http_why(&e)))?;
        let status = resp.status();
        let text = self.body(resp).await.map_err(|e| req_err("Approval", e))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let Some(key) = v.get("approval_key").and_then(Value::as_str) else {
            let code = v.get("error_code").or(v.get("msg_cd")).and_then(Value::as_str).unwrap_or_default();
            return Err(req_err("Approval", format_args!("HTTP {} {code}", status.as_u16())));
        };
        let key = SecretString::from(key.to_string());
        st.current = Some(Approval { key: key.clone(), issued_at: self.clock.now() });
        Ok(key)
    }

    pub(crate) async fn forget_approval(&self) {
        self.approval.lock().await.current = None;
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
}

// -------------------------------------------------------------------- typed results

fn s<'a>(o: &'a Value, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or_default().trim()
}
fn p(o: &Value, k: &str) -> Result<Price, String> {
    s(o, k).parse().map_err(|_| format!("{k} {:?} is not a number", s(o, k)))
}
fn qt(o: &Value, k: &str) -> Result<Qty, String> {
    s(o, k).parse().map_err(|_| format!("{k} {:?} is not a number", s(o, k)))
}
fn body_of(f: &RawFrame) -> Result<Value, ProviderError> {
    serde_json::from_str(&f.frame).map_err(|e| malformed(f, e))
}
fn malformed(f: &RawFrame, why: impl std::fmt::Display) -> ProviderError {
    ProviderError::Malformed { provider: Provider::Kis, why: why.to_string(), frame: evidence(&f.frame) }
}
fn rows(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankRow {
    pub rank: u32,
    pub symbol: Symbol,
    pub name: String,
    pub price: Price,
    pub volume: Qty,
    pub value: Qty,
}

impl RestClient {
    pub(crate) async fn inquire_price(&self, sym: &Symbol) -> Result<(RawFrame, Snapshot), ProviderError> {
        let f = self
            .get(endpoint::PRICE, &[("FID_COND_MRKT_DIV_CODE", "J"), ("FID_INPUT_ISCD", sym.as_str())], false)
            .await?;
        let snap = wire::snapshot_body(&f.frame).map_err(|e| malformed(&f, e))?;
        Ok((f, snap))
    }

    pub(crate) async fn volume_rank(&self) -> Result<(RawFrame, Vec<RankRow>), ProviderError> {
        let q = [
            ("FID_COND_MRKT_DIV_CODE", "J"),
            ("FID_COND_SCR_DIV_CODE", "20171"),
            ("FID_INPUT_ISCD", "0000"),
            ("FID_DIV_CLS_CODE", "0"),
            ("FID_BLNG_CLS_CODE", "0"),
            ("FID_TRGT_CLS_CODE", "111111111"),
            ("FID_TRGT_EXLS_CLS_CODE", "0000000000"),
            ("FID_INPUT_PRICE_1", ""),
            ("FID_INPUT_PRICE_2", ""),
            ("FID_VOL_CNT", ""),
            ("FID_INPUT_DATE_1", ""),
        ];
        let f = self.get(endpoint::VOLUME_RANK, &q, false).await?;
        let v = body_of(&f)?;
        let out = rows(&v, "output")
            .iter()
            .map(|r| {
                Ok(RankRow {
                    rank: s(r, "data_rank").parse().map_err(|_| "bad data_rank".to_string())?,
                    symbol: wire::symbol(s(r, "mksc_shrn_iscd"))?,
                    name: s(r, "hts_kor_isnm").to_string(),
                    price: p(r, "stck_prpr")?,
                    volume: qt(r, "acml_vol")?,
                    value: qt(r, "acml_tr_pbmn")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| malformed(&f, e))?;
        Ok((f, out))
    }

    /// A master `.mst.zip` from `master_base` (no auth, not rate limited by KIS).
    pub(crate) async fn master_zip(&self, file: &str) -> Result<Vec<u8>, ProviderError> {
        let base = self.cfg.master_base.trim_end_matches('/');
        let url = format!("{base}/{file}.zip");
        let resp = self.http.get(url).send().await.map_err(|e| req_err(file, http_why(&e)))?;
        if !resp.status().is_success() {
            return Err(req_err(file, format_args!("HTTP {}", resp.status().as_u16())));
        }
        let key = "providers.kis.max_body_bytes";
        crate::limits::read_body(resp, self.cfg.max_body_bytes, key).await.map_err(|e| req_err(file, e.why(http_why)))
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
