#!/usr/bin/env bash
# Compares tether with the "floor" (examples/floor_echo.rs: the least a server
# can do to answer PINGs) under the same load, in the same run.
#
#   scripts/compare.sh [PINGPONG_CONNS] [IDLE_CONNS] [SECONDS]
#
# Defaults: 1000 pingpong connections (depth 1, empty PINGs), 5000 idle
# connections heartbeating every 1000 ms (empty PINGs), 10 s each. Every
# scenario runs ROUNDS times (default 2), alternating tether and floor so both
# see the same background load; the figures are the mean over rounds.
#
# Printed: per run, msgs/s, p50/p99, server CPU us per ping-pong (tether-load
# samples /proc/PID over the measured window) and server RSS per connection;
# then the tether/floor ratios. The goal for CPU per ping-pong is at most
# 1.03x the floor's (the team's standard). Each server is stopped with SIGTERM; tether must exit 0.
set -euo pipefail

PP_CONNS=${1:-1000}
IDLE_CONNS=${2:-5000}
SECS=${3:-10}
ROUNDS=${ROUNDS:-2}

BENCH_NAME=compare
BENCH_KEEP_VAR=COMPARE_KEEP
# shellcheck source=scripts/lib/bench.sh
source "$(dirname "$0")/lib/bench.sh"

# start SERVER LOG: SERVER is tether or floor; sets SPID and SADDR.
start() {
    case "$1" in
    tether) start_listening tether "$2" "$BIN/tether" --listen 127.0.0.1:0 --app echo ;;
    floor) start_listening floor "$2" "$BIN/examples/floor_echo" --listen 127.0.0.1:0 ;;
    esac
}

# run SCENARIO SERVER ROUND LOAD ARGS...
run() {
    local scenario=$1 server=$2 round=$3
    shift 3
    local log=$WORK/$scenario.$server.$round
    echo "== $scenario on $server (round $round): tether-load $*" >&2
    start "$server" "$log"
    load_and_stop "$log" "$([[ "$server" == tether ]] && echo 1 || echo 0)" "$@"
    printf '%s\t%s\t%s\t%s\n' "$scenario" "$server" "$round" "$log.json" >>"$RESULTS"
}

: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for server in tether floor; do
        run pingpong "$server" "$round" pingpong --connections "$PP_CONNS" --depth 1 --payload 0 \
            --duration "$SECS" --warmup 1
    done
    for server in tether floor; do
        run idle "$server" "$round" idle --connections "$IDLE_CONNS" --heartbeat-ms 1000 --payload 0 \
            --duration "$SECS"
    done
done

PYTHONPATH="$ROOT/scripts/lib" python3 - "$RESULTS" <<'EOF' || FAILED=1
import json, sys
from rounds import best, fmt as f, mean, ratio
from collections import defaultdict

runs = defaultdict(list)
print(f"{'scenario':<9} {'server':<7} {'round':>5} {'conns':>6} {'msgs/s':>9} {'p50 us':>9} {'p99 us':>9} "
      f"{'cpu us/msg':>10} {'rss B/conn':>10} {'load cpu%':>9}  result")
bad = False
for line in open(sys.argv[1]):
    scenario, server, rnd, path = line.rstrip("\n").split("\t")
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        print(f"{scenario:<9} {server:<7} {rnd:>5}  no report")
        bad = True
        continue
    lat = d.get("latency_us") or {}
    srv = d.get("server") or {}
    load = d.get("load") or {}
    dur = d.get("duration_s") or 0
    row = {
        "msgs": d["msgs_per_sec"],
        "p50": lat.get("p50"),
        "p99": lat.get("p99"),
        "cpu": srv.get("cpu_us_per_msg"),
        "rss": srv.get("rss_bytes_per_conn"),
    }
    runs[(scenario, server)].append(row)
    load_pct = 100 * load["cpu_s"] / dur if load and dur else None
    result = "ok" if d["ok"] else "FAILED: " + (d.get("failure") or "?")
    bad |= not d["ok"]
    print(f"{scenario:<9} {server:<7} {rnd:>5} {d['connections']['open_at_end']:>6} {f(row['msgs'], '.0f'):>9} "
          f"{f(row['p50'], '.1f'):>9} {f(row['p99'], '.1f'):>9} {f(row['cpu'], '.3f'):>10} "
          f"{f(row['rss'], '.0f'):>10} {f(load_pct, '.0f'):>9}  {result}")



print()
print("tether / floor (ratios of the mean over rounds; cpu/msg also of the best round)")
print(f"{'scenario':<9} {'cpu/msg':>8} {'best':>6} {'rss/conn':>9} {'p99':>7} {'msgs/s':>7}   tether vs floor cpu us/msg (mean; best)")
for scenario in ("pingpong", "idle"):
    t, fl = runs.get((scenario, "tether"), []), runs.get((scenario, "floor"), [])
    cells = [ratio(mean(t, "cpu"), mean(fl, "cpu")), ratio(best(t, "cpu"), best(fl, "cpu"))]
    cells += [ratio(mean(t, key), mean(fl, key)) for key in ("rss", "p99", "msgs")]
    a, b = mean(t, "cpu"), mean(fl, "cpu")
    c, d = best(t, "cpu"), best(fl, "cpu")
    detail = f"{a:.3f} vs {b:.3f}; {c:.3f} vs {d:.3f}" if None not in (a, b, c, d) else "-"
    if scenario == "pingpong" and a is not None and b:
        detail += "  (goal <= 1.03x: " + ("met" if a / b <= 1.03 else "NOT met") + ")"
    print(f"{scenario:<9} {cells[0]:>8} {cells[1]:>6} {cells[2]:>9} {cells[3]:>7} {cells[4]:>7}   {detail}")
sys.exit(1 if bad else 0)
EOF
exit "$FAILED"
