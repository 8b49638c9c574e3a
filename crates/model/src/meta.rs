//! The common meta of seed 001 §2.14.3, carried by every archived record.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::UtcTime;

/// Bumped when a record's shape changes, so readers of a years-old archive know which
/// layout a line has.
pub const SCHEMA_VERSION: &str = "1.0";

/// `sess_YYYYMMDD_HHMMSS`, the Seoul wall-clock time at which a `collect` run started.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn starting_at(t: UtcTime) -> Self {
        let k = t.kst();
        SessionId(format!(
            "sess_{:04}{:02}{:02}_{:02}{:02}{:02}",
            k.year(),
            k.month(),
            k.day(),
            k.hour(),
            k.minute(),
            k.second()
        ))
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub schema_version: String,
    /// When the exchange says it happened; for frames and events we originate, when we saw it.
    pub event_time: UtcTime,
    /// When our process received it (local clock).
    pub receive_time: UtcTime,
    pub session_id: SessionId,
    pub mitigation_level: u8,
    pub quality_flag: QualityFlag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ref: Option<String>,
}

impl Meta {
    pub fn new(event_time: UtcTime, receive_time: UtcTime, session_id: SessionId) -> Self {
        Meta {
            schema_version: SCHEMA_VERSION.to_string(),
            event_time,
            receive_time,
            session_id,
            mitigation_level: 0,
            quality_flag: QualityFlag::Normal,
            raw_ref: None,
        }
    }
}

/// Field names every archived line must carry; `verify` checks them.
pub const REQUIRED_META_FIELDS: &[&str] = &[
    "schema_version",
    "event_time",
    "receive_time",
    "session_id",
    "mitigation_level",
    "quality_flag",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_seoul_wall_clock() {
        let t = UtcTime::parse("2026-01-14T00:30:00.000Z").unwrap();
        assert_eq!(SessionId::starting_at(t).as_str(), "sess_20260114_093000");
    }
}
