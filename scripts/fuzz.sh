#!/usr/bin/env bash
# Runs the fuzz targets under fuzz/ (cargo-fuzz, libFuzzer) and reports, per target, the
# executions, the crashes and the time it ran. Exits non-zero if any target crashed (or failed
# to build).
#
#   scripts/fuzz.sh TARGET|all SECONDS
#
# Each target runs for SECONDS seconds (after one build of all of them), starting from its seed
# corpus fuzz/corpus/TARGET (checked in, never written) and from $FUZZ_WORK/TARGET (new inputs the
# runs found; not checked in, so a long campaign can be resumed). A crashing input is written
# to fuzz/artifacts/TARGET/ and its stack trace stays in $FUZZ_WORK/TARGET.log; reproduce it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...` (from the repository root).
#
# What it needs, installed if missing: a nightly toolchain (`rustup toolchain install nightly
# --profile minimal`; where none can be fetched, the default toolchain with RUSTC_BOOTSTRAP=1,
# which accepts the same flags) and cargo-fuzz (`cargo install cargo-fuzz --locked`).
#
# Environment: FUZZ_WORK (default fuzz/work) holds the found inputs and the logs.
# FUZZ_SANITIZER (default `none`: proto and its session code forbid `unsafe`, so AddressSanitizer
# would only watch dependencies, at half the speed; `address` turns it on).
# Targets run one after another, one process each.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS" >&2
  echo "targets: $(targets | tr '\n' ' ')" >&2
  exit 2
}

targets() {
  for f in fuzz/fuzz_targets/*.rs; do basename "$f" .rs; done
}

die() {
  echo "fuzz: $*" >&2
  exit 1
}

[ $# -eq 2 ] || usage
which_target=$1
seconds=$2
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || usage
if [ "$which_target" = all ]; then
  mapfile -t run < <(targets)
else
  [ -f "fuzz/fuzz_targets/$which_target.rs" ] || usage
  run=("$which_target")
fi

# A nightly toolchain, or the default one told to accept nightly flags.
toolchain=()
if cargo +nightly --version >/dev/null 2>&1; then
  toolchain=(+nightly)
elif command -v rustup >/dev/null 2>&1 &&
  rustup toolchain install nightly --profile minimal >/dev/null 2>&1 &&
  cargo +nightly --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  echo "fuzz: no nightly toolchain and none could be installed; using $(rustc --version)" \
    "with RUSTC_BOOTSTRAP=1 (it accepts the nightly flags cargo-fuzz passes)" >&2
  export RUSTC_BOOTSTRAP=1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2 ||
    die "cannot install cargo-fuzz (cargo install cargo-fuzz --locked failed); install it by hand"
fi

sanitizer=${FUZZ_SANITIZER:-none}
# cargo-fuzz sets RUSTFLAGS, which replaces the workspace's .cargo/config.toml build flags: keep
# the portable poly1305 backend the rest of the project uses (README "Build options").
export RUSTFLAGS="${RUSTFLAGS:-} --cfg poly1305_force_soft"

echo "== fuzz: building ${#run[@]} target(s) with $(cargo "${toolchain[@]}" --version), sanitizer $sanitizer" >&2
build_one=()
[ "$which_target" = all ] || build_one=("$which_target")
cargo "${toolchain[@]}" fuzz build -s "$sanitizer" "${build_one[@]}" >&2 ||
  die "the fuzz targets do not build"

work=${FUZZ_WORK:-fuzz/work}
mkdir -p "$work"
failed=0
total_execs=0
printf '%-18s %14s %10s %8s %8s %7s  %s\n' target executions exec/s crashes seconds corpus note
for t in "${run[@]}"; do
  mkdir -p "$work/$t" "fuzz/corpus/$t"
  log="$work/$t.log"
  start=$(date +%s)
  set +e
  # The stateful targets read operations; longer inputs mostly add waiting, so they are capped
  # to keep the rate up. The wire targets need room past the 4096-byte datagram limit.
  case "$t" in
    wire_* | relay_frames | authority_wire) max_len=5000 ;;
    *) max_len=2048 ;;
  esac
  cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 >"$log" 2>&1
  rc=$?
  set -e
  wall=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  corpus=$(find "$work/$t" "fuzz/corpus/$t" -type f | wc -l)
  crashes=0
  note=""
  if [ "$rc" -ne 0 ]; then
    crashes=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    note="CRASH: ${artifact:-see $log} (stack trace in $log)"
    failed=1
  fi
  if [ -z "$execs" ]; then
    # libFuzzer prints its final stats only when it stops normally: count up to the crash.
    execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  fi
  execs=${execs:-0}
  total_execs=$((total_execs + execs))
  printf '%-18s %14s %10s %8s %8s %7s  %s\n' "$t" "$execs" "${rate:--}" "$crashes" "$wall" \
    "$corpus" "$note"
done
echo "total executions: $total_execs"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target crashed; its input is in fuzz/artifacts/ and its trace in $work/*.log" >&2
  exit 1
fi
