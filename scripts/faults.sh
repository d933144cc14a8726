#!/usr/bin/env bash
# Fault injection between a tether client and server through a real router,
# with three network namespaces joined by veth pairs (scripts/lib/netns.sh):
#
#   tcl (client, 10.77.1.2) ── trt (router; iptables faults) ── tsv (server, 10.77.2.2)
#
#   scripts/faults.sh [blackhole|loss30|sigstop|nat|all]      (default all; needs root)
#
# Cases:
#   blackhole  after the handshake the router DROPs everything: the server evicts
#              with IDLE_TIMEOUT within idle_timeout + one tick (+1 s slack) and
#              the client declares the link dead within miss × heartbeat (+1 s).
#   loss30     30 % random loss both ways on 1,000 heartbeating connections for
#              three idle timeouts: no false eviction (see LOSS_* below for why
#              heartbeat 5 s and --miss 4).
#   sigstop    a client process stopped with SIGSTOP (its kernel still ACKs):
#              evicted with IDLE_TIMEOUT, its slots reclaimed; then SIGCONT.
#   nat        a real NAT (MASQUERADE, conntrack established timeout of a few
#              seconds, tcp_loose=0, INVALID dropped): an idle flow is silently
#              blackholed; the adaptive client converges below the timeout,
#              reconnects and resumes; publishes are accounted for (below).
#
# Prints a table (case, expectation, result, observed); exits 1 on any FAIL,
# and 1 too when something it needs is missing (a tool, an iptables that works
# in a namespace, a settable conntrack timeout): a case never skips. The tools
# are installed by scripts/test.sh. Everything it creates (namespaces,
# processes, temp dir) is removed on exit; every wait is bounded. Binaries come
# from $FAULTS_BIN_DIR (default $CARGO_TARGET_DIR/debug, or target/debug),
# built first unless FAULTS_NO_BUILD=1. Logs: $FAULTS_KEEP=1 keeps the temp dir.

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

ALL_CASES=(blackhole loss30 sigstop nat)
PORT=7600
METRICS=127.0.0.1:9100
# The whole run is killed after this many seconds, whatever happens.
TIME_LIMIT=${FAULTS_TIME_LIMIT:-900}
# Slack for timing bounds on a shared, noisy 2-core machine.
SLACK=1.0

usage() {
    echo "usage: $0 [${ALL_CASES[*]// /|}|all]" >&2
    exit 2
}

case_list=()
case "${1:-all}" in
all) case_list=("${ALL_CASES[@]}") ;;
blackhole | loss30 | sigstop | nat) case_list=("$1") ;;
*) usage ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "faults.sh: needs root (network namespaces, iptables)" >&2
    exit 2
fi

missing=()
for tool in ip sysctl curl jq awk; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "faults.sh: missing ${missing[*]} (scripts/test.sh installs them)" >&2
    exit 1
fi

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${FAULTS_NO_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --quiet --bin tether --bin tether-load --example fault_client) || {
        echo "faults.sh: build failed" >&2
        exit 1
    }
fi
# The directory of the profile the binaries were built with (the tests pass theirs).
BIN_DIR=${FAULTS_BIN_DIR:-$TARGET/debug}
TETHER=$BIN_DIR/tether
LOAD=$BIN_DIR/tether-load
FC=$BIN_DIR/examples/fault_client
for b in "$TETHER" "$LOAD" "$FC"; do
    [ -x "$b" ] || {
        echo "faults.sh: missing $b" >&2
        exit 1
    }
done

WORK=$(mktemp -d /tmp/tether-faults.XXXXXX)
SERVER_PID=
WATCHDOG_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    netns_cleanup
    if [ "${FAULTS_KEEP:-0}" = 1 ]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'if [ -e "$WORK/time-limit" ]; then echo "faults.sh: time limit of ${TIME_LIMIT}s reached" >&2; else echo "faults.sh: interrupted" >&2; fi; exit 130' INT TERM

# The watchdog: its stdout/stderr must not hold the caller's pipes open, and
# killing it must take its sleep along (by the id it recorded).
(
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$TIME_LIMIT" &
    sleeper=$!
    wait "$sleeper" && {
        touch "$WORK/time-limit"
        kill -TERM $$ 2>/dev/null
    }
) >/dev/null 2>&1 &
WATCHDOG_PID=$!

if ! ensure_iptables; then
    for c in "${case_list[@]}"; do record "$c" "iptables works in a namespace" "no (see above)" FAIL; done
    print_table
    exit 1
fi
echo "faults.sh: using $IPT ($("$IPT" --version 2>/dev/null))" >&2

# --- server helpers ---------------------------------------------------------

# start_server NAME RUST_LOG ARGS...: tether in tsv with /metrics; waits for `listening on`.
start_server() {
    local name=$1 level=$2
    shift 2
    spawn_in "$NS_SV" SERVER_PID "$WORK/$name.server.out" "$WORK/$name.server.err" \
        env RUST_LOG="$level" "$TETHER" --listen "$SV_IP:$PORT" --metrics "$METRICS" "$@"
    if ! wait_for_line "$WORK/$name.server.out" 10 '^listening on'; then
        echo "server did not start: $(tail -5 "$WORK/$name.server.err")" >&2
        return 1
    fi
}

# stop_server: SIGTERM, wait up to 10 s; echoes the exit status.
stop_server() {
    [ -n "$SERVER_PID" ] || {
        echo none
        return
    }
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait_pid "$SERVER_PID" 10
    local rc=$?
    kill_pid "$SERVER_PID"
    SERVER_PID=
    echo "$rc"
}

metrics_page() { in_sv curl -s --max-time 2 "http://$METRICS/metrics"; }
metric() { metrics_page | metric_from "$1"; }
IDLE_EVICTIONS='tether_goaway_sent_total{code="IDLE_TIMEOUT"}'
OPEN=tether_connections_open

# wait_metric NAME OP VALUE LIMIT_S: polls every ~50 ms; echoes the epoch time
# at which NAME OP VALUE first held; returns 1 (echoing the last value) on timeout.
wait_metric() {
    local name=$1 op=$2 value=$3 limit=$4 v start
    start=$(now)
    while fcmp "$(now)" '<' "$(calc "$start + $limit")"; do
        v=$(metric "$name")
        if [ -n "$v" ] && fcmp "$v" "$op" "$value"; then
            now
            return 0
        fi
        sleep 0.05
    done
    echo "${v:-none}"
    return 1
}

# The epoch time ("t") of the first JSON line of FILE whose "ev" is EV (and, if
# given, whose REASON_KEY equals REASON_VALUE).
first_event_time() {
    local file=$1 ev=$2 key=${3:-} val=${4:-}
    if [ -n "$key" ]; then
        jq -r --arg ev "$ev" --arg k "$key" --arg v "$val" \
            'select(.ev == $ev and (.[$k] | tostring) == $v) | .t' "$file" 2>/dev/null | head -1
    else
        jq -r --arg ev "$ev" 'select(.ev == $ev) | .t' "$file" 2>/dev/null | head -1
    fi
}

# --- cases ------------------------------------------------------------------

# 1. Blackhole after the handshake.
case_blackhole() {
    local hb=1000 miss=3 tick=100
    local idle_s
    idle_s=$(calc "$hb * $miss / 1000")
    router_flush
    # The GOAWAY counter and the debug line `closed: sent GOAWAY …` are
    # recorded when the slot is reclaimed, after the linger: a blackholed
    # peer never sends its FIN, so the linger runs out. A 10 ms linger (one
    # tick) keeps that lag inside the bound being checked.
    start_server blackhole debug --app echo --heartbeat-ms $hb --min-heartbeat-ms 100 \
        --miss $miss --tick-ms $tick --linger-ms 10 || {
        record blackhole "server starts" "no" FAIL
        return
    }
    local cl out="$WORK/blackhole.client.jsonl"
    spawn_in "$NS_CL" cl "$out" "$WORK/blackhole.client.err" \
        "$FC" idle "$SV_IP:$PORT" --heartbeat-ms $hb --miss $miss --no-reconnect --duration 20
    if ! wait_for_line "$out" 10 '"ev":"connected"'; then
        record blackhole "client connects" "no WELCOME: $(tail -2 "$WORK/blackhole.client.err")" FAIL
        kill_pid "$cl"
        stop_server >/dev/null
        return
    fi
    sleep 2 # a couple of heartbeats through the healthy path
    local t_drop t_evict t_dead
    t_drop=$(now)
    ipt -I FORWARD -j DROP
    t_evict=$(wait_metric "$IDLE_EVICTIONS" '>=' 1 $((hb * miss / 1000 + 5)))
    local evicted=$?
    wait_for_line "$out" 8 '"reason":"dead_peer"'
    t_dead=$(first_event_time "$out" disconnected reason dead_peer)
    local logged
    logged=$(grep -c 'closed: sent GOAWAY IDLE_TIMEOUT' "$WORK/blackhole.server.err")

    local bound_s bound_c d_s d_c
    bound_s=$(calc "$idle_s + $tick / 1000 + $SLACK")
    bound_c=$(calc "$miss * $hb / 1000 + $SLACK")
    if [ $evicted -eq 0 ]; then
        d_s=$(calc "$t_evict - $t_drop")
        fcmp "$d_s" '<=' "$bound_s" && [ "$logged" -eq 1 ]
        ok=$?
        record blackhole "server: GOAWAY IDLE_TIMEOUT ≤ ${bound_s}s after the drop (idle ${idle_s}s + tick + ${SLACK}s)" \
            "evicted ${d_s}s after the drop; debug log lines 'closed: sent GOAWAY IDLE_TIMEOUT': $logged" "$(verdict $ok)"
    else
        record blackhole "server: GOAWAY IDLE_TIMEOUT ≤ ${bound_s}s after the drop" \
            "no eviction seen (IDLE_TIMEOUT count $t_evict)" FAIL
    fi
    if [ -n "$t_dead" ]; then
        d_c=$(calc "$t_dead - $t_drop")
        fcmp "$d_c" '<=' "$bound_c"
        ok=$?
        record blackhole "client: dead link detected ≤ ${bound_c}s (miss × heartbeat + ${SLACK}s)" \
            "dead_peer ${d_c}s after the drop" "$(verdict $ok)"
    else
        record blackhole "client: dead link detected ≤ ${bound_c}s" "no dead_peer event" FAIL
    fi
    kill_pid "$cl"
    router_flush
    stop_server >/dev/null
}

# 2. 30 % random loss on 1,000 heartbeating connections.
#
# Why heartbeat 5 s, --miss 4 (idle timeout 20 s) and thin-stream TCP
# settings on the two end hosts. With 30 % loss each way, a heartbeat round
# (the PING and the ACK/PONG that lets the sender go on) fails about half the
# time, and TCP backs its retransmission timer off exponentially (200 ms,
# 400 ms, … up to 120 s): the stalls a healthy-but-lossy connection goes
# through are heavy-tailed (P(stall > T) falls only like 1/T), so raising
# the idle timeout alone barely helps. Measured here over 1,000 connections
# (server IDLE_TIMEOUT evictions / tether-load dead-peer timeouts, which use
# 3 heartbeats):
#   hb 1 s, --miss 3, default TCP, 9 s of loss:   42 / 57
#   hb 5 s, --miss 4, default TCP, 60 s of loss:   4 / 20
#   hb 1 s, --miss 3, thin-stream TCP, 9 s:       46 / 31
#   hb 2 s, --miss 4, thin-stream TCP, 24 s:       1 / 4
#   hb 5 s, --miss 4, thin-stream TCP, 60 s:       0 / 0
# "Thin-stream TCP" is what Linux offers for exactly this traffic (a few
# small segments in flight): net.ipv4.tcp_thin_linear_timeouts=1 (no backoff
# for the first 6 retransmissions) and net.ipv4.tcp_rto_max_ms=1000 (backoff
# capped at 1 s), set in the client and server namespaces only. With them a
# stall is a geometric number of ≤ 1 s rounds, and 20 s of server silence
# (15 s for tether-load's 3 × 5 s) is far in the tail. LOSS_TUNE=0 runs with
# default TCP; LOSS_HB / LOSS_MISS change the choice.
LOSS_HB=${LOSS_HB:-5000}
LOSS_MISS=${LOSS_MISS:-4}
LOSS_CONNS=${LOSS_CONNS:-1000}
LOSS_TUNE=${LOSS_TUNE:-1}
LOSS_RTO_MAX_MS=${LOSS_RTO_MAX_MS:-1000}
case_loss30() {
    local hb=$LOSS_HB miss=$LOSS_MISS n=$LOSS_CONNS
    local idle_s=$((hb * miss / 1000))
    local lossy_s=$((3 * idle_s))
    router_flush
    if [ "$LOSS_TUNE" = 1 ]; then
        local ns
        for ns in "$NS_CL" "$NS_SV"; do
            ip netns exec "$ns" sysctl -qw net.ipv4.tcp_thin_linear_timeouts=1
            ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rto_max_ms="$LOSS_RTO_MAX_MS" 2>/dev/null ||
                echo "loss30: net.ipv4.tcp_rto_max_ms not settable here" >&2
        done
    fi
    start_server loss30 info --app echo --heartbeat-ms $hb --min-heartbeat-ms 1000 \
        --miss $miss --tick-ms 100 || {
        record loss30 "server starts" no FAIL
        return
    }
    local load out="$WORK/loss30.load.json"
    spawn_in "$NS_CL" load "$out" "$WORK/loss30.load.err" \
        "$LOAD" idle --addr "$SV_IP:$PORT" --connections "$n" --heartbeat-ms $hb \
        --duration $((lossy_s + 8)) --max-error-pct 100 --json
    if ! wait_metric "$OPEN" '>=' "$n" 30 >/dev/null; then
        record loss30 "$n connections up" "only $(metric $OPEN)" FAIL
        kill_pid "$load"
        stop_server >/dev/null
        return
    fi
    ipt -A FORWARD -m statistic --mode random --probability 0.3 -j DROP
    local t0 ev_mid open_min=$n o
    t0=$(now)
    # Three idle timeouts of loss, watching the open count.
    while fcmp "$(now)" '<' "$(calc "$t0 + $lossy_s")"; do
        o=$(metric $OPEN)
        [ -n "$o" ] && [ "$o" -lt "$open_min" ] && open_min=$o
        sleep 1
    done
    ev_mid=$(metric "$IDLE_EVICTIONS")
    local dropped
    dropped=$(ipt -L FORWARD -v -x -n | awk '/statistic/ { print $1 }')
    local forwarded
    forwarded=$(in_rt cat /proc/net/dev | awk '/rt1:|rt2:/ { s += $3 } END { print s }')
    ipt -F FORWARD
    wait_pid "$load" $((lossy_s + 30))
    local ev_end
    ev_end=$(metric "$IDLE_EVICTIONS")
    local open_end errs goaways
    open_end=$(jq -r '.connections.open_at_end' "$out" 2>/dev/null)
    errs=$(jq -c '.errors | with_entries(select(.value > 0))' "$out" 2>/dev/null)
    goaways=$(jq -c '.goaways' "$out" 2>/dev/null)
    [ "${ev_mid:-x}" = 0 ] && [ "${ev_end:-x}" = 0 ] && [ "$open_min" -eq "$n" ]
    ok=$?
    record loss30 "no IDLE_TIMEOUT over ${lossy_s}s of 30% loss (hb ${hb}ms, --miss $miss)" \
        "IDLE_TIMEOUT evictions ${ev_end:-?}; server held ≥ $open_min of $n throughout; router dropped ${dropped:-?} of ~${forwarded:-?} packets" \
        "$(verdict $ok)"
    [ "$open_end" = "$n" ] && [ "$errs" = "{}" ] && [ "$goaways" = "{}" ]
    ok=$?
    record loss30 "tether-load: all $n alive at the end, no errors, no GOAWAY" \
        "open_at_end ${open_end:-?}; errors ${errs:-?}; goaways ${goaways:-?}" "$(verdict $ok)"
    stop_server >/dev/null
}

# 3. SIGSTOP a client process.
case_sigstop() {
    local hb=1000 miss=3 tick=100 linger=200 n=20
    local idle_s
    idle_s=$(calc "$hb * $miss / 1000")
    router_flush
    start_server sigstop info --app echo --heartbeat-ms $hb --min-heartbeat-ms 100 \
        --miss $miss --tick-ms $tick --linger-ms $linger || {
        record sigstop "server starts" no FAIL
        return
    }
    local load out="$WORK/sigstop.load.json"
    spawn_in "$NS_CL" load "$out" "$WORK/sigstop.load.err" \
        "$LOAD" idle --addr "$SV_IP:$PORT" --connections $n --heartbeat-ms $hb \
        --duration 14 --max-error-pct 100 --json
    if ! wait_metric "$OPEN" '>=' $n 15 >/dev/null; then
        record sigstop "$n connections up" "only $(metric $OPEN)" FAIL
        kill_pid "$load"
        stop_server >/dev/null
        return
    fi
    sleep 1.5
    local t_stop t_evict t_free
    t_stop=$(now)
    kill -STOP "$load"
    t_evict=$(wait_metric "$IDLE_EVICTIONS" '>=' $n 10)
    local ok_evict=$?
    t_free=$(wait_metric "$OPEN" '<=' 0 5)
    local ok_free=$?
    local bound_e bound_f
    # The counter is bumped at reclaim, after the linger (the stopped peer sends no FIN).
    bound_e=$(calc "$idle_s + $tick / 1000 + $linger / 1000 + $SLACK")
    bound_f=$SLACK
    if [ $ok_evict -eq 0 ]; then
        local d
        d=$(calc "$t_evict - $t_stop")
        fcmp "$d" '<=' "$bound_e"
        ok=$?
        record sigstop "all $n evicted with IDLE_TIMEOUT ≤ ${bound_e}s after SIGSTOP (idle + tick + linger + ${SLACK}s)" \
            "last eviction ${d}s after SIGSTOP" "$(verdict $ok)"
    else
        record sigstop "all $n evicted with IDLE_TIMEOUT" "IDLE_TIMEOUT count $t_evict" FAIL
    fi
    if [ $ok_free -eq 0 ] && [ $ok_evict -eq 0 ]; then
        local d
        d=$(calc "$t_free - $t_evict")
        fcmp "$d" '<=' "$bound_f"
        ok=$?
        record sigstop "slots reclaimed: connections_open → 0 with the evictions (≤ ${SLACK}s)" \
            "open 0 ${d}s after the last eviction was counted" "$(verdict $ok)"
    else
        record sigstop "slots reclaimed (connections_open → 0)" "connections_open $t_free" FAIL
    fi
    kill -CONT "$load"
    wait_pid "$load" 30
    local load_rc=$? goaways errs
    goaways=$(jq -c '.goaways' "$out" 2>/dev/null)
    errs=$(jq -c '.errors | with_entries(select(.value > 0))' "$out" 2>/dev/null)
    # What it reports is informational: after a stall longer than 3
    # heartbeats, tether-load's heartbeat timer declares each connection dead
    # (timeout) before it reads the GOAWAY and FIN waiting in its sockets.
    [ "$load_rc" -eq 0 ] && [ -n "$goaways" ] && [ "$(jq -r '.errors.reset' "$out" 2>/dev/null)" = 0 ]
    ok=$?
    record sigstop "after SIGCONT the client runs to its end; no reset" \
        "exit $load_rc; tether-load goaways ${goaways:-?}, errors ${errs:-?}" "$(verdict $ok)"
    stop_server >/dev/null
}

# 4. A real NAT with a short established-flow timeout.
#
# Publish accounting: the publisher (in the server's namespace, subscribed to
# its own channel) counts a sequence number as accepted when the server echoes
# it back: the server has then fanned it out to every subscriber. The
# subscriber must receive every accepted number published after its
# subscription (confirmed by its own marker message), possibly after a
# resume, or a resume's WELCOME must carry LOST. Three bursts:
#   seq 1-5    path alive;
#   seq 6-10   the NAT mapping has expired but neither end knows yet (the
#              "dead window", between the path dying and the client's
#              reconnect): the deliveries go into the old connection;
#   seq 11-15  after the resume.
NAT_TIMEOUT=${NAT_TIMEOUT:-3}
case_nat() {
    local t=$NAT_TIMEOUT
    router_flush
    in_rt sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 2>/dev/null
    if ! in_rt sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$t" 2>/dev/null; then
        # The first conntrack rule loads the per-netns sysctls; add it and retry.
        ipt -A FORWARD -m conntrack --ctstate INVALID -j DROP
        in_rt sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 2>/dev/null
        if ! in_rt sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$t" 2>/dev/null; then
            record nat "conntrack established timeout settable in the router namespace" \
                "no: net.netfilter.nf_conntrack_tcp_timeout_established cannot be set" FAIL
            return
        fi
        ipt -F FORWARD
    fi
    in_rt sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
    ipt -t nat -A POSTROUTING -o rt2 -j MASQUERADE
    # Packets of a flow whose mapping expired have no conntrack entry and are
    # not SYNs: INVALID. Drop them both when forwarded (client → server) and
    # when addressed to the router's NAT address (server → client): otherwise
    # the router's own stack would answer with an RST and the flow would not
    # be silently blackholed.
    ipt -A FORWARD -m conntrack --ctstate INVALID -j DROP
    ipt -A INPUT -m conntrack --ctstate INVALID -j DROP
    local got_t got_loose
    got_t=$(in_rt sysctl -n net.netfilter.nf_conntrack_tcp_timeout_established)
    got_loose=$(in_rt sysctl -n net.netfilter.nf_conntrack_tcp_loose)

    start_server nat info --app pubsub --heartbeat-ms 10000 --min-heartbeat-ms 500 \
        --miss 3 --tick-ms 100 || {
        record nat "server starts" no FAIL
        return
    }
    local addr="$SV_IP:$PORT"

    # (a) The NAT works: a flow idle longer than the timeout stops passing
    # (fixed heartbeat 2t s), one that talks more often keeps passing (t-1 s).
    local slow fast
    local slow_hb=$((t * 2000)) fast_hb=$(((t - 1) * 1000))
    [ "$fast_hb" -lt 500 ] && fast_hb=500
    spawn_in "$NS_CL" slow "$WORK/nat.slow.jsonl" "$WORK/nat.slow.err" \
        "$FC" idle "$addr" --heartbeat-ms $slow_hb --miss 2 --no-reconnect --duration $((t * 6 + 2))
    spawn_in "$NS_CL" fast "$WORK/nat.fast.jsonl" "$WORK/nat.fast.err" \
        "$FC" idle "$addr" --heartbeat-ms $fast_hb --miss 2 --no-reconnect --duration $((t * 6 + 2))

    # (b) The adaptive subscriber, started alongside: floor 500 ms, step 1 s,
    # two successes to probe up, so its grid 0.5, 1.5, 2.5, 3.5 s straddles
    # the timeout with 0.5 s on each side; miss 2; asks for 10 s.
    local sub subout="$WORK/nat.sub.jsonl"
    spawn_in "$NS_CL" sub "$subout" "$WORK/nat.sub.err" \
        "$FC" sub "$addr" --heartbeat-ms 10000 --miss 2 --adaptive 500,1000,2 --duration 90
    if ! wait_for_line "$subout" 10 '"ev":"subscribed"'; then
        record nat "subscriber subscribes" "no: $(tail -2 "$WORK/nat.sub.err")" FAIL
        return
    fi
    local pubs=()
    publish() { # publish FIRST COUNT TAG
        in_sv "$FC" pub "$addr" --first "$1" --count "$2" >"$WORK/nat.pub.$3.jsonl" 2>>"$WORK/nat.pub.err"
        pubs+=("$WORK/nat.pub.$3.jsonl")
    }
    publish 1 5 live
    # Wait for the probe above the NAT timeout to begin, then for the mapping to die.
    local above_ms=$(((t + 1) * 1000 - 500))
    if ! wait_for_line "$subout" 40 "\"ev\":\"heartbeat\",\"interval_ms\":$above_ms"; then
        record nat "adaptive probes above the NAT timeout" "never reached ${above_ms}ms: $(grep -c heartbeat "$subout") changes" FAIL
        return
    fi
    local t_probe t_dead_pub
    t_probe=$(first_event_time "$subout" heartbeat interval_ms "$above_ms")
    # The mapping dies t s after the last packet (the PONG that ended the last
    # good heartbeat, just before the change); publish once it surely has.
    sleep "$(calc "$t + 1")"
    t_dead_pub=$(now)
    publish 6 5 deadwindow
    if ! wait_for_line "$subout" 30 '"ev":"connected","resumed":true'; then
        record nat "dead link detected, reconnect, resume" "no resumed connection: $(grep -c disconnected "$subout") disconnects" FAIL
    fi
    publish 11 5 resumed
    # Let it settle: a few heartbeats at the settled interval.
    sleep $((t * 2 + 2))
    in_sv "$FC" pub "$addr" --count 0 >"$WORK/nat.pub.end.jsonl" 2>>"$WORK/nat.pub.err"
    wait_pid "$sub" 15
    wait_pid "$slow" $((t * 6 + 5))
    wait_pid "$fast" $((t * 6 + 5))

    # (a) verdict
    local slow_dead fast_dead
    slow_dead=$(jq -r 'select(.ev == "summary") | .dead_peer' "$WORK/nat.slow.jsonl")
    fast_dead=$(jq -r 'select(.ev == "summary") | .dead_peer' "$WORK/nat.fast.jsonl")
    [ "$got_t" = "$t" ] && [ "$got_loose" = 0 ] && [ "$slow_dead" = 1 ] && [ "$fast_dead" = 0 ]
    ok=$?
    record nat "a flow idle > ${t}s is blackholed; one talking every $((fast_hb))ms passes" \
        "conntrack established timeout ${got_t}s, loose $got_loose; heartbeat ${slow_hb}ms: dead_peer=${slow_dead:-?}; heartbeat ${fast_hb}ms: dead_peer=${fast_dead:-?}" \
        "$(verdict $ok)"

    # (b) convergence and resume
    local summ final_ms resumed dead_intervals
    summ=$(jq -c 'select(.ev == "summary")' "$subout")
    final_ms=$(jq -r '.final_interval_ms' <<<"$summ")
    resumed=$(jq -r '.resumed' <<<"$summ")
    dead_intervals=$(jq -r 'select(.ev == "disconnected" and .reason == "dead_peer") | .interval_ms' "$subout" | paste -sd, -)
    local path
    path=$(jq -r 'select(.ev == "heartbeat") | .interval_ms' "$subout" | paste -sd' ' -)
    [ -n "$final_ms" ] && [ "$final_ms" -lt $((t * 1000)) ] && [ "${resumed:-0}" -ge 1 ] && [ -n "$dead_intervals" ]
    ok=$?
    record nat "adaptive heartbeat settles below ${t}s after one failed probe; reconnects and resumes" \
        "intervals (ms): $path; dead_peer at ${dead_intervals:-none} ms; resumed ${resumed:-?}; final ${final_ms:-?}ms" \
        "$(verdict $ok)"

    # (c) message accounting
    local lost_flag recv
    lost_flag=$(jq -r '.lost_flag' <<<"$summ")
    recv=$(jq -c '.seqs' <<<"$summ")
    local tag f confirmed missing
    for tag in live deadwindow resumed; do
        f=$WORK/nat.pub.$tag.jsonl
        confirmed=$(jq -c 'select(.ev == "summary") | .confirmed' "$f" 2>/dev/null)
        missing=$(jq -rn --argjson c "${confirmed:-[]}" --argjson r "${recv:-[]}" '
            def expand: [ .[] | range(.[0]; .[1] + 1) ];
            ($c | expand) - ($r | expand) | map(tostring) | join(",")')
        local expect="every accepted publish delivered (or WELCOME LOST)"
        case $tag in
        live) expect="seq 1-5 (path alive): $expect" ;;
        deadwindow) expect="seq 6-10 (published while the NAT mapping was expired, before either end noticed): $expect" ;;
        resumed) expect="seq 11-15 (after the resume): $expect" ;;
        esac
        local when="" ok
        [ "$tag" = deadwindow ] && when="published $(calc "$t_dead_pub - $t_probe")s after the ${above_ms}ms probe began; "
        [ -n "$confirmed" ] && [ "$confirmed" != "[]" ] && { [ -z "$missing" ] || [ "$lost_flag" = true ]; }
        ok=$?
        record nat "$expect" \
            "${when}accepted $confirmed; missing ${missing:-none}; LOST flag $lost_flag" "$(verdict $ok)"
    done
    stop_server >/dev/null
}

# --- run --------------------------------------------------------------------

for c in "${case_list[@]}"; do
    echo "== $c" >&2
    netns_setup || {
        record "$c" "network namespaces" "setup failed" FAIL
        continue
    }
    "case_$c"
    netns_cleanup
done

echo
print_table
table_status
