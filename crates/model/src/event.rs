//! What flows through the pipeline: raw frames in, normalized events in the middle, records
//! with common meta out.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::ids::{Market, Provider, Symbol};
use crate::meta::Meta;
use crate::num::{Price, Qty};
use crate::time::UtcTime;

/// Which way a raw frame went, so `replay` can rebuild a session exactly: what we received,
/// what we sent, and when connections opened and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFrameKind {
    /// A WebSocket data or control message received.
    Ws,
    /// A REST response body received.
    Rest,
    /// A message we sent (subscribe / unsubscribe).
    Sent,
    Open,
    Close,
    /// A Track B sampling instant, in band with the frames, so a replay samples the same
    /// state at the same moments (the frame text names the track and its due time).
    Clock,
}

impl RawFrameKind {
    /// The serialized name (what serde writes).
    pub const fn as_str(self) -> &'static str {
        match self {
            RawFrameKind::Ws => "ws",
            RawFrameKind::Rest => "rest",
            RawFrameKind::Sent => "sent",
            RawFrameKind::Open => "open",
            RawFrameKind::Close => "close",
            RawFrameKind::Clock => "clock",
        }
    }
}

/// A frame exactly as received, archived before anything parses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawFrame {
    pub provider: Provider,
    pub kind: RawFrameKind,
    /// The endpoint, TR id or channel the frame belongs to.
    pub channel: String,
    /// The frame text. Binary WebSocket frames from our providers carry UTF-8 JSON.
    pub frame: String,
    #[serde(skip)]
    pub receive_time: UtcTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

/// One executed trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub price: Price,
    pub size: Qty,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Day's accumulated volume after this trade, when the provider sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cum_volume: Option<Qty>,
    /// Provider trade id or sequence number, used for de-duplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub price: Price,
    pub size: Qty,
}

/// Best bid/ask, with optional deeper levels (best first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub bid_price: Price,
    pub bid_size: Qty,
    pub ask_price: Price,
    pub ask_size: Qty,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bids: Vec<Level>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asks: Vec<Level>,
}

/// A REST snapshot of one symbol (Track A).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub last_price: Price,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub prev_close: Price,
    /// Day's accumulated volume.
    pub volume: Qty,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_price: Option<Price>,
}

/// A normalized market event, before validation and enrichment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MarketEvent {
    Tick(Tick),
    Quote(Quote),
    Snapshot(Snapshot),
}

impl MarketEvent {
    pub fn symbol(&self) -> &Symbol {
        match self {
            MarketEvent::Tick(t) => &t.symbol,
            MarketEvent::Quote(q) => &q.symbol,
            MarketEvent::Snapshot(s) => &s.symbol,
        }
    }
    pub fn provider(&self) -> Provider {
        match self {
            MarketEvent::Tick(t) => t.provider,
            MarketEvent::Quote(q) => q.provider,
            MarketEvent::Snapshot(s) => s.provider,
        }
    }
    pub fn market(&self) -> Market {
        match self {
            MarketEvent::Tick(t) => t.market,
            MarketEvent::Quote(q) => q.market,
            MarketEvent::Snapshot(s) => s.market,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            MarketEvent::Tick(_) => "tick",
            MarketEvent::Quote(_) => "quote",
            MarketEvent::Snapshot(_) => "snapshot",
        }
    }

    /// The first price, size or volume whose magnitude is above `limit`, with its field name
    /// (see [`crate::num::PLAUSIBLE_ABS_MAX`]).
    pub fn number_beyond(&self, limit: Decimal) -> Option<(&'static str, Decimal)> {
        let over = |name: &'static str, v: Decimal| (v.abs() > limit).then_some((name, v));
        let levels = |q: &Quote| {
            q.bids.iter().chain(&q.asks).find_map(|l| over("level price", l.price.0).or(over("level size", l.size.0)))
        };
        match self {
            MarketEvent::Tick(t) => over("price", t.price.0)
                .or_else(|| over("size", t.size.0))
                .or_else(|| t.cum_volume.and_then(|v| over("cum_volume", v.0))),
            MarketEvent::Quote(q) => over("bid_price", q.bid_price.0)
                .or_else(|| over("bid_size", q.bid_size.0))
                .or_else(|| over("ask_price", q.ask_price.0))
                .or_else(|| over("ask_size", q.ask_size.0))
                .or_else(|| levels(q)),
            MarketEvent::Snapshot(s) => [
                ("last_price", Some(s.last_price.0)),
                ("open", Some(s.open.0)),
                ("high", Some(s.high.0)),
                ("low", Some(s.low.0)),
                ("prev_close", Some(s.prev_close.0)),
                ("volume", Some(s.volume.0)),
                ("bid_price", s.bid_price.map(|p| p.0)),
                ("ask_price", s.ask_price.map(|p| p.0)),
            ]
            .into_iter()
            .find_map(|(name, v)| v.and_then(|v| over(name, v))),
        }
    }
}

impl ScalpSample {
    /// The first price, size or volume whose magnitude is above `limit`, with its name.
    pub fn number_beyond(&self, limit: Decimal) -> Option<(&'static str, Decimal)> {
        [
            ("bid_price", self.bid_price.map(|p| p.0)),
            ("ask_price", self.ask_price.map(|p| p.0)),
            ("bid_size", self.bid_size.map(|q| q.0)),
            ("ask_size", self.ask_size.map(|q| q.0)),
            ("last_price", self.last_price.map(|p| p.0)),
            ("volume", self.volume.map(|q| q.0)),
        ]
        .into_iter()
        .find_map(|(name, v)| v.filter(|v| v.abs() > limit).map(|v| (name, v)))
    }
}

/// Track B's sample of one slot symbol's latest state (seed 001 §2.14.4 `scalp_ticks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalpSample {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub bid_price: Option<Price>,
    pub ask_price: Option<Price>,
    pub bid_size: Option<Qty>,
    pub ask_size: Option<Qty>,
    pub last_price: Option<Price>,
    /// Day's accumulated volume at the newest trade.
    pub volume: Option<Qty>,
    /// Age of the newest data behind this sample at sampling time; `None` if nothing has
    /// arrived for the symbol yet.
    pub data_age_ms: Option<i64>,
    /// The sampling interval in force (500 ms at 2 Hz).
    pub sample_interval_ms: u64,
}

/// A candidate that did not get a slot, or a sample that could not be kept (seed 001 §2.14.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverflowEntry {
    pub timestamp: UtcTime,
    pub provider: Provider,
    pub symbol: Symbol,
    pub candidate_score: f64,
    pub cutoff_rank: u32,
    pub decision_reason: String,
}

/// System events (seed 001 §2.14.2), tagged by `event_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum SystemEvent {
    GapMarker {
        gap_start_ts: UtcTime,
        gap_end_ts: UtcTime,
        gap_seconds: i64,
        scope: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    ReconnectionEvent {
        timestamp: UtcTime,
        attempt_no: u32,
        backoff_seconds: u64,
        result: String,
        #[serde(default)]
        recovered_slot_list: Vec<Symbol>,
        mitigation_level_after: u8,
    },
    /// A record a stage refused, with the evidence it refused.
    RecordRejected {
        stage: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        symbol: Option<String>,
        evidence: String,
    },
    SessionStart {
        source: String,
        version: String,
        #[serde(default)]
        detail: serde_json::Value,
    },
    SessionEnd {
        clean: bool,
        #[serde(default)]
        counters: serde_json::Value,
    },
    /// Start-up found a file left open by a crash and repaired it.
    ArchiveRecovery { file: String, cut_bytes: u64, kept_lines: u64 },
    /// Track A or B could not finish its work in time, or a queue overflowed.
    Overrun { track: String, detail: String },
    /// The mitigation level changed (seed 001 §2.10), with the readings that moved it.
    Mitigation { from: u8, to: u8, sample_interval_ms: u64, reason: String, metrics: serde_json::Value },
    /// The watchdog or the reconnection manager acted on a provider session without a human:
    /// `restart_session`, `degrade`, `recover`, `scalp_paused`, `scalp_resumed`.
    SelfHealing {
        action: String,
        level: u8,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<serde_json::Value>,
    },
    /// An anomaly-day condition tripped (seed 001 §2.8); the day's retention is extended.
    AnomalyDay { condition: String, value: f64, threshold: f64, date: String },
    /// A REST snapshot of a slot symbol taken right after a stream gap closed: marked evidence
    /// of the state after the hole, never a substitute for the ticks missed in it.
    GapSnapshot { gap_start_ts: UtcTime, gap_end_ts: UtcTime, snapshot: Snapshot },
    /// The slot manager changed the slot list; every score it used is in `candidates`.
    SlotDecision {
        slots: Vec<Symbol>,
        added: Vec<Symbol>,
        removed: Vec<Symbol>,
        #[serde(default)]
        candidates: serde_json::Value,
    },
    /// A symbol that entered a slot had no stream data `waited_ms` after `entered`
    /// (`tracks.scalp.slot_dark_after`): its samples rest on the REST seed, if any.
    SlotDark { symbol: Symbol, entered: UtcTime, waited_ms: u64, seeded: bool },
    /// `etl` loaded this archive day into the query database and compared, per table, the
    /// rows the archive implies with the rows the database holds.
    EtlReconcile {
        /// The archive partition date loaded, `YYYYMMDD`.
        date: String,
        /// The database's storage mode: sqlite, native or timescale.
        mode: String,
        /// Every table reconciled.
        ok: bool,
        /// Per table: `table`, `source_lines`, `expected`, `written`, `in_db`, `ok`.
        tables: serde_json::Value,
        /// Raw frames per provider that the ETL has no parser for.
        #[serde(default)]
        unparsed_frames: std::collections::BTreeMap<String, u64>,
        #[serde(default)]
        malformed_frames: u64,
        #[serde(default)]
        bad_lines: u64,
        /// The first unreadable lines, as `file:line: why`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bad_line_samples: Vec<String>,
        #[serde(default)]
        files: u64,
        #[serde(default)]
        elapsed_ms: u64,
    },
    /// A day's backup package was written and verified (`backups/YYYYMMDD/SUCCESS.marker`).
    BackupCreated {
        date: Day,
        files: u64,
        /// Archive bytes packed, and their compressed size in the package.
        original_bytes: u64,
        stored_bytes: u64,
        manifest_sha256: String,
        elapsed_ms: u64,
    },
    /// Packing, pulling or verifying a day's backup failed; the day counts as an anomaly day
    /// and stays unbacked (retention keeps it).
    BackupFailed {
        date: Day,
        /// `create`, `pull` or `verify`.
        stage: String,
        reason: String,
    },
    /// A coordinator verified its copy of this day's package: retention may now delete it.
    BackupReceipt { date: Day, held_by: String, manifest_sha256: String },
    /// Closed archive files of `date` compressed in place to `.jsonl.zst`.
    ArchiveCompressed { date: Day, files: u64, bytes_before: u64, bytes_after: u64 },
    /// Retention deleted files of `date` under `rule`.
    RetentionDeleted { date: Day, rule: String, files: Vec<String>, bytes: u64 },
    /// Retention would delete `date` under `rule` but keeps it: no verified copy exists. An
    /// alert condition once the day is past the cap.
    RetentionHeld { date: Day, rule: String, reason: String },
    /// The disk is above `retention.disk_high_water_percent`; what retention could free.
    DiskPressure { used_percent: f64, high_water_percent: f64, freed_bytes: u64, detail: String },
}

impl SystemEvent {
    pub fn gap(start: UtcTime, end: UtcTime, scope: &str, reason: &str, detail: Option<String>) -> Self {
        SystemEvent::GapMarker {
            gap_start_ts: start,
            gap_end_ts: end,
            gap_seconds: end.millis_since(start).max(0) / 1000,
            scope: scope.to_string(),
            reason: reason.to_string(),
            detail,
        }
    }
}

/// A body with the common meta flattened beside it: one archive line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<T> {
    #[serde(flatten)]
    pub body: T,
    #[serde(flatten)]
    pub meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::SessionId;

    #[test]
    fn record_line_has_body_and_meta_without_duplicate_keys() {
        let t = UtcTime::parse("2026-01-14T00:31:05.123Z").unwrap();
        let rec = Record {
            body: SystemEvent::gap(t, t.plus_millis(45_000), "scalp", "ws_disconnect", None),
            meta: Meta::new(t, t, SessionId::starting_at(t)),
        };
        let line = serde_json::to_string(&rec).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event_type"], "gap_marker");
        assert_eq!(v["gap_seconds"], 45);
        assert_eq!(v["session_id"], "sess_20260114_093105");
        let back: Record<SystemEvent> = serde_json::from_str(&line).unwrap();
        assert_eq!(back, rec);
    }
}
