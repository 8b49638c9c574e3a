//! A page of one symbol's Track B samples, for `/api/v1/scalp`.

use rusqlite::params;

use super::SqliteStore;
use super::codec::{get_opt_parse, get_parse, row_meta, time};
use crate::error::StoreError;
use crate::rows::{SampleQuery, ScalpTickRow, Table};

pub(super) async fn samples(db: &SqliteStore, q: SampleQuery) -> Result<Vec<ScalpTickRow>, StoreError> {
    db.read(move |c| {
        let mut st = c.prepare_cached(
            "SELECT provider, market, symbol, event_time, bid_price, ask_price, bid_size, ask_size, last_price,
                volume, data_age_ms, sample_interval_ms,
                schema_version, receive_time, session_id, mitigation_level, quality_flag, raw_ref
             FROM scalp_ticks WHERE symbol = ?1 AND event_time >= ?2 AND event_time < ?3
               AND (?4 IS NULL OR provider = ?4)
               AND (?6 IS NULL OR (event_time, provider) > (?6, ?7))
             ORDER BY event_time, provider LIMIT ?5",
        )?;
        let after = q.after.as_ref();
        let rows = st
            .query_map(
                params![
                    q.symbol.as_str(),
                    q.from.as_millis(),
                    q.to.as_millis(),
                    q.provider.map(|p| p.as_str()),
                    q.limit,
                    after.map(|(t, _)| t.as_millis()),
                    after.map(|(_, p)| p.as_str()),
                ],
                |r| {
                    Ok(ScalpTickRow {
                        provider: get_parse(r, 0, "provider")?,
                        market: get_parse(r, 1, "market")?,
                        symbol: get_parse(r, 2, "symbol")?,
                        event_time: time(r, 3)?,
                        bid_price: get_opt_parse(r, 4, "bid_price")?,
                        ask_price: get_opt_parse(r, 5, "ask_price")?,
                        bid_size: get_opt_parse(r, 6, "bid_size")?,
                        ask_size: get_opt_parse(r, 7, "ask_size")?,
                        last_price: get_opt_parse(r, 8, "last_price")?,
                        volume: get_opt_parse(r, 9, "volume")?,
                        data_age_ms: r.get(10)?,
                        sample_interval_ms: r.get::<_, i64>(11)?.max(0) as u64,
                        meta: row_meta(r, 12, true, true, Table::ScalpTicks)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}
