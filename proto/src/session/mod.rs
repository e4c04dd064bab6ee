//! Per-peer session state.

pub mod replay;
