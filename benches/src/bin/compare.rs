//! Placeholder; replaced by the comparison table in the next commit.
fn main() {}
