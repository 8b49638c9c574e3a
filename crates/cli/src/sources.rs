//! Chooses where market data comes from and builds the provider adapters, iterating the
//! provider registry (`providers::registry`): in `sim` mode every enabled adapter talks to
//! its fake server on loopback (the real client code, end to end), driven by the seeded
//! simulated market; in `live` mode to the configured endpoints.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use config::{Settings, Source};
use model::Clock;
use providers::AnyProvider;
use providers::module::{Credentials, FAKE_LISTENERS, SimWorld};
use providers::registry::RunningFake;
use providers::sim::SimMarket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sim,
    Live,
}

/// `source: auto` decides from each enabled provider's own credentials: none has any → sim;
/// every provider that needs credentials has them → live. A mix is refused rather than
/// guessed: recording one venue live and another from the simulator would put simulated
/// data in a real archive.
pub fn mode(settings: &Settings) -> anyhow::Result<Mode> {
    match settings.source {
        Source::Sim => return Ok(Mode::Sim),
        Source::Live => return Ok(Mode::Live),
        Source::Auto => {}
    }
    let sections = settings.providers.sections();
    let enabled: Vec<(&str, Credentials)> =
        sections.iter().filter(|s| s.enabled()).map(|s| (s.key(), s.credentials())).collect();
    decide(&enabled).map_err(anyhow::Error::msg)
}

/// `source: auto` over the enabled providers' (key, credentials).
fn decide(enabled: &[(&str, Credentials)]) -> Result<Mode, String> {
    let with: Vec<&str> = enabled.iter().filter(|(_, c)| *c == Credentials::Present).map(|(k, _)| *k).collect();
    let without: Vec<String> = enabled
        .iter()
        .filter_map(|(key, c)| match c {
            Credentials::Absent(what) => Some(format!("{key} ({what})")),
            _ => None,
        })
        .collect();
    match (with.is_empty(), without.is_empty()) {
        (true, _) => Ok(Mode::Sim),
        (false, true) => Ok(Mode::Live),
        (false, false) => Err(format!(
            "credentials are set for {} but not for {}: set them, disable those providers \
             (providers.NAME.enabled: false), or choose `source: live` or `source: sim`",
            with.join(", "),
            without.join(", ")
        )),
    }
}

/// The fake servers of one run; dropping them stops them.
#[derive(Default)]
pub struct Fakes {
    pub servers: Vec<RunningFake>,
}

impl Fakes {
    fn of(&self, provider: model::Provider) -> Option<&RunningFake> {
        self.servers.iter().find(|f| f.provider == provider)
    }
}

/// Where `sim` listens: each registered provider takes [`FAKE_LISTENERS`] consecutive ports
/// (REST, then WebSocket) from `base`, in registry order; port 0 picks free ports.
pub struct Binds {
    base: SocketAddr,
}

impl Binds {
    pub fn any() -> Self {
        Binds { base: SocketAddr::from(([127, 0, 0, 1], 0)) }
    }

    pub fn from_base(base: SocketAddr) -> Self {
        Binds { base }
    }

    /// The listeners of the `index`th registered provider.
    fn of(&self, index: usize) -> anyhow::Result<[SocketAddr; FAKE_LISTENERS as usize]> {
        if self.base.port() == 0 {
            return Ok([self.base; FAKE_LISTENERS as usize]);
        }
        let mut out = [self.base; FAKE_LISTENERS as usize];
        for (i, addr) in out.iter_mut().enumerate() {
            let offset = u16::try_from(index * FAKE_LISTENERS as usize + i).ok();
            let port = offset.and_then(|o| self.base.port().checked_add(o)).context("--bind port too high")?;
            *addr = SocketAddr::new(self.base.ip(), port);
        }
        Ok(out)
    }
}

/// Starts the fake servers: of every enabled provider (`all`: of every registered one, for
/// `sim`, which serves any client).
pub async fn start_fakes(
    settings: &Settings,
    market: SimMarket,
    clock: Clock,
    binds: &Binds,
    all: bool,
) -> anyhow::Result<Fakes> {
    let world = SimWorld {
        clock,
        seed: settings.sim.seed,
        krx: Arc::new(Mutex::new(market)),
        crypto: settings.sim_crypto.clone(),
        holidays: settings.calendar.holidays.clone(),
    };
    let mut fakes = Fakes::default();
    for (i, section) in settings.providers.sections().iter().enumerate() {
        if all || section.enabled() {
            fakes.servers.push(section.start_fake(&world, binds.of(i)?).await.map_err(anyhow::Error::msg)?);
        }
    }
    Ok(fakes)
}

/// The adapters of the enabled providers: against their fakes in sim mode, live otherwise.
pub fn adapters(
    settings: &Settings,
    mode: Mode,
    clock: Clock,
    data_dir: &Path,
    fakes: &Fakes,
) -> anyhow::Result<Vec<AnyProvider>> {
    let mut out = Vec::new();
    for section in settings.providers.sections().iter().filter(|s| s.enabled()) {
        let fake = match mode {
            Mode::Sim => Some(fakes.of(section.id()).with_context(|| format!("no fake server for {}", section.key()))?),
            Mode::Live => None,
        };
        out.push(section.adapter(fake, clock, data_dir).map_err(anyhow::Error::msg)?);
    }
    if out.is_empty() {
        let keys: Vec<String> =
            settings.providers.sections().iter().map(|s| format!("providers.{}.enabled", s.key())).collect();
        bail!("no provider is enabled: set one of {}", keys.join(", "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_decides_per_provider_from_its_own_credentials() {
        use Credentials::*;
        let kis_absent = ("kis", Absent("KIS_APP_KEY and KIS_APP_SECRET"));
        // Nobody has credentials: the simulator, whatever needs none.
        assert_eq!(decide(&[kis_absent, ("upbit", NotNeeded)]), Ok(Mode::Sim));
        assert_eq!(decide(&[("upbit", NotNeeded)]), Ok(Mode::Sim));
        // Everything that needs credentials has them: live, public venues included.
        assert_eq!(decide(&[("kis", Present), ("upbit", NotNeeded)]), Ok(Mode::Live));
        // A mix is refused, naming what is missing, never half simulated.
        let e = decide(&[("kis", Present), ("alpaca", Absent("ALPACA_KEY_ID"))]).unwrap_err();
        assert!(e.contains("set for kis but not for alpaca (ALPACA_KEY_ID)"), "{e}");
    }
}
