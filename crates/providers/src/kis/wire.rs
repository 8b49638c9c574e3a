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

/// `kis/2`: an `H0STCNT0` record also yields the level-1 quote it carries (`kis/1`: the tick only).
pub const MAPPER_VERSION: &str = "kis/2";

pub const TR_TRADE: &str = "H0STCNT0";
pub const TR_BOOK: &str = "H0STASP0";
pub const TR_PRICE: &str = "FHKST01010100";
pub const PINGPONG: &str = "PINGPONG";

/// Oldest documented widths; a narrower record is torn or corrupt.
pub const TRADE_MIN_WIDTH: usize = 46;
pub const BOOK_MIN_WIDTH: usize = 59;
/// Book levels in an H0STASP0 record.
pub const BOOK_LEVELS: usize = 10;

/// A data frame split into its header and payload. Records are read in place from the
/// payload (see [`DataFrame::try_for_each_record`]): a busy session delivers hundreds of
/// thousands of records a second, so no field list is allocated per frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub encrypted: bool,
    pub tr_id: &'a str,
    pub count: usize,
    /// Fields per record (every record of a frame has the same width).
    pub width: usize,
    /// The `^`-separated fields of every record, in order (empty when encrypted).
    pub payload: &'a str,
}

/// Fields of a record a visitor can read; fields past this position (future additions KIS
/// makes without notice) are skipped, as the mappers never read them.
pub const MAX_READ_FIELDS: usize = 64;

/// The fields of one record, read in place from the frame.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a, 'b> {
    text: &'a str,
    /// `starts[i]` is where field `i` begins; field `i` ends one byte (its `^`) before
    /// `starts[i + 1]`.
    starts: &'b [usize],
}

impl<'a> Fields<'a, '_> {
    /// Fields readable (the record's width, or [`MAX_READ_FIELDS`] if it is wider).
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let (start, next) = (*self.starts.get(i)?, *self.starts.get(i + 1)?);
        // Separators are ASCII, so both ends are on character boundaries.
        self.text.get(start..next - 1)
    }
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

impl std::ops::Index<usize> for Fields<'_, '_> {
    type Output = str;
    /// Panics if `i >= len()`, as slice indexing does: mappers check the width first.
    fn index(&self, i: usize) -> &str {
        match self.get(i) {
            Some(f) => f,
            None => panic!("field {i} of a {}-field record", self.len()),
        }
    }
}

impl<'a> DataFrame<'a> {
    /// Calls `f` with the fields of each record in order — all of them, or the first
    /// [`MAX_READ_FIELDS`] of a wider record — and stops at the first error.
    pub fn try_for_each_record<E>(&self, mut f: impl FnMut(&Fields<'a, '_>) -> Result<(), E>) -> Result<(), E> {
        if self.encrypted || self.width == 0 {
            return Ok(());
        }
        let (text, width) = (self.payload, self.width);
        let mut starts = [0usize; MAX_READ_FIELDS + 1];
        let mut n = 0; // fields of the current record ended so far
        let mut result = Ok(());
        // Called with the position of each field's `^`, or the payload's end for the last.
        // Kept in locals (no per-field call): this runs for every field KIS sends.
        let complete = model::scan::eq_masks(text.as_bytes(), b'^', |at, mut mask| {
            while mask != 0 {
                let end = at + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                n += 1;
                if n <= MAX_READ_FIELDS {
                    starts[n] = end + 1;
                }
                if n == width {
                    result = f(&Fields { text, starts: &starts[..n.min(MAX_READ_FIELDS) + 1] });
                    if result.is_err() {
                        return false;
                    }
                    starts[0] = end + 1;
                    n = 0;
                }
            }
            true
        });
        if complete {
            // The payload's last field ends its last record (parse_data checked the count).
            n += 1;
            if n <= MAX_READ_FIELDS {
                starts[n] = text.len() + 1;
            }
            if n == width {
                result = f(&Fields { text, starts: &starts[..n.min(MAX_READ_FIELDS) + 1] });
            }
        }
        result
    }

    /// The first field of each record (the stock code of KIS's real-time TRs).
    pub fn first_fields(&self) -> Vec<&'a str> {
        let mut out = Vec::with_capacity(self.count);
        let _ = self.try_for_each_record(|r| {
            out.push(r.get(0).unwrap_or_default());
            Ok::<(), ()>(())
        });
        out
    }
}

pub fn parse_data(frame: &str) -> Result<DataFrame<'_>, String> {
    // The header is a few bytes: find its three `|` directly.
    let mut bars = [0usize; 3];
    let mut found = 0;
    for (i, &b) in frame.as_bytes().iter().enumerate() {
        if b == b'|' {
            bars[found] = i;
            found += 1;
            if found == 3 {
                break;
            }
        }
    }
    if found < 3 {
        return Err("data frame has fewer than 4 '|' parts".into());
    }
    // `|` is ASCII, so these are character boundaries.
    let part = |r: std::ops::Range<usize>| frame.get(r).unwrap_or_default();
    let (enc, tr_id, count) = (part(0..bars[0]), part(bars[0] + 1..bars[1]), part(bars[1] + 1..bars[2]));
    let payload = part(bars[2] + 1..frame.len());
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
        return Ok(DataFrame { encrypted, tr_id, count, width: 0, payload: "" });
    }
    let fields = model::scan::count_byte(payload.as_bytes(), b'^') + 1;
    if !fields.is_multiple_of(count) {
        return Err(format!("{fields} fields do not divide into {count} records"));
    }
    let width = fields / count;
    Ok(DataFrame { encrypted, tr_id, count, width, payload })
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

/// A number field, exactly, within the archive's domain (|x| ≤ 1e18,
/// [`model::num::PLAUSIBLE_ABS_MAX`]): KIS fields such as `ACML_VOL` are signed text of any
/// length, and a value no market produces is refused here rather than overflowing the
/// arithmetic behind the parser (issue 14).
fn dec(name: &str, s: &str) -> Result<Decimal, String> {
    let d = Decimal::from_str_exact(s).map_err(|_| format!("{name} {s:?} is not a number"))?;
    if d.abs() > model::num::PLAUSIBLE_ABS_MAX {
        return Err(format!("{name} {s:?} is implausible (|value| above 1e18)"));
    }
    Ok(d)
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

/// One H0STCNT0 record (width ≥ 46) → a tick at its KST trade time, and the level-1 quote
/// the record carries beside it (`ASKP1`, `BIDP1`, `ASKP_RSQN1`, `BIDP_RSQN1`): everything a
/// Track B sample needs from one registration, so a slot does not have to spend a second
/// one on `H0STASP0`. A side with no resting order (price 0, as at a limit price) yields no
/// quote rather than a zero-priced one.
pub fn trade_record(r: &Fields<'_, '_>) -> Result<(UtcTime, Tick, Option<Quote>), String> {
    if r.len() < TRADE_MIN_WIDTH {
        return Err(format!("H0STCNT0 record has {} fields, fewer than {TRADE_MIN_WIDTH}", r.len()));
    }
    let at = kst(yyyymmdd(&r[33])?, hhmmss(&r[1])?);
    let side = match &r[21] {
        "1" => Some(Side::Buy),
        "5" => Some(Side::Sell),
        _ => None,
    };
    let symbol = symbol(&r[0])?;
    let ask = Level { price: price("ASKP1", &r[10])?, size: qty("ASKP_RSQN1", &r[36])? };
    let bid = Level { price: price("BIDP1", &r[11])?, size: qty("BIDP_RSQN1", &r[37])? };
    let quote = (ask.price.is_positive() && bid.price.is_positive()).then(|| Quote {
        provider: Provider::Kis,
        market: Market::KrStocks,
        symbol: symbol.clone(),
        bid_price: bid.price,
        bid_size: bid.size,
        ask_price: ask.price,
        ask_size: ask.size,
        bids: vec![bid],
        asks: vec![ask],
    });
    let tick = Tick {
        provider: Provider::Kis,
        market: Market::KrStocks,
        symbol,
        price: price("STCK_PRPR", &r[2])?,
        size: qty("CNTG_VOL", &r[12])?,
        side,
        cum_volume: Some(qty("ACML_VOL", &r[13])?),
        trade_id: None,
    };
    Ok((at, tick, quote))
}

/// One H0STASP0 record (width ≥ 59) → a quote. The record has a time but no date; the date
/// is the Seoul date at which the frame was received (spec §4.5).
pub fn book_record(r: &Fields<'_, '_>, received: UtcTime) -> Result<(UtcTime, Quote), String> {
    if r.len() < BOOK_MIN_WIDTH {
        return Err(format!("H0STASP0 record has {} fields, fewer than {BOOK_MIN_WIDTH}", r.len()));
    }
    let at = kst(received.kst().date(), hhmmss(&r[1])?);
    let mut asks = Vec::with_capacity(BOOK_LEVELS);
    let mut bids = Vec::with_capacity(BOOK_LEVELS);
    for i in 0..BOOK_LEVELS {
        let ask = Level { price: price("ASKP", &r[3 + i])?, size: qty("ASKP_RSQN", &r[23 + i])? };
        let bid = Level { price: price("BIDP", &r[13 + i])?, size: qty("BIDP_RSQN", &r[33 + i])? };
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
        symbol: symbol(&r[0])?,
        bid_price: price("BIDP1", &r[13])?,
        bid_size: qty("BIDP_RSQN1", &r[33])?,
        ask_price: price("ASKP1", &r[3])?,
        ask_size: qty("ASKP_RSQN1", &r[23])?,
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
            match d.tr_id {
                TR_TRADE => d.try_for_each_record(|r| {
                    trade_record(r).map(|(t, tick, quote)| {
                        out.push((t, MarketEvent::Tick(tick)));
                        if let Some(q) = quote {
                            out.push((t, MarketEvent::Quote(q)));
                        }
                    })
                })?,
                TR_BOOK => d.try_for_each_record(|r| {
                    book_record(r, received).map(|(t, e)| out.push((t, MarketEvent::Quote(e))))
                })?,
                _ => {}
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

/// The codes a sent (archived) message registers: `tr_type` `1` with a `tr_key`. The
/// observer admits stream records only for codes the stream was asked for, live and in
/// replay alike, from these in-band messages.
pub fn subscribed_codes(sent: &str) -> Vec<Symbol> {
    let Ok(v) = serde_json::from_str::<Value>(sent) else { return Vec::new() };
    if v.pointer("/header/tr_type").and_then(Value::as_str) != Some("1") {
        return Vec::new();
    }
    v.pointer("/body/input/tr_key").and_then(Value::as_str).and_then(|k| symbol(k).ok()).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_come_from_the_frame() {
        let f = "0|H0STCNT0|002|a^b^c^d^e^f";
        let d = parse_data(f).unwrap();
        assert_eq!(d.width, 3);
        let mut records = Vec::new();
        d.try_for_each_record(|r| {
            records.push(r.iter().collect::<Vec<_>>().join(","));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(records, ["a,b,c", "d,e,f"]);
        assert_eq!(d.first_fields(), ["a", "d"]);
        assert!(parse_data("0|H0STCNT0|004|a^b^c^d^e^f").is_err());
        assert!(parse_data("0|H0STCNT0|000|a").is_err());
        assert!(parse_data("0|H0STCNT0|1|a").is_err());
    }

    #[test]
    fn records_are_split_like_str_split() {
        // Widths past MAX_READ_FIELDS, fields longer than a 64-byte block, empty fields,
        // multi-byte characters and separators at block edges.
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..2000 {
            let count = rng.usize(1..4);
            let width = if round % 5 == 0 { rng.usize(60..80) } else { rng.usize(1..50) };
            let fields: Vec<String> = (0..count * width)
                .map(|_| match rng.u8(..10) {
                    0 => String::new(),
                    1 => "가나".repeat(rng.usize(1..30)),
                    _ => (0..rng.usize(1..12)).map(|_| rng.alphanumeric()).collect(),
                })
                .collect();
            let frame = format!("0|H0STCNT0|{count:03}|{}", fields.join("^"));
            let d = parse_data(&frame).unwrap();
            assert_eq!((d.count, d.width), (count, width));
            let mut got: Vec<Vec<String>> = Vec::new();
            d.try_for_each_record(|r| {
                got.push(r.iter().map(str::to_string).collect());
                Ok::<(), ()>(())
            })
            .unwrap();
            let want: Vec<Vec<String>> =
                fields.chunks(width).map(|r| r.iter().take(MAX_READ_FIELDS).cloned().collect()).collect();
            assert_eq!(got, want, "{frame}");
        }
        // A visitor error stops the walk.
        let d = parse_data("0|H0STCNT0|003|a^b^c").unwrap();
        let mut seen = 0;
        assert_eq!(
            d.try_for_each_record(|_| {
                if {
                    seen += 1;
                    seen
                } == 2
                {
                    Err(())
                } else {
                    Ok(())
                }
            }),
            Err(())
        );
        assert_eq!(seen, 2);
    }

    #[test]
    fn codes_may_have_letters_but_not_lowercase() {
        assert!(symbol("00088K").is_ok());
        assert!(symbol("Q500053").is_ok());
        assert!(symbol("00088k").is_err());
        assert!(symbol("5930").is_err());
    }
}
