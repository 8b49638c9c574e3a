//! The day's universe file (seed 001 §2.2), `universe/YYYYMMDD_{market}.json`: built once
//! per trading day from the provider's listings and a filter, and reloaded on a restart so
//! the day's universe never changes. The one owner of that file's format: the collector
//! writes it and the ETL reads it through here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use model::{Market, Price, Provider, Symbol, UniverseEntry};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UniverseFile {
    pub date: String,
    pub market: Market,
    pub provider: Provider,
    pub source: String,
    pub filter: Filter,
    pub count: usize,
    pub symbols: Vec<UniverseEntry>,
}

/// The day's selection rule, written into the universe file so the file says how it was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Filter {
    pub min_prev_close: Price,
    /// Crypto: only pairs quoted in this currency (`KRW` for `KRW-BTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Crypto: only pairs that traded at least this value over 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_traded_value_24h: Option<Price>,
}

impl Filter {
    pub fn keeps(&self, e: &UniverseEntry) -> bool {
        e.prev_close >= self.min_prev_close
            && self
                .quote
                .as_ref()
                .is_none_or(|q| e.symbol.as_str().strip_prefix(q.as_str()).is_some_and(|r| r.starts_with('-')))
            && self.min_traded_value_24h.is_none_or(|m| e.traded_value_24h.is_some_and(|v| v >= m))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UniverseError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a universe file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Archive(#[from] crate::ArchiveError),
}

pub fn path(root: &Path, date: &str, market: Market) -> PathBuf {
    root.join("universe").join(format!("{date}_{market}.json"))
}

/// Reads a universe file's bytes.
pub fn decode(bytes: &[u8]) -> Result<UniverseFile, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The day's universe if it was already built (a restart reloads it, never rebuilds).
pub fn load(root: &Path, date: &str, market: Market) -> Result<Option<UniverseFile>, UniverseError> {
    let file = path(root, date, market);
    match std::fs::read(&file) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|source| UniverseError::Parse { path: file, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UniverseError::Io { path: file, source }),
    }
}

/// Loads the day's universe if it was already built, else filters `listings` and writes it.
pub fn load_or_build(
    root: &Path,
    date: &str,
    market: Market,
    provider: Provider,
    filter: Filter,
    listings: impl FnOnce() -> Vec<UniverseEntry>,
) -> Result<(UniverseFile, bool), UniverseError> {
    if let Some(u) = load(root, date, market)? {
        return Ok((u, true));
    }
    let mut symbols: Vec<UniverseEntry> = listings().into_iter().filter(|l| filter.keeps(l)).collect();
    symbols.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    let u = UniverseFile {
        date: date.to_string(),
        market,
        provider,
        source: provider.to_string(),
        filter,
        count: symbols.len(),
        symbols,
    };
    write(root, &u)?;
    Ok((u, false))
}

impl UniverseFile {
    pub fn symbols(&self) -> Vec<Symbol> {
        self.symbols.iter().map(|e| e.symbol.clone()).collect()
    }
}

/// Writes `u` as the day's universe file under `root`.
pub fn write(root: &Path, u: &UniverseFile) -> Result<(), UniverseError> {
    let file = path(root, &u.date, u.market);
    let bytes = serde_json::to_vec_pretty(u).map_err(|source| UniverseError::Parse { path: file.clone(), source })?;
    write_atomic(&file, &bytes)
}

/// Written like an archive file (archive::write_atomic: folders 0750, the file 0640 created
/// new, never through a link, fsynced and renamed over): a crash leaves either the old file
/// or the new one, and the umask decides nothing.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UniverseError> {
    if let Some(dir) = path.parent() {
        crate::create_dirs_synced(dir)?;
    }
    crate::write_atomic(path, bytes, crate::FILE_MODE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(code: &str, pc: i64) -> UniverseEntry {
        UniverseEntry {
            symbol: Symbol::new(code).unwrap(),
            name: code.into(),
            prev_close: Price::from_int(pc),
            traded_value_24h: None,
        }
    }

    #[test]
    fn filters_once_and_reloads_the_same_day() {
        let dir = tempfile::tempdir().unwrap();
        let filter = Filter { min_prev_close: Price::from_int(4000), quote: None, min_traded_value_24h: None };
        let (u, loaded) =
            load_or_build(dir.path(), "20260114", Market::KrStocks, Provider::Sim, filter.clone(), || {
                vec![entry("000020", 3995), entry("005930", 71500), entry("000100", 4000)]
            })
            .unwrap();
        assert!(!loaded);
        assert_eq!(u.symbols(), vec![Symbol::new("000100").unwrap(), Symbol::new("005930").unwrap()]);
        // A restart must not rebuild, even if the provider now lists something else.
        let (again, loaded) = load_or_build(dir.path(), "20260114", Market::KrStocks, Provider::Sim, filter, || {
            vec![entry("999990", 9000)]
        })
        .unwrap();
        assert!(loaded);
        assert_eq!(again, u);
        assert!(dir.path().join("universe/20260114_kr_stocks.json").exists());
    }
}

#[cfg(test)]
mod crypto_tests {
    use super::*;

    #[test]
    fn crypto_filter_keeps_quote_market_pairs_with_enough_24h_value() {
        let e = |s: &str, v: Option<i64>| UniverseEntry {
            symbol: Symbol::new(s).unwrap(),
            name: s.into(),
            prev_close: Price::from_int(1),
            traded_value_24h: v.map(Price::from_int),
        };
        let f = Filter {
            min_prev_close: Price::ZERO,
            quote: Some("KRW".into()),
            min_traded_value_24h: Some(Price::from_int(1_000_000_000)),
        };
        assert!(f.keeps(&e("KRW-BTC", Some(5_000_000_000))));
        assert!(!f.keeps(&e("KRW-DOGE", Some(999_999_999))), "too little traded");
        assert!(!f.keeps(&e("BTC-ETH", Some(5_000_000_000))), "other quote market");
        assert!(!f.keeps(&e("KRWX-ABC", Some(5_000_000_000))), "quote must be the whole prefix");
        assert!(!f.keeps(&e("KRW-NEW", None)), "no 24h value reported");
    }
}
