#!/usr/bin/env bash
# The embassy driver on a real network stack (issue 20, deliverable 3): embassy-net over a
# Linux TAP device inside a private network namespace, against `pav` on the kernel side.
#
#   1. the embedded client (embassy/examples/host_client.rs) against `pav serve`: RPC,
#      a message each way (ours acknowledged; `pav send` reaching us through the broker),
#      and recovery after `pav serve` is killed and restarted;
#   2. the embedded server (embassy/examples/host_server.rs) against `pav call` and
#      `pav send`.
#
# Skipped, with the reason printed, where namespaces or TAP devices cannot be made (not
# root, no /dev/net/tun, no `ip`). Every wait is bounded. TAP_TEST_PSK overrides the PSK the
# embedded side uses (a wrong one must make the run fail: that is how the checks were checked).
# Usage: scripts/tap-test.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "tap-test: SKIPPED: $*"
    exit 0
}

[[ $(id -u) == 0 ]] || skip "not root (network namespaces and TAP devices need CAP_NET_ADMIN)"
[[ -c /dev/net/tun ]] || skip "no /dev/net/tun"
command -v ip >/dev/null || skip "no ip(8) (iproute2)"

if [[ ${1:-} != --no-build ]]; then
    echo "== tap-test: build (pav, the host examples)"
    cargo build -q -p pavillion-std --bin pav
    cargo build -q -p pavillion-embassy --features std-host --examples
fi
target=${CARGO_TARGET_DIR:-target}/debug
pav=$target/pav
client=$target/examples/host_client
server=$target/examples/host_server

ns=pav-tap-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns" 2>/dev/null || skip "cannot make a network namespace"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns ip tuntap add dev tap0 mode tap 2>/dev/null || skip "cannot make a TAP device"
in_ns ip addr add 10.83.0.1/24 dev tap0
in_ns ip link set tap0 up

host_ip=10.83.0.1
device_ip=10.83.0.2
psk=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
device_psk=${TAP_TEST_PSK:-$psk}
device_id=embedded-client1
sender_id=pav-cli-sender01
echo "$psk" >"$work/psk"
pav_auth=(--psk "$psk" --client-id "$sender_id")

# wait_for FILE PATTERN SECONDS: until a line of FILE matches PATTERN (grep -E).
wait_for() {
    local file=$1 pattern=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        if grep -qE "$pattern" "$file" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "tap-test: FAILED: no line matching '$pattern' in $(basename "$file") within ${secs} s"
    echo "--- $(basename "$file"):"
    cat "$file" 2>/dev/null || true
    return 1
}

# check LABEL FILE PATTERN SECONDS: wait_for, and say which check passed.
passed=0
check() {
    wait_for "$2" "$3" "$4"
    echo "ok: $1"
    passed=$((passed + 1))
}

serve() {
    # Not through in_ns: `$!` must be pav itself (ip netns exec execs it), not a subshell.
    ip netns exec "$ns" "$pav" serve --listen "$host_ip:1783" --suite psk \
        --client "$device_id=$work/psk" --client "$sender_id=$work/psk" >>"$work/serve.log" 2>&1 &
    serve_pid=$!
    pids+=("$serve_pid")
}

start=$(date +%s)
echo "== tap-test: embedded client <-> pav serve (namespace $ns, TAP 10.83.0.0/24)"
serve
sleep 0.3
ip netns exec "$ns" "$client" --tap tap0 --ip "$device_ip/24" --server "$host_ip:1783" \
    --psk "$device_psk" --client-id "$device_id" --deadline 60 >"$work/client.log" 2>&1 &
client_pid=$!
pids+=("$client_pid")

check "RPC: call 0 (echo) answered" "$work/client.log" '^call 0: ping$' 15
check "RPC: call 404 answered by pav serve" "$work/client.log" '^call 404: HELLO$' 10
check "message device -> server acknowledged" "$work/client.log" '^sent kitchen/temp: acknowledged$' 10
check "message device -> server printed by pav serve" "$work/serve.log" '21\.5' 5
wait_for "$work/client.log" '^subscribed embedded$' 10
in_ns timeout 20 "$pav" send embedded greeting from-pav -s "$host_ip:1783" "${pav_auth[@]}" >"$work/send.log" 2>&1 \
    || { echo "tap-test: FAILED: pav send"; cat "$work/send.log"; exit 1; }
check "message server -> device (pav send through the broker)" "$work/client.log" '^message embedded/greeting: from-pav$' 10
wait_for "$work/client.log" '^phase recovery$' 10
kill "$serve_pid"
wait "$serve_pid" 2>/dev/null || true
wait_for "$work/client.log" '^call failed' 15
echo "(pav serve killed; the device's calls fail)"
serve
check "recovery: a call answered by the restarted pav serve" "$work/client.log" '^recovered after [0-9]+ failed calls$' 30
check "recovery: a message acknowledged by the restarted pav serve" "$work/client.log" '^sent kitchen/after: acknowledged$' 15
wait "$client_pid" || { echo "tap-test: FAILED: host_client exited with $?"; cat "$work/client.log"; exit 1; }
kill "$serve_pid" 2>/dev/null || true

echo "== tap-test: pav call / pav send -> embedded server"
ip netns exec "$ns" "$server" --tap tap0 --ip "$device_ip/24" --port 1783 \
    --psk "$device_psk" --client-id "$device_id" --deadline 40 >"$work/server.log" 2>&1 &
pids+=("$!")
wait_for "$work/server.log" '^listening on port 1783$' 15
dev_auth=(-s "$device_ip:1783" --psk "$psk" --client-id "$device_id")
in_ns timeout 20 "$pav" call "${dev_auth[@]}" 0 echo-me >"$work/call0.log" 2>&1 || true
check "pav call 0 (echo) answered by the device" "$work/call0.log" '^echo-me$' 1
in_ns timeout 20 "$pav" call "${dev_auth[@]}" 404 hello >"$work/call404.log" 2>&1 || true
check "pav call 404 answered by the device's handler" "$work/call404.log" '^HELLO$' 1
in_ns timeout 20 "$pav" call "${dev_auth[@]}" 402 abc >"$work/call402.log" 2>&1 || true
check "pav call 402 answered by the device's handler" "$work/call402.log" '^cba$' 1
in_ns timeout 20 "$pav" send kitchen temp 22.5 "${dev_auth[@]}" >"$work/send2.log" 2>&1 \
    || { echo "tap-test: FAILED: pav send to the device"; cat "$work/send2.log" "$work/server.log"; exit 1; }
check "pav send delivered to the device" "$work/server.log" '^message kitchen/temp: 22\.5' 5

echo "tap-test: $passed passed, 0 failed ($(($(date +%s) - start)) s)"
