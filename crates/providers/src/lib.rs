pub mod kis;
pub mod provider;
pub mod ratelimit;
pub mod sim;
pub mod upbit;

pub use provider::{MarketProvider, ProviderError, UniverseEntry, evidence};
