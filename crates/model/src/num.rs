//! Exact decimal prices and quantities. Never `f64`: a price read from a frame is stored with
//! the digits it arrived with, and serialized as a JSON string so no reader can round it.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

macro_rules! decimal_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub Decimal);

        impl $name {
            pub const ZERO: $name = $name(Decimal::ZERO);
            pub fn is_positive(&self) -> bool { self.0 > Decimal::ZERO }
            pub fn is_negative(&self) -> bool { self.0 < Decimal::ZERO }
            pub fn from_int(v: i64) -> Self { $name(Decimal::from(v)) }
            /// |self| ≤ `limit` (see [`PLAUSIBLE_ABS_MAX`]).
            pub fn within(&self, limit: Decimal) -> bool { self.0.abs() <= limit }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { fmt::Display::fmt(&self.0, f) }
        }
        impl FromStr for $name {
            type Err = rust_decimal::Error;
            /// Accepts plain and exponent notation (`1.16539E8`), exactly.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.bytes().any(|b| b == b'e' || b == b'E') {
                    Decimal::from_scientific(s).map(|d| $name(d.normalize()))
                } else {
                    Decimal::from_str_exact(s).map($name)
                }
            }
        }
        impl From<Decimal> for $name {
            fn from(d: Decimal) -> Self { $name(d) }
        }
    };
}

/// The largest magnitude of a price, size or volume the recorder accepts from a provider:
/// 1e18. Real quotes are far below it (the largest KRW prices and day volumes are around
/// 1e12), and sums and differences of numbers within it never overflow a `Decimal`
/// (±7.9e28). `observer.limits.max_abs_number` may lower it, never raise it.
pub const PLAUSIBLE_ABS_MAX: Decimal = Decimal::from_parts(0xA764_0000, 0x0DE0_B6B3, 0, false, 0);

decimal_newtype!(
    /// A price in the instrument's quote currency.
    Price
);
decimal_newtype!(
    /// A size or volume: shares, contracts or coin units (fractional for crypto).
    Qty
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_form_is_exact() {
        let p: Price = "1.16539E8".parse().unwrap();
        assert_eq!(p.to_string(), "116539000");
        let q: Qty = "0.00012345".parse().unwrap();
        assert_eq!(q.to_string(), "0.00012345");
    }

    #[test]
    fn plausible_bound_is_1e18() {
        assert_eq!(PLAUSIBLE_ABS_MAX, Decimal::from(1_000_000_000_000_000_000i64));
        assert!(Qty(PLAUSIBLE_ABS_MAX).within(PLAUSIBLE_ABS_MAX));
        assert!(Qty(-PLAUSIBLE_ABS_MAX).within(PLAUSIBLE_ABS_MAX));
        assert!(!Qty(Decimal::MIN).within(PLAUSIBLE_ABS_MAX));
    }

    #[test]
    fn serializes_as_string() {
        let p: Price = "168512345678.12345".parse().unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"168512345678.12345\"");
        let back: Price = serde_json::from_str("\"168512345678.12345\"").unwrap();
        assert_eq!(back, p);
    }
}
