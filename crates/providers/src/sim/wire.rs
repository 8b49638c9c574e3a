//! The sim's own wire format: compact JSON text frames, one event each.
//!
//! ```text
//! {"t":"trade","s":"005930","p":"71500","q":"10","side":"buy","seq":123,"cv":"45678","ts":"2026-01-14T00:31:05.123Z"}
//! {"t":"book","s":"005930","b":[["71400","120"],...],"a":[["71500","80"],...],"ts":"..."}
//! {"t":"snap","s":"005930","last":"71500","open":"71000","high":"72000","low":"70900","pc":"70800","vol":"45678","bid":"71400","ask":"71500","ts":"..."}
//! ```
//!
//! Prices and sizes are strings so they stay exact. `parse` maps frames to model events
//! (provider `sim`, market `kr_stocks`) and never panics.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use model::{Level, Market, MarketEvent, Price, Provider, Qty, Quote, Side, Snapshot, Symbol, Tick, UtcTime};
use serde::Deserialize;

use super::krx::{SimBook, SimEvent, SimTrade};

/// Version of the frame → event mapping, recorded with the data it produced.
pub const MAPPER_VERSION: &str = "sim/1";

/// How much of an offending frame a `ParseError` keeps.
pub const ERROR_FRAME_MAX: usize = 512;

// ---------------------------------------------------------------------------------------
// Encoding. Symbols are `[A-Za-z0-9._-]` and decimals/timestamps are plain ASCII, so no
// JSON escaping is ever needed.

fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn levels(out: &mut String, levels: &[(Price, Qty)]) -> fmt::Result {
    out.push('[');
    for (i, (p, q)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write!(out, "[\"{p}\",\"{q}\"]")?;
    }
    out.push(']');
    Ok(())
}

pub fn encode_trade(t: &SimTrade) -> String {
    let mut out = String::with_capacity(128);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{{\"t\":\"trade\",\"s\":\"{}\",\"p\":\"{}\",\"q\":\"{}\",\"side\":\"{}\",\"seq\":{},\"cv\":\"{}\",\"ts\":\"{}\"}}",
        t.symbol,
        t.price,
        t.size,
        side_str(t.side),
        t.seq,
        t.cum_volume,
        t.time
    );
    out
}

pub fn encode_book(b: &SimBook) -> String {
    let mut out = String::with_capacity(64 + 32 * (b.bids.len() + b.asks.len()));
    let _ = (|| -> fmt::Result {
        write!(out, "{{\"t\":\"book\",\"s\":\"{}\",\"b\":", b.symbol)?;
        levels(&mut out, &b.bids)?;
        out.push_str(",\"a\":");
        levels(&mut out, &b.asks)?;
        write!(out, ",\"ts\":\"{}\"}}", b.time)
    })();
    out
}

/// `time` is the snapshot's event time (the instant it describes).
pub fn encode_snapshot(time: UtcTime, s: &Snapshot) -> String {
    let mut out = String::with_capacity(192);
    let _ = (|| -> fmt::Result {
        write!(
            out,
            "{{\"t\":\"snap\",\"s\":\"{}\",\"last\":\"{}\",\"open\":\"{}\",\"high\":\"{}\",\"low\":\"{}\",\"pc\":\"{}\",\"vol\":\"{}\"",
            s.symbol, s.last_price, s.open, s.high, s.low, s.prev_close, s.volume
        )?;
        if let Some(bid) = s.bid_price {
            write!(out, ",\"bid\":\"{bid}\"")?;
        }
        if let Some(ask) = s.ask_price {
            write!(out, ",\"ask\":\"{ask}\"")?;
        }
        write!(out, ",\"ts\":\"{time}\"}}")
    })();
    out
}

pub fn encode(ev: &SimEvent) -> String {
    match ev {
        SimEvent::Trade(t) => encode_trade(t),
        SimEvent::Book(b) => encode_book(b),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// What was wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProblem {
    #[error("bad JSON: {0}")]
    Json(String),
    #[error("missing field {0:?}")]
    Missing(&'static str),
    #[error("field {field:?} is not a decimal: {value:?}")]
    BadDecimal { field: &'static str, value: String },
    #[error("unknown frame type {0:?} (expected trade, book or snap)")]
    UnknownType(String),
    #[error("bad symbol: {0}")]
    BadSymbol(String),
    #[error("bad timestamp: {0}")]
    BadTime(String),
    #[error("bad side {0:?} (expected buy or sell)")]
    BadSide(String),
    #[error("book side {0:?} is empty")]
    EmptyBook(&'static str),
}

/// A frame `parse` rejected, with (the first 512 bytes of) the frame itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sim frame rejected: {problem}; frame: {frame:?}")]
pub struct ParseError {
    pub problem: ParseProblem,
    pub frame: String,
}

impl ParseError {
    fn new(problem: ParseProblem, frame: &str) -> Self {
        let mut end = frame.len().min(ERROR_FRAME_MAX);
        while !frame.is_char_boundary(end) {
            end -= 1;
        }
        ParseError { problem, frame: frame[..end].to_string() }
    }
}

/// A string borrowed from the frame when it has no escapes, owned otherwise.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A book side, parsed straight into levels; a bad decimal is kept (not raised) so it can be
/// reported with its field name.
struct Levels(Result<Vec<Level>, String>);

impl<'de> Deserialize<'de> for Levels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Levels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of [price, size] string pairs")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Levels, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(10).min(64));
                let mut bad = None;
                while let Some((p, q)) = seq.next_element::<(Str<'de>, Str<'de>)>()? {
                    if bad.is_some() {
                        continue;
                    }
                    match (Price::from_str(&p.0), Qty::from_str(&q.0)) {
                        (Ok(price), Ok(size)) => out.push(Level { price, size }),
                        (Err(_), _) => bad = Some(p.0.chars().take(64).collect()),
                        (_, Err(_)) => bad = Some(q.0.chars().take(64).collect()),
                    }
                }
                Ok(Levels(bad.map_or(Ok(out), Err)))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    t: Option<Str<'a>>,
    #[serde(borrow)]
    s: Option<Str<'a>>,
    #[serde(borrow)]
    ts: Option<Str<'a>>,
    // trade
    #[serde(borrow)]
    p: Option<Str<'a>>,
    #[serde(borrow)]
    q: Option<Str<'a>>,
    #[serde(borrow)]
    side: Option<Str<'a>>,
    seq: Option<u64>,
    #[serde(borrow)]
    cv: Option<Str<'a>>,
    // book
    b: Option<Levels>,
    a: Option<Levels>,
    // snapshot
    #[serde(borrow)]
    last: Option<Str<'a>>,
    #[serde(borrow)]
    open: Option<Str<'a>>,
    #[serde(borrow)]
    high: Option<Str<'a>>,
    #[serde(borrow)]
    low: Option<Str<'a>>,
    #[serde(borrow)]
    pc: Option<Str<'a>>,
    #[serde(borrow)]
    vol: Option<Str<'a>>,
    #[serde(borrow)]
    bid: Option<Str<'a>>,
    #[serde(borrow)]
    ask: Option<Str<'a>>,
}

fn need<'f, 'a>(v: &'f Option<Str<'a>>, field: &'static str) -> Result<&'f str, ParseProblem> {
    v.as_ref().map(|s| s.0.as_ref()).ok_or(ParseProblem::Missing(field))
}

fn dec<T: FromStr>(text: &str, field: &'static str) -> Result<T, ParseProblem> {
    text.parse().map_err(|_| ParseProblem::BadDecimal { field, value: text.chars().take(64).collect() })
}

fn field<T: FromStr>(v: &Option<Str<'_>>, name: &'static str) -> Result<T, ParseProblem> {
    dec(need(v, name)?, name)
}

fn opt_field<T: FromStr>(v: &Option<Str<'_>>, name: &'static str) -> Result<Option<T>, ParseProblem> {
    v.as_ref().map(|s| dec(&s.0, name)).transpose()
}

fn book_side(v: Option<Levels>, name: &'static str) -> Result<Vec<Level>, ParseProblem> {
    match v.ok_or(ParseProblem::Missing(name))?.0 {
        Err(value) => Err(ParseProblem::BadDecimal { field: name, value }),
        Ok(levels) if levels.is_empty() => Err(ParseProblem::EmptyBook(name)),
        Ok(levels) => Ok(levels),
    }
}

fn map(f: Frame<'_>) -> Result<(UtcTime, MarketEvent), ParseProblem> {
    let kind = need(&f.t, "t")?;
    let symbol = Symbol::new(need(&f.s, "s")?).map_err(|e| ParseProblem::BadSymbol(e.to_string()))?;
    let ts = need(&f.ts, "ts")?;
    let time = UtcTime::parse(ts).map_err(|e| ParseProblem::BadTime(e.to_string()))?;
    let event = match kind {
        "trade" => {
            let side = match need(&f.side, "side")? {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                other => return Err(ParseProblem::BadSide(other.chars().take(32).collect())),
            };
            MarketEvent::Tick(Tick {
                provider: Provider::Sim,
                market: Market::KrStocks,
                symbol,
                price: field(&f.p, "p")?,
                size: field(&f.q, "q")?,
                side: Some(side),
                cum_volume: opt_field(&f.cv, "cv")?,
                trade_id: Some(f.seq.ok_or(ParseProblem::Missing("seq"))?.to_string()),
            })
        }
        "book" => {
            let bids = book_side(f.b, "b")?;
            let asks = book_side(f.a, "a")?;
            MarketEvent::Quote(Quote {
                provider: Provider::Sim,
                market: Market::KrStocks,
                symbol,
                bid_price: bids[0].price,
                bid_size: bids[0].size,
                ask_price: asks[0].price,
                ask_size: asks[0].size,
                bids,
                asks,
            })
        }
        "snap" => MarketEvent::Snapshot(Snapshot {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol,
            last_price: field(&f.last, "last")?,
            open: field(&f.open, "open")?,
            high: field(&f.high, "high")?,
            low: field(&f.low, "low")?,
            prev_close: field(&f.pc, "pc")?,
            volume: field(&f.vol, "vol")?,
            bid_price: opt_field(&f.bid, "bid")?,
            ask_price: opt_field(&f.ask, "ask")?,
        }),
        other => return Err(ParseProblem::UnknownType(other.chars().take(32).collect())),
    };
    Ok((time, event))
}

/// Parses one sim frame into its event time and normalized event.
pub fn parse(frame: &str) -> Result<(UtcTime, MarketEvent), ParseError> {
    let f: Frame<'_> =
        serde_json::from_str(frame).map_err(|e| ParseError::new(ParseProblem::Json(e.to_string()), frame))?;
    map(f).map_err(|p| ParseError::new(p, frame))
}
