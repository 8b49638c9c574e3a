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
    fn serializes_as_string() {
        let p: Price = "168512345678.12345".parse().unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"168512345678.12345\"");
        let back: Price = serde_json::from_str("\"168512345678.12345\"").unwrap();
        assert_eq!(back, p);
    }
}
