#!/usr/bin/env bash
# The firmware of issue 20, built for a real target (thumbv7em-none-eabihf, a Cortex-M4F):
#  1. firmware/size: the size report. One image per suite (a Pavillion client that links one
#     suite and none of proto's optional features, on an embassy-net UDP socket; the PSK one
#     is the `minimal` row), one with PSK and every feature (`full-psk`), one with every suite
#     and feature (`all-suites`, the whole client), and a baseline with the same network
#     stack and no client. Prints .text, .rodata, .data and
#     .bss of each, and the client's share of .text (its .text above the baseline's).
#     Fails when a one-suite client's share of .text exceeds FIRMWARE_TEXT_LIMIT (see below).
#  2. firmware/nucleo-f429zi: the board example, built as CI would before flashing it
#     (skipped with FIRMWARE_SKIP_BOARD=1).
#
# Overrides: FIRMWARE_TEXT_LIMIT (bytes; see the budget below), FIRMWARE_TEXT_TARGET (the
# issue's 64 KB goal: enforced on the PSK `minimal` row, which meets it; printed as met or not
# for the ECC and Noise rows, failing them too only with FIRMWARE_STRICT=1), CARGO_TARGET_DIR
# (default target/firmware, beside the workspace's own builds).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=thumbv7em-none-eabihf
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/firmware}

# The issue's goal for a one-suite client, crypto included. The PSK `minimal` row meets it and
# must keep meeting it; the ECC and Noise rows are held to the budget below.
goal=${FIRMWARE_TEXT_TARGET:-65536}
# The budget of every one-suite row: what the largest (Noise) measures now plus a small margin,
# so that no client grows unnoticed (see firmware/README.md). Lower it with every cut.
# 125,000: the one-suite rows without optional features measured 59,984 (PSK), 68,732 (ECC)
# and 121,532 B (Noise) after issue 20's VecMap, RNG, suite 3 and parser cuts (was 140,000).
# 126,000: issue 19's work since then, the last of it suite 3's pipelined rate from 0.74 to
# 1.4 M msg/s, took the Noise row to 125,216 B (firmware/README.md counts where it went).
limit=${FIRMWARE_TEXT_LIMIT:-126000}

fail() {
  echo "firmware: FAILED: $*" >&2
  exit 1
}

installed() {
  local libdir
  libdir=$(rustc --print target-libdir --target "$target" 2>/dev/null) &&
    ls "$libdir"/libcore-*.rlib >/dev/null 2>&1
}
if ! installed; then
  command -v rustup >/dev/null 2>&1 || fail "the $target standard library is missing and rustup is not available to add it"
  echo "firmware: installing the $target target with rustup"
  rustup target add "$target" || fail "rustup could not add $target; run 'rustup target add $target'"
fi
command -v python3 >/dev/null 2>&1 || fail "python3 reads the ELF section sizes (scripts/elf-sizes.py)"

elf=$CARGO_TARGET_DIR/$target/release/pavillion-firmware-size
declare -A text rodata data bss
rows=(net-only all-suites full-psk minimal suite-ecc suite-noise)
for row in "${rows[@]}"; do
  echo "== firmware/size --features $row"
  (cd firmware/size && cargo build --release --quiet --features "$row") ||
    fail "firmware/size does not build with --features $row"
  while read -r name size; do
    case $name in
      .text) text[$row]=$size ;;
      .rodata) rodata[$row]=$size ;;
      .data) data[$row]=$size ;;
      .bss) bss[$row]=$size ;;
    esac
  done < <(python3 scripts/elf-sizes.py "$elf")
  # Kept for `nm --size-sort` (scripts/firmware-bloat.sh) after the run.
  cp "$elf" "$CARGO_TARGET_DIR/size-$row.elf"
done

base=${text[net-only]}
echo
echo "Size report ($target, opt-level z, fat LTO; bytes). 'client .text' is the image's .text"
echo "above the baseline's (the same embassy-net stack and socket without a client)."
printf '%-12s %9s %9s %7s %7s %13s\n' image .text .rodata .data .bss "client .text"
status=0
for row in "${rows[@]}"; do
  share=$(( ${text[$row]} - base ))
  [ "$row" = net-only ] && share=0
  printf '%-12s %9d %9d %7d %7d %13d\n' "$row" "${text[$row]}" "${rodata[$row]}" "${data[$row]}" "${bss[$row]}" "$share"
done
echo "static RAM of an image = .data + .bss (the heap, ${HEAP_NOTE:-24 KB}, is in .bss)"
echo
for row in minimal suite-ecc suite-noise; do
  share=$(( ${text[$row]} - base ))
  if [ "$share" -gt "$limit" ]; then
    echo "firmware: $row client .text $share B is over the budget of $limit B" >&2
    status=1
  fi
  if [ "$share" -le "$goal" ]; then
    echo "firmware: $row client .text $share B: within the issue's goal of $goal B"
  else
    echo "firmware: $row client .text $share B: NOT within the issue's goal of $goal B"
    if [ "$row" = minimal ] || [ "${FIRMWARE_STRICT:-0}" = 1 ]; then
      status=1
    fi
  fi
done
[ "$status" = 0 ] || fail "a one-suite client is over its size budget, or the PSK client over the goal"

if [ "${FIRMWARE_SKIP_BOARD:-0}" != 1 ] && [ -f firmware/nucleo-f429zi/Cargo.toml ]; then
  echo "== firmware/nucleo-f429zi"
  start=$(date +%s)
  (cd firmware/nucleo-f429zi && cargo build --release --quiet) ||
    fail "the NUCLEO-F429ZI example does not build"
  echo "firmware: the NUCLEO-F429ZI example builds ($(( $(date +%s) - start )) s)"
fi
echo "firmware: ok"
