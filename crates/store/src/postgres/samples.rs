//! A page of one symbol's Track B samples, for `/api/v1/scalp`.

use rust_decimal::Decimal;

use model::{Price, Qty};

use super::queries::{from_ts, meta_at, parse};
use super::{PgStore, ts};
use crate::error::StoreError;
use crate::rows::{SampleQuery, ScalpTickRow, Table};

pub(super) async fn samples(pg: &PgStore, q: SampleQuery) -> Result<Vec<ScalpTickRow>, StoreError> {
    let c = pg.client().await?;
    let st = c
        .prepare_cached(
            "SELECT provider, market, symbol::text, event_time, bid_price, ask_price, bid_size, ask_size, last_price,
                volume, data_age_ms, sample_interval_ms,
                schema_version::text, receive_time, session_id::text, mitigation_level, quality_flag::text, raw_ref
             FROM scalp_ticks WHERE symbol = $1 AND event_time >= $2 AND event_time < $3
               AND ($4::text IS NULL OR provider = $4)
               AND ($6::timestamptz IS NULL OR (event_time, provider) > ($6, $7::text))
             ORDER BY event_time, provider LIMIT $5",
        )
        .await?;
    let provider = q.provider.map(|p| p.as_str());
    let (a_time, a_provider) = (q.after.map(|(t, _)| ts(t)), q.after.map(|(_, p)| p.as_str()));
    let rows = c
        .query(&st, &[&q.symbol.as_str(), &ts(q.from), &ts(q.to), &provider, &(q.limit as i64), &a_time, &a_provider])
        .await?;
    let price = |r: &tokio_postgres::Row, i| r.get::<_, Option<Decimal>>(i).map(Price);
    let qty = |r: &tokio_postgres::Row, i| r.get::<_, Option<Decimal>>(i).map(Qty);
    rows.iter()
        .map(|r| {
            Ok(ScalpTickRow {
                provider: parse(r.get(0), "provider")?,
                market: parse(r.get(1), "market")?,
                symbol: parse(r.get(2), "symbol")?,
                event_time: from_ts(r.get(3)),
                bid_price: price(r, 4),
                ask_price: price(r, 5),
                bid_size: qty(r, 6),
                ask_size: qty(r, 7),
                last_price: price(r, 8),
                volume: qty(r, 9),
                data_age_ms: r.get(10),
                sample_interval_ms: r.get::<_, i32>(11).max(0) as u64,
                meta: meta_at(r, 12, true, true, Table::ScalpTicks)?,
            })
        })
        .collect()
}
