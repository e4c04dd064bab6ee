#!/usr/bin/env bash
# Interoperability and latency checks between `pav` (pavillion-rs) and the Python reference
# implementation (EternityForest/pavillion). Run by hand, as root; see usage() below and
# docs/INTEROP.md.
#
# The reference sends multicast (224.0.0.251:2221) and may send broadcast on start-up, so every
# process runs inside a private network namespace with only loopback, made here and deleted on
# exit. Nothing touches the host's interfaces.
#
# Prints PASS/FAIL per check and LAT lines with call latencies, and exits 1 if any check
# failed. A missing prerequisite (root, ip netns, Python, libnacl, the reference checkout, pav)
# is a failure too, with a line saying what is missing: asked to run, the script never passes
# without running.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
usage: sudo scripts/interop.sh REFERENCE_DIR [PAV_BINARY]

REFERENCE_DIR  an existing checkout of the reference (the directory that holds pavillion/);
               this script never downloads or builds it.
PAV_BINARY     the pav to test. Default: $PAV if set, else built here with
               `cargo build --release -p pavillion-std --bin pav` and taken from
               $CARGO_TARGET_DIR/release/pav ($CARGO_TARGET_DIR defaults to ./target).

Environment overrides:
  PYTHON=python3             the Python that runs the reference (it needs libnacl)
  PAV=/path/to/pav           as PAV_BINARY
  CARGO_TARGET_DIR=DIR       where cargo puts the pav it builds (honoured when looking for it)
  PAV_INTEROP_PROFILE=release  the cargo profile to build pav with (debug builds faster, but
                             its latencies say little)
  PAV_INTEROP_CALLS=50       calls per latency measurement
  PAV_INTEROP_NS=pavinterop  the name of the network namespace to create
  PAV_INTEROP_KEEPALIVE=1    also check the reference client's 30 s keepalive (+35 s)

Needs: root, iproute2 with `ip netns`, Python 3 with libnacl (and the system libsodium).
Exits 0 if every check passed, 1 if one failed or a prerequisite is missing, 2 on bad usage.
USAGE
}

die() {
    echo "FAIL: cannot run the interop checks: $*" >&2
    exit 1
}

case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
"")
    usage >&2
    exit 2
    ;;
esac

REF=$1
PAV=${2:-${PAV:-}}
NS=${PAV_INTEROP_NS:-pavinterop}
PY=${PYTHON:-python3}
PROFILE=${PAV_INTEROP_PROFILE:-release}
CALLS=${PAV_INTEROP_CALLS:-50}

[ -f "$REF/pavillion/__init__.py" ] || die "no reference package at $REF/pavillion (give a checkout of EternityForest/pavillion)"
command -v ip >/dev/null 2>&1 || die "iproute2 (ip) not installed"
[ "$(id -u)" = 0 ] || die "network namespaces need root (run with sudo)"
command -v "$PY" >/dev/null 2>&1 || die "$PY not found (set PYTHON)"
"$PY" -c 'import libnacl' >/dev/null 2>&1 || die "python module libnacl missing for $PY (pip install libnacl; needs libsodium)"
ip netns list >/dev/null 2>&1 || die "ip netns unavailable"
if ip netns list | grep -qw "^$NS"; then
    die "network namespace $NS already exists; delete it or set PAV_INTEROP_NS"
fi
[[ "$CALLS" =~ ^[1-9][0-9]*$ ]] || die "PAV_INTEROP_CALLS must be a positive number, not '$CALLS'"

if [ -z "$PAV" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found and no pav binary given (PAV_BINARY or PAV)"
    case "$PROFILE" in
    release) cargo build -q --release -p pavillion-std --bin pav || die "cannot build pav" ;;
    debug) cargo build -q -p pavillion-std --bin pav || die "cannot build pav" ;;
    *) die "PAV_INTEROP_PROFILE must be release or debug, not '$PROFILE'" ;;
    esac
    TARGET_DIR=${CARGO_TARGET_DIR:-target}
    case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$(pwd)/$TARGET_DIR ;; esac
    PAV=$TARGET_DIR/$PROFILE/pav
fi
[ -x "$PAV" ] || die "pav binary $PAV not found or not executable"
PAV=$(cd "$(dirname "$PAV")" && pwd)/$(basename "$PAV")
PEER=$(pwd)/scripts/interop/refpeer.py
REF=$(cd "$REF" && pwd)

# Fixed test keys, the ones of the reference captures in proto's test vectors. Test values only.
PSK_CID=000102030405060708090a0b0c0d0e0f
PSK=101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
SERVER_SK=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
SERVER_PUB=605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c
ECC_CID=e0e1e2e3e4e5e6e7e8e9eaebecedeeef
CLIENT_SK=c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf
CLIENT_PUB=dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44
GUEST_SK=7777777777777777777777777777777777777777777777777777777777777777

REF_PORT=17831 # reference server (it answers from a second, ephemeral port)
PAV_PORT=17832 # pav serve
PAV_REPLY_PORT=17833 # pav serve --reply-socket
LAT_REF_PORT=17834 # reference server for the latency runs
LAT_PAV_PORT=17835 # pav serve for the latency runs
LISTEN_PSK=127.0.0.1:17840
LISTEN_ECC=127.0.0.1:17841

LOGS=$(mktemp -d /tmp/pav-interop.XXXXXX)
PIDS=()
PASSED=0
FAILED=0

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    # Anything still inside our namespace was started by this script.
    for p in $(ip netns pids "$NS" 2>/dev/null); do
        kill "$p" 2>/dev/null
    done
    ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT INT TERM

ip netns add "$NS" || { echo "FAIL: cannot create namespace $NS"; exit 1; }
ip -n "$NS" link set lo up

# Background jobs use these arrays rather than functions, so that $! is the process itself
# (ip netns exec and timeout exec or forward signals) and can be stopped by its id.
NSX=(ip netns exec "$NS")
PEERX=("${NSX[@]}" "$PY" "$PEER" --ref "$REF")
PAVX=("${NSX[@]}" timeout 20 "$PAV" --json)
ns() { "${NSX[@]}" "$@"; }
peer() { "${PEERX[@]}" "$@"; }
pav() { "${PAVX[@]}" "$@"; }

# result NAME STATUS EVIDENCE
result() {
    if [ "$2" = 0 ]; then
        PASSED=$((PASSED + 1))
        printf 'PASS  %s\n' "$1"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL  %s\n' "$1"
    fi
    [ -n "${3:-}" ] && printf '      %.240s\n' "$3"
}

# expect NAME FILE PATTERN: PASS if FILE has a line matching PATTERN (grep -E).
expect() {
    local line
    line=$(grep -E -m1 -- "$3" "$2" 2>/dev/null)
    if [ -n "$line" ]; then result "$1" 0 "$line"; else result "$1" 1 "no line matching /$3/ in $2"; fi
}

# no_resends NAME FILE: PASS if the harness's "done" line in FILE reports no datagram sent twice
# under one counter (every reliable message was acknowledged at the first try).
no_resends() {
    local line ok=1
    line=$(grep -m1 '"event": "done"' "$2" 2>/dev/null)
    if [ -n "$line" ]; then
        ok=$("$PY" -c 'import json,sys
d = json.loads(sys.argv[1])
print(0 if d["counted_sent"] > 0 and not any(d["retransmissions"].values()) else 1)' "$line")
    fi
    result "$1" "$ok" "$line"
}

# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

echo "== reference at $REF; pav at $PAV; logs in $LOGS"

# ---------------------------------------------------------------------------------------------
echo "== pav client -> reference server"
"${PEERX[@]}" server --port $REF_PORT --cid $PSK_CID --psk $PSK --secret-key $SERVER_SK \
    --ecc-client $ECC_CID=$CLIENT_PUB --allow-guest --target interop \
    --reply back/pong/from-ref --duration 40 >"$LOGS/ref-server.out" 2>"$LOGS/ref-server.err" &
PIDS+=($!)
wait_for "$LOGS/ref-server.out" '"event": "ready"' 10 || echo "      (reference server did not report ready)"

PSK_ARGS=(-s 127.0.0.1:$REF_PORT --psk $PSK --client-id $PSK_CID)
ECC_ARGS=(-s 127.0.0.1:$REF_PORT --suite ecc --secret-key $CLIENT_SK --server-key $SERVER_PUB --client-id $ECC_CID)

pav call 0 psk-zero "${PSK_ARGS[@]}" >"$LOGS/c1.out" 2>&1
expect "1a pav call 0 (PSK) -> reference" "$LOGS/c1.out" '"ok":true.*"data":"psk-zero"|"data":"psk-zero".*"ok":true'
pav call 401 "A test string" "${PSK_ARGS[@]}" >"$LOGS/c2.out" 2>&1
expect "1b pav call 401 (PSK) -> reference" "$LOGS/c2.out" '"data":"A test string".*"ok":true'
pav call 401 ecc-echo "${ECC_ARGS[@]}" >"$LOGS/c3.out" 2>&1
expect "1c pav call 401 (ECC) -> reference" "$LOGS/c3.out" '"data":"ecc-echo".*"ok":true'
pav call 0 guest-echo -s 127.0.0.1:$REF_PORT --suite ecc --secret-key $GUEST_SK --server-key $SERVER_PUB >"$LOGS/c4.out" 2>&1
expect "1d pav call 0 (ECC guest) -> reference" "$LOGS/c4.out" '"data":"guest-echo".*"ok":true'
pav call 999 x "${PSK_ARGS[@]}" >"$LOGS/c5.out" 2>&1
expect "1e pav call to an unknown function -> remote error" "$LOGS/c5.out" '"error":"remote".*"status":257'

# Two listeners on known ports, then one message from pav: the reference server answers every
# client with back/pong (Server.sendMessage), which both listeners must print.
"${PAVX[@]}" listen back -n 1 --duration 8 --bind $LISTEN_PSK "${PSK_ARGS[@]}" >"$LOGS/l-psk.out" 2>&1 &
PIDS+=($!)
"${PAVX[@]}" listen back -n 1 --duration 8 --bind $LISTEN_ECC "${ECC_ARGS[@]}" >"$LOGS/l-ecc.out" 2>&1 &
PIDS+=($!)
wait_for "$LOGS/l-psk.out" '"event":"listening"' 5
wait_for "$LOGS/l-ecc.out" '"event":"listening"' 5

pav send interop greet from-pav-psk "${PSK_ARGS[@]}" >"$LOGS/s1.out" 2>&1
expect "2a pav send (PSK) acknowledged by reference" "$LOGS/s1.out" '"ok":true'
wait_for "$LOGS/ref-server.out" 'from-pav-psk' 3
expect "2b reference server received it" "$LOGS/ref-server.out" '"data": "from-pav-psk"'
pav send interop greet from-pav-ecc "${ECC_ARGS[@]}" >"$LOGS/s2.out" 2>&1
expect "2c pav send (ECC) acknowledged by reference" "$LOGS/s2.out" '"ok":true'
wait_for "$LOGS/ref-server.out" 'from-pav-ecc' 3
expect "2d reference server received it" "$LOGS/ref-server.out" '"data": "from-pav-ecc"'

wait_for "$LOGS/l-psk.out" 'from-ref' 5
expect "3a reference server message -> pav listen (PSK)" "$LOGS/l-psk.out" '"data":"from-ref".*"target":"back"'
wait_for "$LOGS/l-ecc.out" 'from-ref' 5
expect "3b reference server message -> pav listen (ECC)" "$LOGS/l-ecc.out" '"data":"from-ref".*"target":"back"'

pav time "${PSK_ARGS[@]}" >"$LOGS/t.out" 2>&1
expect "3c pav time against the reference (opcodes 20/21)" "$LOGS/t.out" '"offset_us"'

kill "${PIDS[0]}" 2>/dev/null # SIGTERM: the harness has no handler, so no "done" line; restart below
wait "${PIDS[0]}" 2>/dev/null
PIDS=("${PIDS[@]:1}")

# ---------------------------------------------------------------------------------------------
echo "== reference server with status reporting: ACK formats both ways"
"${PEERX[@]}" server --port $REF_PORT --cid $PSK_CID --psk $PSK --secret-key $SERVER_SK \
    --ecc-client $ECC_CID=$CLIENT_PUB --target interop --reply back/pong/again \
    --status-reporting --duration 6 >"$LOGS/ref-server2.out" 2>"$LOGS/ref-server2.err" &
REF2=$!
PIDS+=($REF2)
wait_for "$LOGS/ref-server2.out" '"event": "ready"' 10
"${PAVX[@]}" listen back -n 1 --duration 4 --bind $LISTEN_PSK "${PSK_ARGS[@]}" >"$LOGS/l2-psk.out" 2>&1 &
PIDS+=($!)
"${PAVX[@]}" listen back -n 1 --duration 4 --bind $LISTEN_ECC "${ECC_ARGS[@]}" >"$LOGS/l2-ecc.out" 2>&1 &
PIDS+=($!)
wait_for "$LOGS/l2-psk.out" '"event":"listening"' 5
wait_for "$LOGS/l2-ecc.out" '"event":"listening"' 5
pav --log debug send interop trigger x "${PSK_ARGS[@]}" >"$LOGS/s4.out" 2>&1
expect "2e pav send takes an ACK with status bytes (11-byte ACK)" "$LOGS/s4.out" 'StatusChanged'
wait "$REF2" 2>/dev/null
done_line=$(grep '"event": "done"' "$LOGS/ref-server2.out")
ok=1
if [ -n "$done_line" ] && grep -q again "$LOGS/l2-psk.out" && grep -q again "$LOGS/l2-ecc.out"; then
    ok=$("$PY" -c 'import json,sys
d = json.loads(sys.argv[1])["retransmissions"]
print(0 if d.get(sys.argv[2], 0) == 0 and d.get(sys.argv[3], 0) == 0 else 1)' "$done_line" $LISTEN_PSK $LISTEN_ECC)
fi
result "3d reference server took pav's ACKs (no resends to the listeners)" "$ok" "$done_line"

# ---------------------------------------------------------------------------------------------
echo "== reference client -> pav serve"
"${NSX[@]}" "$PAV" --json serve -l 127.0.0.1:$PAV_PORT --psk $PSK --client-id $PSK_CID \
    --secret-key $SERVER_SK --ecc-client $ECC_CID=$CLIENT_PUB --allow-guests --forward-all \
    --duration 90 >"$LOGS/pav-serve.out" 2>"$LOGS/pav-serve.err" &
PIDS+=($!)
wait_for "$LOGS/pav-serve.out" '"event":"listening"' 5

peer client --server 127.0.0.1:$PAV_PORT --cid $PSK_CID --psk $PSK \
    --call 0:ref-psk-zero --call 401:ref-psk --send interop/greet/from-ref-psk \
    >"$LOGS/rc1.out" 2>"$LOGS/rc1.err"
expect "4a reference client (PSK) connected to pav serve" "$LOGS/rc1.out" '"event": "connected"'
expect "4b reference call 0 (PSK) answered by pav serve" "$LOGS/rc1.out" '"data": "ref-psk-zero".*"function": 0, "ok": true'
expect "4c reference call 401 (PSK) answered by pav serve" "$LOGS/rc1.out" '"data": "ref-psk".*"function": 401, "ok": true'
expect "4d reference send (PSK) acknowledged" "$LOGS/rc1.out" '"acked": true.*"event": "sent"'
wait_for "$LOGS/pav-serve.out" 'from-ref-psk' 3
expect "4e pav serve printed the reference's message (PSK)" "$LOGS/pav-serve.out" '"data":"from-ref-psk"'
no_resends "4e' reference client sent nothing twice (pav serve ACKed at once)" "$LOGS/rc1.out"

peer client --server 127.0.0.1:$PAV_PORT --cid $ECC_CID --secret-key $CLIENT_SK --server-key $SERVER_PUB \
    --call 0:ref-ecc-zero --call 401:ref-ecc --send interop/greet/from-ref-ecc \
    >"$LOGS/rc2.out" 2>"$LOGS/rc2.err"
expect "4f reference call 0 (ECC) answered by pav serve" "$LOGS/rc2.out" '"data": "ref-ecc-zero".*"function": 0, "ok": true'
expect "4g reference call 401 (ECC) answered by pav serve" "$LOGS/rc2.out" '"data": "ref-ecc".*"function": 401, "ok": true'
expect "4h reference send (ECC) acknowledged" "$LOGS/rc2.out" '"acked": true.*"event": "sent"'
wait_for "$LOGS/pav-serve.out" 'from-ref-ecc' 3
expect "4i pav serve printed the reference's message (ECC)" "$LOGS/pav-serve.out" '"data":"from-ref-ecc"'
no_resends "4i' reference client sent nothing twice (pav serve ACKed at once)" "$LOGS/rc2.out"

peer client --server 127.0.0.1:$PAV_PORT --secret-key $GUEST_SK --server-key $SERVER_PUB \
    --call 0:ref-guest >"$LOGS/rc3.out" 2>"$LOGS/rc3.err"
expect "4j reference guest (ECC, key-derived id) call 0 answered" "$LOGS/rc3.out" '"data": "ref-guest".*"function": 0, "ok": true'

peer client --server 127.0.0.1:$PAV_PORT --cid $PSK_CID --psk $PSK --call 403: \
    >"$LOGS/rc4.out" 2>"$LOGS/rc4.err"
expect "4k pav serve error status reaches the reference as RemoteError" "$LOGS/rc4.out" '"error": "RemoteError".*Error code 1'

# Our server -> the reference client: pav serve forwards a message from one client to the others.
"${PEERX[@]}" client --server 127.0.0.1:$PAV_PORT --cid $ECC_CID --secret-key $CLIENT_SK --server-key $SERVER_PUB \
    --listen fwd --wait 4 >"$LOGS/rc5.out" 2>"$LOGS/rc5.err" &
RC5=$!
PIDS+=($RC5)
wait_for "$LOGS/rc5.out" '"event": "ready"' 8
pav send fwd note via-pav-serve -s 127.0.0.1:$PAV_PORT --psk $PSK --client-id $PSK_CID >"$LOGS/s3.out" 2>&1
wait "$RC5" 2>/dev/null
expect "4l pav serve -> reference client (forwarded message)" "$LOGS/rc5.out" '"data": "via-pav-serve".*"target": "fwd"'

# ---------------------------------------------------------------------------------------------
# Our server with a reference-style reply socket: everything it sends leaves from a second,
# ephemeral port, as the reference server's does, and the reference client must follow it.
echo "== reference client -> pav serve --reply-socket"
"${NSX[@]}" "$PAV" --json serve -l 127.0.0.1:$PAV_REPLY_PORT --reply-socket --psk $PSK \
    --client-id $PSK_CID --secret-key $SERVER_SK --ecc-client $ECC_CID=$CLIENT_PUB \
    --duration 30 >"$LOGS/pav-serve-r.out" 2>"$LOGS/pav-serve-r.err" &
PIDS+=($!)
wait_for "$LOGS/pav-serve-r.out" '"event":"listening"' 5
peer client --server 127.0.0.1:$PAV_REPLY_PORT --cid $PSK_CID --psk $PSK \
    --call 401:via-reply --send interop/greet/from-ref-reply >"$LOGS/rr1.out" 2>"$LOGS/rr1.err"
line=$(grep -m1 '"event": "connected"' "$LOGS/rr1.out")
port=$(sed -n 's/.*"server": "127\.0\.0\.1:\([0-9]*\)".*/\1/p' <<<"$line")
if [ -n "$port" ] && [ "$port" != "$PAV_REPLY_PORT" ]; then ok=0; else ok=1; fi
result "6a reference client (PSK) connected to pav's reply port, not its listening port" "$ok" "$line"
expect "6b reference call 401 (PSK) via the reply socket" "$LOGS/rr1.out" '"data": "via-reply".*"function": 401, "ok": true'
expect "6c reference send (PSK) acknowledged via the reply socket" "$LOGS/rr1.out" '"acked": true.*"event": "sent"'
peer client --server 127.0.0.1:$PAV_REPLY_PORT --cid $ECC_CID --secret-key $CLIENT_SK \
    --server-key $SERVER_PUB --call 401:via-reply-ecc >"$LOGS/rr2.out" 2>"$LOGS/rr2.err"
expect "6d reference call 401 (ECC) via the reply socket" "$LOGS/rr2.out" '"data": "via-reply-ecc".*"function": 401, "ok": true'

# ---------------------------------------------------------------------------------------------
# Latency: wall time per call, p50 and p99 by nearest rank over $CALLS calls (LAT lines), and a
# check that every call succeeded. One-shot `pav call`s include process start and a handshake
# each; in-session calls are back-to-back calls on one session.
echo "== latency ($CALLS calls each)"
"${PEERX[@]}" server --port $LAT_REF_PORT --cid $PSK_CID --psk $PSK --duration 120 \
    >"$LOGS/lat-ref.out" 2>"$LOGS/lat-ref.err" &
LAT_REF=$!
PIDS+=($LAT_REF)
"${NSX[@]}" "$PAV" --json serve -l 127.0.0.1:$LAT_PAV_PORT --psk $PSK --client-id $PSK_CID \
    --duration 120 >"$LOGS/lat-pav.out" 2>"$LOGS/lat-pav.err" &
PIDS+=($!)
wait_for "$LOGS/lat-ref.out" '"event": "ready"' 10
wait_for "$LOGS/lat-pav.out" '"event":"listening"' 5
LAT_PSK=(--psk $PSK --client-id $PSK_CID)

# latency NAME LOG COMMAND...: N one-shot runs of COMMAND inside the namespace.
latency() {
    local name=$1 log=$2
    shift 2
    ns "$PY" "$(pwd)/scripts/interop/latency.py" --label "$name" --n "$CALLS" \
        --expect '"ok":true' -- "$@" >"$log" 2>&1
    local st=$?
    grep '^LAT' "$log"
    result "$name: all $CALLS calls answered" "$st" "$(grep -m1 'failed run' "$log")"
}

# bench NAME LOG SERVER: reference client, in-session calls of the echo (function 0) for 2 s.
bench() {
    local name=$1 log=$2
    peer client --server "$3" --cid $PSK_CID --psk $PSK --bench 2 --bench-fn 0 --bench-size 64 \
        >"$log" 2>&1
    local line st=1
    line=$(grep -m1 '"event": "bench"' "$log")
    if [ -n "$line" ]; then
        "$PY" -c 'import json,sys
d = json.loads(sys.argv[1])
print("LAT  %s: n=%d p50=%.2f ms p99=%.2f ms" % (sys.argv[2], d["calls"], d["p50_ms"], d["p99_ms"]))' "$line" "$name"
        st=0
    fi
    result "$name: calls answered for 2 s" "$st" "$(grep -m1 '"event": "error"' "$log")"
}

latency "L1 pav call one-shot (PSK) -> reference server" "$LOGS/lat1.out" \
    "$PAV" --json call 0 lat -s 127.0.0.1:$LAT_REF_PORT "${LAT_PSK[@]}"
latency "L2 pav call one-shot (PSK) -> pav serve" "$LOGS/lat2.out" \
    "$PAV" --json call 0 lat -s 127.0.0.1:$LAT_PAV_PORT "${LAT_PSK[@]}"
# In-session calls from pav need `pav call --count` (newer pav builds have it).
if "$PAV" call --help 2>/dev/null | grep -q -- '--count'; then
    pav call 0 lat --count "$CALLS" -s 127.0.0.1:$LAT_REF_PORT "${LAT_PSK[@]}" >"$LOGS/lat3.out" 2>&1
    st=$?
    printf 'LAT  L3 pav call --count %s in one session (PSK) -> reference server: %s\n' "$CALLS" \
        "$(grep -m1 -E 'p50|p99' "$LOGS/lat3.out")"
    result "L3 pav in-session calls -> reference server" "$st" "$(tail -1 "$LOGS/lat3.out")"
else
    echo "      (L3 not measured: this pav has no 'call --count' for in-session calls)"
fi
bench "L4 reference client in session (PSK) -> reference server" "$LOGS/lat4.out" 127.0.0.1:$LAT_REF_PORT
bench "L5 reference client in session (PSK) -> pav serve" "$LOGS/lat5.out" 127.0.0.1:$LAT_PAV_PORT

# ---------------------------------------------------------------------------------------------
# Optional (35 s): the reference client's 30 s keepalive. Its keepalive thread first re-joins
# 224.0.0.251 and dies with a NameError when that fails (no multicast route), so give the
# namespace's loopback multicast and a route for 224.0.0.0/4; traffic still stays inside it.
if [ "${PAV_INTEROP_KEEPALIVE:-0}" = 1 ]; then
    echo "== reference keepalive -> pav serve (35 s)"
    ip -n "$NS" link set lo multicast on
    ip -n "$NS" route add 224.0.0.0/4 dev lo src 127.0.0.1
    peer client --server 127.0.0.1:$PAV_PORT --cid $PSK_CID --psk $PSK --call 0:ka --wait 34 \
        >"$LOGS/rc6.out" 2>"$LOGS/rc6.err"
    expect "5a reference client sent its keepalive (empty reliable message)" "$LOGS/rc6.out" '"keepalives": [1-9]'
    no_resends "5b pav serve ACKed the keepalive at once" "$LOGS/rc6.out"
    if grep -q NameError "$LOGS/rc6.err"; then result "5c no keepalive-thread error" 1 "$(grep -m1 NameError "$LOGS/rc6.err")"; else result "5c no keepalive-thread error" 0; fi
fi

echo "== $PASSED passed, $FAILED failed (logs in $LOGS)"
[ "$FAILED" = 0 ] && rm -rf "$LOGS"
[ "$FAILED" = 0 ]
