#!/usr/bin/env bash
# Proves that pavillion-proto builds as #![no_std] + alloc. A bare-metal target has no std at
# all, so any dependency that pulls std in fails to build there: that is the whole check. A host
# build without default features would still link std through dependencies and prove nothing,
# so there is no fallback: if the target is missing it is installed with rustup, and if that
# is impossible the check fails and says why.
#
# Overrides: NO_STD_TARGET (default thumbv7em-none-eabihf).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${NO_STD_TARGET:-thumbv7em-none-eabihf}

fail() {
  echo "no_std: FAILED: $*" >&2
  exit 1
}

installed() {
  rustc --print target-libdir --target "$target" >/dev/null 2>&1 &&
    [ -d "$(rustc --print target-libdir --target "$target")" ] &&
    ls "$(rustc --print target-libdir --target "$target")"/libcore-*.rlib >/dev/null 2>&1
}

if ! installed; then
  command -v rustup >/dev/null 2>&1 ||
    fail "the $target standard library is not installed and rustup is not available to add it (install it with your toolchain manager)"
  echo "no_std: installing the $target target with rustup"
  rustup target add "$target" ||
    fail "rustup could not add $target (offline? a toolchain without rustup components?); run 'rustup target add $target'"
  installed || fail "rustup reported success but $target's core library is still missing"
fi

cargo build -p pavillion-proto --no-default-features --features suite-psk,suite-ecc,suite-noise --target "$target" ||
  fail "pavillion-proto does not build for $target without default features: something pulls in std"
# The optional `serde` feature (structured traces) must stay no_std + alloc too.
cargo build -p pavillion-proto --no-default-features --features serde,suite-psk,suite-ecc,suite-noise --target "$target" ||
  fail "pavillion-proto with the serde feature does not build for $target: something pulls in std"
# A device links one suite (issue 20): each suite must build alone, and its tests of the
# left-out suites (a typed configuration error, counted drops) must pass in that build. The
# rest of the test suite assumes every suite and runs in the full build.
for suite in psk ecc noise; do
  cargo build -p pavillion-proto --no-default-features --features "suite-$suite" --target "$target" ||
    fail "pavillion-proto with suite-$suite alone does not build for $target"
  cargo test -p pavillion-proto --no-default-features --features "std,suite-$suite" --lib crypto::suite ||
    fail "the left-out-suite tests fail in a suite-$suite build"
done
# Those one-suite builds are also the minimal client of issue 20: none of the optional features
# (durable, ordered, registers, pubsub, segment) and the compact BLAKE2b. A left-out feature's
# commands are refused and its packets are counted drops: pinned by these tests, which check
# whichever the build carries.
cargo test -p pavillion-proto --no-default-features --features "std,suite-psk" --lib features_off ||
  fail "the left-out-feature tests fail in the minimal build"
cargo test -p pavillion-proto --no-default-features --features "std,suite-psk" --lib crypto::blake2b ||
  fail "the compact BLAKE2b differs from the blake2 crate"
echo "no_std: pavillion-proto builds for $target (every suite, and each alone)"
