#!/usr/bin/env bash
# Memory per idle connection: the server's VmRSS with no connections and with
# 10,000 idle, handshaked ones.
#
#   scripts/rss_per_conn.sh [--tls] [CONNECTIONS]
#
# Builds the release binary, starts it on a free port with a 10-minute
# heartbeat (so nothing is evicted while we measure), warms it up with one
# handshake, reads VmRSS, opens CONNECTIONS (default 10000) idle connections
# from 127.0.0.2-127.0.0.11 (scripts/rss_clients.py), waits a second, reads
# VmRSS again, closes everything and stops the server with SIGTERM.
#
# With --tls the server listens with TLS only (a throwaway ECDSA P-256
# certificate made with openssl) and every client handshakes first; the
# target is then 4096 bytes per idle TLS connection.
#
# Prints key=value lines. Exit status: 0 if the target (<= 256 bytes per
# plain connection) is met and the server exited 0; 1 if the target is missed;
# 2 on any other failure. Every step has a timeout; a trap cleans up.
set -euo pipefail

TLS=0
if [[ ${1:-} == --tls ]]; then
    TLS=1
    shift
fi
CONNECTIONS=${1:-10000}
TARGET_BYTES=256
((TLS)) && TARGET_BYTES=4096
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/tether
CLIENTS=$ROOT/scripts/rss_clients.py

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-rss.XXXXXX")
SERVER_PID=""
CLIENT_PID=""

cleanup() {
    exec 3>&- 2>/dev/null || true
    if [[ -n $CLIENT_PID ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill "$CLIENT_PID" 2>/dev/null || true
    fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

die() {
    echo "rss_per_conn: $*" >&2
    exit 2
}

# wait_for_line FILE PATTERN SECONDS PID: until FILE has a line matching
# PATTERN, failing early if PID dies.
wait_for_line() {
    local file=$1 pattern=$2 secs=$3 pid=$4
    local deadline=$((SECONDS + secs))
    until grep -q -- "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited while waiting for '$pattern' in $file: $(cat "$file" 2>/dev/null)"
        ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for '$pattern' in $file"
        sleep 0.05
    done
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"
}

command -v python3 >/dev/null || die "python3 is required"

echo "building release binary in $TARGET_DIR ..." >&2
(cd "$ROOT" && timeout 900 cargo build --release --bin tether) >&2 || die "cargo build --release failed"
[[ -x $BIN ]] || die "no binary at $BIN"

LISTEN=(--listen 127.0.0.1:0)
CLIENT_TLS=()
if ((TLS)); then
    # shellcheck source=scripts/lib/test_cert.sh
    source "$ROOT/scripts/lib/test_cert.sh"
    make_test_cert "$WORK" || die "no test certificate"
    LISTEN=(--listen none --tls-listen 127.0.0.1:0 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
    CLIENT_TLS=(--tls "$WORK/ca.pem")
fi

RUST_LOG=${RUST_LOG:-warn} "$BIN" "${LISTEN[@]}" \
    --heartbeat-ms 600000 --max-heartbeat-ms 600000 \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
wait_for_line "$WORK/server.out" '^listening on ' 10 "$SERVER_PID"
ADDR=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$WORK/server.out" | head -n1)
echo "server pid $SERVER_PID on $ADDR" >&2

# Warm-up: one handshake and close, so lazily allocated state is counted in
# the baseline, not per connection.
timeout 20 python3 "$CLIENTS" "$ADDR" 1 600000 "${CLIENT_TLS[@]}" </dev/null >"$WORK/warmup.out" \
    || die "warm-up client failed: $(cat "$WORK/warmup.out")"
sleep 0.5
RSS_BEFORE=$(rss_kb)

mkfifo "$WORK/hold"
timeout 300 python3 "$CLIENTS" "$ADDR" "$CONNECTIONS" 600000 "${CLIENT_TLS[@]}" <"$WORK/hold" >"$WORK/clients.out" &
CLIENT_PID=$!
exec 3>"$WORK/hold" # the clients hold their connections until this closes
wait_for_line "$WORK/clients.out" '^ready ' 240 "$CLIENT_PID"
sleep 1
RSS_AFTER=$(rss_kb)
FDS=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)

exec 3>&-
wait "$CLIENT_PID" || die "client exited with status $?: $(cat "$WORK/clients.out")"
CLIENT_PID=""

BYTES_PER_CONN=$(((RSS_AFTER - RSS_BEFORE) * 1024 / CONNECTIONS))
echo "rss_before_kb=$RSS_BEFORE"
echo "rss_after_kb=$RSS_AFTER"
echo "connections=$CONNECTIONS"
echo "server_fds_with_connections=$FDS"
echo "bytes_per_connection=$BYTES_PER_CONN"
echo "target_bytes_per_connection<=$TARGET_BYTES"

kill -TERM "$SERVER_PID"
STATUS=0
timeout 10 tail --pid="$SERVER_PID" -f /dev/null || die "server still running 10 s after SIGTERM"
wait "$SERVER_PID" || STATUS=$?
SERVER_PID=""
echo "server_exit_status=$STATUS"
((STATUS == 0)) || die "server exited with status $STATUS: $(tail -n 5 "$WORK/server.err")"

if ((BYTES_PER_CONN <= TARGET_BYTES)); then
    echo "result=PASS"
else
    echo "result=FAIL ($BYTES_PER_CONN > $TARGET_BYTES bytes per connection)"
    exit 1
fi
