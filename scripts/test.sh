#!/usr/bin/env bash
# The project's one test command (README "Testing"); .ci/run calls exactly this.
# Order: build, formatting, lints, tests, then the no_std build of proto.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build"
cargo build --workspace --all-targets --locked 2>/dev/null || cargo build --workspace --all-targets

echo "== fmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace

echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

echo "== no_std"
scripts/check-no-std.sh
