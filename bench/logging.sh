#!/usr/bin/env bash
# A container printing LINES lines (default 1,000,000) through the default log driver, side by
# side: burrow's json-file (a WebAssembly plugin), podman's k8s-file (conmon), and, when
# docker.io is installed, dockerd's json-file (as root, vfs, started here on a private socket).
# For each: seconds from `run -d` to the end of `wait`, lines per second, lines lost (lines
# printed minus lines in the log). burrow and podman run as the unprivileged test user.
# Run as root: bash bench/logging.sh   (BURROW=/path/to/burrow; default target/release/burrow)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USER_NAME=burrowtest
IMAGE=127.0.0.1:5111/fixtures/busybox:latest
BENCH_DIR=${BENCH_DIR:-/var/tmp/burrow-bench}
LINES=${LINES:-1000000}
ROUNDS=${ROUNDS:-3}
BURROW_SRC=${BURROW:-$REPO/target/release/burrow}

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

install_burrow || die "burrow: $burrow_error"
pull_podman || die "podman: cannot pull $IMAGE"
b=$BENCH_DIR/bin/burrow
cmd="seq $LINES"

now() { date +%s.%N; }

# result TOOL SECONDS LOGGED
result() {
    python3 -c 'import sys
tool, secs, logged, lines = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"  {tool:8} {secs:7.2f} s   {lines / secs:10.0f} lines/s   lost {lines - logged}")' "$@" "$LINES"
}

echo
echo "$LINES lines through the default log driver, $ROUNDS rounds each:"
for round in $(seq "$ROUNDS"); do
    t0=$(now)
    id=$(as_user "$b" run -d "$IMAGE" $cmd)
    as_user "$b" wait "$id" >/dev/null
    t1=$(now)
    logged=$(as_user sh -c "cat \$($b inspect --format '{{.LogPath}}' $id)* | wc -l")
    result burrow "$(echo "$t1 - $t0" | bc)" "$logged"
    as_user "$b" rm -f "$id" >/dev/null

    t0=$(now)
    id=$(as_user podman run -d --network none --log-driver k8s-file "$IMAGE" $cmd)
    as_user podman wait "$id" >/dev/null
    t1=$(now)
    path=$(as_user podman inspect --format '{{.HostConfig.LogConfig.Path}}' "$id")
    # k8s-file cuts lines at conmon's read boundaries into P(artial) records ended by an
    # F(ull) one: count the F records, one per line printed.
    logged=$(as_user awk '$3 == "F"' "$path" | wc -l)
    result podman "$(echo "$t1 - $t0" | bc)" "$logged"
    as_user podman rm -f "$id" >/dev/null

    if command -v dockerd >/dev/null; then
        sock=/var/tmp/burrow-bench/dockerd.sock
        if [[ ! -S $sock ]]; then
            say "starting dockerd (vfs, no bridge) on $sock"
            mkdir -p /var/tmp/burrow-bench/dockerd
            dockerd --host "unix://$sock" --data-root /var/tmp/burrow-bench/dockerd \
                --exec-root /var/tmp/burrow-bench/dockerd-exec --pidfile /var/tmp/burrow-bench/dockerd.pid \
                --storage-driver vfs --bridge none --iptables=false \
                >/var/tmp/burrow-bench/dockerd.log 2>&1 &
            for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.2; done
            mkdir -p /var/tmp/burrow-bench/bb/bin && cp /bin/busybox /var/tmp/burrow-bench/bb/bin/
            for app in sh seq; do ln -sf busybox /var/tmp/burrow-bench/bb/bin/$app; done
            tar -C /var/tmp/burrow-bench/bb -c . | docker -H "unix://$sock" import - local/bb:1 >/dev/null
        fi
        d() { docker -H "unix://$sock" "$@"; }
        t0=$(now)
        id=$(d run -d --network none local/bb:1 $cmd)
        d wait "$id" >/dev/null
        t1=$(now)
        logged=$(wc -l < "$(d inspect --format '{{.LogPath}}' "$id")")
        result dockerd "$(echo "$t1 - $t0" | bc)" "$logged"
        d rm -f "$id" >/dev/null
    fi
done
if [[ -f /var/tmp/burrow-bench/dockerd.pid ]]; then
    kill "$(cat /var/tmp/burrow-bench/dockerd.pid)" 2>/dev/null || true
fi
