//! What a provider lists for the day's universe.

use serde::{Deserialize, Serialize};

use crate::ids::Symbol;
use crate::num::Price;

/// One instrument of the day's universe as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniverseEntry {
    pub symbol: Symbol,
    pub name: String,
    pub prev_close: Price,
    /// Traded value over the last 24 hours in the quote currency, where the provider
    /// reports it (crypto): the crypto universe filter reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traded_value_24h: Option<Price>,
}
