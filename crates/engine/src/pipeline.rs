//! Shared steps of every track: archive the raw frame first, parse it, run each event through
//! the observer core, and write every refusal as a system event with its evidence.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use archive::Stream;
use model::{
    Market, MarketEvent, Meta, OverflowEntry, Provider, QualityFlag, RawFrame, RawFrameKind, Record, SessionId, Symbol,
    SystemEvent, UtcTime,
};
use providers::{MarketProvider, evidence};

use crate::observer::{ObserverCore, Rejection};
use crate::sink::{SinkError, SinkHandle};
use crate::stats::{Stats, inc};

/// One raw-archive line: the frame exactly as received, numbered for `raw_ref` and replay.
#[derive(Serialize)]
pub struct RawLine<'a> {
    pub provider: Provider,
    pub kind: RawFrameKind,
    pub channel: &'a str,
    pub seq: u64,
    pub frame: &'a str,
}

/// Writes system events and overflow entries for one provider. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    pub sink: SinkHandle,
    pub provider: Provider,
    pub session: SessionId,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<std::sync::atomic::AtomicU8>,
}

impl Events {
    pub fn meta(&self, event_time: UtcTime, receive_time: UtcTime) -> Meta {
        let mut m = Meta::new(event_time, receive_time, self.session.clone());
        m.mitigation_level = self.mitigation.load(Relaxed);
        m
    }

    pub async fn system(&self, at: UtcTime, event: SystemEvent) -> Result<(), SinkError> {
        if let SystemEvent::GapMarker { gap_seconds, .. } = &event {
            inc(&self.stats.gaps);
            self.stats.gauges.push_gap(*gap_seconds);
        }
        inc(&self.stats.system_events);
        let rec = Record { body: event, meta: self.meta(at, at) };
        self.sink.write(Stream::Events(self.provider), at, &rec).await
    }

    pub async fn overflow(&self, at: UtcTime, entry: OverflowEntry) -> Result<(), SinkError> {
        inc(&self.stats.overflow_entries);
        let rec = Record { body: entry, meta: self.meta(at, at) };
        self.sink.write(Stream::Overflow(self.provider), at, &rec).await
    }

    pub async fn rejected(
        &self,
        at: UtcTime,
        stage: &str,
        reason: String,
        symbol: Option<String>,
        frame: &str,
    ) -> Result<(), SinkError> {
        let event = SystemEvent::RecordRejected { stage: stage.to_string(), reason, symbol, evidence: evidence(frame) };
        self.system(at, event).await
    }
}

/// The symbols the stream was ever asked for, read from the subscribe messages it sent
/// (archived in band, so `replay` applies the same rule): a stream record for any other
/// symbol was never requested (on a plain `ws://` path anyone can inject one) and must
/// neither feed Track B nor become a slot candidate, nor grow per-symbol state without bound.
#[derive(Debug, Default)]
pub struct Subscribed {
    ever: HashSet<Symbol>,
}

impl Subscribed {
    /// Notes what a sent frame subscribes.
    pub fn on_sent(&mut self, subscribes: fn(&str) -> Vec<Symbol>, frame: &str) {
        self.ever.extend(subscribes(frame));
    }

    pub fn allows(&self, symbol: &Symbol) -> bool {
        self.ever.contains(symbol)
    }
}

pub const STAGE_SUBSCRIPTION: &str = "subscription";

/// The bytes of stream frames waiting for the observer, bounded like their count: a burst
/// of large messages (each within the provider's WebSocket limit) blocks the stream once
/// `pipeline.frames_bytes` are queued, instead of holding `frames_capacity` × 1 MiB.
#[derive(Debug)]
pub struct FrameBytes {
    queued: tokio::sync::Semaphore,
    limit: usize,
}

impl FrameBytes {
    pub fn new(limit: usize) -> Self {
        FrameBytes { queued: tokio::sync::Semaphore::new(limit), limit }
    }

    /// A frame larger than the whole budget takes all of it (and so waits for an empty queue).
    fn cost(&self, f: &RawFrame) -> u32 {
        f.frame.len().clamp(1, self.limit).min(u32::MAX as usize) as u32
    }

    /// Waits until `f` fits.
    pub async fn reserve(&self, f: &RawFrame) {
        if let Ok(permit) = self.queued.acquire_many(self.cost(f)).await {
            permit.forget();
        }
    }

    /// `f` left the queue.
    pub fn release(&self, f: &RawFrame) {
        self.queued.add_permits(self.cost(f) as usize);
    }

    pub fn available(&self) -> usize {
        self.queued.available_permits()
    }
}

/// Turns raw frames into accepted records for one provider and one track.
pub struct FrameProcessor<P> {
    pub provider: Arc<P>,
    pub core: ObserverCore,
    pub events: Events,
    pub seq: Arc<AtomicU64>,
    pub refs: RawRefs,
    /// Mitigation level recorded with the last raw frame, for records derived in band from it.
    pub last_level: u8,
    /// `Gap` for the REST snapshots taken as evidence after a stream gap, `Degraded` for
    /// degrade mode's REST polls: their raw lines and records say so, and replay keeps them
    /// out of the swing files.
    pub quality: QualityFlag,
    /// For stream frames: only records of symbols the stream was asked for pass (where the
    /// provider's mapper reads subscriptions; `None`: everything passes).
    pub subscribed: Option<Subscribed>,
}

impl<P: MarketProvider> FrameProcessor<P> {
    pub fn market(&self) -> Market {
        self.provider.market()
    }

    /// Archives `frame`, then returns the records that passed validation and the guard.
    pub async fn process(&mut self, frame: &RawFrame, passed: &mut Vec<Record<MarketEvent>>) -> Result<(), SinkError> {
        passed.clear();
        let rt = frame.receive_time;
        let seq = self.seq.fetch_add(1, Relaxed) + 1;
        inc(&self.events.stats.frames_received);
        let mut line = Vec::with_capacity(frame.frame.len() + RAW_LINE_OVERHEAD);
        let mut meta = self.events.meta(rt, rt);
        meta.quality_flag = self.quality;
        self.last_level = meta.mitigation_level;
        encode_raw_line(&mut line, frame, seq, &meta);
        self.events.sink.write_line(Stream::Raw(frame.provider), rt, line).await?;
        if frame.kind == RawFrameKind::Sent
            && let Some(sub) = self.subscribed.as_mut()
            && let Some(subscribes) = providers::mapper(frame.provider).and_then(|m| m.subscribes)
        {
            sub.on_sent(subscribes, &frame.frame);
        }
        if !matches!(frame.kind, RawFrameKind::Ws | RawFrameKind::Rest) {
            return Ok(());
        }
        let parsed = match self.provider.parse(frame) {
            Ok(p) => p,
            Err(e) => {
                inc(&self.events.stats.frames_malformed);
                return self.events.rejected(rt, "normalize", e.to_string(), None, &frame.frame).await;
            }
        };
        let mut raw_ref = Some(self.refs.get(frame.provider, rt, seq));
        let mut events = parsed.into_iter().peekable();
        while let Some((event_time, event)) = events.next() {
            // The frame's last event takes its raw_ref, earlier ones a copy.
            let raw_ref = if events.peek().is_some() { raw_ref.clone() } else { raw_ref.take() };
            let symbol = event.symbol().clone();
            if frame.kind == RawFrameKind::Ws
                && let Some(sub) = self.subscribed.as_ref()
                && !sub.allows(&symbol)
            {
                inc(&self.events.stats.events_normalized);
                inc(&self.events.stats.rejected_unsubscribed);
                let why = format!("{symbol} was never subscribed on this stream");
                self.events.rejected(rt, STAGE_SUBSCRIPTION, why, Some(symbol.to_string()), &frame.frame).await?;
                continue;
            }
            match self.core.observe(event_time, rt, event, raw_ref) {
                Ok(mut rec) => {
                    if self.quality != QualityFlag::Normal {
                        rec.meta.quality_flag = self.quality;
                    }
                    passed.push(rec)
                }
                Err(Rejection { stage, reason }) => {
                    self.events.rejected(rt, stage, reason, Some(symbol.to_string()), &frame.frame).await?
                }
            }
        }
        Ok(())
    }
}

/// Bytes a raw line adds around its frame (keys, times, session): sizes the line buffer once.
pub const RAW_LINE_OVERHEAD: usize = 320;

/// Encodes the raw-archive line of `frame`, byte for byte what serde would write for
/// `Record<RawLine>` (a test holds the two equal), without serde's per-key escaping: this
/// runs for every frame a provider sends, and only the frame and channel can need escaping.
pub fn encode_raw_line(out: &mut Vec<u8>, frame: &RawFrame, seq: u64, meta: &Meta) {
    let string = json_string;
    out.extend_from_slice(b"{\"provider\":\"");
    out.extend_from_slice(frame.provider.as_str().as_bytes());
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(frame.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"channel\":");
    string(out, &frame.channel);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(itoa_u64(seq, &mut [0u8; 20]));
    out.extend_from_slice(b",\"frame\":");
    string(out, &frame.frame);
    out.extend_from_slice(b",\"schema_version\":");
    string(out, &meta.schema_version);
    // A raw frame's event time is its receive time: format it once.
    let event = meta.event_time.rfc3339_bytes();
    out.extend_from_slice(b",\"event_time\":\"");
    out.extend_from_slice(&event);
    out.extend_from_slice(b"\",\"receive_time\":\"");
    if meta.receive_time == meta.event_time {
        out.extend_from_slice(&event);
    } else {
        meta.receive_time.write_rfc3339(out);
    }
    out.extend_from_slice(b"\",\"session_id\":");
    string(out, meta.session_id.as_str());
    out.extend_from_slice(b",\"mitigation_level\":");
    out.extend_from_slice(itoa_u64(meta.mitigation_level as u64, &mut [0u8; 20]));
    out.extend_from_slice(b",\"quality_flag\":\"");
    out.extend_from_slice(meta.quality_flag.as_str().as_bytes());
    out.push(b'"');
    if let Some(r) = &meta.raw_ref {
        out.extend_from_slice(b",\"raw_ref\":");
        string(out, r);
    }
    if let Some(m) = &meta.mapper_version {
        out.extend_from_slice(b",\"mapper_version\":");
        string(out, m);
    }
    out.push(b'}');
}

/// Writes `s` as a JSON string, byte for byte what serde_json writes (a test holds the two
/// equal): `"` and `\\` escaped with a backslash, control characters as `\b \t \n \f \r`
/// or `\u00xx`, everything else (UTF-8 included) as is. Frames are mostly long runs with
/// nothing to escape: those are found 64 bytes at a time and copied whole.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    fn escape(out: &mut Vec<u8>, b: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]),
        }
    }
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0; // bytes[..copied] are written
    model::scan::json_escape_masks(bytes, |at, mut hits| {
        while hits != 0 {
            let i = at + hits.trailing_zeros() as usize;
            out.extend_from_slice(&bytes[copied..i]);
            escape(out, bytes[i]);
            copied = i + 1;
            hits &= hits - 1;
        }
        true
    });
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

fn itoa_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// `raw/{provider}/YYYYMMDD/HH.jsonl#seq`: where the frame behind a record is archived.
pub fn raw_ref(provider: Provider, receive_time: UtcTime, seq: u64) -> String {
    RawRefs::default().get(provider, receive_time, seq)
}

/// Builds `raw_ref`s, keeping the file part for the current hour: it is needed for every
/// frame and changes once an hour.
#[derive(Debug, Default)]
pub struct RawRefs {
    key: Option<(Provider, i64)>,
    prefix: String,
}

const MS_PER_HOUR: i64 = 3_600_000;

impl RawRefs {
    pub fn get(&mut self, provider: Provider, receive_time: UtcTime, seq: u64) -> String {
        // Seoul is a whole number of hours from UTC, so UTC hours are Seoul hours.
        let key = (provider, receive_time.as_millis().div_euclid(MS_PER_HOUR));
        if self.key != Some(key) {
            let k = receive_time.kst();
            self.prefix = format!("raw/{provider}/{}/{:02}.jsonl#", receive_time.kst_yyyymmdd(), k.hour());
            self.key = Some(key);
        }
        let mut buf = [0u8; 20];
        let digits = itoa_u64(seq, &mut buf);
        let mut s = String::with_capacity(self.prefix.len() + digits.len());
        s.push_str(&self.prefix);
        // itoa_u64 writes ASCII digits only.
        s.push_str(std::str::from_utf8(digits).unwrap_or_default());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_encoded_raw_line_equals_serde() {
        let t = UtcTime::parse("2026-01-14T01:02:03.004Z").unwrap();
        let frame = RawFrame {
            provider: Provider::Sim,
            kind: RawFrameKind::Ws,
            channel: "tr\"ade\u{1}".into(),
            frame: "{\"t\":\"trade\",\"s\":\"005930\"}\\\n한글".into(),
            receive_time: t,
        };
        for level in [0u8, 2] {
            let mut meta = Meta::new(t, t.plus_millis(7), SessionId::starting_at(t));
            meta.mitigation_level = level;
            if level > 0 {
                meta.quality_flag = model::QualityFlag::Degraded;
                meta.raw_ref = Some("raw/x#1".into());
                meta.mapper_version = Some("sim/1".into());
            }
            let mut ours = Vec::new();
            encode_raw_line(&mut ours, &frame, 18_446_744_073_709_551_615, &meta);
            let body = RawLine {
                provider: frame.provider,
                kind: frame.kind,
                channel: &frame.channel,
                seq: u64::MAX,
                frame: &frame.frame,
            };
            let theirs = serde_json::to_vec(&Record { body, meta }).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn json_strings_equal_serde() {
        let mut cases: Vec<String> = (0u32..=0x80).filter_map(char::from_u32).map(|c| c.to_string()).collect();
        cases.push(String::new());
        cases.push("0|H0STCNT0|001|005930^093354^71900^5^-100^-0.14".into());
        cases.push("{\"t\":\"trade\",\"s\":\"005930\"}\\\n한글\u{7f}\u{1f}".repeat(3));
        let mut rng = fastrand::Rng::with_seed(11);
        let alphabet: Vec<char> = "ab\"\\\n\t\r\u{0}\u{8}\u{c}\u{1f}\u{7f} 가é😀".chars().collect();
        for _ in 0..5000 {
            let n = rng.usize(0..40);
            cases.push((0..n).map(|_| alphabet[rng.usize(..alphabet.len())]).collect());
        }
        for s in cases {
            let mut ours = b"x".to_vec();
            json_string(&mut ours, &s);
            let mut theirs = b"x".to_vec();
            serde_json::to_writer(&mut theirs, &s).unwrap();
            assert_eq!(ours, theirs, "{s:?}");
        }
    }

    #[test]
    fn raw_refs_follow_the_seoul_hour() {
        let mut refs = RawRefs::default();
        let t = UtcTime::parse("2026-01-14T14:59:59.999Z").unwrap();
        assert_eq!(refs.get(Provider::Kis, t, 7), "raw/kis/20260114/23.jsonl#7");
        assert_eq!(refs.get(Provider::Kis, t.plus_millis(1), 8), "raw/kis/20260115/00.jsonl#8");
        assert_eq!(refs.get(Provider::Upbit, t.plus_millis(1), 9), "raw/upbit/20260115/00.jsonl#9");
    }

    #[tokio::test]
    async fn queued_stream_bytes_are_bounded() {
        use std::future::Future;
        let budget = std::sync::Arc::new(FrameBytes::new(1000));
        let frame = |n: usize| RawFrame {
            provider: Provider::Kis,
            kind: RawFrameKind::Ws,
            channel: "H0STCNT0".into(),
            frame: "x".repeat(n),
            receive_time: UtcTime::from_millis(0),
        };
        budget.reserve(&frame(600)).await;
        assert_eq!(budget.available(), 400);
        // 600 more bytes do not fit until the first frame leaves the queue: the reservation
        // stays pending when polled (no clock involved), and completes after the release.
        let second = frame(600);
        let mut waiting = Box::pin(budget.reserve(&second));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        budget.release(&frame(600));
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert_eq!(budget.available(), 400);
        // A frame larger than the budget takes all of it rather than waiting forever.
        budget.release(&frame(600));
        budget.reserve(&frame(5000)).await;
        assert_eq!(budget.available(), 0);
    }
}
