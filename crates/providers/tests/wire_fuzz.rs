//! Fuzzing of the KIS and Upbit wire parsers (issue 14 part 2), as property tests because
//! `cargo fuzz` needs a nightly toolchain. Every input — random bytes, well-formed frames
//! with extreme or random field values — must yield events or an error, never a panic, and
//! every event must be within the archive's domain (|numbers| ≤ 1e18, times in
//! 2000..2100), so nothing a peer sends can overflow the arithmetic behind the parsers.
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test -p so-providers --test wire_fuzz --release`.

use model::num::PLAUSIBLE_ABS_MAX;
use model::{MarketEvent, Provider, RawFrame, RawFrameKind, UtcTime};
use proptest::prelude::*;
use so_providers::kis::wire as kis;
use so_providers::upbit::wire as upbit;

/// A record KIS really sent (spec §7), as fields: H0STCNT0, 46 wide.
const CNT46: &str = "005930^093354^71900^5^-100^-0.14^72023.83^72100^72400^71700^71900^71800^1^3052507^219853241700^5105^6937^1832^84.90^1366314^1159996^1^0.39^20.28^090020^5^-200^090820^5^-500^092619^2^200^20230612^20^N^65945^216924^1118750^2199206^0.05^2424142^125.92^0^^72100";

fn received() -> UtcTime {
    UtcTime::parse("2023-06-12T00:37:31.000Z").unwrap()
}

fn frame(provider: Provider, kind: RawFrameKind, channel: &str, text: String) -> RawFrame {
    RawFrame { provider, kind, channel: channel.into(), frame: text, receive_time: received() }
}

/// Number texts a hostile or broken peer might send.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("79228162514264337593543950335".to_string()),
        Just("-79228162514264337593543950335".to_string()),
        Just("1000000000000000001".to_string()),
        Just("-1000000000000000000".to_string()),
        Just("0.0000000000000000000000000001".to_string()),
        Just("1e19".to_string()),
        Just("7.9E28".to_string()),
        Just("1E-28".to_string()),
        Just("-0".to_string()),
        Just("".to_string()),
        Just("NaN".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| format!("{v}{v}")),
        (any::<i64>(), 0u32..30).prop_map(|(m, s)| rust_decimal::Decimal::new(m, s.min(28)).to_string()),
        "[0-9.eE+-]{0,40}",
    ]
}

/// KIS event times come from the frame's own date and time fields, so they may be any date
/// (the observer core refuses implausible ones); numbers are bounded by the parsers.
fn assert_plausible(events: &[(UtcTime, MarketEvent)]) {
    for (_, e) in events {
        assert_eq!(e.number_beyond(PLAUSIBLE_ABS_MAX), None, "{e:?}");
    }
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kis_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(events) = kis::parse_ws(&text, received()) {
            assert_plausible(&events);
        }
        let _ = kis::parse_data(&text);
        let _ = kis::parse_control(&text);
        let _ = kis::snapshot_body(&text);
        let _ = (so_providers::mapper(Provider::Kis).unwrap().parse)(&frame(Provider::Kis, RawFrameKind::Ws, "ws", text));
    }

    #[test]
    fn kis_records_with_extreme_fields(
        changes in proptest::collection::vec((0usize..46, number_text()), 1..6),
        count in 1usize..3,
        tr in prop_oneof![Just("H0STCNT0"), Just("H0STASP0")],
        received_ms in prop_oneof![any::<i64>(), Just(received().as_millis())],
    ) {
        let mut fields: Vec<String> = CNT46.split('^').map(str::to_string).collect();
        for (i, v) in changes {
            fields[i] = v;
        }
        let record = fields.join("^");
        let text = format!("0|{tr}|{count:03}|{}", vec![record; count].join("^"));
        // A receive time from any clock (the book's date comes from it).
        if let Ok(events) = kis::parse_ws(&text, UtcTime::from_millis(received_ms)) {
            for (_, e) in &events {
                prop_assert_eq!(e.number_beyond(PLAUSIBLE_ABS_MAX), None);
            }
        }
    }

    #[test]
    fn upbit_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400), rest in any::<bool>()) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let kind = if rest { RawFrameKind::Rest } else { RawFrameKind::Ws };
        for ch in [upbit::CH_WS, upbit::CH_TICKER, upbit::CH_TRADES, upbit::CH_ORDERBOOK] {
            if let Ok(events) = upbit::parse(&frame(Provider::Upbit, kind, ch, text.clone())) {
                assert_plausible(&events);
                assert!(events.iter().all(|(t, _)| t.is_plausible()), "{events:?}");
            }
        }
    }

    #[test]
    fn upbit_messages_with_extreme_fields(
        ty in prop_oneof![Just("ticker"), Just("trade"), Just("orderbook")],
        simple in any::<bool>(),
        numbers in proptest::collection::vec(number_text(), 8),
        ts in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(1_686_530_251_000i64)],
        seq in any::<u64>(),
    ) {
        let n = |i: usize| {
            let t = &numbers[i];
            // Half the time a JSON number, else the text quoted (both are read exactly).
            if t.parse::<f64>().is_ok() && i.is_multiple_of(2) { t.clone() } else { format!("{t:?}") }
        };
        let text = if simple {
            format!(
                r#"{{"ty":"{ty}","cd":"KRW-BTC","tp":{},"tv":{},"op":{},"hp":{},"lp":{},"pcp":{},"atv":{},"ab":"BID","sid":{seq},"ttms":{ts},"tms":{ts},"obu":[{{"ap":{},"bp":{},"as":{},"bs":{}}}]}}"#,
                n(0), n(1), n(2), n(3), n(4), n(5), n(6), n(7), n(0), n(1), n(2)
            )
        } else {
            format!(
                r#"{{"type":"{ty}","code":"KRW-BTC","trade_price":{},"trade_volume":{},"opening_price":{},"high_price":{},"low_price":{},"prev_closing_price":{},"acc_trade_volume":{},"ask_bid":"ASK","sequential_id":{seq},"trade_timestamp":{ts},"timestamp":{ts},"orderbook_units":[{{"ask_price":{},"bid_price":{},"ask_size":{},"bid_size":{}}}]}}"#,
                n(0), n(1), n(2), n(3), n(4), n(5), n(6), n(7), n(0), n(1), n(2)
            )
        };
        if let Ok(events) = upbit::parse(&frame(Provider::Upbit, RawFrameKind::Ws, upbit::CH_WS, text)) {
            for (t, e) in &events {
                prop_assert!(t.is_plausible(), "{}", t);
                prop_assert_eq!(e.number_beyond(PLAUSIBLE_ABS_MAX), None);
            }
        }
    }
}

/// The reproductions of issue 14 at the edge: a cumulative volume of -7.9e28 was accepted
/// by the KIS parser, and an Upbit timestamp of `i64::MIN` reached the observer's skew
/// arithmetic. Both are refused by the parsers now, with evidence like any malformed frame.
#[test]
fn issue_14_reproductions_are_refused_at_the_edge() {
    let mut fields: Vec<&str> = CNT46.split('^').collect();
    fields[13] = "-79228162514264337593543950335"; // ACML_VOL
    let text = format!("0|H0STCNT0|001|{}", fields.join("^"));
    let err = kis::parse_ws(&text, received()).unwrap_err();
    assert!(err.contains("ACML_VOL") && err.contains("implausible"), "{err}");
    fields[13] = "3052507";
    fields[2] = "1e19";
    assert!(kis::parse_ws(&format!("0|H0STCNT0|001|{}", fields.join("^")), received()).is_err());

    let trade = |ts: i64| {
        format!(
            r#"{{"type":"trade","code":"KRW-BTC","trade_price":140000000,"trade_volume":0.01,"ask_bid":"BID","sequential_id":1,"trade_timestamp":{ts},"timestamp":{ts}}}"#
        )
    };
    let ok = upbit::parse(&frame(Provider::Upbit, RawFrameKind::Ws, upbit::CH_WS, trade(1_686_530_251_000))).unwrap();
    assert_eq!(ok.len(), 1);
    for ts in [i64::MIN, i64::MAX, -1, 4_102_444_800_000] {
        let err = upbit::parse(&frame(Provider::Upbit, RawFrameKind::Ws, upbit::CH_WS, trade(ts))).unwrap_err();
        assert!(err.to_string().contains("implausible timestamp"), "{err}");
    }
    let huge = trade(1_686_530_251_000).replace("0.01", "1e19");
    assert!(upbit::parse(&frame(Provider::Upbit, RawFrameKind::Ws, upbit::CH_WS, huge)).is_err());
}
