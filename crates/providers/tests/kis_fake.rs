//! The KIS adapter against the fake server on loopback, with injected faults. Market time
//! runs on an accelerated sim clock so minutes of protocol fit in seconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::settings::Interval;
use model::{Clock, MarketEvent, RawFrame, RawFrameKind, Symbol, UtcTime};
use so_providers::kis::fake::{self, Counters, FakeKis, FakeKisConfig, FaultSwitch};
use so_providers::kis::{KisConfig, KisCredentials, KisEnv, KisProvider, PerEnv, RegState};
use so_providers::sim::{SimConfig, SimMarket};
use so_providers::{MarketProvider, ProviderError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const KEY: &str = "PSxKEYx0123456789abcdefghijklmnopqrs";
const SECRET: &str = "SECRETxVALUEx9876543210zyxwvutsrqponmlkjihgfedcba";

struct Env {
    fake: FakeKis,
    faults: FaultSwitch,
    clock: Clock,
    market: Arc<Mutex<SimMarket>>,
    dir: tempfile::TempDir,
}

fn origin() -> UtcTime {
    // Wednesday 2026-01-14 10:00 KST, mid-session.
    UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap()
}

async fn start(speed: f64, tweak: impl FnOnce(&mut FakeKisConfig)) -> Env {
    // Twelve generated symbols and none of the real large caps: the tests count symbols.
    let sim = SimConfig { symbols: 12, trades_per_second: 4.0, large_caps: vec![], ..SimConfig::krx_default() };
    let market = SimMarket::new(&sim, origin().kst().date());
    let market = Arc::new(Mutex::new(market));
    let clock = Clock::simulated(origin(), speed, sim.clock_stall_grace.get());
    let mut cfg = FakeKisConfig::new(KisEnv::Real, KEY, SECRET);
    tweak(&mut cfg);
    let faults = FaultSwitch::new();
    let fake = fake::serve(cfg, market.clone(), clock, faults.clone()).await.unwrap();
    Env { fake, faults, clock, market, dir: tempfile::tempdir().unwrap() }
}

impl Env {
    fn config(&self) -> KisConfig {
        KisConfig {
            enabled: true,
            rest_base: Some(self.fake.rest_base()),
            ws_base: Some(self.fake.ws_base()),
            master_base: self.fake.master_base(),
            token_cache: self.dir.path().join("kis_token.json"),
            ws_idle_timeout: Interval::from_millis(30_000),
            request_timeout: Interval::from_millis(5_000),
            ..KisConfig::default()
        }
    }
    fn provider(&self, cfg: KisConfig) -> Arc<KisProvider> {
        let creds = KisCredentials::new(KEY.to_string().into(), SECRET.to_string().into());
        Arc::new(KisProvider::new(cfg, creds, self.clock).unwrap())
    }
    fn symbols(&self, n: usize) -> Vec<Symbol> {
        self.market.lock().unwrap().listings().iter().take(n).map(|l| l.symbol.clone()).collect()
    }
    fn c(&self) -> &Counters {
        &self.fake.counters
    }
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    Counters::get(c)
}

/// A running `stream` call and everything it has put into `out`.
struct Run {
    task: JoinHandle<Result<(), ProviderError>>,
    stop: watch::Sender<bool>,
    /// Ends when the stream drops its sender, after every frame it sent is in `frames`.
    collector: JoinHandle<()>,
}

fn run(p: &Arc<KisProvider>, subs: watch::Receiver<Vec<Symbol>>, frames: Arc<Mutex<Vec<RawFrame>>>) -> Run {
    let (tx, mut rx) = mpsc::channel::<RawFrame>(10_000);
    let (stop, stop_rx) = watch::channel(false);
    let sink = frames.clone();
    let collector = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            sink.lock().unwrap().push(f);
        }
    });
    let p = p.clone();
    let task = tokio::spawn(async move { p.stream(subs, tx, stop_rx).await });
    Run { task, stop, collector }
}

fn data_frames(frames: &Mutex<Vec<RawFrame>>) -> usize {
    frames.lock().unwrap().iter().filter(|f| f.kind == RawFrameKind::Ws && f.frame.starts_with('0')).count()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn ended(r: Run) -> ProviderError {
    let res = tokio::time::timeout(Duration::from_secs(20), r.task).await.expect("stream did not end").unwrap();
    r.collector.await.unwrap();
    match res {
        Err(e @ ProviderError::StreamEnded { .. }) => e,
        other => panic!("expected StreamEnded, got {other:?}"),
    }
}

/// Calls `stream` again until a session delivers data (the engine's retry loop in small).
async fn reconnect(
    p: &Arc<KisProvider>,
    subs: &watch::Receiver<Vec<Symbol>>,
    frames: &Arc<Mutex<Vec<RawFrame>>>,
) -> Run {
    for _ in 0..10 {
        let before = data_frames(frames);
        let r = run(p, subs.clone(), frames.clone());
        for _ in 0..200 {
            if data_frames(frames) > before || r.task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !r.task.is_finished() {
            return r;
        }
        let _ = r.task.await;
        let _ = r.collector.await;
    }
    panic!("no session delivered data after 10 attempts");
}

async fn stop(r: Run) {
    r.stop.send(true).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), r.task).await.unwrap().unwrap();
    r.collector.await.unwrap();
    assert!(res.is_ok(), "{res:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_parsed_trades_and_books_then_stops_cleanly() {
    let env = start(20.0, |_| {}).await;
    // Both symbols get their full books beside their trades.
    let p = env.provider(KisConfig { orderbook_slots: 2, ..env.config() });
    let syms = env.symbols(2);
    let (_tx, subs) = watch::channel(syms.clone());
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs, frames.clone());
    wait_for("ticks and quotes", || {
        let f = frames.lock().unwrap();
        let evs: Vec<_> = f.iter().flat_map(|f| p.parse(f).unwrap()).collect();
        evs.iter().any(|(_, e)| matches!(e, MarketEvent::Tick(_)))
            && evs.iter().any(|(_, e)| matches!(e, MarketEvent::Quote(_)))
    })
    .await;
    assert!(p.registrations().iter().all(|(_, s)| *s == RegState::Confirmed), "{:?}", p.registrations());
    stop(r).await;
    let f = frames.lock().unwrap();
    assert_eq!(f.first().unwrap().kind, RawFrameKind::Open);
    assert_eq!(f.last().unwrap().kind, RawFrameKind::Close);
    let sent: Vec<_> = f.iter().filter(|f| f.kind == RawFrameKind::Sent && f.frame.contains("tr_type")).collect();
    assert_eq!(sent.len(), 4, "CNT + ASP for two symbols");
    // Every received symbol is one we asked for; PINGPONG was echoed.
    for (_, e) in f.iter().flat_map(|x| p.parse(x).unwrap()) {
        assert!(syms.contains(e.symbol()));
    }
    assert!(get(&env.c().pongs_received) >= 1 || get(&env.c().pings_sent) == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_is_reported_nothing_received_is_lost_and_reconnect_restores_all() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_tx, subs) = watch::channel(env.symbols(3));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs.clone(), frames.clone());
    wait_for("data", || data_frames(&frames) >= 3).await;
    env.faults.drop_connections();
    let e = ended(r).await;
    assert!(e.to_string().contains("stream ended"), "{e}");
    // Everything the server sent before the cut reached `out`.
    assert_eq!(data_frames(&frames) as u64, get(&env.c().ws_data_frames_sent));
    assert_eq!(frames.lock().unwrap().last().unwrap().kind, RawFrameKind::Close);
    let subs_before = get(&env.c().subscribe_ok);
    let r = reconnect(&p, &subs, &frames).await;
    // One H0STCNT0 per symbol (no books by default: trades carry the level-1 quote).
    assert_eq!(get(&env.c().subscribe_ok) - subs_before, 3, "all registrations restored");
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_detected_by_the_idle_timeout_and_recovered() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_tx, subs) = watch::channel(env.symbols(2));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs.clone(), frames.clone());
    wait_for("data", || data_frames(&frames) >= 2).await;
    env.faults.set_stall(true);
    let e = ended(r).await;
    assert!(e.to_string().contains("nothing received"), "{e}");
    env.faults.set_stall(false);
    let r = reconnect(&p, &subs, &frames).await;
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_ends_the_session_without_being_held() {
    // Anyone on the plain ws:// path can send one; tungstenite's default would buffer 64 MiB.
    let env = start(20.0, |_| {}).await;
    let limit = 64 * 1024;
    let p = env.provider(KisConfig { ws_max_message_bytes: limit, ..env.config() });
    let (_tx, subs) = watch::channel(env.symbols(2));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs.clone(), frames.clone());
    wait_for("data", || data_frames(&frames) >= 2).await;
    env.faults.oversize_next_frames(1, 4 * limit as u32);
    let e = ended(r).await;
    assert!(e.to_string().contains("too long") || e.to_string().contains("limit"), "{e}");
    assert!(frames.lock().unwrap().iter().all(|f| f.frame.len() <= limit), "an oversized frame reached the pipeline");
    // The next session is fine.
    let r = reconnect(&p, &subs, &frames).await;
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_data_keeps_the_session_alive_on_heartbeats() {
    // Stale, not dead: the adapter's idle timeout must not fire while PINGPONG flows, so
    // the engine's watchdog (which judges data) is what notices.
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_tx, subs) = watch::channel(env.symbols(2));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs, frames.clone());
    wait_for("data", || data_frames(&frames) >= 2).await;
    env.faults.withhold_data(true);
    let (pings, data) = (get(&env.c().pings_sent), data_frames(&frames));
    // Three idle timeouts' worth of market time (20x: 3 × 60 s = 9 s wall).
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(!r.task.is_finished(), "the session must stay up on heartbeats alone");
    assert!(get(&env.c().pings_sent) > pings, "heartbeats kept flowing");
    assert!(data_frames(&frames) <= data + 1, "no market data while withheld");
    env.faults.withhold_data(false);
    wait_for("data again", || data_frames(&frames) > data + 1).await;
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_only_sessions_register_no_order_books() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    p.set_trades_only(true);
    let (_tx, subs) = watch::channel(env.symbols(2));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs, frames.clone());
    wait_for("trades", || data_frames(&frames) >= 2).await;
    stop(r).await;
    let f = frames.lock().unwrap();
    let sent: Vec<_> = f.iter().filter(|f| f.kind == RawFrameKind::Sent && f.frame.contains("tr_type")).collect();
    assert_eq!(sent.len(), 2, "one H0STCNT0 per symbol, no H0STASP0");
    assert!(sent.iter().all(|f| f.frame.contains("H0STCNT0")), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_malformed_frames_are_malformed_and_the_stream_goes_on() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_tx, subs) = watch::channel(env.symbols(2));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs, frames.clone());
    wait_for("data", || data_frames(&frames) >= 1).await;
    env.faults.tear_next_frames(1);
    env.faults.corrupt_next_frames(1);
    let n = data_frames(&frames);
    wait_for("good data after the bad frames", || data_frames(&frames) >= n + 5).await;
    assert!(!r.task.is_finished());
    let f = frames.lock().unwrap().clone();
    let bad: Vec<_> = f.iter().filter_map(|x| p.parse(x).err()).collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    for e in &bad {
        let ProviderError::Malformed { frame, .. } = e else { panic!("{e:?}") };
        assert!(f.iter().any(|x| &x.frame == frame), "evidence is the frame");
    }
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_reported_then_recovered() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_tx, subs) = watch::channel(env.symbols(1));
    env.faults.refuse_connections_until(env.clock.now().plus(Duration::from_secs(40)));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let e = ended(run(&p, subs.clone(), frames.clone())).await;
    assert!(e.to_string().contains("connect"), "{e}");
    assert!(get(&env.c().ws_refused) >= 1);
    env.clock.sleep(Duration::from_secs(41)).await;
    let r = reconnect(&p, &subs, &frames).await;
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_back_off_and_reported_when_persistent() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let sym = &env.symbols(1)[0];
    env.faults.fail_next_requests(503, 2);
    let (frame, snap) = p.inquire_price(sym).await.unwrap();
    assert_eq!(&snap.symbol, sym);
    assert_eq!(frame.channel, "FHKST01010100");
    assert_eq!(get(&env.c().injected_failures), 2);
    env.faults.fail_next_requests(429, 1000);
    let p2 = env.provider(KisConfig { max_retries: 2, ..env.config() });
    let err = p2.snapshot(sym).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 429"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_cached_reused_and_reissued_after_expiry() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let sym = &env.symbols(1)[0];
    p.snapshot(sym).await.unwrap();
    p.snapshot(sym).await.unwrap();
    assert_eq!(get(&env.c().token_calls), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.dir.path().join("kis_token.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second process reuses the cached token instead of calling tokenP.
    let other = env.provider(env.config());
    other.snapshot(sym).await.unwrap();
    assert_eq!(get(&env.c().token_calls), 1);
    env.faults.expire_tokens();
    p.snapshot(sym).await.unwrap();
    assert_eq!(get(&env.c().expired_token_rejections), 1);
    assert_eq!(get(&env.c().tokens_issued), 2);
    // The reissue waited out KIS's 1/min rule instead of being refused.
    assert_eq!(get(&env.c().token_refusals), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_calls_never_exceeds_the_rate_at_the_fake() {
    // At 10x, 1000 calls at 18/s take ~5.6 s of wall time; one call takes far less than the
    // 55 ms of market time between starts, so the limiter is what paces them.
    let env = start(10.0, |_| {}).await;
    let p = env.provider(env.config());
    let sym = env.symbols(1)[0].clone();
    p.snapshot(&sym).await.unwrap();
    let t0 = env.clock.now();
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let (p, s) = (p.clone(), sym.clone());
            tokio::spawn(async move { p.snapshot(&s).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let secs = env.clock.now().millis_since(t0) as f64 / 1000.0;
    assert_eq!(get(&env.c().rate_rejections), 0);
    assert_eq!(get(&env.c().rest_ok), 1001);
    // Arrivals per calendar second are a looser diagnostic: a few ms of wall-clock scheduling
    // jitter (a new pooled connection, a busy core) is 10x longer in market time and bunches
    // requests at a second boundary; the bucket above, like KIS's, absorbs that.
    assert!(get(&env.c().max_per_second) <= 2 * 18, "max {} in one second", get(&env.c().max_per_second));
    assert!(secs >= 999.0 / 18.0 * 0.95, "finished in {secs} market seconds: the limiter did not bind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egw00201_is_penalized_and_retried() {
    let env = start(10.0, |c| c.rate_per_second = 5.0).await;
    let cfg = KisConfig { rate_per_second: PerEnv { real: 50.0, mock: 1.0 }, max_retries: 20, ..env.config() };
    let p = env.provider(cfg);
    let sym = env.symbols(1)[0].clone();
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let (p, s) = (p.clone(), sym.clone());
            tokio::spawn(async move { p.snapshot(&s).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert!(get(&env.c().rate_rejections) > 0, "the fake never pushed back");
    assert_eq!(get(&env.c().rest_ok), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_cap_is_enforced_by_the_adapter_and_refusals_fail_registrations() {
    let env = start(20.0, |c| c.max_registrations = 3).await;
    // Adapter cap 4 below 6 wanted (3 trades, then 3 books): the adapter never sends the
    // 5th and 6th, and the server refuses the 4th.
    let p = env.provider(KisConfig { max_registrations: 4, orderbook_slots: 3, ..env.config() });
    let (tx, subs) = watch::channel(env.symbols(3));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs, frames.clone());
    wait_for("replies", || p.registrations().iter().filter(|(_, s)| *s != RegState::Pending).count() == 6).await;
    let regs = p.registrations();
    let failed: Vec<_> = regs.iter().filter(|(_, s)| matches!(s, RegState::Failed(_))).collect();
    // 2 failed in the adapter (cap 4), 1 refused by the server (cap 3) with MAX SUBSCRIBE OVER:
    // all books, never a symbol's trades.
    assert_eq!(failed.len(), 3, "{regs:?}");
    assert!(failed.iter().all(|(r, _)| r.tr_id == "H0STASP0"), "{regs:?}");
    assert!(failed.iter().any(|(_, s)| matches!(s, RegState::Failed(m) if m.contains("OPSP0008"))));
    assert_eq!(get(&env.c().subscribe_over_limit), 1);
    // Dropping to one symbol unsubscribes the rest.
    let first = env.symbols(1);
    tx.send(first.clone()).unwrap();
    wait_for("unsubscribes", || p.registrations().len() == 2).await;
    let f = frames.lock().unwrap().clone();
    assert!(f.iter().any(|x| x.kind == RawFrameKind::Sent && x.frame.contains(r#""tr_type":"2""#)));
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_websocket_per_app_key() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_tx, subs) = watch::channel(env.symbols(1));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs.clone(), frames.clone());
    wait_for("data", || data_frames(&frames) >= 1).await;
    let (tx2, _rx2) = mpsc::channel(10);
    let (_s, stop2) = watch::channel(false);
    let e = p.stream(subs, tx2, stop2).await.unwrap_err();
    assert!(e.to_string().contains("already open"), "{e}");
    assert_eq!(get(&env.c().ws_in_use), 0, "the adapter refused before the server had to");
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universe_comes_from_the_master_files_with_previous_close() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let u = p.universe(origin().kst().date()).await.unwrap();
    let m = env.market.lock().unwrap().clone();
    assert_eq!(u.len(), m.len());
    for (e, l) in u.iter().zip(m.listings()) {
        assert_eq!((&e.symbol, &e.name, e.prev_close), (&l.symbol, &l.name, l.prev_close));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_rest_calls() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let (_, rank) = p.volume_rank().await.unwrap();
    assert_eq!(rank.len(), 12);
    assert!(rank.windows(2).all(|w| w[0].volume >= w[1].volume));
    // Real-only calls are refused on the mock domain without a request.
    let mock = env.provider(KisConfig { env: KisEnv::Mock, ..env.config() });
    assert!(mock.volume_rank().await.unwrap_err().to_string().contains("mock"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_leak() {
    let env = start(20.0, |_| {}).await;
    let p = env.provider(env.config());
    let creds = KisCredentials::new(KEY.to_string().into(), SECRET.to_string().into());
    for text in [format!("{creds:?}"), format!("{p:?}")] {
        assert!(!text.contains(KEY) && !text.contains(SECRET), "{text}");
    }
    // Wrong secret: the error names the problem, not the values.
    let bad = KisProvider::new(
        env.config(),
        KisCredentials::new(KEY.to_string().into(), "WRONG-SECRET-123".to_string().into()),
        env.clock,
    )
    .unwrap();
    let e = bad.snapshot(&env.symbols(1)[0]).await.unwrap_err().to_string();
    assert!(!e.contains(KEY) && !e.contains("WRONG-SECRET-123"), "{e}");
    // Archived frames (Sent included) carry neither credentials nor the approval key.
    let (_tx, subs) = watch::channel(env.symbols(2));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let r = run(&p, subs, frames.clone());
    wait_for("data", || data_frames(&frames) >= 1).await;
    stop(r).await;
    let f = frames.lock().unwrap().clone();
    let sent: Vec<_> = f.iter().filter(|x| x.kind == RawFrameKind::Sent && x.frame.contains("approval_key")).collect();
    assert!(!sent.is_empty());
    for x in f.iter() {
        assert!(!x.frame.contains(KEY) && !x.frame.contains(SECRET), "{}", x.frame);
    }
    for x in sent {
        assert!(x.frame.contains(r#""approval_key":"***""#), "{}", x.frame);
    }
    p.snapshot(&env.symbols(1)[0]).await.unwrap();
    let cache = std::fs::read_to_string(env.dir.path().join("kis_token.json")).unwrap();
    assert!(!cache.contains(KEY) && !cache.contains(SECRET));
}
