#!/usr/bin/env bash
# The embassy driver built for real targets (issue 20, deliverable 2): thumbv7em-none-eabihf
# (Cortex-M4F/M7F, e.g. STM32F4) and riscv32imc-unknown-none-elf (the ESP32-C3's), each
# suite alone and the server role. Library builds: linking (a time driver, a global
# allocator, a panic handler) is a firmware's business (firmware/, scripts/firmware.sh).
# Installs the targets with rustup when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

wanted=(thumbv7em-none-eabihf riscv32imc-unknown-none-elf)
installed=$(rustup target list --installed 2>/dev/null || true)
targets=()
for t in "${wanted[@]}"; do
    if grep -qx "$t" <<<"$installed" || rustup target add "$t"; then
        targets+=("$t")
    else
        # A machine that cannot reach rustup's servers cannot get a target's standard library.
        echo "embedded: SKIPPED $t: not installed, and rustup cannot install it here"
    fi
done
[[ ${#targets[@]} -gt 0 ]] || exit 0

# One feature set per line: each suite alone (a device links one), then the server role.
feature_sets=(
    "suite-psk,medium-ethernet"
    "suite-ecc,medium-ethernet"
    "suite-noise,medium-ethernet"
    "suite-psk,medium-ip,server"
)
start=$(date +%s)
for t in "${targets[@]}"; do
    # The ESP32-C3 has no atomic read-modify-write: CAS through portable-atomic.
    extra=""
    [[ $t == riscv32imc-* ]] && extra=",portable-atomic"
    for f in "${feature_sets[@]}"; do
        f=$f$extra
        echo "== embedded: pavillion-embassy for $t, features $f"
        cargo build -q -p pavillion-embassy --target "$t" --no-default-features --features "$f"
    done
done
echo "embedded: ${#targets[@]} targets x ${#feature_sets[@]} feature sets built in $(($(date +%s) - start)) s"
