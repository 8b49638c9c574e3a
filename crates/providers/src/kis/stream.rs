//! One KIS WebSocket session: connect with the approval key, register (tr_id, tr_key)
//! pairs within the per-session cap, follow subscription changes, answer PINGPONG, and hand
//! every received message to `out` before looking at it, so a failure never loses a frame
//! already received.
//!
//! Registrations are a state machine per (tr_id, tr_key): `Pending` when the subscribe
//! request is sent, `Confirmed` on the server's ack (or its first data record), `Failed` when
//! refused or when the cap leaves no room. A new session starts from the full wanted set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use model::{Provider, RawFrame, RawFrameKind, Symbol};

use super::rest::RestClient;
use super::wire::{self, ControlKind, TR_BOOK, TR_TRADE};
use crate::provider::ProviderError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registration {
    pub tr_id: String,
    pub tr_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegState {
    Pending,
    Confirmed,
    Failed(String),
}

impl RegState {
    fn holds_slot(&self) -> bool {
        !matches!(self, RegState::Failed(_))
    }
}

pub(crate) type Registry = Arc<Mutex<BTreeMap<Registration, RegState>>>;

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, BTreeMap<Registration, RegState>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// The subscribe/unsubscribe request of spec §4.2.
pub fn request_json(approval_key: &str, custtype: &str, register: bool, tr_id: &str, tr_key: &str) -> String {
    serde_json::json!({
        "header": {
            "approval_key": approval_key,
            "custtype": custtype,
            "tr_type": if register { "1" } else { "2" },
            "content-type": "utf-8",
        },
        "body": { "input": { "tr_id": tr_id, "tr_key": tr_key } },
    })
    .to_string()
}

/// What the adapter wants registered for `symbols`, in priority order: every symbol's
/// trades (which carry level-1 quotes) first, then full books for the first `book_slots`
/// symbols, so a cap never costs a symbol its only feed for another symbol's book.
pub fn wanted(symbols: &[Symbol], book_slots: usize) -> Vec<Registration> {
    let books = symbols.iter().take(book_slots);
    let mut out = Vec::with_capacity(symbols.len() + books.len());
    out.extend(symbols.iter().map(|s| Registration { tr_id: TR_TRADE.into(), tr_key: s.as_str().into() }));
    out.extend(books.map(|s| Registration { tr_id: TR_BOOK.into(), tr_key: s.as_str().into() }));
    out
}

pub(crate) struct Session<'a> {
    pub rest: &'a RestClient,
    pub registry: Registry,
    pub clock: model::Clock,
    /// Slots whose full order book is registered beside their trades (0 in degrade mode).
    pub book_slots: usize,
}

type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

struct Io<'a> {
    sink: WsSink,
    out: &'a mpsc::Sender<RawFrame>,
    clock: model::Clock,
}

fn ended(why: impl Into<String>) -> ProviderError {
    ProviderError::StreamEnded { provider: Provider::Kis, why: why.into() }
}

impl Io<'_> {
    fn frame(&self, kind: RawFrameKind, channel: &str, frame: String) -> RawFrame {
        RawFrame { provider: Provider::Kis, kind, channel: channel.into(), frame, receive_time: self.clock.now() }
    }
    async fn emit(&self, f: RawFrame) -> Result<(), ProviderError> {
        self.out.send(f).await.map_err(|_| ended("the pipeline stopped reading"))
    }
    /// Sends `text` and archives `archived` (the same message with the approval key masked).
    async fn send(&mut self, text: String, archived: String, channel: &str) -> Result<(), ProviderError> {
        self.sink.send(Message::text(text)).await.map_err(|e| ended(format!("send failed: {e}")))?;
        self.emit(self.frame(RawFrameKind::Sent, channel, archived)).await
    }
}

impl Session<'_> {
    pub(crate) async fn run(
        &self,
        mut subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        let cfg = self.rest.config();
        let approval = self.rest.approval_key().await.map_err(|e| ended(format!("no approval key: {e}")))?;
        let url = cfg.ws_url();
        let limits = crate::limits::ws_config(cfg.ws_max_message_bytes);
        let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(limits), false);
        // A wall-clock I/O timeout: a connect that hangs says nothing about market time.
        let ws = match tokio::time::timeout(cfg.request_timeout.get(), connect).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => return Err(ended(format!("connect to {url} failed: {e}"))),
            Err(_) => return Err(ended(format!("connect to {url} timed out"))),
        };
        let (sink, mut source) = ws.split();
        let mut io = Io { sink, out: &out, clock: self.clock };
        io.emit(io.frame(RawFrameKind::Open, "ws", serde_json::json!({ "url": url }).to_string())).await?;
        lock(&self.registry).clear();

        let result = self.session(&mut io, &approval, &mut subscriptions, &mut source, &mut stop).await;
        let reason = match &result {
            Ok(()) => "requested".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = io.sink.send(Message::Close(None)).await;
        let close = io.frame(RawFrameKind::Close, "ws", serde_json::json!({ "reason": reason }).to_string());
        // Archive the close even when the session failed; a closed pipeline is reported by `result`.
        let _ = io.emit(close).await;
        for st in lock(&self.registry).values_mut() {
            if *st == RegState::Confirmed {
                *st = RegState::Pending;
            }
        }
        result
    }

    async fn session<S>(
        &self,
        io: &mut Io<'_>,
        approval: &SecretString,
        subscriptions: &mut watch::Receiver<Vec<Symbol>>,
        source: &mut S,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ProviderError>
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let cfg = self.rest.config();
        let idle = cfg.ws_idle_timeout.get();
        let symbols = subscriptions.borrow_and_update().clone();
        self.apply(io, approval, &wanted(&symbols, self.book_slots)).await?;
        let mut last_rx = self.clock.now();
        loop {
            tokio::select! {
                biased;
                _ = model::stopped(stop) => return Ok(()),
                changed = subscriptions.changed() => {
                    if changed.is_err() {
                        return Err(ended("the subscription channel closed"));
                    }
                    let symbols = subscriptions.borrow_and_update().clone();
                    self.apply(io, approval, &wanted(&symbols, self.book_slots)).await?;
                }
                msg = source.next() => {
                    last_rx = self.clock.now();
                    match msg {
                        Some(Ok(Message::Text(t))) => self.on_text(io, t.as_str()).await?,
                        Some(Ok(Message::Binary(b))) => {
                            let text = String::from_utf8_lossy(&b).into_owned();
                            io.emit(io.frame(RawFrameKind::Ws, "binary", text)).await?;
                        }
                        // tungstenite answers pings itself.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(c))) => {
                            let why = c.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default();
                            return Err(ended(format!("server closed the connection {why}")));
                        }
                        Some(Err(e)) => return Err(ended(format!("connection failed: {e}"))),
                        None => return Err(ended("connection closed without a close frame")),
                    }
                }
                _ = self.clock.sleep_until(last_rx.plus(idle)) => {
                    return Err(ended(format!("nothing received for {}", cfg.ws_idle_timeout)));
                }
            }
        }
    }

    async fn on_text(&self, io: &mut Io<'_>, text: &str) -> Result<(), ProviderError> {
        if text.starts_with('{') {
            let control = wire::parse_control(text);
            let channel = control.as_ref().map(|c| c.tr_id.clone()).unwrap_or_else(|_| "control".into());
            io.emit(io.frame(RawFrameKind::Ws, &channel, text.to_string())).await?;
            let Ok(c) = control else {
                // The engine's `parse` reports it as Malformed with the frame; the session goes on.
                return Ok(());
            };
            match c.kind() {
                ControlKind::Ping => io.send(text.to_string(), text.to_string(), wire::PINGPONG).await?,
                ControlKind::Subscribed => self.set(&c.tr_id, &c.tr_key, RegState::Confirmed),
                ControlKind::Unsubscribed => {
                    lock(&self.registry).remove(&Registration { tr_id: c.tr_id.clone(), tr_key: c.tr_key.clone() });
                }
                ControlKind::Refused => {
                    tracing::warn!(tr_id = %c.tr_id, tr_key = %c.tr_key, msg_cd = %c.msg_cd, "kis: registration refused");
                    self.set(&c.tr_id, &c.tr_key, RegState::Failed(format!("{} {}", c.msg_cd, c.msg1)));
                }
                ControlKind::SessionError => {
                    if c.msg_cd == "OPSP0011" {
                        self.rest.forget_approval().await;
                    }
                    return Err(ended(format!("session refused: {} {}", c.msg_cd, c.msg1)));
                }
                ControlKind::Other => {}
            }
            return Ok(());
        }
        let tr_id = text.split('|').nth(1).filter(|t| t.len() <= 16).unwrap_or("data").to_string();
        io.emit(io.frame(RawFrameKind::Ws, &tr_id, text.to_string())).await?;
        // First data confirms a registration whose ack has not arrived (or never will).
        if let Ok(d) = wire::parse_data(text)
            && !d.encrypted
        {
            let mut reg = lock(&self.registry);
            for code in d.first_fields() {
                if let Some(st) = reg.get_mut(&Registration { tr_id: d.tr_id.into(), tr_key: code.into() })
                    && *st == RegState::Pending
                {
                    *st = RegState::Confirmed;
                }
            }
        }
        Ok(())
    }

    /// Applies a control reply to its registration. A reply without a tr_key (some error
    /// shapes) applies to the oldest pending registration of that TR.
    fn set(&self, tr_id: &str, tr_key: &str, state: RegState) {
        let mut reg = lock(&self.registry);
        let key = Registration { tr_id: tr_id.into(), tr_key: tr_key.into() };
        if let Some(st) = reg.get_mut(&key) {
            *st = state;
            return;
        }
        if let Some((_, st)) = reg.iter_mut().find(|(r, st)| r.tr_id == tr_id && **st == RegState::Pending) {
            *st = state;
        }
    }

    /// Sends the difference between what is registered and what is wanted: unsubscribe
    /// first (frees slots), then subscribe in priority order while the cap leaves room.
    async fn apply(
        &self,
        io: &mut Io<'_>,
        approval: &SecretString,
        want: &[Registration],
    ) -> Result<(), ProviderError> {
        let cfg = self.rest.config();
        let cap = cfg.max_registrations as usize;
        let (remove, add) = {
            let reg = lock(&self.registry);
            let remove: Vec<(Registration, bool)> =
                reg.iter().filter(|(r, _)| !want.contains(r)).map(|(r, st)| (r.clone(), st.holds_slot())).collect();
            let add: Vec<Registration> =
                want.iter().filter(|r| reg.get(*r).is_none_or(|st| !st.holds_slot())).cloned().collect();
            (remove, add)
        };
        for (r, registered) in remove {
            lock(&self.registry).remove(&r);
            if registered {
                let text = request_json(approval.expose_secret(), &cfg.custtype, false, &r.tr_id, &r.tr_key);
                let archived = request_json("***", &cfg.custtype, false, &r.tr_id, &r.tr_key);
                io.send(text, archived, &r.tr_id).await?;
            }
        }
        for r in add {
            let used = lock(&self.registry).values().filter(|st| st.holds_slot()).count();
            if used >= cap {
                lock(&self.registry).insert(r, RegState::Failed(format!("registration limit {cap} reached")));
                continue;
            }
            lock(&self.registry).insert(r.clone(), RegState::Pending);
            let text = request_json(approval.expose_secret(), &cfg.custtype, true, &r.tr_id, &r.tr_key);
            let archived = request_json("***", &cfg.custtype, true, &r.tr_id, &r.tr_key);
            io.send(text, archived, &r.tr_id).await?;
        }
        Ok(())
    }
}
