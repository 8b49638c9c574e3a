//! Keeping a PostgreSQL database in shape over time: daily partitions ahead of the data
//! (native mode), retention, and the TimescaleDB continuous aggregates' refresh. The SQL
//! functions doing the work come with the migrations; these calls only drive them.

use jiff::civil::Date;

use model::Day;

use super::{PgStore, ts};
use crate::backend::shared::retained;
use crate::error::StoreError;
use crate::rows::{Table, day_range};

pub(super) async fn maintain(pg: &PgStore, from: Date, days: u32) -> Result<u32, StoreError> {
    let c = pg.client().await?;
    let n: i32 = c.query_one("SELECT so_ensure_partitions($1, $2)", &[&from, &(days as i32)]).await?.get(0);
    Ok(n as u32)
}

pub(super) async fn retention_days(pg: &PgStore, table: Table, before: Day) -> Result<Vec<Day>, StoreError> {
    let (name, col) = retained(table)?;
    let c = pg.client().await?;
    if pg.is_timescale() {
        // Chunks do not follow Seoul days (the samples' daily chunks start at 09:00 Seoul), so
        // the days come from the rows. Only data past the window is read.
        let rows = c
            .query(
                &format!(
                    "SELECT DISTINCT ({col} AT TIME ZONE 'Asia/Seoul')::date FROM {name} WHERE {col} < $1 ORDER BY 1"
                ),
                &[&ts(before.start())],
            )
            .await?;
        return Ok(rows.iter().map(|r| Day::new(r.get(0))).collect());
    }
    // Native: the daily partitions retention can drop. Empty ones (created ahead, or for a
    // day without trading) need no one to hold them; rows in the DEFAULT partition are never
    // dropped by retention, so they hold nothing back either.
    let mut days = Vec::new();
    for part in daily_partitions(pg).await? {
        let Some(day) = part.strip_prefix(name).and_then(|d| d.strip_prefix('_')).and_then(|d| d.parse::<Day>().ok())
        else {
            continue;
        };
        if day >= before {
            continue;
        }
        // The name comes from the catalog and matched `{table}_YYYYMMDD`.
        let filled: bool = c.query_one(&format!("SELECT EXISTS (SELECT 1 FROM \"{part}\")"), &[]).await?.get(0);
        if filled {
            days.push(day);
        }
    }
    days.sort();
    Ok(days)
}

pub(super) async fn apply_retention(pg: &PgStore, table: Table, before: Option<Day>) -> Result<u32, StoreError> {
    let (name, _) = retained(table)?;
    let c = pg.client().await?;
    if pg.is_timescale() {
        // A background retention policy drops by age alone, whether or not a day is held; a
        // database migrated by an earlier binary may still have one. Maintenance drops chunks
        // itself, up to the horizon it worked out.
        c.execute(&format!("SELECT remove_retention_policy('{name}', if_exists => true)"), &[]).await?;
        let Some(before) = before else { return Ok(0) };
        // drop_chunks takes an "any"-typed bound, which cannot be a parameter; the literal
        // is our own formatted instant. Only chunks wholly before it go.
        let n: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM drop_chunks('{name}', older_than => '{}'::timestamptz)", before.start()),
                &[],
            )
            .await?
            .get(0);
        return Ok(n as u32);
    }
    let Some(before) = before else { return Ok(0) };
    // The migration's function drops the partitions of days ending by `p_now - keep`: with
    // `keep` zero and `p_now` the horizon's midnight, exactly the days before the horizon.
    // Intervals travel as text so no interval codec is needed.
    let zero = Some("0 milliseconds".to_string());
    let none: Option<String> = None;
    let (ticks, samples) = if table == Table::MarketTicks { (&zero, &none) } else { (&none, &zero) };
    let n: i32 = c
        .query_one(
            "SELECT so_apply_retention($1, $2::text::interval, $3::text::interval)",
            &[&ts(before.start()), ticks, samples],
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
