//! The fake's WebSocket side: sessions keyed by approval key, registrations with the
//! per-session cap, PINGPONG heartbeats, and pushes of the sim market's trades and books.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use model::{Symbol, UtcTime};

use super::records::{book_record, trade_record};
use super::{Shared, bump, guard};
use crate::sim::SimEvent;

// The TR ids are written out here, on purpose, rather than imported from the client
// (`kis::wire`): a wrong id must not pass both sides.
const PINGPONG: &str = "PINGPONG";
const TR_TRADE: &str = "H0STCNT0";
const TR_BOOK: &str = "H0STASP0";

pub(super) async fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        if s.faults.refusing(s.clock.now()) {
            bump(&s.counters.ws_refused);
            drop(tcp);
            continue;
        }
        let s = s.clone();
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                bump(&s.counters.ws_connections);
                let id = s.next_conn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Conn { s: &s, id, ws, bound: None, regs: BTreeSet::new() }.run().await;
                let mut a = guard(&s.auth);
                if a.live_session == Some(id) {
                    a.live_session = None;
                }
            }
        });
    }
}

fn control(tr_id: &str, tr_key: &str, rt_cd: &str, msg_cd: &str, msg1: &str) -> String {
    json!({
        "header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"},
        "body": {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1},
    })
    .to_string()
}

enum Next {
    Continue,
    /// Close the session (gracefully).
    Close,
}

struct Conn<'a> {
    s: &'a Shared,
    id: u64,
    ws: WebSocketStream<TcpStream>,
    /// The approval key this session registered with.
    bound: Option<String>,
    regs: BTreeSet<(String, String)>,
}

impl Conn<'_> {
    async fn send(&mut self, text: String) -> bool {
        bump(&self.s.counters.ws_frames_sent);
        self.ws.send(Message::text(text)).await.is_ok()
    }

    async fn run(mut self) {
        let s = self.s;
        let mut drops = s.faults.0.drop_epoch.subscribe();
        drops.mark_unchanged();
        let ping_every = s.cfg.ping_interval.as_millis() as i64;
        let push_every = s.cfg.push_interval.as_millis() as i64;
        let start = s.clock.now();
        let mut next_ping = start.plus_millis(ping_every);
        let mut next_push = start.plus_millis(push_every);
        let mut last_push = start;
        let mut last_echo = start;
        loop {
            let deadline = next_ping.min(next_push);
            tokio::select! {
                _ = drops.changed() => {
                    self.cut().await;
                    return;
                }
                msg = self.ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                        Some(Ok(Message::Pong(_))) => {
                            last_echo = s.clock.now();
                            bump(&s.counters.pongs_received);
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => continue,
                    };
                    if text.contains(PINGPONG) && text.starts_with('{') {
                        last_echo = s.clock.now();
                        bump(&s.counters.pongs_received);
                        continue;
                    }
                    if let Next::Close = self.request(&text).await {
                        let _ = self.ws.close(None).await;
                        return;
                    }
                }
                _ = s.clock.sleep_until(deadline) => {
                    let now = s.clock.now();
                    if now >= next_ping {
                        next_ping = now.plus_millis(ping_every);
                        if now.millis_since(last_echo) > s.cfg.pong_timeout.as_millis() as i64 {
                            let _ = self.ws.close(None).await;
                            return;
                        }
                        if !s.faults.stalled() {
                            let k = now.kst();
                            let dt = format!("{}{:02}{:02}{:02}", now.kst_yyyymmdd(), k.hour(), k.minute(), k.second());
                            let ping = json!({"header": {"tr_id": PINGPONG, "datetime": dt}}).to_string();
                            bump(&s.counters.pings_sent);
                            if !self.send(ping).await {
                                return;
                            }
                        }
                    }
                    if now >= next_push {
                        next_push = now.plus_millis(push_every);
                        let frames = self.collect(last_push, now);
                        last_push = now;
                        // A stalled server keeps the socket but sends nothing; what happened
                        // meanwhile is lost, as with the real one.
                        if s.faults.stalled() || s.faults.data_withheld() {
                            continue;
                        }
                        for (f, records) in frames {
                            let f = if s.faults.take_corrupt() {
                                "0|H0STCNT0|001|\u{1}garbage^^".to_string()
                            } else if let Some(size) = s.faults.take_oversize() {
                                let pad = size.saturating_sub(f.len());
                                format!("{f}{}", "^".repeat(pad))
                            } else if s.faults.take_tear() {
                                let mut cut = f.len() / 2;
                                while !f.is_char_boundary(cut) {
                                    cut -= 1;
                                }
                                f[..cut].to_string()
                            } else {
                                f
                            };
                            bump(&s.counters.ws_data_frames_sent);
                            s.counters.ws_records_sent.fetch_add(records as u64, std::sync::atomic::Ordering::SeqCst);
                            if !self.send(f).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// An abrupt drop: FIN without a close frame, then wait briefly for the peer to go so
    /// what was already sent is not destroyed by a reset.
    async fn cut(&mut self) {
        let _ = self.ws.get_mut().shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = self.ws.next().await {} })
            .await;
    }

    async fn request(&mut self, text: &str) -> Next {
        let s = self.s;
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.send(control("", "", "9", "OPSP9999", "JSON PARSING ERROR : invalid json format")).await;
            return Next::Continue;
        };
        let Some(header) = v.get("header") else {
            self.send(control("", "", "9", "OPSP9997", "JSON PARSING ERROR : header not found")).await;
            return Next::Continue;
        };
        let Some(input) = v.get("body").and_then(|b| b.get("input")) else {
            self.send(control("", "", "9", "OPSP9996", "JSON PARSING ERROR : input not found")).await;
            return Next::Continue;
        };
        let hs = |k: &str| header.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let tr_id = input.get("tr_id").and_then(Value::as_str).unwrap_or_default().to_string();
        let tr_key = input.get("tr_key").and_then(Value::as_str).unwrap_or_default().to_string();
        let key = hs("approval_key");
        if !guard(&s.auth).approvals.contains(&key) {
            self.send(control(&tr_id, &tr_key, "9", "OPSP0011", "invalid approval : NOT FOUND")).await;
            return Next::Continue;
        }
        if self.bound.is_none() {
            let taken = {
                let mut a = guard(&s.auth);
                match a.live_session {
                    Some(other) if other != self.id => true,
                    _ => {
                        a.live_session = Some(self.id);
                        false
                    }
                }
            };
            if taken {
                bump(&s.counters.ws_in_use);
                self.send(control("(null)", "", "9", "OPSP8996", "ALREADY IN USE appkey")).await;
                return Next::Close;
            }
            self.bound = Some(key);
        }
        if !matches!(hs("custtype").as_str(), "P" | "B") {
            self.send(control(&tr_id, &tr_key, "9", "OPSP8998", "JSON PARSING ERROR : invalid custtype")).await;
            return Next::Continue;
        }
        if tr_id != TR_TRADE && tr_id != TR_BOOK {
            self.send(control(&tr_id, &tr_key, "9", "OPSP8991", "SUBSCRIBE ERROR : invalid tr_id")).await;
            return Next::Continue;
        }
        let listed = Symbol::new(&tr_key).ok().is_some_and(|sym| s.market().index_of(&sym).is_some());
        let pair = (tr_id.clone(), tr_key.clone());
        match hs("tr_type").as_str() {
            "1" => {
                if !listed {
                    bump(&s.counters.subscribe_refused);
                    self.send(control(&tr_id, &tr_key, "9", "OPSP8992", "SUBSCRIBE ERROR : invalid tr_key")).await;
                } else if self.regs.contains(&pair) {
                    self.send(control(&tr_id, &tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE")).await;
                } else if self.regs.len() >= s.cfg.max_registrations {
                    bump(&s.counters.subscribe_over_limit);
                    self.send(control(&tr_id, &tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER")).await;
                } else {
                    self.regs.insert(pair);
                    bump(&s.counters.subscribe_ok);
                    let ok = json!({
                        "header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"},
                        "body": {"rt_cd": "0", "msg_cd": "OPSP0000", "msg1": "SUBSCRIBE SUCCESS",
                                 "output": {"iv": "0123456789abcdef", "key": "abcdefghijklmnopabcdefghijklmnop"}},
                    });
                    self.send(ok.to_string()).await;
                }
            }
            "2" => {
                if self.regs.remove(&pair) {
                    self.send(control(&tr_id, &tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS")).await;
                } else {
                    self.send(control(&tr_id, &tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")).await;
                }
            }
            _ => {
                self.send(control(&tr_id, &tr_key, "9", "OPSP8997", "JSON PARSING ERROR : invalid tr_type")).await;
            }
        }
        Next::Continue
    }

    /// Data frames for events in `(from, to]` of the registered symbols: consecutive trades
    /// of one symbol are batched (up to `batch_max` records), each book update is its own frame.
    fn collect(&self, from: UtcTime, to: UtcTime) -> Vec<(String, usize)> {
        let s = self.s;
        let symbols: BTreeSet<&str> = self.regs.iter().map(|(_, k)| k.as_str()).collect();
        let mut events: Vec<SimEvent> = Vec::new();
        let mut m = s.market();
        let mut acc = guard(&s.acc);
        for code in symbols {
            let Some(idx) = Symbol::new(code).ok().and_then(|sym| m.index_of(&sym)) else { continue };
            if !acc.contains_key(code) {
                let st = m.day_stats(idx, from);
                let t = super::records::hhmmss(from);
                let e = acc.entry(code.to_string()).or_default();
                e.open = st.open.map(|p| (p.0, t.clone()));
                e.high = st.high.map(|p| (p.0, t.clone()));
                e.low = st.low.map(|p| (p.0, t.clone()));
                e.value = st.traded_value;
            }
            m.events(idx, from, to, &mut events);
        }
        events.sort_by_key(|e| e.time());
        let mut frames = Vec::new();
        let mut batch: Vec<String> = Vec::new();
        let mut batch_sym = String::new();
        let flush = |batch: &mut Vec<String>, frames: &mut Vec<(String, usize)>| {
            if !batch.is_empty() {
                frames.push((format!("0|{TR_TRADE}|{:03}|{}", batch.len(), batch.join("^")), batch.len()));
                batch.clear();
            }
        };
        for e in &events {
            let code = e.symbol().as_str();
            let Some(idx) = m.index_of(e.symbol()) else { continue };
            let prev = m.listings()[idx].prev_close.0;
            match e {
                SimEvent::Trade(t) if self.regs.contains(&(TR_TRADE.to_string(), code.to_string())) => {
                    if batch_sym != code || batch.len() >= s.cfg.batch_max.max(1) {
                        flush(&mut batch, &mut frames);
                        batch_sym = code.to_string();
                    }
                    let a = acc.entry(code.to_string()).or_default();
                    let tick = m.tick_size(t.price);
                    let best = (t.price.0 - tick, t.price.0);
                    batch.push(trade_record(t, prev, best, a, s.cfg.trade_width));
                }
                SimEvent::Book(b) if self.regs.contains(&(TR_BOOK.to_string(), code.to_string())) => {
                    flush(&mut batch, &mut frames);
                    let vol = m.day_stats(idx, b.time).volume;
                    frames.push((format!("0|{TR_BOOK}|001|{}", book_record(b, prev, vol, s.cfg.book_width)), 1));
                }
                _ => {}
            }
        }
        flush(&mut batch, &mut frames);
        frames
    }
}
