#!/usr/bin/env bash
# Calls per second of the Python reference implementation on loopback: a reference client
# calling the echo RPC (64 bytes) of a reference server, one call at a time, over suite 1 (PSK).
# Made for the `compare` benchmark's external peer row:
#
#     cargo run --release -p pavillion-benches --bin compare -- \
#         --peer-cmd 'sudo scripts/interop/ref-bench.sh /path/to/reference-checkout'
#
# Run as root. Usage: ref-bench.sh REFERENCE_DIR [SECONDS] [PAYLOAD_BYTES]
#
# The reference sends multicast and broadcast on start-up, so both processes run inside a
# private network namespace with only loopback, made here and deleted on exit. The last line
# printed is "reference calls/s N"; on any failure it prints a reason and exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/../.."

REF=${1:-}
SECONDS_=${2:-5}
SIZE=${3:-64}
NS=${PAV_BENCH_NS:-pavrefbench}
PY=${PYTHON:-python3}

die() {
    echo "ref-bench: $*" >&2
    exit 1
}

[ -n "$REF" ] || die "usage: $0 REFERENCE_DIR [SECONDS] [PAYLOAD_BYTES]"
[ -f "$REF/pavillion/__init__.py" ] || die "no reference package at $REF/pavillion"
[ "$(id -u)" = 0 ] || die "network namespaces need root"
command -v ip >/dev/null 2>&1 || die "iproute2 (ip) not installed"
"$PY" -c 'import libnacl' >/dev/null 2>&1 || die "python module libnacl missing"
ip netns list | grep -qw "^$NS" && die "network namespace $NS already exists"
REF=$(cd "$REF" && pwd)
PEER=$(pwd)/scripts/interop/refpeer.py

# Test keys of the reference captures in proto's test vectors.
CID=000102030405060708090a0b0c0d0e0f
PSK=101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
PORT=17851
OUT=$(mktemp /tmp/pav-refbench.XXXXXX)
SERVER=

cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    for p in $(ip netns pids "$NS" 2>/dev/null); do
        kill "$p" 2>/dev/null
    done
    ip netns del "$NS" 2>/dev/null
    rm -f "$OUT"
}
trap cleanup EXIT INT TERM

ip netns add "$NS" || die "cannot create namespace $NS"
ip -n "$NS" link set lo up

ip netns exec "$NS" "$PY" "$PEER" --ref "$REF" server --bind 127.0.0.1 --port "$PORT" \
    --cid "$CID" --psk "$PSK" --duration $((SECONDS_ + 30)) >/dev/null 2>&1 &
SERVER=$!
sleep 1

ip netns exec "$NS" "$PY" "$PEER" --ref "$REF" client --server "127.0.0.1:$PORT" \
    --cid "$CID" --psk "$PSK" --bench "$SECONDS_" --bench-size "$SIZE" >"$OUT" 2>&1
RATE=$(grep -m1 '^reference calls/s' "$OUT")
[ -n "$RATE" ] || die "no rate from the reference client: $(tail -3 "$OUT" | tr '\n' ' ')"
echo "$RATE"
