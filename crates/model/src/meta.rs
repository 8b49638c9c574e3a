//! The common meta of seed 001 §2.14.3, carried by every archived record.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::UtcTime;

/// Bumped when a record's shape changes, so readers of a years-old archive know which
/// layout a line has.
pub const SCHEMA_VERSION: &str = "1.0";

/// `sess_YYYYMMDD_HHMMSS`, the Seoul wall-clock time at which a `collect` run started.
/// Shared (`Arc`) because every record of a session carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(SessionId(s.as_ref().into()))
    }
}

impl SessionId {
    pub fn starting_at(t: UtcTime) -> Self {
        let k = t.kst();
        let text = format!(
            "sess_{:04}{:02}{:02}_{:02}{:02}{:02}",
            k.year(),
            k.month(),
            k.day(),
            k.hour(),
            k.minute(),
            k.second()
        );
        SessionId(text.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QualityFlag {
    #[default]
    Normal,
    /// Recorded while mitigation had lowered the sampling rate or coverage.
    Degraded,
    /// Evidence recorded around a gap (e.g. a REST snapshot after a reconnect).
    Gap,
    /// A Track B sample whose newest data is older than `tracks.scalp.stale_after`: the
    /// values are what was last known, not what the market shows now.
    Stale,
    /// A Track B sample of a slot symbol for which nothing has arrived yet: every value is
    /// null.
    NoData,
}

impl QualityFlag {
    /// The serialized name (what serde writes).
    pub const fn as_str(self) -> &'static str {
        match self {
            QualityFlag::Normal => "normal",
            QualityFlag::Degraded => "degraded",
            QualityFlag::Gap => "gap",
            QualityFlag::Stale => "stale",
            QualityFlag::NoData => "no_data",
        }
    }

    /// Reads a stored flag; anything unknown is `None` (the caller decides what that means).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Normal, Self::Degraded, Self::Gap, Self::Stale, Self::NoData].into_iter().find(|f| f.as_str() == s)
    }

    /// How far from normal a record is, for a derived record (a bar) that takes its worst
    /// input's flag.
    pub const fn severity(self) -> u8 {
        match self {
            QualityFlag::Normal => 0,
            QualityFlag::Degraded => 1,
            QualityFlag::Stale => 2,
            QualityFlag::Gap => 3,
            QualityFlag::NoData => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub schema_version: std::borrow::Cow<'static, str>,
    /// When the exchange says it happened; for frames and events we originate, when we saw it.
    pub event_time: UtcTime,
    /// When our process received it (local clock).
    pub receive_time: UtcTime,
    pub session_id: SessionId,
    pub mitigation_level: u8,
    pub quality_flag: QualityFlag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ref: Option<String>,
    /// Version of the provider frame mapping that derived this record (`kis/1`, `sim/1`), so
    /// a replay with a newer parser never silently rewrites history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapper_version: Option<std::borrow::Cow<'static, str>>,
}

impl Meta {
    /// Why this meta cannot be a recorded record's: an event or receive time outside
    /// [`crate::time::PLAUSIBLE_TIMES`] (a damaged or forged archive line).
    pub fn implausible(&self) -> Option<String> {
        [("event_time", self.event_time), ("receive_time", self.receive_time)]
            .into_iter()
            .find(|(_, t)| !t.is_plausible())
            .map(|(name, t)| {
                let d = crate::time::PLAUSIBLE_TIMES;
                format!("implausible {name} {t} (outside {}..{})", d.start, d.end)
            })
    }

    pub fn new(event_time: UtcTime, receive_time: UtcTime, session_id: SessionId) -> Self {
        Meta {
            schema_version: std::borrow::Cow::Borrowed(SCHEMA_VERSION),
            event_time,
            receive_time,
            session_id,
            mitigation_level: 0,
            quality_flag: QualityFlag::Normal,
            raw_ref: None,
            mapper_version: None,
        }
    }
}

/// Field names every archived line must carry; `verify` checks them.
pub const REQUIRED_META_FIELDS: &[&str] =
    &["schema_version", "event_time", "receive_time", "session_id", "mitigation_level", "quality_flag"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_seoul_wall_clock() {
        let t = UtcTime::parse("2026-01-14T00:30:00.000Z").unwrap();
        assert_eq!(SessionId::starting_at(t).as_str(), "sess_20260114_093000");
    }
}
