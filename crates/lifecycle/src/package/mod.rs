//! One day's backup package: its layout on disk ([`layout`]), how it is written
//! ([`create`]), checked ([`verify`]) and restored ([`restore`]).

pub mod create;
pub(crate) mod hashing;
pub mod layout;
pub mod restore;
pub mod verify;

pub use create::{PackOptions, Packed, Step, create};
pub use layout::{MANIFEST, MARKER, PackageError, PackageFile, PackageManifest, Packages, SUMS, SuccessMarker};
pub use restore::restore;
pub use verify::{Checked, Problem, verify};
