//! Session tokens on the wire: minted for an API key, used as Bearer or as the cookie, and
//! refused when expired, unsigned (`alg: none`), signed with another algorithm or secret,
//! or when their key was revoked; a read session cannot open the stream. No token or key
//! in any log line.

use std::sync::Arc;

use figment::providers::{Format, Yaml};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use model::settings::Interval;
use model::{Clock, UtcTime};
use reqwest::StatusCode;
use so_api::keys::{KeyStore, Scope};
use so_api::session::{Claims, Sessions};
use so_api::v1::stream::Hub;
use so_api::v1::{ApiLimits, ApiState};
use so_api::{HttpConfig, Stats};
use store::{Backend, Store, StoreConfig};
use tokio::sync::watch;

mod common;

use common::logs;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

fn embedded<T: serde::de::DeserializeOwned>(key: &str) -> T {
    figment::Figment::from(Yaml::string(include_str!("../../../configs/observer.yaml"))).extract_inner(key).unwrap()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn forge(alg: Algorithm, secret: &[u8], sub: &str, exp: i64) -> String {
    let claims = Claims { sub: sub.into(), scope: "read".into(), iat: exp - 60, exp };
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

fn b64(s: &str) -> String {
    // base64url without padding, as JWT parts are.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_auth_matrix() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::default(), dir.path()).await.unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let limits: ApiLimits = embedded("api");
    let keys = KeyStore::open(dir.path()).with_sessions(Some(Sessions::new(SECRET, 3600).unwrap()));
    let now = UtcTime::parse("2026-01-14T06:00:00.000Z").unwrap();
    let read = keys.create(Scope::Read, "dash", now).unwrap();
    let doomed = keys.create(Scope::Read, "doomed", now).unwrap();
    let keys = Arc::new(keys);
    let hub = Hub::new(10, std::time::Duration::from_secs(15));
    let state = ApiState { stream: Some(hub), ..ApiState::new(store, dir.path().into(), Clock::real(), limits) };
    let mut http: HttpConfig = embedded("http");
    http.listen = "127.0.0.1:0".parse().unwrap();
    http.request_timeout = Interval::from_millis(10_000);
    let (_stop_tx, stop) = watch::channel(false);
    let l = so_api::serve_app(&http, so_api::v1::router(state, keys.clone()), Arc::new(Stats::default()), stop)
        .await
        .unwrap();
    let base = format!("http://{}", l.addr);
    let c = reqwest::Client::new();
    let gaps = format!("{base}/api/v1/gaps?date=20260114");
    let status = |token: String| {
        let (c, gaps) = (c.clone(), gaps.clone());
        async move { c.get(&gaps).bearer_auth(token).send().await.unwrap().status() }
    };

    // Minted for a key: body and cookie.
    let res = c.post(format!("{base}/api/v1/session")).bearer_auth(read.text()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["scope"], "read");

    assert_eq!(status(token.clone()).await, StatusCode::OK, "a valid session");
    let by_cookie = c.get(&gaps).header("cookie", format!("theme=dark; so_session={token}")).send().await.unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK, "the cookie, as an EventSource sends it");
    // Signing out clears the cookie; without a credential it is a 401 like every route.
    let out = c
        .delete(format!("{base}/api/v1/session"))
        .header("cookie", format!("so_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("so_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(c.delete(format!("{base}/api/v1/session")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A session cannot extend itself.
    let again = c.post(format!("{base}/api/v1/session")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // Its scope is its key's: a read session opens the stream (read covers stream), not admin routes.
    let s = c.get(format!("{base}/api/v1/stream")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(s.status(), StatusCode::OK);
    drop(s);
    let s = c.get(format!("{base}/api/v1/admin/jobs")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(s.status(), StatusCode::FORBIDDEN);

    let id = &read.record.id;
    assert_eq!(status(forge(Algorithm::HS256, SECRET, id, now_secs() - 1)).await, StatusCode::UNAUTHORIZED, "expired");
    assert_eq!(status(forge(Algorithm::HS512, SECRET, id, now_secs() + 600)).await, StatusCode::UNAUTHORIZED, "HS512");
    assert_eq!(
        status(forge(Algorithm::HS256, b"another-secret-of-at-least-32-bytes!!", id, now_secs() + 600)).await,
        StatusCode::UNAUTHORIZED,
        "another secret"
    );
    let payload = format!("{{\"sub\":\"{id}\",\"scope\":\"admin\",\"iat\":0,\"exp\":{}}}", now_secs() + 600);
    let none = format!("{}.{}.", b64("{\"alg\":\"none\",\"typ\":\"JWT\"}"), b64(&payload));
    assert_eq!(status(none).await, StatusCode::UNAUTHORIZED, "alg: none");

    // Revoking the key ends its sessions.
    let res = c.post(format!("{base}/api/v1/session")).bearer_auth(doomed.text()).send().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let doomed_token = body["token"].as_str().unwrap().to_string();
    assert_eq!(status(doomed_token.clone()).await, StatusCode::OK);
    keys.revoke(&doomed.record.id, now).unwrap();
    assert_eq!(status(doomed_token.clone()).await, StatusCode::UNAUTHORIZED, "revoked key");

    let log = logs();
    for secret in [read.text(), doomed.text(), token.as_str(), doomed_token.as_str()] {
        assert!(!log.contains(secret), "a credential in the log:\n{log}");
    }
    assert!(log.contains("API request refused"), "{log}");
}

#[tokio::test]
async fn sessions_are_off_without_a_secret_and_a_short_one_is_refused() {
    assert!(Sessions::new(b"short", 60).is_err());
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyStore::open(dir.path());
    let read = keys.create(Scope::Read, "x", UtcTime::parse("2026-01-14T06:00:00.000Z").unwrap()).unwrap();
    let token = forge(Algorithm::HS256, SECRET, &read.record.id, now_secs() + 600);
    let err = keys.verify(&token).unwrap_err().to_string();
    assert!(err.contains("sessions are off"), "{err}");
}
