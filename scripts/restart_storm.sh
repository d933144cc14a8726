#!/usr/bin/env bash
# Issue 13's restart storm: 10,000 clients of the Rust client library
# (examples/restart_storm.rs: the library's ClientMachine, driven over mio
# from one thread, sockets bound to 127.0.0.1-127.0.0.4) attached to a
# release server, which is then restarted as an init system does it:
# SIGTERM (GOAWAY SHUTTING_DOWN to every client; must exit 0), then a new
# process on the same port (and the same metrics port). Printed: the
# restart's timings, how many clients reconnected and how fast, a histogram
# of reconnect times (connection end -> next WELCOME) and of the reconnect
# WELCOMEs since the restart began, and the new server's peak accept rate
# from its /metrics. The JSON report is kept as WORK/storm.json.
#
#   scripts/restart_storm.sh [restart_storm flags...]    (e.g. --clients 2000, --jitter none)
#
# Bounded: the clients must be connected within 120 s, and the example gives
# up 60 s after the restart (its --timeout-s). Exits non-zero when a client
# did not reconnect or a server did not stop cleanly. RESTART_STORM_KEEP=1
# keeps the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-restart-storm.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ "${RESTART_STORM_KEEP:-0}" == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building release binaries..." >&2
(cd "$ROOT" && cargo build --release --quiet --bin tether --example restart_storm)

now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }

# wait_for FILE PATTERN SECONDS PID FIELD: waits until FILE has a line
# matching PATTERN (awk), while PID runs; prints that line's field FIELD.
wait_for() {
    local file=$1 pattern=$2 secs=$3 pid=$4 field=$5 found i
    for ((i = 0; i < secs * 20; i++)); do
        found=$(awk -v f="$field" "/$pattern/ { print \$f; exit }" "$file" 2>/dev/null || true)
        if [[ -n "$found" ]]; then
            echo "$found"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}

# start_server NAME LISTEN METRICS: a server in the background (stdout
# WORK/NAME.out, stderr WORK/NAME.err); sets SPID, and SADDR and MADDR once
# it listens.
start_server() {
    local name=$1
    RUST_LOG=info "$BIN/tether" --listen "$2" --metrics "$3" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SPID=$!
    PIDS+=("$SPID")
    if ! SADDR=$(wait_for "$WORK/$name.out" "^listening on" 15 "$SPID" 3); then
        echo "$name did not start: $(head -c 300 "$WORK/$name.err")" >&2
        exit 1
    fi
    MADDR=$(awk -F'http://' '/metrics on http:\/\// { sub(/\/metrics.*/, "", $2); print $2; exit }' \
        "$WORK/$name.err")
}

# stop_server PID NAME: SIGTERM, at most 10 s for the graceful stop; exit status 0 expected.
stop_server() {
    local pid=$1 name=$2 rc=0 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 1000; i++)); do
        [[ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" == Z ]] && break
        sleep 0.01
    done
    if [[ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        echo "$name did not stop within 10 s of SIGTERM" >&2
        return 1
    fi
    wait "$pid" 2>/dev/null || rc=$?
    if [[ "$rc" != 0 ]]; then
        echo "$name exited $rc after SIGTERM (expected 0)" >&2
        return 1
    fi
}

FAILED=0
start_server old 127.0.0.1:0 127.0.0.1:0
OLD=$SPID
echo "== old server pid $OLD on $SADDR, metrics $MADDR (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2

timeout 300 "$BIN/examples/restart_storm" --server "$SADDR" --metrics "$MADDR" --json "$WORK/storm.json" "$@" \
    >"$WORK/storm.out" 2>"$WORK/storm.err" &
STORM=$!
PIDS+=("$STORM")
if ! READY=$(wait_for "$WORK/storm.out" "^ready" 120 "$STORM" 2); then
    echo "the clients did not all connect: $(tail -c 500 "$WORK/storm.err")" >&2
    exit 1
fi
echo "== $READY clients open on pid $OLD ($(awk '/^tether_connections_open / { print $2 }' \
    <(curl -s "http://$MADDR/metrics" 2>/dev/null || true)) by its /metrics)" >&2
sleep 1

T0=$(now)
echo "== restart: SIGTERM to $OLD" >&2
stop_server "$OLD" "old server" || FAILED=1
STOPPED_MS=$(ms_since "$T0")
start_server new "$SADDR" "$MADDR"
LISTENING_MS=$(ms_since "$T0")
NEW=$SPID
echo "== old server exited ${STOPPED_MS} ms after SIGTERM; new server pid $NEW listening ${LISTENING_MS} ms after it" >&2
grep -h "stopping\|stopped" "$WORK/old.err" | sed 's/^/   old: /' >&2 || true

STORM_RC=0
wait "$STORM" || STORM_RC=$?
grep -v '^ready' "$WORK/storm.out" || true
if [[ "$STORM_RC" != 0 ]]; then
    echo "restart_storm exited $STORM_RC: $(tail -c 500 "$WORK/storm.err")" >&2
    FAILED=1
fi
stop_server "$NEW" "new server" || FAILED=1
if [[ "${RESTART_STORM_KEEP:-0}" == 1 ]]; then
    echo "JSON report: $WORK/storm.json" >&2
fi
exit "$FAILED"
