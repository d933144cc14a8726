# Shared by scripts/loadtest.sh and scripts/compare.sh: the work directory,
# cleanup, the release build, and starting/stopping a server process.
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
(cd "$ROOT" && cargo build --release --quiet --bin tether --bin tether-load --example floor_echo)

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
