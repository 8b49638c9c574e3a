//! What a provider module supplies to the registry (`crate::registry`): the contract each
//! provider folder implements once, in its `entry.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use serde::Serialize;
use serde::de::DeserializeOwned;

use model::settings::Validate;
use model::{Clock, Provider, UtcTime};

use crate::Mapper;
use crate::erased::AnyProvider;
use crate::sim::SimMarket;
use crate::sim::crypto::CryptoSimConfig;

/// What sim mode gives every fake server: one clock and one seeded world.
pub struct SimWorld {
    pub clock: Clock,
    /// `sim.seed`: made-up credentials derive from it too.
    pub seed: u64,
    /// The simulated KRX market (stock venues serve it).
    pub krx: Arc<Mutex<SimMarket>>,
    /// The 24-hour crypto market (crypto venues run it).
    pub crypto: CryptoSimConfig,
    /// `calendar.holidays`: the venues' calendars agree with the engine's.
    pub holidays: Vec<Date>,
}

/// The switches `collect --fault` flips on a fake server.
pub trait FaultSwitches: Send + Sync {
    /// `ws_disconnect`: cut every WebSocket and refuse new ones until `until`.
    fn disconnect_until(&self, until: UtcTime);
    /// `ws_silent`: sockets stay open (and keep the venue's own heartbeat, if it has one) but
    /// carry no market data.
    fn silence(&self, on: bool);
    /// `ws_stall`: sockets stay open and carry nothing at all.
    fn stall(&self, on: bool);
    /// `rest_429` / `rest_5xx`: the next `count` REST calls answer `status` (`count` 0 ends it).
    fn fail_rest(&self, status: u16, count: u32);
}

/// Whether a venue's live endpoints need credentials, and whether this process has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// Public data: nothing to configure.
    NotNeeded,
    Present,
    /// Missing; names what to set.
    Absent(&'static str),
}

/// Where an adapter connects.
pub enum Target<'a, F> {
    /// The venue's configured endpoints.
    Live,
    /// This run's fake server on loopback.
    Fake(&'a F),
}

/// Listeners a fake server binds (REST and WebSocket); `sim --bind` hands each registered
/// provider this many consecutive ports.
pub const FAKE_LISTENERS: u16 = 2;

/// One provider, everything about it. Implemented by a unit type in the provider's folder.
pub trait ProviderModule: 'static {
    const ID: Provider;
    /// Its section under `providers` in the configuration.
    type Config: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Validate + Send + Sync + 'static;
    /// A running fake server; dropping it stops it.
    type Fake: Send + Sync + 'static;

    /// The frame → model mapping, usable without a connection.
    fn mapper() -> Mapper;
    fn enabled(cfg: &Self::Config) -> bool;
    fn credentials() -> Credentials;
    /// Starts the fake server on `binds` (port 0: any free port).
    fn start_fake(
        cfg: &Self::Config,
        world: &SimWorld,
        binds: [SocketAddr; FAKE_LISTENERS as usize],
    ) -> impl Future<Output = Result<Self::Fake, String>> + Send;
    fn faults(fake: &Self::Fake) -> Arc<dyn FaultSwitches>;
    /// What `sim` prints about the fake (endpoints, credentials it accepts).
    fn describe(fake: &Self::Fake) -> Vec<String>;
    /// The adapter, against the live venue or the fake. `data_dir` holds its state (tokens).
    fn adapter(
        cfg: &Self::Config,
        target: Target<'_, Self::Fake>,
        clock: Clock,
        data_dir: &Path,
    ) -> Result<AnyProvider, String>;
}
