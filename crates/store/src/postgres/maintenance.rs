//! Keeping a PostgreSQL database in shape over time: daily partitions ahead of the data
//! (native mode), retention, and the TimescaleDB continuous aggregates' refresh. The SQL
//! functions doing the work come with the migrations; these calls only drive them.

use std::time::Duration;

use jiff::civil::Date;

use model::UtcTime;

use super::{PgStore, ts};
use crate::error::StoreError;
use crate::rows::day_range;

pub(super) async fn maintain(pg: &PgStore, from: Date, days: u32) -> Result<u32, StoreError> {
    let c = pg.client().await?;
    let n: i32 = c.query_one("SELECT so_ensure_partitions($1, $2)", &[&from, &(days as i32)]).await?.get(0);
    Ok(n as u32)
}

pub(super) async fn apply_retention(
    pg: &PgStore,
    now: UtcTime,
    ticks: Option<Duration>,
    samples: Option<Duration>,
) -> Result<u32, StoreError> {
    let c = pg.client().await?;
    // Intervals travel as text ('N milliseconds') so no interval codec is needed.
    let iv = |d: Option<Duration>| d.map(|d| format!("{} milliseconds", d.as_millis()));
    let n: i32 = c
        .query_one(
            "SELECT so_apply_retention($1, $2::text::interval, $3::text::interval)",
            &[&ts(now), &iv(ticks), &iv(samples)],
        )
        .await?
        .get(0);
    Ok(n as u32)
}

pub(super) async fn daily_partitions(pg: &PgStore) -> Result<Vec<String>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname IN ('market_ticks', 'scalp_ticks') AND c.relname ~ '_[0-9]{8}$'
             ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn refresh_rollups(pg: &PgStore, day: Date) -> Result<(), StoreError> {
    if !pg.is_timescale() {
        return Ok(());
    }
    let c = pg.client().await?;
    let (lo, hi) = day_range(day);
    // refresh_continuous_aggregate takes "any"-typed bounds, which cannot be bound as
    // parameters; the literals are our own formatted instants.
    for view in ["bars_10m", "bars_1h", "bars_1d"] {
        c.batch_execute(&format!(
            "CALL refresh_continuous_aggregate('{view}', '{lo}'::timestamptz, '{hi}'::timestamptz)"
        ))
        .await?;
    }
    Ok(())
}
