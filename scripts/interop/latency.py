#!/usr/bin/env python3
"""Time N runs of one command (a one-shot `pav call`, say) and print the latency percentiles.

This file is ours; scripts/interop.sh runs it inside its network namespace, so that only the
command itself is timed, not `ip netns exec`. Usage:

    latency.py --label TEXT --n N [--expect REGEX] [--timeout SECONDS] -- COMMAND [ARG...]

A run counts as ok when the command exits 0 within --timeout and, with --expect, its standard
output matches REGEX. Prints one line,

    LAT  TEXT: n=N ok=K p50=X ms p99=Y ms min=A ms max=B ms

(percentiles by nearest rank over the ok runs), then a JSON object with the same fields, and
exits 0 only if every run was ok.
"""

import argparse
import json
import math
import re
import subprocess
import sys
import time


def percentile(sorted_ms, p):
    """Nearest-rank percentile of an ascending list: the smallest value with at least p% of
    the values at or below it."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_ms)))
    return sorted_ms[rank - 1]


def summary(label, n, times_ms):
    times_ms = sorted(times_ms)
    return {
        "event": "latency",
        "label": label,
        "n": n,
        "ok": len(times_ms),
        "p50_ms": round(percentile(times_ms, 50), 3),
        "p99_ms": round(percentile(times_ms, 99), 3),
        "min_ms": round(times_ms[0], 3) if times_ms else float("nan"),
        "max_ms": round(times_ms[-1], 3) if times_ms else float("nan"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--expect", help="regex the command's stdout must match")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd or a.n < 1:
        p.error("need --n >= 1 and a command after --")
    expect = re.compile(a.expect) if a.expect else None
    times_ms = []
    failures = []
    for _ in range(a.n):
        start = time.perf_counter()
        try:
            run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            failures.append("timed out after %.1f s" % a.timeout)
            continue
        took = (time.perf_counter() - start) * 1000.0
        out = run.stdout.decode("utf-8", "replace")
        if run.returncode != 0:
            failures.append("exit %d: %s" % (run.returncode, (out + run.stderr.decode("utf-8", "replace")).strip()[:200]))
        elif expect and not expect.search(out):
            failures.append("unexpected output: %s" % out.strip()[:200])
        else:
            times_ms.append(took)
    s = summary(a.label, a.n, times_ms)
    print("LAT  %s: n=%d ok=%d p50=%.2f ms p99=%.2f ms min=%.2f ms max=%.2f ms"
          % (a.label, s["n"], s["ok"], s["p50_ms"], s["p99_ms"], s["min_ms"], s["max_ms"]))
    for f in failures[:3]:
        print("      failed run: %s" % f)
    print(json.dumps(s, sort_keys=True), flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
