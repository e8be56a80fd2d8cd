#!/usr/bin/env bash
# A loopback CloudWatch Logs server (moto) for the awslogs driver's tests, with SigV4 checked.
#
#   tests/servers/moto.sh start DIR PORT   start moto_server on 127.0.0.1:PORT; write
#                                          DIR/credentials.env, DIR/pid, DIR/moto.log
#   tests/servers/moto.sh stop DIR         stop the server DIR/pid names
#
# moto checks signatures only once INITIAL_NO_AUTH_ACTION_COUNT requests have been served
# unauthenticated: the first three create an IAM user with a logs:* policy and an access key,
# and every later request must be signed with that key (a wrong secret gets
# SignatureDoesNotMatch, 403). The python venv with moto[server] and boto3 comes from PyPI
# once and is cached in $BURROW_MOTO_VENV (default /var/tmp/burrow-test/moto-venv).
# Needs python3 and python3-venv (Debian).
set -euo pipefail

VENV=${BURROW_MOTO_VENV:-/var/tmp/burrow-test/moto-venv}
# create_user, put_user_policy, create_access_key
NO_AUTH_ACTIONS=3

log() { printf 'moto: %s\n' "$*" >&2; }
die() { printf 'moto: error: %s\n' "$*" >&2; exit 1; }

alive() { [[ -f $1/pid ]] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

ensure_venv() {
    [[ -f $VENV/.complete ]] && return 0
    mkdir -p "$(dirname "$VENV")"
    # One creator at a time. A venv's scripts name their interpreter by absolute path, so it
    # is built in place and marked complete last; an unmarked one is a leftover, rebuilt.
    exec 9>"$VENV.lock"
    flock 9
    if [[ ! -f $VENV/.complete ]]; then
        rm -rf "$VENV"
        log "creating $VENV (pip install 'moto[server]' boto3)"
        python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' boto3 \
            || die "pip install 'moto[server]' boto3 into $VENV failed"
        touch "$VENV/.complete"
    fi
    flock -u 9
    exec 9>&-
}

answers() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5)' \
        "$1" 2>/dev/null
}

# Waits until PORT answers while the server DIR/pid names is still alive.
wait_port() {
    local dir=$1 port=$2 i
    for i in $(seq 1 100); do
        alive "$dir" || return 1
        answers "$port" && return 0
        sleep 0.1
    done
    return 1
}

start() {
    local dir=$1 port=$2
    [[ $port =~ ^[0-9]+$ ]] || die "port must be a number: $port"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    alive "$dir" && die "already running with pid $(cat "$dir/pid") ($dir/pid); stop it first"
    answers "$port" && die "127.0.0.1:$port is already in use by another process"
    ensure_venv
    rm -f "$dir/pid" "$dir/credentials.env"
    INITIAL_NO_AUTH_ACTION_COUNT=$NO_AUTH_ACTIONS \
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/pid.tmp" && mv "$dir/pid.tmp" "$dir/pid"
    if ! wait_port "$dir" "$port"; then
        stop "$dir"
        die "moto_server did not answer on 127.0.0.1:$port within 10 s (see $dir/moto.log)"
    fi
    "$VENV/bin/python" - "$port" "$dir/credentials.env" <<'EOF' || { stop "$dir"; die "could not create the IAM user (see $dir/moto.log)"; }
import json, os, sys
import boto3
port, out = sys.argv[1], sys.argv[2]
ep = f"http://127.0.0.1:{port}"
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="burrow")
iam.put_user_policy(UserName="burrow", PolicyName="logs", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="burrow")["AccessKey"]
tmp = out + ".tmp"
with open(tmp, "w") as f:
    f.write(f"AWS_ACCESS_KEY_ID={k['AccessKeyId']}\n")
    f.write(f"AWS_SECRET_ACCESS_KEY={k['SecretAccessKey']}\n")
    f.write("AWS_REGION=us-east-1\n")
os.replace(tmp, out)
EOF
    log "listening on 127.0.0.1:$port (pid $(cat "$dir/pid")); credentials in $dir/credentials.env"
}

stop() {
    local dir=$1 pid i
    [[ -f $dir/pid ]] || { log "nothing to stop ($dir/pid absent)"; return 0; }
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$dir/pid"
    log "stopped pid $pid"
}

case ${1:-} in
    start) [[ $# -eq 3 ]] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
    stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
    venv) ensure_venv; echo "$VENV" ;;
    *) die "usage: $0 start DIR PORT | stop DIR | venv" ;;
esac
