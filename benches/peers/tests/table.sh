#!/usr/bin/env bash
# Checks compare-all.sh's table maths from recorded output (--from-files): figures under one
# key are averaged over every file and round, each ratio is the two means divided, and a
# missing key gives "n/a" rather than a wrong number. Not run by CI (nor is the script);
# run it by hand: bash benches/peers/tests/table.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# "ratio over own raw UDP" divides each figure by the baseline measured beside it first.
# Two rounds of peers, two of ours; human lines and blank lines among them are ignored.
printf 'quinn datagram ping-pong ...: 1 rt/s\n\nresult\tquinn_dgram_pingpong_64\t20000.000\trt/s\nresult\tpeer_raw_udp_pingpong_64\t40000.000\trt/s\nresult\tzenoh_pubsub_64\t1000000.000\tmsg/s\n' > "$dir/peers.txt"
printf 'result\tquinn_dgram_pingpong_64\t30000.000\trt/s\nresult\tpeer_raw_udp_pingpong_64\t60000.000\trt/s\nresult\tpeer_raw_udp_blast_64\t500000.000\tdg/s\n' >> "$dir/peers.txt"
printf 'loopback RPC ... 1 calls/s\nresult\trpc_handler_64_psk\t30000.000\tcalls/s\nresult\traw_udp_pingpong_64_psk\t70000.000\trt/s\n' > "$dir/ours.txt"
printf 'result\trpc_handler_64_psk\t40000.000\tcalls/s\nresult\traw_udp_pingpong_64_psk\t70000.000\trt/s\nresult\tpipelined_64_noise\t250000.000\tmsg/s\n' >> "$dir/ours.txt"

table=$(bash "$here/../compare-all.sh" --from-files "$dir/peers.txt" "$dir/ours.txt")
fail=0
expect() {
    if ! grep -qF -- "$1" <<<"$table"; then
        echo "missing row: $1" >&2
        fail=1
    fi
}
# Means: rpc psk 35000, quinn 25000, raw (peers) 50000, raw (compare) 70000; so ours over
# its raw UDP is 0.5, quinn over its raw UDP is 0.5, and the normalised ratio is 1.
expect "| ours RPC (registered handler), psk / quinn datagram ping-pong | 35000 calls/s | 25000 rt/s | 1.40x | 1.00x | 2/2 |"
expect "| ours RPC (registered handler), psk / raw UDP ping-pong (compare) | 35000 calls/s | 70000 rt/s | 0.50x | 0.50x | 2/2 |"
expect "| quinn datagram ping-pong / raw UDP ping-pong (peers) | 25000 rt/s | 50000 rt/s | 0.50x | 0.50x | 2/2 |"
expect "| Zenoh pub/sub (tcp) / raw UDP blast (peers) | 1000000 msg/s | 500000 dg/s | 2.00x | 2.00x | 1/1 |"
expect "| baseline check: raw UDP ping-pong, peers / compare (psk) | 50000 rt/s | 70000 rt/s | 0.71x | 1.00x | 2/2 |"
# Missing keys: n/a, never a number; a missing baseline makes only the normalised ratio n/a.
expect "| ours pipelined 64 B msgs, noise / Zenoh pub/sub (tcp) | 250000 msg/s | 1000000 msg/s | 0.25x | n/a | 1/1 |"
expect "| ours pipelined 64 B msgs, psk / Zenoh pub/sub (tcp) | n/a | 1000000 msg/s | n/a | n/a | 0/1 |"
expect "| quinn stream-per-call RPC / raw UDP ping-pong (peers) | n/a | 50000 rt/s | n/a | n/a | 0/2 |"
expect "| Zenoh get/queryable / raw UDP ping-pong (peers) | n/a | 50000 rt/s | n/a | n/a | 0/2 |"
rows=$(grep -c '^| ' <<<"$table")
if [ "$rows" != 30 ]; then
    echo "expected 30 table lines (the header and 29 rows), got $rows" >&2
    fail=1
fi
if [ "$fail" = 0 ]; then
    echo "table.sh: 1 passed, 0 failed"
else
    echo "$table" >&2
    echo "table.sh: 0 passed, 1 failed"
    exit 1
fi
