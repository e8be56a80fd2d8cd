#!/usr/bin/env bash
# Container startup latency, side by side: burrow vs podman (runc) vs bare bubblewrap, each
# running `true` in the busybox fixture image as the unprivileged test user. Run as root:
#
#   bash bench/startup.sh            BURROW=/path/to/burrow to pick the binary
#                                    (default: target/release/burrow)
#
# It runs tests/setup.sh (users, registry, fixture image) first and stops the registries that
# started on exit. Results: $BENCH_DIR/startup.json (hyperfine) and a summary on stdout.
# See bench/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USER_NAME=burrowtest
IMAGE=127.0.0.1:5111/fixtures/busybox:latest
BENCH_DIR=${BENCH_DIR:-/var/tmp/burrow-bench}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-20}
BURROW_SRC=${BURROW:-$REPO/target/release/burrow}

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

# --- the three contenders --------------------------------------------------------------------

names=()
cmds=()
skipped=()

# burrow: the binary copied where the user can execute it, the image pulled beforehand.
# --network none by default, as podman's command here; BURROW_RUN_FLAGS= (empty) times the default bridge.
burrow_cmd="$BENCH_DIR/bin/burrow run --rm ${BURROW_RUN_FLAGS---network none} $IMAGE true"
if ! install_burrow; then
    skipped+=("burrow: $burrow_error")
elif ! out=$(as_user sh -c "$burrow_cmd" 2>&1); then
    skipped+=("burrow: '$burrow_cmd' failed: $(tail -n 3 <<<"$out")")
else
    names+=(burrow)
    cmds+=("$burrow_cmd")
fi

podman_cmd="podman run --rm --network none --tls-verify=false $IMAGE true"
if ! out=$(pull_podman 2>&1); then
    skipped+=("podman: pull failed: $(tail -n 3 <<<"$out")")
elif ! out=$(as_user sh -c "$podman_cmd" 2>&1); then
    skipped+=("podman: '$podman_cmd' failed: $(tail -n 3 <<<"$out")")
else
    names+=(podman)
    cmds+=("$podman_cmd")
fi

# bwrap: the same image unpacked by skopeo + umoci as the user. The image has no /proc or /dev
# and the bind is read-only, so the mount points are made here, as a runtime would.
rootfs=$BENCH_DIR/bundle/rootfs
bwrap_cmd="bwrap --unshare-all --ro-bind $rootfs / --proc /proc --dev /dev true"
say "bwrap: unpacking $IMAGE to $rootfs"
rm -rf "$BENCH_DIR/oci" "$BENCH_DIR/bundle"
if ! out=$(as_user sh -c "skopeo --insecure-policy copy -q --src-tls-verify=false \
        docker://$IMAGE oci:$BENCH_DIR/oci:busybox \
        && umoci unpack --rootless --image $BENCH_DIR/oci:busybox $BENCH_DIR/bundle \
        && mkdir -p $rootfs/proc $rootfs/dev" 2>&1); then
    skipped+=("bwrap: unpacking the image failed: $(tail -n 3 <<<"$out")")
elif ! out=$(as_user sh -c "$bwrap_cmd" 2>&1); then
    skipped+=("bwrap: '$bwrap_cmd' failed: $(tail -n 3 <<<"$out")")
else
    names+=(bwrap)
    cmds+=("$bwrap_cmd")
fi

for s in "${skipped[@]}"; do say "SKIPPED $s"; done
[[ ${#cmds[@]} -gt 0 ]] || die "nothing to measure"

# --- measure ---------------------------------------------------------------------------------

json=$BENCH_DIR/startup.json
# -N: the commands are plain argv; no shell, so nothing to calibrate away.
args=(-N --warmup "$WARMUP" --runs "$RUNS" --export-json "$json")
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
say "hyperfine --warmup $WARMUP --runs $RUNS (as $USER_NAME)"
as_user hyperfine "${args[@]}"

report "$json" "median startup (ms)"
if [[ ${#skipped[@]} -gt 0 ]]; then
    say "incomplete: ${#skipped[@]} contender(s) skipped (see SKIPPED above)"
    exit 1
fi
