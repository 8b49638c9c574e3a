//! A loopback KIS server: REST (axum) and WebSocket (tokio-tungstenite, its own listener)
//! at the real URL paths, driven by the seeded sim market, validating what the real server
//! validates and answering with the real error shapes (spec §9). Faults are switched at run
//! time through [`FaultSwitch`]; [`Counters`] let tests see what the server saw.

mod master;
mod records;
mod rest;
mod ws;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use model::settings::Interval;
use model::{Clock, UtcTime};

use secrecy::{ExposeSecret, SecretString};

use super::config::{ENV_APP_KEY, ENV_APP_SECRET, KisCredentials, KisEnv};
use crate::sim::SimMarket;

pub use master::{MasterBoard, build_master_line, zip_master};
pub use records::{book_record, trade_record};

#[derive(Debug, Clone)]
pub struct FakeKisConfig {
    pub env: KisEnv,
    pub app_key: String,
    pub app_secret: String,
    /// Token bucket per app key: refill per second, capacity `rate_per_second`.
    pub rate_per_second: f64,
    pub token_lifetime: Interval,
    /// A repeat tokenP call within this window returns the same token.
    pub token_reuse_window: Interval,
    /// A repeat tokenP call within this window is refused with `EGW00133`.
    pub token_min_interval: Interval,
    pub approval_min_interval: Interval,
    pub max_registrations: usize,
    pub ping_interval: Interval,
    /// The session is closed when no PINGPONG echo (text or Pong) arrives for this long.
    pub pong_timeout: Interval,
    /// How often subscribed symbols' new events are pushed.
    pub push_interval: Interval,
    /// H0STCNT0 record width (46 before 2026-09-14, 47 after).
    pub trade_width: usize,
    /// H0STASP0 record width (59, 62 or 63).
    pub book_width: usize,
    /// Most trade records batched into one frame.
    pub batch_max: usize,
    /// `msg_cd` of the search-* "no data" answer (unconfirmed in public sources).
    pub no_data_msg_cd: String,
    /// Most rows of one daily-chart answer (spec §3.3: 100).
    pub daily_rows: usize,
    /// Most rows of one minute-chart answer (spec §3.4: 30).
    pub minute_rows: usize,
    /// Where REST and WebSocket listen; port 0 picks a free one.
    pub rest_bind: SocketAddr,
    pub ws_bind: SocketAddr,
    /// KRX closed days besides weekends: `chk-holiday` answers with them and the daily
    /// charts skip them.
    pub holidays: Vec<jiff::civil::Date>,
}

impl FakeKisConfig {
    pub fn new(env: KisEnv, app_key: &str, app_secret: &str) -> Self {
        FakeKisConfig {
            env,
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            rate_per_second: match env {
                KisEnv::Real => 18.0,
                KisEnv::Mock => 1.0,
            },
            token_lifetime: Interval::from_millis(86_400_000),
            token_reuse_window: Interval::from_millis(6 * 3_600_000),
            token_min_interval: Interval::from_millis(60_000),
            approval_min_interval: Interval::from_millis(1000),
            max_registrations: 41,
            ping_interval: Interval::from_millis(10_000),
            pong_timeout: Interval::from_millis(100_000),
            push_interval: Interval::from_millis(1000),
            trade_width: 47,
            book_width: 62,
            batch_max: 11,
            no_data_msg_cd: "KIOK0560".into(),
            daily_rows: 100,
            minute_rows: 30,
            rest_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ws_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            holidays: Vec::new(),
        }
    }
}

/// Length of a KIS app key (spec §2.1). Clients check it (python-kis refuses other lengths).
pub const APP_KEY_LEN: usize = 36;
/// Length of a KIS app secret (spec §2.1).
pub const APP_SECRET_LEN: usize = 180;

/// The app key and secret a fake KIS server accepts. Never printed by accident: no
/// `Debug`, and the values are exposed only through [`FakeCredentials::expose`].
pub struct FakeCredentials {
    key: SecretString,
    secret: SecretString,
    made_up: bool,
}

impl FakeCredentials {
    /// `KIS_APP_KEY` / `KIS_APP_SECRET` when both are set, so a client keeps the pair it is
    /// configured with; otherwise a made-up pair (see [`FakeCredentials::made_up`]). Either
    /// way the pair has KIS's shape; an error names the variable and what is wrong with
    /// it, never its value.
    pub fn from_env_or_made_up(seed: u64) -> Result<FakeCredentials, String> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        match (var(ENV_APP_KEY), var(ENV_APP_SECRET)) {
            (Some(key), Some(secret)) => {
                if let Some(problem) = shape_problem(&key, &secret) {
                    return Err(problem);
                }
                Ok(FakeCredentials { key: key.into(), secret: secret.into(), made_up: false })
            }
            (None, None) => Ok(FakeCredentials::made_up(seed)),
            (Some(_), None) => Err(format!("{ENV_APP_KEY} is set but {ENV_APP_SECRET} is not: set both or neither")),
            (None, Some(_)) => Err(format!("{ENV_APP_SECRET} is set but {ENV_APP_KEY} is not: set both or neither")),
        }
    }

    /// A pair with real KIS shapes drawn from `seed`: the same every run, so a client
    /// configured once keeps working. It guards nothing real; the fake checks it exactly
    /// as KIS checks real ones.
    pub fn made_up(seed: u64) -> FakeCredentials {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        // Real app keys start with `PS`.
        const KEY_PREFIX: &str = "PS";
        let mut r = crate::sim::random::rng_for(seed, 0, 0, 0, SALT_CREDENTIALS);
        let mut draw = |n: usize, alphabet: &[u8]| -> String {
            (0..n).map(|_| alphabet[r.usize(0..alphabet.len())] as char).collect()
        };
        let key = format!("{KEY_PREFIX}{}", draw(APP_KEY_LEN - KEY_PREFIX.len(), ALNUM));
        let secret = draw(APP_SECRET_LEN, SECRET_CHARS);
        FakeCredentials { key: key.into(), secret: secret.into(), made_up: true }
    }

    /// Whether the pair was made up (and may be printed) rather than taken from the
    /// environment.
    pub fn is_made_up(&self) -> bool {
        self.made_up
    }

    /// (app key, app secret).
    pub fn expose(&self) -> (&str, &str) {
        (self.key.expose_secret(), self.secret.expose_secret())
    }

    /// The adapter's credentials for this fake.
    pub fn to_kis(&self) -> KisCredentials {
        KisCredentials::new(self.key.clone(), self.secret.clone())
    }
}

const SALT_CREDENTIALS: u64 = 0x4b49_534b;

/// What is wrong with the shape of an app key / secret pair, naming the variable, never
/// the value.
pub fn shape_problem(key: &str, secret: &str) -> Option<String> {
    let printable = |v: &str| v.bytes().all(|b| b.is_ascii_graphic());
    if key.chars().count() != APP_KEY_LEN || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(format!(
            "{ENV_APP_KEY} must be {APP_KEY_LEN} letters and digits, like a KIS app key (it has {} characters)",
            key.chars().count()
        ));
    }
    if secret.chars().count() != APP_SECRET_LEN || !printable(secret) {
        return Some(format!(
            "{ENV_APP_SECRET} must be {APP_SECRET_LEN} printable characters without spaces, like a KIS app secret \
             (it has {} characters)",
            secret.chars().count()
        ));
    }
    None
}

/// Runtime fault switches shared by the test and the server.
#[derive(Clone)]
pub struct FaultSwitch(Arc<Faults>);

struct Faults {
    drop_epoch: watch::Sender<u64>,
    stall: AtomicBool,
    withhold: AtomicBool,
    tear_next: AtomicU32,
    corrupt_next: AtomicU32,
    /// (padded size in bytes << 32) | remaining count.
    oversize_next: AtomicU64,
    /// (HTTP status << 32) | remaining count.
    fail_next: AtomicU64,
    token_epoch: AtomicU64,
    refuse_until_ms: AtomicI64,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        FaultSwitch(Arc::new(Faults {
            drop_epoch: watch::Sender::new(0),
            stall: AtomicBool::new(false),
            withhold: AtomicBool::new(false),
            tear_next: AtomicU32::new(0),
            corrupt_next: AtomicU32::new(0),
            oversize_next: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            token_epoch: AtomicU64::new(0),
            refuse_until_ms: AtomicI64::new(i64::MIN),
        }))
    }
}

impl FaultSwitch {
    pub fn new() -> Self {
        Self::default()
    }
    /// Cuts every live WebSocket without a close frame.
    pub fn drop_connections(&self) {
        self.0.drop_epoch.send_modify(|e| *e += 1);
    }
    /// Stops sending anything (data and PINGPONG) while keeping sockets open.
    pub fn set_stall(&self, on: bool) {
        self.0.stall.store(on, Ordering::SeqCst);
    }
    /// Sends no market data while keeping the session alive with PINGPONG: a stale socket
    /// that a liveness check alone would call healthy.
    pub fn withhold_data(&self, on: bool) {
        self.0.withhold.store(on, Ordering::SeqCst);
    }
    /// The next `n` data frames are cut in the middle.
    pub fn tear_next_frames(&self, n: u32) {
        self.0.tear_next.store(n, Ordering::SeqCst);
    }
    /// The next `n` data frames are replaced by garbage.
    pub fn corrupt_next_frames(&self, n: u32) {
        self.0.corrupt_next.store(n, Ordering::SeqCst);
    }
    /// The next `n` data frames are padded to `bytes` (a hostile frame: anyone on the plain
    /// `ws://` path can send one).
    pub fn oversize_next_frames(&self, n: u32, bytes: u32) {
        self.0.oversize_next.store(((bytes as u64) << 32) | n as u64, Ordering::SeqCst);
    }
    /// The next `n` REST calls get HTTP `status` with a non-KIS body (a proxy or gateway).
    pub fn fail_next_requests(&self, status: u16, n: u32) {
        self.0.fail_next.store(((status as u64) << 32) | n as u64, Ordering::SeqCst);
    }
    /// Every token issued so far expires now; the next REST call gets `EGW00123`.
    pub fn expire_tokens(&self) {
        self.0.token_epoch.fetch_add(1, Ordering::SeqCst);
    }
    /// New WebSocket connections are closed on accept until `t` (market time).
    pub fn refuse_connections_until(&self, t: UtcTime) {
        self.0.refuse_until_ms.store(t.as_millis(), Ordering::SeqCst);
    }

    fn stalled(&self) -> bool {
        self.0.stall.load(Ordering::SeqCst)
    }
    fn data_withheld(&self) -> bool {
        self.0.withhold.load(Ordering::SeqCst)
    }
    fn take(counter: &AtomicU32) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
    fn take_tear(&self) -> bool {
        Self::take(&self.0.tear_next)
    }
    fn take_corrupt(&self) -> bool {
        Self::take(&self.0.corrupt_next)
    }
    fn take_oversize(&self) -> Option<usize> {
        let prev = self
            .0
            .oversize_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| (v & 0xffff_ffff > 0).then(|| v - 1))
            .ok()?;
        Some((prev >> 32) as usize)
    }
    fn take_failure(&self) -> Option<u16> {
        let mut status = 0u16;
        self.0
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                let n = v & 0xFFFF_FFFF;
                status = (v >> 32) as u16;
                (n > 0).then(|| v - 1)
            })
            .ok()
            .map(|_| status)
    }
    fn token_epoch(&self) -> u64 {
        self.0.token_epoch.load(Ordering::SeqCst)
    }
    fn refusing(&self, now: UtcTime) -> bool {
        now.as_millis() < self.0.refuse_until_ms.load(Ordering::SeqCst)
    }
}

/// What the server saw. All monotonic except `max_per_second`.
#[derive(Debug, Default)]
pub struct Counters {
    pub rest_requests: AtomicU64,
    pub rest_ok: AtomicU64,
    /// Requests answered `EGW00201`.
    pub rate_rejections: AtomicU64,
    /// Most requests accepted for one app key within one clock second.
    pub max_per_second: AtomicU64,
    /// Bad or missing credentials/headers (EGW00103/5, EGW00121/3, EGW00208, bad tr_id).
    pub auth_rejections: AtomicU64,
    pub expired_token_rejections: AtomicU64,
    pub injected_failures: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub token_calls: AtomicU64,
    pub token_refusals: AtomicU64,
    pub approvals_issued: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_refused: AtomicU64,
    /// Sessions refused because another one holds the app key (OPSP8996).
    pub ws_in_use: AtomicU64,
    pub ws_frames_sent: AtomicU64,
    pub ws_data_frames_sent: AtomicU64,
    pub ws_records_sent: AtomicU64,
    pub pings_sent: AtomicU64,
    pub pongs_received: AtomicU64,
    pub subscribe_ok: AtomicU64,
    pub subscribe_refused: AtomicU64,
    pub subscribe_over_limit: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

struct IssuedToken {
    expires_at: UtcTime,
    epoch: u64,
}

#[derive(Default)]
struct AuthState {
    tokens: HashMap<String, IssuedToken>,
    /// The token a repeat tokenP call gets back, with its issue time.
    current: Option<(String, UtcTime)>,
    last_token_call: Option<UtcTime>,
    approvals: BTreeSet<String>,
    last_approval: Option<UtcTime>,
    /// Connection id of the live WebSocket session of the app key.
    live_session: Option<u64>,
}

struct Bucket {
    tokens: f64,
    at: UtcTime,
    second: i64,
    in_second: u64,
}

/// Running per-symbol values the H0STCNT0 record carries beside the trade itself.
#[derive(Debug, Clone, Default)]
pub struct TradeAcc {
    pub open: Option<(rust_decimal::Decimal, String)>,
    pub high: Option<(rust_decimal::Decimal, String)>,
    pub low: Option<(rust_decimal::Decimal, String)>,
    pub value: rust_decimal::Decimal,
    pub sell_count: u64,
    pub buy_count: u64,
    pub sell_qty: rust_decimal::Decimal,
    pub buy_qty: rust_decimal::Decimal,
}

pub(crate) struct Shared {
    cfg: FakeKisConfig,
    market: Arc<Mutex<SimMarket>>,
    clock: Clock,
    faults: FaultSwitch,
    counters: Arc<Counters>,
    auth: Mutex<AuthState>,
    bucket: Mutex<Bucket>,
    acc: Mutex<HashMap<String, TradeAcc>>,
    next_conn: AtomicU64,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn market(&self) -> MutexGuard<'_, SimMarket> {
        guard(&self.market)
    }
}

/// The running fake; dropping it stops the server.
pub struct FakeKis {
    pub rest_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub counters: Arc<Counters>,
    /// The app key and secret it accepts.
    accepts: (SecretString, SecretString),
    tasks: Vec<JoinHandle<()>>,
}

impl FakeKis {
    pub fn rest_base(&self) -> String {
        format!("http://{}", self.rest_addr)
    }
    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }
    pub fn master_base(&self) -> String {
        format!("http://{}/common/master/", self.rest_addr)
    }
    /// The credentials this server accepts, for an adapter that talks to it.
    pub fn credentials(&self) -> KisCredentials {
        KisCredentials::new(self.accepts.0.clone(), self.accepts.1.clone())
    }
}

impl Drop for FakeKis {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the fake on two loopback ports.
pub async fn serve(
    cfg: FakeKisConfig,
    market: Arc<Mutex<SimMarket>>,
    clock: Clock,
    faults: FaultSwitch,
) -> std::io::Result<FakeKis> {
    let counters = Arc::new(Counters::default());
    let cfg_binds = (cfg.rest_bind, cfg.ws_bind);
    let accepts = (SecretString::from(cfg.app_key.clone()), SecretString::from(cfg.app_secret.clone()));
    guard(&market).set_holidays(&cfg.holidays);
    let shared = Arc::new(Shared {
        bucket: Mutex::new(Bucket { tokens: cfg.rate_per_second, at: clock.now(), second: 0, in_second: 0 }),
        cfg,
        market,
        clock,
        faults,
        counters: counters.clone(),
        auth: Mutex::new(AuthState::default()),
        acc: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(1),
    });
    let rest_listener = tokio::net::TcpListener::bind(cfg_binds.0).await?;
    let ws_listener = tokio::net::TcpListener::bind(cfg_binds.1).await?;
    let rest_addr = rest_listener.local_addr()?;
    let ws_addr = ws_listener.local_addr()?;
    let app = rest::router(shared.clone());
    let rest_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(rest_listener, app).await {
            tracing::warn!(error = %e, "fake kis: REST server stopped");
        }
    });
    let ws_task = tokio::spawn(ws::accept_loop(ws_listener, shared));
    Ok(FakeKis { rest_addr, ws_addr, counters, accepts, tasks: vec![rest_task, ws_task] })
}
