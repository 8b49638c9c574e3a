//! Upbit frames → model events, reading every price and size from the number's text.
//!
//! Upbit sends prices and sizes as JSON numbers, sometimes in exponent form (`1.16539E8`,
//! `7.9276E-4`) and with up to 17 significant digits (`228827082483.70729000`). Going
//! through `f64` would round them, so each number is borrowed as `&RawValue` (its exact
//! text) and parsed into a `Decimal`. One borrowed struct covers DEFAULT and SIMPLE keys
//! (serde aliases) and the REST bodies, so the hot path allocates only the symbol and the
//! output event.

use std::borrow::Cow;

use model::{Level, Market, MarketEvent, Price, Provider, Qty, Quote, RawFrame, RawFrameKind, Side, Snapshot, Symbol};
use model::{Tick, UtcTime};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::provider::{ProviderError, evidence};

/// Version of the frame → event mapping, recorded with the data it produced.
pub const MAPPER_VERSION: &str = "upbit/1";

/// REST channels (the `RawFrame::channel` of REST bodies), named after the endpoint.
pub const CH_TICKER: &str = "ticker";
pub const CH_TRADES: &str = "trades/ticks";
pub const CH_ORDERBOOK: &str = "orderbook";
pub const CH_MARKET_ALL: &str = "market/all";
pub const CH_CANDLES: &str = "candles";
/// The channel of every WebSocket frame (the message names its own type).
pub const CH_WS: &str = "websocket/v1";

type Num<'a> = Option<&'a RawValue>;

/// Every field we read from a ticker, trade or orderbook message, in either key set.
#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(rename = "type", alias = "ty", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(alias = "cd", alias = "market", borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(alias = "tp", borrow)]
    trade_price: Num<'a>,
    #[serde(alias = "tv", borrow)]
    trade_volume: Num<'a>,
    #[serde(alias = "op", borrow)]
    opening_price: Num<'a>,
    #[serde(alias = "hp", borrow)]
    high_price: Num<'a>,
    #[serde(alias = "lp", borrow)]
    low_price: Num<'a>,
    #[serde(alias = "pcp", borrow)]
    prev_closing_price: Num<'a>,
    #[serde(alias = "atv", borrow)]
    acc_trade_volume: Num<'a>,
    #[serde(alias = "atp", borrow)]
    acc_trade_price: Num<'a>,
    #[serde(alias = "atv24h", borrow)]
    acc_trade_volume_24h: Num<'a>,
    #[serde(alias = "atp24h", borrow)]
    acc_trade_price_24h: Num<'a>,
    #[serde(alias = "ab", borrow)]
    ask_bid: Option<Cow<'a, str>>,
    #[serde(alias = "sid")]
    sequential_id: Option<u64>,
    #[serde(alias = "ttms")]
    trade_timestamp: Option<i64>,
    #[serde(alias = "tms")]
    timestamp: Option<i64>,
    #[serde(alias = "obu", borrow)]
    orderbook_units: Option<Vec<Unit<'a>>>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(alias = "mthd", borrow)]
    method: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Unit<'a> {
    #[serde(alias = "ap", borrow)]
    ask_price: Num<'a>,
    #[serde(alias = "bp", borrow)]
    bid_price: Num<'a>,
    #[serde(alias = "as", borrow)]
    ask_size: Num<'a>,
    #[serde(alias = "bs", borrow)]
    bid_size: Num<'a>,
}

/// `{"error":{"name":…,"message":…}}`; REST quotation errors may carry a numeric name.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

/// Why a frame was refused; turned into `ProviderError::Malformed` with the frame.
type Why = Cow<'static, str>;

/// Exact decimal from a JSON number's text (plain or exponent form). A quoted number is
/// accepted too: the digits are still exact.
pub fn decimal_from_text(text: &str) -> Option<Decimal> {
    let t = text.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(text);
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    let d = if t.bytes().any(|b| b == b'e' || b == b'E') {
        Decimal::from_scientific(t).ok().map(|d| d.normalize())
    } else {
        Decimal::from_str_exact(t).ok()
    };
    // A value no market produces is refused at the edge (issue 14): |x| ≤ 1e18.
    d.filter(|d| d.abs() <= model::num::PLAUSIBLE_ABS_MAX)
}

fn num(v: Num<'_>, field: &'static str) -> Result<Decimal, Why> {
    let v = v.ok_or(Cow::Borrowed(field))?;
    decimal_from_text(v.get()).ok_or_else(|| Cow::Owned(format!("{field} is not an exact number: {}", v.get())))
}

fn price(v: Num<'_>, field: &'static str) -> Result<Price, Why> {
    num(v, field).map(Price)
}

fn qty(v: Num<'_>, field: &'static str) -> Result<Qty, Why> {
    num(v, field).map(Qty)
}

fn symbol(code: &Option<Cow<'_, str>>) -> Result<Symbol, Why> {
    let c = code.as_deref().ok_or(Cow::Borrowed("missing code"))?;
    Symbol::new(c).map_err(|e| Cow::Owned(e.to_string()))
}

/// A millisecond timestamp within the archive's domain ([`model::time::PLAUSIBLE_TIMES`]);
/// `i64::MIN` and the like are refused here, before any arithmetic (issue 14).
fn time(ms: Option<i64>, field: &'static str) -> Result<UtcTime, Why> {
    let t = ms.map(UtcTime::from_millis).ok_or(Cow::Borrowed(field))?;
    if !t.is_plausible() {
        return Err(Cow::Owned(format!("implausible timestamp {} ({t})", t.as_millis())));
    }
    Ok(t)
}

fn side(ab: &Option<Cow<'_, str>>) -> Result<Option<Side>, Why> {
    match ab.as_deref() {
        None => Ok(None),
        // ask_bid names the aggressor: BID = a buyer lifted the ask.
        Some("BID") => Ok(Some(Side::Buy)),
        Some("ASK") => Ok(Some(Side::Sell)),
        Some(other) => Err(Cow::Owned(format!("ask_bid {other:?}"))),
    }
}

fn snapshot_of(m: &Msg<'_>) -> Result<(UtcTime, MarketEvent), Why> {
    let t = time(m.timestamp.or(m.trade_timestamp), "missing timestamp")?;
    Ok((
        t,
        MarketEvent::Snapshot(Snapshot {
            provider: Provider::Upbit,
            market: Market::Crypto,
            symbol: symbol(&m.code)?,
            last_price: price(m.trade_price, "missing trade_price")?,
            open: price(m.opening_price, "missing opening_price")?,
            high: price(m.high_price, "missing high_price")?,
            low: price(m.low_price, "missing low_price")?,
            prev_close: price(m.prev_closing_price, "missing prev_closing_price")?,
            volume: qty(m.acc_trade_volume, "missing acc_trade_volume")?,
            bid_price: None,
            ask_price: None,
        }),
    ))
}

fn tick_of(m: &Msg<'_>) -> Result<(UtcTime, MarketEvent), Why> {
    let t = time(m.trade_timestamp.or(m.timestamp), "missing trade_timestamp")?;
    Ok((
        t,
        MarketEvent::Tick(Tick {
            provider: Provider::Upbit,
            market: Market::Crypto,
            symbol: symbol(&m.code)?,
            price: price(m.trade_price, "missing trade_price")?,
            size: qty(m.trade_volume, "missing trade_volume")?,
            side: side(&m.ask_bid)?,
            cum_volume: None,
            trade_id: m.sequential_id.map(|s| s.to_string()),
        }),
    ))
}

/// Both sides of a book, best first, without the zero padding REST adds to a thin side.
fn levels(units: &[Unit<'_>]) -> Result<(Vec<Level>, Vec<Level>), Why> {
    let mut bids = Vec::with_capacity(units.len());
    let mut asks = Vec::with_capacity(units.len());
    for u in units {
        let bp = price(u.bid_price, "missing bid_price")?;
        if bp.is_positive() {
            bids.push(Level { price: bp, size: qty(u.bid_size, "missing bid_size")? });
        }
        let ap = price(u.ask_price, "missing ask_price")?;
        if ap.is_positive() {
            asks.push(Level { price: ap, size: qty(u.ask_size, "missing ask_size")? });
        }
    }
    Ok((bids, asks))
}

fn quote_of(m: &Msg<'_>) -> Result<(UtcTime, MarketEvent), Why> {
    let t = time(m.timestamp, "missing timestamp")?;
    let units = m.orderbook_units.as_deref().ok_or(Cow::Borrowed("missing orderbook_units"))?;
    let (bids, asks) = levels(units)?;
    // A one-sided book is real (a thin market); the empty side reads as zero.
    let top = |l: &[Level]| l.first().map_or((Price::ZERO, Qty::ZERO), |l| (l.price, l.size));
    let ((bid_price, bid_size), (ask_price, ask_size)) = (top(&bids), top(&asks));
    Ok((
        t,
        MarketEvent::Quote(Quote {
            provider: Provider::Upbit,
            market: Market::Crypto,
            symbol: symbol(&m.code)?,
            bid_price,
            bid_size,
            ask_price,
            ask_size,
            bids,
            asks,
        }),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ticker,
    Trade,
    Orderbook,
    Ignore,
}

fn error_text(e: &ErrorBody<'_>) -> String {
    let name = e.name.map_or("", |n| n.get()).trim_matches('"');
    format!("{name}: {}", e.message.as_deref().unwrap_or(""))
}

enum Outcome {
    Events,
    ServerError(String),
}

fn one(m: &Msg<'_>, rest_kind: Option<Kind>, out: &mut Vec<(UtcTime, MarketEvent)>) -> Result<Outcome, Why> {
    if let Some(e) = &m.error {
        return Ok(Outcome::ServerError(error_text(e)));
    }
    let kind = match (rest_kind, m.ty.as_deref()) {
        (Some(k), _) => k,
        (None, Some("ticker")) => Kind::Ticker,
        (None, Some("trade")) => Kind::Trade,
        (None, Some("orderbook")) => Kind::Orderbook,
        // Candles and future types are archived raw; no normalized event exists for them.
        (None, Some(_)) => Kind::Ignore,
        // Keep-alive `{"status":"UP"}` and the LIST_SUBSCRIPTIONS reply.
        (None, None) if m.status.is_some() || m.method.is_some() => Kind::Ignore,
        (None, None) => return Err(Cow::Borrowed("no type")),
    };
    match kind {
        Kind::Ticker => out.push(snapshot_of(m)?),
        Kind::Trade => out.push(tick_of(m)?),
        Kind::Orderbook => out.push(quote_of(m)?),
        Kind::Ignore => {}
    }
    Ok(Outcome::Events)
}

fn parse_text(text: &str, rest_kind: Option<Kind>) -> Result<Result<Vec<(UtcTime, MarketEvent)>, String>, Why> {
    let t = text.trim_start();
    let mut out = Vec::with_capacity(1);
    let outcome = if t.starts_with('[') {
        // REST bodies and the `*_LIST` WS formats: an array of messages.
        let items: Vec<Msg<'_>> = serde_json::from_str(t).map_err(|e| Cow::Owned(e.to_string()))?;
        out.reserve(items.len());
        let mut outcome = Outcome::Events;
        for m in &items {
            if let Outcome::ServerError(e) = one(m, rest_kind, &mut out)? {
                outcome = Outcome::ServerError(e);
            }
        }
        outcome
    } else {
        let m: Msg<'_> = serde_json::from_str(t).map_err(|e| Cow::Owned(e.to_string()))?;
        one(&m, rest_kind, &mut out)?
    };
    Ok(match outcome {
        Outcome::Events => Ok(out),
        Outcome::ServerError(e) => Err(e),
    })
}

/// Parses one raw frame. Sent/open/close records and keep-alives yield no events; an
/// `{"error":…}` frame is a `Request` error; anything unreadable is `Malformed` with the
/// frame as evidence.
pub fn parse(frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, ProviderError> {
    let rest_kind = match frame.kind {
        RawFrameKind::Sent | RawFrameKind::Open | RawFrameKind::Close | RawFrameKind::Clock => return Ok(Vec::new()),
        RawFrameKind::Ws => None,
        RawFrameKind::Rest => Some(match frame.channel.as_str() {
            CH_TICKER => Kind::Ticker,
            CH_TRADES => Kind::Trade,
            CH_ORDERBOOK => Kind::Orderbook,
            _ => Kind::Ignore,
        }),
    };
    match parse_text(&frame.frame, rest_kind) {
        Ok(Ok(events)) => Ok(events),
        Ok(Err(server)) => Err(ProviderError::Request {
            provider: Provider::Upbit,
            what: frame.channel.clone(),
            why: format!("server error {server}"),
        }),
        Err(why) => Err(malformed(why, &frame.frame)),
    }
}

pub(crate) fn malformed(why: impl Into<String>, frame: &str) -> ProviderError {
    ProviderError::Malformed { provider: Provider::Upbit, why: why.into(), frame: evidence(frame) }
}

// ---------------------------------------------------------------------------------------
// Typed REST bodies (for the universe filter and callers that want more than events).

/// One `/ticker` item with the fields the crypto universe filter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticker {
    pub market: Symbol,
    pub trade_price: Price,
    pub opening_price: Price,
    pub high_price: Price,
    pub low_price: Price,
    pub prev_closing_price: Price,
    /// Since 00:00 UTC.
    pub acc_trade_volume: Qty,
    pub acc_trade_price: Decimal,
    /// Rolling 24 hours, in the quote currency: the universe's liquidity measure.
    pub acc_trade_price_24h: Decimal,
    pub acc_trade_volume_24h: Qty,
    pub timestamp: UtcTime,
}

pub fn parse_tickers(body: &str) -> Result<Vec<Ticker>, ProviderError> {
    let items: Vec<Msg<'_>> = serde_json::from_str(body).map_err(|e| malformed(e.to_string(), body))?;
    items
        .iter()
        .map(|m| -> Result<Ticker, Why> {
            Ok(Ticker {
                market: symbol(&m.code)?,
                trade_price: price(m.trade_price, "missing trade_price")?,
                opening_price: price(m.opening_price, "missing opening_price")?,
                high_price: price(m.high_price, "missing high_price")?,
                low_price: price(m.low_price, "missing low_price")?,
                prev_closing_price: price(m.prev_closing_price, "missing prev_closing_price")?,
                acc_trade_volume: qty(m.acc_trade_volume, "missing acc_trade_volume")?,
                acc_trade_price: num(m.acc_trade_price, "missing acc_trade_price")?,
                acc_trade_price_24h: num(m.acc_trade_price_24h, "missing acc_trade_price_24h")?,
                acc_trade_volume_24h: qty(m.acc_trade_volume_24h, "missing acc_trade_volume_24h")?,
                timestamp: time(m.timestamp, "missing timestamp")?,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|why| malformed(why, body))
}

/// One `/market/all` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketInfo {
    pub market: Symbol,
    pub korean_name: String,
    pub english_name: String,
    /// `market_event.warning`, or the older `market_warning == "CAUTION"`.
    pub warning: bool,
}

#[derive(Deserialize)]
struct MarketRaw<'a> {
    #[serde(borrow)]
    market: Cow<'a, str>,
    #[serde(borrow, default)]
    korean_name: Cow<'a, str>,
    #[serde(borrow, default)]
    english_name: Cow<'a, str>,
    market_event: Option<MarketEventRaw>,
    #[serde(borrow)]
    market_warning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MarketEventRaw {
    #[serde(default)]
    warning: bool,
}

pub fn parse_market_all(body: &str) -> Result<Vec<MarketInfo>, ProviderError> {
    let items: Vec<MarketRaw<'_>> = serde_json::from_str(body).map_err(|e| malformed(e.to_string(), body))?;
    items
        .into_iter()
        .map(|m| {
            Ok(MarketInfo {
                market: Symbol::new(&m.market).map_err(|e| malformed(e.to_string(), body))?,
                korean_name: m.korean_name.into_owned(),
                english_name: m.english_name.into_owned(),
                warning: m.market_event.is_some_and(|e| e.warning) || m.market_warning.as_deref() == Some("CAUTION"),
            })
        })
        .collect()
}

/// The error body of a REST or WS error: `(name, message)`.
pub fn parse_error_body(body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Wrap<'a> {
        #[serde(borrow)]
        error: ErrorBody<'a>,
    }
    let w: Wrap<'_> = serde_json::from_str(body).ok()?;
    let name = w.error.name.map_or("", |n| n.get()).trim_matches('"').to_string();
    Some((name, w.error.message.map(Cow::into_owned).unwrap_or_default()))
}

// ---------------------------------------------------------------------------------------
// Number rendering for the fake: Upbit's serializer quirks (spec §4.8).

/// `116539000` → `1.16539E8`, `0.00079276` → `7.9276E-4`.
pub fn exponent_form(d: Decimal) -> String {
    let n = d.normalize();
    if n.is_zero() {
        return "0.0".into();
    }
    let digits = n.mantissa().unsigned_abs().to_string();
    let exp = digits.len() as i64 - 1 - n.scale() as i64;
    let (head, tail) = digits.split_at(1);
    let tail = tail.trim_end_matches('0');
    let sign = if n.is_sign_negative() { "-" } else { "" };
    if tail.is_empty() { format!("{sign}{head}.0E{exp}") } else { format!("{sign}{head}.{tail}E{exp}") }
}

/// `100473000` → `100473000.00000000` (eight decimals, as Upbit prints many prices).
pub fn eight_decimals(d: Decimal) -> String {
    let mut x = d;
    x.rescale(8);
    x.to_string()
}

/// The codes a sent (archived) subscription registers: every `codes` entry of the request
/// array, an orderbook code's `.depth` suffix dropped.
pub fn subscribed_codes(sent: &str) -> Vec<Symbol> {
    let Ok(serde_json::Value::Array(parts)) = serde_json::from_str::<serde_json::Value>(sent) else {
        return Vec::new();
    };
    let codes = parts.iter().filter_map(|p| p.get("codes")?.as_array()).flatten().filter_map(|c| c.as_str());
    codes.filter_map(|c| Symbol::new(c.split('.').next().unwrap_or(c)).ok()).collect()
}
