#!/usr/bin/env bash
# The project's one test command (README "Testing"); .ci/run calls exactly this.
# Order: build, formatting, lints, tests, docs, the no_std build of proto, then a short smoke run
# of every fuzz target (README "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tools (tshark, Chromium) for the dissector and chart tests"
scripts/install-tools.sh
export PAV_REQUIRE_TOOLS=1

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

echo "== embedded (the embassy driver for thumbv7em and riscv32imc)"
scripts/embedded.sh

echo "== TAP (the embassy driver over a TAP device in a network namespace, against pav)"
scripts/tap-test.sh

echo "== firmware (issue 20: one-suite size report, board example)"
scripts/firmware.sh

echo "== fuzz (smoke: each target briefly, so that one that no longer builds or crashes at once fails)"
scripts/fuzz.sh all "${FUZZ_SMOKE_SECONDS:-10}"
