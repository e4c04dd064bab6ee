//! Crate-internal tests that span modules.
