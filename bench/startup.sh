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

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || { echo "bench/startup.sh must run as root (it runs the tools as $USER_NAME via runuser)" >&2; exit 2; }

missing=()
for tool in hyperfine:hyperfine podman:podman runc:runc bwrap:bubblewrap skopeo:skopeo \
    umoci:umoci newuidmap:uidmap docker-registry:docker-registry; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    die "missing tools; install them with: apt-get install -y ${missing[*]}"
fi

# --- environment -----------------------------------------------------------------------------

BURROW_TEST_STARTED=$(mktemp /tmp/burrow-bench-started.XXXXXX)
export BURROW_TEST_STARTED
cleanup() {
    local ports
    ports=$(sort -u "$BURROW_TEST_STARTED" | tr '\n' ' ')
    # shellcheck disable=SC2086
    [[ -z ${ports// /} ]] || bash "$REPO/tests/setup.sh" stop $ports || true
    rm -f "$BURROW_TEST_STARTED"
    # Rootless podman leaves a pause process holding its user namespace: end it.
    local pause=${runtime_dir:-/nonexistent}/libpod/tmp/pause.pid pid
    if [[ -f $pause ]]; then
        pid=$(cat "$pause")
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) != podman* ]] || kill "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "preparing the test environment (tests/setup.sh)"
bash "$REPO/tests/setup.sh" >/dev/null

uid=$(id -u "$USER_NAME")
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
runtime_dir=/run/user/$uid
[[ -d $runtime_dir ]] || install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$runtime_dir"
install -d -m 0755 -o "$USER_NAME" -g "$USER_NAME" "$BENCH_DIR" "$BENCH_DIR/bin"

# as_user CMD...: CMD as the test user, in a clean login-like environment, from $BENCH_DIR
# (the repository may sit where the user cannot read, e.g. /root).
as_user() {
    (cd "$BENCH_DIR" && runuser -u "$USER_NAME" -- env -i \
        HOME="$home" USER="$USER_NAME" LOGNAME="$USER_NAME" SHELL=/bin/sh \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        XDG_RUNTIME_DIR="$runtime_dir" LANG=C.UTF-8 "$@")
}

# podman: runc (crun fails on this hybrid-cgroup machine), cgroupfs and file events (no systemd).
as_user mkdir -p "$home/.config/containers"
as_user sh -c "cat >'$home/.config/containers/containers.conf'" <<'EOF'
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# --- the three contenders --------------------------------------------------------------------

names=()
cmds=()
skipped=()

# burrow: the binary copied where the user can execute it, the image pulled beforehand.
burrow_bin=$BENCH_DIR/bin/burrow
burrow_cmd="$burrow_bin run --rm ${BURROW_RUN_FLAGS:-} $IMAGE true"
if [[ ! -x $BURROW_SRC ]]; then
    skipped+=("burrow: no binary at $BURROW_SRC (cargo build --release, or set BURROW=)")
else
    install -m 0755 "$BURROW_SRC" "$burrow_bin"
    say "burrow: pulling $IMAGE"
    if ! out=$(as_user "$burrow_bin" pull --tls-verify=false "$IMAGE" 2>&1); then
        skipped+=("burrow: pull failed: $(tail -n 3 <<<"$out")")
    elif ! out=$(as_user sh -c "$burrow_cmd" 2>&1); then
        skipped+=("burrow: '$burrow_cmd' failed: $(tail -n 3 <<<"$out")")
    else
        names+=(burrow)
        cmds+=("$burrow_cmd")
    fi
fi

podman_cmd="podman run --rm --network none --tls-verify=false $IMAGE true"
say "podman: pulling $IMAGE"
if ! out=$(as_user podman pull -q --tls-verify=false "$IMAGE" 2>&1); then
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

python3 - "$json" <<'EOF'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print("\nmedian startup (ms), %d runs each:" % len(next(iter(results.values()))["times"]))
for name, r in results.items():
    print(f"  {name:8} {r['median'] * 1000:8.1f}   (mean {r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f})")
if "burrow" in results and "podman" in results:
    ratio = results["burrow"]["median"] / results["podman"]["median"]
    print(f"  burrow/podman median ratio: {ratio:.3f}")
else:
    print("  burrow/podman ratio: n/a (both must have run)")
EOF
if [[ ${#skipped[@]} -gt 0 ]]; then
    say "incomplete: ${#skipped[@]} contender(s) skipped (see SKIPPED above)"
    exit 1
fi
