//! Unit tests and properties of the durable state.
