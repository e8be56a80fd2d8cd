#!/usr/bin/env bash
# Shared by the bench scripts (sourced, not run): tool checks, the test environment
# (tests/setup.sh: users, registry, fixture image), `as_user`, podman's configuration, and a
# cleanup trap that stops what was started. Expects REPO, USER_NAME, BENCH_DIR set.

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || { echo "bench scripts must run as root (it runs the tools as $USER_NAME via runuser)" >&2; exit 2; }

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


# install_burrow: copies $BURROW_SRC where the user can execute it and pulls $IMAGE with it.
# Sets burrow_bin; returns non-zero with a message in $burrow_error when it cannot.
install_burrow() {
    burrow_bin=$BENCH_DIR/bin/burrow
    if [[ ! -x $BURROW_SRC ]]; then
        burrow_error="no binary at $BURROW_SRC (cargo build --release, or set BURROW=)"
        return 1
    fi
    install -m 0755 "$BURROW_SRC" "$burrow_bin"
    say "burrow: pulling $IMAGE"
    if ! out=$(as_user "$burrow_bin" pull --tls-verify=false "$IMAGE" 2>&1); then
        burrow_error="pull failed: $(tail -n 3 <<<"$out")"
        return 1
    fi
}

pull_podman() {
    say "podman: pulling $IMAGE"
    as_user podman pull -q --tls-verify=false "$IMAGE" >/dev/null
}

# report JSON TITLE: medians of a hyperfine export and the burrow/podman ratio.
report() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print("\n%s, %d runs each:" % (sys.argv[2], len(next(iter(results.values()))["times"])))
for name, r in results.items():
    print(f"  {name:8} {r['median'] * 1000:8.1f}   (mean {r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f})")
if "burrow" in results and "podman" in results:
    ratio = results["burrow"]["median"] / results["podman"]["median"]
    print(f"  burrow/podman median ratio: {ratio:.3f}")
else:
    print("  burrow/podman ratio: n/a (both must have run)")
EOF
}
