//! The provider registry: the one place a provider is added. Each provider's folder supplies
//! one [`ProviderModule`] (`crate::module`: its config section and validation, frame mapper, live adapter,
//! fake server for sim mode and fault switches); the `registry!` line at the bottom of this
//! file lists them. The configuration's `providers` section, `mapper()` (used by replay, the
//! ETL and the benches), the CLI's choice of sim or live, the fake servers and the fault
//! scripts are all generated from or iterate that list, so a provider cannot be half
//! registered. `docs/adding-a-provider.md` walks through it.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use model::settings::{Checker, Validate};
use model::{Clock, Provider, RawFrame};

use crate::erased::AnyProvider;
use crate::module::{Credentials, FAKE_LISTENERS, FaultSwitches, ProviderModule, SimWorld, Target};
use crate::{Mapper, Parsed, ProviderError, evidence};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A fake server of this run.
pub struct RunningFake {
    pub provider: Provider,
    pub faults: Arc<dyn FaultSwitches>,
    pub description: Vec<String>,
    server: Box<dyn Any + Send + Sync>,
}

/// One registered provider with its configuration section: what the CLI iterates.
pub trait Section: Send + Sync {
    fn id(&self) -> Provider;
    /// The section's key (`kis` in `providers.kis`).
    fn key(&self) -> &'static str;
    fn enabled(&self) -> bool;
    fn credentials(&self) -> Credentials;
    fn start_fake<'a>(
        &'a self,
        world: &'a SimWorld,
        binds: [SocketAddr; FAKE_LISTENERS as usize],
    ) -> BoxFuture<'a, Result<RunningFake, String>>;
    /// The adapter: against `fake` if given (it must be this provider's), else live.
    fn adapter(&self, fake: Option<&RunningFake>, clock: Clock, data_dir: &Path) -> Result<AnyProvider, String>;
}

struct Entry<'c, M: ProviderModule> {
    key: &'static str,
    cfg: &'c M::Config,
}

impl<M: ProviderModule> Section for Entry<'_, M> {
    fn id(&self) -> Provider {
        M::ID
    }
    fn key(&self) -> &'static str {
        self.key
    }
    fn enabled(&self) -> bool {
        M::enabled(self.cfg)
    }
    fn credentials(&self) -> Credentials {
        M::credentials()
    }
    fn start_fake<'a>(
        &'a self,
        world: &'a SimWorld,
        binds: [SocketAddr; FAKE_LISTENERS as usize],
    ) -> BoxFuture<'a, Result<RunningFake, String>> {
        Box::pin(async move {
            let fake = M::start_fake(self.cfg, world, binds).await?;
            Ok(RunningFake {
                provider: M::ID,
                faults: M::faults(&fake),
                description: M::describe(&fake),
                server: Box::new(fake),
            })
        })
    }
    fn adapter(&self, fake: Option<&RunningFake>, clock: Clock, data_dir: &Path) -> Result<AnyProvider, String> {
        let target = match fake {
            None => Target::Live,
            Some(f) => match f.server.downcast_ref::<M::Fake>() {
                Some(server) => Target::Fake(server),
                None => return Err(format!("{}: the fake server given is {}'s", M::ID, f.provider)),
            },
        };
        M::adapter(self.cfg, target, clock, data_dir)
    }
}

/// The simulator's own wire format (`sim/1`): no venue, no configuration, but archives and
/// test fixtures hold its frames, so replay and the ETL read them.
fn sim_mapper() -> Mapper {
    fn parse(frame: &RawFrame) -> Result<Parsed, ProviderError> {
        if !matches!(frame.kind, model::RawFrameKind::Ws | model::RawFrameKind::Rest) {
            return Ok(Vec::new());
        }
        crate::sim::wire::parse(&frame.frame).map(|e| vec![e]).map_err(|e| ProviderError::Malformed {
            provider: Provider::Sim,
            why: e.problem.to_string(),
            frame: evidence(&frame.frame),
        })
    }
    Mapper { version: crate::sim::wire::MAPPER_VERSION, market: model::Market::KrStocks, parse, subscribes: None }
}

macro_rules! registry {
    ($($key:ident: $module:ty),* $(,)?) => {
        /// `providers` in the configuration: one section per registered provider.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ProvidersConfig {
            $(pub $key: <$module as ProviderModule>::Config,)*
        }

        impl Validate for ProvidersConfig {
            fn validate(&self, c: &mut Checker) {
                $(c.section(stringify!($key), |c| self.$key.validate(c));)*
            }
        }

        impl ProvidersConfig {
            /// Every registered provider with its section, in registry order.
            pub fn sections(&self) -> Vec<Box<dyn Section + '_>> {
                vec![$(Box::new(Entry::<$module> { key: stringify!($key), cfg: &self.$key }),)*]
            }
        }

        /// The frame mapper of `provider`, for every provider whose frames an archive can hold.
        pub fn mapper(provider: Provider) -> Option<Mapper> {
            $(if provider == <$module as ProviderModule>::ID {
                return Some(<$module as ProviderModule>::mapper());
            })*
            (provider == Provider::Sim).then(sim_mapper)
        }
    };
}

registry! {
    kis: crate::kis::Kis,
    upbit: crate::upbit::Upbit,
}
