#!/usr/bin/env bash
# burrow's test command (run as root):
#
#   bash tests/run.sh [ARGS...]     ARGS go to `cargo test --workspace`, e.g. a test-name filter
#
# Sets up the test environment (tests/setup.sh: users, local registries, fixture images), then
# runs rustfmt, clippy and the test suite with the environment the integration tests read.
# Registries this run started are stopped on exit, whatever happened. The exit code is that of
# the first cargo step that failed (0 when all passed); all three steps always run.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "tests/run.sh must run as root: it creates the test users and starts local registries," >&2
    echo "and the integration tests switch to the unprivileged test users themselves" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "tests/run.sh: cargo not found on PATH" >&2; exit 2; }

# tests/setup.sh appends the port of each registry it starts (not those it reuses) here.
BURROW_TEST_STARTED=$(mktemp /tmp/burrow-test-started.XXXXXX)
export BURROW_TEST_STARTED

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local ports
    ports=$(sort -u "$BURROW_TEST_STARTED" 2>/dev/null | tr '\n' ' ')
    if [[ -n ${ports// /} ]]; then
        # Quietly: the test tally must stay the last line of the run.
        # shellcheck disable=SC2086
        bash tests/setup.sh stop $ports >/dev/null 2>&1 || true
    fi
    rm -f "$BURROW_TEST_STARTED"
    # The tests end their users' network holders; one a test could not reach (its runtime dir
    # already gone) is ended here. Its way out (__egress, slirp4netns, pasta) follows it.
    local user
    for user in "${BURROW_TEST_USER:-}" "${BURROW_TEST_NOSUB_USER:-}"; do
        [[ -z $user ]] || pkill -KILL -u "$user" -f -- "__network-holder" 2>/dev/null || true
    done
    if [[ -n ${MOTO_STARTED:-} ]]; then
        bash tests/servers/moto.sh stop "$BURROW_TEST_MOTO_DIR" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "test environment (tests/setup.sh)"
bash tests/setup.sh

export BURROW_TEST_USER=burrowtest
export BURROW_TEST_NOSUB_USER=burrownosub
export BURROW_TEST_REGISTRY=127.0.0.1:5111
export BURROW_TEST_AUTH_REGISTRY=127.0.0.1:5112
export BURROW_TEST_AUTH_USER=tester
export BURROW_TEST_AUTH_PASS=s3cret
export BURROW_TEST_TOKEN_REGISTRY=127.0.0.1:5113
export BURROW_TEST_TLS_REGISTRY=127.0.0.1:5114

# CloudWatch Logs (moto, signatures checked) for the awslogs tests; rsyslog and the fluentd
# receiver are started by the tests themselves.
export BURROW_TEST_MOTO=127.0.0.1:5301
export BURROW_TEST_MOTO_DIR=/var/tmp/burrow-test/moto
section "moto (tests/servers/moto.sh)"
if bash tests/servers/moto.sh start "$BURROW_TEST_MOTO_DIR" 5301; then
    MOTO_STARTED=1
else
    echo "tests/run.sh: moto did not start; the awslogs tests will fail" >&2
fi
# The awslogs plugin's own test against moto reads the credentials from the environment.
set -a
# shellcheck disable=SC1091
[[ -f $BURROW_TEST_MOTO_DIR/credentials.env ]] && . "$BURROW_TEST_MOTO_DIR/credentials.env"
set +a

status=0
step() { # NAME COMMAND...
    local name=$1 rc=0
    shift
    section "$name"
    "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "tests/run.sh: $name failed (exit $rc)" >&2
        [[ $status -ne 0 ]] || status=$rc
    fi
}

step "cargo fmt --all --check" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
TEST_LOG=$(mktemp /tmp/burrow-test-log.XXXXXX)
run_tests() {
    # (errexit is off in here: `step` calls this on the left of ||.)
    local rc
    cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$TEST_LOG"
    rc=${PIPESTATUS[0]}
    # The awslogs driver's own requests against moto (SigV4 checked), ignored without it.
    if [[ $# -eq 0 ]]; then
        cargo test -p log-awslogs --test moto -- --ignored 2>&1 | tee -a "$TEST_LOG"
        [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
        # The plugin templates are crates of their own (not workspace members).
        for example in examples/log-plugin examples/net-plugin; do
            cargo test --manifest-path "$example/Cargo.toml" 2>&1 | tee -a "$TEST_LOG"
            [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
        done
    fi
    return "$rc"
}
step "cargo test" run_tests "$@"

# One closing line over every test binary: cargo's last "test result" is the doc tests'.
read -r passed failed ignored < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) s += $i
        }
    } END { print p + 0, f + 0, s + 0 }' "$TEST_LOG")
rm -f "$TEST_LOG"

if [[ $status -eq 0 ]]; then
    section "all checks passed"
else
    section "some checks failed (exit $status)"
fi
echo "tests: $passed passed, $failed failed, $ignored skipped"
exit "$status"
