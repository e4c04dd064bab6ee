#!/usr/bin/env bash
# The project's one test command (README "Testing"); .ci/run calls exactly this.
# Order: build, formatting, lints, tests, docs, the no_std build of proto, then a short smoke run
# of every fuzz target (README "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

# Disk: CI starts from nothing on a machine whose disk can be small (a run once died in the
# firmware stage with "No space left on device"). A build from scratch gains nothing from
# incremental artefacts, and line tables keep file:line in backtraces at a fraction of full
# debug info, so both are cut here; a developer's own `cargo build` keeps the defaults.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only CARGO_PROFILE_TEST_DEBUG=line-tables-only
# Each stage prints the free space and what the build folders hold, so a full disk shows where.
disk() {
  echo "-- disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free; target $(du -sh target 2>/dev/null | cut -f1), fuzz/target $(du -sh fuzz/target 2>/dev/null | cut -f1)"
}

echo "== tools (tshark, Chromium) for the dissector and chart tests"
scripts/install-tools.sh
export PAV_REQUIRE_TOOLS=1

disk
echo "== build"
# Every target, in the test profile that the test stage runs: `cargo build --all-targets`
# would build the libraries in the dev profile as well, a second copy of everything (about 4 GB
# of the CI machine's disk) that no later stage uses.
cargo test --workspace --all-targets --no-run --locked 2>/dev/null ||
  cargo test --workspace --all-targets --no-run

disk
echo "== fmt"
cargo fmt --all -- --check

disk
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

disk
echo "== tests"
cargo test --workspace

disk
echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

disk
echo "== no_std"
scripts/check-no-std.sh

disk
echo "== embedded (the embassy driver for thumbv7em and riscv32imc)"
scripts/embedded.sh

disk
echo "== TAP (the embassy driver over a TAP device in a network namespace, against pav)"
scripts/tap-test.sh

disk
echo "== firmware (issue 20: one-suite size report, board example)"
scripts/firmware.sh

disk
echo "== fuzz (smoke: each target briefly, so that one that no longer builds or crashes at once fails)"
scripts/fuzz.sh all "${FUZZ_SMOKE_SECONDS:-10}"
disk
