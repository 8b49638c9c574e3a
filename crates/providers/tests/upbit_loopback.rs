//! The Upbit adapter against the fake on loopback: REST pacing and 429/418, every injected
//! fault reported and recovered, nothing already received lost.

// Named `upbit::…` so `cargo test -p so-providers upbit` selects these tests.
mod upbit {

    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use model::settings::Interval;
    use model::{Clock, MarketEvent, RawFrame, RawFrameKind, Symbol, UtcTime};
    use so_providers::sim::SimConfig;
    use so_providers::upbit::fake::{self, FakeConfig, FakeUpbit};
    use so_providers::upbit::{SubState, UpbitConfig, UpbitProvider, WsFormat};
    use so_providers::{MarketProvider, ProviderError};
    use tokio::sync::{mpsc, watch};

    const SPEED: f64 = 10.0;

    fn clock_at(speed: f64) -> Clock {
        Clock::simulated(
            UtcTime::parse("2026-01-14T03:00:00.000Z").unwrap(),
            speed,
            SimConfig::krx_default().clock_stall_grace.get(),
        )
    }

    async fn setup(format: WsFormat) -> (FakeUpbit, Arc<UpbitProvider>, Clock) {
        setup_at(format, SPEED).await
    }

    async fn setup_at(format: WsFormat, speed: f64) -> (FakeUpbit, Arc<UpbitProvider>, Clock) {
        let clock = clock_at(speed);
        let fake = fake::serve(FakeConfig::default(), clock).await.unwrap();
        let cfg = UpbitConfig {
            enabled: true,
            rest_base: fake.rest_base(),
            ws_base: fake.ws_url(),
            format,
            keepalive: Interval::from_millis(5_000),
            stall_timeout: Interval::from_millis(12_000),
            ..UpbitConfig::default()
        };
        let p = Arc::new(UpbitProvider::new(cfg, clock).unwrap());
        (fake, p, clock)
    }

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    struct Running {
        subs: watch::Sender<Vec<Symbol>>,
        stop: watch::Sender<bool>,
        rx: mpsc::Receiver<RawFrame>,
        task: tokio::task::JoinHandle<Result<(), ProviderError>>,
    }

    fn start(p: &Arc<UpbitProvider>, symbols: &[&str]) -> Running {
        let (subs, subs_rx) = watch::channel(symbols.iter().map(|s| sym(s)).collect());
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel(100_000);
        let p2 = p.clone();
        let task = tokio::spawn(async move { p2.stream(subs_rx, tx, stop_rx).await });
        Running { subs, stop, rx, task }
    }

    /// Receives until `n` WS data frames arrived (or 20 s wall).
    async fn collect_ws(r: &mut Running, n: usize, into: &mut Vec<RawFrame>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut got = 0;
        while got < n {
            match tokio::time::timeout_at(deadline, r.rx.recv()).await {
                Ok(Some(f)) => {
                    if f.kind == RawFrameKind::Ws && !f.frame.contains("\"status\"") {
                        got += 1;
                    }
                    into.push(f);
                }
                _ => panic!(
                    "only {got} of {n} data frames arrived; frames: {:?}",
                    into.iter().rev().take(3).collect::<Vec<_>>()
                ),
            }
        }
    }

    async fn ended(r: Running, frames: &mut Vec<RawFrame>) -> Result<(), ProviderError> {
        let Running { mut rx, task, .. } = r;
        let res = tokio::time::timeout(Duration::from_secs(20), task).await.expect("stream did not end").unwrap();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        res
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshot_universe_and_typed_rest() {
        let (fake, p, _clock) = setup(WsFormat::Default).await;
        let f = p.snapshot(&sym("KRW-BTC")).await.unwrap();
        assert_eq!(f.kind, RawFrameKind::Rest);
        let ev = p.parse(&f).unwrap();
        let MarketEvent::Snapshot(s) = &ev[0].1 else { panic!("{ev:?}") };
        assert!(s.prev_close.0 > 100_000_000.into());
        let uni = p.universe(jiff::civil::date(2026, 1, 14)).await.unwrap();
        assert!(uni.len() >= 10 && uni.iter().all(|u| u.symbol.as_str().starts_with("KRW-")));
        let listed = p.listed_with_tickers().await.unwrap();
        assert!(listed.iter().all(|(_, t)| t.acc_trade_price_24h > 0.into()));
        assert!(matches!(p.snapshot(&sym("KRW-NOPE")).await, Err(ProviderError::UnknownSymbol(_))));
        assert_eq!(fake.counters.rest_429.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_1000_rest_calls_stays_under_the_limit() {
        // A slower clock than the other tests: the fake stamps arrivals when its handler
        // runs, and on a loaded 2-core machine a 10x clock turns scheduling delay into
        // bunched arrivals that the real server (stamping at the socket) would not see.
        let (fake, p, _clock) = setup_at(WsFormat::Default, 5.0).await;
        let btc = sym("KRW-BTC");
        let mut calls = Vec::new();
        for _ in 0..1000 {
            let (p, btc) = (p.clone(), btc.clone());
            calls.push(tokio::spawn(async move { p.snapshot(&btc).await.map(|_| ()) }));
        }
        let mut failed = Vec::new();
        for c in calls {
            if let Err(e) = c.await.unwrap() {
                failed.push(e);
            }
        }
        let c = &fake.counters;
        assert!(failed.is_empty(), "{:?}", failed.first());
        assert_eq!(c.rest_429.load(Ordering::SeqCst), 0);
        assert!(c.rest_max_per_second.load(Ordering::SeqCst) <= 10);
        assert_eq!(c.rest_ok.load(Ordering::SeqCst), 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fake_rejects_excess_like_the_real_server() {
        // Real-time speed, so the requests below all land inside one 1 s window.
        let clock = clock_at(1.0);
        let cfg = FakeConfig { ban_after_violations: 5, ..FakeConfig::default() };
        let fake = fake::serve(cfg, clock).await.unwrap();
        let http = reqwest::Client::new();
        let url = format!("{}/ticker?markets=KRW-BTC", fake.rest_base());
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = http.get(&url).send().await.unwrap();
            statuses.push(r.status().as_u16());
        }
        assert!(statuses.iter().filter(|s| **s == 200).count() <= 10, "{statuses:?}");
        assert!(statuses.contains(&429), "{statuses:?}");
        assert!(statuses.contains(&418), "{statuses:?}");
        let r = http.get(format!("{}/nope", fake.rest_base())).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rest_429_and_5xx_are_retried_and_418_reported() {
        let (fake, p, _clock) = setup(WsFormat::Default).await;
        fake.faults.fail_rest(429, 2);
        p.snapshot(&sym("KRW-BTC")).await.unwrap();
        fake.faults.fail_rest(503, 1);
        p.snapshot(&sym("KRW-BTC")).await.unwrap();
        assert_eq!(fake.counters.rest_injected.load(Ordering::SeqCst), 3);
        fake.faults.fail_rest(500, 100);
        assert!(matches!(p.snapshot(&sym("KRW-BTC")).await, Err(ProviderError::Request { .. })));
        fake.faults.fail_rest(418, 1);
        let e = p.snapshot(&sym("KRW-BTC")).await;
        assert!(matches!(&e, Err(ProviderError::Request { why, .. }) if why.contains("418")), "{e:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_in_both_formats_confirms_subscriptions_and_stops_cleanly() {
        for format in [WsFormat::Default, WsFormat::Simple] {
            let (_fake, p, _clock) = setup(format).await;
            let mut r = start(&p, &["KRW-BTC", "KRW-XRP", "KRW-BOGUS"]);
            let mut frames = Vec::new();
            collect_ws(&mut r, 40, &mut frames).await;
            assert_eq!(frames[0].kind, RawFrameKind::Open);
            assert!(frames.iter().any(|f| f.kind == RawFrameKind::Sent && f.frame.contains("\"ticket\"")));
            let mut kinds = std::collections::HashSet::new();
            for f in frames.iter().filter(|f| f.kind == RawFrameKind::Ws) {
                for (_, e) in p.parse(f).unwrap_or_else(|e| panic!("{e}: {}", f.frame)) {
                    kinds.insert(e.kind());
                }
            }
            assert!(kinds.contains("tick") && kinds.contains("quote") && kinds.contains("snapshot"), "{kinds:?}");
            let states = p.subscription_states();
            assert!(states.contains(&(sym("KRW-BTC"), SubState::Confirmed)), "{states:?}");
            // Changing the set sends a whole new subscription.
            r.subs.send(vec![sym("KRW-ETH")]).unwrap();
            let mut more = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !more.iter().any(|f: &RawFrame| f.kind == RawFrameKind::Ws && f.frame.contains("KRW-ETH")) {
                let f = tokio::time::timeout_at(deadline, r.rx.recv()).await.unwrap().unwrap();
                more.push(f);
            }
            assert!(more.iter().any(|f| f.kind == RawFrameKind::Sent && f.frame.contains("KRW-ETH")));
            r.stop.send(true).unwrap();
            let mut rest = Vec::new();
            assert!(ended(r, &mut rest).await.is_ok());
            assert_eq!(rest.last().map(|f| f.kind), Some(RawFrameKind::Close));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_connection_is_reported_and_recovered() {
        let (fake, p, _clock) = setup(WsFormat::Default).await;
        let mut r = start(&p, &["KRW-BTC"]);
        let mut frames = Vec::new();
        collect_ws(&mut r, 10, &mut frames).await;
        let before = fake.counters.ws_data_frames.load(Ordering::SeqCst);
        fake.faults.drop_connections();
        let res = ended(r, &mut frames).await;
        assert!(matches!(res, Err(ProviderError::StreamEnded { .. })), "{res:?}");
        // Every data frame the server sent before the drop reached the pipeline.
        let received = frames.iter().filter(|f| f.kind == RawFrameKind::Ws).count() as u64;
        assert!(received >= before, "{received} < {before}");
        assert_eq!(frames.last().map(|f| f.kind), Some(RawFrameKind::Close));
        // Calling stream again reconnects and restores the whole subscription.
        let mut r = start(&p, &["KRW-BTC"]);
        let mut again = Vec::new();
        collect_ws(&mut r, 5, &mut again).await;
        assert!(again.iter().any(|f| f.kind == RawFrameKind::Sent && f.frame.contains("KRW-BTC")));
        assert_eq!(fake.counters.ws_connections.load(Ordering::SeqCst), 2);
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_connection_ends_the_stream() {
        let (fake, p, _clock) = setup(WsFormat::Default).await;
        let mut r = start(&p, &["KRW-BTC"]);
        let mut frames = Vec::new();
        collect_ws(&mut r, 5, &mut frames).await;
        fake.faults.set_stall(true);
        let res = ended(r, &mut frames).await;
        assert!(matches!(&res, Err(ProviderError::StreamEnded { why, .. }) if why.contains("no frame")), "{res:?}");
        fake.faults.set_stall(false);
        let mut r = start(&p, &["KRW-BTC"]);
        collect_ws(&mut r, 3, &mut frames).await;
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_and_malformed_frames_are_kept_and_reported() {
        let (fake, p, _clock) = setup(WsFormat::Default).await;
        let mut r = start(&p, &["KRW-BTC"]);
        let mut frames = Vec::new();
        collect_ws(&mut r, 3, &mut frames).await;
        fake.faults.tear_next(1);
        fake.faults.garble_next(1);
        // Frames already on the wire when the faults were switched on arrive first; on a
        // busy machine that can be many, so read until both damaged frames have come.
        let bad = |frames: &[RawFrame]| -> Vec<ProviderError> {
            frames.iter().filter(|f| f.kind == RawFrameKind::Ws).filter_map(|f| p.parse(f).err()).collect()
        };
        for _ in 0..40 {
            collect_ws(&mut r, 5, &mut frames).await;
            if bad(&frames).len() >= 2 {
                break;
            }
        }
        let bad = bad(&frames);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad.iter().all(|e| matches!(e, ProviderError::Malformed { frame, .. } if !frame.is_empty())));
        // The stream carried on past them.
        assert!(!r.task.is_finished());
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_connections_are_reported_until_the_server_accepts_again() {
        let (fake, p, clock) = setup(WsFormat::Default).await;
        fake.faults.refuse_connections_until(clock.now().plus_millis(3_000));
        let r = start(&p, &["KRW-BTC"]);
        let mut frames = Vec::new();
        let res = ended(r, &mut frames).await;
        assert!(matches!(res, Err(ProviderError::StreamEnded { .. })), "{res:?}");
        assert!(fake.counters.ws_refused.load(Ordering::SeqCst) >= 1);
        clock.sleep(Duration::from_millis(3_500)).await;
        let mut r = start(&p, &["KRW-BTC"]);
        collect_ws(&mut r, 3, &mut frames).await;
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fake_validates_subscribe_messages() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (fake, _p, _clock) = setup(WsFormat::Default).await;
        for (req, name) in [
            (r#"{"ticket":"x"}"#, "WRONG_FORMAT"),
            (r#"[{"type":"ticker","codes":["KRW-BTC"]}]"#, "NO_TICKET"),
            (r#"[{"ticket":"x"},{"type":"nope","codes":["KRW-BTC"]}]"#, "INVALID_PARAM"),
            (r#"[{"ticket":"x"},{"type":"ticker"}]"#, "NO_CODES"),
        ] {
            let (mut ws, _) = tokio_tungstenite::connect_async(fake.ws_url()).await.unwrap();
            ws.send(Message::Text(req.into())).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
            let text = String::from_utf8(reply.into_data().to_vec()).unwrap();
            assert!(text.contains(name), "{req} -> {text}");
            let close = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
            assert!(matches!(close, Some(Ok(Message::Close(_))) | None), "{close:?}");
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(fake.ws_url()).await.unwrap();
        ws.send(Message::Text("PING".into())).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert!(reply.is_binary());
        assert_eq!(reply.into_data().as_ref(), br#"{"status":"UP"}"#);
    }
}
