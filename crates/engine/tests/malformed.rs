//! A frame the parser cannot read is kept in the raw archive and reported with its
//! evidence; the frames after it are processed as usual.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use model::{Clock, Provider, RawFrame, RawFrameKind, SessionId, UtcTime};
use providers::kis::{KisConfig, KisCredentials, KisProvider};
use providers::sim::SimConfig;
use so_engine::EngineConfig;
use so_engine::observer::ObserverCore;
use so_engine::pipeline::{Events, FrameProcessor};
use so_engine::router::{Route, Router};
use so_engine::sink::Sink;
use so_engine::stats::Stats;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_archived_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = UtcTime::from_kst("2026-01-14T10:00:00".parse().unwrap());
    let clock = Clock::simulated(t0, 1.0, SimConfig::krx_default().clock_stall_grace.get());
    let session = SessionId::starting_at(t0);
    let stats = Arc::new(Stats::default());
    let acfg = archive::ArchiveConfig::default();
    let (sink, _) = Sink::start(dir.path().to_path_buf(), &acfg, t0, &session, 1024, stats.clone()).unwrap();
    let creds = KisCredentials::new("k".to_string().into(), "s".to_string().into());
    let provider = Arc::new(KisProvider::new(KisConfig::default(), creds, clock).unwrap());
    // The observer and calendar sections as configs/observer.yaml sets them.
    let EngineConfig { observer: ocfg, calendar: cal, .. } = common::default_config();
    let events = Events {
        sink: sink.handle.clone(),
        provider: Provider::Kis,
        session: session.clone(),
        stats: stats.clone(),
        mitigation: Arc::default(),
        tap: None,
    };
    let core_stats = stats.clone();
    let core = move || ObserverCore::new(&ocfg, &cal, session.clone(), "kis/1", Arc::default(), core_stats.clone());
    let router = Router::new(providers::mapper(Provider::Kis).unwrap(), Box::new(core));
    let mut p = FrameProcessor::new(provider, router, events, Arc::new(AtomicU64::new(0)));
    let garbage = "0|H0STCNT0|002|005930^100000^not-a-price";
    let frame = |text: &str| RawFrame {
        provider: Provider::Kis,
        kind: RawFrameKind::Ws,
        channel: "ws".into(),
        frame: text.into(),
        receive_time: t0,
    };
    let mut passed = Vec::new();
    p.process(Route::Stream, &frame(garbage), &mut passed).await.unwrap();
    assert!(passed.is_empty());
    p.process(Route::Stream, &frame("{\"header\":{\"tr_id\":\"PINGPONG\"}}"), &mut passed).await.unwrap();
    // A well-formed record for a symbol the stream never asked for (on plain ws:// anyone
    // can inject one) is refused with a counted reason; a subscribed symbol's passes.
    // The stream's (archived) subscribe request is what admits a symbol.
    let sent = RawFrame {
        kind: RawFrameKind::Sent,
        frame: r#"{"header":{"approval_key":"***","custtype":"P","tr_type":"1","content-type":"utf-8"},"body":{"input":{"tr_id":"H0STCNT0","tr_key":"005930"}}}"#.into(),
        ..frame("")
    };
    p.process(Route::Stream, &sent, &mut passed).await.unwrap();
    let record = |code: &str| {
        format!(
            "0|H0STCNT0|001|{code}^100000^71900^5^-100^-0.14^72023.83^72100^72400^71700^71900^71800^1^3052507^219853241700^5105^6937^1832^84.90^1366314^1159996^1^0.39^20.28^090020^5^-200^090820^5^-500^092619^2^200^20260114^20^N^65945^216924^1118750^2199206^0.05^2424142^125.92^0^^72100^2"
        )
    };
    p.process(Route::Stream, &frame(&record("000660")), &mut passed).await.unwrap();
    assert!(passed.is_empty(), "{passed:?}");
    p.process(Route::Stream, &frame(&record("005930")), &mut passed).await.unwrap();
    assert!(passed.iter().all(|r| r.body.symbol().as_str() == "005930") && !passed.is_empty(), "{passed:?}");
    drop(p);
    sink.close(t0.plus_millis(1000)).await.unwrap();

    let raw = std::fs::read_to_string(dir.path().join("raw/kis/20260114/10.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = raw.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "every frame archived, the bad one first");
    assert_eq!(lines[0]["frame"], garbage);
    let events = std::fs::read_to_string(dir.path().join("system/events/kis/20260114.jsonl")).unwrap();
    let rejected: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(rejected["event_type"], "record_rejected");
    assert_eq!(rejected["stage"], "normalize");
    assert!(rejected["evidence"].as_str().unwrap().contains("not-a-price"), "{rejected}");
    let injected: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["stage"] == "subscription")
        .collect();
    assert_eq!(injected.len(), 2, "the trade and its quote: {injected:?}");
    assert!(injected.iter().all(|e| e["symbol"] == "000660"), "{injected:?}");
    let s = stats.snapshot();
    assert_eq!((s.frames_received, s.frames_malformed), (5, 1));
    assert_eq!(s.rejected_unsubscribed, 2);
    assert_eq!(s.events_normalized, s.events_passed + s.rejected_validate + s.rejected_guard + s.rejected_unsubscribed);
}
