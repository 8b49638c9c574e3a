//! Chooses where market data comes from and builds the provider adapters: in `sim` mode
//! every enabled adapter talks to its fake server on loopback (the real client code, end to
//! end), driven by the seeded simulated market; in `live` mode to the configured endpoints.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use config::{Settings, Source};
use engine::collector::Launch;
use model::Clock;
use providers::kis::fake::{FakeCredentials, FakeKis, FakeKisConfig, FaultSwitch};
use providers::kis::{KisConfig, KisCredentials, KisProvider};
use providers::sim::SimMarket;
use providers::upbit::fake::{FakeConfig, FakeUpbit};
use providers::upbit::{UpbitConfig, UpbitProvider};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sim,
    Live,
}

/// Sim mode unless broker credentials are present (or the config says otherwise).
pub fn mode(settings: &Settings) -> Mode {
    match settings.source {
        Source::Sim => Mode::Sim,
        Source::Live => Mode::Live,
        Source::Auto if std::env::var_os(providers::kis::ENV_APP_KEY).is_some() => Mode::Live,
        Source::Auto => Mode::Sim,
    }
}

/// The fake servers of one run; dropping them stops them.
pub struct Fakes {
    pub kis: Option<FakeKis>,
    pub upbit: Option<FakeUpbit>,
    /// The fake KIS server's fault switches (`collect --fault`).
    pub kis_faults: FaultSwitch,
}

/// Where `sim` listens: KIS REST on `base`, KIS WebSocket on the next port, Upbit REST and
/// WebSocket on the two after.
pub struct Binds {
    pub kis_rest: SocketAddr,
    pub kis_ws: SocketAddr,
    pub upbit_rest: SocketAddr,
    pub upbit_ws: SocketAddr,
}

impl Binds {
    pub fn any() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Binds { kis_rest: any, kis_ws: any, upbit_rest: any, upbit_ws: any }
    }

    pub fn from_base(base: SocketAddr) -> anyhow::Result<Self> {
        let port =
            |i: u16| base.port().checked_add(i).map(|p| SocketAddr::new(base.ip(), p)).context("--bind port too high");
        if base.port() == 0 {
            return Ok(Binds::any());
        }
        Ok(Binds { kis_rest: base, kis_ws: port(1)?, upbit_rest: port(2)?, upbit_ws: port(3)? })
    }
}

pub async fn start_fakes(
    settings: &Settings,
    market: SimMarket,
    clock: Clock,
    binds: &Binds,
    with_upbit: bool,
) -> anyhow::Result<Fakes> {
    // KIS_APP_KEY / KIS_APP_SECRET when set (a client of `sim` keeps its own pair), else a
    // made-up pair of the same shape.
    let kis_credentials = FakeCredentials::from_env_or_made_up(settings.sim.seed).map_err(anyhow::Error::msg)?;
    let (key, secret) = kis_credentials.expose();
    let mut kcfg = FakeKisConfig::new(settings.providers.kis.env, key, secret);
    kcfg.rest_bind = binds.kis_rest;
    kcfg.ws_bind = binds.kis_ws;
    kcfg.holidays = settings.calendar.holidays.clone();
    let kis_faults = FaultSwitch::default();
    let kis = providers::kis::fake::serve(kcfg, Arc::new(Mutex::new(market)), clock, kis_faults.clone())
        .await
        .with_context(|| format!("starting the fake KIS server on {} / {}", binds.kis_rest, binds.kis_ws))?;
    let upbit =
        if with_upbit {
            let ucfg = FakeConfig {
                market: settings.sim_crypto.clone(),
                rest_bind: binds.upbit_rest,
                ws_bind: binds.upbit_ws,
                ..FakeConfig::default()
            };
            Some(providers::upbit::fake::serve(ucfg, clock).await.with_context(|| {
                format!("starting the fake Upbit server on {} / {}", binds.upbit_rest, binds.upbit_ws)
            })?)
        } else {
            None
        };
    Ok(Fakes { kis: Some(kis), upbit, kis_faults })
}

/// The adapters for this run.
pub fn adapters(
    settings: &Settings,
    mode: Mode,
    clock: Clock,
    data_dir: &Path,
    fakes: &Fakes,
) -> anyhow::Result<Vec<Arc<dyn Launch>>> {
    let mut out: Vec<Arc<dyn Launch>> = Vec::new();
    let kis_cfg = &settings.providers.kis;
    if kis_cfg.enabled {
        let (cfg, creds) = match (mode, &fakes.kis) {
            (Mode::Sim, Some(fake)) => (
                KisConfig {
                    rest_base: Some(fake.rest_base()),
                    ws_base: Some(fake.ws_base()),
                    master_base: fake.master_base(),
                    // A simulated token must never be mistaken for a real one.
                    token_cache: data_dir.join("state/sim_kis_token.json"),
                    ..kis_cfg.clone()
                },
                fake.credentials(),
            ),
            _ => {
                // KIS's realtime endpoint is plain ws:// (the only one validation lets through).
                if let Some(warning) = providers::transport::plaintext_ws_warning(&kis_cfg.ws_url()) {
                    tracing::warn!("kis: {warning}");
                }
                (
                    // The token cache lives with the data it serves, not in the working directory.
                    KisConfig { token_cache: kis_cfg.token_cache_under(data_dir), ..kis_cfg.clone() },
                    KisCredentials::from_env().map_err(anyhow::Error::msg)?,
                )
            }
        };
        out.push(Arc::new(KisProvider::new(cfg, creds, clock).context("starting the KIS adapter")?));
    }
    let up_cfg = &settings.providers.upbit;
    if up_cfg.enabled {
        let cfg = match (mode, &fakes.upbit) {
            (Mode::Sim, Some(fake)) => {
                UpbitConfig { rest_base: fake.rest_base(), ws_base: fake.ws_url(), ..up_cfg.clone() }
            }
            _ => up_cfg.clone(),
        };
        out.push(Arc::new(UpbitProvider::new(cfg, clock).context("starting the Upbit adapter")?));
    }
    if out.is_empty() {
        bail!("no provider is enabled: set providers.kis.enabled or providers.upbit.enabled");
    }
    Ok(out)
}
