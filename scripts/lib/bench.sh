# Shared by scripts/loadtest.sh, scripts/compare.sh and scripts/fanout.sh: the
# work directory, cleanup, the release build, and starting/stopping a server
# process with a tether-load run against it.
# Source it after setting BENCH_NAME (used for the work directory) and
# BENCH_KEEP_VAR (the variable that keeps the work directory when set to 1).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-$BENCH_NAME.XXXXXX")
RESULTS=$WORK/results.tsv
SPID=""
FAILED=0

bench_cleanup() {
    if [[ -n "$SPID" ]] && kill -0 "$SPID" 2>/dev/null; then
        kill -KILL "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    if [[ "${!BENCH_KEEP_VAR:-0}" == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# The same targets in both scripts: an example pulls in dev-dependencies, whose
# features would otherwise make the two scripts rebuild the library in turn.
echo "building release binaries..." >&2
(cd "$ROOT" && cargo build --release --quiet --bin tether --bin tether-load --example floor_echo \
    --example floor_fanout)

# running PID: the process exists and is not a zombie waiting to be reaped.
running() {
    [[ -r "/proc/$1/stat" ]] && [[ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# stop_server: SIGTERM, wait (bounded); sets SERVER_RC. Not for a subshell:
# `wait` must run in the shell that started the server to get its status.
stop_server() {
    SERVER_RC=0
    kill -TERM "$SPID" 2>/dev/null || true
    for _ in $(seq 100); do
        running "$SPID" || break
        sleep 0.1
    done
    if running "$SPID"; then
        kill -KILL "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        SERVER_RC=timeout
    else
        wait "$SPID" 2>/dev/null || SERVER_RC=$?
    fi
    SPID=""
}

# start_listening NAME LOG COMMAND...: starts a server (stdout to LOG.out,
# stderr to LOG.err) and waits for its `listening on IP:PORT`; sets SPID and
# SADDR. Exits the script when the server does not come up.
start_listening() {
    local name=$1 log=$2
    shift 2
    "$@" >"$log.out" 2>"$log.err" &
    SPID=$!
    SADDR=""
    for _ in $(seq 100); do
        # `|| true`: the server may not have created LOG.out yet, and a
        # failed substitution would end the script under `set -e`.
        SADDR=$(awk '/^listening on/ { print $3; exit }' "$log.out" 2>/dev/null || true)
        [[ -n "$SADDR" ]] && return 0
        running "$SPID" || break
        sleep 0.05
    done
    echo "$name did not start: $(head -c 300 "$log.err")" >&2
    exit 1
}

# load_and_stop LOG MUST_EXIT_0 ARGS...: tether-load ARGS against the server
# start_listening started (its JSON report to LOG.json), then stops the
# server. Sets FAILED when tether-load failed, or when MUST_EXIT_0 is 1 and
# the server did not exit 0 after SIGTERM.
load_and_stop() {
    local log=$1 must_exit_0=$2 load_rc=0
    shift 2
    timeout 300 "$BIN/tether-load" "$@" --addr "$SADDR" --server-pid "$SPID" --json \
        >"$log.json" 2>"$log.load.err" || load_rc=$?
    stop_server
    if [[ "$load_rc" != 0 ]]; then
        echo "   tether-load exited $load_rc: $(tail -c 300 "$log.load.err")" >&2
        FAILED=1
    fi
    if [[ "$must_exit_0" == 1 && "$SERVER_RC" != 0 ]]; then
        echo "   the server exited $SERVER_RC after SIGTERM (expected 0)" >&2
        FAILED=1
    fi
}
