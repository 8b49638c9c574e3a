//! WebSocket: subscribe validation, SNAPSHOT then REALTIME frames, `PING`, idle drops.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::{HeaderValue, StatusCode};
use futures_util::{SinkExt, StreamExt};
use model::UtcTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as WsRequest, Response as WsResponse};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::encode::{Fmt, encode_book, encode_ticker, encode_trade};
use super::faults::{bump, take};
use super::rest::error_body;
use super::{Shared, lock};
use crate::sim::crypto::{CryptoEvent, CryptoMarket};

const WS_PATH: &str = "/websocket/v1";

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let now = shared.clock.now().as_millis();
        if now < shared.faults.refuse_until_ms.load(Ordering::SeqCst) {
            bump(&shared.counters.ws_refused);
            drop(tcp);
            continue;
        }
        let allowed = {
            let mut c = lock(&shared.connects);
            while c.front().is_some_and(|&t| t <= now - 1000) {
                c.pop_front();
            }
            let ok = c.len() < shared.cfg.ws_connect_per_second as usize;
            if ok {
                c.push_back(now);
            }
            ok
        };
        tokio::spawn(connection(tcp, shared.clone(), allowed));
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Sub {
    ticker: bool,
    trade: bool,
    /// Depth when subscribed.
    book: Option<usize>,
}

struct Conn {
    shared: Arc<Shared>,
    fmt: Fmt,
    list: bool,
    subs: HashMap<usize, Sub>,
    sent: VecDeque<i64>,
}

impl Conn {
    fn unwatch_all(&mut self) {
        for (idx, _) in self.subs.drain() {
            self.shared.watch(idx, false);
        }
    }

    fn wrap(&self, msg: String) -> String {
        if self.list { format!("[{msg}]") } else { msg }
    }

    /// Applies the per-connection message limits; false = over the limit.
    fn message_allowed(&mut self, now: i64) -> bool {
        let cfg = &self.shared.cfg;
        while self.sent.front().is_some_and(|&t| t <= now - 60_000) {
            self.sent.pop_front();
        }
        let last_sec = self.sent.iter().filter(|&&t| t > now - 1000).count();
        if last_sec >= cfg.ws_messages_per_second as usize || self.sent.len() >= cfg.ws_messages_per_minute as usize {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

fn ws_error(name: &str, message: &str) -> String {
    format!(r#"{{"error":{{"name":"{name}","message":"{message}"}}}}"#)
}

const TYPES: &[&str] = &[
    "ticker",
    "trade",
    "orderbook",
    "candle.1s",
    "candle.1m",
    "candle.3m",
    "candle.5m",
    "candle.10m",
    "candle.15m",
    "candle.30m",
    "candle.60m",
    "candle.240m",
];

enum Request {
    Subscribe { subs: HashMap<usize, Sub>, snapshot: Vec<(usize, &'static str, usize)>, fmt: Fmt, list: bool },
    List { ticket: String },
}

/// Validates a request like the real server; `Err` is the error frame to send.
fn parse_request(text: &str, m: &CryptoMarket) -> Result<Request, String> {
    let wrong = || ws_error("WRONG_FORMAT", "Format 이 맞지 않습니다.");
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| wrong())?;
    let items = v.as_array().ok_or_else(wrong)?;
    let ticket = items
        .first()
        .and_then(|t| t.get("ticket"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ws_error("NO_TICKET", "티켓이 존재하지 않거나, 유효하지 않습니다."))?;
    let mut fmt = Fmt::Default;
    let mut list = false;
    let mut subs: HashMap<usize, Sub> = HashMap::new();
    let mut snapshot = Vec::new();
    let mut any_type = false;
    for item in &items[1..] {
        let obj = item.as_object().ok_or_else(wrong)?;
        if obj.get("method").and_then(|x| x.as_str()) == Some("LIST_SUBSCRIPTIONS") {
            return Ok(Request::List { ticket: ticket.to_string() });
        }
        if let Some(f) = obj.get("format") {
            (fmt, list) = match f.as_str() {
                Some("DEFAULT") => (Fmt::Default, false),
                Some("SIMPLE") => (Fmt::Simple, false),
                Some("JSON_LIST") => (Fmt::Default, true),
                Some("SIMPLE_LIST") => (Fmt::Simple, true),
                other => {
                    let shown = other.map_or_else(|| f.to_string(), str::to_string);
                    return Err(ws_error("INVALID_PARAM", &format!("{shown} 은 지원하지 않는 포맷입니다.")));
                }
            };
            continue;
        }
        let Some(ty) = obj.get("type") else {
            continue;
        };
        any_type = true;
        let ty = ty.as_str().ok_or_else(wrong)?;
        let ty: &'static str = TYPES
            .iter()
            .find(|t| **t == ty)
            .ok_or_else(|| ws_error("INVALID_PARAM", &format!("{ty} 은 지원하지 않는 타입입니다.")))?;
        let codes = obj.get("codes").ok_or_else(|| ws_error("NO_CODES", "codes 가 존재하지 않습니다."))?;
        let codes = codes.as_array().ok_or_else(wrong)?;
        let flag = |a: &str, b: &str| obj.get(a).or(obj.get(b)).and_then(|x| x.as_bool()).unwrap_or(false);
        let only_snapshot = flag("is_only_snapshot", "isOnlySnapshot");
        let only_realtime = flag("is_only_realtime", "isOnlyRealtime");
        for code in codes {
            let code = code.as_str().ok_or_else(wrong)?;
            let (base, depth) = match code.split_once('.') {
                Some((b, n)) => (b, n.parse::<usize>().ok().filter(|n| [1, 5, 15, 30].contains(n)).unwrap_or(30)),
                None => (code, 30),
            };
            // Lowercase or unknown codes are silently ignored, as the real server does.
            let Some(idx) = m.index_of(base) else { continue };
            if !only_realtime {
                snapshot.push((idx, ty, depth));
            }
            if only_snapshot {
                continue;
            }
            let s = subs.entry(idx).or_default();
            match ty {
                "ticker" => s.ticker = true,
                "trade" => s.trade = true,
                "orderbook" => s.book = Some(depth),
                // Candle streams are accepted but not simulated (no data, like an idle pair).
                _ => {}
            }
        }
    }
    if !any_type {
        return Err(ws_error("NO_TYPE", "type 이 존재하지 않습니다."));
    }
    Ok(Request::Subscribe { subs, snapshot, fmt, list })
}

type WsSink = futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, Message>;

async fn send_data(sink: &mut WsSink, shared: &Shared, text: String) -> bool {
    let f = &shared.faults;
    let bytes: Vec<u8> = if take(&f.malformed_frames) {
        b"\xff\xfe{\"type\":trade,,\x00garbage".to_vec()
    } else if take(&f.torn_frames) {
        let b = text.into_bytes();
        b[..b.len() / 2].to_vec()
    } else {
        text.into_bytes()
    };
    bump(&shared.counters.ws_data_frames);
    sink.send(Message::Binary(bytes.into())).await.is_ok()
}

#[allow(clippy::result_large_err)] // the handshake callback's signature is tungstenite's
async fn connection(tcp: TcpStream, shared: Arc<Shared>, allowed: bool) {
    let callback = |req: &WsRequest, mut resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        let status = if req.uri().path() != WS_PATH {
            Some(StatusCode::NOT_FOUND)
        } else if !allowed {
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else {
            None
        };
        if let Some(status) = status {
            let mut e = ErrorResponse::new(Some(error_body(status.as_u16(), false, status.as_str())));
            *e.status_mut() = status;
            return Err(e);
        }
        resp.headers_mut().insert("remaining-req", HeaderValue::from_static("group=websocket; min=300; sec=3"));
        Ok(resp)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(tcp, callback).await {
        Ok(ws) => ws,
        Err(_) => {
            bump(&shared.counters.ws_connect_rejected);
            return;
        }
    };
    bump(&shared.counters.ws_connections);
    let (mut sink, mut src) = ws.split();
    let mut feed = shared.feed.subscribe();
    let mut dropper = shared.faults.drop_gen.subscribe();
    dropper.mark_unchanged();
    let clock = shared.clock;
    let mut conn =
        Conn { shared: shared.clone(), fmt: Fmt::Default, list: false, subs: HashMap::new(), sent: VecDeque::new() };
    let idle = shared.cfg.idle_timeout.as_millis() as i64;
    let status_every = shared.cfg.status_interval.as_millis() as i64;
    let mut last_traffic = clock.now().as_millis();
    let mut last_status = last_traffic;
    loop {
        let tick = UtcTime::from_millis(clock.now().as_millis() + status_every.min(idle).clamp(10, 1000));
        tokio::select! {
            msg = src.next() => {
                let now = clock.now();
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_))) => {
                        last_traffic = now.as_millis();
                        let _ = sink.flush().await;
                        continue;
                    }
                    Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                last_traffic = now.as_millis();
                bump(&shared.counters.ws_client_messages);
                if !conn.message_allowed(now.as_millis()) {
                    // The docs give the limit but not the reaction; we count and ignore.
                    bump(&shared.counters.ws_message_violations);
                    continue;
                }
                if shared.faults.stall.load(Ordering::SeqCst) {
                    continue;
                }
                if text.trim() == "PING" {
                    bump(&shared.counters.ws_pings);
                    if sink.send(Message::Binary(br#"{"status":"UP"}"#.to_vec().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                let req = {
                    let m = shared.market(now);
                    parse_request(&text, &m)
                };
                match req {
                    Err(frame) => {
                        bump(&shared.counters.ws_subscribe_errors);
                        let _ = sink.send(Message::Binary(frame.into_bytes().into())).await;
                        clock.sleep(shared.cfg.error_close_delay.get()).await;
                        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                    Ok(Request::List { ticket }) => {
                        let mut result = String::from("[");
                        let mut by_type: Vec<(&str, Vec<String>)> = vec![("ticker", vec![]), ("trade", vec![]), ("orderbook", vec![])];
                        {
                            let m = shared.market(now);
                            for (idx, s) in &conn.subs {
                                let code = m.listings()[*idx].symbol.to_string();
                                if s.ticker { by_type[0].1.push(code.clone()); }
                                if s.trade { by_type[1].1.push(code.clone()); }
                                if let Some(d) = s.book { by_type[2].1.push(format!("{code}.{d}")); }
                            }
                        }
                        let mut first = true;
                        for (ty, codes) in by_type.iter().filter(|t| !t.1.is_empty()) {
                            if !first { result.push(','); }
                            first = false;
                            let _ = write!(result, r#"{{"type":"{ty}","codes":{}}}"#, serde_json::json!(codes));
                        }
                        result.push(']');
                        let reply = format!(r#"{{"method":"LIST_SUBSCRIPTIONS","result":{result},"ticket":{}}}"#, serde_json::json!(ticket));
                        if sink.send(Message::Binary(reply.into_bytes().into())).await.is_err() {
                            break;
                        }
                    }
                    Ok(Request::Subscribe { subs, snapshot, fmt, list }) => {
                        bump(&shared.counters.ws_subscribes);
                        // A new request replaces the whole subscription.
                        let old: Vec<usize> = conn.subs.keys().copied().collect();
                        for idx in subs.keys() {
                            shared.watch(*idx, true);
                        }
                        for idx in old {
                            shared.watch(idx, false);
                        }
                        conn.subs = subs;
                        conn.fmt = fmt;
                        conn.list = list;
                        let mut frames = Vec::new();
                        {
                            let mut m = shared.market(now);
                            for (idx, ty, depth) in snapshot {
                                let pc = m.listings()[idx].prev_close;
                                match ty {
                                    "ticker" => if let Some(st) = m.stats(idx, now) {
                                        frames.push(encode_ticker(&st, fmt, "SNAPSHOT", now));
                                    },
                                    "trade" => if let Some(t) = m.stats(idx, now).and_then(|s| s.last_trade) {
                                        frames.push(encode_trade(&t, pc, fmt, "SNAPSHOT", now));
                                    },
                                    "orderbook" => if let Some(b) = m.book(idx, now, depth) {
                                        frames.push(encode_book(&b, fmt, "SNAPSHOT", depth));
                                    },
                                    _ => {}
                                }
                            }
                        }
                        for f in frames {
                            let f = conn.wrap(f);
                            if !send_data(&mut sink, &shared, f).await {
                                break;
                            }
                        }
                    }
                }
            }
            ev = feed.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    // A client too slow for the feed is cut off, as a real server would.
                    Err(_) => break,
                };
                if shared.faults.stall.load(Ordering::SeqCst) {
                    continue;
                }
                let Some(idx) = ({ let m = lock(&shared.market); m.index_of(ev.symbol().as_str()) }) else { continue };
                let Some(sub) = conn.subs.get(&idx).copied() else { continue };
                let now = clock.now();
                let mut frames = Vec::new();
                match &*ev {
                    CryptoEvent::Trade(b) => {
                        let (t, st) = (&b.0, &b.1);
                        if sub.trade {
                            frames.push(encode_trade(t, st.prev_close, conn.fmt, "REALTIME", now));
                        }
                        if sub.ticker {
                            frames.push(encode_ticker(st, conn.fmt, "REALTIME", now));
                        }
                    }
                    CryptoEvent::Book(b) => {
                        if let Some(depth) = sub.book {
                            frames.push(encode_book(b, conn.fmt, "REALTIME", depth));
                        }
                    }
                }
                let mut ok = true;
                for f in frames {
                    let f = conn.wrap(f);
                    last_traffic = now.as_millis();
                    if !send_data(&mut sink, &shared, f).await {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    break;
                }
            }
            _ = dropper.changed() => break,
            _ = clock.sleep_until(tick) => {
                let now = clock.now().as_millis();
                if now - last_traffic >= idle {
                    bump(&shared.counters.ws_idle_drops);
                    break;
                }
                if conn.subs.is_empty() && now - last_status >= status_every && !shared.faults.stall.load(Ordering::SeqCst) {
                    last_status = now;
                    if sink.send(Message::Binary(br#"{"status":"UP"}"#.to_vec().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    conn.unwatch_all();
}
