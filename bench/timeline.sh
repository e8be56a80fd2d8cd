#!/usr/bin/env bash
# Where the time of one `burrow run` goes, across its processes (the CLI, the monitor, the
# stdio relay): runs `burrow run --rm ${BURROW_RUN_FLAGS---network none} IMAGE true` RUNS
# times with BURROW_TIMING set, then prints each phase's median time from the CLI's start,
# by process. Run as root:
#
#   bash bench/timeline.sh          BURROW=/path/to/burrow (default target/release/burrow)
#
# The phases are the `crate::timing::mark` calls in the source (src/timing.rs).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USER_NAME=burrowtest
IMAGE=127.0.0.1:5111/fixtures/busybox:latest
BENCH_DIR=${BENCH_DIR:-/var/tmp/burrow-bench}
RUNS=${RUNS:-20}
BURROW_SRC=${BURROW:-$REPO/target/release/burrow}

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

install_burrow || die "burrow: $burrow_error"
b=$BENCH_DIR/bin/burrow
cmd="$b run --rm ${BURROW_RUN_FLAGS---network none} $IMAGE true"
dir=$BENCH_DIR/timeline
rm -rf "$dir"
install -d -m 0777 "$dir"
# Two runs to warm the caches (compiled plugins, page cache), not counted.
for i in $(seq -2 "$RUNS"); do
    f=$dir/run-$i
    as_user env BURROW_TIMING="$f" sh -c "$cmd" >/dev/null
done
rm -f "$dir"/run--* "$dir"/run-0

python3 - "$dir" <<'EOF'
import os, statistics, sys
d = sys.argv[1]
phases = {}
totals = []
for name in sorted(os.listdir(d)):
    lines = [l.split() for l in open(os.path.join(d, name)) if l.strip()]
    start = min(int(l[0]) for l in lines if l[2] == "cli" and l[3] == "start")
    end = max(int(l[0]) for l in lines if l[2] == "cli" and l[3] == "end")
    totals.append((end - start) / 1e6)
    seen = {}
    for ns, pid, role, phase in lines:
        key = (role, phase)
        # The first time a process of that role passed the phase.
        seen.setdefault(key, (int(ns) - start) / 1e6)
    for key, ms in seen.items():
        phases.setdefault(key, []).append(ms)
rows = sorted((statistics.median(v), role, phase) for (role, phase), v in phases.items())
print(f"{'ms':>8}  {'process':<10} phase   (medians over {len(totals)} runs)")
prev = 0.0
for ms, role, phase in rows:
    print(f"{ms:8.2f}  {role:<10} {phase:<20} +{ms - prev:6.2f}")
    prev = ms
print(f"total: median {statistics.median(totals):.2f} ms, min {min(totals):.2f}, max {max(totals):.2f}")
EOF
