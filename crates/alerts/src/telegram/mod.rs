//! The Telegram Bot API as the worker needs it: `sendMessage` over plain reqwest, MarkdownV2
//! text, and a fake Bot API on loopback with fault switches (tests, and `sim --telegram`).

pub mod api;
pub mod fake;
pub mod format;
