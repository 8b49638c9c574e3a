//! The Telegram Bot API as the worker needs it: `sendMessage` over plain reqwest, MarkdownV2
//! text, and (feature `testing`) a fake Bot API on loopback with fault switches.

pub mod api;
#[cfg(feature = "testing")]
pub mod fake;
pub mod format;
