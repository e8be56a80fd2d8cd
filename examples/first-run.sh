#!/usr/bin/env bash
# Builds a first image offline from busybox-static (umoci), serves it from a throw-away
# registry on 127.0.0.1 (Debian's docker-registry), and runs it with burrow.
# Works as an unprivileged user or as root. Needs: umoci skopeo docker-registry busybox-static.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
burrow=${BURROW:-$here/target/release/burrow}
port=${PORT:-5998}
for tool in umoci skopeo docker-registry; do
    command -v "$tool" >/dev/null || { echo "first-run: $tool is missing (apt-get install umoci skopeo docker-registry busybox-static)" >&2; exit 2; }
done
[ -x /bin/busybox ] || { echo "first-run: /bin/busybox is missing (apt-get install busybox-static)" >&2; exit 2; }
[ -x "$burrow" ] || { echo "first-run: $burrow is missing (cargo build --release)" >&2; exit 2; }

work=$(mktemp -d)
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    chmod -R u+rwx "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# 1. An OCI image: busybox and its applets, a passwd file, a default command.
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:latest" >/dev/null
umoci unpack --rootless --image "$work/oci:latest" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
umoci repack --image "$work/oci:latest" "$work/bundle" >/dev/null
umoci config --image "$work/oci:latest" --config.cmd sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null

# 2. A registry on loopback only, with its storage in the temp dir.
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
    skopeo inspect --tls-verify=false "docker://127.0.0.1:$port/none" >/dev/null 2>&1 && break
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:latest" "docker://127.0.0.1:$port/first:latest"

# 3. burrow pulls it and runs it, rootless when you are not root.
image=127.0.0.1:$port/first:latest
"$burrow" pull --tls-verify=false "$image"
"$burrow" run --rm "$image" sh -c 'echo "hello from burrow: uid $(id -u), pid $$, host name $(hostname)"'
