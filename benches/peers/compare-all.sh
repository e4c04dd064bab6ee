#!/usr/bin/env bash
# quinn and Zenoh beside pavillion-rs on loopback, in one session: builds the peer programs
# (this folder, its own Cargo project) and `compare` (release), runs them alternately
# (peers, ours, peers, ours, ...), and prints one table of ratios from the `result` lines
# they print. Figures under one key are averaged over the rounds. See benches/README.md,
# "Peers: quinn and Zenoh".
#
#   benches/peers/compare-all.sh [--seconds S] [--rounds N] [--no-build] [--out DIR]
#                                [--compare BIN]   # a compare binary built elsewhere
#   benches/peers/compare-all.sh --from-files FILE...   # only the table, from recorded output
#
# Never run by CI: it builds Zenoh and quinn and takes minutes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=2
rounds=2
build=1
out=""
compare=""
from_files=()

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
        --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
        --no-build) build=0; shift ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --compare) compare=${2:?--compare needs a path}; shift 2 ;;
        --from-files) shift; from_files=("$@"); [ ${#from_files[@]} -gt 0 ] || usage 2; break ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

# The table: every `result<TAB>key<TAB>value<TAB>unit` line of the files, averaged per key;
# each row divides one key's mean by another's; a missing key makes the row "n/a".
table() {
    awk -F'\t' '
    $1 == "result" && NF >= 4 { sum[$2] += $3; n[$2]++; unit[$2] = $4 }
    # Every lookup tests membership first: awk creates an entry on a plain reference.
    function fig(k) { return (k in n) ? sprintf("%.0f %s", sum[k] / n[k], unit[k]) : "n/a" }
    function runs(k) { return (k in n) ? n[k] : 0 }
    function mean(k) { return sum[k] / n[k] }
    function quotient(a, b) {
        return ((a in n) && (b in n) && sum[b] != 0) ? sprintf("%.2fx", mean(a) / mean(b)) : "n/a"
    }
    # The raw UDP baseline measured beside a figure: ours in compare, the peers in their own
    # programs (a round trip figure against the ping-pong, a one-way rate against the blast).
    function base(k,    suite) {
        suite = k; sub(/.*_/, "", suite)
        if (k ~ /^(rpc_handler|rpc_fn0|raw_udp_pingpong)_64_/) return "raw_udp_pingpong_64_" suite
        if (k ~ /^(pipelined|reliable_threads|raw_udp_blast)_64_/) return "raw_udp_blast_64_" suite
        if (k ~ /^(quinn_dgram_pingpong|quinn_stream_rpc|zenoh_query|peer_raw_udp_pingpong)_64$/) return "peer_raw_udp_pingpong_64"
        if (k ~ /^(quinn_dgram_oneway|zenoh_pubsub|zenoh_pubsub_udp|peer_raw_udp_blast)_64$/) return "peer_raw_udp_blast_64"
        return ""
    }
    # Each figure over its own raw UDP baseline, then divided: a change of load between the
    # programs moves a figure and its baseline alike, so this cancels what the plain ratio
    # cannot.
    function normalised(a, b,    ba, bb) {
        ba = base(a); bb = base(b)
        if (!((a in n) && (b in n) && (ba in n) && (bb in n)) || sum[b] == 0 || sum[ba] == 0 || sum[bb] == 0)
            return "n/a"
        return sprintf("%.2fx", (mean(a) / mean(ba)) / (mean(b) / mean(bb)))
    }
    function row(what, a, b) {
        printf "| %s | %s | %s | %s | %s | %s/%s |\n", what, fig(a), fig(b), quotient(a, b), normalised(a, b), runs(a), runs(b)
    }
    END {
        print "| comparison | figure | against | ratio | ratio over own raw UDP | runs |"
        print "|---|---|---|---|---|---|"
        split("psk ecc noise", suites, " ")
        for (i = 1; i <= 3; i++) {
            s = suites[i]
            row("ours pipelined 64 B msgs, " s " / Zenoh pub/sub (tcp)", "pipelined_64_" s, "zenoh_pubsub_64")
            row("ours reliable 64 B msgs (8 threads), " s " / Zenoh pub/sub (tcp)", "reliable_threads_64_" s, "zenoh_pubsub_64")
            row("ours RPC (registered handler), " s " / quinn datagram ping-pong", "rpc_handler_64_" s, "quinn_dgram_pingpong_64")
            row("ours RPC (registered handler), " s " / quinn stream-per-call RPC", "rpc_handler_64_" s, "quinn_stream_rpc_64")
            row("ours RPC (registered handler), " s " / Zenoh get/queryable", "rpc_handler_64_" s, "zenoh_query_64")
            row("ours RPC (registered handler), " s " / raw UDP ping-pong (compare)", "rpc_handler_64_" s, "raw_udp_pingpong_64_" s)
            row("ours pipelined 64 B msgs, " s " / raw UDP blast (compare)", "pipelined_64_" s, "raw_udp_blast_64_" s)
        }
        row("quinn datagram ping-pong / raw UDP ping-pong (peers)", "quinn_dgram_pingpong_64", "peer_raw_udp_pingpong_64")
        row("quinn stream-per-call RPC / raw UDP ping-pong (peers)", "quinn_stream_rpc_64", "peer_raw_udp_pingpong_64")
        row("quinn one-way datagrams / raw UDP blast (peers)", "quinn_dgram_oneway_64", "peer_raw_udp_blast_64")
        row("Zenoh pub/sub (tcp) / raw UDP blast (peers)", "zenoh_pubsub_64", "peer_raw_udp_blast_64")
        row("Zenoh pub/sub (udp) / raw UDP blast (peers)", "zenoh_pubsub_udp_64", "peer_raw_udp_blast_64")
        row("Zenoh get/queryable / raw UDP ping-pong (peers)", "zenoh_query_64", "peer_raw_udp_pingpong_64")
        # The two programs measure the same raw baselines: if these are far from 1, the
        # load changed between them and cross-program ratios above are suspect.
        row("baseline check: raw UDP ping-pong, peers / compare (psk)", "peer_raw_udp_pingpong_64", "raw_udp_pingpong_64_psk")
        row("baseline check: raw UDP blast, peers / compare (psk)", "peer_raw_udp_blast_64", "raw_udp_blast_64_psk")
    }' "$@"
}

if [ ${#from_files[@]} -gt 0 ]; then
    table "${from_files[@]}"
    exit 0
fi

peers_target=$here/target
if [ "$build" = 1 ]; then
    if [ -z "$compare" ]; then
        echo "building compare (release)" >&2
        (cd "$root" && nice -n 5 cargo build --release -q -p pavillion-benches --bin compare)
    fi
    echo "building the peers (release; Zenoh takes a while the first time)" >&2
    (cd "$here" && CARGO_TARGET_DIR="$peers_target" nice -n 5 cargo build --release --locked -q)
fi
[ -n "$compare" ] || compare=${CARGO_TARGET_DIR:-$root/target}/release/compare
[ -n "$out" ] || out=$peers_target/compare-all
mkdir -p "$out"
: > "$out/peers.txt"
: > "$out/ours.txt"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start; --seconds $seconds, $rounds rounds" | tee "$out/machine.txt"
for round in $(seq 1 "$rounds"); do
    for program in quinn-pingpong quinn-throughput zenoh-pubsub zenoh-query; do
        echo "== round $round: $program" >&2
        # A program that fails leaves its keys out (its rows say n/a); the others still run.
        "$peers_target/release/$program" --seconds "$seconds" | tee -a "$out/peers.txt" >&2 ||
            echo "warning: $program failed in round $round" | tee -a "$out/machine.txt" >&2
    done
    echo "== round $round: compare --loopback-only" >&2
    "$compare" --loopback-only --results --seconds "$seconds" | tee -a "$out/ours.txt" >&2 ||
        echo "warning: compare failed in round $round" | tee -a "$out/machine.txt" >&2
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
echo "raw output: $out/peers.txt, $out/ours.txt"
echo
table "$out/peers.txt" "$out/ours.txt"
