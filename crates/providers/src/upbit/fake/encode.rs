//! Message encoding: DEFAULT / SIMPLE keys for the WebSocket, and the REST shapes.

use std::fmt::{Display, Write as _};

use model::{Price, Qty, Side, UtcTime};
use rust_decimal::Decimal;

use crate::sim::crypto::{CryptoBook, CryptoTrade, PairStats};
use crate::upbit::wire::{eight_decimals, exponent_form};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fmt {
    Default,
    Simple,
    Rest,
}

struct Obj {
    out: String,
    fmt: Fmt,
    first: bool,
}

impl Obj {
    fn new(fmt: Fmt) -> Obj {
        Obj { out: String::with_capacity(512), fmt, first: true }
    }
    fn key(&mut self, default: &str, simple: &str) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        self.out.push('"');
        self.out.push_str(if self.fmt == Fmt::Simple { simple } else { default });
        self.out.push_str("\":");
    }
    fn raw(&mut self, default: &str, simple: &str, v: impl Display) -> &mut Self {
        self.key(default, simple);
        let _ = write!(self.out, "{v}");
        self
    }
    fn str(&mut self, default: &str, simple: &str, v: impl Display) -> &mut Self {
        self.key(default, simple);
        let _ = write!(self.out, "\"{v}\"");
        self
    }
    fn done(&mut self) -> String {
        if self.first {
            self.out.push('{');
        }
        self.out.push('}');
        std::mem::take(&mut self.out)
    }
}

pub(super) fn ask_bid(side: Side) -> &'static str {
    match side {
        Side::Buy => "BID",
        Side::Sell => "ASK",
    }
}

/// Upbit's renderings (spec §4.8): DEFAULT prices of 10^7 or more in exponent form,
/// SIMPLE small sizes in exponent form, eight-decimal prices elsewhere.
fn px_text(p: Price, fmt: Fmt, exp_ok: bool) -> String {
    match fmt {
        Fmt::Default if exp_ok && p.0 >= Decimal::from(10_000_000) => exponent_form(p.0),
        Fmt::Simple => p.0.normalize().to_string(),
        _ => eight_decimals(p.0),
    }
}

fn qty_text(q: Qty, fmt: Fmt) -> String {
    if fmt == Fmt::Simple && q.0 < Decimal::new(1, 3) && !q.0.is_zero() {
        exponent_form(q.0)
    } else {
        eight_decimals(q.0)
    }
}

fn change(last: Price, pc: Price) -> (&'static str, Decimal, Decimal) {
    let diff = last.0 - pc.0;
    let word = if diff.is_zero() {
        "EVEN"
    } else if diff.is_sign_positive() {
        "RISE"
    } else {
        "FALL"
    };
    let rate = if pc.0.is_zero() { Decimal::ZERO } else { (diff / pc.0).round_dp(10) };
    (word, diff, rate)
}

pub(super) fn encode_ticker(st: &PairStats, fmt: Fmt, stream_type: &str, now: UtcTime) -> String {
    let mut o = Obj::new(fmt);
    let (word, diff, rate) = change(st.last, st.prev_close);
    let trade_ms = st.last_trade.as_ref().map_or(st.time.as_millis(), |t| t.time.as_millis());
    let tv = st.last_trade.as_ref().map_or(Qty::ZERO, |t| t.size);
    let side = st.last_trade.as_ref().map_or(Side::Buy, |t| t.side);
    let ts = UtcTime::from_millis(trade_ms).to_timestamp();
    let p = |x: Price| px_text(x, fmt, false);
    if fmt == Fmt::Rest {
        o.str("market", "", &st.symbol);
    } else {
        o.str("type", "ty", "ticker").str("code", "cd", &st.symbol);
    }
    o.raw("opening_price", "op", p(st.open))
        .raw("high_price", "hp", p(st.high))
        .raw("low_price", "lp", p(st.low))
        .raw("trade_price", "tp", p(st.last))
        .raw("prev_closing_price", "pcp", p(st.prev_close))
        .str("change", "c", word)
        .raw("change_price", "cp", p(Price(diff.abs())))
        .raw("signed_change_price", "scp", p(Price(diff)))
        .raw("change_rate", "cr", rate.abs())
        .raw("signed_change_rate", "scr", rate)
        .raw("trade_volume", "tv", qty_text(tv, fmt))
        .raw("acc_trade_volume", "atv", qty_text(st.acc_volume, fmt))
        .raw("acc_trade_volume_24h", "atv24h", eight_decimals(st.volume_24h.0))
        .raw("acc_trade_price", "atp", eight_decimals(st.acc_value))
        .raw("acc_trade_price_24h", "atp24h", eight_decimals(st.value_24h))
        .str("trade_date", "tdt", ts.strftime("%Y%m%d"))
        .str("trade_time", "ttm", ts.strftime("%H%M%S"))
        .raw("trade_timestamp", "ttms", trade_ms);
    if fmt == Fmt::Rest {
        let kst = UtcTime::from_millis(trade_ms + model::time::KST_OFFSET_MS).to_timestamp();
        o.str("trade_date_kst", "", kst.strftime("%Y%m%d")).str("trade_time_kst", "", kst.strftime("%H%M%S"));
    } else {
        o.str("ask_bid", "ab", ask_bid(side)).raw("acc_ask_volume", "aav", qty_text(st.acc_ask_volume, fmt)).raw(
            "acc_bid_volume",
            "abv",
            qty_text(st.acc_bid_volume, fmt),
        );
    }
    o.raw("highest_52_week_price", "h52wp", p(Price(st.prev_close.0 * Decimal::new(16, 1))))
        .str("highest_52_week_date", "h52wdt", "2025-10-06")
        .raw("lowest_52_week_price", "l52wp", p(Price((st.prev_close.0 * Decimal::new(55, 2)).round())))
        .str("lowest_52_week_date", "l52wdt", "2025-04-07");
    if fmt != Fmt::Rest {
        o.str("market_state", "ms", "ACTIVE")
            .raw("is_trading_suspended", "its", false)
            .raw("delisting_date", "dd", "null")
            .str("market_warning", "mw", "NONE");
    }
    o.raw("timestamp", "tms", now.as_millis().max(trade_ms));
    if fmt != Fmt::Rest {
        o.str("stream_type", "st", stream_type);
    }
    o.done()
}

pub(super) fn encode_trade(t: &CryptoTrade, pc: Price, fmt: Fmt, stream_type: &str, now: UtcTime) -> String {
    let mut o = Obj::new(fmt);
    let (word, diff, _) = change(t.price, pc);
    let ts = t.time.to_timestamp();
    o.str("type", "ty", "trade")
        .str("code", "cd", &t.symbol)
        .raw("timestamp", "tms", now.as_millis().max(t.time.as_millis()))
        .str("trade_date", "td", ts.strftime("%Y-%m-%d"))
        .str("trade_time", "ttm", ts.strftime("%H:%M:%S"))
        .raw("trade_timestamp", "ttms", t.time.as_millis())
        .raw("trade_price", "tp", px_text(t.price, fmt, false))
        .raw("trade_volume", "tv", qty_text(t.size, fmt))
        .str("ask_bid", "ab", ask_bid(t.side))
        .raw("prev_closing_price", "pcp", px_text(pc, fmt, false))
        .str("change", "c", word)
        .raw("change_price", "cp", px_text(Price(diff.abs()), fmt, false))
        .raw("sequential_id", "sid", t.sequential_id)
        .raw("best_ask_price", "bap", px_text(t.best_ask.0, fmt, true))
        .raw("best_ask_size", "bas", qty_text(t.best_ask.1, fmt))
        .raw("best_bid_price", "bbp", px_text(t.best_bid.0, fmt, true))
        .raw("best_bid_size", "bbs", qty_text(t.best_bid.1, fmt))
        .str("stream_type", "st", stream_type);
    o.done()
}

pub(super) fn encode_book(b: &CryptoBook, fmt: Fmt, stream_type: &str, depth: usize) -> String {
    let n = depth.min(b.bids.len().max(b.asks.len()));
    let total = |side: &[(Price, Qty)]| side.iter().take(n).fold(Decimal::ZERO, |a, l| a + l.1.0);
    let mut o = Obj::new(fmt);
    if fmt == Fmt::Rest {
        o.str("market", "", &b.symbol);
    } else {
        o.str("type", "ty", "orderbook").str("code", "cd", &b.symbol);
    }
    o.raw("timestamp", "tms", b.time.as_millis()).raw("total_ask_size", "tas", eight_decimals(total(&b.asks))).raw(
        "total_bid_size",
        "tbs",
        eight_decimals(total(&b.bids)),
    );
    o.key("orderbook_units", "obu");
    o.out.push('[');
    let zero = (Price::ZERO, Qty::ZERO);
    for i in 0..n {
        if i > 0 {
            o.out.push(',');
        }
        // REST pads a thin side with zeros so the array keeps `count` entries.
        let (a, bl) = (b.asks.get(i).copied().unwrap_or(zero), b.bids.get(i).copied().unwrap_or(zero));
        let mut u = Obj::new(fmt);
        if fmt == Fmt::Rest {
            u.raw("bid_price", "bp", px_text(bl.0, fmt, true)).raw("ask_price", "ap", px_text(a.0, fmt, true));
            u.raw("bid_size", "bs", qty_text(bl.1, fmt)).raw("ask_size", "as", qty_text(a.1, fmt));
        } else {
            u.raw("ask_price", "ap", px_text(a.0, fmt, true)).raw("bid_price", "bp", px_text(bl.0, fmt, true));
            u.raw("ask_size", "as", qty_text(a.1, fmt)).raw("bid_size", "bs", qty_text(bl.1, fmt));
        }
        o.out.push_str(&u.done());
    }
    o.out.push(']');
    if fmt != Fmt::Rest {
        o.str("stream_type", "st", stream_type);
    }
    o.raw("level", "lv", 0);
    o.done()
}
