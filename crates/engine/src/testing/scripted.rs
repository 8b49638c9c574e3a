//! `ScriptedProvider`: a `MarketProvider` with no socket behind it, driven by a [`Script`] on
//! market time, that records what the engine asked of it ([`Asked`]).
//!
//! It speaks KIS's wire format (provider id `kis`, mapper `kis/2`): `H0STCNT0` trade records
//! on the stream, `inquire-price` bodies from REST, and subscribe messages archived as sent
//! frames, so the subscription filter works as in production (a record of a symbol never
//! subscribed is refused) and the archive it leaves replays like a live one. The frame texts
//! are written here, not borrowed from the KIS adapter or its fake: a wrong layout cannot
//! pass both sides.
//!
//! What the script can say, each on market time:
//!
//! - **Data**: every subscribed symbol trades once per `trade_every` (at `trade_phase` past
//!   each grid instant) while a session is up, except muted symbols; plus any explicit
//!   frames at given instants.
//! - **Disconnect** at T: the session up at T ends with `StreamEnded`; **refuse** connects
//!   in a span (the attempt fails at once, as a refused TCP connect).
//! - **Silence** from T to T′: connected, PINGPONG only (stale, not dead); **stall**:
//!   connected, nothing at all. With an idle timeout a stalled session ends by itself, as
//!   the KIS adapter's `ws_idle_timeout` ends it.
//! - **REST**: snapshot answers per symbol (the symbol's price, its volume so far), failures
//!   per symbol and span, a latency per call; the universe listing; the volume ranking.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use jiff::civil::Date;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use model::{Clock, Price, Provider, Qty, RawFrame, RawFrameKind, Symbol, UtcTime};
use providers::{MarketProvider, ProviderError, UniverseEntry, VolumeRanking};

/// The wire the scripted venue speaks.
const PROVIDER: Provider = Provider::Kis;
const TR_TRADE: &str = "H0STCNT0";
const TR_PRICE: &str = "FHKST01010100";
const TR_RANKING: &str = "FHPST01710000";
const PINGPONG: &str = "PINGPONG";
/// Fields of one `H0STCNT0` record.
const TRADE_WIDTH: usize = 46;

/// What the scripted venue does, on market time. Build it with the methods below.
#[derive(Debug, Clone)]
pub struct Script {
    /// Listed instruments; a symbol's price is its previous close.
    pub universe: Vec<UniverseEntry>,
    /// Every subscribed, unmuted symbol trades once per this (`None`: explicit frames only)…
    pub trade_every: Option<Duration>,
    /// …at this offset past each multiple of it (market time since the epoch).
    pub trade_phase: Duration,
    /// Symbols the stream never carries, subscribed or not.
    pub muted: Vec<Symbol>,
    /// Stream frames (text as on the wire) sent at these instants while a session is up.
    pub frames: Vec<(UtcTime, String)>,
    /// The session up at each instant ends with this reason.
    pub disconnects: Vec<(UtcTime, String)>,
    /// Connect attempts in these spans fail.
    pub refusals: Vec<Range<UtcTime>>,
    /// Spans in which a session carries PINGPONG only.
    pub silences: Vec<Range<UtcTime>>,
    /// Spans in which a session carries nothing at all.
    pub stalls: Vec<Range<UtcTime>>,
    /// The server's PINGPONG period (outside stalls).
    pub ping_every: Option<Duration>,
    /// A session that receives nothing this long ends (the adapter's idle timeout).
    pub idle_timeout: Option<Duration>,
    /// Snapshot requests failing: for one symbol (or all, `None`) in a span.
    pub snapshot_failures: Vec<(Option<Symbol>, Range<UtcTime>)>,
    /// Market time one REST call takes (the rate limiter's pace).
    pub rest_latency: Duration,
    /// The volume ranking (best first); empty: the venue has none.
    pub ranking: Vec<(Symbol, Qty)>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            universe: Vec::new(),
            trade_every: None,
            trade_phase: Duration::ZERO,
            muted: Vec::new(),
            frames: Vec::new(),
            disconnects: Vec::new(),
            refusals: Vec::new(),
            silences: Vec::new(),
            stalls: Vec::new(),
            ping_every: None,
            idle_timeout: None,
            snapshot_failures: Vec::new(),
            rest_latency: Duration::ZERO,
            ranking: Vec::new(),
        }
    }
}

fn sym(code: &str) -> Symbol {
    Symbol::new(code).unwrap_or_else(|e| panic!("script symbol {code:?}: {e}"))
}

impl Script {
    pub fn new() -> Self {
        Script::default()
    }

    /// Lists `codes` (KRX six-character codes), each at previous close `prev_close`.
    pub fn universe(mut self, codes: &[&str], prev_close: i64) -> Self {
        self.universe.extend(codes.iter().map(|c| UniverseEntry {
            symbol: sym(c),
            name: format!("scripted {c}"),
            prev_close: Price::from_int(prev_close),
            traded_value_24h: None,
        }));
        self
    }

    /// Every subscribed symbol trades once per `every`, `phase` past each multiple of it.
    pub fn trades(mut self, every: Duration, phase: Duration) -> Self {
        (self.trade_every, self.trade_phase) = (Some(every), phase);
        self
    }

    /// The stream never carries `code`.
    pub fn mute(mut self, code: &str) -> Self {
        self.muted.push(sym(code));
        self
    }

    /// `text` arrives on the stream at `at` (if a session is up then).
    pub fn frame(mut self, at: UtcTime, text: impl Into<String>) -> Self {
        self.frames.push((at, text.into()));
        self
    }

    /// The session up at `at` ends (the server drops it).
    pub fn disconnect(mut self, at: UtcTime, why: &str) -> Self {
        self.disconnects.push((at, why.to_string()));
        self
    }

    /// Connects in `span` are refused.
    pub fn refuse(mut self, span: Range<UtcTime>) -> Self {
        self.refusals.push(span);
        self
    }

    /// Sessions in `span` carry PINGPONG only.
    pub fn silent(mut self, span: Range<UtcTime>) -> Self {
        self.silences.push(span);
        self
    }

    /// Sessions in `span` carry nothing at all.
    pub fn stall(mut self, span: Range<UtcTime>) -> Self {
        self.stalls.push(span);
        self
    }

    pub fn pings(mut self, every: Duration) -> Self {
        self.ping_every = Some(every);
        self
    }

    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.idle_timeout = Some(after);
        self
    }

    /// Snapshots of `code` (all symbols: `None`) fail in `span`.
    pub fn snapshots_fail(mut self, code: Option<&str>, span: Range<UtcTime>) -> Self {
        self.snapshot_failures.push((code.map(sym), span));
        self
    }

    pub fn rest_latency(mut self, latency: Duration) -> Self {
        self.rest_latency = latency;
        self
    }

    pub fn ranking(mut self, rows: &[(&str, i64)]) -> Self {
        self.ranking = rows.iter().map(|(c, v)| (sym(c), Qty::from_int(*v))).collect();
        self
    }

    fn in_any(spans: &[Range<UtcTime>], t: UtcTime) -> bool {
        spans.iter().any(|s| s.contains(&t))
    }

    fn price(&self, symbol: &Symbol) -> Price {
        self.universe.iter().find(|e| &e.symbol == symbol).map_or(Price::from_int(10_000), |e| e.prev_close)
    }
}

/// What the engine asked of the provider, in order, with the market time of each request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asked {
    /// Every connect attempt (a `stream` call), refused ones included.
    pub connects: Vec<UtcTime>,
    /// The symbols registered on the stream after each change: at every connect and on
    /// every subscription change.
    pub subscriptions: Vec<(UtcTime, Vec<Symbol>)>,
    /// Every REST snapshot request (when it was made; the answer comes `rest_latency`
    /// later), failed ones included.
    pub snapshots: Vec<(UtcTime, Symbol)>,
    pub universes: Vec<(UtcTime, Date)>,
    pub rankings: Vec<UtcTime>,
    /// Degrade mode's trades-only switch.
    pub trades_only: Vec<(UtcTime, bool)>,
}

/// The scripted venue. Share it as `Arc<ScriptedProvider>`: one clone goes to the collector
/// (as an `AnyProvider`), the test keeps another to read [`ScriptedProvider::asked`].
#[derive(Debug)]
pub struct ScriptedProvider {
    clock: Clock,
    script: Script,
    asked: Mutex<Asked>,
    /// Each symbol's volume so far (trades of `TRADE_SIZE`).
    volume: Mutex<HashMap<Symbol, i64>>,
    /// One session at a time, as KIS allows one WebSocket per key.
    streaming: AtomicBool,
}

/// Shares traded per scripted trade.
const TRADE_SIZE: i64 = 10;
/// Ask price above the trade price, in won.
const SPREAD: i64 = 5;

fn ended(why: impl Into<String>) -> ProviderError {
    ProviderError::StreamEnded { provider: PROVIDER, why: why.into() }
}

impl ScriptedProvider {
    pub fn new(clock: Clock, script: Script) -> Self {
        ScriptedProvider {
            clock,
            script,
            asked: Mutex::default(),
            volume: Mutex::default(),
            streaming: AtomicBool::new(false),
        }
    }

    /// What the engine asked so far.
    pub fn asked(&self) -> Asked {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn note(&self, f: impl FnOnce(&mut Asked)) {
        f(&mut self.asked.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn frame(&self, kind: RawFrameKind, channel: &str, text: String) -> RawFrame {
        RawFrame { provider: PROVIDER, kind, channel: channel.into(), frame: text, receive_time: self.clock.now() }
    }

    /// One trade of `symbol` now, counted in its volume.
    fn trade(&self, symbol: &Symbol, at: UtcTime) -> String {
        let volume = {
            let mut v = self.volume.lock().unwrap_or_else(|p| p.into_inner());
            let n = v.entry(symbol.clone()).or_default();
            *n += TRADE_SIZE;
            *n
        };
        let price = self.script.price(symbol);
        trade_frame(symbol, at, price, TRADE_SIZE, volume)
    }

    fn volume_of(&self, symbol: &Symbol) -> i64 {
        self.volume.lock().unwrap_or_else(|p| p.into_inner()).get(symbol).copied().unwrap_or(0)
    }

    /// Registers `want` (unsubscribing leavers first, as the KIS adapter does), archiving
    /// each request as a sent frame.
    async fn apply(
        &self,
        out: &mpsc::Sender<RawFrame>,
        registered: &mut BTreeSet<Symbol>,
        want: &[Symbol],
    ) -> Result<(), ProviderError> {
        let leaving: Vec<Symbol> = registered.iter().filter(|s| !want.contains(s)).cloned().collect();
        for s in leaving {
            registered.remove(&s);
            emit(out, self.frame(RawFrameKind::Sent, TR_TRADE, subscribe_frame(&s, false))).await?;
        }
        for s in want {
            if registered.insert(s.clone()) {
                emit(out, self.frame(RawFrameKind::Sent, TR_TRADE, subscribe_frame(s, true))).await?;
            }
        }
        let now = self.clock.now();
        self.note(|a| a.subscriptions.push((now, want.to_vec())));
        Ok(())
    }

    /// The next instant after `after` at which the session has something to do.
    fn next_moment(&self, after: UtcTime, last_rx: UtcTime, opened: UtcTime) -> Option<UtcTime> {
        let s = &self.script;
        let grid = |every: Duration, phase: Duration| next_on_grid(after, every, phase);
        let candidates = [
            s.trade_every.map(|e| grid(e, s.trade_phase)),
            s.ping_every.map(|e| grid(e, Duration::ZERO)),
            s.idle_timeout.map(|i| last_rx.plus(i).max(after.plus_millis(1))),
            s.frames.iter().map(|(t, _)| *t).filter(|t| *t > after).min(),
            s.disconnects.iter().map(|(t, _)| *t).filter(|t| *t > after && *t > opened).min(),
        ];
        candidates.into_iter().flatten().min()
    }

    /// Everything the session sends at `at`; `Err` when it ends there.
    async fn moment(
        &self,
        at: UtcTime,
        opened: UtcTime,
        out: &mpsc::Sender<RawFrame>,
        registered: &BTreeSet<Symbol>,
        last_rx: &mut UtcTime,
    ) -> Result<(), ProviderError> {
        let s = &self.script;
        if let Some((_, why)) = s.disconnects.iter().find(|(t, _)| *t == at && *t > opened) {
            let close = json!({ "reason": why }).to_string();
            emit(out, self.frame(RawFrameKind::Close, "ws", close)).await?;
            return Err(ended(format!("scripted disconnect: {why}")));
        }
        let stalled = Script::in_any(&s.stalls, at);
        let silent = stalled || Script::in_any(&s.silences, at);
        let on_grid = |every: Option<Duration>, phase: Duration| {
            every.is_some_and(|e| next_on_grid(at.plus_millis(-1), e, phase) == at)
        };
        if !stalled && on_grid(s.ping_every, Duration::ZERO) {
            let ping = pingpong_frame(at);
            emit(out, self.frame(RawFrameKind::Ws, PINGPONG, ping.clone())).await?;
            // The adapter echoes it.
            emit(out, self.frame(RawFrameKind::Sent, PINGPONG, ping)).await?;
            *last_rx = at;
        }
        if !silent && on_grid(s.trade_every, s.trade_phase) {
            for symbol in registered.iter().filter(|s| !self.script.muted.contains(s)) {
                let text = self.trade(symbol, at);
                emit(out, self.frame(RawFrameKind::Ws, TR_TRADE, text)).await?;
                *last_rx = at;
            }
        }
        for (_, text) in s.frames.iter().filter(|(t, _)| *t == at) {
            let channel = text.split('|').nth(1).filter(|_| !text.starts_with('{')).unwrap_or("control");
            emit(out, self.frame(RawFrameKind::Ws, channel, text.clone())).await?;
            *last_rx = at;
        }
        if let Some(idle) = s.idle_timeout
            && at >= last_rx.plus(idle)
        {
            let why = format!("nothing received for {}s", idle.as_secs());
            emit(out, self.frame(RawFrameKind::Close, "ws", json!({ "reason": why }).to_string())).await?;
            return Err(ended(why));
        }
        Ok(())
    }

    async fn session(
        &self,
        subscriptions: &mut watch::Receiver<Vec<Symbol>>,
        out: &mpsc::Sender<RawFrame>,
        stop: &mut watch::Receiver<bool>,
        opened: UtcTime,
    ) -> Result<(), ProviderError> {
        emit(out, self.frame(RawFrameKind::Open, "ws", json!({ "url": "scripted" }).to_string())).await?;
        let mut registered = BTreeSet::new();
        let want = subscriptions.borrow_and_update().clone();
        self.apply(out, &mut registered, &want).await?;
        let mut last_rx = opened;
        // Every moment at or before `done` has been handled.
        let mut done = opened.plus_millis(-1);
        loop {
            let next = self.next_moment(done, last_rx, opened);
            let wake = async {
                match next {
                    Some(t) => self.clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = model::stopped(stop) => return Ok(()),
                changed = subscriptions.changed() => {
                    if changed.is_err() {
                        return Err(ended("the subscription channel closed"));
                    }
                    let want = subscriptions.borrow_and_update().clone();
                    self.apply(out, &mut registered, &want).await?;
                }
                _ = wake => {
                    let Some(at) = next else { continue };
                    self.moment(at, opened, out, &registered, &mut last_rx).await?;
                    done = at;
                }
            }
        }
    }
}

struct Streaming<'a>(&'a AtomicBool);
impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

async fn emit(out: &mpsc::Sender<RawFrame>, f: RawFrame) -> Result<(), ProviderError> {
    out.send(f).await.map_err(|_| ended("the pipeline stopped reading"))
}

/// The first instant after `after` that is `phase` past a multiple of `every`.
fn next_on_grid(after: UtcTime, every: Duration, phase: Duration) -> UtcTime {
    let (every, phase) = (every.as_millis().max(1) as i64, phase.as_millis() as i64);
    let k = (after.as_millis() - phase).div_euclid(every) + 1;
    UtcTime::from_millis(k * every + phase)
}

impl MarketProvider for ScriptedProvider {
    fn id(&self) -> Provider {
        PROVIDER
    }

    /// KIS's own mapper: the scripted frames are KIS frames, subscriptions included.
    fn mapper(&self) -> providers::Mapper {
        <providers::kis::Kis as providers::module::ProviderModule>::mapper()
    }

    async fn universe(&self, day: Date) -> Result<Vec<UniverseEntry>, ProviderError> {
        let now = self.clock.now();
        self.note(|a| a.universes.push((now, day)));
        Ok(self.script.universe.clone())
    }

    async fn snapshot(&self, symbol: &Symbol) -> Result<RawFrame, ProviderError> {
        let asked = self.clock.now();
        self.note(|a| a.snapshots.push((asked, symbol.clone())));
        let failing = self
            .script
            .snapshot_failures
            .iter()
            .any(|(s, span)| s.as_ref().is_none_or(|s| s == symbol) && span.contains(&asked));
        if !self.script.rest_latency.is_zero() {
            self.clock.sleep(self.script.rest_latency).await;
        }
        if failing {
            return Err(ProviderError::Request {
                provider: PROVIDER,
                what: format!("inquire-price {symbol}"),
                why: "HTTP 503 (scripted)".into(),
            });
        }
        let body = snapshot_body(symbol, self.script.price(symbol), self.volume_of(symbol));
        Ok(self.frame(RawFrameKind::Rest, TR_PRICE, body))
    }

    fn set_trades_only(&self, on: bool) {
        let now = self.clock.now();
        self.note(|a| a.trades_only.push((now, on)));
    }

    async fn volume_ranking(&self) -> Result<VolumeRanking, ProviderError> {
        let now = self.clock.now();
        self.note(|a| a.rankings.push(now));
        if self.script.ranking.is_empty() {
            return Ok(VolumeRanking::default());
        }
        let rows: Vec<_> = self
            .script
            .ranking
            .iter()
            .map(|(s, v)| json!({ "mksc_shrn_iscd": s.as_str(), "acml_vol": v.to_string() }))
            .collect();
        let body = json!({ "rt_cd": "0", "msg_cd": "MCA00000", "msg1": "OK", "output": rows }).to_string();
        Ok(VolumeRanking {
            raw: Some(self.frame(RawFrameKind::Rest, TR_RANKING, body)),
            rows: self.script.ranking.clone(),
        })
    }

    async fn stream(
        &self,
        mut subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        let opened = self.clock.now();
        self.note(|a| a.connects.push(opened));
        if Script::in_any(&self.script.refusals, opened) {
            return Err(ended("connection refused (scripted)"));
        }
        if self.streaming.swap(true, Relaxed) {
            return Err(ended("a session is already up"));
        }
        let _guard = Streaming(&self.streaming);
        self.session(&mut subscriptions, &out, &mut stop, opened).await
    }
}

/// An `H0STCNT0` data frame of one trade record (the KIS layout: code, HHMMSS, price, …,
/// ASKP1 at 10, BIDP1 at 11, size at 12, volume at 13, side at 21, date at 33, ask and bid
/// sizes at 36 and 37), at `price` with the ask `SPREAD` above it.
pub fn trade_frame(symbol: &Symbol, at: UtcTime, price: Price, size: i64, volume: i64) -> String {
    let k = at.kst();
    let mut f = vec![String::from("0"); TRADE_WIDTH];
    f[0] = symbol.to_string();
    f[1] = format!("{:02}{:02}{:02}", k.hour(), k.minute(), k.second());
    f[2] = price.to_string();
    f[10] = (price.0 + rust_decimal::Decimal::from(SPREAD)).to_string();
    f[11] = price.to_string();
    f[12] = size.to_string();
    f[13] = volume.to_string();
    f[21] = "1".into();
    f[33] = at.kst_yyyymmdd();
    f[36] = "100".into();
    f[37] = "100".into();
    format!("0|{TR_TRADE}|001|{}", f.join("^"))
}

/// A registration request (`tr_type` 1) or its release (2), the approval key masked as the
/// adapter archives it.
pub fn subscribe_frame(symbol: &Symbol, register: bool) -> String {
    json!({
        "header": { "approval_key": "***", "custtype": "P", "tr_type": if register { "1" } else { "2" }, "content-type": "utf-8" },
        "body": { "input": { "tr_id": TR_TRADE, "tr_key": symbol.as_str() } },
    })
    .to_string()
}

pub fn pingpong_frame(at: UtcTime) -> String {
    let k = at.kst();
    let dt = format!("{}{:02}{:02}{:02}", at.kst_yyyymmdd(), k.hour(), k.minute(), k.second());
    json!({ "header": { "tr_id": PINGPONG, "datetime": dt } }).to_string()
}

/// An `inquire-price` response body.
pub fn snapshot_body(symbol: &Symbol, price: Price, volume: i64) -> String {
    let p = price.to_string();
    json!({
        "rt_cd": "0", "msg_cd": "MCA00000", "msg1": "OK",
        "output": {
            "stck_shrn_iscd": symbol.as_str(), "stck_prpr": p, "stck_oprc": p, "stck_hgpr": p,
            "stck_lwpr": p, "stck_sdpr": p, "acml_vol": volume.to_string(),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::MarketEvent;

    #[test]
    fn grid_instants_follow_every_and_phase() {
        let t = UtcTime::from_millis(10_000);
        let s = Duration::from_secs(1);
        assert_eq!(next_on_grid(t, s, Duration::from_millis(250)).as_millis(), 10_250);
        assert_eq!(next_on_grid(UtcTime::from_millis(10_250), s, Duration::from_millis(250)).as_millis(), 11_250);
        assert_eq!(next_on_grid(UtcTime::from_millis(9_999), s, Duration::ZERO).as_millis(), 10_000);
    }

    #[test]
    fn scripted_frames_parse_as_kis() {
        let at = UtcTime::parse("2026-01-14T00:30:01.250Z").unwrap();
        let code = sym("005930");
        let frame = RawFrame {
            provider: PROVIDER,
            kind: RawFrameKind::Ws,
            channel: TR_TRADE.into(),
            frame: trade_frame(&code, at, Price::from_int(70_000), 10, 30),
            receive_time: at,
        };
        let m = providers::mapper(PROVIDER).unwrap();
        let events = (m.parse)(&frame).unwrap();
        assert_eq!(events.len(), 2, "a tick and its level-1 quote: {events:?}");
        assert_eq!(events[0].0, UtcTime::parse("2026-01-14T00:30:01Z").unwrap());
        let MarketEvent::Tick(t) = &events[0].1 else { panic!("{events:?}") };
        assert_eq!(
            (t.price, t.size, t.cum_volume),
            (Price::from_int(70_000), Qty::from_int(10), Some(Qty::from_int(30)))
        );
        let MarketEvent::Quote(q) = &events[1].1 else { panic!("{events:?}") };
        assert_eq!((q.bid_price, q.ask_price), (Price::from_int(70_000), Price::from_int(70_005)));
        let subscribes = m.subscribes.unwrap();
        assert_eq!(subscribes(&subscribe_frame(&code, true)), vec![code.clone()]);
        assert!(subscribes(&subscribe_frame(&code, false)).is_empty());
        let rest = RawFrame {
            kind: RawFrameKind::Rest,
            channel: TR_PRICE.into(),
            frame: snapshot_body(&code, Price::from_int(70_000), 30),
            ..frame
        };
        let events = (m.parse)(&rest).unwrap();
        let MarketEvent::Snapshot(s) = &events[0].1 else { panic!("{events:?}") };
        assert_eq!((s.last_price, s.volume), (Price::from_int(70_000), Qty::from_int(30)));
        let ping = RawFrame { kind: RawFrameKind::Ws, channel: PINGPONG.into(), frame: pingpong_frame(at), ..rest };
        assert!((m.parse)(&ping).unwrap().is_empty());
    }
}
