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
    admin: String,
    backup_only: String,
    revoked: String,
    store: Arc<Store>,
    sum: DaySummary,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
}

async fn start(limits: ApiLimits) -> Server {
    // The market clock at 15:00 Seoul of the fixture day.
    start_at(limits, "2026-01-14T06:00:00.000Z").await
}

async fn start_at(limits: ApiLimits, clock_at: &str) -> Server {
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
    let admin = keys.create(Scope::Admin, "operator", now).unwrap().text().to_string();
    let backup_only = keys.create(Scope::BackupRead, "coordinator", now).unwrap().text().to_string();
    let old = keys.create(Scope::Read, "old", now).unwrap();
    keys.revoke(&old.record.id, now).unwrap();
    let revoked = old.text().to_string();

    let clock = Clock::simulated(UtcTime::parse(clock_at).unwrap(), 1.0, Duration::from_secs(1));
    let upkeep =
        lifecycle::upkeep::Upkeep::new(data, embedded("backup"), embedded("compression"), embedded("retention"));
    let state = ApiState { upkeep: Some(Arc::new(upkeep)), ..ApiState::new(store.clone(), data.into(), clock, limits) };
    let app = so_api::v1::router(state, keys);
    let mut http: HttpConfig = embedded("http");
    http.listen = "127.0.0.1:0".parse().unwrap();
    http.request_timeout = Interval::from_millis(10_000);
    let (stop_tx, stop) = watch::channel(false);
    let l = so_api::serve_app(&http, app, Arc::new(Stats::default()), stop).await.unwrap();
    Server {
        _dir: dir,
        base: format!("http://{}", l.addr),
        read,
        admin,
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

    async fn post(&self, path: &str, key: &str) -> (StatusCode, Option<String>, Value) {
        let res = self.http.post(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap();
        let status = res.status();
        let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let body = res.bytes().await.unwrap();
        (status, location, serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body:?}")))
    }

    /// Polls an admin job until it is no longer running.
    async fn job(&self, location: &str) -> Value {
        for _ in 0..600 {
            let (st, job) = self.get(location, Some(&self.admin)).await;
            assert_eq!(st, StatusCode::OK, "{job}");
            if job["state"] != "running" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{location} still running after 30 s");
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
        "/api/v1/slots",
        "/api/v1/scalp/005930",
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
    // Admin routes need an admin key: a read key is 403.
    for r in ["/api/v1/admin/compress", "/api/v1/admin/refresh", "/api/v1/admin/backup", "/api/v1/admin/etl"] {
        let res = s.http.post(format!("{}{r}", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{r}");
        let (st, _, body) = s.post(r, &s.read).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{r}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("this route needs admin"), "{body}");
    }
    assert_eq!(s.get("/api/v1/admin/jobs", Some(&s.read)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/api/v1/admin/jobs", Some(&s.admin)).await.0, StatusCode::OK);
    // An admin key reads too.
    assert_eq!(s.get("/api/v1/gaps", Some(&s.admin)).await.0, StatusCode::OK);
    // The OpenAPI document is open: it describes, it holds no data.
    let (st, doc) = s.get("/api/v1/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    let want: Value = serde_json::from_str(&so_api::v1::openapi::document()).unwrap();
    assert_eq!(doc, want);
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
    let storage = s.store.storage().await.unwrap();
    assert_eq!(db["storage"]["total_bytes"].as_u64(), Some(storage.total_bytes), "{db}");
    assert!(storage.relations.iter().any(|r| r.name == "market_ticks" && r.bytes > 0), "{storage:?}");
    assert_eq!((&db["storage"]["compression"], &db["pool"]), (&Value::Null, &Value::Null), "SQLite compresses nothing");

    // scalp: the symbol's samples paged 5 at a time, each once, as the fixture wrote them.
    let mut seen: Vec<(String, Value)> = Vec::new();
    let base = format!("/api/v1/scalp/005930?from={from}&to=2026-01-14T09:00:00Z&limit=5");
    let mut path = base.clone();
    loop {
        let page = s.ok(&path).await;
        for x in page["samples"].as_array().unwrap() {
            seen.push((x["time"].as_str().unwrap().to_string(), x["last_price"].clone()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("{base}&cursor={c}"),
            None => break,
        }
    }
    let mut want: Vec<_> = s.sum.samples.iter().filter(|x| x.symbol == "005930").collect();
    want.sort_by_key(|x| x.time);
    let want: Vec<(String, Value)> = want
        .iter()
        .map(|x| {
            let t = serde_json::to_value(x.time).unwrap().as_str().unwrap().to_string();
            (t, x.last_price.map_or(Value::Null, |p| Value::String(p.to_string())))
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(seen, want, "every sample once, oldest first, prices as strings");

    // slots: the day's newest slot_decision per provider (no collector here: counts are null).
    let at = UtcTime::parse("2026-01-14T00:05:00.000Z").unwrap();
    let decision = |line: u64, at: UtcTime, slots: &[&str]| store::EventRow {
        src: store::SrcRef { file: format!("system/events/sim/{DATE}.jsonl"), line },
        provider: model::Provider::Sim,
        event_time: at,
        event_type: "slot_decision".into(),
        body: serde_json::json!({ "event_type": "slot_decision", "slots": slots, "added": [], "removed": [] }),
        meta: store::RowMeta {
            schema_version: model::SCHEMA_VERSION.into(),
            receive_time: at,
            session_id: "s".into(),
            mitigation_level: 0,
            quality_flag: model::QualityFlag::Normal,
            raw_ref: None,
        },
    };
    let later = at.plus_millis(60_000);
    s.store
        .write_events(vec![decision(9001, at, &["005930"]), decision(9002, later, &["005930", "000660"])])
        .await
        .unwrap();
    let slots = s.ok(&format!("/api/v1/slots?date={DATE}")).await;
    let sim = slots["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "sim").unwrap().clone();
    assert_eq!(sim["symbols"], serde_json::json!(["005930", "000660"]), "{slots}");
    assert_eq!(sim["decided_at"], serde_json::to_value(later).unwrap());
    assert_eq!((&sim["assigned"], &slots["level"]), (&Value::Null, &Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_jobs_run_in_the_background_and_report_what_they_did() {
    // The next day: the fixture day is over, so it can be packed.
    let s = start_at(embedded("api"), "2026-01-15T03:00:00.000Z").await;
    // ETL of the day again: 202, the job's address, and its reconciliation when done.
    let (st, location, job) = s.post(&format!("/api/v1/admin/etl?date={DATE}"), &s.admin).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let location = location.unwrap();
    assert_eq!(location, format!("/api/v1/admin/jobs/{}", job["id"]));
    assert_eq!((job["kind"].as_str(), job["state"].as_str()), (Some("etl"), Some("running")));
    let done = s.job(&location).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["ok"], true, "{done}");
    assert!(done["finished"].is_string());

    // A backup of a closed day: the package is on disk with its marker, and a second is a no-op.
    let closed = "20260113";
    write_closed_day(s._dir.path(), closed);
    let (st, location, job) = s.post(&format!("/api/v1/admin/backup?date={closed}"), &s.admin).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let done = s.job(&location.unwrap()).await;
    assert_eq!(
        (done["state"].as_str(), done["result"]["created"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{done}"
    );
    let dir = std::path::PathBuf::from(done["result"]["dir"].as_str().unwrap());
    let marker: Value = serde_json::from_slice(&std::fs::read(dir.join(lifecycle::package::MARKER)).unwrap()).unwrap();
    assert_eq!(marker["manifest_sha256"], done["result"]["manifest_sha256"], "{marker}");
    assert_eq!(done["result"]["files"], marker["files"]);
    // A day with nothing recorded fails, and says so.
    let (_, location, _) = s.post("/api/v1/admin/backup?date=20200101", &s.admin).await;
    let none = s.job(&location.unwrap()).await;
    assert_eq!(none["state"], "failed", "{none}");
    assert!(none["error"].as_str().unwrap().contains("20200101"), "{none}");
    let (_, location, _) = s.post(&format!("/api/v1/admin/backup?date={closed}"), &s.admin).await;
    let again = s.job(&location.unwrap()).await;
    assert_eq!(again["result"]["created"], false, "{again}");
    assert_eq!(again["result"]["manifest_sha256"], done["result"]["manifest_sha256"]);

    // Both kinds are listed, newest of each.
    let (_, list) = s.get("/api/v1/admin/jobs", Some(&s.admin)).await;
    let kinds: Vec<&str> = list["jobs"].as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["backup", "etl"], "{list}");
    assert_eq!(s.get("/api/v1/admin/jobs/999", Some(&s.admin)).await.0, StatusCode::NOT_FOUND);

    // What cannot run is refused up front with the reason, and starts no job.
    let (st, _, body) = s.post("/api/v1/admin/compress", &s.admin).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("sqlite mode"), "{body}");
    assert_eq!(s.post("/api/v1/admin/refresh", &s.admin).await.0, StatusCode::CONFLICT);
    let (st, _, body) = s.post("/api/v1/admin/etl", &s.admin).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("date:"), "{body}");
    assert_eq!(s.post("/api/v1/admin/backup?date=2026-01-14", &s.admin).await.0, StatusCode::BAD_REQUEST);

    // A day with no archive fails, and says why.
    let (_, location, _) = s.post("/api/v1/admin/etl?date=20200101", &s.admin).await;
    let failed = s.job(&location.unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");
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
        ("/api/v1/scalp/005930?cursor=00", "cursor:"),
        ("/api/v1/scalp/005930?limit=0", "limit:"),
        ("/api/v1/scalp/005930?from=2026-01-14T02:00:00Z&to=2026-01-14T01:00:00Z", "from:"),
        ("/api/v1/slots?date=yesterday", "date:"),
    ];
    for (path, named) in cases {
        let msg = s.bad(path).await;
        assert!(msg.starts_with(named), "{path}: {msg}");
    }
}

/// A closed archive day written by the archive writer (its files in the day's manifest).
fn write_closed_day(root: &std::path::Path, date: &str) {
    use archive::{ArchiveConfig, ArchiveWriter, Stream};
    let d: model::Day = date.parse().unwrap();
    let t0 = d.start().plus_millis(9 * 3_600_000);
    let session = model::SessionId::starting_at(t0);
    let cfg = ArchiveConfig {
        buffer_bytes: 64 * 1024,
        io_queue_buffers: 4,
        fsync_interval: "1s".parse().unwrap(),
        scalp_window: "5m".parse().unwrap(),
    };
    let (mut w, _) = ArchiveWriter::open(root, &cfg, t0, &session).unwrap();
    for i in 0..50_i64 {
        let t = t0.plus_millis(i * 1_000);
        let line = format!(
            r#"{{"provider":"sim","seq":{i},"event_time":"{t}","receive_time":"{t}","session_id":"{session}"}}"#
        );
        w.append(Stream::Raw(model::Provider::Sim), t, line.as_bytes()).unwrap();
    }
    w.close_all(d.start().plus_millis(23 * 3_600_000)).unwrap();
}
