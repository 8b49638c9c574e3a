//! The tick-rate tables (`market_ticks`, `scalp_ticks`) go in with one binary COPY straight
//! into the table (its daily partition); only when that COPY hits a unique violation — a
//! re-run, an overlap with the live sink — is the transaction rolled back and the batch merged
//! through a per-session TEMP staging table with `INSERT … SELECT … ON CONFLICT DO NOTHING`,
//! so one duplicate never costs the rest of its batch while fresh data costs a single COPY.
//! A batch is split by symbol over parallel connections.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use futures_util::{SinkExt, pin_mut};
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;

use super::{PgStore, ts};
use crate::backend::shared::side_str;
use crate::error::StoreError;
use crate::pgcopy::CopyBuf;
use crate::rows::*;

/// Writes `market_ticks` rows (and keeps `latest_prices` current); returns the rows that were new.
pub(super) async fn write_market_ticks(pg: &PgStore, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
    copy_load(pg, rows).await
}

/// Writes `scalp_ticks` rows; returns the rows that were new.
pub(super) async fn write_scalp_ticks(pg: &PgStore, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
    copy_load(pg, rows).await
}

/// Loads `rows` with binary COPY, split over up to `copy_connections` connections that
/// run in parallel, each part in its own transaction (a failed part leaves the others
/// stored; a retry is a no-op for them). Returns the rows that were new.
async fn copy_load<R: CopyTable>(pg: &PgStore, rows: Vec<R>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let parts = plan_parts(&rows, pg.copy_connections);
    let rows = Arc::new(rows);
    let spawned: Vec<_> = parts
        .into_iter()
        .map(|part| tokio::spawn(copy_part(pg.pool.clone(), rows.clone(), part, pg.copy_chunk_rows)))
        .collect();
    let mut n = 0;
    let mut first_err = None;
    for task in spawned {
        match task.await.map_err(StoreError::from).and_then(|r| r) {
            Ok(k) => n += k,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// The newest row of each (symbol, provider) among `rows` in key order (symbol, time,
/// provider, trade id), where it is the last of its pair; the result stays in key order.
fn newest_per_symbol_and_provider<'a>(rows: &[&'a MarketTickRow]) -> Vec<&'a MarketTickRow> {
    let mut out: Vec<&MarketTickRow> = Vec::new();
    let mut symbol_start = 0;
    for r in rows {
        if out.get(symbol_start).is_some_and(|first| first.symbol != r.symbol) {
            symbol_start = out.len();
        }
        match out[symbol_start..].iter_mut().find(|o| o.provider == r.provider) {
            Some(o) => *o = r,
            None => out.push(r),
        }
    }
    // Within a symbol, keep the upsert in (symbol, provider) key order.
    out.sort_by(|a, b| (a.symbol.as_str(), a.provider.as_str()).cmp(&(b.symbol.as_str(), b.provider.as_str())));
    out
}

/// A table loaded with binary COPY.
trait CopyTable: Sized + Send + Sync + 'static {
    const TABLE: &'static str;
    /// Its per-session TEMP twin made by `so_prepare_staging()` (migration 004).
    const STAGE: &'static str;
    /// Every column, in the table's order (the staging merge is `SELECT *`).
    const COLUMNS: &'static str;
    fn encode(&self, out: &mut CopyBuf);
    /// The leading column of the natural key (the symbol): a part never splits one.
    fn group(&self) -> &str;
    /// The order of the table's natural key.
    fn key_cmp(a: &Self, b: &Self) -> std::cmp::Ordering;
    /// More work in the same transaction once the rows (in key order) are in.
    fn after(
        _tx: &deadpool_postgres::Transaction<'_>,
        _rows: &[&Self],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Splits a batch into at most `parts` parts of whole symbols, contiguous in key order and
/// of about equal size, as row indices grouped by symbol. Each connection then loads its own
/// symbols, so parallel loads neither touch the same index leaf pages nor upsert the same
/// `latest_prices` rows, and in key order a symbol's index inserts land on one leaf page
/// after another instead of hopping between every symbol's page (docs/benchmarks.md).
/// Grouping is linear; a feed keeps each symbol's rows in time order, so the groups usually
/// need no sort at all (`copy_part` checks).
fn plan_parts<R: CopyTable>(rows: &[R], parts: usize) -> Vec<Vec<u32>> {
    let mut groups: HashMap<&str, Vec<u32>> = HashMap::default();
    for (i, r) in rows.iter().enumerate() {
        groups.entry(r.group()).or_default().push(i as u32);
    }
    let mut groups: Vec<(&str, Vec<u32>)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let target = rows.len().div_ceil(parts.max(1));
    let mut out = Vec::with_capacity(parts);
    let mut current: Vec<u32> = Vec::with_capacity(target);
    for (_, g) in groups {
        current.extend_from_slice(&g);
        if current.len() >= target && out.len() + 1 < parts {
            out.push(std::mem::replace(&mut current, Vec::with_capacity(target)));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Encodes `rows` and streams them into `COPY … FROM STDIN`, `chunk_rows` rows per message:
/// the server parses one message while the next is encoded, so neither side waits for a
/// whole batch.
async fn copy_stream<R: CopyTable>(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    rows: &[&R],
    chunk_rows: usize,
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(&format!("COPY {table} ({}) FROM STDIN (FORMAT binary)", R::COLUMNS)).await?;
    pin_mut!(sink);
    let mut out = CopyBuf::new();
    let mut written = 0;
    for chunk in rows.chunks(chunk_rows.max(1)) {
        for r in chunk {
            r.encode(&mut out);
        }
        written += chunk.len();
        if written < rows.len() {
            let bytes = out.take();
            sink.send(bytes).await?;
        }
    }
    sink.send(out.finish()).await?;
    sink.finish().await
}

async fn copy_part<R: CopyTable>(
    pool: Pool,
    rows: Arc<Vec<R>>,
    mut idx: Vec<u32>,
    chunk_rows: usize,
) -> Result<u64, StoreError> {
    let key = |a: &u32, b: &u32| R::key_cmp(&rows[*a as usize], &rows[*b as usize]);
    if !idx.is_sorted_by(|a, b| key(a, b).is_le()) {
        idx.sort_by(key);
    }
    let part: Vec<&R> = idx.iter().map(|&i| &rows[i as usize]).collect();
    let mut c = pool.get().await?;
    {
        let tx = c.transaction().await?;
        match copy_stream(&tx, R::TABLE, &part, chunk_rows).await {
            Ok(n) => {
                R::after(&tx, &part).await?;
                tx.commit().await?;
                return Ok(n);
            }
            // The COPY was the transaction's first write, so rolling it all back loses
            // nothing, and needs no savepoint (whose subtransaction every row would pay for).
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => tx.rollback().await?,
            Err(e) => return Err(e.into()),
        }
    }
    let tx = c.transaction().await?;
    tx.execute("SELECT so_prepare_staging()", &[]).await?;
    copy_stream(&tx, R::STAGE, &part, chunk_rows).await?;
    let n =
        tx.execute(&format!("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING", R::TABLE, R::STAGE), &[]).await?;
    R::after(&tx, &part).await?;
    tx.commit().await?;
    Ok(n)
}

impl CopyTable for MarketTickRow {
    const TABLE: &'static str = "market_ticks";
    const STAGE: &'static str = "so_stage_market_ticks";
    const COLUMNS: &'static str = "symbol, time, provider, trade_id, market, price, volume, side, cum_volume, change, \
        schema_version, receive_time, session_id, mitigation_level, quality_flag, raw_ref";

    fn group(&self) -> &str {
        self.symbol.as_str()
    }

    fn key_cmp(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.symbol.as_str(), a.time, a.provider.as_str(), &a.trade_id).cmp(&(
            b.symbol.as_str(),
            b.time,
            b.provider.as_str(),
            &b.trade_id,
        ))
    }

    fn encode(&self, out: &mut CopyBuf) {
        out.row(16);
        out.text(self.symbol.as_str());
        out.timestamptz(self.time);
        out.text(self.provider.as_str());
        out.text(&self.trade_id);
        out.text(self.market.as_str());
        out.numeric(self.price.0);
        out.numeric(self.volume.0);
        out.opt_text(side_str(self.side));
        out.opt_numeric(self.cum_volume.map(|q| q.0));
        out.opt_numeric(self.change.map(|p| p.0));
        out.row_meta(&self.meta);
    }

    /// Keeps `latest_prices` (the newest trade per symbol and provider) current. The newest
    /// row per key is picked here, so the statement carries one row per symbol, in key order:
    /// concurrent writers then lock shared keys in the same order and cannot deadlock.
    async fn after(tx: &deadpool_postgres::Transaction<'_>, rows: &[&Self]) -> Result<(), StoreError> {
        let latest = newest_per_symbol_and_provider(rows);
        let symbol: Vec<&str> = latest.iter().map(|r| r.symbol.as_str()).collect();
        let provider: Vec<&str> = latest.iter().map(|r| r.provider.as_str()).collect();
        let market: Vec<&str> = latest.iter().map(|r| r.market.as_str()).collect();
        let time: Vec<jiff::Timestamp> = latest.iter().map(|r| ts(r.time)).collect();
        let price: Vec<Decimal> = latest.iter().map(|r| r.price.0).collect();
        let volume: Vec<Decimal> = latest.iter().map(|r| r.volume.0).collect();
        let trade_id: Vec<&str> = latest.iter().map(|r| r.trade_id.as_str()).collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO latest_prices (symbol, provider, market, time, price, volume, trade_id)
                 SELECT * FROM unnest($1::varchar[], $2::text[], $3::text[], $4::timestamptz[], $5::numeric[],
                    $6::numeric[], $7::text[])
                 ON CONFLICT (symbol, provider) DO UPDATE SET market = excluded.market, time = excluded.time,
                    price = excluded.price, volume = excluded.volume, trade_id = excluded.trade_id
                 WHERE excluded.time > latest_prices.time
                    OR (excluded.time = latest_prices.time AND excluded.trade_id > latest_prices.trade_id)",
            )
            .await?;
        tx.execute(&st, &[&symbol, &provider, &market, &time, &price, &volume, &trade_id]).await?;
        Ok(())
    }
}

impl CopyTable for ScalpTickRow {
    const TABLE: &'static str = "scalp_ticks";
    const STAGE: &'static str = "so_stage_scalp_ticks";
    const COLUMNS: &'static str = "symbol, event_time, provider, market, bid_price, ask_price, bid_size, ask_size, \
        last_price, volume, data_age_ms, sample_interval_ms, schema_version, receive_time, session_id, \
        mitigation_level, quality_flag, raw_ref";

    fn group(&self) -> &str {
        self.symbol.as_str()
    }

    fn key_cmp(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.symbol.as_str(), a.event_time, a.provider.as_str()).cmp(&(
            b.symbol.as_str(),
            b.event_time,
            b.provider.as_str(),
        ))
    }

    fn encode(&self, out: &mut CopyBuf) {
        out.row(18);
        out.text(self.symbol.as_str());
        out.timestamptz(self.event_time);
        out.text(self.provider.as_str());
        out.text(self.market.as_str());
        out.opt_numeric(self.bid_price.map(|p| p.0));
        out.opt_numeric(self.ask_price.map(|p| p.0));
        out.opt_numeric(self.bid_size.map(|q| q.0));
        out.opt_numeric(self.ask_size.map(|q| q.0));
        out.opt_numeric(self.last_price.map(|p| p.0));
        out.opt_numeric(self.volume.map(|q| q.0));
        out.opt_int8(self.data_age_ms);
        out.int4(self.sample_interval_ms.min(i32::MAX as u64) as i32);
        out.row_meta(&self.meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Market, Price, Provider, Qty, QualityFlag, Symbol, UtcTime};

    use crate::backend::shared::latest_of;

    fn row(symbol: &str, provider: Provider, ms: i64, trade_id: &str) -> MarketTickRow {
        let time = UtcTime::from_millis(1_768_348_800_000 + ms);
        MarketTickRow {
            provider,
            market: Market::KrStocks,
            symbol: Symbol::new(symbol).unwrap(),
            time,
            trade_id: trade_id.into(),
            price: Price::from_int(70_000 + ms),
            volume: Qty::from_int(1),
            side: None,
            cum_volume: None,
            change: None,
            meta: RowMeta {
                schema_version: model::SCHEMA_VERSION.into(),
                receive_time: time,
                session_id: "s".into(),
                mitigation_level: 0,
                quality_flag: QualityFlag::Normal,
                raw_ref: None,
            },
        }
    }

    #[test]
    fn parts_hold_whole_symbols_in_key_order_and_every_row_once() {
        // 5 symbols interleaved as a feed delivers them, one of them three times as busy.
        let mut rows = Vec::new();
        for t in 0..60 {
            for s in ["000660", "005930", "035420", "000270", "051910"] {
                if s == "005930" || t % 3 == 0 {
                    rows.push(row(s, Provider::Sim, t, &t.to_string()));
                }
            }
        }
        for parts in [1, 2, 3, 8] {
            let plan = plan_parts(&rows, parts);
            assert!(!plan.is_empty() && plan.len() <= parts);
            let mut seen: Vec<u32> = plan.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(seen, (0..rows.len() as u32).collect::<Vec<_>>(), "{parts} part(s)");
            let symbols: Vec<Vec<&str>> = plan
                .iter()
                .map(|p| {
                    let mut s: Vec<&str> = p.iter().map(|&i| rows[i as usize].symbol.as_str()).collect();
                    s.dedup();
                    s
                })
                .collect();
            let flat: Vec<&str> = symbols.iter().flatten().copied().collect();
            assert_eq!(flat, ["000270", "000660", "005930", "035420", "051910"], "{parts} part(s): {symbols:?}");
            // A feed keeps each symbol in time order, so every part is already in key order.
            for p in &plan {
                assert!(p.is_sorted_by(|a, b| MarketTickRow::key_cmp(&rows[*a as usize], &rows[*b as usize]).is_le()));
            }
        }
        // Two parts of whole symbols: the busy one and its predecessors, then the rest.
        let two = plan_parts(&rows, 2);
        assert_eq!(two.iter().map(Vec::len).collect::<Vec<_>>(), [100, 40]);
    }

    #[test]
    fn newest_row_per_symbol_and_provider_from_key_order() {
        let rows = [
            row("000660", Provider::Sim, 5, "9"),
            row("005930", Provider::Kis, 1, "1"),
            row("005930", Provider::Sim, 1, "2"),
            row("005930", Provider::Kis, 2, "3"),
            row("005930", Provider::Kis, 2, "4"),
            row("005930", Provider::Sim, 3, "5"),
        ];
        let refs: Vec<&MarketTickRow> = rows.iter().collect();
        let got: Vec<(&str, &str, &str)> = newest_per_symbol_and_provider(&refs)
            .iter()
            .map(|r| (r.symbol.as_str(), r.provider.as_str(), r.trade_id.as_str()))
            .collect();
        assert_eq!(got, [("000660", "sim", "9"), ("005930", "kis", "4"), ("005930", "sim", "5")]);
        // The same choice the SQLite path makes from unordered rows.
        let mut theirs: Vec<(&str, &str, &str)> =
            latest_of(&rows).iter().map(|r| (r.symbol.as_str(), r.provider.as_str(), r.trade_id.as_str())).collect();
        theirs.sort();
        assert_eq!(got, theirs);
    }
}
