//! H0STCNT0 / H0STASP0 records as KIS lays them out (spec §5), built from sim events, with
//! the consistency rules of spec §7 (NTBY = SHNU − SELN, CTTR = SHNU_SMTN / SELN_SMTN × 100,
//! WGHN_AVRG = value / volume, X_VRSS_PRPR = price − X).

use rust_decimal::Decimal;

use model::{Qty, Side, UtcTime};

use super::TradeAcc;
use crate::sim::{SimBook, SimTrade};

fn n(d: Decimal) -> String {
    d.normalize().to_string()
}
fn two(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}
fn sign(d: Decimal) -> &'static str {
    if d > Decimal::ZERO {
        "2"
    } else if d < Decimal::ZERO {
        "5"
    } else {
        "3"
    }
}
pub(crate) fn hhmmss(t: UtcTime) -> String {
    let k = t.kst();
    format!("{:02}{:02}{:02}", k.hour(), k.minute(), k.second())
}
pub(crate) fn yyyymmdd(t: UtcTime) -> String {
    t.kst_yyyymmdd()
}

/// Pads a record to `width` fields: `MARKET_CLS_CODE` `2` (regular session) at the first
/// position past the base layout, empty strings after it.
fn pad(mut f: Vec<String>, base: usize, width: usize) -> String {
    f.truncate(width);
    while f.len() < width {
        f.push(if f.len() == base { "2".into() } else { String::new() });
    }
    f.join("^")
}

/// One H0STCNT0 record of `width` (≥ 46) fields. `acc` carries the day so far and is updated.
pub fn trade_record(
    t: &SimTrade,
    prev_close: Decimal,
    best: (Decimal, Decimal),
    acc: &mut TradeAcc,
    width: usize,
) -> String {
    let (price, size) = (t.price.0, t.size.0);
    let time = hhmmss(t.time);
    let first = || Some((price, time.clone()));
    if acc.open.is_none() {
        acc.open = first();
    }
    if acc.high.as_ref().is_none_or(|(h, _)| price > *h) {
        acc.high = first();
    }
    if acc.low.as_ref().is_none_or(|(l, _)| price < *l) {
        acc.low = first();
    }
    acc.value += price * size;
    match t.side {
        Side::Buy => {
            acc.buy_count += 1;
            acc.buy_qty += size;
        }
        Side::Sell => {
            acc.sell_count += 1;
            acc.sell_qty += size;
        }
    }
    let vol: Qty = t.cum_volume;
    let hundred = Decimal::from(100);
    let vrss = price - prev_close;
    let ctrt = if prev_close.is_zero() { Decimal::ZERO } else { vrss / prev_close * hundred };
    let vwap = if vol.0.is_zero() { price } else { acc.value / vol.0 };
    let cttr = if acc.sell_qty.is_zero() { Decimal::ZERO } else { acc.buy_qty / acc.sell_qty * hundred };
    let both = acc.buy_qty + acc.sell_qty;
    let shnu_rate = if both.is_zero() { Decimal::ZERO } else { acc.buy_qty / both * hundred };
    let (open, high, low) = (
        acc.open.clone().unwrap_or_default(),
        acc.high.clone().unwrap_or_default(),
        acc.low.clone().unwrap_or_default(),
    );
    let f: Vec<String> = vec![
        t.symbol.as_str().into(),
        time.clone(),
        n(price),
        sign(vrss).into(),
        n(vrss),
        two(ctrt),
        two(vwap),
        n(open.0),
        n(high.0),
        n(low.0),
        n(best.1),
        n(best.0),
        n(size),
        n(vol.0),
        n(acc.value),
        acc.sell_count.to_string(),
        acc.buy_count.to_string(),
        (acc.buy_count as i64 - acc.sell_count as i64).to_string(),
        two(cttr),
        n(acc.sell_qty),
        n(acc.buy_qty),
        if t.side == Side::Buy { "1" } else { "5" }.into(),
        two(shnu_rate),
        "0.00".into(),
        open.1,
        sign(price - open.0).into(),
        n(price - open.0),
        high.1,
        sign(price - high.0).into(),
        n(price - high.0),
        low.1,
        sign(price - low.0).into(),
        n(price - low.0),
        yyyymmdd(t.time),
        "20".into(),
        "N".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0.00".into(),
        "0".into(),
        "0.00".into(),
        "0".into(),
        String::new(),
        "0".into(),
    ];
    pad(f, 46, width)
}

/// One H0STASP0 record of `width` (≥ 59) fields.
pub fn book_record(b: &SimBook, prev_close: Decimal, cum_volume: Qty, width: usize) -> String {
    let level = |side: &[(model::Price, Qty)], i: usize, price: bool| {
        side.get(i).map_or("0".to_string(), |(p, q)| if price { n(p.0) } else { n(q.0) })
    };
    let mut f: Vec<String> = vec![b.symbol.as_str().into(), hhmmss(b.time), "0".into()];
    for i in 0..10 {
        f.push(level(&b.asks, i, true));
    }
    for i in 0..10 {
        f.push(level(&b.bids, i, true));
    }
    for i in 0..10 {
        f.push(level(&b.asks, i, false));
    }
    for i in 0..10 {
        f.push(level(&b.bids, i, false));
    }
    let total = |side: &[(model::Price, Qty)]| n(side.iter().map(|(_, q)| q.0).sum());
    f.push(total(&b.asks));
    f.push(total(&b.bids));
    f.extend(["0", "0", "0", "0", "0"].map(String::from));
    // Outside auctions the expected-price block reads "−previous close, down, −100 %".
    f.push(n(-prev_close));
    f.push("5".into());
    f.push("-100.00".into());
    f.push(n(cum_volume.0));
    f.extend(["0", "0", "0", "0", "0"].map(String::from));
    f.extend(["0", "0", "0"].map(String::from));
    pad(f, 62, width)
}
