//! Golden frames from the Upbit spec (§5) and property tests of the frame parser.

// Named `upbit::…` so `cargo test -p so-providers upbit` selects these tests.
mod upbit {

    use model::{MarketEvent, Price, Provider, Qty, RawFrame, RawFrameKind, Side, UtcTime};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use so_providers::ProviderError;
    use so_providers::upbit::wire::{self, CH_WS};

    fn ws(text: &str) -> RawFrame {
        RawFrame {
            provider: Provider::Upbit,
            kind: RawFrameKind::Ws,
            channel: CH_WS.into(),
            frame: text.into(),
            receive_time: UtcTime::from_millis(0),
        }
    }

    fn rest(channel: &str, text: &str) -> RawFrame {
        RawFrame { kind: RawFrameKind::Rest, channel: channel.into(), ..ws(text) }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const TRADE_DEFAULT: &str = r#"{"type":"trade","code":"KRW-BTC","timestamp":1730336862082,"trade_date":"2024-10-31","trade_time":"01:07:42","trade_timestamp":1730336862047,"trade_price":100473000.00000000,"trade_volume":0.00014208,"ask_bid":"BID","prev_closing_price":100571000.00000000,"change":"FALL","change_price":98000.00000000,"sequential_id":17303368620470000,"best_ask_price":100473000,"best_ask_size":0.43139478,"best_bid_price":100465000,"best_bid_size":0.01990656,"stream_type":"SNAPSHOT"}"#;
    const TRADE_SIMPLE: &str = r#"{"ty":"trade","cd":"KRW-BTC","tms":1730336862082,"td":"2024-10-31","ttm":"01:07:42","ttms":1730336862047,"tp":100473000,"tv":0.00014208,"ab":"BID","pcp":100571000,"c":"FALL","cp":98000,"sid":17303368620470000,"bap":100473000,"bas":0.43139478,"bbp":100465000,"bbs":0.01990656,"st":"SNAPSHOT"}"#;
    const TICKER_DEFAULT: &str = r#"{"type":"ticker","code":"KRW-BTC","opening_price":31883000,"high_price":32310000,"low_price":31855000,"trade_price":32287000,"prev_closing_price":31883000.00000000,"acc_trade_price":78039261076.51241000,"change":"RISE","change_price":404000.00000000,"signed_change_price":404000.00000000,"change_rate":0.0126713295,"signed_change_rate":0.0126713295,"ask_bid":"ASK","trade_volume":0.03103806,"acc_trade_volume":2429.58834336,"trade_date":"20230221","trade_time":"074102","trade_timestamp":1676965262139,"acc_ask_volume":1146.25573608,"acc_bid_volume":1283.33260728,"highest_52_week_price":57678000.00000000,"highest_52_week_date":"2022-03-28","lowest_52_week_price":20700000.00000000,"lowest_52_week_date":"2022-12-30","market_state":"ACTIVE","is_trading_suspended":false,"delisting_date":null,"market_warning":"NONE","timestamp":1676965262177,"acc_trade_price_24h":228827082483.70729000,"acc_trade_volume_24h":7158.80283560,"stream_type":"REALTIME"}"#;
    const BOOK_DEFAULT: &str = r#"{"type":"orderbook","code":"KRW-BTC","timestamp":1790134742106,"total_ask_size":2.51469375,"total_bid_size":1.63815297,"orderbook_units":[{"ask_price":1.16539E8,"bid_price":1.16538E8,"ask_size":0.02054761,"bid_size":0.08120946}],"stream_type":"SNAPSHOT","level":0}"#;

    fn simple_ticker() -> String {
        // The DEFAULT ticker re-keyed to SIMPLE (spec §4.4 table).
        let map = [
            ("\"type\"", "\"ty\""),
            ("\"code\"", "\"cd\""),
            ("\"opening_price\"", "\"op\""),
            ("\"high_price\"", "\"hp\""),
            ("\"low_price\"", "\"lp\""),
            ("\"trade_price\"", "\"tp\""),
            ("\"prev_closing_price\"", "\"pcp\""),
            ("\"acc_trade_price\"", "\"atp\""),
            ("\"acc_trade_price_24h\"", "\"atp24h\""),
            ("\"acc_trade_volume\"", "\"atv\""),
            ("\"acc_trade_volume_24h\"", "\"atv24h\""),
            ("\"trade_volume\"", "\"tv\""),
            ("\"trade_timestamp\"", "\"ttms\""),
            ("\"timestamp\"", "\"tms\""),
            ("\"stream_type\"", "\"st\""),
            ("\"ask_bid\"", "\"ab\""),
        ];
        let mut s = TICKER_DEFAULT.to_string();
        for (a, b) in map {
            s = s.replace(a, b);
        }
        s
    }

    #[test]
    fn a_sent_subscription_names_its_codes() {
        let sent = r#"[{"ticket":"t"},{"type":"ticker","codes":["KRW-BTC","KRW-ETH"]},{"type":"orderbook","codes":["KRW-BTC.15"]},{"format":"DEFAULT"}]"#;
        let codes: Vec<String> = wire::subscribed_codes(sent).iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(codes, ["KRW-BTC", "KRW-ETH", "KRW-BTC"]);
        assert!(wire::subscribed_codes("PING").is_empty());
    }

    #[test]
    fn trade_default_and_simple_give_the_same_tick() {
        let a = wire::parse(&ws(TRADE_DEFAULT)).unwrap();
        let b = wire::parse(&ws(TRADE_SIMPLE)).unwrap();
        assert_eq!(a, b);
        let (t, MarketEvent::Tick(tick)) = &a[0] else { panic!("not a tick: {a:?}") };
        assert_eq!(t.as_millis(), 1730336862047);
        assert_eq!(tick.price, Price(d("100473000")));
        assert_eq!(tick.price.to_string(), "100473000.00000000");
        assert_eq!(tick.size, Qty(d("0.00014208")));
        assert_eq!(tick.side, Some(Side::Buy));
        assert_eq!(tick.trade_id.as_deref(), Some("17303368620470000"));
        assert_eq!(tick.symbol.as_str(), "KRW-BTC");
    }

    #[test]
    fn ticker_keeps_17_significant_digits() {
        let a = wire::parse(&ws(TICKER_DEFAULT)).unwrap();
        let b = wire::parse(&ws(&simple_ticker())).unwrap();
        assert_eq!(a, b);
        let (t, MarketEvent::Snapshot(s)) = &a[0] else { panic!("not a snapshot: {a:?}") };
        assert_eq!(t.as_millis(), 1676965262177);
        assert_eq!(s.last_price, Price(d("32287000")));
        assert_eq!(s.prev_close, Price(d("31883000")));
        assert_eq!(s.volume.to_string(), "2429.58834336");
        // The typed REST ticker keeps acc_trade_price_24h exactly.
        let body = format!("[{}]", TICKER_DEFAULT.replace("\"code\"", "\"market\""));
        let tk = wire::parse_tickers(&body).unwrap();
        assert_eq!(tk[0].acc_trade_price_24h.to_string(), "228827082483.70729000");
        assert_eq!(tk[0].acc_trade_price, d("78039261076.51241"));
        assert_ne!(tk[0].acc_trade_price_24h, d("228827082483.7073"));
    }

    #[test]
    fn orderbook_exponent_prices_are_exact() {
        let a = wire::parse(&ws(BOOK_DEFAULT)).unwrap();
        let (_, MarketEvent::Quote(q)) = &a[0] else { panic!("not a quote: {a:?}") };
        assert_eq!(q.ask_price.to_string(), "116539000");
        assert_eq!(q.bid_price, Price(d("116538000")));
        assert_eq!(q.ask_size, Qty(d("0.02054761")));
        let simple = BOOK_DEFAULT
            .replace("\"type\"", "\"ty\"")
            .replace("\"code\"", "\"cd\"")
            .replace("\"timestamp\"", "\"tms\"")
            .replace("\"orderbook_units\"", "\"obu\"")
            .replace("\"ask_price\"", "\"ap\"")
            .replace("\"bid_price\"", "\"bp\"")
            .replace("\"ask_size\"", "\"as\"")
            .replace("\"bid_size\"", "\"bs\"")
            .replace("0.02054761", "2.054761E-2");
        assert_eq!(wire::parse(&ws(&simple)).unwrap(), a);
        // The *_LIST formats carry arrays.
        let list = format!("[{BOOK_DEFAULT},{TRADE_SIMPLE}]");
        assert_eq!(wire::parse(&ws(&list)).unwrap().len(), 2);
    }

    #[test]
    fn rest_bodies() {
        let trades = r#"[{"market":"KRW-BTC","trade_date_utc":"2024-10-31","trade_time_utc":"01:07:42","timestamp":1730336862047,"trade_price":100473000.0,"trade_volume":7.9276E-4,"prev_closing_price":100571000.0,"change_price":98000.0,"ask_bid":"ASK","sequential_id":17303368620470000}]"#;
        let ev = wire::parse(&rest(wire::CH_TRADES, trades)).unwrap();
        let MarketEvent::Tick(t) = &ev[0].1 else { panic!() };
        assert_eq!(t.size.to_string(), "0.00079276");
        assert_eq!(t.side, Some(Side::Sell));

        let markets = r#"[{"market":"KRW-BTC","korean_name":"비트코인","english_name":"Bitcoin","market_event":{"warning":false,"caution":{}}},{"market":"KRW-XRP","korean_name":"리플","english_name":"XRP","market_warning":"CAUTION"}]"#;
        let m = wire::parse_market_all(markets).unwrap();
        assert_eq!(m[0].korean_name, "비트코인");
        assert!(!m[0].warning && m[1].warning);

        // REST orderbook: bid keys first, a thin side padded with zeros.
        let book = r#"[{"market":"KRW-XRP","timestamp":1730336862047,"total_ask_size":5.0,"total_bid_size":1.0,"orderbook_units":[{"bid_price":3100,"ask_price":3101,"bid_size":1.0,"ask_size":2.0},{"bid_price":0,"ask_price":3102,"bid_size":0,"ask_size":3.0}],"level":0}]"#;
        let ev = wire::parse(&rest(wire::CH_ORDERBOOK, book)).unwrap();
        let MarketEvent::Quote(q) = &ev[0].1 else { panic!() };
        assert_eq!((q.bids.len(), q.asks.len()), (1, 2));
    }

    #[test]
    fn keepalive_errors_and_sent_frames() {
        assert!(wire::parse(&ws(r#"{"status":"UP"}"#)).unwrap().is_empty());
        let sent = RawFrame { kind: RawFrameKind::Sent, ..ws("PING") };
        assert!(wire::parse(&sent).unwrap().is_empty());
        let err = wire::parse(&ws(
            r#"{"error":{"name":"NO_TICKET","message":"티켓이 존재하지 않거나, 유효하지 않습니다."}}"#,
        ));
        assert!(matches!(err, Err(ProviderError::Request { ref why, .. }) if why.contains("NO_TICKET")), "{err:?}");
        let missing = wire::parse(&ws(r#"{"type":"trade","code":"KRW-BTC","trade_volume":1,"trade_timestamp":1}"#));
        assert!(matches!(missing, Err(ProviderError::Malformed { .. })));
        let float_text = wire::parse(&ws(&TRADE_DEFAULT.replace("100473000.00000000", "\"abc\"")));
        assert!(matches!(float_text, Err(ProviderError::Malformed { .. })));
    }

    #[test]
    fn exponent_rendering_round_trips() {
        for s in ["116539000", "0.00079276", "1", "0.1", "123.456"] {
            let e = wire::exponent_form(d(s));
            assert_eq!(wire::decimal_from_text(&e).unwrap(), d(s).normalize(), "{s} -> {e}");
        }
        assert_eq!(wire::exponent_form(d("116539000")), "1.16539E8");
        assert_eq!(wire::exponent_form(d("0.00079276")), "7.9276E-4");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            for f in [ws(&text), rest(wire::CH_TICKER, &text), rest(wire::CH_ORDERBOOK, &text)] {
                match wire::parse(&f) {
                    Ok(_) | Err(ProviderError::Request { .. }) => {}
                    Err(ProviderError::Malformed { frame, .. }) => prop_assert_eq!(frame, so_providers::evidence(&text)),
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
        }

        #[test]
        fn mutated_golden_frames_never_panic(cut in 0usize..600, junk in "[\\[\\]{}\",:0-9eE.+-]{0,8}") {
            for g in [TRADE_DEFAULT, TRADE_SIMPLE, TICKER_DEFAULT, BOOK_DEFAULT] {
                let at = cut.min(g.len());
                let text = format!("{}{junk}{}", &g[..at], &g[at..]);
                let _ = wire::parse(&ws(&text));
                let torn = &g[..at];
                if at < g.len() {
                    let r = wire::parse(&ws(torn));
                    prop_assert!(matches!(r, Err(ProviderError::Malformed { .. })), "torn frame parsed: {torn}");
                }
            }
        }

        #[test]
        fn number_text_is_exact_or_refused(m in any::<i64>(), scale in 0u32..20, exp in -30i32..30) {
            let text = format!("{}E{exp}", Decimal::new(m, scale.min(18)));
            let _ = wire::decimal_from_text(&text);
            let plain = Decimal::new(m, scale.min(18)).to_string();
            // Exact within the archive's domain (|x| <= 1e18); refused beyond it (issue 14).
            let want = Some(Decimal::new(m, scale.min(18))).filter(|d| d.abs() <= model::num::PLAUSIBLE_ABS_MAX);
            prop_assert_eq!(wire::decimal_from_text(&plain), want);
        }
    }
}
