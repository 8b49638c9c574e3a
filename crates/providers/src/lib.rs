pub mod provider;
pub mod sim;

pub use provider::{MarketProvider, ProviderError, UniverseEntry, evidence};
