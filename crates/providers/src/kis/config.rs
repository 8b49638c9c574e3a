//! `KisConfig` (the `providers.kis` section) and the credentials, which come from the
//! environment only and never reach Debug output, logs, errors or the archive.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Validate};

/// Real (실전) or mock (모의투자) domains; they need separate key pairs (spec §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KisEnv {
    #[default]
    Real,
    Mock,
}

impl KisEnv {
    pub fn default_rest_base(self) -> &'static str {
        match self {
            KisEnv::Real => "https://openapi.koreainvestment.com:9443",
            KisEnv::Mock => "https://openapivts.koreainvestment.com:29443",
        }
    }
    pub fn default_ws_base(self) -> &'static str {
        match self {
            KisEnv::Real => "ws://ops.koreainvestment.com:21000",
            KisEnv::Mock => "ws://ops.koreainvestment.com:31000",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            KisEnv::Real => "real",
            KisEnv::Mock => "mock",
        }
    }
}

/// A value that differs between the real and the mock domain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerEnv<T> {
    pub real: T,
    pub mock: T,
}

impl<T: Copy> PerEnv<T> {
    pub fn get(&self, env: KisEnv) -> T {
        match env {
            KisEnv::Real => self.real,
            KisEnv::Mock => self.mock,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KisConfig {
    pub enabled: bool,
    pub env: KisEnv,
    /// Overrides the spec's REST base for `env` (the fake server, a proxy).
    pub rest_base: Option<String>,
    /// Overrides the spec's WebSocket base for `env`.
    pub ws_base: Option<String>,
    /// The official samples connect to `<ws base>/tryitout`; the server ignores the path.
    pub ws_path: String,
    /// Folder holding `kospi_code.mst.zip` and `kosdaq_code.mst.zip`.
    pub master_base: String,
    /// Master-file group codes kept in the universe (`ST` shares; `EF` ETFs, `EN` ETNs, …).
    pub universe_groups: Vec<String>,
    /// Where the access token is cached between runs (KIS allows about one issuance a day),
    /// encrypted under the app secret. A relative path is under the data directory
    /// ([`KisConfig::token_cache_under`]).
    pub token_cache: PathBuf,
    /// `P` individual, `B` corporate.
    pub custtype: String,
    /// REST calls per second (KIS notice 2026-04-20: 18 real, 1 mock).
    pub rate_per_second: PerEnv<f64>,
    pub burst: u32,
    /// How long every request is held back after `EGW00201`.
    pub penalty: Interval,
    /// Back-off after an HTTP 429/5xx that is not a KIS error body.
    pub server_error_backoff: Interval,
    /// Retries of one REST call after rate-limit or server errors before giving up.
    pub max_retries: u32,
    /// Wall-clock timeout of one HTTP request or WebSocket connect.
    pub request_timeout: Interval,
    /// A cached token is replaced this long before it expires.
    pub token_refresh_before: Interval,
    /// KIS answers `EGW00133` to a second token request within a minute.
    pub token_min_interval: Interval,
    /// An approval key older than this is reissued before a new WebSocket session.
    pub approval_max_age: Interval,
    /// KIS caps approval issuance at 1 call/s.
    pub approval_min_interval: Interval,
    /// Registrations per WebSocket session, summed over TRs (spec §6: 41).
    pub max_registrations: u32,
    /// Slots (the first in priority order) that also get the full 10-level book
    /// (`H0STASP0`), each spending a second registration. Every slot already has level-1
    /// quotes from `H0STCNT0`; `tracks.scalp.slots` + this must fit `max_registrations`.
    pub orderbook_slots: u32,
    /// Largest WebSocket message or frame accepted (a 999-record H0STCNT0 frame is about
    /// 300 KB).
    pub ws_max_message_bytes: usize,
    /// Largest REST response body read, the master-file zips included.
    pub max_body_bytes: usize,
    /// Largest `.mst` unzipped from a master file (the KOSPI master is about 2 MB).
    pub max_master_bytes: usize,
    /// With nothing received for this long the session is treated as dead. KIS sends
    /// PINGPONG every 10–20 s, so silence well beyond that means a stalled server.
    pub ws_idle_timeout: Interval,
}

impl Default for KisConfig {
    fn default() -> Self {
        KisConfig {
            enabled: false,
            env: KisEnv::Real,
            rest_base: None,
            ws_base: None,
            ws_path: "/tryitout".into(),
            master_base: "https://new.real.download.dws.co.kr/common/master/".into(),
            universe_groups: vec!["ST".into()],
            token_cache: PathBuf::from("state/kis_token.json"),
            custtype: "P".into(),
            rate_per_second: PerEnv { real: 18.0, mock: 1.0 },
            burst: 1,
            penalty: Interval::from_millis(1000),
            server_error_backoff: Interval::from_millis(1000),
            max_retries: 5,
            request_timeout: Interval::from_millis(10_000),
            token_refresh_before: Interval::from_millis(10 * 60_000),
            token_min_interval: Interval::from_millis(61_000),
            approval_max_age: Interval::from_millis(23 * 3_600_000),
            approval_min_interval: Interval::from_millis(1100),
            max_registrations: 41,
            orderbook_slots: 0,
            ws_idle_timeout: Interval::from_millis(60_000),
            ws_max_message_bytes: 1 << 20,
            max_body_bytes: 8 << 20,
            max_master_bytes: 32 << 20,
        }
    }
}

impl KisConfig {
    pub fn rest_base(&self) -> &str {
        self.rest_base.as_deref().unwrap_or(self.env.default_rest_base()).trim_end_matches('/')
    }
    pub fn ws_url(&self) -> String {
        let base = self.ws_base.as_deref().unwrap_or(self.env.default_ws_base()).trim_end_matches('/');
        format!("{base}{}", self.ws_path)
    }
    pub fn rate(&self) -> f64 {
        self.rate_per_second.get(self.env)
    }
    /// `token_cache` resolved against the data directory (an absolute path stays as it is).
    pub fn token_cache_under(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.token_cache)
    }
}

impl Validate for KisConfig {
    fn validate(&self, c: &mut Checker) {
        // Credentials travel to the REST bases and the approval key to the WebSocket: plain
        // text only to loopback (the fake server), or to KIS's published ws:// endpoint.
        use crate::transport::{KIS_PLAINTEXT_WS, rest_base_problem, ws_base_problem};
        let base = |c: &mut Checker, key: &str, url: &str, problem: Option<String>| {
            let why =
                if url.contains(char::is_whitespace) { Some(format!("{url:?} contains whitespace")) } else { problem };
            if let Some(why) = why {
                c.check(false, key, why);
            }
        };
        if let Some(b) = &self.rest_base {
            base(c, "rest_base", b, rest_base_problem(b));
        }
        if let Some(b) = &self.ws_base {
            base(c, "ws_base", b, ws_base_problem(b, KIS_PLAINTEXT_WS));
        }
        base(c, "master_base", &self.master_base, rest_base_problem(&self.master_base));
        c.check(self.ws_path.is_empty() || self.ws_path.starts_with('/'), "ws_path", "must be empty or start with '/'");
        c.check(!self.token_cache.as_os_str().is_empty(), "token_cache", "must be a file path");
        c.check(self.custtype == "P" || self.custtype == "B", "custtype", "must be P (individual) or B (corporate)");
        c.section("rate_per_second", |c| {
            c.range("real", self.rate_per_second.real, 0.01, 1000.0);
            c.range("mock", self.rate_per_second.mock, 0.01, 1000.0);
        });
        c.range("burst", self.burst, 1, 100);
        c.range("max_retries", self.max_retries, 0, 100);
        c.range("max_registrations", self.max_registrations, 1, 1000);
        c.range("orderbook_slots", self.orderbook_slots, 0, self.max_registrations);
        c.range("ws_max_message_bytes", self.ws_max_message_bytes, 4096, 64 << 20);
        c.range("max_body_bytes", self.max_body_bytes, 4096, 256 << 20);
        c.range("max_master_bytes", self.max_master_bytes, 4096, 1 << 30);
        c.check(
            self.token_refresh_before < Interval::from_millis(12 * 3_600_000),
            "token_refresh_before",
            "must be under 12h (tokens live 24h)",
        );
    }
}

/// App key and secret, read from `KIS_APP_KEY` / `KIS_APP_SECRET`. Market data needs no
/// account number (only orders and execution notices do).
#[derive(Clone)]
pub struct KisCredentials {
    pub(crate) app_key: SecretString,
    pub(crate) app_secret: SecretString,
}

pub const ENV_APP_KEY: &str = "KIS_APP_KEY";
pub const ENV_APP_SECRET: &str = "KIS_APP_SECRET";

impl KisCredentials {
    pub fn new(app_key: SecretString, app_secret: SecretString) -> Self {
        KisCredentials { app_key, app_secret }
    }

    /// Errors name the missing variable, never a value.
    pub fn from_env() -> Result<Self, String> {
        let get = |name: &str| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            _ => Err(format!("environment variable {name} is not set")),
        };
        Ok(KisCredentials { app_key: get(ENV_APP_KEY)?, app_secret: get(ENV_APP_SECRET)? })
    }

    pub(crate) fn key(&self) -> &str {
        self.app_key.expose_secret()
    }
    pub(crate) fn secret(&self) -> &str {
        self.app_secret.expose_secret()
    }
}

impl fmt::Debug for KisCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KisCredentials { app_key: ***, app_secret: *** }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec_and_validate() {
        let cfg = KisConfig::default();
        assert_eq!(cfg.rate(), 18.0);
        assert_eq!(KisConfig { env: KisEnv::Mock, ..cfg.clone() }.rate(), 1.0);
        assert_eq!(cfg.ws_url(), "ws://ops.koreainvestment.com:21000/tryitout");
        let mut c = Checker::default();
        cfg.validate(&mut c);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cfg = KisConfig { custtype: "X".into(), burst: 0, ..KisConfig::default() };
        let mut c = Checker::default();
        c.section("kis", |c| cfg.validate(c));
        let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["kis.custtype", "kis.burst"]);
    }

    #[test]
    fn plain_text_endpoints_are_refused_off_loopback_except_kis_published_ws() {
        let problems = |cfg: KisConfig| {
            let mut c = Checker::default();
            c.section("kis", |c| cfg.validate(c));
            c.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()
        };
        let ok = KisConfig {
            rest_base: Some("http://127.0.0.1:9443".into()),
            ws_base: Some("ws://ops.koreainvestment.com:31000".into()),
            master_base: "http://localhost:8080/master/".into(),
            ..KisConfig::default()
        };
        assert_eq!(problems(ok), Vec::<String>::new());
        let bad = KisConfig {
            rest_base: Some("http://openapi.koreainvestment.com:9443".into()),
            ws_base: Some("ws://relay.example.com:21000".into()),
            master_base: "http://new.real.download.dws.co.kr/common/master/".into(),
            ..KisConfig::default()
        };
        let p = problems(bad);
        assert!(p[0].starts_with("kis.rest_base:") && p[0].contains("https://"), "{p:?}");
        assert!(p[1].starts_with("kis.ws_base:") && p[1].contains("wss://"), "{p:?}");
        assert!(p[2].starts_with("kis.master_base:"), "{p:?}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let r: Result<KisConfig, _> = serde_json::from_str(r#"{"rate_per_second":{"real":18,"mock":1},"oops":1}"#);
        assert!(r.unwrap_err().to_string().contains("oops"));
        let ok: KisConfig = serde_json::from_str(r#"{"env":"mock","penalty":"2s"}"#).unwrap();
        assert_eq!(ok.env, KisEnv::Mock);
        assert_eq!(ok.penalty.as_millis(), 2000);
    }
}
