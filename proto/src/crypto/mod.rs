//! Crypto suites (being written).
