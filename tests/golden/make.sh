#!/usr/bin/env bash
# Regenerates the golden files in tests/golden/ from a real Docker (run as root):
#
#   bash tests/golden/make.sh
#
# Needs Debian's docker.io (dockerd and /usr/bin/docker, 20.10.24 for the committed files),
# busybox-static (/bin/busybox), openssl and python3; no network. It starts a private dockerd
# (its own data root, exec root, socket and pid file under /var/tmp, no bridge, no iptables,
# vfs storage) so that it touches no other Docker on the machine, imports an image made of
# /bin/busybox and one symlink per applet under the reference the tests use
# (127.0.0.1:5111/fixtures/busybox:latest), runs every case of cases.json through
# `docker run` (golden.py docker), and writes *.golden and README.md (which records the
# Docker version and each exact command). On exit, whatever happened, it stops that dockerd
# and removes its directories.
#
# The golden files are Docker's behaviour: never edit them to match burrow.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "tests/golden/make.sh must run as root: it starts its own dockerd" >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=/var/tmp/golden-docker
SOCK=$BASE.sock
PIDFILE=$BASE.pid
WORK=$BASE-work
export DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_HOST=unix://$SOCK
export GOLDEN_IMAGE=127.0.0.1:5111/fixtures/busybox:latest
export GOLDEN_WORKDIR=$WORK

cleanup() {
    if [[ -f $PIDFILE ]]; then
        local pid
        pid=$(cat "$PIDFILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    # containerd-shim mounts may linger a moment after dockerd exits.
    grep -o " $BASE[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$BASE" "$BASE-exec" "$WORK" "$SOCK" "$PIDFILE" "$BASE.log"
}
trap cleanup EXIT

cleanup
mkdir -p "$BASE" "$BASE-exec" "$WORK"
dockerd --data-root "$BASE" --exec-root "$BASE-exec" -H "$DOCKER_HOST" --pidfile "$PIDFILE" \
    --bridge=none --iptables=false --ip6tables=false --storage-driver=vfs \
    >"$BASE.log" 2>&1 &
for _ in $(seq 100); do
    "$DOCKER" version >/dev/null 2>&1 && break
    sleep 0.3
done
"$DOCKER" version >/dev/null || { tail -20 "$BASE.log" >&2; exit 1; }

# The image: /bin/busybox and its applets, the fixture's PATH and CMD.
mkdir -p "$WORK/root/bin"
cp /bin/busybox "$WORK/root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$WORK/root/bin/$applet"
done
tar -C "$WORK/root" -cf "$WORK/busybox.tar" .
"$DOCKER" import -c 'CMD ["sh"]' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$WORK/busybox.tar" "$GOLDEN_IMAGE" >/dev/null

rm -f "$HERE"/*.golden
python3 "$HERE/golden.py" docker "$HERE"
echo "golden files written to $HERE"
