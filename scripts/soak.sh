#!/usr/bin/env bash
# Soak: run the release server under churn + pingpong + idle load together for
# MINUTES (default 10; `scripts/soak.sh 1` is the CI size), then check that it
# gave everything back and nothing went wrong:
#
#   - RSS returns to within max(+2 MiB, +10 %) of the warm baseline;
#   - the descriptor count returns exactly to the baseline;
#   - no error counter rose: tether-load's errors (by kind) and GOAWAYs
#     received, and the server's resets, truncated frames and every GOAWAY
#     code it sends only for a fault (everything but NORMAL/SHUTTING_DOWN);
#   - the server exits 0 on SIGTERM.
#
#   scripts/soak.sh [MINUTES]     env: SOAK_NO_BUILD=1, SOAK_KEEP=1 (keep logs),
#                                 SOAK_IDLE=1000 SOAK_PINGPONG=50 SOAK_CHURN_RATE=100
#
# Baselines. The cold baseline is taken before any connection; the warm one
# after a 15 s warm-up round of the same three loads has come and gone. The
# check is against the warm one: the server keeps, by design, capacity sized
# by the peak (the connection slab, the timing wheel's node slab, its 64 KiB
# read buffer) and the allocator keeps freed pages, so cold → warm growth is
# first-touch, not a leak. A leak grows with time and work, which warm → final
# shows. The margin, max(2 MiB, 10 %), is a few hundred bytes for each of the
# thousands of connections churned per minute: a per-connection leak of even
# a few bytes over a 10 minute run (60,000 churned connections) exceeds it,
# while allocator noise (glibc arenas trimming or not) stays well inside.
#
# Every wait is bounded; the server and the load processes are killed by id
# on exit.

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

MINUTES=${1:-10}
case $MINUTES in
'' | *[!0-9]*)
    echo "usage: $0 [MINUTES]" >&2
    exit 2
    ;;
esac
[ "$MINUTES" -ge 1 ] || {
    echo "soak.sh: MINUTES must be at least 1" >&2
    exit 2
}
DURATION=$((MINUTES * 60))
WARMUP=15
IDLE_CONNS=${SOAK_IDLE:-1000}
PINGPONG_CONNS=${SOAK_PINGPONG:-50}
CHURN_RATE=${SOAK_CHURN_RATE:-100}

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${SOAK_NO_BUILD:-0}" != 1 ]; then
    echo "building release ..." >&2
    (cd "$ROOT" && cargo build --release --quiet --bin tether --bin tether-load) || {
        echo "soak.sh: build failed" >&2
        exit 1
    }
fi
TETHER=$TARGET/release/tether
LOAD=$TARGET/release/tether-load
for b in "$TETHER" "$LOAD"; do
    [ -x "$b" ] || {
        echo "soak.sh: missing $b" >&2
        exit 1
    }
done

WORK=$(mktemp -d /tmp/tether-soak.XXXXXX)
PIDS=()
SERVER_PID=

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
            wait "$p" 2>/dev/null
        fi
    done
    if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

# --- the server ---------------------------------------------------------------

"$TETHER" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_for_line "$WORK/server.out" 10 '^listening on' || {
    echo "soak.sh: server did not start: $(tail -3 "$WORK/server.err")" >&2
    exit 1
}
wait_for_line "$WORK/server.err" 10 'metrics on http://' || {
    echo "soak.sh: no metrics address in the server log" >&2
    exit 1
}
ADDR=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)
METRICS_URL=$(grep -o 'http://[^ ]*/metrics' "$WORK/server.err" | head -1)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
fd_count() { find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
metrics_page() { curl -s --max-time 3 "$METRICS_URL"; }
metric() { metrics_page | metric_from "$1"; }

# Counters that must not move: name → expected increase 0.
FAULT_COUNTERS=(
    'tether_connections_closed_total{reason="reset"}'
    tether_truncated_at_eof_total
    tether_accept_pauses_total
)
for code in PROTOCOL_ERROR BAD_CHECKSUM FRAME_TOO_LARGE MESSAGE_TOO_LARGE UNSUPPORTED_VERSION \
    UNAUTHORIZED HANDSHAKE_TIMEOUT IDLE_TIMEOUT SLOW_CONSUMER SERVER_FULL RATE_LIMITED SESSION_TAKEN_OVER; do
    FAULT_COUNTERS+=("tether_goaway_sent_total{code=\"$code\"}")
done

# Snapshot of the fault counters into an associative array named $1.
snapshot() {
    local -n into=$1
    local page name
    page=$(metrics_page)
    for name in "${FAULT_COUNTERS[@]}"; do
        into[$name]=$(metric_from "$name" <<<"$page")
    done
}

# Waits (≤ 20 s) until the server holds no connection, then 2 s more for the
# allocator and the metrics scrape itself to settle.
settle() {
    local i o
    for ((i = 0; i < 100; i++)); do
        o=$(metric tether_connections_open)
        [ "$o" = 0 ] && break
        sleep 0.2
    done
    sleep 2
}

# run_loads TAG SECONDS: the three loads together; waits for them (bounded).
run_loads() {
    local tag=$1 secs=$2 p pids=()
    "$LOAD" churn --addr "$ADDR" --rate "$CHURN_RATE" --duration "$secs" --json \
        >"$WORK/$tag.churn.json" 2>"$WORK/$tag.churn.err" &
    pids+=($!)
    "$LOAD" pingpong --addr "$ADDR" --connections "$PINGPONG_CONNS" --depth 1 --duration "$secs" --json \
        >"$WORK/$tag.pingpong.json" 2>"$WORK/$tag.pingpong.err" &
    pids+=($!)
    "$LOAD" idle --addr "$ADDR" --connections "$IDLE_CONNS" --heartbeat-ms 2000 --duration "$secs" --json \
        >"$WORK/$tag.idle.json" 2>"$WORK/$tag.idle.err" &
    pids+=($!)
    PIDS+=("${pids[@]}")
    # While they run: sample the server every 5 s (peak RSS, fds, connections).
    local limit=$((secs + 90)) start=$SECONDS r f o
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        r=$(rss_kib)
        f=$(fd_count)
        o=$(metric tether_connections_open)
        echo "$((SECONDS - start)) $r $f ${o:-?}" >>"$WORK/$tag.samples"
        sleep 5
    done
    LOAD_RCS=()
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
            wait "$p" 2>/dev/null
            LOAD_RCS+=(killed)
        else
            wait "$p"
            LOAD_RCS+=($?)
        fi
    done
}

# --- cold baseline, warm-up, warm baseline ------------------------------------

sleep 1
COLD_RSS=$(rss_kib)
COLD_FDS=$(fd_count)
echo "cold baseline: RSS ${COLD_RSS} KiB, ${COLD_FDS} fds; warm-up ${WARMUP}s ..." >&2
run_loads warmup "$WARMUP"
settle
WARM_RSS=$(rss_kib)
WARM_FDS=$(fd_count)
declare -A BEFORE AFTER
snapshot BEFORE
echo "warm baseline: RSS ${WARM_RSS} KiB, ${WARM_FDS} fds; soak ${MINUTES} min ..." >&2

# --- the soak -------------------------------------------------------------------

T0=$SECONDS
run_loads soak "$DURATION"
SOAK_RCS=("${LOAD_RCS[@]}")
SOAK_SECS=$((SECONDS - T0))
settle
FINAL_RSS=$(rss_kib)
FINAL_FDS=$(fd_count)
snapshot AFTER
PAGE=$(metrics_page)

PEAK_RSS=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/soak.samples")
PEAK_FDS=$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$WORK/soak.samples")
PEAK_OPEN=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$WORK/soak.samples")

# --- SIGTERM --------------------------------------------------------------------

kill -TERM "$SERVER_PID"
EXIT_RC=timeout
for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID"
        EXIT_RC=$?
        break
    fi
    sleep 0.05
done

# --- the verdicts -----------------------------------------------------------------

MARGIN_KIB=$(awk -v b="$WARM_RSS" 'BEGIN { m = b / 10; if (m < 2048) m = 2048; printf "%d", m }')
RSS_LIMIT=$((WARM_RSS + MARGIN_KIB))
[ "$FINAL_RSS" -le "$RSS_LIMIT" ]
ok=$?
record rss "final ≤ warm + max(2 MiB, 10%) = ${RSS_LIMIT} KiB" \
    "cold ${COLD_RSS} KiB, warm ${WARM_RSS} KiB, peak ${PEAK_RSS} KiB, final ${FINAL_RSS} KiB ($((FINAL_RSS - WARM_RSS)) KiB vs warm)" \
    "$(verdict $ok)"
[ "$FINAL_FDS" -eq "$COLD_FDS" ] && [ "$WARM_FDS" -eq "$COLD_FDS" ]
ok=$?
record fds "back to the baseline ${COLD_FDS}" "warm ${WARM_FDS}, peak ${PEAK_FDS}, final ${FINAL_FDS}" "$(verdict $ok)"

modes=(churn pingpong idle)
for i in 0 1 2; do
    m=${modes[$i]}
    f=$WORK/soak.$m.json
    errs=$(jq -c '.errors | with_entries(select(.value > 0))' "$f" 2>/dev/null)
    goaways=$(jq -c '.goaways' "$f" 2>/dev/null)
    load_ok=$(jq -r '.ok' "$f" 2>/dev/null)
    msgs=$(jq -r '.messages' "$f" 2>/dev/null)
    rate=$(jq -r '.msgs_per_sec' "$f" 2>/dev/null)
    conns=$(jq -c '.connections | {handshakes, peak_open, open_at_end}' "$f" 2>/dev/null)
    p99=$(jq -r '.latency_us.p99 // "-"' "$f" 2>/dev/null)
    [ "$load_ok" = true ] && [ "$errs" = "{}" ] && [ "$goaways" = "{}" ] && [ "${SOAK_RCS[$i]}" = 0 ]
    ok=$?
    record "load $m" "exit 0, ok, no errors, no GOAWAY received" \
        "exit ${SOAK_RCS[$i]}; ok ${load_ok:-?}; errors ${errs:-?}; goaways ${goaways:-?}; $msgs msgs (${rate}/s), p99 ${p99} µs; $conns" \
        "$(verdict $ok)"
done

rose=()
for name in "${FAULT_COUNTERS[@]}"; do
    b=${BEFORE[$name]:-}
    a=${AFTER[$name]:-}
    if [ -z "$a" ] || [ -z "$b" ]; then
        rose+=("$name=missing")
    elif [ "$a" != "$b" ]; then
        rose+=("$name +$((a - b))")
    fi
done
accepted=$(metric_from tether_connections_accepted_total <<<"$PAGE")
normal_in=$(metric_from 'tether_connections_closed_total{reason="peer_goaway"}' <<<"$PAGE")
[ ${#rose[@]} -eq 0 ]
ok=$?
record "server counters" "no reset, truncation, accept pause or fault GOAWAY during the soak" \
    "${rose[*]:-none rose}; accepted ${accepted} in all, ${normal_in} closed by the client's GOAWAY; peak ${PEAK_OPEN} open" \
    "$(verdict $ok)"

[ "$EXIT_RC" = 0 ]
ok=$?
record sigterm "exit 0" "exit ${EXIT_RC}" "$(verdict $ok)"

echo
echo "soak: ${MINUTES} min (${SOAK_SECS}s with ramp and close), churn ${CHURN_RATE}/s + pingpong ${PINGPONG_CONNS} + idle ${IDLE_CONNS} against $ADDR"
print_table
table_status
