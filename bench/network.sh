#!/usr/bin/env bash
# Network throughput, side by side with podman's default rootless network (podman 4.3 on
# Debian 12: slirp4netns, ports through rootlesskit's port handler), as the unprivileged
# test user, SIZE_MB (default 1024) of zeros per round. burrow runs three times: with its
# default way out (libslirp in `burrow __egress`), with `rootless_network_cmd = "slirp4netns"`
# (burrow-s4n) and with `rootless_network_cmd = "pasta"` (burrow-pasta); the user's network
# holder is restarted before each burrow round so that it takes the way out asked for.
#   publish  host → container: a client on 127.0.0.1 sends to a published port (`-p`); a
#            static receiver in the container (bench/src/netsink.c) reads it
#   egress   container → another host: a static sender in the container (bench/src/netsend.c)
#            sends to a server in a network namespace this script makes (a veth pair; no
#            traffic leaves the machine)
#   rtt      1000 round trips of 10 bytes through a published port to the container's
#            `nc -l -e cat` (seconds in all = milliseconds per round trip)
#   start    `run --rm IMG true` on each tool's default network (hyperfine)
# Each figure is seconds from connect until the receiver has read everything.
# Run as root: bash bench/network.sh   (BURROW=/path/to/burrow; default target/release/burrow)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USER_NAME=burrowtest
IMAGE=127.0.0.1:5111/fixtures/busybox:latest
BENCH_DIR=${BENCH_DIR:-/var/tmp/burrow-bench}
ROUNDS=${ROUNDS:-3}
SIZE_MB=${SIZE_MB:-1024}
BURROW_SRC=${BURROW:-$REPO/target/release/burrow}
NS=burrow-bench-ext
LINK=bt-bench
PREFIX=10.231.9

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

install_burrow || die "burrow: $burrow_error"
pull_podman || die "podman: cannot pull $IMAGE"
b=$BENCH_DIR/bin/burrow
bytes=$((SIZE_MB * 1024 * 1024))
s4n_config=$BENCH_DIR/slirp4netns.toml
echo 'rootless_network_cmd = "slirp4netns"' >"$s4n_config"
pasta_config=$BENCH_DIR/pasta.toml
echo 'rootless_network_cmd = "pasta"' >"$pasta_config"
chmod 0644 "$s4n_config" "$pasta_config"
# TOOLS="burrow podman" runs only those.
read -ra TOOLS <<<"${TOOLS:-burrow burrow-s4n burrow-pasta podman}"

# tool_cmd TOOL: sets cmd to the command line of TOOL; a burrow gets a fresh network holder.
tool_cmd() {
    case $1 in
    burrow) cmd=("$b") ;;
    burrow-s4n) cmd=("$b" --config "$s4n_config") ;;
    burrow-pasta) cmd=("$b" --config "$pasta_config") ;;
    podman) cmd=(podman) ;;
    esac
    if [[ $1 == burrow* ]]; then
        pkill -KILL -u "$USER_NAME" -f -- "__network-holder" || true
        sleep 0.3
    fi
}

# The sender and the receiver on the host's side: plain sockets, timed.
tool=$BENCH_DIR/netbench.py
cat >"$tool" <<'EOF'
import socket, sys, time
mode, host, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = memoryview(bytes(1 << 20))  # slices of a memoryview are not copies
if mode == "send":
    # Retry while the container's listener starts.
    deadline = time.time() + 20
    while True:
        s = socket.create_connection((host, port))
        start = time.time()
        sent = 0
        try:
            while sent < size:
                sent += s.send(chunk[: min(len(chunk), size - sent)])
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            break
        except (BrokenPipeError, ConnectionResetError):
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    print(f"{time.time() - start:.3f}")
elif mode == "rtt":
    # size round trips of 10 bytes on one connection (the container echoes them back).
    deadline = time.time() + 20
    while True:
        try:
            s = socket.create_connection((host, port))
            s.sendall(b"0123456789")
            if len(s.recv(10)) == 10:
                break
        except OSError:
            pass
        s.close()
        if time.time() > deadline:
            raise SystemExit("no echo")
        time.sleep(0.2)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.time()
    for _ in range(size):
        s.sendall(b"0123456789")
        got = 0
        while got < 10:
            got += len(s.recv(10 - got))
    print(f"{time.time() - start:.3f}")
else:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1)
    print("listening", flush=True, file=sys.stderr)
    c, _ = ls.accept()
    start = time.time()
    got = 0
    while got < size:
        n = len(c.recv(1 << 20))
        if n == 0:
            break
        got += n
    c.close()
    print(f"{time.time() - start:.3f}" if got == size else f"short:{got}")
EOF

netsend=$BENCH_DIR/netsend
gcc -static -O2 -o "$netsend" "$REPO/bench/src/netsend.c" || die "cannot build bench/src/netsend.c (gcc)"
netsink=$BENCH_DIR/netsink
gcc -static -O2 -o "$netsink" "$REPO/bench/src/netsink.c" || die "cannot build bench/src/netsink.c (gcc)"
chmod 0755 "$netsend" "$netsink"

remove_ns() {
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$LINK" 2>/dev/null || true
}
clear_containers() {
    as_user sh -c "ids=\$($b ps -aq); [ -z \"\$ids\" ] || $b rm -f \$ids >/dev/null"
    pkill -KILL -u "$USER_NAME" -f -- "__network-holder" || true
    as_user podman rm -a -f -t 0 >/dev/null
}
trap 'clear_containers || true; remove_ns; cleanup' EXIT
clear_containers
remove_ns
ip netns add "$NS"
ip link add "$LINK" type veth peer name eth0 netns "$NS"
ip addr add "$PREFIX.1/24" dev "$LINK"
ip link set "$LINK" up
ip -n "$NS" addr add "$PREFIX.2/24" dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set lo up

# --- start latency on each tool's default network ---------------------------------------------
json=$BENCH_DIR/network-start.json
say "start: hyperfine --warmup 3 --runs ${RUNS:-15} run --rm on the default network (as $USER_NAME)"
as_user hyperfine -N --warmup 3 --runs "${RUNS:-15}" --export-json "$json" \
    -n burrow "$b run --rm $IMAGE true" -n podman "podman run --rm $IMAGE true"
report "$json" "median run --rm IMG true on the default network (ms): burrow bridge, podman slirp4netns"

declare -A results
port=18931

publish_round() { # TOOL
    local t=$1 cmd
    tool_cmd "$t"
    # The receiver is a static C program (bench/src/netsink.c, 1 MiB reads) fed in on stdin:
    # busybox's nc reads in small pieces and would be the bottleneck.
    as_user "${cmd[@]}" run --rm -i --name nb -p "127.0.0.1:$port:5001" "$IMAGE" \
        sh -c 'cat > /netsink && chmod +x /netsink && exec /netsink 5001' \
        <"$netsink" >/dev/null 2>&1 &
    local receiver=$!
    sleep 1
    local secs
    secs=$(python3 "$tool" send 127.0.0.1 "$port" "$bytes")
    wait "$receiver" || true
    results[publish-$t]+="$secs "
}

rtt_round() { # TOOL: 1000 round trips of 10 bytes through a published port
    local t=$1 cmd
    tool_cmd "$t"
    as_user "${cmd[@]}" run -d --name nr -p "127.0.0.1:$port:5003" "$IMAGE" \
        nc -l -p 5003 -e cat >/dev/null
    results[rtt-$t]+="$(python3 "$tool" rtt 127.0.0.1 "$port" 1000) "
    as_user "${cmd[@]}" rm -f nr >/dev/null 2>&1 || as_user "${cmd[@]}" rm -f -t 0 nr >/dev/null
}

egress_round() { # TOOL
    local t=$1 cmd out
    tool_cmd "$t"
    out=$(mktemp)
    ip netns exec "$NS" python3 "$tool" sink "$PREFIX.2" 5002 "$bytes" >"$out" 2>/dev/null &
    local sink=$!
    sleep 0.5
    # The sender is a static C program (bench/src/netsend.c, 1 MiB writes) fed in on stdin:
    # busybox's `head | nc` would be the bottleneck and hide the network's own cost.
    as_user "${cmd[@]}" run --rm -i "$IMAGE" \
        sh -c "cat > /netsend && chmod +x /netsend && exec /netsend $PREFIX.2 5002 $bytes" \
        <"$netsend" >/dev/null 2>&1 || true
    wait "$sink" || true
    results[egress-$t]+="$(cat "$out") "
    rm -f "$out"
}

for round in $(seq "$ROUNDS"); do
    for t in "${TOOLS[@]}"; do
        say "round $round: $t publish"
        publish_round "$t"
        say "round $round: $t egress"
        egress_round "$t"
        say "round $round: $t rtt"
        rtt_round "$t"
    done
done

python3 - "$SIZE_MB" "${results[publish-burrow]:-}" "${results[publish-burrow-s4n]:-}" \
    "${results[publish-burrow-pasta]:-}" "${results[publish-podman]:-}" \
    "${results[egress-burrow]:-}" "${results[egress-burrow-s4n]:-}" \
    "${results[egress-burrow-pasta]:-}" "${results[egress-podman]:-}" \
    "${results[rtt-burrow]:-}" "${results[rtt-burrow-s4n]:-}" \
    "${results[rtt-burrow-pasta]:-}" "${results[rtt-podman]:-}" <<'EOF'
import statistics, sys
size = int(sys.argv[1])
tools = ["burrow", "burrow-s4n", "burrow-pasta", "podman"]
names = [f"{what} {tool}" for what in ["publish", "egress", "rtt"] for tool in tools]
med = {}
print(f"\n{size} MiB per round (rtt: 1000 round trips); seconds per round, median, rate of the median:")
for name, raw in zip(names, sys.argv[2:]):
    vals = [float(v) for v in raw.split() if not v.startswith("short")]
    bad = [v for v in raw.split() if v.startswith("short")]
    if not vals:
        print(f"  {name:18} no complete round {bad}")
        continue
    m = statistics.median(vals)
    med[name] = m
    rate = f"{m:.3f} ms per round trip" if name.startswith("rtt") else f"{size / m:8.1f} MiB/s"
    print(f"  {name:18} {' '.join(f'{v:.2f}' for v in vals):30} median {m:.2f}  {rate}"
          + (f"  incomplete: {bad}" if bad else ""))
for what in ["publish", "egress", "rtt"]:
    for tool in tools[:3]:
        if f"{what} {tool}" in med and f"{what} podman" in med:
            ratio = med[f"{what} {tool}"] / med[f"{what} podman"]
            print(f"  {what}: {tool}/podman time ratio {ratio:.3f}")
EOF
