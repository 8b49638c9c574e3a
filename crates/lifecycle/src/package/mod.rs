//! One day's backup package: its layout on disk ([`layout`]), how it is written
//! ([`create`]), checked ([`verify`]) and restored ([`restore`]).

pub mod layout;

pub use layout::{MANIFEST, MARKER, PackageError, PackageFile, PackageManifest, Packages, SUMS, SuccessMarker};
