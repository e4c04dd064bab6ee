//! The replay window (being written).
