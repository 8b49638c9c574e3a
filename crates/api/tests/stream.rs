//! `/api/v1/stream` on the wire: strictly increasing ids, resume after `Last-Event-ID`
//! without a hole, `lost` when the ring no longer holds what was missed, keep-alive comments
//! on an idle stream, and the `stream` scope.

use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Format, Yaml};
use model::settings::Interval;
use model::{Clock, Meta, Record, SessionId, SystemEvent, UtcTime};
use reqwest::StatusCode;
use so_api::keys::{KeyStore, Scope};
use so_api::v1::stream::{Hub, Item};
use so_api::v1::{ApiLimits, ApiState};
use so_api::{HttpConfig, Stats};
use store::{Store, StoreConfig};
use tokio::sync::watch;

fn embedded<T: serde::de::DeserializeOwned>(key: &str) -> T {
    figment::Figment::from(Yaml::string(include_str!("../../../configs/observer.yaml"))).extract_inner(key).unwrap()
}

fn event(n: u32) -> Item {
    let at = UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap().plus_secs(i64::from(n));
    let body = SystemEvent::Overrun { track: "scalp".into(), detail: format!("n={n}") };
    // Odd events come from a provider's pipeline, even ones from the run itself.
    let provider = (n % 2 == 1).then_some(model::Provider::Kis);
    Item::Event(provider, Arc::new(Record { body, meta: Meta::new(at, at, SessionId::starting_at(at)) }))
}

struct Rig {
    _dir: tempfile::TempDir,
    url: String,
    stream_key: String,
    read_key: String,
    backup_key: String,
    hub: Arc<Hub>,
    _stop: watch::Sender<bool>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&StoreConfig::default(), dir.path()).await.unwrap());
    let keys = Arc::new(KeyStore::open(dir.path()));
    let now = UtcTime::parse("2026-01-14T06:00:00.000Z").unwrap();
    let stream_key = keys.create(Scope::Stream, "dash", now).unwrap().text().to_string();
    let read_key = keys.create(Scope::Read, "reader", now).unwrap().text().to_string();
    let backup_key = keys.create(Scope::BackupRead, "coordinator", now).unwrap().text().to_string();
    let hub = Hub::new(5, Duration::from_millis(200));
    let limits: ApiLimits = embedded("api");
    let state =
        ApiState { stream: Some(hub.clone()), ..ApiState::new(store, dir.path().into(), Clock::real(), limits) };
    let mut http: HttpConfig = embedded("http");
    http.listen = "127.0.0.1:0".parse().unwrap();
    http.request_timeout = Interval::from_millis(60_000);
    http.idle_timeout = Interval::from_millis(60_000);
    let (stop_tx, stop) = watch::channel(false);
    let l = so_api::serve_app(&http, so_api::v1::router(state, keys), Arc::new(Stats::default()), stop).await.unwrap();
    Rig {
        _dir: dir,
        url: format!("http://{}/api/v1/stream?kinds=event", l.addr),
        stream_key,
        read_key,
        backup_key,
        hub,
        _stop: stop_tx,
    }
}

/// Reads the stream until `done` says the text so far is enough (or 10 s pass).
async fn read_until(mut res: reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&text) {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("stream ended or stalled ({other:?}) after:\n{text}"),
        }
    }
    text
}

fn ids(text: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.strip_prefix("id: ")).map(|v| v.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_increase_resume_has_no_hole_and_an_idle_stream_keeps_alive() {
    let r = rig().await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(&r.url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(http.get(&r.url).bearer_auth(&r.backup_key).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // read covers stream: the same data, live.
    assert_eq!(http.get(&r.url).bearer_auth(&r.read_key).send().await.unwrap().status(), StatusCode::OK);

    let res = http.get(&r.url).bearer_auth(&r.stream_key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    for n in 1..=3 {
        r.hub.push(event(n));
    }
    let text = read_until(res, |t| ids(t).len() >= 3).await;
    assert_eq!(ids(&text), [1, 2, 3], "{text}");
    assert!(text.contains("event: event") && text.contains("\"detail\":\"n=2\""), "{text}");
    // The provider is in the data (the archive line has it only in its file's path).
    let data: Vec<serde_json::Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(data[0]["provider"], "kis", "{text}");
    assert!(data[1].get("provider").is_none(), "{text}");

    // Reconnect after 2: 3 and what came since, nothing skipped.
    r.hub.push(event(4));
    let res = http.get(&r.url).bearer_auth(&r.stream_key).header("Last-Event-ID", "2").send().await.unwrap();
    let text = read_until(res, |t| ids(t).len() >= 2).await;
    assert_eq!(ids(&text), [3, 4], "{text}");

    // The ring holds 5: resuming after 1 once 8 are out misses 2 and 3, and says so.
    for n in 5..=8 {
        r.hub.push(event(n));
    }
    let res = http.get(&r.url).bearer_auth(&r.stream_key).header("Last-Event-ID", "1").send().await.unwrap();
    let text = read_until(res, |t| ids(t).len() >= 5).await;
    assert!(text.starts_with("event: lost\ndata: {\"missed\":2}\n"), "{text}");
    assert_eq!(ids(&text), [4, 5, 6, 7, 8]);

    // Idle: keep-alive comments.
    let res = http.get(&r.url).bearer_auth(&r.stream_key).send().await.unwrap();
    let text = read_until(res, |t| t.matches(":\n").count() + t.matches(": \n").count() >= 2).await;
    assert!(ids(&text).is_empty(), "{text}");

    let bad = http.get(&r.url).bearer_auth(&r.stream_key).header("Last-Event-ID", "x").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
