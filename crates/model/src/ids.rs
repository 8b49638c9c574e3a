//! Identifiers that are checked once, at the edge, so the rest of the code can trust them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("unknown provider {0:?} (expected kis, kiwoom, upbit, alpaca or sim)")]
    Provider(String),
    #[error("unknown market {0:?} (expected kr_stocks, crypto or us_stocks)")]
    Market(String),
    #[error("invalid symbol {0:?}: {1}")]
    Symbol(String, &'static str),
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $err:ident, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                match s { $($text => Ok($name::$variant),)+ other => Err(IdError::$err(other.to_string())) }
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// Where a record came from. `Sim` is the built-in simulated exchange, kept distinct so
    /// simulated data can never be mistaken for a broker's.
    Provider, Provider, {
        Kis => "kis",
        Kiwoom => "kiwoom",
        Upbit => "upbit",
        Alpaca => "alpaca",
        Sim => "sim",
    }
);

string_enum!(
    /// The market a symbol trades in; names match the archive folders of seed 001 §2.7.
    Market, Market, {
        KrStocks => "kr_stocks",
        Crypto => "crypto",
        UsStocks => "us_stocks",
    }
);

/// Longest symbol we accept: the seed's `VARCHAR(20)` columns.
const SYMBOL_MAX: usize = 20;

/// An instrument code as the provider spells it: `005930`, `0000J0` (KRX codes may contain
/// letters), `KRW-BTC`, `BRK.B`. Validated on construction so every stored symbol fits the
/// database columns and is safe inside a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(Box<str>);

impl Symbol {
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Symbol(s.into(), "empty"));
        }
        if s.len() > SYMBOL_MAX {
            return Err(IdError::Symbol(s.into(), "longer than 20 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            return Err(IdError::Symbol(s.into(), "only letters, digits, '-', '.', '_' allowed"));
        }
        Ok(Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Symbol {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Symbol::new(s)
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Symbol::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_checked() {
        assert!(Symbol::new("005930").is_ok());
        assert!(Symbol::new("0000J0").is_ok());
        assert!(Symbol::new("KRW-BTC").is_ok());
        assert_eq!(Symbol::new(""), Err(IdError::Symbol("".into(), "empty")));
        assert!(Symbol::new("../etc").is_err());
        assert!(Symbol::new("A".repeat(21).as_str()).is_err());
    }

    #[test]
    fn enums_round_trip_through_text() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), *p);
        }
        assert_eq!("kr_stocks".parse::<Market>().unwrap(), Market::KrStocks);
        assert!("KIS".parse::<Provider>().is_err());
    }
}
