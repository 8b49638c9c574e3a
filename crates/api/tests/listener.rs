//! The HTTP listener keeps its limits on the wire: a real listener on 127.0.0.1:0, raw TCP
//! clients, small timeouts so the test stays short (issue 14, part 3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use model::settings::{Checker, Interval, Validate};
use so_api::{HttpConfig, Listener, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

fn config(header_read_ms: u64, idle_ms: u64, max_connections: usize) -> HttpConfig {
    // The shipped limits, with the timeouts and the cap the test needs.
    let mut cfg = shipped();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.header_read_timeout = Interval::from_millis(header_read_ms);
    cfg.idle_timeout = Interval::from_millis(idle_ms);
    cfg.max_connections = max_connections;
    cfg
}

/// The `http:` section of configs/observer.yaml.
fn shipped() -> HttpConfig {
    use figment::providers::{Format, Yaml};
    let yaml = include_str!("../../../configs/observer.yaml");
    figment::Figment::from(Yaml::string(yaml)).extract_inner("http").unwrap()
}

async fn start(cfg: &HttpConfig) -> (Listener, watch::Sender<bool>) {
    let (l, tx, _) = start_counting(cfg).await;
    (l, tx)
}

async fn start_counting(cfg: &HttpConfig) -> (Listener, watch::Sender<bool>, Arc<Stats>) {
    let app = Router::new().route("/health", get(|| async { "ok" }));
    let (tx, rx) = watch::channel(false);
    let stats = Arc::new(Stats::default());
    let l = so_api::serve_app(cfg, app, stats.clone(), rx).await.unwrap();
    (l, tx, stats)
}

/// Reads until the server closes the connection (EOF or reset); everything read.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, &'static str> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.map_err(|_| "still open")?;
    Ok(got)
}

async fn get_health(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
    let got = until_closed(&mut s, Duration::from_secs(5)).await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reproduction: 50 connections each sending half a request head were all still open
/// after 40 s. Now each is closed within the header-read timeout, and the server holds no
/// connection (no file descriptor) afterwards.
#[tokio::test]
async fn half_heads_are_closed_within_the_header_read_timeout() {
    let header_read = Duration::from_millis(300);
    let cfg = config(header_read.as_millis() as u64, 60_000, 64);
    let (l, _stop) = start(&cfg).await;
    let t0 = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(l.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.unwrap();
        clients.push(s);
    }
    wait_for("50 connections accepted", Duration::from_secs(5), || l.accepted() == 50).await;
    let slack = Duration::from_secs(3);
    for s in &mut clients {
        until_closed(s, header_read + slack).await.expect("a half head must be closed by the header-read timeout");
    }
    let elapsed = t0.elapsed();
    assert!(elapsed >= header_read, "closed before the timeout ({elapsed:?}): not the timeout closing them");
    assert!(elapsed < header_read + slack, "took {elapsed:?}");
    wait_for("server side closed", Duration::from_secs(2), || l.open_connections() == 0).await;
    assert_eq!(l.refused(), 0);
    // And the listener still serves.
    assert!(get_health(l.addr).await.starts_with("HTTP/1.1 200"), "health after the attack");
}

/// A connection beyond `max_connections` is accepted and closed at once; once one of the
/// held ones goes, a new client is served.
#[tokio::test]
async fn a_connection_beyond_the_cap_is_closed_at_once() {
    let cap = 4;
    let cfg = config(60_000, 60_000, cap);
    let (l, _stop, stats) = start_counting(&cfg).await;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(TcpStream::connect(l.addr).await.unwrap());
    }
    wait_for("cap reached", Duration::from_secs(5), || l.open_connections() == cap).await;
    let mut extra = TcpStream::connect(l.addr).await.unwrap();
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let got = until_closed(&mut extra, Duration::from_secs(2)).await.expect("the connection beyond the cap is closed");
    assert!(got.is_empty(), "served beyond the cap: {}", String::from_utf8_lossy(&got));
    assert_eq!(l.refused(), 1);
    // …and /metrics says so.
    let metrics = stats.prometheus();
    for line in [
        "stock_observer_http_connections_refused_total 1",
        &format!("stock_observer_http_connections_open {cap}"),
        &format!("stock_observer_http_connections_accepted_total {cap}"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} not in {metrics}");
    }
    drop(held.pop());
    wait_for("a permit back", Duration::from_secs(5), || l.open_connections() == cap - 1).await;
    assert!(get_health(l.addr).await.starts_with("HTTP/1.1 200"));
}

/// A keep-alive connection that moves no byte for `idle_timeout` is closed, even though the
/// header-read timeout is far away.
#[tokio::test]
async fn an_idle_connection_is_closed() {
    let idle = Duration::from_millis(300);
    let cfg = config(60_000, idle.as_millis() as u64, 8);
    let (l, _stop) = start(&cfg).await;
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let t0 = Instant::now();
    let got = until_closed(&mut s, idle + Duration::from_secs(3)).await.expect("idle connection closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "served first");
    assert!(t0.elapsed() >= idle);
    wait_for("server side closed", Duration::from_secs(2), || l.open_connections() == 0).await;
}

/// A declared body over `max_body_bytes` answers 413; a head over `max_request_head_bytes`
/// is refused (431) rather than buffered.
#[tokio::test]
async fn bodies_and_heads_are_bounded() {
    let cfg = config(5_000, 5_000, 8);
    let (l, _stop) = start(&cfg).await;
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    let big = cfg.max_body_bytes + 1;
    s.write_all(
        format!("GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {big}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let got = until_closed(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&got));

    let mut s = TcpStream::connect(l.addr).await.unwrap();
    let filler = "a".repeat(cfg.max_request_head_bytes);
    let _ = s.write_all(format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {filler}\r\n\r\n").as_bytes()).await;
    let got = until_closed(&mut s, Duration::from_secs(5)).await.unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 431"), "{got}");
    assert!(!got.starts_with("HTTP/1.1 200"));
}

/// Stopping closes the listener: no new connection is served.
#[tokio::test]
async fn stop_closes_the_listener() {
    let cfg = config(5_000, 5_000, 8);
    let (l, stop) = start(&cfg).await;
    assert!(get_health(l.addr).await.starts_with("HTTP/1.1 200"));
    stop.send(true).unwrap();
    let t0 = Instant::now();
    loop {
        match TcpStream::connect(l.addr).await {
            Err(_) => break,
            Ok(mut s) => {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
                if until_closed(&mut s, Duration::from_secs(1)).await.is_ok_and(|g| g.is_empty()) {
                    break;
                }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still serving after stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn problems(cfg: &HttpConfig) -> Vec<String> {
    let mut c = Checker::default();
    c.section("http", |c| cfg.validate(c));
    c.problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn the_shipped_limits_are_valid() {
    assert_eq!(problems(&shipped()), Vec::<String>::new());
}

#[test]
fn non_loopback_listen_needs_allow_remote() {
    let mut cfg = shipped();
    for addr in ["0.0.0.0:9464", "[::]:9464", "192.168.0.10:9464"] {
        cfg.listen = addr.parse().unwrap();
        cfg.allow_remote = false;
        let p = problems(&cfg);
        assert_eq!(p.len(), 1, "{addr}: {p:?}");
        assert!(p[0].starts_with("http.listen: "), "{}", p[0]);
        assert!(p[0].contains("no authentication") && p[0].contains("http.allow_remote"), "{}", p[0]);
        cfg.allow_remote = true;
        assert_eq!(problems(&cfg), Vec::<String>::new(), "{addr} with allow_remote");
    }
    for addr in ["127.0.0.1:9464", "[::1]:9464", "[::ffff:127.0.0.1]:9464"] {
        cfg.listen = addr.parse().unwrap();
        cfg.allow_remote = false;
        assert_eq!(problems(&cfg), Vec::<String>::new(), "{addr}");
    }
    // A disabled listener is not checked.
    cfg.listen = "0.0.0.0:9464".parse().unwrap();
    cfg.enabled = false;
    assert_eq!(problems(&cfg), Vec::<String>::new());
}

#[test]
fn limits_are_range_checked_by_key() {
    let mut cfg = shipped();
    cfg.max_connections = 0;
    cfg.max_request_head_bytes = 100; // hyper would panic below 8192
    cfg.max_body_bytes = usize::MAX;
    let p = problems(&cfg);
    for key in ["http.max_connections", "http.max_request_head_bytes", "http.max_body_bytes"] {
        assert!(p.iter().any(|m| m.starts_with(&format!("{key}: "))), "{key} not named in {p:?}");
    }
}
