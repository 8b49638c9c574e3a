//! A tap on accepted records, for sinks beside the archive (the live database sink, later
//! the bus). A tap must never block: the archive is the record and does not wait for it.

use std::sync::Arc;

use model::{MarketEvent, Provider, Record, ScalpSample, SystemEvent};

pub trait Tap: Send + Sync {
    /// A record that passed the observer core (ticks, quotes, snapshots).
    fn market_event(&self, rec: &Record<MarketEvent>);
    /// A Track B sample that was archived.
    fn sample(&self, rec: &Record<ScalpSample>);
    /// A system event written to the archive: `provider`'s events, or (`None`) the
    /// lifecycle jobs'. Alert sources listen here.
    fn system_event(&self, _provider: Option<Provider>, _rec: &Record<SystemEvent>) {}
}

/// Several taps behind one: each record goes to each, in order.
pub struct Taps(pub Vec<Arc<dyn Tap>>);

impl Tap for Taps {
    fn market_event(&self, rec: &Record<MarketEvent>) {
        self.0.iter().for_each(|t| t.market_event(rec));
    }
    fn sample(&self, rec: &Record<ScalpSample>) {
        self.0.iter().for_each(|t| t.sample(rec));
    }
    fn system_event(&self, provider: Option<Provider>, rec: &Record<SystemEvent>) {
        self.0.iter().for_each(|t| t.system_event(provider, rec));
    }
}
