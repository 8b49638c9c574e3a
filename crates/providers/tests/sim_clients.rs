//! The sim serves any client (issue 13 part 5), checked over the wire with plain HTTP the
//! way a third-party client talks: KIS-shaped credentials (and KIS's refusal of wrong
//! ones), the real large caps by code and name, a Samsung Electronics quote as the first
//! call, and history from before the start (KIS daily and minute charts, Upbit day and
//! minute candles) paged the way the specs page it.

use std::sync::{Arc, Mutex};

use jiff::civil::{Date, date};
use model::{Clock, UtcTime};
use rust_decimal::Decimal;
use serde_json::Value;
use so_providers::MarketProvider;
use so_providers::kis::fake::{
    self, APP_KEY_LEN, APP_SECRET_LEN, FakeCredentials, FakeKis, FakeKisConfig, FaultSwitch,
};
use so_providers::kis::{KisConfig, KisEnv, KisProvider};
use so_providers::sim::{SimConfig, SimMarket, krx_tick_table};
use so_providers::upbit::fake::{FakeConfig, FakeUpbit};

const QUOTATIONS: &str = "/uapi/domestic-stock/v1/quotations";

/// Wednesday 2026-01-14 at `h:m` KST.
fn kst(h: i8, m: i8) -> UtcTime {
    UtcTime::from_kst(date(2026, 1, 14).to_datetime(jiff::civil::time(h, m, 0, 0)))
}

fn sim_config() -> SimConfig {
    // Fewer generated symbols than the default 2,000 (the large caps are all there).
    SimConfig { symbols: 100, ..SimConfig::krx_default() }
}

/// A clock that (practically) stands still: every answer of one test describes the same
/// instant, so pages and totals can be compared exactly.
fn still_clock(at: UtcTime) -> Clock {
    Clock::simulated(at, 1e-9, SimConfig::krx_default().clock_stall_grace.get())
}

fn dec(v: &Value) -> Decimal {
    let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    text.parse().unwrap_or_else(|_| panic!("not a number: {v}"))
}

fn krx_tick(p: Decimal) -> Decimal {
    krx_tick_table().iter().find(|b| b.below.is_none_or(|below| p < below)).unwrap().tick
}

struct Kis {
    fake: FakeKis,
    market: Arc<Mutex<SimMarket>>,
    clock: Clock,
    http: reqwest::Client,
    key: String,
    secret: String,
}

async fn kis_at(start: UtcTime) -> Kis {
    let cfg = sim_config();
    let market = Arc::new(Mutex::new(SimMarket::new(&cfg, start.kst().date())));
    let clock = still_clock(start);
    let creds = FakeCredentials::made_up(cfg.seed);
    let (key, secret) = creds.expose();
    let fake = fake::serve(FakeKisConfig::new(KisEnv::Real, key, secret), market.clone(), clock, FaultSwitch::new())
        .await
        .unwrap();
    Kis { fake, market, clock, http: reqwest::Client::new(), key: key.into(), secret: secret.into() }
}

impl Kis {
    /// POST tokenP with this pair: (HTTP status, body).
    async fn token_with(&self, key: &str, secret: &str) -> (u16, Value) {
        let body = serde_json::json!({"grant_type": "client_credentials", "appkey": key, "appsecret": secret});
        let r = self
            .http
            .post(format!("{}/oauth2/tokenP", self.fake.rest_base()))
            .header("content-type", "application/json; charset=UTF-8")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, serde_json::from_str(&r.text().await.unwrap()).unwrap())
    }

    async fn token(&self) -> String {
        let (status, v) = self.token_with(&self.key, &self.secret).await;
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }

    /// GET a quotation as python-kis does: (HTTP status, body).
    async fn get(&self, token: &str, secret: &str, path: &str, tr_id: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let r = self
            .http
            .get(format!("{}{QUOTATIONS}/{path}?{}", self.fake.rest_base(), q.join("&")))
            .header("content-type", "application/json; charset=utf-8")
            .header("authorization", format!("Bearer {token}"))
            .header("appkey", &self.key)
            .header("appsecret", secret)
            .header("tr_id", tr_id)
            .header("custtype", "P")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, serde_json::from_str(&r.text().await.unwrap()).unwrap())
    }

    async fn ok(&self, token: &str, path: &str, tr_id: &str, query: &[(&str, &str)]) -> Value {
        let (status, v) = self.get(token, &self.secret, path, tr_id, query).await;
        assert_eq!((status, v["rt_cd"].as_str()), (200, Some("0")), "{path}: {v}");
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kis_credentials_have_kis_shapes_and_wrong_ones_get_egw00103() {
    // The made-up pair: KIS's shape, the same for a seed, another for another seed.
    let a = FakeCredentials::made_up(1);
    let (key, secret) = a.expose();
    assert_eq!((key.len(), secret.len()), (APP_KEY_LEN, APP_SECRET_LEN));
    assert_eq!((APP_KEY_LEN, APP_SECRET_LEN), (36, 180), "spec §2.1");
    assert!(key.starts_with("PS") && key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
    assert!(secret.bytes().all(|b| b.is_ascii_graphic()));
    assert!(a.is_made_up() && fake::shape_problem(key, secret).is_none());
    assert_eq!(FakeCredentials::made_up(1).expose(), (key, secret));
    assert_ne!(FakeCredentials::made_up(2).expose().0, key);
    // A pair of the wrong shape is named, never echoed.
    let short = "PSshort-key";
    let problem = fake::shape_problem(short, secret).unwrap();
    assert!(problem.contains("KIS_APP_KEY") && problem.contains("36") && !problem.contains(short), "{problem}");
    let problem = fake::shape_problem(key, "abc def").unwrap();
    assert!(problem.contains("KIS_APP_SECRET") && !problem.contains("abc def"), "{problem}");

    // Over the wire: the right pair gets a token; a wrong key or secret gets KIS's
    // EGW00103 in the token endpoint's own error shape, and in the REST one after that.
    let k = kis_at(kst(10, 0)).await;
    let token = k.token().await;
    assert!(token.starts_with("eyJ"), "a JWT-looking token");
    let wrong_secret = "x".repeat(APP_SECRET_LEN);
    let wrong_key = format!("PS{}", "y".repeat(APP_KEY_LEN - 2));
    for (key, secret) in [(k.key.as_str(), wrong_secret.as_str()), (wrong_key.as_str(), k.secret.as_str())] {
        let (status, v) = k.token_with(key, secret).await;
        assert_eq!((status, v["error_code"].as_str()), (403, Some("EGW00103")), "{v}");
    }
    let (status, v) = k
        .get(
            &token,
            &wrong_secret,
            "inquire-price",
            "FHKST01010100",
            &[("FID_COND_MRKT_DIV_CODE", "J"), ("FID_INPUT_ISCD", "005930")],
        )
        .await;
    assert_eq!((status, v["rt_cd"].as_str(), v["msg_cd"].as_str()), (500, Some("1"), Some("EGW00103")), "{v}");
    let (status, v) = k
        .get(
            &token,
            &k.secret,
            "inquire-price",
            "FHKST01010100",
            &[("FID_COND_MRKT_DIV_CODE", "J"), ("FID_INPUT_ISCD", "005930")],
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_samsung_quote_works_and_the_master_files_list_the_large_caps() {
    let k = kis_at(kst(10, 0)).await;
    let token = k.token().await;
    // python-kis's first call.
    let v = k
        .ok(&token, "inquire-price", "FHKST01010100", &[("FID_COND_MRKT_DIV_CODE", "J"), ("FID_INPUT_ISCD", "005930")])
        .await;
    let o = &v["output"];
    assert_eq!(o["stck_shrn_iscd"], "005930");
    assert_eq!(o["rprs_mrkt_kor_name"], "KOSPI");
    let price = dec(&o["stck_prpr"]);
    assert!(price > Decimal::from(50_000) && price < Decimal::from(200_000), "Samsung at {price}");
    assert_eq!(dec(&o["aspr_unit"]), krx_tick(price));
    assert!((price % krx_tick(price)).is_zero());
    assert!(dec(&o["acml_vol"]) > Decimal::ZERO, "traded by 10:00");
    assert_eq!(dec(&o["stck_sdpr"]) + dec(&o["prdy_vrss"]), price);
    assert_eq!(o["lstn_stcn"], "5919637922");
    assert!(dec(&o["hts_avls"]) > Decimal::ZERO);
    assert!(dec(&o["w52_hgpr"]) >= dec(&o["w52_lwpr"]));
    for field in ["mrkt_warn_cls_code", "short_over_yn", "prdy_vrss_vol_rate", "per", "eps", "w52_hgpr_date"] {
        assert!(o[field].is_string(), "{field} missing: {o}");
    }
    // The stock-info lookup python-kis makes next knows the name.
    let v = k.ok(&token, "search-info", "CTPF1604R", &[("PDNO", "005930"), ("PRDT_TYPE_CD", "300")]).await;
    assert_eq!(v["output"]["prdt_name"], "삼성전자");

    // The master files (what a client lists symbols from) carry the large caps by name.
    let cfg = KisConfig {
        enabled: true,
        rest_base: Some(k.fake.rest_base()),
        ws_base: Some(k.fake.ws_base()),
        master_base: k.fake.master_base(),
        token_cache: tempfile::tempdir().unwrap().keep().join("kis_token.json"),
        ..KisConfig::default()
    };
    let p = KisProvider::new(cfg, k.fake.credentials(), k.clock).unwrap();
    let universe = p.universe(kst(10, 0).kst().date()).await.unwrap();
    let name_of = |code: &str| universe.iter().find(|e| e.symbol.as_str() == code).map(|e| e.name.clone());
    for (code, name) in
        [("005930", "삼성전자"), ("000660", "SK하이닉스"), ("207940", "삼성바이오로직스"), ("247540", "에코프로비엠")]
    {
        assert_eq!(name_of(code).as_deref(), Some(name), "{code}");
    }
    assert_eq!(universe.len(), k.market.lock().unwrap().len());
}

/// The quotation calls third-party clients make besides quotes and charts (python-kis:
/// `stock()` resolves the market through `search-info`, `orderbook()` reads the asking
/// price), answered in KIS's shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kis_book_stock_info_and_holidays_answer_as_kis_does() {
    let k = kis_at(kst(10, 0)).await;
    let token = k.token().await;
    let code = [("FID_COND_MRKT_DIV_CODE", "J"), ("FID_INPUT_ISCD", "005930")];
    let v = k.ok(&token, "inquire-asking-price-exp-ccn", "FHKST01010200", &code).await;
    let book = &v["output1"];
    let (ask, bid) = (dec(&book["askp1"]), dec(&book["bidp1"]));
    assert!(bid > Decimal::ZERO && bid < ask, "{book}");
    assert!((1..=10).all(|i| dec(&book[format!("askp{i}")]) > Decimal::ZERO), "ten ask levels: {book}");
    // An unknown product is "no data" (rt_cd 7), which python-kis takes as "try the next type".
    let (status, v) =
        k.get(&token, &k.secret, "search-info", "CTPF1604R", &[("PDNO", "999999"), ("PRDT_TYPE_CD", "300")]).await;
    assert_eq!((status, v["rt_cd"].as_str()), (200, Some("7")), "{v}");
    let v = k.ok(&token, "search-stock-info", "CTPF1002R", &[("PRDT_TYPE_CD", "300"), ("PDNO", "005930")]).await;
    assert_eq!((v["output"]["scty_grp_id_cd"].as_str(), v["output"]["mket_id_cd"].as_str()), (Some("ST"), Some("STK")));
    let v = k
        .ok(&token, "chk-holiday", "CTCA0903R", &[("BASS_DT", "20260114"), ("CTX_AREA_NK", ""), ("CTX_AREA_FK", "")])
        .await;
    let rows = v["output"].as_array().unwrap();
    assert_eq!((rows[0]["bass_dt"].as_str(), rows[0]["opnd_yn"].as_str()), (Some("20260114"), Some("Y")));
    assert!(rows.iter().any(|r| r["opnd_yn"] == "N"), "a weekend in the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kis_daily_charts_reach_back_more_than_100_trading_days() {
    let start = kst(10, 0);
    let k = kis_at(start).await;
    let token = k.token().await;
    let today = start.kst().date();
    let ymd = |d: Date| format!("{:04}{:02}{:02}", d.year(), d.month(), d.day());
    // python-kis's paging: DATE_1 far back, DATE_2 moved to the day before the oldest row.
    let mut rows: Vec<Value> = Vec::new();
    let mut cursor = today;
    let mut pages = 0;
    loop {
        let v = k
            .ok(
                &token,
                "inquire-daily-itemchartprice",
                "FHKST03010100",
                &[
                    ("FID_COND_MRKT_DIV_CODE", "J"),
                    ("FID_INPUT_ISCD", "005930"),
                    ("FID_INPUT_DATE_1", "00000101"),
                    ("FID_INPUT_DATE_2", &ymd(cursor)),
                    ("FID_PERIOD_DIV_CODE", "D"),
                    ("FID_ORG_ADJ_PRC", "0"),
                ],
            )
            .await;
        assert_eq!(v["output1"]["hts_kor_isnm"], "삼성전자");
        let page = v["output2"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        pages += 1;
        assert!(page.len() <= 100, "at most 100 rows a call (spec §3.3)");
        if pages == 1 {
            assert_eq!(page.len(), 100);
        }
        let oldest = page.last().unwrap()["stck_bsop_date"].as_str().unwrap().to_string();
        rows.extend(page);
        cursor = so_providers::kis::wire::yyyymmdd(&oldest).unwrap().yesterday().unwrap();
    }
    let sim_cfg = sim_config();
    // Today's session so far, then every past trading day of the history.
    assert_eq!(rows.len(), 1 + sim_cfg.history_days as usize);
    assert_eq!(rows[0]["stck_bsop_date"], ymd(today));
    let before_start = rows.iter().filter(|r| r["stck_bsop_date"].as_str().unwrap() < ymd(today).as_str()).count();
    assert!(before_start >= 100, "{before_start} trading days before the start");
    for (i, r) in rows.iter().enumerate() {
        let (o, h, l, c) = (dec(&r["stck_oprc"]), dec(&r["stck_hgpr"]), dec(&r["stck_lwpr"]), dec(&r["stck_clpr"]));
        assert!(l <= o.min(c) && h >= o.max(c), "{r}");
        for p in [o, h, l, c] {
            assert!((p % krx_tick(p)).is_zero(), "{p} off the KRX grid: {r}");
        }
        if let Some(older) = rows.get(i + 1) {
            assert!(r["stck_bsop_date"].as_str() > older["stck_bsop_date"].as_str(), "newest first");
            assert_eq!(dec(&r["prdy_vrss"]), c - dec(&older["stck_clpr"]), "change against the day before: {r}");
        }
    }
    // Weeks are summed from the days.
    let v = k
        .ok(
            &token,
            "inquire-daily-itemchartprice",
            "FHKST03010100",
            &[
                ("FID_COND_MRKT_DIV_CODE", "J"),
                ("FID_INPUT_ISCD", "005930"),
                ("FID_INPUT_DATE_1", "20250101"),
                ("FID_INPUT_DATE_2", &ymd(today)),
                ("FID_PERIOD_DIV_CODE", "W"),
                ("FID_ORG_ADJ_PRC", "0"),
            ],
        )
        .await;
    let weeks = v["output2"].as_array().unwrap();
    assert!(weeks.len() > 50 && weeks.len() <= 60, "{} weeks since 2025-01-01", weeks.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kis_minute_charts_cover_the_session_so_far() {
    let start = kst(10, 30);
    let k = kis_at(start).await;
    let token = k.token().await;
    // python-kis asks for `000000` first ("latest"), then pages back a minute before the
    // oldest row it got.
    let mut rows: Vec<Value> = Vec::new();
    let mut hour = "000000".to_string();
    let mut acml_vol;
    loop {
        let v = k
            .ok(
                &token,
                "inquire-time-itemchartprice",
                "FHKST03010200",
                &[
                    ("FID_ETC_CLS_CODE", ""),
                    ("FID_COND_MRKT_DIV_CODE", "J"),
                    ("FID_INPUT_ISCD", "000660"),
                    ("FID_INPUT_HOUR_1", &hour),
                    ("FID_PW_DATA_INCU_YN", "N"),
                ],
            )
            .await;
        acml_vol = Some(dec(&v["output1"]["acml_vol"]));
        let page = v["output2"].as_array().unwrap().clone();
        assert!(page.len() <= 30, "at most 30 rows a call (spec §3.4)");
        let oldest = page.last().map(|r| r["stck_cntg_hour"].as_str().unwrap().to_string());
        let got_new = page
            .first()
            .is_some_and(|r| rows.last().is_none_or(|l| r["stck_cntg_hour"].as_str() < l["stck_cntg_hour"].as_str()));
        if !got_new {
            break;
        }
        rows.extend(page);
        let oldest = oldest.unwrap();
        if oldest.as_str() <= "090000" {
            break;
        }
        let t = jiff::civil::Time::strptime("%H%M%S", &oldest).unwrap() - jiff::Span::new().minutes(1);
        hour = t.strftime("%H%M%S").to_string();
    }
    // Every minute from 09:00 through the one in progress at 10:30, newest first.
    assert_eq!(rows.len(), 91);
    assert_eq!(rows[0]["stck_cntg_hour"], "103000");
    assert_eq!(rows.last().unwrap()["stck_cntg_hour"], "090000");
    assert!(rows.iter().all(|r| r["stck_bsop_date"] == "20260114"));
    let total: Decimal = rows.iter().map(|r| dec(&r["cntg_vol"])).sum();
    assert_eq!(Some(total), acml_vol, "the minutes add up to the day's volume so far");
    for w in rows.windows(2) {
        assert!(w[0]["stck_cntg_hour"].as_str() > w[1]["stck_cntg_hour"].as_str());
    }
}

// ---------------------------------------------------------------------------------------
// Upbit.

async fn upbit_at(start: UtcTime) -> (FakeUpbit, reqwest::Client) {
    // A still clock never slides the 10/s window, so this test's fake allows more.
    let cfg = FakeConfig { rest_per_second: 1_000, ..FakeConfig::default() };
    (so_providers::upbit::fake::serve(cfg, still_clock(start)).await.unwrap(), reqwest::Client::new())
}

async fn upbit_get(fake: &FakeUpbit, http: &reqwest::Client, path_query: &str) -> (u16, Value) {
    let r = http.get(format!("{}{path_query}", fake.rest_base())).send().await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().await.unwrap()).unwrap())
}

async fn candles(fake: &FakeUpbit, http: &reqwest::Client, path_query: &str) -> Vec<Value> {
    let (status, v) = upbit_get(fake, http, path_query).await;
    assert_eq!(status, 200, "{path_query}: {v}");
    v.as_array().unwrap().clone()
}

fn utc(text: &str) -> UtcTime {
    UtcTime::parse(&format!("{text}.000Z")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upbit_day_candles_reach_back_200_days_and_page_with_to() {
    // 12:00 KST = 03:00 UTC: three hours into the Upbit day.
    let start = kst(12, 0);
    let (fake, http) = upbit_at(start).await;
    let first = candles(&fake, &http, "/candles/days?market=KRW-BTC&count=200").await;
    assert_eq!(first.len(), 200);
    assert_eq!(first[0]["candle_date_time_utc"], "2026-01-14T00:00:00", "today's candle first");
    assert_eq!(first[0]["candle_date_time_kst"], "2026-01-14T09:00:00");
    // Page back from the oldest candle, as pyupbit does.
    let to = first.last().unwrap()["candle_date_time_utc"].as_str().unwrap().to_string();
    let second =
        candles(&fake, &http, &format!("/candles/days?market=KRW-BTC&count=200&to={}", to.replace('T', "%20"))).await;
    assert_eq!(second.len(), 200);
    let all: Vec<Value> = first.into_iter().chain(second).collect();
    for (i, c) in all.iter().enumerate() {
        let day = utc(c["candle_date_time_utc"].as_str().unwrap());
        assert_eq!(
            day,
            start.plus_millis(-3 * 3_600_000).plus_millis(-(i as i64) * 86_400_000),
            "consecutive days: {c}"
        );
        let (o, h, l, cl) =
            (dec(&c["opening_price"]), dec(&c["high_price"]), dec(&c["low_price"]), dec(&c["trade_price"]));
        assert!(l <= o.min(cl) && h >= o.max(cl) && l > Decimal::ZERO, "{c}");
        assert!(dec(&c["candle_acc_trade_volume"]) > Decimal::ZERO);
        if let Some(older) = all.get(i + 1) {
            assert_eq!(dec(&c["prev_closing_price"]), dec(&older["trade_price"]), "days chain: {c}");
            assert_eq!(dec(&c["change_price"]), cl - dec(&c["prev_closing_price"]));
        }
    }
    // The history ends (400 days by default); asking before it gives nothing.
    let ancient = candles(&fake, &http, "/candles/days?market=KRW-BTC&count=5&to=2020-01-01T00:00:00Z").await;
    assert!(ancient.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upbit_minute_candles_cover_the_previous_24_hours() {
    // 03:00:30 UTC: half a minute into the minute in progress.
    let minute = kst(12, 0);
    let start = minute.plus_millis(30_000);
    let (fake, http) = upbit_at(start).await;
    let (_, ticker) = upbit_get(&fake, &http, "/ticker?markets=KRW-BTC").await;
    let prev_close = dec(&ticker[0]["prev_closing_price"]);
    // pyupbit's paging: count 200, `to` = the oldest candle's UTC start, `YYYY-MM-DD HH:MM:SS`.
    let mut all: Vec<Value> = Vec::new();
    let mut to: Option<String> = None;
    while all.len() < 1440 + 1 {
        let q = match &to {
            None => "/candles/minutes/1?market=KRW-BTC&count=200".to_string(),
            Some(t) => format!("/candles/minutes/1?market=KRW-BTC&count=200&to={}", t.replace('T', "%20")),
        };
        let page = candles(&fake, &http, &q).await;
        assert_eq!(page.len(), 200);
        to = Some(page.last().unwrap()["candle_date_time_utc"].as_str().unwrap().to_string());
        all.extend(page);
    }
    // Every minute of the 24 hours before now, newest first: the live day's three hours,
    // then yesterday's (drawn) minutes.
    let newest = utc(all[0]["candle_date_time_utc"].as_str().unwrap());
    assert_eq!(newest, minute, "the minute in progress first");
    for (i, c) in all.iter().enumerate() {
        assert_eq!(c["unit"], 1);
        assert_eq!(utc(c["candle_date_time_utc"].as_str().unwrap()), minute.plus_millis(-(i as i64) * 60_000), "{c}");
        let (o, h, l, cl) =
            (dec(&c["opening_price"]), dec(&c["high_price"]), dec(&c["low_price"]), dec(&c["trade_price"]));
        assert!(l <= o.min(cl) && h >= o.max(cl), "{c}");
        assert!((cl % Decimal::from(1000)).is_zero(), "BTC on its 1,000 KRW tick: {c}");
    }
    // Yesterday's last minute closes at today's previous close.
    let last_of_yesterday = all.iter().find(|c| c["candle_date_time_utc"] == "2026-01-13T23:59:00").unwrap();
    assert_eq!(dec(&last_of_yesterday["trade_price"]), prev_close);
    // An hour candle is the sum of its minutes, in the past as today.
    for hour in ["2026-01-13T05:00:00", "2026-01-14T01:00:00"] {
        let to = utc(hour).plus_millis(3_600_000).to_timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let h = candles(&fake, &http, &format!("/candles/minutes/60?market=KRW-BTC&count=1&to={to}")).await;
        assert_eq!(h[0]["candle_date_time_utc"], hour);
        let mins: Vec<&Value> = all
            .iter()
            .filter(|c| {
                let t = utc(c["candle_date_time_utc"].as_str().unwrap());
                t >= utc(hour) && t < utc(hour).plus_millis(3_600_000)
            })
            .collect();
        assert_eq!(mins.len(), 60);
        let volume: Decimal = mins.iter().map(|c| dec(&c["candle_acc_trade_volume"])).sum();
        assert_eq!(dec(&h[0]["candle_acc_trade_volume"]), volume, "{hour}");
        assert_eq!(dec(&h[0]["opening_price"]), dec(&mins.last().unwrap()["opening_price"]));
        assert_eq!(dec(&h[0]["trade_price"]), dec(&mins[0]["trade_price"]));
    }
    // `to` in its other spellings means the same instant; a bad one is refused.
    let mut firsts = Vec::new();
    for to in ["2026-01-13T12:00:00Z", "2026-01-13%2012:00:00", "2026-01-13T21:00:00%2B09:00"] {
        let c = candles(&fake, &http, &format!("/candles/minutes/1?market=KRW-BTC&count=1&to={to}")).await;
        firsts.push(c[0]["candle_date_time_utc"].clone());
    }
    assert!(firsts.iter().all(|f| f == "2026-01-13T11:59:00"), "{firsts:?}");
    let (status, _) = upbit_get(&fake, &http, "/candles/minutes/1?market=KRW-BTC&to=yesterday").await;
    assert_eq!(status, 400);
    // The history is the same on every ask (seeded, nothing stored but a cache).
    let again = candles(&fake, &http, "/candles/minutes/1?market=KRW-BTC&count=3&to=2026-01-13T12:00:00Z").await;
    let (fake2, http2) = upbit_at(start).await;
    let other = candles(&fake2, &http2, "/candles/minutes/1?market=KRW-BTC&count=3&to=2026-01-13T12:00:00Z").await;
    assert_eq!(again, other);
}
