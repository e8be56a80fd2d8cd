#!/usr/bin/env bash
# Test environment for burrow's integration tests. Run as root; idempotent.
#
#   bash tests/setup.sh            create users, start registries, push fixture images
#   bash tests/setup.sh stop [PORT...]
#                                  stop the registries this script started (all, or the ports named)
#
# Everything generated lives under $BURROW_TEST_STATE (default /var/tmp/burrow-test), never in
# the repository. Fixture images are rebuilt only when missing from the registry or when the
# fixture scripts changed since the last build. When BURROW_TEST_STARTED names a file, the
# port of each registry this script starts (not one it reuses) is appended to it, so that the
# caller (tests/run.sh, bench/startup.sh) stops only its own.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${BURROW_TEST_STATE:-/var/tmp/burrow-test}

TEST_USER=burrowtest
NOSUB_USER=burrownosub
SUB_RANGE_START=400000
SUB_RANGE_COUNT=65536

REGISTRY_PORT=5111
AUTH_REGISTRY_PORT=5112
TOKEN_PORT=5113
TLS_REGISTRY_PORT=5114
AUTH_USER=tester
AUTH_PASS=s3cret

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- registries ------------------------------------------------------------------------------

# Prints the HTTP status of GET /v2/ on 127.0.0.1:PORT, or 000 when nothing answers.
# Proxies are bypassed on purpose: the registries are on loopback.
probe() {
    python3 - "$1" "${2:-http}" <<'EOF'
import ssl, sys, urllib.request, urllib.error
unverified = ssl.create_default_context()
unverified.check_hostname = False
unverified.verify_mode = ssl.CERT_NONE
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=unverified))
try:
    print(opener.open(f"{sys.argv[2]}://127.0.0.1:{sys.argv[1]}/v2/", timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

registry_dir() { echo "$STATE/registry-$1"; }

# True when PID is alive and is a docker-registry started with this port's config.
is_our_registry() {
    local pid=$1 port=$2
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "docker-registry serve $(registry_dir "$port")/config.yml"
}

write_registry_config() {
    local port=$1 auth=$2 dir data
    dir=$(registry_dir "$port")
    data=$dir/data
    # The TLS registry serves the plain registry's storage: same images, no second push.
    [[ $auth != tls ]] || data=$(registry_dir "$REGISTRY_PORT")/data
    mkdir -p "$dir" "$data"
    {
        cat <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        if [[ $auth == tls ]]; then
            cat <<EOF
  tls:
    certificate: $dir/cert.pem
    key: $dir/key.pem
EOF
        fi
        if [[ $auth == yes ]]; then
            cat <<EOF
auth:
  htpasswd:
    realm: burrow-test
    path: $dir/htpasswd
EOF
        fi
    } >"$dir/config.yml.tmp"
    mv -f "$dir/config.yml.tmp" "$dir/config.yml"
    if [[ $auth == tls && ! -s $dir/cert.pem ]]; then
        # Self-signed, for 127.0.0.1: burrow must refuse it unless told --tls-verify=false.
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
            -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    fi
    if [[ $auth == yes ]]; then
        # Keep an existing entry: a running registry has already read it.
        if ! htpasswd -vb "$dir/htpasswd" "$AUTH_USER" "$AUTH_PASS" >/dev/null 2>&1; then
            htpasswd -Bbn "$AUTH_USER" "$AUTH_PASS" >"$dir/htpasswd.tmp"
            mv -f "$dir/htpasswd.tmp" "$dir/htpasswd"
        fi
    fi
}

start_registry() {
    local port=$1 auth=$2 want=$3 dir status pid scheme=http
    [[ $auth != tls ]] || scheme=https
    dir=$(registry_dir "$port")
    status=$(probe "$port" "$scheme")
    if [[ $status == "$want" ]]; then
        log "registry on 127.0.0.1:$port already answering ($status), reused"
        return 0
    elif [[ $status != 000 ]]; then
        die "127.0.0.1:$port answers /v2/ with $status, expected $want: something else holds the port; stop it or run 'bash tests/setup.sh stop'"
    fi
    command -v docker-registry >/dev/null || die "docker-registry not installed (apt-get install docker-registry)"
    write_registry_config "$port" "$auth"
    setsid docker-registry serve "$dir/config.yml" </dev/null >>"$dir/registry.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    # Tell tests/run.sh which registries are its own to stop.
    [[ -z ${BURROW_TEST_STARTED:-} ]] || echo "$port" >>"$BURROW_TEST_STARTED"
    for _ in $(seq 1 100); do
        status=$(probe "$port" "$scheme")
        if [[ $status == "$want" ]]; then
            log "registry on 127.0.0.1:$port started (pid $pid, answers $status)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$dir/registry.log" >&2 || true
    die "registry on 127.0.0.1:$port did not come up (last status $status); log: $dir/registry.log"
}

stop_registry() {
    local port=$1 dir pid
    dir=$(registry_dir "$port")
    [[ -f $dir/pid ]] || return 0
    pid=$(cat "$dir/pid")
    if is_our_registry "$pid" "$port"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "registry on 127.0.0.1:$port stopped (pid $pid)"
    fi
    rm -f "$dir/pid"
}

# The token server (tests/fixtures/token_server.py) fronts the plain registry with bearer
# tokens; Debian ships no token server for docker-registry.
token_dir() { echo "$STATE/token-$1"; }

start_token_server() {
    local port=$1 dir status pid
    dir=$(token_dir "$port")
    status=$(probe "$port")
    if [[ $status == 401 ]]; then
        log "token server on 127.0.0.1:$port already answering, reused"
        return 0
    elif [[ $status != 000 ]]; then
        die "127.0.0.1:$port answers /v2/ with $status, expected 401: something else holds the port"
    fi
    mkdir -p "$dir"
    setsid python3 "$REPO/tests/fixtures/token_server.py" "$port" "127.0.0.1:$REGISTRY_PORT" \
        "$AUTH_USER:$AUTH_PASS" </dev/null >>"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    [[ -z ${BURROW_TEST_STARTED:-} ]] || echo "$port" >>"$BURROW_TEST_STARTED"
    for _ in $(seq 1 100); do
        [[ $(probe "$port") == 401 ]] && { log "token server on 127.0.0.1:$port started (pid $pid)"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    die "token server on 127.0.0.1:$port did not come up; log: $dir/server.log"
}

stop_token_server() {
    local port=$1 dir pid
    dir=$(token_dir "$port")
    [[ -f $dir/pid ]] || return 0
    pid=$(cat "$dir/pid")
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "token_server.py $port "; then
        kill "$pid" 2>/dev/null || true
        log "token server on 127.0.0.1:$port stopped (pid $pid)"
    fi
    rm -f "$dir/pid"
}

if [[ ${1:-} == stop ]]; then
    shift
    ports=("$@")
    [[ ${#ports[@]} -gt 0 ]] || ports=("$REGISTRY_PORT" "$AUTH_REGISTRY_PORT" "$TOKEN_PORT" "$TLS_REGISTRY_PORT")
    for p in "${ports[@]}"; do
        if [[ $p == "$TOKEN_PORT" ]]; then stop_token_server "$p"; else stop_registry "$p"; fi
    done
    exit 0
fi

[[ $(id -u) -eq 0 ]] || { echo "tests/setup.sh must run as root (it creates users and starts registries)" >&2; exit 2; }

# --- users -----------------------------------------------------------------------------------

# Rewrites FILE without USER's lines, then appends LINE when given; atomic, keeps the mode.
set_sub_line() {
    local file=$1 user=$2 line=${3:-}
    [[ -e $file ]] || install -m 0644 /dev/null "$file"
    {
        grep -v "^${user}:" "$file" || true
        [[ -z $line ]] || echo "$line"
    } >"$file.burrow-tmp"
    chmod --reference="$file" "$file.burrow-tmp"
    chown --reference="$file" "$file.burrow-tmp"
    mv -f "$file.burrow-tmp" "$file"
}

ensure_user() {
    local user=$1
    if ! id "$user" >/dev/null 2>&1; then
        useradd --create-home --home-dir "/home/$user" --shell /bin/sh "$user"
        log "user $user created"
    fi
    [[ $(getent passwd "$user" | cut -d: -f7) == /bin/sh ]] || usermod --shell /bin/sh "$user"
    [[ -d /home/$user ]] || install -d -m 0755 -o "$user" -g "$user" "/home/$user"
}

ensure_user "$TEST_USER"
ensure_user "$NOSUB_USER"
for f in /etc/subuid /etc/subgid; do
    set_sub_line "$f" "$TEST_USER" "$TEST_USER:$SUB_RANGE_START:$SUB_RANGE_COUNT"
    set_sub_line "$f" "$NOSUB_USER"
done
log "users: $TEST_USER ($SUB_RANGE_START:$SUB_RANGE_COUNT in /etc/subuid and /etc/subgid), $NOSUB_USER (no ranges)"

# --- registries and fixtures -----------------------------------------------------------------

mkdir -p "$STATE"
chmod 0755 "$STATE"
start_registry "$REGISTRY_PORT" no 200
start_registry "$AUTH_REGISTRY_PORT" yes 401

BURROW_TEST_STATE=$STATE REGISTRY=127.0.0.1:$REGISTRY_PORT AUTH_REGISTRY=127.0.0.1:$AUTH_REGISTRY_PORT \
    AUTH_CREDS=$AUTH_USER:$AUTH_PASS bash "$REPO/tests/fixtures/build.sh"
start_token_server "$TOKEN_PORT"
start_registry "$TLS_REGISTRY_PORT" tls 200

log "ready"
