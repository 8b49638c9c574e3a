//! REST: the quotation paths under `/v1`, each behind the per-group rate gate.

use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use model::{Price, Qty, UtcTime};
use rust_decimal::Decimal;

use super::encode::{Fmt, ask_bid, encode_book, encode_ticker};
use super::faults::{bump, take};
use super::{Shared, lock};
use crate::sim::crypto::{CryptoMarket, MinuteCandle};
use crate::upbit::wire::eight_decimals;

/// The routes, written out here rather than taken from the client (a wrong path must not
/// pass both sides).
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/market/all", get(market_all))
        .route("/v1/ticker", get(ticker))
        .route("/v1/ticker/all", get(ticker_all))
        .route("/v1/candles/minutes/{unit}", get(candles_minutes))
        .route("/v1/candles/days", get(candles_days))
        .route("/v1/trades/ticks", get(trades_ticks))
        .route("/v1/orderbook", get(orderbook))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                None,
                r#"{"error":{"name":"not_found","message":"no Route matched with those values"}}"#.into(),
            )
        })
        .with_state(shared)
}

fn json_response(status: StatusCode, remaining: Option<String>, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json;charset=UTF-8"));
    if let Some(rem) = remaining
        && let Ok(v) = HeaderValue::from_str(&rem)
    {
        r.headers_mut().insert("remaining-req", v);
        r.headers_mut().insert("limit-by-ip", HeaderValue::from_static("Yes"));
    }
    r
}

pub(super) fn error_body(name: impl Display, quoted: bool, message: &str) -> String {
    if quoted {
        format!(r#"{{"error":{{"name":"{name}","message":"{message}"}}}}"#)
    } else {
        format!(r#"{{"error":{{"name":{name},"message":"{message}"}}}}"#)
    }
}

/// Counts the request against `group`; `Err` is the refusal to send instead.
#[allow(clippy::result_large_err)] // axum's own response type; boxing it buys nothing here
fn gate(s: &Shared, group: &'static str) -> Result<String, Response> {
    let c = &s.counters;
    bump(&c.rest_requests);
    let now = s.clock.now().as_millis();
    if take(&s.faults.rest_status_count) {
        bump(&c.rest_injected);
        let status = s.faults.rest_status.load(Ordering::SeqCst) as u16;
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code == StatusCode::TOO_MANY_REQUESTS {
            bump(&c.rest_429);
        }
        return Err(json_response(code, None, error_body("injected", true, "injected fault")));
    }
    let mut abuse = lock(&s.abuse);
    if now < abuse.banned_until {
        bump(&c.rest_418);
        let secs = (abuse.banned_until - now + 999) / 1000;
        let msg = format!("Too many API requests. IP blocked for {secs} seconds.");
        return Err(json_response(StatusCode::IM_A_TEAPOT, None, error_body(418, false, &msg)));
    }
    let limit = s.cfg.rest_per_second as usize;
    let mut windows = lock(&s.windows);
    let w = windows.entry(group).or_default();
    while w.front().is_some_and(|&t| t <= now - 1000) {
        w.pop_front();
    }
    if w.len() >= limit {
        bump(&c.rest_429);
        abuse.violations.push_back(now);
        while abuse.violations.front().is_some_and(|&t| t <= now - 60_000) {
            abuse.violations.pop_front();
        }
        if abuse.violations.len() >= s.cfg.ban_after_violations as usize {
            let len = s.cfg.ban.as_millis() as i64 * (1i64 << abuse.bans.min(10));
            abuse.banned_until = now + len;
            abuse.bans += 1;
            abuse.violations.clear();
        }
        return Err(json_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!("group={group}; min=1800; sec=0")),
            error_body("too_many_requests", true, "Too many API requests."),
        ));
    }
    w.push_back(now);
    c.rest_max_per_second.fetch_max(w.len() as u64, Ordering::SeqCst);
    bump(&c.rest_ok);
    Ok(format!("group={group}; min=1800; sec={}", limit - w.len()))
}

/// Query parameters by name. A repeated name joins its values with commas, as the real
/// server (Spring) binds them: pyupbit asks for several tickers as `markets=A&markets=B`.
fn query(raw: &Option<String>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for pair in raw.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = pct_decode(v);
        out.entry(pct_decode(k))
            .and_modify(|all| {
                all.push(',');
                all.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn missing_param() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        None,
        error_body(400, false, "Missing request parameter error. Check the required parameters!"),
    )
}

fn code_not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, None, error_body(404, false, "Code not found"))
}

/// Indexes of the listed codes; REST accepts lowercase, and one unknown code fails all.
fn resolve(m: &CryptoMarket, list: &str) -> Option<Vec<usize>> {
    list.split(',').map(|c| m.index_of(&c.trim().to_ascii_uppercase())).collect()
}

fn ok(remaining: String, body: String) -> Response {
    json_response(StatusCode::OK, Some(remaining), body)
}

async fn market_all(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "market") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let details = query(&q).get("is_details").or(query(&q).get("isDetails")).is_some_and(|v| v == "true");
    let m = s.market(s.clock.now());
    let mut body = String::from("[");
    for (i, l) in m.listings().iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"market":"{}","korean_name":"{}","english_name":"{}""#,
            l.symbol, l.korean_name, l.english_name
        );
        if details {
            body.push_str(
                r#","market_event":{"warning":false,"caution":{"PRICE_FLUCTUATIONS":false,"TRADING_VOLUME_SOARING":false,"DEPOSIT_AMOUNT_SOARING":false,"GLOBAL_PRICE_DIFFERENCES":false,"CONCENTRATION_OF_SMALL_ACCOUNTS":false}}"#,
            );
        }
        body.push('}');
    }
    body.push(']');
    ok(rem, body)
}

fn tickers_body(s: &Shared, idxs: &[usize]) -> String {
    let now = s.clock.now();
    let mut m = s.market(now);
    let mut body = String::from("[");
    for (i, &idx) in idxs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        if let Some(st) = m.stats(idx, now) {
            body.push_str(&encode_ticker(&st, Fmt::Rest, "", now));
        }
    }
    body.push(']');
    body
}

async fn ticker(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "ticker") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(list) = query(&q).remove("markets") else { return missing_param() };
    let Some(idxs) = resolve(&s.market(s.clock.now()), &list) else { return code_not_found() };
    ok(rem, tickers_body(&s, &idxs))
}

async fn ticker_all(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "ticker") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(quotes) = query(&q).remove("quote_currencies") else { return missing_param() };
    let idxs: Vec<usize> = {
        let m = s.market(s.clock.now());
        let quotes: Vec<String> = quotes.split(',').map(|q| format!("{}-", q.trim().to_ascii_uppercase())).collect();
        (0..m.listings().len())
            .filter(|&i| quotes.iter().any(|q| m.listings()[i].symbol.as_str().starts_with(q.as_str())))
            .collect()
    };
    ok(rem, tickers_body(&s, &idxs))
}

/// Minute candles carry their unit; day candles the change against the day before.
#[derive(Clone, Copy)]
enum CandleKind {
    Minutes(u32),
    Day(Price),
}

fn candle_json(body: &mut String, market: &str, start_ms: i64, c: &MinuteCandle, kind: CandleKind) {
    let fmt = |ms: i64, kst: bool| {
        UtcTime::from_millis(ms + if kst { model::time::KST_OFFSET_MS } else { 0 })
            .to_timestamp()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let _ = write!(
        body,
        r#"{{"market":"{market}","candle_date_time_utc":"{}","candle_date_time_kst":"{}","opening_price":{},"high_price":{},"low_price":{},"trade_price":{},"timestamp":{},"candle_acc_trade_price":{},"candle_acc_trade_volume":{}"#,
        fmt(start_ms, false),
        fmt(start_ms, true),
        c.open,
        c.high,
        c.low,
        c.close,
        c.last_time.as_millis(),
        eight_decimals(c.value),
        eight_decimals(c.volume.0),
    );
    match kind {
        CandleKind::Minutes(u) => {
            let _ = write!(body, r#","unit":{u}"#);
        }
        CandleKind::Day(prev) => {
            let change = c.close.0 - prev.0;
            let rate = if prev.0.is_zero() { Decimal::ZERO } else { change / prev.0 };
            let _ = write!(
                body,
                r#","prev_closing_price":{},"change_price":{},"change_rate":{}"#,
                eight_decimals(prev.0),
                eight_decimals(change),
                rate.round_dp(10).normalize(),
            );
        }
    }
    body.push('}');
}

/// Folds one-minute candles into `unit`-minute ones, newest first, at most `count`.
fn fold_candles(mins: &[MinuteCandle], unit: u32, count: usize) -> Vec<(u32, MinuteCandle)> {
    let mut out: Vec<(u32, MinuteCandle)> = Vec::new();
    for c in mins {
        let start = c.minute / unit * unit;
        match out.last_mut() {
            Some((s, acc)) if *s == start => {
                acc.high = acc.high.max(c.high);
                acc.low = acc.low.min(c.low);
                acc.close = c.close;
                acc.volume = Qty(acc.volume.0 + c.volume.0);
                acc.value += c.value;
                acc.last_time = c.last_time;
            }
            _ => out.push((start, c.clone())),
        }
    }
    out.reverse();
    out.truncate(count);
    out
}

fn type_mismatch() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        None,
        error_body(400, false, "Type mismatch error. Check the parameters type!"),
    )
}

/// The `to` parameter (spec §2: ISO 8601 with a zone, or without one meaning UTC, `T` or a
/// space between date and time).
fn parse_to(text: &str) -> Option<UtcTime> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(UtcTime::from_timestamp(ts));
    }
    let dt = text.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>().ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| UtcTime::from_timestamp(z.timestamp()))
}

/// Candle requests share their parameters: the market, `count` (1..=200, default 1) and the
/// exclusive end `to` (default now; a later `to` is now, since the future has no candles).
struct CandleQuery {
    idx: usize,
    count: usize,
    /// Candles start before this (ms).
    end_ms: i64,
}

#[allow(clippy::result_large_err)] // axum's own response type; boxing it buys nothing here
fn candle_query(s: &Shared, raw: &Option<String>, now: UtcTime) -> Result<CandleQuery, Response> {
    let q = query(raw);
    let Some(market) = q.get("market") else { return Err(missing_param()) };
    let count = match q.get("count").map(|c| c.parse::<usize>()) {
        None => 1,
        Some(Ok(c)) => c.clamp(1, MAX_CANDLES),
        Some(Err(_)) => return Err(type_mismatch()),
    };
    // The candle in progress starts at or before now, so "before now + 1 ms" keeps it.
    let mut end_ms = now.as_millis() + 1;
    if let Some(to) = q.get("to").filter(|t| !t.is_empty()) {
        let Some(to) = parse_to(to) else { return Err(type_mismatch()) };
        end_ms = end_ms.min(to.as_millis());
    }
    let Some(idx) = s.market(now).index_of(&market.to_ascii_uppercase()) else { return Err(code_not_found()) };
    Ok(CandleQuery { idx, count, end_ms })
}

/// Most candles one request returns (spec §2).
const MAX_CANDLES: usize = 200;

fn day_start_ms(day: jiff::civil::Date) -> i64 {
    day.to_zoned(jiff::tz::TimeZone::UTC).map_or(0, |z| z.timestamp().as_millisecond())
}

async fn candles_minutes(State(s): State<Arc<Shared>>, Path(unit): Path<String>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "candle") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let unit: u32 = match unit.parse() {
        Ok(u) if [1, 3, 5, 10, 15, 30, 60, 240].contains(&u) => u,
        _ => return type_mismatch(),
    };
    let now = s.clock.now();
    let cq = match candle_query(&s, &q, now) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut m = s.market(now);
    let sym = m.listings()[cq.idx].symbol.clone();
    let first_day = m.first_history_day();
    // Walk back day by day (every unit divides a day, so no candle spans two) until
    // `count` candles or the start of the history.
    let mut day = CryptoMarket::day_of(UtcTime::from_millis(cq.end_ms - 1)).min(m.day());
    let mut candles: Vec<(i64, MinuteCandle)> = Vec::new();
    while candles.len() < cq.count && day >= first_day {
        let start = day_start_ms(day);
        let mins = if day == m.day() {
            m.minute_candles(cq.idx, now)
        } else {
            m.past_minutes(cq.idx, day).unwrap_or_default()
        };
        // A candle is in when it starts before the end, even if `to` cuts into it.
        let kept: Vec<_> =
            mins.into_iter().filter(|c| start + (c.minute / unit * unit) as i64 * 60_000 < cq.end_ms).collect();
        let want = cq.count - candles.len();
        candles.extend(fold_candles(&kept, unit, want).into_iter().map(|(st, c)| (start + st as i64 * 60_000, c)));
        let Ok(prev) = day.yesterday() else { break };
        day = prev;
    }
    drop(m);
    let mut body = String::from("[");
    for (i, (start, c)) in candles.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        candle_json(&mut body, sym.as_str(), *start, c, CandleKind::Minutes(unit));
    }
    body.push(']');
    ok(rem, body)
}

async fn candles_days(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "candle") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = s.clock.now();
    let cq = match candle_query(&s, &q, now) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut m = s.market(now);
    let sym = m.listings()[cq.idx].symbol.clone();
    let first_day = m.first_history_day();
    let mut day = CryptoMarket::day_of(UtcTime::from_millis(cq.end_ms - 1)).min(m.day());
    let mut candles = Vec::new();
    while candles.len() < cq.count && day >= first_day {
        let candle = if day == m.day() {
            let mins = m.minute_candles(cq.idx, now);
            fold_candles(&mins, 1440, 1).into_iter().next().map(|(_, c)| (c, m.listings()[cq.idx].prev_close))
        } else {
            m.past_day(cq.idx, day).map(|c| (c.clone(), c.open))
        };
        if let Some((c, prev_close)) = candle {
            candles.push((day_start_ms(day), c, prev_close));
        }
        let Ok(prev) = day.yesterday() else { break };
        day = prev;
    }
    drop(m);
    let mut body = String::from("[");
    for (i, (start, c, prev_close)) in candles.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        candle_json(&mut body, sym.as_str(), *start, c, CandleKind::Day(*prev_close));
    }
    body.push(']');
    ok(rem, body)
}

async fn trades_ticks(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "trade") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let q = query(&q);
    let Some(market) = q.get("market") else { return missing_param() };
    let count = q.get("count").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1).clamp(1, 500);
    let now = s.clock.now();
    let mut m = s.market(now);
    let Some(idx) = m.index_of(&market.to_ascii_uppercase()) else { return code_not_found() };
    let pc = m.listings()[idx].prev_close;
    let trades = m.recent_trades(idx, now);
    drop(m);
    let mut body = String::from("[");
    for (i, t) in trades.iter().take(count).enumerate() {
        if i > 0 {
            body.push(',');
        }
        let ts = t.time.to_timestamp();
        let _ = write!(
            body,
            r#"{{"market":"{}","trade_date_utc":"{}","trade_time_utc":"{}","timestamp":{},"trade_price":{},"trade_volume":{},"prev_closing_price":{},"change_price":{},"ask_bid":"{}","sequential_id":{}}}"#,
            t.symbol,
            ts.strftime("%Y-%m-%d"),
            ts.strftime("%H:%M:%S"),
            t.time.as_millis(),
            eight_decimals(t.price.0),
            eight_decimals(t.size.0),
            eight_decimals(pc.0),
            eight_decimals((t.price.0 - pc.0).abs()),
            ask_bid(t.side),
            t.sequential_id,
        );
    }
    body.push(']');
    ok(rem, body)
}

async fn orderbook(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let rem = match gate(&s, "orderbook") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let q = query(&q);
    let Some(list) = q.get("markets") else { return missing_param() };
    let count = q.get("count").and_then(|c| c.parse::<usize>().ok()).unwrap_or(30).clamp(1, 30);
    let now = s.clock.now();
    let mut m = s.market(now);
    let Some(idxs) = resolve(&m, list) else { return code_not_found() };
    let mut body = String::from("[");
    for (i, idx) in idxs.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        if let Some(b) = m.book(idx, now, count) {
            body.push_str(&encode_book(&b, Fmt::Rest, "", count));
        }
    }
    body.push(']');
    ok(rem, body)
}
