//! Query and path parameters, each checked with an error that names it: a client that sends
//! `interval=2m` or `from=yesterday` is told which parameter and what it must be, with a 400,
//! never a 500.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use model::{Day, Provider, Symbol, UtcTime};
use store::BarInterval;

use crate::error::ApiError;

/// A request's query string, decoded.
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Decodes `a=1&b=x%20y`; a parameter given twice, or not UTF-8, is refused.
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let mut out = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8().map(|c| c.into_owned());
            let k = decode(k).map_err(|_| ApiError::bad_request("a query parameter name is not UTF-8"))?;
            let v = decode(v).map_err(|_| ApiError::bad_request(format!("{k}: the value is not UTF-8")))?;
            if out.insert(k.clone(), v).is_some() {
                return Err(ApiError::bad_request(format!("{k}: given more than once")));
            }
        }
        Ok(Params(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An RFC 3339 instant (`2026-01-14T00:31:05Z`, `2026-01-14T09:31:05+09:00`).
    pub fn time(&self, name: &str) -> Result<Option<UtcTime>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<jiff::Timestamp>().map(UtcTime::from_timestamp).map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name}: {v:?} is not an RFC 3339 time (e.g. 2026-01-14T09:00:00+09:00)"
                    ))
                })
            })
            .transpose()
    }

    /// A whole number in `[lo, hi]`.
    pub fn number(&self, name: &str, lo: u32, hi: u32) -> Result<Option<u32>, ApiError> {
        self.get(name)
            .map(|v| match v.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!("{name}: {v:?} must be a whole number from {lo} to {hi}"))),
            })
            .transpose()
    }

    pub fn provider(&self) -> Result<Option<Provider>, ApiError> {
        self.get("provider")
            .map(|v| {
                v.parse::<Provider>().map_err(|_| {
                    let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                    ApiError::bad_request(format!("provider: {v:?} is not one of {}", known.join(", ")))
                })
            })
            .transpose()
    }

    /// `interval`, 1m when absent.
    pub fn interval(&self) -> Result<BarInterval, ApiError> {
        match self.get("interval") {
            None => Ok(BarInterval::M1),
            Some(v) => BarInterval::ALL
                .into_iter()
                .find(|i| i.as_str() == v)
                .ok_or_else(|| ApiError::bad_request(format!("interval: {v:?} is not one of 1m, 10m, 1h, 1d"))),
        }
    }

    /// `[from, to)` of a paged route: `to` defaults to `now`, `from` to the beginning.
    pub fn range(&self, now: UtcTime) -> Result<(UtcTime, UtcTime), ApiError> {
        let to = self.time("to")?.unwrap_or(now);
        let from = self.time("from")?.unwrap_or(UtcTime::from_millis(0));
        if from >= to {
            return Err(ApiError::bad_request(format!("from: {from} must be before to ({to})")));
        }
        Ok((from, to))
    }

    /// A Seoul day, `YYYYMMDD`.
    pub fn day(&self, name: &str) -> Result<Option<Day>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<Day>().map_err(|_| ApiError::bad_request(format!("{name}: {v:?} is not a date YYYYMMDD")))
            })
            .transpose()
    }
}

/// The query of a paged route (`ticks`, `scalp`) as the OpenAPI document describes it;
/// [`Paged::parse`] reads it, naming the parameter a bad value is in.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the derive for the document only
pub struct PagedQuery {
    /// Start, inclusive (RFC 3339)
    from: Option<UtcTime>,
    /// End, exclusive (RFC 3339; default: now)
    to: Option<UtcTime>,
    /// Items per page (api.default_ticks; at most api.max_ticks)
    #[param(minimum = 1)]
    limit: Option<u32>,
    /// A next_cursor this API returned
    cursor: Option<String>,
    /// Only this provider's records
    provider: Option<Provider>,
}

/// What a paged route (`ticks`, `scalp`) is asked: one symbol's records in `[from, to)`,
/// `limit` per page (`api.default_ticks`, at most `api.max_ticks`), continuing after the
/// record whose key the `cursor` holds.
pub struct Paged {
    pub symbol: Symbol,
    pub provider: Option<Provider>,
    pub from: UtcTime,
    pub to: UtcTime,
    pub limit: u32,
    /// The cursor's parts (`n` of them, the last may hold the separator).
    pub after: Option<Vec<String>>,
}

impl Paged {
    pub fn parse(
        symbol_text: &str,
        query: Option<&str>,
        now: UtcTime,
        limits: &super::ApiLimits,
        n: usize,
    ) -> Result<Paged, ApiError> {
        let symbol = symbol(symbol_text)?;
        let p = Params::parse(query)?;
        let provider = p.provider()?;
        let limit = p.number("limit", 1, limits.max_ticks)?.unwrap_or(limits.default_ticks);
        let (from, to) = p.range(now)?;
        let after = p.get("cursor").map(|c| decode_cursor(c, n)).transpose()?;
        Ok(Paged { symbol, provider, from, to, limit, after })
    }

    /// Rows asked for with `limit + 1`: the page, and the cursor after its last row when
    /// there is more.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> Vec<String>) -> (Vec<T>, Option<String>) {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(|r| encode_cursor(&key(r))) } else { None };
        (rows, next)
    }
}

/// Opaque to clients: a record's key, hex-encoded.
fn encode_cursor(parts: &[String]) -> String {
    hex::encode(parts.join("|"))
}

/// A `cursor` this API did not hand out.
pub fn bad_cursor() -> ApiError {
    ApiError::bad_request("cursor: not a cursor this API returned (pass next_cursor unchanged)")
}

fn decode_cursor(c: &str, n: usize) -> Result<Vec<String>, ApiError> {
    let text = String::from_utf8(hex::decode(c).map_err(|_| bad_cursor())?).map_err(|_| bad_cursor())?;
    let parts: Vec<String> = text.splitn(n, '|').map(str::to_string).collect();
    if parts.len() == n { Ok(parts) } else { Err(bad_cursor()) }
}

/// The `{symbol}` of a path.
pub fn symbol(s: &str) -> Result<Symbol, ApiError> {
    Symbol::new(s).map_err(|e| ApiError::bad_request(format!("symbol: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_parameter_is_named() {
        let p = Params::parse(Some("from=yesterday&limit=0&provider=KIS&interval=2m&date=2026-01-14")).unwrap();
        let msg = |r: Result<_, ApiError>| r.map(|_: ()| ()).unwrap_err().message;
        assert!(msg(p.time("from").map(drop)).starts_with("from: \"yesterday\""));
        assert!(msg(p.number("limit", 1, 1000).map(drop)).starts_with("limit: \"0\" must be"));
        assert!(msg(p.provider().map(drop)).starts_with("provider: \"KIS\" is not one of kis"));
        assert!(msg(p.interval().map(drop)).starts_with("interval: \"2m\""));
        assert!(msg(p.day("date").map(drop)).starts_with("date: \"2026-01-14\""));
        assert!(Params::parse(Some("a=1&a=2")).unwrap_err().message.starts_with("a: given more than once"));
        assert!(symbol("../etc").unwrap_err().message.starts_with("symbol: "));
    }

    #[test]
    fn good_parameters_decode() {
        let p = Params::parse(Some("from=2026-01-14T09%3A00%3A00%2B09%3A00&limit=5&interval=1h")).unwrap();
        assert_eq!(p.time("from").unwrap(), Some(UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap()));
        assert_eq!(p.number("limit", 1, 1000).unwrap(), Some(5));
        assert_eq!(p.interval().unwrap(), BarInterval::H1);
        assert_eq!(p.time("to").unwrap(), None);
    }
}
