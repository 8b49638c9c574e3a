//! How rows are stored in SQLite and read back: instants as milliseconds, decimals as their
//! exact text, and the decoding of a column that does not parse as a [`StoreError`] carried
//! through rusqlite's row-mapping closures.

use std::str::FromStr;

use rusqlite::Row;

use model::{Side, UtcTime};

use crate::backend::shared::{quality_flag, side_from_str};
use crate::error::StoreError;
use crate::rows::{RowMeta, Table};

pub(super) fn dec<T: ToString>(v: &T) -> String {
    v.to_string()
}
pub(super) fn opt_dec<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

pub(super) fn get_parse<T: FromStr>(r: &Row<'_>, i: usize, column: &'static str) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    // Parsed from SQLite's own buffer: a copy into a String per column was a tenth of a
    // 1-year bars query (docs/benchmarks.md, "bench api"). Anything but UTF-8 text takes
    // the owned path, for rusqlite's error naming the column's type.
    let s = match r.get_ref(i)? {
        rusqlite::types::ValueRef::Text(b) => std::str::from_utf8(b).ok(),
        _ => None,
    };
    let parsed = match s {
        Some(s) => s.parse::<T>(),
        None => r.get::<_, String>(i)?.parse::<T>(),
    };
    parsed.map_err(|e| decode_err(column, e.to_string()))
}

pub(super) fn get_opt_parse<T: FromStr>(r: &Row<'_>, i: usize, column: &'static str) -> rusqlite::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let s: Option<String> = r.get(i)?;
    s.map(|s| s.parse::<T>().map_err(|e| decode_err(column, e.to_string()))).transpose()
}

pub(super) fn decode_err(column: &'static str, why: String) -> rusqlite::Error {
    carry(StoreError::Decode { column, why })
}

/// `e` as the error of a row-mapping closure; `StoreError`'s `From<rusqlite::Error>` takes
/// it back out, so the caller sees `e` itself.
fn carry(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

pub(super) fn time(r: &Row<'_>, i: usize) -> rusqlite::Result<UtcTime> {
    Ok(UtcTime::from_millis(r.get(i)?))
}

pub(super) fn get_side(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Side>> {
    let s: Option<String> = r.get(i)?;
    Ok(side_from_str(s.as_deref()))
}

/// The common meta of a row of `table`, from column `base` on: `schema_version`,
/// `receive_time` (`with_receive`), `session_id`, `mitigation_level`, `quality_flag` and
/// `raw_ref` (`with_ref`).
pub(super) fn row_meta(
    r: &Row<'_>,
    base: usize,
    with_receive: bool,
    with_ref: bool,
    table: Table,
) -> rusqlite::Result<RowMeta> {
    let mut i = base;
    let schema_version: String = r.get(i)?;
    i += 1;
    let receive_time = if with_receive {
        i += 1;
        time(r, i - 1)?
    } else {
        UtcTime::default()
    };
    let session_id: String = r.get(i)?;
    let mitigation_level: i64 = r.get(i + 1)?;
    let q: String = r.get(i + 2)?;
    let raw_ref = if with_ref { r.get(i + 3)? } else { None };
    Ok(RowMeta {
        schema_version,
        receive_time,
        session_id,
        mitigation_level: mitigation_level.clamp(0, 255) as u8,
        quality_flag: quality_flag(&q, table).map_err(carry)?,
        raw_ref,
    })
}
