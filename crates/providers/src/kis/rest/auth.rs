//! The access token (cached on disk, encrypted: [`crate::kis::token_cache`]; reissued only
//! within KIS's issuance rules) and the WebSocket approval key.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use model::UtcTime;

use super::{EGW_TOKEN_TOO_SOON, PATH_APPROVAL, PATH_TOKEN, RestClient, http_why, req_err};
use crate::kis::token_cache::{CachedToken, Load};
use crate::provider::ProviderError;

struct Token {
    value: SecretString,
    expires_at: UtcTime,
}

#[derive(Default)]
pub(super) struct TokenState {
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
pub(super) struct ApprovalState {
    current: Option<Approval>,
    last_attempt: Option<UtcTime>,
}

impl RestClient {
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
    pub(super) async fn invalidate(&self, used: &SecretString) {
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
}
