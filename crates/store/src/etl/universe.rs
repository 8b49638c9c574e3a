//! The day's universe snapshots (`universe/YYYYMMDD_{market}.json`): the symbols each market
//! was observed with, their names and previous closes.

use std::collections::HashSet;
use std::path::PathBuf;

use super::day_load::DayLoad;
use crate::backend::Backend;
use crate::error::StoreError;
use crate::rows::{Table, UniverseRow};

/// Loads the day's universe files, one row per symbol and market. A file is one JSON
/// document, not lines: one that does not parse is one bad line (line 0) and loads nothing.
pub(super) async fn load_universe<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    files: &[PathBuf],
) -> Result<(), StoreError> {
    let mut universe = Vec::new();
    let mut universe_keys = HashSet::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
        cx.report.files += 1;
        match archive::universe::decode(&bytes) {
            Ok(u) => {
                for e in u.symbols {
                    cx.line(Table::Universe);
                    universe_keys.insert((u.market, u.provider, e.symbol.clone()));
                    universe.push(UniverseRow {
                        trade_date: cx.day,
                        market: u.market,
                        provider: u.provider,
                        symbol: e.symbol,
                        name: e.name,
                        prev_close: e.prev_close,
                        source: u.source.clone(),
                    });
                }
            }
            Err(e) => cx.bad(path, 0, e),
        }
    }
    cx.expect(Table::Universe, universe_keys.len() as u64);
    for chunk in universe.chunks(cx.batch) {
        let n = store.write_universe(chunk.to_vec()).await?;
        cx.add(Table::Universe, n);
    }
    Ok(())
}
