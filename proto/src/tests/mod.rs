//! Crate-internal tests that span modules.

mod reference_bytes;
