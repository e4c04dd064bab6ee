//! Crate-internal tests that span modules.

mod docs;
mod reference_bytes;
