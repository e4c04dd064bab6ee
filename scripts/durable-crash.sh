#!/usr/bin/env bash
# The crash test of durable messages at the issue's size (issue 17): 10,000 lines from
# `pav send --durable --lines` to `pav serve --durable --output`, both killed with SIGKILL at
# seeded random points and restarted; every line must end up in the output exactly once.
# CI runs the same test (the same defaults) in a debug build; this runs it in release, with
# more kills, and replays a seed.
#   scripts/durable-crash.sh               # a fresh seed (printed)
#   PAV_CRASH_SEED=1234 scripts/durable-crash.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PAV_CRASH_LINES="${PAV_CRASH_LINES:-10000}"
export PAV_CRASH_KILLS="${PAV_CRASH_KILLS:-48}"
exec cargo test --release -p pavillion-std --test cli_durable_crash -- --nocapture
