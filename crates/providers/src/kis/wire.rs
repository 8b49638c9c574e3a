//! KIS frames: WebSocket data frames `enc|TR_ID|count|f^f^…`, JSON control messages,
//! PINGPONG, and REST bodies, mapped to normalized events. Pure functions; never panic on
//! any input.
//!
//! Width rule (spec §4.5): KIS widens records without notice (H0STCNT0 46 → 47, H0STASP0
//! 59 → 62), so the record width is derived from each frame (fields ÷ count) and known
//! fields are read by position; trailing fields we do not know are ignored here and kept by
//! the raw archive.

use jiff::civil::{Date, DateTime, Time};
use rust_decimal::Decimal;
use serde_json::Value;

use model::{Level, Market, MarketEvent, Price, Provider, Qty, Quote, Side, Snapshot, Symbol, Tick, UtcTime};

pub const MAPPER_VERSION: &str = "kis/1";

pub const TR_TRADE: &str = "H0STCNT0";
pub const TR_BOOK: &str = "H0STASP0";
pub const TR_PRICE: &str = "FHKST01010100";
pub const TR_ASKING: &str = "FHKST01010200";
pub const PINGPONG: &str = "PINGPONG";

/// Oldest documented widths; a narrower record is torn or corrupt.
pub const TRADE_MIN_WIDTH: usize = 46;
pub const BOOK_MIN_WIDTH: usize = 59;
/// Book levels in an H0STASP0 record.
pub const BOOK_LEVELS: usize = 10;

/// A data frame split into its parts; `fields` holds every record's fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub encrypted: bool,
    pub tr_id: &'a str,
    pub count: usize,
    pub width: usize,
    pub fields: Vec<&'a str>,
}

impl<'a> DataFrame<'a> {
    pub fn records(&self) -> impl Iterator<Item = &[&'a str]> {
        self.fields.chunks(self.width.max(1))
    }
}

pub fn parse_data(frame: &str) -> Result<DataFrame<'_>, String> {
    let mut parts = frame.splitn(4, '|');
    let (Some(enc), Some(tr_id), Some(count), Some(payload)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("data frame has fewer than 4 '|' parts".into());
    };
    let encrypted = match enc {
        "0" => false,
        "1" => true,
        _ => return Err(format!("unknown encryption flag {enc:?}")),
    };
    if tr_id.is_empty() || !tr_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("bad tr_id".into());
    }
    if count.len() != 3 || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("record count {count:?} is not 3 digits"));
    }
    let count: usize = count.parse().map_err(|_| "record count is not a number".to_string())?;
    if count == 0 {
        return Err("record count is 0".into());
    }
    if encrypted {
        return Ok(DataFrame { encrypted, tr_id, count, width: 0, fields: Vec::new() });
    }
    let fields: Vec<&str> = payload.split('^').collect();
    if !fields.len().is_multiple_of(count) {
        return Err(format!("{} fields do not divide into {count} records", fields.len()));
    }
    let width = fields.len() / count;
    Ok(DataFrame { encrypted, tr_id, count, width, fields })
}

/// A JSON control message from the server (subscribe replies, errors, PINGPONG).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Control {
    pub tr_id: String,
    pub tr_key: String,
    pub rt_cd: String,
    pub msg_cd: String,
    pub msg1: String,
}

impl Control {
    pub fn is_pingpong(&self) -> bool {
        self.tr_id == PINGPONG
    }
}

pub fn parse_control(frame: &str) -> Result<Control, String> {
    let v: Value = serde_json::from_str(frame).map_err(|e| format!("invalid JSON: {e}"))?;
    let header = v.get("header").and_then(Value::as_object).ok_or("control message has no header")?;
    let s = |o: Option<&Value>| o.and_then(Value::as_str).unwrap_or_default().to_string();
    let body = v.get("body");
    Ok(Control {
        tr_id: s(header.get("tr_id")),
        tr_key: s(header.get("tr_key")),
        rt_cd: s(body.and_then(|b| b.get("rt_cd"))),
        msg_cd: s(body.and_then(|b| b.get("msg_cd"))),
        msg1: s(body.and_then(|b| b.get("msg1"))),
    })
}

/// What a control message means for one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlKind {
    Ping,
    Subscribed,
    Unsubscribed,
    /// Refused (cap reached, bad tr_id/tr_key): not registered.
    Refused,
    /// The session itself is unusable (bad approval key, key in use elsewhere).
    SessionError,
    Other,
}

impl Control {
    pub fn kind(&self) -> ControlKind {
        if self.is_pingpong() {
            return ControlKind::Ping;
        }
        match self.msg_cd.as_str() {
            "OPSP0000" | "OPSP0002" => ControlKind::Subscribed,
            "OPSP0001" | "OPSP0003" => ControlKind::Unsubscribed,
            "OPSP0011" | "OPSP8996" => ControlKind::SessionError,
            "OPSP0007" | "OPSP0008" | "OPSP8991" | "OPSP8992" | "OPSP8993" => ControlKind::Refused,
            _ if self.msg1.starts_with("UNSUB") => ControlKind::Unsubscribed,
            _ if self.msg1.starts_with("SUBSCRIBE SUCCESS") => ControlKind::Subscribed,
            _ => ControlKind::Other,
        }
    }
}

fn dec(name: &str, s: &str) -> Result<Decimal, String> {
    Decimal::from_str_exact(s).map_err(|_| format!("{name} {s:?} is not a number"))
}
fn price(name: &str, s: &str) -> Result<Price, String> {
    dec(name, s).map(Price)
}
fn qty(name: &str, s: &str) -> Result<Qty, String> {
    dec(name, s).map(Qty)
}

/// KRX short codes: 6 characters, digits and capital letters (spec §8); ETNs `Q` + 6.
pub fn symbol(s: &str) -> Result<Symbol, String> {
    let ok = (s.len() == 6 || s.len() == 7) && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !ok {
        return Err(format!("stock code {s:?} is not [0-9A-Z]{{6}}"));
    }
    Symbol::new(s).map_err(|e| e.to_string())
}

fn hhmmss(s: &str) -> Result<Time, String> {
    let b = s.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("time {s:?} is not HHMMSS"));
    }
    let n = |i: usize| ((b[i] - b'0') * 10 + (b[i + 1] - b'0')) as i8;
    Time::new(n(0), n(2), n(4), 0).map_err(|_| format!("time {s:?} is out of range"))
}

pub fn yyyymmdd(s: &str) -> Result<Date, String> {
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("date {s:?} is not YYYYMMDD"));
    }
    let n = |r: std::ops::Range<usize>| b[r].iter().fold(0i32, |a, &c| a * 10 + (c - b'0') as i32);
    Date::new(n(0..4) as i16, n(4..6) as i8, n(6..8) as i8).map_err(|_| format!("date {s:?} is out of range"))
}

fn kst(date: Date, time: Time) -> UtcTime {
    UtcTime::from_kst(DateTime::from_parts(date, time))
}

/// One H0STCNT0 record (width ≥ 46) → a tick at its KST trade time.
pub fn trade_record(r: &[&str]) -> Result<(UtcTime, Tick), String> {
    if r.len() < TRADE_MIN_WIDTH {
        return Err(format!("H0STCNT0 record has {} fields, fewer than {TRADE_MIN_WIDTH}", r.len()));
    }
    let at = kst(yyyymmdd(r[33])?, hhmmss(r[1])?);
    let side = match r[21] {
        "1" => Some(Side::Buy),
        "5" => Some(Side::Sell),
        _ => None,
    };
    let tick = Tick {
        provider: Provider::Kis,
        market: Market::KrStocks,
        symbol: symbol(r[0])?,
        price: price("STCK_PRPR", r[2])?,
        size: qty("CNTG_VOL", r[12])?,
        side,
        cum_volume: Some(qty("ACML_VOL", r[13])?),
        trade_id: None,
    };
    Ok((at, tick))
}

/// One H0STASP0 record (width ≥ 59) → a quote. The record has a time but no date; the date
/// is the Seoul date at which the frame was received (spec §4.5).
pub fn book_record(r: &[&str], received: UtcTime) -> Result<(UtcTime, Quote), String> {
    if r.len() < BOOK_MIN_WIDTH {
        return Err(format!("H0STASP0 record has {} fields, fewer than {BOOK_MIN_WIDTH}", r.len()));
    }
    let at = kst(received.kst().date(), hhmmss(r[1])?);
    let mut asks = Vec::with_capacity(BOOK_LEVELS);
    let mut bids = Vec::with_capacity(BOOK_LEVELS);
    for i in 0..BOOK_LEVELS {
        let ask = Level { price: price("ASKP", r[3 + i])?, size: qty("ASKP_RSQN", r[23 + i])? };
        let bid = Level { price: price("BIDP", r[13 + i])?, size: qty("BIDP_RSQN", r[33 + i])? };
        // Empty levels arrive as price 0.
        if ask.price.is_positive() {
            asks.push(ask);
        }
        if bid.price.is_positive() {
            bids.push(bid);
        }
    }
    let quote = Quote {
        provider: Provider::Kis,
        market: Market::KrStocks,
        symbol: symbol(r[0])?,
        bid_price: price("BIDP1", r[13])?,
        bid_size: qty("BIDP_RSQN1", r[33])?,
        ask_price: price("ASKP1", r[3])?,
        ask_size: qty("ASKP_RSQN1", r[23])?,
        bids,
        asks,
    };
    Ok((at, quote))
}

/// Every record of a WebSocket message. Control messages and TRs we do not map yield no
/// events (the raw archive keeps them); anything unreadable is an error.
pub fn parse_ws(frame: &str, received: UtcTime) -> Result<Vec<(UtcTime, MarketEvent)>, String> {
    match frame.as_bytes().first() {
        Some(b'{') => parse_control(frame).map(|_| Vec::new()),
        Some(b'0' | b'1') => {
            let d = parse_data(frame)?;
            if d.encrypted {
                return Ok(Vec::new());
            }
            let mut out = Vec::with_capacity(d.count);
            for r in d.records() {
                match d.tr_id {
                    TR_TRADE => trade_record(r).map(|(t, e)| out.push((t, MarketEvent::Tick(e))))?,
                    TR_BOOK => book_record(r, received).map(|(t, e)| out.push((t, MarketEvent::Quote(e))))?,
                    _ => {}
                }
            }
            Ok(out)
        }
        Some(_) => Err("neither a JSON control message nor a data frame".into()),
        None => Err("empty frame".into()),
    }
}

/// The common REST envelope: `rt_cd` `"0"` is success whatever the HTTP status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestStatus {
    pub rt_cd: String,
    pub msg_cd: String,
    pub msg1: String,
}

pub fn rest_status(v: &Value) -> RestStatus {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().trim().to_string();
    RestStatus { rt_cd: s("rt_cd"), msg_cd: s("msg_cd"), msg1: s("msg1") }
}

fn field<'a>(o: &'a Value, k: &str) -> Result<&'a str, String> {
    o.get(k).and_then(Value::as_str).ok_or_else(|| format!("field {k} missing or not a string"))
}

fn ok_body(body: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let st = rest_status(&v);
    if st.rt_cd != "0" {
        return Err(format!("error body rt_cd={} msg_cd={}", st.rt_cd, st.msg_cd));
    }
    Ok(v)
}

/// `inquire-price` body → snapshot. `stck_sdpr` (base price) is the previous close.
pub fn snapshot_body(body: &str) -> Result<Snapshot, String> {
    let v = ok_body(body)?;
    let o = v.get("output").ok_or("no output")?;
    let p = |k: &str| field(o, k).and_then(|s| price(k, s));
    Ok(Snapshot {
        provider: Provider::Kis,
        market: Market::KrStocks,
        symbol: symbol(field(o, "stck_shrn_iscd")?)?,
        last_price: p("stck_prpr")?,
        open: p("stck_oprc")?,
        high: p("stck_hgpr")?,
        low: p("stck_lwpr")?,
        prev_close: p("stck_sdpr")?,
        volume: field(o, "acml_vol").and_then(|s| qty("acml_vol", s))?,
        bid_price: None,
        ask_price: None,
    })
}

/// `inquire-asking-price-exp-ccn` body → quote (`output1` is the book).
pub fn asking_body(body: &str, symbol_code: &Symbol) -> Result<Quote, String> {
    let v = ok_body(body)?;
    let o = v.get("output1").ok_or("no output1")?;
    let mut asks = Vec::new();
    let mut bids = Vec::new();
    for i in 1..=BOOK_LEVELS {
        let lv = |p: &str, s: &str| -> Result<Level, String> {
            let (pk, sk) = (format!("{p}{i}"), format!("{s}{i}"));
            Ok(Level { price: price(&pk, field(o, &pk)?)?, size: qty(&sk, field(o, &sk)?)? })
        };
        let (a, b) = (lv("askp", "askp_rsqn")?, lv("bidp", "bidp_rsqn")?);
        if a.price.is_positive() {
            asks.push(a);
        }
        if b.price.is_positive() {
            bids.push(b);
        }
    }
    let first = |l: &[Level]| l.first().cloned().unwrap_or(Level { price: Price::ZERO, size: Qty::ZERO });
    let (a, b) = (first(&asks), first(&bids));
    Ok(Quote {
        provider: Provider::Kis,
        market: Market::KrStocks,
        symbol: symbol_code.clone(),
        bid_price: b.price,
        bid_size: b.size,
        ask_price: a.price,
        ask_size: a.size,
        bids,
        asks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_come_from_the_frame() {
        let f = "0|H0STCNT0|002|a^b^c^d^e^f";
        let d = parse_data(f).unwrap();
        assert_eq!(d.width, 3);
        assert_eq!(d.records().count(), 2);
        assert!(parse_data("0|H0STCNT0|004|a^b^c^d^e^f").is_err());
        assert!(parse_data("0|H0STCNT0|000|a").is_err());
        assert!(parse_data("0|H0STCNT0|1|a").is_err());
    }

    #[test]
    fn codes_may_have_letters_but_not_lowercase() {
        assert!(symbol("00088K").is_ok());
        assert!(symbol("Q500053").is_ok());
        assert!(symbol("00088k").is_err());
        assert!(symbol("5930").is_err());
    }
}
