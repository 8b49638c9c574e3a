use super::*;

fn day() -> Date {
    jiff::civil::date(2026, 1, 14)
}

#[test]
fn default_config_is_valid() {
    let mut c = Checker::default();
    CryptoSimConfig::upbit_default().validate(&mut c);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
}

#[test]
fn path_is_independent_of_query_pattern() {
    let cfg = CryptoSimConfig::upbit_default();
    let mut a = CryptoMarket::try_new(&cfg, day()).unwrap();
    let mut b = CryptoMarket::try_new(&cfg, day()).unwrap();
    let t0 = a.day_start();
    let btc = a.index_of("KRW-BTC").unwrap();
    for m in 1..=30 {
        a.advance(btc, t0.plus_millis(m * 60_000));
    }
    let end = t0.plus_millis(30 * 60_000);
    assert_eq!(a.stats(btc, end), b.stats(btc, end));
    assert_eq!(a.book(btc, end, 30), b.book(btc, end, 30));
    let other = CryptoMarket::try_new(&CryptoSimConfig { seed: 2, ..cfg }, day()).unwrap().listings()[0].clone();
    assert_ne!(other.prev_close, a.listings()[0].prev_close);
}

#[test]
fn prices_sit_on_the_tick_grid_and_sizes_are_fractional() {
    let cfg = CryptoSimConfig::upbit_default();
    let mut m = CryptoMarket::try_new(&cfg, day()).unwrap();
    let t = m.day_start().plus_millis(3_600_000);
    let mut fractional = false;
    for idx in 0..m.listings().len() {
        m.watch(idx, true, m.day_start());
        let mut ev = Vec::new();
        m.drain(idx, t, &mut ev);
        for e in &ev {
            if let CryptoEvent::Trade(tr) = e {
                let tick = m.tick_size(tr.0.price);
                assert!((tr.0.price.0 % tick).is_zero(), "{} off grid {}", tr.0.price, tick);
                fractional |= !tr.0.size.0.fract().is_zero();
            }
        }
        let b = m.book(idx, t, 30).unwrap();
        assert_eq!(b.asks.len(), 30);
        assert!(b.bids[0].0 < b.asks[0].0);
    }
    assert!(fractional);
    let btc = m.index_of("KRW-BTC").unwrap();
    let pc = m.listings()[btc].prev_close.0;
    assert!(pc > Decimal::from(100_000_000) && pc < Decimal::from(200_000_000), "{pc}");
    assert_eq!(m.tick_size(Price(pc)), Decimal::from(1000));
}

#[test]
fn events_are_collected_only_while_watched() {
    let cfg = CryptoSimConfig::upbit_default();
    let mut m = CryptoMarket::try_new(&cfg, day()).unwrap();
    let btc = m.index_of("KRW-BTC").unwrap();
    let t0 = m.day_start();
    let mut ev = Vec::new();
    m.drain(btc, t0.plus_millis(60_000), &mut ev);
    assert!(ev.is_empty());
    m.watch(btc, true, t0.plus_millis(90_000));
    m.drain(btc, t0.plus_millis(120_000), &mut ev);
    assert!(!ev.is_empty() && ev.iter().all(|e| e.time() >= t0.plus_millis(89_000)));
    assert!(ev.iter().any(|e| matches!(e, CryptoEvent::Trade(_))));
    assert!(ev.windows(2).all(|w| w[0].time() <= w[1].time() || matches!(w[1], CryptoEvent::Book(_))));
}
