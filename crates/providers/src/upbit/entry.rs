//! Upbit in the provider registry: its config section, mapper, adapter, and fake server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use model::{Clock, Market, Provider, UtcTime};

use super::fake::{self, FakeConfig, FakeUpbit, Faults};
use super::{UpbitConfig, UpbitProvider};
use crate::Mapper;
use crate::erased::AnyProvider;
use crate::module::{Credentials, FAKE_LISTENERS, FaultSwitches, ProviderModule, SimWorld, Target};

/// Upbit (업비트) quotation API: KRW crypto pairs around the clock.
pub struct Upbit;

impl FaultSwitches for Faults {
    fn disconnect_until(&self, until: UtcTime) {
        self.refuse_connections_until(until);
        self.drop_connections();
    }
    fn silence(&self, on: bool) {
        // Upbit has no server heartbeat to keep: its silent socket is a stalled one.
        self.set_stall(on);
    }
    fn stall(&self, on: bool) {
        self.set_stall(on);
    }
    fn fail_rest(&self, status: u16, count: u32) {
        Faults::fail_rest(self, status, count);
    }
}

impl ProviderModule for Upbit {
    const ID: Provider = Provider::Upbit;
    type Config = UpbitConfig;
    type Fake = FakeUpbit;

    fn mapper() -> Mapper {
        Mapper {
            version: super::wire::MAPPER_VERSION,
            market: Market::Crypto,
            parse: super::wire::parse,
            subscribes: Some(super::wire::subscribed_codes),
        }
    }

    fn enabled(cfg: &UpbitConfig) -> bool {
        cfg.enabled
    }

    /// The quotation API is public.
    fn credentials() -> Credentials {
        Credentials::NotNeeded
    }

    async fn start_fake(
        _cfg: &UpbitConfig,
        world: &SimWorld,
        [rest, ws]: [SocketAddr; FAKE_LISTENERS as usize],
    ) -> Result<FakeUpbit, String> {
        let fcfg = FakeConfig { market: world.crypto.clone(), rest_bind: rest, ws_bind: ws, ..FakeConfig::default() };
        fake::serve(fcfg, world.clock)
            .await
            .map_err(|e| format!("starting the fake Upbit server on {rest} / {ws}: {e}"))
    }

    fn faults(fake: &FakeUpbit) -> Arc<dyn FaultSwitches> {
        fake.faults.clone()
    }

    fn describe(fake: &FakeUpbit) -> Vec<String> {
        vec![format!("Upbit REST {}  WebSocket {}", fake.rest_base(), fake.ws_url())]
    }

    fn adapter(
        cfg: &UpbitConfig,
        target: Target<'_, FakeUpbit>,
        clock: Clock,
        _data_dir: &Path,
    ) -> Result<AnyProvider, String> {
        let cfg = match target {
            Target::Fake(fake) => UpbitConfig { rest_base: fake.rest_base(), ws_base: fake.ws_url(), ..cfg.clone() },
            Target::Live => cfg.clone(),
        };
        let provider = UpbitProvider::new(cfg, clock).map_err(|e| format!("starting the Upbit adapter: {e}"))?;
        Ok(AnyProvider::new(provider))
    }
}
