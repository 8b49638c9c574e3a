//! The archive's life after recording (seed 001 §2.8, §2.9, §2.12): daily backup packages
//! ([`package`]), the receipts a coordinator sends for the copies it holds ([`receipt`]),
//! and backup-first retention ([`retention`]).
//!
//! A package is `MANIFEST.json` (self-checksummed, in the spirit of PostgreSQL's
//! `backup_manifest`), GNU `SHA256SUMS` and one zstd frame per archive file, with
//! `SUCCESS.marker` written last: without the marker a package does not exist.

#![forbid(unsafe_code)]

pub mod config;
pub mod coordinator;
pub mod package;
pub mod pull;
pub mod receipt;
pub mod retention;
pub mod schedule;
pub mod upkeep;

pub use config::{BackupConfig, CompressionConfig, Proof, RetentionConfig};
