//! RTT estimator (being written).
