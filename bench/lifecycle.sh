#!/usr/bin/env bash
# Detached-container lifecycle, side by side with podman (runc), as the unprivileged test user:
#   cycle  `rm -f $(run -d IMAGE sleep 100)`: start a detached container and remove it
#   ps     `ps -a` with 100 containers present
# Run as root: bash bench/lifecycle.sh   (BURROW=/path/to/burrow; default target/release/burrow)
# Results: $BENCH_DIR/lifecycle-*.json (hyperfine) and a summary on stdout. See bench/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USER_NAME=burrowtest
IMAGE=127.0.0.1:5111/fixtures/busybox:latest
BENCH_DIR=${BENCH_DIR:-/var/tmp/burrow-bench}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-20}
CONTAINERS=${CONTAINERS:-100}
BURROW_SRC=${BURROW:-$REPO/target/release/burrow}

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

install_burrow || die "burrow: $burrow_error"
pull_podman || die "podman: cannot pull $IMAGE"
b=$BENCH_DIR/bin/burrow

# Start from no containers, and leave none behind.
clear_containers() {
    as_user sh -c "ids=\$($b ps -aq); [ -z \"\$ids\" ] || $b rm -f \$ids >/dev/null"
    as_user podman rm -a -f -t 0 >/dev/null
}
trap 'clear_containers || true; cleanup' EXIT
clear_containers

# --- run -d + rm -f ---------------------------------------------------------------------------
json=$BENCH_DIR/lifecycle-cycle.json
say "cycle: hyperfine --warmup $WARMUP --runs $RUNS (as $USER_NAME)"
as_user hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" \
    -n burrow "$b rm -f \$($b run -d --network none $IMAGE sleep 100)" \
    -n podman "podman rm -f -t 0 \$(podman run -d --network none $IMAGE sleep 100)"
report "$json" "median run -d + rm -f (ms)"

# --- ps -a with many containers ---------------------------------------------------------------
say "creating $CONTAINERS containers with each tool"
as_user sh -c "for i in \$(seq $CONTAINERS); do $b create $IMAGE true >/dev/null; done"
as_user sh -c "for i in \$(seq $CONTAINERS); do podman create --network none $IMAGE true >/dev/null; done"
json=$BENCH_DIR/lifecycle-ps.json
as_user hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" \
    -n burrow "$b ps -a" -n podman "podman ps -a"
report "$json" "median ps -a with $CONTAINERS containers (ms)"
