//! The KIS access-token cache at rest (seed 001 §5.1): encrypted, owner-only, reused across
//! restarts, and a cache that cannot be used is discarded for exactly one new `tokenP` call
//! that still keeps KIS's one-per-minute rule (spec §2.1, EGW00133). Market time runs on an
//! accelerated sim clock, so the minute waits take a fraction of a second.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::settings::Interval;
use model::{Clock, Symbol, UtcTime};
use so_providers::MarketProvider;
use so_providers::kis::fake::{self, Counters, FakeKis, FakeKisConfig, FaultSwitch};
use so_providers::kis::{KisConfig, KisCredentials, KisEnv, KisProvider};
use so_providers::sim::{SimConfig, SimMarket};

const KEY: &str = "PSxKEYx0123456789abcdefghijklmnopqrs";
const SECRET: &str = "SECRETxVALUEx9876543210zyxwvutsrqponmlkjihgfedcba";
const OTHER_SECRET: &str = "OTHERxSECRETx0000000000000000000000000000000000";
/// Every token the fake issues starts with this JWT header (spec §2.1), so its absence from
/// the file means no token text is there.
const TOKEN_PREFIX: &str = "eyJ0eXAiOiJKV1Qi";
/// Market seconds per wall second: KIS's minute between issuances takes half a second.
const SPEED: f64 = 120.0;
/// KIS refuses a second tokenP call within this long of the previous one.
const KIS_MIN_INTERVAL_MS: i64 = 60_000;
/// Wall-clock bound for one call that may wait out the issuance minute.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn origin() -> UtcTime {
    // Wednesday 2026-01-14 10:00 KST, mid-session.
    UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap()
}

struct Fake {
    kis: FakeKis,
    symbol: Symbol,
}

async fn fake(clock: Clock, secret: &str) -> Fake {
    let sim = SimConfig { symbols: 4, ..SimConfig::krx_default() };
    let market = SimMarket::new(&sim, origin().kst().date());
    let symbol = market.listings()[0].symbol.clone();
    let cfg = FakeKisConfig::new(KisEnv::Real, KEY, secret);
    let kis = fake::serve(cfg, Arc::new(Mutex::new(market)), clock, FaultSwitch::new()).await.unwrap();
    Fake { kis, symbol }
}

fn clock() -> Clock {
    Clock::simulated(origin(), SPEED, SimConfig::krx_default().clock_stall_grace.get())
}

fn config(f: &Fake, data_dir: &std::path::Path) -> KisConfig {
    let base = KisConfig {
        enabled: true,
        rest_base: Some(f.kis.rest_base()),
        ws_base: Some(f.kis.ws_base()),
        master_base: f.kis.master_base(),
        request_timeout: Interval::from_millis(5_000),
        ..KisConfig::default()
    };
    // The default relative path, resolved under the data directory as `collect` does.
    KisConfig { token_cache: base.token_cache_under(data_dir), ..base }
}

fn provider(cfg: KisConfig, secret: &str, clock: Clock) -> KisProvider {
    KisProvider::new(cfg, KisCredentials::new(KEY.to_string().into(), secret.to_string().into()), clock).unwrap()
}

/// One REST call, which needs an access token.
async fn call(p: &KisProvider, f: &Fake) {
    tokio::time::timeout(CALL_TIMEOUT, p.snapshot(&f.symbol)).await.expect("the call hung").unwrap();
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    Counters::get(c)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The unencrypted issue time in the cache file's header.
fn header_issued_at(path: &std::path::Path) -> UtcTime {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    UtcTime::parse(v["issued_at"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_lives_under_the_data_dir_encrypted_owner_only_and_is_reused_after_a_restart() {
    let clock = clock();
    let f = fake(clock, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&f, dir.path());
    let path = dir.path().join("state/kis_token.json");
    assert_eq!(cfg.token_cache, path);

    call(&provider(cfg.clone(), SECRET, clock), &f).await;
    assert_eq!(get(&f.kis.counters.token_calls), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let bytes = std::fs::read(&path).unwrap();
    for s in [TOKEN_PREFIX, "access_token", KEY, SECRET] {
        assert!(!contains(&bytes, s), "{s:?} is readable in the token cache");
    }

    // A restart (a new process with the same credentials) reuses the cached token.
    call(&provider(cfg, SECRET, clock), &f).await;
    assert_eq!(get(&f.kis.counters.token_calls), 1, "a restart called tokenP again");
    assert_eq!(get(&f.kis.counters.auth_rejections), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_cache_is_discarded_for_exactly_one_new_token_a_minute_after_the_last() {
    let clock = clock();
    let f = fake(clock, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&f, dir.path());
    let path = cfg.token_cache.clone();
    call(&provider(cfg.clone(), SECRET, clock), &f).await;

    // Each kind of bad file replaces the good cache the previous round left.
    type Spoil = fn(&[u8], &str) -> Vec<u8>;
    let cases: [(&str, Spoil); 4] = [
        ("garbage", |_, _| b"\x00\x13not a cache\xff".to_vec()),
        ("truncated", |good, _| good[..good.len() / 2].to_vec()),
        ("a flipped ciphertext bit", |good, _| {
            let mut v: serde_json::Value = serde_json::from_slice(good).unwrap();
            let s = v["sealed"].as_str().unwrap().to_string();
            v["sealed"] = format!("{}{}", if s.starts_with('0') { '1' } else { '0' }, &s[1..]).into();
            v.to_string().into_bytes()
        }),
        ("the old plaintext format", |good, rest_base| {
            let v: serde_json::Value = serde_json::from_slice(good).unwrap();
            format!(
                r#"{{"access_token":"{TOKEN_PREFIX}.plaintextTOKEN","expires_at":"2026-01-20T00:00:00.000Z","issued_at":{},"rest_base":"{rest_base}"}}"#,
                v["issued_at"]
            )
            .into_bytes()
        }),
    ];
    for (what, spoil) in cases {
        let good = std::fs::read(&path).unwrap();
        let bytes = spoil(&good, &f.kis.rest_base());
        let calls = get(&f.kis.counters.token_calls);
        std::fs::write(&path, &bytes).unwrap();
        call(&provider(cfg.clone(), SECRET, clock), &f).await;
        assert_eq!(get(&f.kis.counters.token_calls), calls + 1, "{what}: not exactly one new tokenP call");
        // The fake refuses (EGW00133) a call within a minute of its previous one.
        assert_eq!(get(&f.kis.counters.token_refusals), 0, "{what}: tokenP was called too soon");
        assert_eq!(get(&f.kis.counters.auth_rejections), 0, "{what}");
        let now = std::fs::read(&path).unwrap();
        assert!(!contains(&now, TOKEN_PREFIX) && !contains(&now, "plaintextTOKEN"), "{what}: plaintext left");
        // The new cache is good: a restart reuses it.
        call(&provider(cfg.clone(), SECRET, clock), &f).await;
        assert_eq!(get(&f.kis.counters.token_calls), calls + 1, "{what}: the rewritten cache was not reused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_written_with_another_secret_is_discarded_and_the_issue_time_still_counts() {
    let clock = clock();
    let (old, new) = (fake(clock, SECRET).await, fake(clock, OTHER_SECRET).await);
    let dir = tempfile::tempdir().unwrap();
    call(&provider(config(&old, dir.path()), SECRET, clock), &old).await;
    let path = config(&old, dir.path()).token_cache;
    let issued = header_issued_at(&path);

    // The secret changed (a rotated key pair on another server here). The provider waits a
    // wider interval than KIS's so the check below has room on a loaded machine.
    let wait = Interval::from_millis(90_000);
    let cfg = KisConfig { token_min_interval: wait, ..config(&new, dir.path()) };
    let p = Arc::new(provider(cfg.clone(), OTHER_SECRET, clock));
    let task = {
        let (p, sym) = (p.clone(), new.symbol.clone());
        tokio::spawn(async move { tokio::time::timeout(CALL_TIMEOUT, p.snapshot(&sym)).await })
    };
    clock.sleep_until(issued.plus_millis(KIS_MIN_INTERVAL_MS)).await;
    assert_eq!(get(&new.kis.counters.token_calls), 0, "tokenP was called within a minute of the last issuance");
    task.await.unwrap().expect("the call hung").unwrap();
    assert_eq!(get(&new.kis.counters.token_calls), 1);
    assert!(clock.now() >= issued.plus(wait.get()));

    // The cache now holds the new secret's token: a restart reuses it.
    call(&provider(cfg, OTHER_SECRET, clock), &new).await;
    assert_eq!(get(&new.kis.counters.token_calls), 1);
    assert_eq!(get(&old.kis.counters.token_calls), 1);
}
