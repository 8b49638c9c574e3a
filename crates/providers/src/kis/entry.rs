//! KIS in the provider registry: its config section, mapper, adapter, and fake server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use model::{Clock, Market, Provider, UtcTime};

use super::fake::{self, FakeCredentials, FakeKis, FakeKisConfig, FaultSwitch};
use super::{ENV_APP_KEY, ENV_APP_SECRET, KisConfig, KisCredentials, KisProvider};
use crate::erased::AnyProvider;
use crate::module::{Credentials, FAKE_LISTENERS, FaultSwitches, ProviderModule, SimWorld, Target};
use crate::{Mapper, transport};

/// KIS (한국투자증권) Open API: KRX stocks.
pub struct Kis;

/// The fake KIS server of a sim run, with the pair it accepts and its fault switches.
pub struct KisFake {
    pub server: FakeKis,
    pub credentials: FakeCredentials,
    pub faults: FaultSwitch,
}

impl FaultSwitches for FaultSwitch {
    fn disconnect_until(&self, until: UtcTime) {
        self.refuse_connections_until(until);
        self.drop_connections();
    }
    fn silence(&self, on: bool) {
        // KIS keeps answering PINGPONG: the socket is alive, only the data stops.
        self.withhold_data(on);
    }
    fn stall(&self, on: bool) {
        self.set_stall(on);
    }
    fn fail_rest(&self, status: u16, count: u32) {
        self.fail_next_requests(status, count);
    }
}

impl ProviderModule for Kis {
    const ID: Provider = Provider::Kis;
    type Config = KisConfig;
    type Fake = KisFake;

    fn mapper() -> Mapper {
        Mapper {
            version: super::wire::MAPPER_VERSION,
            market: Market::KrStocks,
            parse: super::parse_frame,
            subscribes: Some(super::wire::subscribed_codes),
        }
    }

    fn enabled(cfg: &KisConfig) -> bool {
        cfg.enabled
    }

    fn credentials() -> Credentials {
        let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        // Either one set counts: the adapter then names the one missing, instead of the run
        // falling back to the simulator over a typo.
        if set(ENV_APP_KEY) || set(ENV_APP_SECRET) {
            Credentials::Present
        } else {
            Credentials::Absent("KIS_APP_KEY and KIS_APP_SECRET")
        }
    }

    async fn start_fake(
        cfg: &KisConfig,
        world: &SimWorld,
        [rest, ws]: [SocketAddr; FAKE_LISTENERS as usize],
    ) -> Result<KisFake, String> {
        // KIS_APP_KEY / KIS_APP_SECRET when set (a client of `sim` keeps its own pair), else
        // a made-up pair of the same shape.
        let credentials = FakeCredentials::from_env_or_made_up(world.seed)?;
        let (key, secret) = credentials.expose();
        let mut fcfg = FakeKisConfig::new(cfg.env, key, secret);
        fcfg.rest_bind = rest;
        fcfg.ws_bind = ws;
        fcfg.holidays = world.holidays.clone();
        let faults = FaultSwitch::default();
        let server = fake::serve(fcfg, world.krx.clone(), world.clock, faults.clone())
            .await
            .map_err(|e| format!("starting the fake KIS server on {rest} / {ws}: {e}"))?;
        Ok(KisFake { server, credentials, faults })
    }

    fn faults(fake: &KisFake) -> Arc<dyn FaultSwitches> {
        Arc::new(fake.faults.clone())
    }

    fn describe(fake: &KisFake) -> Vec<String> {
        let s = &fake.server;
        let mut lines =
            vec![format!("KIS   REST {}  WebSocket {}  master files {}", s.rest_base(), s.ws_base(), s.master_base())];
        if fake.credentials.is_made_up() {
            // Deliberately printed: a made-up pair that only this loopback sim accepts, for
            // clients that need one. Set KIS_APP_KEY / KIS_APP_SECRET to use your own.
            let (key, secret) = fake.credentials.expose();
            lines.push(format!("KIS   app key {key}"));
            lines.push(format!("KIS   app secret {secret}"));
        } else {
            lines.push("KIS   accepts the app key and secret in KIS_APP_KEY / KIS_APP_SECRET".into());
        }
        lines
    }

    fn adapter(
        cfg: &KisConfig,
        target: Target<'_, KisFake>,
        clock: Clock,
        data_dir: &Path,
    ) -> Result<AnyProvider, String> {
        let (cfg, creds) = match target {
            Target::Fake(fake) => (
                KisConfig {
                    rest_base: Some(fake.server.rest_base()),
                    ws_base: Some(fake.server.ws_base()),
                    master_base: fake.server.master_base(),
                    // A simulated token must never be mistaken for a real one.
                    token_cache: data_dir.join("state/sim_kis_token.json"),
                    ..cfg.clone()
                },
                fake.server.credentials(),
            ),
            Target::Live => {
                // KIS's realtime endpoint is plain ws:// (the only one validation lets through).
                if let Some(warning) = transport::plaintext_ws_warning(&cfg.ws_url()) {
                    tracing::warn!("kis: {warning}");
                }
                // The token cache lives with the data it serves, not in the working directory.
                (KisConfig { token_cache: cfg.token_cache_under(data_dir), ..cfg.clone() }, KisCredentials::from_env()?)
            }
        };
        let provider = KisProvider::new(cfg, creds, clock).map_err(|e| format!("starting the KIS adapter: {e}"))?;
        Ok(AnyProvider::new(provider))
    }
}
