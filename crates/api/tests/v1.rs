//! `/api/v1` on the wire: a real listener over a SQLite database loaded by the ETL from a
//! fixture day. The auth matrix, answers equal to what the store holds, ticks paged exactly
//! once each, and every bad parameter a 400 that names it.

use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Format, Yaml};
use model::settings::Interval;
use model::{Clock, Symbol, UtcTime};
use reqwest::StatusCode;
use serde_json::Value;
use so_api::keys::{KeyStore, Scope};
use so_api::v1::{ApiLimits, ApiState};
use so_api::{HttpConfig, Stats};
use store::testing::fixture::{DaySpec, DaySummary, write_day};
use store::{Backend, EtlOptions, Store, StoreConfig, run_etl};
use tokio::sync::watch;

const DATE: &str = "20260114";

fn embedded<T: serde::de::DeserializeOwned>(key: &str) -> T {
    figment::Figment::from(Yaml::string(include_str!("../../../configs/observer.yaml"))).extract_inner(key).unwrap()
}

struct Server {
    _dir: tempfile::TempDir,
    base: String,
    read: String,
    backup_only: String,
    revoked: String,
    store: Arc<Store>,
    sum: DaySummary,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
}

async fn start(limits: ApiLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let sum = write_day(data, &DaySpec::small(DATE)).unwrap();
    let store = Store::open(&StoreConfig::default(), data).await.unwrap();
    store.migrate().await.unwrap();
    let report =
        run_etl(&store, data, &EtlOptions { date: DATE.into(), batch_rows: 500, progress: false }).await.unwrap();
    assert!(report.ok);
    let store = Arc::new(store);

    let keys = Arc::new(KeyStore::open(data));
    let now = UtcTime::parse("2026-01-14T06:00:00.000Z").unwrap();
    let read = keys.create(Scope::Read, "reader", now).unwrap().text().to_string();
    let backup_only = keys.create(Scope::BackupRead, "coordinator", now).unwrap().text().to_string();
    let old = keys.create(Scope::Read, "old", now).unwrap();
    keys.revoke(&old.record.id, now).unwrap();
    let revoked = old.text().to_string();

    // The market clock at 15:00 Seoul of the fixture day.
    let clock = Clock::simulated(now, 1.0, Duration::from_secs(1));
    let app = so_api::v1::router(
        ApiState { store: store.clone(), live: None, data_dir: data.into(), clock, limits, stream: None },
        keys,
    );
    let mut http: HttpConfig = embedded("http");
    http.listen = "127.0.0.1:0".parse().unwrap();
    http.request_timeout = Interval::from_millis(10_000);
    let (stop_tx, stop) = watch::channel(false);
    let l = so_api::serve_app(&http, app, Arc::new(Stats::default()), stop).await.unwrap();
    Server {
        _dir: dir,
        base: format!("http://{}", l.addr),
        read,
        backup_only,
        revoked,
        store,
        sum,
        http: reqwest::Client::new(),
        _stop: stop_tx,
    }
}

impl Server {
    async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body = res.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body:?}")))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path, Some(&self.read)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn bad(&self, path: &str) -> String {
        let (status, body) = self.get(path, Some(&self.read)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
        body["error"]["message"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_read_key() {
    let s = start(embedded("api")).await;
    let routes = [
        "/api/v1/bars/005930",
        "/api/v1/latest/005930",
        "/api/v1/ticks/005930",
        "/api/v1/gaps",
        "/api/v1/events",
        "/api/v1/overflow",
        "/api/v1/status",
        "/api/v1/universe",
        "/api/v1/anomalies",
        "/api/v1/db",
    ];
    for r in routes {
        let (st, body) = s.get(r, None).await;
        assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{r}");
        assert_eq!(s.get(r, Some("so_nope_wrong")).await.0, StatusCode::UNAUTHORIZED, "{r}");
        assert_eq!(s.get(r, Some(&s.revoked)).await.0, StatusCode::UNAUTHORIZED, "{r} with a revoked key");
        let (st, body) = s.get(r, Some(&s.backup_only)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{r}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("this route needs read"), "{body}");
        assert_ne!(s.get(r, Some(&s.read)).await.0, StatusCode::UNAUTHORIZED, "{r}");
    }
    // X-API-Key works as well as Bearer.
    let res =
        s.http.get(format!("{}/api/v1/gaps?date={DATE}", s.base)).header("x-api-key", &s.read).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_what_the_database_holds() {
    let s = start(embedded("api")).await;
    let sym = Symbol::new("005930").unwrap();

    // latest: the newest trade, as a decimal string, with its age on the market clock.
    let l = s.ok("/api/v1/latest/005930").await;
    let want = s.store.latest_price(sym.clone(), None).await.unwrap().unwrap();
    assert_eq!(l["price"], Value::String(want.price.to_string()), "{l}");
    assert_eq!(l["time"], serde_json::to_value(want.time).unwrap());
    let age = UtcTime::parse("2026-01-14T06:00:00.000Z").unwrap().millis_since(want.time) as f64 / 1000.0;
    assert!((l["age_seconds"].as_f64().unwrap() - age).abs() < 5.0, "{l}");
    let (st, body) = s.get("/api/v1/latest/999999", Some(&s.read)).await;
    assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // bars: the store's 1m bars of the day, every price a string.
    let (from, to) = ("2026-01-14T00:00:00Z", "2026-01-14T01:00:00Z");
    let b = s.ok(&format!("/api/v1/bars/005930?interval=1m&from={from}&to={to}")).await;
    let want = s
        .store
        .bars(store::BarQuery {
            symbol: sym.clone(),
            provider: None,
            interval: store::BarInterval::M1,
            from: UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap(),
            to: UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap(),
        })
        .await
        .unwrap();
    let bars = b["bars"].as_array().unwrap();
    assert!(!bars.is_empty() && bars.len() == want.len(), "{} vs {}", bars.len(), want.len());
    for (got, w) in bars.iter().zip(&want) {
        assert_eq!(got["open"], Value::String(w.open.to_string()));
        assert_eq!(got["close"], Value::String(w.close.to_string()));
        assert_eq!(got["volume"], Value::String(w.volume.to_string()));
        assert_eq!(got["time"], serde_json::to_value(w.bar_time).unwrap());
    }

    // ticks: paged 7 at a time, every trade of the symbol exactly once, in order.
    let mut seen: Vec<String> = Vec::new();
    let mut path = format!("/api/v1/ticks/005930?from={from}&to=2026-01-14T09:00:00Z&limit=7");
    loop {
        let page = s.ok(&path).await;
        let ticks = page["ticks"].as_array().unwrap();
        assert!(ticks.len() <= 7);
        seen.extend(ticks.iter().map(|t| t["trade_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/ticks/005930?from={from}&to=2026-01-14T09:00:00Z&limit=7&cursor={c}"),
            None => break,
        }
    }
    let mut mine: Vec<_> = s.sum.trades.iter().filter(|t| t.symbol == "005930").collect();
    mine.sort_by_key(|t| (t.time, t.seq.to_string()));
    let want: Vec<String> = mine.iter().map(|t| t.seq.to_string()).collect();
    assert_eq!(seen, want, "every trade once, oldest first");

    // The day's evidence.
    let gaps = s.ok(&format!("/api/v1/gaps?date={DATE}")).await;
    assert_eq!(gaps["gaps"].as_array().unwrap().len(), s.sum.gaps);
    let events = s.ok(&format!("/api/v1/events?date={DATE}")).await;
    assert_eq!(events["events"].as_array().unwrap().len(), s.sum.events);
    let only = s.ok(&format!("/api/v1/events?date={DATE}&type=gap_marker")).await;
    assert!(only["events"].as_array().unwrap().iter().all(|e| e["event_type"] == "gap_marker"));
    let overflow = s.ok(&format!("/api/v1/overflow?date={DATE}")).await;
    assert_eq!(overflow["overflow"].as_array().unwrap().len(), s.sum.overflow);
    // No collector in this process.
    assert_eq!(s.get("/api/v1/status", Some(&s.read)).await.0, StatusCode::NOT_FOUND);

    // The universe as the archive recorded it, prices as strings.
    let u = s.ok(&format!("/api/v1/universe?date={DATE}")).await;
    let files = u["universes"].as_array().unwrap();
    let listed: usize = files.iter().map(|f| f["symbols"].as_array().unwrap().len()).sum();
    assert_eq!(listed, s.sum.universe, "{u}");
    assert!(files[0]["symbols"][0]["prev_close"].is_string());
    assert_eq!(s.ok(&format!("/api/v1/universe?date={DATE}&market=crypto")).await["universes"], serde_json::json!([]));
    let anomalies = s.ok(&format!("/api/v1/anomalies?date={DATE}")).await;
    let want = s.store.events(DATE.parse::<model::Day>().unwrap().date()).await.unwrap();
    let want = want.iter().filter(|e| e.event_type == "anomaly_day").count();
    assert_eq!(anomalies["recorded"].as_array().unwrap().len(), want);
    assert_eq!(anomalies["live"], Value::Null);
    let db = s.ok("/api/v1/db").await;
    assert_eq!((db["mode"].as_str(), db["pending_migrations"].as_u64()), (Some("sqlite"), Some(0)), "{db}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_parameter() {
    let limits = ApiLimits { max_bars: 120, ..embedded("api") };
    let s = start(limits).await;
    let cases = [
        ("/api/v1/bars/005930?interval=2m", "interval:"),
        ("/api/v1/bars/005930?from=yesterday", "from:"),
        ("/api/v1/bars/005930?from=2026-01-14T02:00:00Z&to=2026-01-14T01:00:00Z", "from:"),
        (
            "/api/v1/bars/005930?from=2026-01-13T00:00:00Z&to=2026-01-14T01:00:00Z",
            "from: the range holds up to 1500 bars",
        ),
        ("/api/v1/bars/005930?provider=KIS", "provider:"),
        ("/api/v1/ticks/005930?limit=0", "limit:"),
        ("/api/v1/ticks/005930?limit=1001", "limit:"),
        ("/api/v1/ticks/005930?cursor=zz", "cursor:"),
        ("/api/v1/ticks/005930?limit=1&limit=2", "limit: given more than once"),
        ("/api/v1/latest/..%2Fetc", "symbol:"),
        ("/api/v1/gaps?date=2026-01-14", "date:"),
        ("/api/v1/events?type=DROP%20TABLE", "type:"),
        ("/api/v1/universe?market=nasdaq", "market:"),
    ];
    for (path, named) in cases {
        let msg = s.bad(path).await;
        assert!(msg.starts_with(named), "{path}: {msg}");
    }
}
