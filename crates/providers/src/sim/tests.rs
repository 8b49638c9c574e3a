use std::collections::HashSet;

use jiff::civil::{Date, date, time};
use model::{MarketEvent, Price, Snapshot, Symbol, UtcTime};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::wire::{self, ParseProblem};
use super::*;

fn day() -> Date {
    date(2026, 1, 14)
}

fn at(h: i8, m: i8, s: i8) -> UtcTime {
    UtcTime::from_kst(day().to_datetime(time(h, m, s, 0)))
}

fn cfg(symbols: u32) -> SimConfig {
    SimConfig { symbols, ..SimConfig::krx_default() }
}

fn on_grid(m: &SimMarket, p: Price) -> bool {
    (p.0 % m.tick_size(p)).is_zero()
}

/// Feeds symbol `idx` from `from` to `to` in chunks whose lengths come from `chunks`.
fn feed_in_chunks(
    m: &mut SimMarket,
    idx: usize,
    from: UtcTime,
    to: UtcTime,
    seed: u64,
    max_chunk: u64,
    mut between: impl FnMut(&mut SimMarket, UtcTime),
) -> Vec<SimEvent> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let next = t.plus_millis(rng.u64(1..=max_chunk) as i64).min(to);
        m.events(idx, t, next, &mut out);
        between(m, next);
        t = next;
    }
    out
}

/// Equality with a short message (event lists run to tens of thousands of entries).
fn assert_same(got: &[SimEvent], want: &[SimEvent], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("{what}: event {i} differs: {:?} vs {:?}", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
}

#[test]
fn same_seed_and_day_give_the_same_market_however_it_is_queried() {
    let mut c = cfg(40);
    c.burst_probability_per_minute = 0.05; // make sure bursts are on the path
    let (from, to) = (at(8, 59, 0), at(10, 0, 0));
    let idx = 7;

    let mut one = SimMarket::new(&c, day());
    let mut whole = Vec::new();
    one.events(idx, from, to, &mut whole);
    assert!(whole.len() > 3600, "one book per step plus trades");

    let mut small = SimMarket::new(&c, day());
    assert_eq!(small.listings(), one.listings());
    let pieces = feed_in_chunks(&mut small, idx, from, to, 1, 1500, |_, _| {});
    assert_same(&pieces, &whole, "small calls");

    // Interleaved with other symbols and with snapshots running ahead of the feed.
    let mut mixed = SimMarket::new(&c, day());
    let mut scratch = Vec::new();
    let mut k = 0usize;
    let interleaved = feed_in_chunks(&mut mixed, idx, from, to, 2, 20_000, |m, t| {
        k += 1;
        let other = (idx + 1 + k % 30) % m.len();
        scratch.clear();
        m.events(other, t.plus_millis(-5_000), t, &mut scratch);
        m.snapshot(other, t.plus_millis(7_000));
        m.snapshot(idx, t.plus_millis(3_000 + (k as i64 % 5) * 1_000));
    });
    assert_same(&interleaved, &whole, "interleaved");

    // Snapshots agree too, at a time no cursor has passed (the interleaved snapshots ran
    // up to 7 s past `to`, and a query behind a cursor answers from the cursor).
    let later = to.plus_millis(10_000);
    assert_eq!(one.snapshot(idx, later), small.snapshot(idx, later));
    assert_eq!(one.snapshot(idx, later), mixed.snapshot(idx, later));
    assert_eq!(one.day_stats(idx, later), mixed.day_stats(idx, later));

    // A different seed is a different market.
    let mut other = SimMarket::new(&SimConfig { seed: c.seed + 1, ..c.clone() }, day());
    assert_ne!(other.listings(), one.listings());
    let mut diff = Vec::new();
    other.events(idx, from, to, &mut diff);
    assert!(diff != whole, "another seed gave the same events");

    // Another day: same universe, different previous closes and paths.
    let next = SimMarket::new(&c, date(2026, 1, 15));
    let codes = |m: &SimMarket| m.listings().iter().map(|l| l.symbol.clone()).collect::<Vec<_>>();
    assert_eq!(codes(&next), codes(&one));
    let moved = next.listings().iter().zip(one.listings()).filter(|(a, b)| a.prev_close != b.prev_close).count();
    assert!(moved > next.len() / 2);
}

#[test]
fn events_are_ordered_and_consistent_with_snapshots() {
    let mut m = SimMarket::new(&cfg(20), day());
    let open = m.session_open();
    assert_eq!(open, at(9, 0, 0));
    assert_eq!(m.session_close(), at(15, 30, 0));

    // Before the open: no trades, last = previous close.
    let s = m.snapshot(3, at(8, 30, 0));
    assert_eq!(s.volume.0, Decimal::ZERO);
    assert_eq!(s.last_price, m.listings()[3].prev_close);

    let (from, to) = (at(8, 59, 0), at(9, 30, 0));
    let mut out = Vec::new();
    m.events(3, from, to, &mut out);
    let mut last_time = from;
    let mut seq = 0;
    let mut vol = Decimal::ZERO;
    let mut books = 0;
    for ev in &out {
        assert!(ev.time() > last_time, "strictly increasing times");
        assert!(ev.time() > open && ev.time() <= to);
        last_time = ev.time();
        match ev {
            SimEvent::Trade(t) => {
                seq += 1;
                assert_eq!(t.seq, seq);
                vol += t.size.0;
                assert_eq!(t.cum_volume.0, vol);
                assert!(t.size.0 >= Decimal::ONE);
            }
            SimEvent::Book(b) => {
                books += 1;
                assert_eq!(b.bids.len(), 5);
                assert_eq!(b.asks.len(), 5);
                assert_eq!((b.time.millis_since(open) + 1) % 1000, 0);
            }
        }
    }
    assert_eq!(books, 1800);
    // The first trade is the opening auction at the open price.
    let SimEvent::Trade(first) = &out[0] else { panic!("first event is not a trade") };
    assert_eq!(first.time, open.plus_millis(1));
    let snap = m.snapshot(3, to);
    assert_eq!(snap.open, first.price);
    assert_eq!(snap.volume.0, vol);

    // A snapshot in the middle of a step includes exactly the trades at or before it.
    let mut m2 = SimMarket::new(&cfg(20), day());
    for ev in out.iter().filter(|e| matches!(e, SimEvent::Trade(_))).take(40) {
        let SimEvent::Trade(t) = ev else { unreachable!() };
        let s = m2.snapshot(3, t.time);
        assert_eq!(s.volume, t.cum_volume);
        assert_eq!(s.last_price, t.price);
    }

    // After the close nothing changes; earlier queries return the latest state reached.
    let end = m.snapshot(3, at(16, 0, 0));
    assert_eq!(m.snapshot(3, at(18, 0, 0)), end);
    assert_eq!(m.snapshot(3, at(10, 0, 0)), end);
    let mut late = Vec::new();
    m.events(3, at(15, 30, 0), at(16, 0, 0), &mut late);
    assert!(late.is_empty());
}

#[test]
fn universe_looks_like_krx() {
    let cfg = SimConfig::krx_default();
    let m = SimMarket::new(&cfg, day());
    let l = m.listings();
    let n_real = cfg.large_caps.len();
    assert_eq!(l.len(), 2000 + n_real);
    let codes: HashSet<&str> = l.iter().map(|x| x.symbol.as_str()).collect();
    assert_eq!(codes.len(), l.len(), "codes unique");
    assert!(codes.iter().all(|c| c.len() == 6));
    let generated: Vec<&Listing> = l.iter().filter(|x| !x.real).collect();
    assert_eq!(generated.len(), 2000);
    let lettered = generated.iter().filter(|x| x.symbol.as_str().bytes().any(|b| b.is_ascii_alphabetic())).count();
    assert!((1..=60).contains(&lettered), "{lettered} lettered codes");
    let kospi = generated.iter().filter(|x| x.board == Board::Kospi).count();
    assert_eq!(kospi, 700);
    for x in &generated {
        let first = x.symbol.as_str().as_bytes()[0];
        match x.board {
            Board::Kospi => assert_eq!(first, b'0'),
            Board::Kosdaq => assert!(first == b'1' || first == b'2'),
        }
        assert!(x.prev_close.0 >= Decimal::from(500) && x.prev_close.0 <= Decimal::from(1_000_000));
    }
    for x in l {
        assert!(on_grid(&m, x.prev_close), "{} {}", x.symbol, x.prev_close);
        assert!(!x.name.is_empty());
        assert!(x.shares > 0);
    }
    let above = generated.iter().filter(|x| x.prev_close.0 >= Decimal::from(4000)).count();
    assert!((800..=1200).contains(&above), "{above} of 2000 at or above 4000");
    for (i, x) in l.iter().enumerate().step_by(97) {
        assert_eq!(m.index_of(&x.symbol), Some(i));
    }
    assert_eq!(m.index_of(&Symbol::new("999999").unwrap()), None);
    let names: HashSet<&str> = l.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names.len(), l.len(), "names unique");
}

#[test]
fn real_large_caps_keep_their_codes_and_names() {
    let cfg = SimConfig::krx_default();
    let kospi = cfg.large_caps.iter().filter(|c| c.board == Board::Kospi).count();
    let kosdaq = cfg.large_caps.iter().filter(|c| c.board == Board::Kosdaq).count();
    assert!(kospi >= 50 && kosdaq >= 15, "{kospi} KOSPI, {kosdaq} KOSDAQ large caps");
    let mut m = SimMarket::new(&cfg, day());
    for (code, name, board) in [
        ("005930", "삼성전자", Board::Kospi),
        ("000660", "SK하이닉스", Board::Kospi),
        ("035420", "NAVER", Board::Kospi),
        ("005380", "현대차", Board::Kospi),
        ("373220", "LG에너지솔루션", Board::Kospi),
        ("207940", "삼성바이오로직스", Board::Kospi),
        ("247540", "에코프로비엠", Board::Kosdaq),
        ("086520", "에코프로", Board::Kosdaq),
        ("196170", "알테오젠", Board::Kosdaq),
    ] {
        let idx = m.index_of(&Symbol::new(code).unwrap()).unwrap_or_else(|| panic!("{code} not listed"));
        let l = m.listings()[idx].clone();
        assert_eq!((l.name.as_str(), l.board, l.real), (name, board, true), "{code}");
    }
    // Every large cap trades near its configured level, on the KRX grid.
    for cap in &cfg.large_caps {
        let idx = m.index_of(&Symbol::new(&cap.code).unwrap()).unwrap();
        let pc = m.listings()[idx].prev_close;
        assert!(on_grid(&m, pc), "{} {pc}", cap.code);
        let ratio = pc.0 / cap.price;
        assert!(
            ratio > Decimal::new(85, 2) && ratio < Decimal::new(115, 2),
            "{} at {pc}, level {}",
            cap.code,
            cap.price
        );
        let s = m.snapshot(idx, at(10, 0, 0));
        assert!(s.volume.0 > Decimal::ZERO && on_grid(&m, s.last_price), "{} {s:?}", cap.code);
    }
    // A generated symbol takes neither a real code nor a real name, and the real codes the
    // generator would have drawn (005930, 000660, ...) went to nobody else.
    let real_names: HashSet<&str> = cfg.large_caps.iter().map(|c| c.name.as_str()).collect();
    let real_codes: HashSet<&str> = cfg.large_caps.iter().map(|c| c.code.as_str()).collect();
    for l in m.listings().iter().filter(|l| !l.real) {
        assert!(!real_codes.contains(l.symbol.as_str()) && !real_names.contains(l.name.as_str()), "{l:?}");
    }
    let without = SimMarket::new(&SimConfig { large_caps: vec![], ..cfg.clone() }, day());
    assert_eq!(without.len(), 2000);
    assert_eq!(without.index_of(&Symbol::new("005930").unwrap()), None, "generated codes avoid real ones regardless");
}

#[test]
fn generated_paths_do_not_depend_on_the_real_listings() {
    let cfg = cfg(50);
    let (mut with, mut without) =
        (SimMarket::new(&cfg, day()), SimMarket::new(&SimConfig { large_caps: vec![], ..cfg.clone() }, day()));
    let sym = without.listings()[7].symbol.clone();
    let (a, b) = (with.index_of(&sym).unwrap(), without.index_of(&sym).unwrap());
    assert_eq!(with.snapshot(a, at(11, 0, 0)), without.snapshot(b, at(11, 0, 0)));
}

#[test]
fn daily_history_walks_back_from_the_previous_close() {
    let c = cfg(30);
    let mut m = SimMarket::new(&c, day());
    let dates = m.history_dates().to_vec();
    assert_eq!(dates.len(), c.history_days as usize);
    assert!(dates.windows(2).all(|w| w[0] > w[1]) && dates[0] < day());
    assert!(
        dates.iter().all(|d| !matches!(d.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday))
    );
    for idx in 0..m.len() {
        let bars = m.daily_history(idx);
        assert_eq!(bars.len(), dates.len());
        assert_eq!(bars[0].close, m.listings()[idx].prev_close, "the newest bar closes at the previous close");
        for (i, b) in bars.iter().enumerate() {
            assert_eq!(b.date, dates[i]);
            assert!(b.low.0 <= b.open.0.min(b.close.0) && b.high.0 >= b.open.0.max(b.close.0), "{b:?}");
            assert!(b.low.is_positive() && b.volume.0 >= Decimal::ONE);
            for p in [b.open, b.high, b.low, b.close, b.prev_close] {
                assert!(on_grid(&m, p), "{p} off grid in {b:?}");
            }
            if let Some(older) = bars.get(i + 1) {
                assert_eq!(b.prev_close, older.close, "bars chain");
            }
        }
        // Pure: asking again, or another market of the same seed and day, gives the same.
        assert_eq!(m.daily_history(idx), SimMarket::new(&c, day()).daily_history(idx));
    }
    // Holidays are skipped and the dates shift back.
    let holiday = dates[2];
    m.set_holidays(&[holiday]);
    assert!(!m.history_dates().contains(&holiday) && m.history_dates().len() == dates.len());
    let y = m.year_range(0);
    assert!(y.high.0 >= y.low.0 && y.prev_volume.0 >= Decimal::ONE);
}

#[test]
fn minute_bars_replay_the_feed_and_cover_the_session_so_far() {
    let mut m = SimMarket::new(&cfg(5), day());
    assert!(m.minute_bars(2, at(8, 59, 0)).is_empty(), "no bars before the open");
    let mid = at(10, 30, 30);
    // Asked in pieces, with a step in progress each time.
    for t in [at(9, 0, 0), at(9, 0, 0).plus_millis(1_500), at(9, 45, 10), mid] {
        m.minute_bars(2, t);
    }
    let bars = m.minute_bars(2, mid);
    assert_eq!(bars.len(), 91, "09:00 through 10:30");
    for (i, b) in bars.iter().enumerate() {
        assert_eq!(b.start, at(9, 0, 0).plus_millis(i as i64 * 60_000));
        assert!(b.low.0 <= b.open.0.min(b.close.0) && b.high.0 >= b.open.0.max(b.close.0));
    }
    let st = m.day_stats(2, mid);
    let last = bars.last().unwrap();
    assert_eq!(last.cum_volume, st.volume);
    assert_eq!(last.cum_value, st.traded_value);
    assert_eq!(last.close, st.last);
    assert_eq!(bars[0].open, st.open.unwrap());
    // The same bars as a fresh market's, and as the trades the feed delivers.
    assert_eq!(SimMarket::new(&cfg(5), day()).minute_bars(2, mid), bars);
    let mut ev = Vec::new();
    m.events(2, at(8, 0, 0), mid, &mut ev);
    let first_minute: Decimal = ev
        .iter()
        .filter_map(|e| match e {
            SimEvent::Trade(t) if t.time < at(9, 1, 0) => Some(t.size.0),
            _ => None,
        })
        .sum();
    assert_eq!(bars[0].volume.0, first_minute);
}

#[test]
fn tick_table_is_krx() {
    let m = SimMarket::new(&cfg(1), day());
    let t = |p: i64| m.tick_size(Price::from_int(p));
    assert_eq!(t(1_999), Decimal::from(1));
    assert_eq!(t(2_000), Decimal::from(5));
    assert_eq!(t(4_995), Decimal::from(5));
    assert_eq!(t(5_000), Decimal::from(10));
    assert_eq!(t(49_950), Decimal::from(50));
    assert_eq!(t(50_000), Decimal::from(100));
    assert_eq!(t(200_000), Decimal::from(500));
    assert_eq!(t(499_500), Decimal::from(500));
    assert_eq!(t(500_000), Decimal::from(1_000));
}

fn check_prices(m: &mut SimMarket, idx: usize, events: &[SimEvent]) {
    let pc = m.listings()[idx].prev_close.0;
    let lo = pc * Decimal::new(70, 2);
    let hi = pc * Decimal::new(130, 2);
    let ok = |p: Price| p.is_positive() && p.0 >= lo && p.0 <= hi && on_grid(m, p);
    for ev in events {
        match ev {
            SimEvent::Trade(t) => assert!(ok(t.price), "trade {t:?} (pc {pc})"),
            SimEvent::Book(b) => {
                assert!(!b.bids.is_empty() && !b.asks.is_empty());
                assert!(b.bids[0].0 < b.asks[0].0, "crossed {b:?}");
                assert!(b.bids.windows(2).all(|w| w[0].0 > w[1].0));
                assert!(b.asks.windows(2).all(|w| w[0].0 < w[1].0));
                for &(p, q) in b.bids.iter().chain(&b.asks) {
                    assert!(ok(p), "book level {p} (pc {pc})");
                    assert!(q.is_positive());
                }
            }
        }
    }
}

#[test]
fn prices_stay_on_the_grid_and_within_limits() {
    let mut m = SimMarket::new(&cfg(150), day());
    let mut out = Vec::new();
    for idx in 0..m.len() {
        out.clear();
        m.events(idx, at(8, 0, 0), at(10, 0, 0), &mut out);
        check_prices(&mut m, idx, &out);
        let s = m.snapshot(idx, at(10, 0, 0));
        assert!(s.bid_price.unwrap() < s.ask_price.unwrap());
    }

    // Wild volatility drives symbols into the daily limits; the clamp must hold.
    let mut wild = cfg(30);
    wild.daily_volatility = 1.0;
    wild.burst_probability_per_minute = 0.05;
    wild.burst_volatility_multiplier = 10.0;
    wild.prev_close_median = Decimal::from(2_100);
    let mut m = SimMarket::new(&wild, day());
    let mut hit = 0;
    for idx in 0..m.len() {
        out.clear();
        m.events(idx, at(8, 0, 0), at(16, 0, 0), &mut out);
        check_prices(&mut m, idx, &out);
        let st = m.day_stats(idx, at(16, 0, 0));
        if st.high == Some(st.limit_high) || st.low == Some(st.limit_low) {
            hit += 1;
        }
    }
    assert!(hit > 0, "no symbol reached a limit");
}

#[test]
fn bursts_are_rare_and_quiet_symbols_trade_at_the_configured_rate() {
    let c = SimConfig::krx_default();
    let mut m = SimMarket::new(&c, day());
    let open = m.session_open();
    let mut flagged = Vec::new();
    let mut bursting = Vec::new();
    let mut quiet_ratio = Vec::new();
    let expected = c.trades_per_second * 3600.0;
    for idx in 0..m.len() {
        let mut prev = m.day_stats(idx, open.plus_millis(60_000 - 1));
        let mut minutes = Vec::with_capacity(60);
        // Minute 0 holds the opening auction; measure minutes 1..60.
        for minute in 2..=60 {
            let st = m.day_stats(idx, open.plus_millis(minute * 60_000 - 1));
            minutes.push((st.volume.0 - prev.volume.0).try_into().unwrap_or(0.0f64));
            prev = st;
        }
        let mut sorted = minutes.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let max = sorted[sorted.len() - 1];
        flagged.push(max >= 5.0 * median);
        let burst = (1..60).any(|mi| m.is_bursting(idx, open.plus_millis(mi * 60_000)));
        bursting.push(burst);
        if !(0..60).any(|mi| m.is_bursting(idx, open.plus_millis(mi * 60_000))) {
            let trades = m.day_stats(idx, open.plus_millis(3_600_000)).trades - 1;
            quiet_ratio.push(trades as f64 / expected);
        }
    }
    let n_flagged = flagged.iter().filter(|&&f| f).count();
    let n_burst = bursting.iter().filter(|&&b| b).count();
    assert!((20..=500).contains(&n_flagged), "{n_flagged} of 2000 symbols had a 5x minute");
    // Surges come from bursts, and bursts show up as surges.
    let false_alarms = (0..m.len()).filter(|&i| flagged[i] && !bursting[i]).count();
    assert!(false_alarms <= n_flagged / 20, "{false_alarms} surges without a burst");
    let caught = (0..m.len()).filter(|&i| flagged[i] && bursting[i]).count();
    assert!(caught * 10 >= n_burst * 8, "{caught} of {n_burst} bursts caught");

    assert!(quiet_ratio.len() > 1500);
    let mean = quiet_ratio.iter().sum::<f64>() / quiet_ratio.len() as f64;
    assert!((0.95..=1.05).contains(&mean), "mean trade ratio {mean}");
    assert!(quiet_ratio.iter().all(|r| (0.75..=1.25).contains(r)));
}

#[test]
fn invalid_config_is_refused() {
    let mut c = cfg(10);
    c.quote_levels = 0;
    let problems = SimMarket::try_new(&c, day()).unwrap_err();
    assert_eq!(problems[0].key, "quote_levels");
    let mut c = cfg(10);
    c.large_caps[1].code = c.large_caps[0].code.clone();
    c.large_caps[2].code = "5930".into();
    c.large_caps[3].price = Decimal::ZERO;
    let problems = SimMarket::try_new(&c, day()).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().all(|p| p.key == "large_caps"));
}

// ---------------------------------------------------------------------------------------
// Wire format.

#[test]
fn wire_round_trips() {
    let mut m = SimMarket::new(&cfg(5), day());
    let mut out = Vec::new();
    m.events(2, at(8, 0, 0), at(9, 5, 0), &mut out);
    assert!(out.iter().any(|e| matches!(e, SimEvent::Trade(_))));
    for ev in &out {
        let frame = wire::encode(ev);
        let (t, parsed) = wire::parse(&frame).unwrap();
        assert_eq!(t, ev.time());
        assert_eq!(parsed, ev.to_market_event(), "{frame}");
    }
    let SimEvent::Trade(tr) = &out[0] else { panic!() };
    let frame = wire::encode_trade(tr);
    assert!(frame.starts_with("{\"t\":\"trade\",\"s\":\""), "{frame}");
    assert!(frame.contains("\"ts\":\"2026-01-14T00:00:00.001Z\""), "{frame}");

    let t = at(9, 4, 0);
    let snap = m.snapshot(2, t);
    let frame = wire::encode_snapshot(t, &snap);
    let (pt, parsed) = wire::parse(&frame).unwrap();
    assert_eq!(pt, t);
    assert_eq!(parsed, MarketEvent::Snapshot(snap.clone()));
    let bare = Snapshot { bid_price: None, ask_price: None, ..snap };
    let (_, parsed) = wire::parse(&wire::encode_snapshot(t, &bare)).unwrap();
    assert_eq!(parsed, MarketEvent::Snapshot(bare));
    assert_eq!(wire::MAPPER_VERSION, "sim/1");
}

#[test]
fn wire_accepts_escapes_and_names_problems() {
    let ts = "2026-01-14T00:31:05.123Z";
    let ok = format!(
        r#"{{"t":"trade","s":"00593\u0030","p":"71500","q":"10","side":"buy","seq":1,"cv":"10","ts":"{ts}","extra":[1]}}"#
    );
    let (_, ev) = wire::parse(&ok).unwrap();
    assert_eq!(ev.symbol().as_str(), "005930");

    type Check = fn(&ParseProblem) -> bool;
    let cases: Vec<(String, Check)> = vec![
        ("not json".into(), |p| matches!(p, ParseProblem::Json(_))),
        ("[1,2]".into(), |p| matches!(p, ParseProblem::Json(_))),
        (
            format!(r#"{{"t":"tick","s":"005930","ts":"{ts}"}}"#),
            |p| matches!(p, ParseProblem::UnknownType(t) if t == "tick"),
        ),
        (r#"{"t":"trade","s":"005930"}"#.into(), |p| *p == ParseProblem::Missing("ts")),
        (format!(r#"{{"t":"trade","s":"005930","p":"7x","q":"1","side":"buy","seq":1,"ts":"{ts}"}}"#), |p| {
            matches!(p, ParseProblem::BadDecimal { field: "p", .. })
        }),
        (format!(r#"{{"t":"trade","s":"../x","ts":"{ts}"}}"#), |p| matches!(p, ParseProblem::BadSymbol(_))),
        (r#"{"t":"trade","s":"005930","ts":"yesterday"}"#.into(), |p| matches!(p, ParseProblem::BadTime(_))),
        (format!(r#"{{"t":"trade","s":"005930","p":"1","q":"1","side":"up","seq":1,"ts":"{ts}"}}"#), |p| {
            matches!(p, ParseProblem::BadSide(_))
        }),
        (format!(r#"{{"t":"book","s":"005930","b":[],"a":[["1","1"]],"ts":"{ts}"}}"#), |p| {
            *p == ParseProblem::EmptyBook("b")
        }),
        (
            format!(r#"{{"t":"book","s":"005930","b":[["1","1"]],"a":[["2","x"]],"ts":"{ts}"}}"#),
            |p| matches!(p, ParseProblem::BadDecimal { field: "a", value } if value == "x"),
        ),
        (format!(r#"{{"t":"snap","s":"005930","last":"1","ts":"{ts}"}}"#), |p| *p == ParseProblem::Missing("open")),
    ];
    for (frame, check) in cases {
        let err = wire::parse(&frame).unwrap_err();
        assert!(check(&err.problem), "{frame}: {err}");
        assert_eq!(err.frame, frame);
    }

    let long = "x".repeat(600) + "한";
    let err = wire::parse(&long).unwrap_err();
    assert_eq!(err.frame.len(), 512);
    let multibyte = "é".repeat(400);
    let err = wire::parse(&multibyte).unwrap_err();
    assert!(err.frame.len() <= 512 && multibyte.starts_with(&err.frame));
}

fn sample_frames() -> Vec<String> {
    let mut m = SimMarket::new(&cfg(3), day());
    let mut out = Vec::new();
    m.events(1, at(8, 0, 0), at(9, 0, 3), &mut out);
    let mut frames: Vec<String> = out.iter().map(wire::encode).collect();
    frames.push(wire::encode_snapshot(at(9, 0, 3), &m.snapshot(1, at(9, 0, 3))));
    frames
}

proptest! {
    #[test]
    fn parse_never_panics_on_text(s in ".{0,700}") {
        if let Err(e) = wire::parse(&s) {
            prop_assert!(s.starts_with(&e.frame) && e.frame.len() <= 512);
        }
    }

    #[test]
    fn parse_rejects_garbage_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let s = String::from_utf8_lossy(&bytes);
        let e = wire::parse(&s).unwrap_err();
        prop_assert!(s.starts_with(&e.frame) && e.frame.len() <= 512);
        prop_assert!(!e.to_string().is_empty());
    }

    #[test]
    fn parse_survives_mangled_frames(which in 0usize..8, cut in 0usize..400, byte in any::<u8>()) {
        let frames = sample_frames();
        let f = &frames[which % frames.len()];
        let cut = cut % (f.len() + 1);
        // Truncated and corrupted frames: never panic, and the frame is kept on error.
        let truncated = &f[..cut];
        if let Err(e) = wire::parse(truncated) {
            prop_assert_eq!(&e.frame, truncated);
        }
        let mut bytes = f.clone().into_bytes();
        if cut < bytes.len() {
            bytes[cut] = byte;
        }
        let mangled = String::from_utf8_lossy(&bytes);
        let _ = wire::parse(&mangled);
    }
}
