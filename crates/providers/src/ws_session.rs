//! One WebSocket session, whatever the venue: the loop KIS and Upbit both run, with the
//! venue supplying hooks (barter-data's `Connector` / `StreamParser` split).
//!
//! The loop owns everything that is not the venue's protocol:
//! - connecting, bounded by a **wall-clock** timeout ([`Endpoint::connect_timeout`]): a
//!   handshake that hangs says nothing about market time, so a 600× simulated clock must not
//!   make it 600× shorter; a stop request ends the wait at once;
//! - the message size limit ([`crate::limits::ws_config`]);
//! - archiving: an `Open` frame when connected, every message sent as a `Sent` frame (with
//!   whatever the venue masks), every message received as a `Ws` frame *before* anything
//!   looks at it (so a failure never loses a frame already received), and a `Close` frame
//!   however the session ends;
//! - subscription changes from the `watch` channel: the venue turns the wanted symbols into
//!   [`Changes`] and the loop sends every unsubscribe before any subscribe (leavers free
//!   their slots before entrants take one); [`diff`] is the shared leavers/entrants rule;
//! - silence: nothing received for [`Endpoint::idle_timeout`] (market clock) ends the
//!   session; the venue's own timers (Upbit's `PING`, paced subscribes) run through
//!   [`Venue::next_tick`] / [`Venue::tick`];
//! - the stop signal, which closes the connection and ends with `Ok`;
//! - acting on the venue's [`Incoming`] classification of each message: data is only
//!   archived, control may be answered (KIS's PINGPONG echo), an error either ends the
//!   session or explains a close that follows.
//!
//! Every end the session was not asked for is a `ProviderError::StreamEnded`.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use model::settings::Interval;
use model::{Clock, Provider, RawFrame, RawFrameKind, Symbol, UtcTime};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::provider::ProviderError;

/// Where and how a session connects, as the venue's config says.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub url: String,
    /// Channel of the archived `Open` and `Close` frames.
    pub channel: &'static str,
    /// Wall-clock bound on the TCP, TLS and WebSocket handshakes together.
    pub connect_timeout: Duration,
    /// Largest message or frame accepted (`providers.<venue>.ws_max_message_bytes`).
    pub max_message_bytes: usize,
    /// Nothing received for this long (market clock) ends the session as stalled.
    pub idle_timeout: Interval,
    /// The config key of `idle_timeout`, named in the reason.
    pub idle_key: &'static str,
}

/// A message to send, and what the archive keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub text: String,
    /// What the `Sent` frame records: `text` with any secret masked.
    pub archived: String,
    pub channel: String,
}

impl Outgoing {
    /// A message with nothing to mask.
    pub fn plain(channel: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        Outgoing { archived: text.clone(), text, channel: channel.into() }
    }
}

/// The messages that move a session to a new set of symbols. The loop sends every
/// `unsubscribe` before any `subscribe`.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub unsubscribe: Vec<Outgoing>,
    pub subscribe: Vec<Outgoing>,
}

/// What moves a session from what it holds to what it wants.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Diff<K> {
    /// Held and no longer wanted, in `held`'s order, each with whether it is live (a live
    /// leaver needs an unsubscribe; a failed one is only forgotten).
    pub leavers: Vec<(K, bool)>,
    /// Wanted and not live (new, or failed before and tried again), in `wanted`'s order.
    pub entrants: Vec<K>,
}

/// The shared leavers/entrants rule: `held` is every key the session knows with whether it
/// is live, `wanted` the keys in priority order.
pub(crate) fn diff<K: Eq + Clone>(held: &[(K, bool)], wanted: &[K]) -> Diff<K> {
    let leavers = held.iter().filter(|(k, _)| !wanted.contains(k)).cloned().collect();
    let entrants = wanted.iter().filter(|w| !held.iter().any(|(k, live)| *live && k == *w)).cloned().collect();
    Diff { leavers, entrants }
}

/// How the venue reads one received message. Whatever it is, it has been archived as a
/// `Ws` frame on `channel` before the loop acts on it.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Market data (or something the venue's parser will judge later): nothing to do.
    Data { channel: String },
    /// Protocol control (acknowledgements, heartbeats), answered with `reply` if any.
    Control { channel: String, reply: Option<Outgoing> },
    /// The venue reported an error. `fatal` ends the session with `why`; otherwise `why` is
    /// kept to explain a close that follows (Upbit answers a bad request with an error,
    /// then closes).
    Error { channel: String, why: String, fatal: bool },
}

impl Incoming {
    fn channel(&self) -> &str {
        match self {
            Incoming::Data { channel } | Incoming::Control { channel, .. } | Incoming::Error { channel, .. } => channel,
        }
    }
}

/// The venue's part of a session. One value serves one `stream` call and may keep state
/// between sessions in whatever it borrows (KIS's registry, Upbit's subscription states).
pub(crate) trait Venue: Send {
    const PROVIDER: Provider;

    /// Everything needed before connecting, and where to connect: may wait (Upbit paces
    /// its connects) or fetch (KIS's approval key). A stop request cancels it.
    fn prepare(&mut self) -> impl Future<Output = Result<Endpoint, ProviderError>> + Send;

    /// The connection is open; nothing is subscribed on it yet.
    fn opened(&mut self);

    /// The messages that move the session to `symbols` (called at the start and on every
    /// change of the subscription channel).
    fn subscribe(&mut self, symbols: &[Symbol]) -> Changes;

    /// Reads one received message (`binary`: it came as a binary message, decoded here
    /// with invalid bytes replaced).
    fn classify(&mut self, text: &str, binary: bool) -> Incoming;

    /// When [`Venue::tick`] is next due (market clock); `None`: the venue has no timers.
    fn next_tick(&self) -> Option<UtcTime> {
        None
    }

    /// The venue's timers (heartbeats, paced sends): the messages due at `now`.
    fn tick(&mut self, _now: UtcTime) -> Vec<Outgoing> {
        Vec::new()
    }

    /// The session ended, its `Close` frame archived.
    fn closed(&mut self) -> impl Future<Output = ()> + Send;
}

pub(crate) fn ended(provider: Provider, why: impl Into<String>) -> ProviderError {
    ProviderError::StreamEnded { provider, why: why.into() }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(ep: &Endpoint) -> Result<Ws, String> {
    let limits = crate::limits::ws_config(ep.max_message_bytes);
    let connect = tokio_tungstenite::connect_async_with_config(ep.url.as_str(), Some(limits), false);
    match tokio::time::timeout(ep.connect_timeout, connect).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(format!("connect to {} failed: {e}", ep.url)),
        Err(_) => Err(format!("connect to {} timed out", ep.url)),
    }
}

struct Io<'a> {
    provider: Provider,
    sink: futures_util::stream::SplitSink<Ws, Message>,
    out: &'a mpsc::Sender<RawFrame>,
    clock: Clock,
}

impl Io<'_> {
    async fn emit(&self, kind: RawFrameKind, channel: &str, frame: String, at: UtcTime) -> Result<(), ProviderError> {
        let f = RawFrame { provider: self.provider, kind, channel: channel.into(), frame, receive_time: at };
        self.out.send(f).await.map_err(|_| ended(self.provider, "the pipeline stopped reading"))
    }

    async fn send(&mut self, m: Outgoing) -> Result<(), ProviderError> {
        self.sink.send(Message::text(m.text)).await.map_err(|e| ended(self.provider, format!("send failed: {e}")))?;
        self.emit(RawFrameKind::Sent, &m.channel, m.archived, self.clock.now()).await
    }

    async fn apply(&mut self, changes: Changes) -> Result<(), ProviderError> {
        for m in changes.unsubscribe.into_iter().chain(changes.subscribe) {
            self.send(m).await?;
        }
        Ok(())
    }
}

/// Runs one session of `venue` until `stop`, or until it fails. See the module docs.
pub(crate) async fn run<V: Venue>(
    venue: &mut V,
    clock: Clock,
    mut subscriptions: watch::Receiver<Vec<Symbol>>,
    out: mpsc::Sender<RawFrame>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ProviderError> {
    let provider = V::PROVIDER;
    let connecting = async {
        let ep = venue.prepare().await?;
        let ws = connect(&ep).await.map_err(|why| ended(provider, why))?;
        Ok::<_, ProviderError>((ep, ws))
    };
    let (ep, ws) = tokio::select! {
        biased;
        _ = model::stopped(&mut stop) => return Ok(()),
        r = connecting => r?,
    };
    let (sink, mut source) = ws.split();
    let mut io = Io { provider, sink, out: &out, clock };
    io.emit(RawFrameKind::Open, ep.channel, serde_json::json!({ "url": ep.url }).to_string(), clock.now()).await?;
    venue.opened();

    let result = session(venue, &ep, &mut io, &mut source, &mut subscriptions, &mut stop).await;
    let reason = match &result {
        Ok(()) => "requested".to_string(),
        Err(ProviderError::StreamEnded { why, .. }) => why.clone(),
        Err(e) => e.to_string(),
    };
    // Bounded: a peer that stopped reading must not hold the session open.
    let _ = tokio::time::timeout(ep.connect_timeout, io.sink.send(Message::Close(None))).await;
    // Archived however the session ended; a closed pipeline is reported by `result`.
    let close = serde_json::json!({ "reason": reason }).to_string();
    let _ = io.emit(RawFrameKind::Close, ep.channel, close, clock.now()).await;
    venue.closed().await;
    result
}

async fn session<V, S>(
    venue: &mut V,
    ep: &Endpoint,
    io: &mut Io<'_>,
    source: &mut S,
    subscriptions: &mut watch::Receiver<Vec<Symbol>>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), ProviderError>
where
    V: Venue,
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let provider = V::PROVIDER;
    let clock = io.clock;
    let idle_ms = ep.idle_timeout.as_millis() as i64;
    let symbols = subscriptions.borrow_and_update().clone();
    io.apply(venue.subscribe(&symbols)).await?;
    let mut subs_open = true;
    let mut last_rx = clock.now();
    // The last non-fatal error the venue reported, cited if the server then closes.
    let mut last_error: Option<String> = None;
    loop {
        let mut deadline = last_rx.plus_millis(idle_ms);
        if let Some(t) = venue.next_tick() {
            deadline = deadline.min(t);
        }
        tokio::select! {
            biased;
            _ = model::stopped(stop) => return Ok(()),
            changed = subscriptions.changed(), if subs_open => {
                if changed.is_err() {
                    // No more changes will come: keep what is subscribed until stopped.
                    subs_open = false;
                    continue;
                }
                let symbols = subscriptions.borrow_and_update().clone();
                io.apply(venue.subscribe(&symbols)).await?;
            }
            msg = source.next() => {
                let (text, binary) = match msg {
                    Some(Ok(Message::Text(t))) => (t.as_str().to_string(), false),
                    Some(Ok(Message::Binary(b))) => (String::from_utf8_lossy(&b).into_owned(), true),
                    // tungstenite answers pings itself; any frame shows the peer is alive.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                        last_rx = clock.now();
                        continue;
                    }
                    Some(Ok(Message::Close(c))) => {
                        let code = c.map(|c| format!(" ({} {})", u16::from(c.code), c.reason)).unwrap_or_default();
                        let after = last_error.map(|e| format!(" after {e}")).unwrap_or_default();
                        return Err(ended(provider, format!("server closed the connection{code}{after}")));
                    }
                    Some(Err(e)) => return Err(ended(provider, format!("connection lost: {e}"))),
                    None => return Err(ended(provider, "connection closed without a close frame")),
                };
                last_rx = clock.now();
                let incoming = venue.classify(&text, binary);
                io.emit(RawFrameKind::Ws, incoming.channel(), text, last_rx).await?;
                match incoming {
                    Incoming::Data { .. } => {}
                    Incoming::Control { reply, .. } => {
                        if let Some(m) = reply {
                            io.send(m).await?;
                        }
                    }
                    Incoming::Error { why, fatal: true, .. } => return Err(ended(provider, why)),
                    Incoming::Error { why, fatal: false, .. } => last_error = Some(why),
                }
            }
            _ = clock.sleep_until(deadline) => {
                let now = clock.now();
                let silent = now.millis_since(last_rx);
                if silent >= idle_ms {
                    return Err(ended(
                        provider,
                        format!("nothing received for {silent} ms (no frame within {} {})", ep.idle_key, ep.idle_timeout),
                    ));
                }
                for m in venue.tick(now) {
                    io.send(m).await?;
                }
            }
        }
    }
}
