//! Golden frames from the protocol facts (`docs/providers.md`, KIS §7, §3.7, §4) and parser
//! robustness.

use std::str::FromStr;

use model::{Clock, MarketEvent, Price, Provider, Qty, RawFrame, RawFrameKind, Side, UtcTime};
use proptest::prelude::*;
use so_providers::kis::wire::{self, ControlKind};
use so_providers::kis::{KisConfig, KisCredentials, KisProvider, fake, master};
use so_providers::{MarketProvider, ProviderError};

const CNT46: &str = "0|H0STCNT0|001|005930^093354^71900^5^-100^-0.14^72023.83^72100^72400^71700^71900^71800^1^3052507^219853241700^5105^6937^1832^84.90^1366314^1159996^1^0.39^20.28^090020^5^-200^090820^5^-500^092619^2^200^20230612^20^N^65945^216924^1118750^2199206^0.05^2424142^125.92^0^^72100";
const CNT46_LIVE: &str = "0|H0STCNT0|001|005930^112616^62700^2^400^0.64^62700.41^62700^63000^62300^62700^62600^125^9694968^607878273600^25807^15918^-9889^93.01^4614191^4291558^1^0.45^63.03^090013^3^0^090646^5^-300^100741^2^400^20230324^20^N^71292^244009^2795345^2044512^0.16^5367918^180.61^0^^62700";
const ASP59: &str = "0|H0STASP0|001|005930^093730^0^71900^72000^72100^72200^72300^72400^72500^72600^72700^72800^71800^71700^71600^71500^71400^71300^71200^71100^71000^70900^91918^117942^92673^79708^106729^141988^176192^113906^134077^104229^95221^159371^220746^284657^212742^195370^182710^209747^376432^158171^1159362^2095167^0^0^0^0^525579^-72000^5^-100.00^3159115^0^8^0^0^0";
const ASP62: &str = "0|H0STASP0|001|005930^143354^0^324000^324500^325000^325500^326000^326500^327000^327500^328000^328500^323500^323000^322500^322000^321500^321000^320500^320000^319500^319000^34364^26832^32755^16039^24386^14211^16443^19597^23179^13243^28602^10731^12584^16973^24121^30969^19788^35604^13932^16282^221049^209586^0^0^0^0^1347146^-339500^5^-100.00^26718921^-79^8^0^0^0^323750^0^0";
const PRICE_BODY: &str = r#"{"output":{"iscd_stat_cls_code":"55","marg_rate":"20.00","rprs_mrkt_kor_name":"KOSPI200","bstp_kor_isnm":"전기·전자","temp_stop_yn":"N","stck_prpr":"65850","prdy_vrss":"-150","prdy_vrss_sign":"5","prdy_ctrt":"-0.23","acml_tr_pbmn":"127737129950","acml_vol":"1943202","stck_oprc":"65700","stck_hgpr":"66000","stck_lwpr":"65500","stck_mxpr":"85800","stck_llam":"46200","stck_sdpr":"66000","wghn_avrg_stck_prc":"65735.37","aspr_unit":"100","lstn_stcn":"5919637922","hts_avls":"3898082","stck_shrn_iscd":"005930","vi_cls_code":"N"},"rt_cd":"0","msg_cd":"MCA00000","msg1":"정상처리 되었습니다."}"#;

fn provider() -> KisProvider {
    let creds = KisCredentials::new("k".to_string().into(), "s".to_string().into());
    KisProvider::new(KisConfig::default(), creds, Clock::real()).unwrap()
}

fn ws(frame: &str) -> RawFrame {
    let receive_time = UtcTime::parse("2023-06-12T00:37:31.000Z").unwrap();
    RawFrame { provider: Provider::Kis, kind: RawFrameKind::Ws, channel: "x".into(), frame: frame.into(), receive_time }
}

fn p(s: &str) -> Price {
    Price::from_str(s).unwrap()
}

/// The ticks of a trade frame (each record also yields its level-1 quote, checked apart).
fn ticks(frame: &str) -> Vec<(UtcTime, model::Tick)> {
    provider()
        .parse(&ws(frame))
        .unwrap()
        .into_iter()
        .filter_map(|(t, e)| match e {
            MarketEvent::Tick(t2) => Some((t, t2)),
            MarketEvent::Quote(_) => None,
            other => panic!("neither a tick nor a quote: {other:?}"),
        })
        .collect()
}

fn payload(frame: &str) -> &str {
    frame.splitn(4, '|').nth(3).unwrap()
}

#[test]
fn h0stcnt0_46_fields() {
    let t = ticks(CNT46);
    assert_eq!(t.len(), 1);
    let (at, tick) = &t[0];
    assert_eq!(at.to_string(), "2023-06-12T00:33:54.000Z"); // 09:33:54 KST
    assert_eq!(tick.symbol.as_str(), "005930");
    assert_eq!(tick.price, p("71900"));
    assert_eq!(tick.size, Qty::from_int(1));
    assert_eq!(tick.cum_volume, Some(Qty::from_int(3052507)));
    assert_eq!(tick.side, Some(Side::Buy));
    let live = ticks(CNT46_LIVE);
    assert_eq!(live[0].1.size, Qty::from_int(125));
    assert_eq!(live[0].0.to_string(), "2023-03-24T02:26:16.000Z");
}

#[test]
fn h0stcnt0_carries_the_level_1_quote() {
    // ASKP1 (10), BIDP1 (11), ASKP_RSQN1 (36), BIDP_RSQN1 (37): a slot needs no H0STASP0.
    let events = provider().parse(&ws(CNT46)).unwrap();
    let quotes: Vec<_> = events
        .iter()
        .filter_map(|(at, e)| match e {
            MarketEvent::Quote(q) => Some((at, q)),
            _ => None,
        })
        .collect();
    assert_eq!(quotes.len(), 1, "{events:?}");
    let (at, q) = quotes[0];
    assert_eq!(at.to_string(), "2023-06-12T00:33:54.000Z", "as of the trade");
    assert_eq!((q.ask_price, q.bid_price), (p("71900"), p("71800")));
    assert_eq!((q.ask_size, q.bid_size), (Qty::from_int(65945), Qty::from_int(216924)));
    assert_eq!((q.asks.len(), q.bids.len()), (1, 1), "one level, as the record has");
    // A side with no resting order (price 0, at a price limit) yields no quote at all.
    let limit = CNT46.replacen("^71900^71800^1^", "^0^71800^1^", 1);
    let events = provider().parse(&ws(&limit)).unwrap();
    assert!(events.iter().all(|(_, e)| !matches!(e, MarketEvent::Quote(_))), "{events:?}");
    assert_eq!(events.len(), 1);
}

#[test]
fn h0stcnt0_47_fields_and_multi_record_frames() {
    let rec47 = format!("{}^2", payload(CNT46));
    let one = format!("0|H0STCNT0|001|{rec47}");
    assert_eq!(ticks(&one), ticks(CNT46));
    // Record B: a sell at 71800 of 10 shares.
    let rec_b = rec47.replacen("^71900^5^-100^", "^71800^5^-200^", 1).replace("^1^3052507^", "^10^3052517^");
    let rec_b = {
        let mut f: Vec<&str> = rec_b.split('^').collect();
        f[21] = "5";
        f.join("^")
    };
    let two = format!("0|H0STCNT0|002|{rec47}^{rec_b}");
    let t = ticks(&two);
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].1.price, p("71800"));
    assert_eq!(t[1].1.size, Qty::from_int(10));
    assert_eq!(t[1].1.side, Some(Side::Sell));
    assert_eq!(t[1].1.cum_volume, Some(Qty::from_int(3052517)));
    // Three records of 46 and future widths with unknown trailing fields parse too.
    let p46 = payload(CNT46);
    assert_eq!(ticks(&format!("0|H0STCNT0|003|{p46}^{p46}^{p46}")).len(), 3);
    let wide = format!("{p46}^2^X^Y");
    assert_eq!(ticks(&format!("0|H0STCNT0|002|{wide}^{wide}")).len(), 2);
}

#[test]
fn h0staspo_59_and_62_fields() {
    for (frame, best_ask, best_bid, ask_size) in
        [(ASP59, "71900", "71800", "91918"), (ASP62, "324000", "323500", "34364")]
    {
        let ev = provider().parse(&ws(frame)).unwrap();
        assert_eq!(ev.len(), 1);
        let MarketEvent::Quote(q) = &ev[0].1 else { panic!("not a quote") };
        assert_eq!(q.ask_price, p(best_ask));
        assert_eq!(q.bid_price, p(best_bid));
        assert_eq!(q.ask_size, Qty::from_str(ask_size).unwrap());
        assert_eq!((q.asks.len(), q.bids.len()), (10, 10));
        assert!(q.asks.windows(2).all(|w| w[0].price < w[1].price));
        assert!(q.bids.windows(2).all(|w| w[0].price > w[1].price));
    }
    let ev = provider().parse(&ws(ASP59)).unwrap();
    assert_eq!(ev[0].0.to_string(), "2023-06-12T00:37:30.000Z");
}

#[test]
fn a_sent_registration_names_its_code() {
    let reg = |tr_type: &str| {
        format!(
            r#"{{"header":{{"approval_key":"***","custtype":"P","tr_type":"{tr_type}","content-type":"utf-8"}},"body":{{"input":{{"tr_id":"H0STCNT0","tr_key":"005930"}}}}}}"#
        )
    };
    let codes = wire::subscribed_codes(&reg("1"));
    assert_eq!(codes.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["005930"]);
    assert!(wire::subscribed_codes(&reg("2")).is_empty(), "an unsubscribe admits nothing");
    assert!(wire::subscribed_codes(r#"{"header":{"tr_id":"PINGPONG"}}"#).is_empty());
}

#[test]
fn control_messages() {
    let ok = r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":"0123456789abcdef","key":"abcdefghijklmnopabcdefghijklmnop"}}}"#;
    let c = wire::parse_control(ok).unwrap();
    assert_eq!((c.tr_id.as_str(), c.tr_key.as_str(), c.kind()), ("H0STCNT0", "005930", ControlKind::Subscribed));
    let dup = r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"1","msg_cd":"OPSP0002","msg1":"ALREADY IN SUBSCRIBE"}}"#;
    assert_eq!(wire::parse_control(dup).unwrap().kind(), ControlKind::Subscribed);
    let over = r#"{"header":{"tr_id":"H0STASP0","tr_key":"000660","encrypt":"N"},"body":{"rt_cd":"1","msg_cd":"OPSP0008","msg1":"MAX SUBSCRIBE OVER"}}"#;
    assert_eq!(wire::parse_control(over).unwrap().kind(), ControlKind::Refused);
    let in_use = r#"{"header":{"tr_id":"(null)","tr_key":"","encrypt":"N"},"body":{"rt_cd":"9","msg_cd":"OPSP8996","msg1":"ALREADY IN USE appkey"}}"#;
    assert_eq!(wire::parse_control(in_use).unwrap().kind(), ControlKind::SessionError);
    let ping = r#"{"header":{"tr_id":"PINGPONG","datetime":"20231004160455"}}"#;
    assert_eq!(wire::parse_control(ping).unwrap().kind(), ControlKind::Ping);
    // Control messages carry no market events but are valid frames.
    for f in [ok, dup, over, in_use, ping] {
        assert_eq!(provider().parse(&ws(f)).unwrap(), vec![]);
    }
}

#[test]
fn inquire_price_body_is_a_snapshot_with_exact_decimals() {
    let f = RawFrame {
        provider: Provider::Kis,
        kind: RawFrameKind::Rest,
        channel: "FHKST01010100".into(),
        frame: PRICE_BODY.into(),
        receive_time: UtcTime::parse("2025-07-25T01:00:00.000Z").unwrap(),
    };
    let ev = provider().parse(&f).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].0, f.receive_time);
    let MarketEvent::Snapshot(s) = &ev[0].1 else { panic!("not a snapshot") };
    assert_eq!(s.symbol.as_str(), "005930");
    assert_eq!(
        (s.last_price, s.open, s.high, s.low, s.prev_close),
        (p("65850"), p("65700"), p("66000"), p("65500"), p("66000"))
    );
    assert_eq!(s.volume, Qty::from_int(1_943_202));
    let err = r#"{"rt_cd":"1","msg_cd":"EGW00201","msg1":"초당 거래건수를 초과하였습니다."}"#;
    assert!(matches!(provider().parse(&RawFrame { frame: err.into(), ..f }), Err(ProviderError::Malformed { .. })));
}

#[test]
fn master_records() {
    // A KOSPI record as in the 2022 sample: 288 bytes, code 9 + ISIN 12 + name 40 + tail 227.
    let line =
        fake::build_master_line("005930", "KR7005930003", "SAMSUNG ELEC", "ST", "66000", fake::MasterBoard::Kospi);
    assert_eq!(line.len(), 288);
    // The base price sits at tail offset 41 (2+1+12 + 26 flags) — bytes 61+41 .. 61+50.
    assert_eq!(&line[61 + 41..61 + 50], b"000066000");
    let r = master::parse_line(&line, master::Board::Kospi).unwrap();
    assert_eq!(r.base_price, p("66000"));
    assert_eq!(r.group, "ST");
    // Letters in codes and a KOSDAQ (221-byte tail) record.
    let k = fake::build_master_line("00088K", "KR700088K009", "한글이름", "ST", "1234", fake::MasterBoard::Kosdaq);
    let r = master::parse_line(&k, master::Board::Kosdaq).unwrap();
    assert_eq!((r.code.as_str(), r.name.as_str(), r.base_price), ("00088K", "한글이름", p("1234")));
    let mut file = line.clone();
    file.push(b'\n');
    file.extend(&line);
    file.push(b'\n');
    assert_eq!(master::parse_mst(&file, master::Board::Kospi).unwrap().len(), 2);
    assert!(master::parse_mst(b"short line\n", master::Board::Kospi).is_err());
}

#[test]
fn torn_and_garbage_frames_are_malformed_with_evidence() {
    let torn = &CNT46[..CNT46.len() / 2];
    for f in [torn, "0|H0STCNT0|002|a^b^c", "hello", "{not json", "0|H0STCNT0|001|005930^bad", ""] {
        match provider().parse(&ws(f)) {
            Err(ProviderError::Malformed { provider: Provider::Kis, frame, .. }) => assert_eq!(frame, f),
            other => panic!("{f:?} gave {other:?}"),
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in ".*") {
        let _ = provider().parse(&ws(&s));
    }

    #[test]
    fn arbitrary_frames_shaped_like_data_never_panic(
        enc in "[01x]", tr in "(H0STCNT0|H0STASP0|[A-Z0-9]{0,9})", count in "[0-9]{0,4}",
        fields in proptest::collection::vec("[0-9A-Z.^-]{0,8}", 0..140)
    ) {
        let f = format!("{enc}|{tr}|{count}|{}", fields.join("^"));
        if let Err(ProviderError::Malformed { frame, .. }) = provider().parse(&ws(&f)) {
            prop_assert_eq!(frame, so_providers::evidence(&f));
        }
    }

    #[test]
    fn mutated_golden_frames_never_panic(cut in 0usize..400, byte in any::<u8>()) {
        let mut b = CNT46.as_bytes().to_vec();
        let i = cut.min(b.len() - 1);
        b[i] = byte;
        let s = String::from_utf8_lossy(&b).into_owned();
        let _ = provider().parse(&ws(&s));
        let _ = master::parse_line(&b, master::Board::Kospi);
    }
}
