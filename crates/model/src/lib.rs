//! Normalized market-data types shared by every stage of the pipeline.
//!
//! Everything that crosses a crate boundary lives here: identifiers (`Provider`, `Market`,
//! `Symbol`), exact numbers (`Price`, `Qty`), time (`UtcTime`, `Clock`, the KRX calendar) and
//! the records the archive stores (ticks, quotes, snapshots, scalp samples, system events,
//! overflow entries), each carrying the common meta of seed 001 §2.14.3.

pub mod calendar;
pub mod clock;
pub mod day;
pub mod errors;
pub mod event;
pub mod ids;
pub mod listing;
pub mod meta;
pub mod num;
#[cfg(feature = "openapi")]
mod openapi;
pub mod scan;
pub mod settings;
pub mod shutdown;
pub mod time;

pub use calendar::KrxCalendar;
pub use clock::Clock;
pub use day::{Day, DayError};
pub use event::{
    Level, MarketEvent, OverflowEntry, Quote, RawFrame, RawFrameKind, Record, ScalpSample, Side, Snapshot, SystemEvent,
    Tick,
};
pub use ids::{IdError, Market, Provider, Symbol};
pub use listing::UniverseEntry;
pub use meta::{Meta, QualityFlag, SCHEMA_VERSION, SessionId};
pub use num::{Price, Qty};
pub use shutdown::stopped;
pub use time::{TimeError, UtcTime};
