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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;

    /// A venue of plain words: `sub X` / `unsub X` (the secret masked in the archive),
    /// `ping` answered with `pong`, `err:…` a venue error, `fatal:…` a session refusal.
    struct Words {
        url: String,
        connect_timeout: Duration,
        idle: Interval,
        held: Vec<(String, bool)>,
        opened: bool,
        closed: bool,
    }

    impl Words {
        fn new(url: String) -> Self {
            Words {
                url,
                connect_timeout: Duration::from_secs(10),
                idle: Interval::from_millis(60_000),
                held: Vec::new(),
                opened: false,
                closed: false,
            }
        }
        fn request(verb: &str, code: &str) -> Outgoing {
            Outgoing {
                text: format!("{verb} {code} key=s3cret"),
                archived: format!("{verb} {code} key=***"),
                channel: "req".into(),
            }
        }
    }

    impl Venue for Words {
        const PROVIDER: Provider = Provider::Sim;
        async fn prepare(&mut self) -> Result<Endpoint, ProviderError> {
            Ok(Endpoint {
                url: self.url.clone(),
                channel: "ws",
                connect_timeout: self.connect_timeout,
                max_message_bytes: 4096,
                idle_timeout: self.idle,
                idle_key: "providers.test.idle",
            })
        }
        fn opened(&mut self) {
            self.opened = true;
            self.held.clear();
        }
        fn subscribe(&mut self, symbols: &[Symbol]) -> Changes {
            let wanted: Vec<String> = symbols.iter().map(|s| s.as_str().to_string()).collect();
            let d = diff(&self.held, &wanted);
            self.held.retain(|(k, _)| wanted.contains(k));
            self.held.extend(d.entrants.iter().map(|k| (k.clone(), true)));
            // Built subscribe-first: the loop, not the venue, puts the unsubscribes first.
            Changes {
                subscribe: d.entrants.iter().map(|k| Words::request("sub", k)).collect(),
                unsubscribe: d.leavers.iter().map(|(k, _)| Words::request("unsub", k)).collect(),
            }
        }
        fn classify(&mut self, text: &str, binary: bool) -> Incoming {
            if text == "ping" {
                return Incoming::Control { channel: "ctl".into(), reply: Some(Outgoing::plain("ctl", "pong")) };
            }
            if let Some(why) = text.strip_prefix("err:") {
                return Incoming::Error { channel: "err".into(), why: why.into(), fatal: false };
            }
            if let Some(why) = text.strip_prefix("fatal:") {
                return Incoming::Error { channel: "err".into(), why: why.into(), fatal: true };
            }
            Incoming::Data { channel: if binary { "bin" } else { "data" }.into() }
        }
        async fn closed(&mut self) {
            self.closed = true;
        }
    }

    /// A loopback WebSocket server for one connection: what the client sends arrives on
    /// `heard`, what is put on `say` goes to the client.
    struct Peer {
        url: String,
        heard: mpsc::UnboundedReceiver<Message>,
        say: mpsc::UnboundedSender<Message>,
    }

    async fn peer() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let (heard_tx, heard) = mpsc::unbounded_channel();
        let (say, mut said) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(m)) => { let _ = heard_tx.send(m); }
                        _ => break,
                    },
                    m = said.recv() => match m {
                        Some(m) => if ws.send(m).await.is_err() { break },
                        None => break,
                    },
                }
            }
        });
        Peer { url, heard, say }
    }

    /// A server that accepts TCP connections and never answers the handshake.
    async fn mute() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        url
    }

    async fn heard_text(p: &mut Peer) -> String {
        let m = tokio::time::timeout(Duration::from_secs(10), p.heard.recv()).await.unwrap().unwrap();
        m.into_text().unwrap().as_str().to_string()
    }

    fn symbols(codes: &[&str]) -> Vec<Symbol> {
        codes.iter().map(|c| Symbol::new(c).unwrap()).collect()
    }

    fn fast_clock() -> Clock {
        Clock::simulated(UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap(), 600.0, Duration::from_secs(5))
    }

    fn drain(rx: &mut mpsc::Receiver<RawFrame>) -> Vec<RawFrame> {
        let mut v = Vec::new();
        while let Ok(f) = rx.try_recv() {
            v.push(f);
        }
        v
    }

    struct Running {
        subs: watch::Sender<Vec<Symbol>>,
        stop: watch::Sender<bool>,
        frames: mpsc::Receiver<RawFrame>,
        task: tokio::task::JoinHandle<(Result<(), ProviderError>, Words)>,
    }

    fn start(mut venue: Words, clock: Clock, codes: &[&str]) -> Running {
        let (subs, subs_rx) = watch::channel(symbols(codes));
        let (stop, stop_rx) = watch::channel(false);
        let (tx, frames) = mpsc::channel(1000);
        let task = tokio::spawn(async move {
            let r = run(&mut venue, clock, subs_rx, tx, stop_rx).await;
            (r, venue)
        });
        Running { subs, stop, frames, task }
    }

    async fn finish(r: Running) -> (Result<(), ProviderError>, Words, Vec<RawFrame>) {
        let Running { mut frames, task, .. } = r;
        let (res, venue) =
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("session did not end").unwrap();
        (res, venue, drain(&mut frames))
    }

    #[test]
    fn diff_lists_leavers_in_held_order_and_entrants_in_wanted_order() {
        let held = [("a", true), ("b", false), ("c", true)];
        let d = diff(&held, &["d", "c", "b"]);
        assert_eq!(d.leavers, [("a", true)]);
        // `b` is held but failed: tried again.
        assert_eq!(d.entrants, ["d", "b"]);
    }

    #[tokio::test]
    async fn a_handshake_that_never_completes_is_given_up_on_the_wall_clock() {
        let url = mute().await;
        let mut venue = Words::new(url);
        venue.connect_timeout = Duration::from_millis(400);
        // At 600x the market clock passes the whole 400 ms in under a millisecond of wall
        // time; the connect must still get its 400 ms.
        let r = start(venue, fast_clock(), &["AAA"]);
        let began = Instant::now();
        let (res, venue, frames) = finish(r).await;
        let waited = began.elapsed();
        assert!(matches!(&res, Err(ProviderError::StreamEnded { why, .. }) if why.contains("timed out")), "{res:?}");
        assert!(waited >= Duration::from_millis(390), "gave up after {waited:?}");
        assert!(frames.is_empty() && !venue.opened && !venue.closed, "{frames:?}");
    }

    #[tokio::test]
    async fn a_stop_request_ends_a_hanging_connect_at_once() {
        let url = mute().await;
        let mut venue = Words::new(url);
        venue.connect_timeout = Duration::from_secs(60);
        let r = start(venue, Clock::real(), &["AAA"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        r.stop.send(true).unwrap();
        let (res, _, frames) = finish(r).await;
        assert!(res.is_ok(), "{res:?}");
        assert!(frames.is_empty(), "{frames:?}");
    }

    #[tokio::test]
    async fn a_subscription_change_unsubscribes_before_it_subscribes_and_stop_closes() {
        let mut p = peer().await;
        let r = start(Words::new(p.url.clone()), Clock::real(), &["AAA", "BBB"]);
        assert_eq!(heard_text(&mut p).await, "sub AAA key=s3cret");
        assert_eq!(heard_text(&mut p).await, "sub BBB key=s3cret");
        r.subs.send(symbols(&["BBB", "CCC"])).unwrap();
        assert_eq!(heard_text(&mut p).await, "unsub AAA key=s3cret");
        assert_eq!(heard_text(&mut p).await, "sub CCC key=s3cret");
        r.stop.send(true).unwrap();
        let close = tokio::time::timeout(Duration::from_secs(10), p.heard.recv()).await.unwrap().unwrap();
        assert!(close.is_close(), "{close:?}");
        let (res, venue, frames) = finish(r).await;
        assert!(res.is_ok(), "{res:?}");
        assert!(venue.opened && venue.closed);
        let seen: Vec<(RawFrameKind, &str)> = frames.iter().map(|f| (f.kind, f.frame.as_str())).collect();
        let open = serde_json::json!({ "url": p.url }).to_string();
        assert_eq!(
            seen,
            [
                (RawFrameKind::Open, open.as_str()),
                (RawFrameKind::Sent, "sub AAA key=***"),
                (RawFrameKind::Sent, "sub BBB key=***"),
                (RawFrameKind::Sent, "unsub AAA key=***"),
                (RawFrameKind::Sent, "sub CCC key=***"),
                (RawFrameKind::Close, r#"{"reason":"requested"}"#),
            ]
        );
        assert!(frames.iter().all(|f| f.provider == Provider::Sim));
    }

    #[tokio::test]
    async fn received_messages_are_archived_first_then_answered_and_an_error_explains_the_close() {
        let mut p = peer().await;
        let r = start(Words::new(p.url.clone()), Clock::real(), &["AAA"]);
        assert_eq!(heard_text(&mut p).await, "sub AAA key=s3cret");
        p.say.send(Message::text("ping")).unwrap();
        assert_eq!(heard_text(&mut p).await, "pong");
        p.say.send(Message::binary(b"AAA 1\xff".to_vec())).unwrap();
        p.say.send(Message::text("err:bad request")).unwrap();
        let policy = CloseFrame { code: CloseCode::Policy, reason: "go away".into() };
        p.say.send(Message::Close(Some(policy))).unwrap();
        let (res, venue, frames) = finish(r).await;
        let why = "server closed the connection (1008 go away) after bad request";
        assert!(matches!(&res, Err(ProviderError::StreamEnded { why: w, .. }) if w == why), "{res:?}");
        assert!(venue.closed);
        let seen: Vec<(RawFrameKind, &str, &str)> =
            frames.iter().map(|f| (f.kind, f.channel.as_str(), f.frame.as_str())).collect();
        let close = serde_json::json!({ "reason": why }).to_string();
        assert_eq!(
            seen[1..],
            [
                (RawFrameKind::Sent, "req", "sub AAA key=***"),
                (RawFrameKind::Ws, "ctl", "ping"),
                (RawFrameKind::Sent, "ctl", "pong"),
                (RawFrameKind::Ws, "bin", "AAA 1\u{fffd}"),
                (RawFrameKind::Ws, "err", "err:bad request"),
                (RawFrameKind::Close, "ws", close.as_str()),
            ]
        );
    }

    #[tokio::test]
    async fn a_fatal_venue_error_ends_the_session_after_archiving_it() {
        let mut p = peer().await;
        let r = start(Words::new(p.url.clone()), Clock::real(), &["AAA"]);
        assert_eq!(heard_text(&mut p).await, "sub AAA key=s3cret");
        p.say.send(Message::text("fatal:key refused")).unwrap();
        let (res, _, frames) = finish(r).await;
        assert!(matches!(&res, Err(ProviderError::StreamEnded { why, .. }) if why == "key refused"), "{res:?}");
        let kinds: Vec<_> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [RawFrameKind::Open, RawFrameKind::Sent, RawFrameKind::Ws, RawFrameKind::Close]);
    }

    #[tokio::test]
    async fn silence_is_timed_on_the_market_clock() {
        let p = peer().await;
        let mut venue = Words::new(p.url.clone());
        // 60 s of market time: 100 ms of wall time at 600x.
        venue.idle = Interval::from_millis(60_000);
        let began = Instant::now();
        let r = start(venue, fast_clock(), &["AAA"]);
        let (res, _, frames) = finish(r).await;
        assert!(
            matches!(&res, Err(ProviderError::StreamEnded { why, .. })
                if why.starts_with("nothing received for") && why.ends_with("(no frame within providers.test.idle 1m)")),
            "{res:?}"
        );
        assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());
        assert_eq!(frames.last().map(|f| f.kind), Some(RawFrameKind::Close));
    }
}
