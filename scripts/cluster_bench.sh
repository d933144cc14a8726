#!/usr/bin/env bash
# Issue 12's figures, on one machine, each with a baseline from the same run:
#
# 1. Delivery latency with 1,000 v2 subscribers (tether-load fanout
#    --protocol 2): a node with the in-memory engine (the baseline), a node
#    over Redis with the publisher on the same node, and the publisher on
#    another node (cross-node: node B -> Redis -> node A).
# 2. Publications per second through one Redis with three nodes: three
#    `tether-cli pub --count N` (acknowledged, 64 in flight), one per node
#    and channel, every node subscribed to the three channels; Redis's CPU
#    time per publication. Baseline: the same three publishers against one
#    in-memory node.
# 3. Time for the subscribers of a killed node to be back and recovered on
#    the others (examples/failover_time.rs: 1,000 library clients, a
#    publisher at 200/s on another node, SIGKILL).
#
#   scripts/cluster_bench.sh [SUBSCRIBERS] [SECONDS] [RATE]
#
# Defaults: 1000 subscribers, 10 s per latency run, 200 publishes/s. Real
# redis-server (installed with apt-get when missing, as root), release
# builds. Everything started is stopped at exit; CLUSTER_BENCH_KEEP=1
# keeps the logs.
set -euo pipefail

SUBS=${1:-1000}
SECS=${2:-10}
RATE=${3:-200}
PUBS=${PUBS:-20000}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-cluster-bench.XXXXXX")
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}" "${REDIS_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ "${CLUSTER_BENCH_KEEP:-0}" == 1 ]]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/lib/redis.sh
source "$ROOT/scripts/lib/redis.sh"
ensure_redis_server cluster_bench.sh

echo "building release binaries..." >&2
(cd "$ROOT" && cargo build --release --quiet --bin tether --bin tether-load --bin tether-cli \
    --example failover_time)

# cpu_ticks PID: user + system clock ticks of PID so far.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

start_redis redis
REDIS_PID=${REDIS_PIDS[0]}

# start_node NAME [FLAGS...]: a tether node; sets NODE_ADDR and NODE_PID.
start_node() {
    local name=$1
    shift
    "$BIN/tether" --listen 127.0.0.1:0 --app pubsub --history-size 10000 "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    NODE_ADDR=""
    for _ in $(seq 200); do
        NODE_ADDR=$(awk '/^listening on/ { print $3; exit }' "$WORK/$name.out" 2>/dev/null || true)
        [[ -n "$NODE_ADDR" ]] && return 0
        sleep 0.05
    done
    echo "node $name did not start: $(head -c 300 "$WORK/$name.err")" >&2
    exit 1
}

ENGINE=(--engine "redis://127.0.0.1:$REDIS_PORT")
start_node memory
MEM_ADDR=$NODE_ADDR MEM_PID=$NODE_PID
start_node a "${ENGINE[@]}"
A_ADDR=$NODE_ADDR A_PID=$NODE_PID
disown "$A_PID" # killed on purpose in part 3: no job notice
start_node b "${ENGINE[@]}"
B_ADDR=$NODE_ADDR B_PID=$NODE_PID
start_node c "${ENGINE[@]}"
C_ADDR=$NODE_ADDR

echo "== load average $(cut -d' ' -f1-3 /proc/loadavg); redis $(redis-server --version | awk '{print $3}')" >&2

# 1. Latency.
# fanout NAME ADDR PID [FLAGS...]: one fanout run; prints "NAME p50 p99" (µs).
fanout() {
    local name=$1 addr=$2 pid=$3
    shift 3
    timeout 300 "$BIN/tether-load" fanout --protocol 2 --connections "$SUBS" --rate "$RATE" \
        --size 64 --duration "$SECS" --warmup 1 --channel "lat-$name" --addr "$addr" \
        --server-pid "$pid" --json "$@" >"$WORK/$name.json" 2>"$WORK/$name.load.err" || {
        echo "tether-load ($name) failed: $(tail -c 300 "$WORK/$name.load.err")" >&2
        exit 1
    }
    python3 - "$name" "$WORK/$name.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[2]))
lat = r["latency_us"]
print(sys.argv[1], lat["p50"], lat["p99"], lat["count"])
EOF
}
echo "== 1. delivery latency, $SUBS subscribers, $RATE publishes/s, $SECS s" >&2
{
    fanout memory "$MEM_ADDR" "$MEM_PID"
    fanout same-node "$A_ADDR" "$A_PID"
    fanout cross-node "$A_ADDR" "$A_PID" --publish-addr "$B_ADDR"
} >"$WORK/latency.txt"
python3 - "$WORK/latency.txt" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
base = {r[0]: (float(r[1]), float(r[2])) for r in rows}
m50, m99 = base["memory"]
for name, p50, p99, n in rows:
    p50, p99 = float(p50), float(p99)
    print(f"  {name:<11} p50 {p50/1000:7.2f} ms ({p50/m50:5.2f}x memory)   "
          f"p99 {p99/1000:7.2f} ms ({p99/m99:5.2f}x memory)   deliveries {n}")
EOF

# 2. Throughput through one Redis.
# pubs NAME ADDR... : one `tether-cli pub --count PUBS` per address (channel
# t0, t1, ...) at once, every address subscribed to them all; prints the
# publications per second and Redis's CPU ms.
pubs() {
    local name=$1 i=0 subs=() pubs_pids=() start end r0 r1
    shift
    local channels=()
    for _ in "$@"; do channels+=("$name-t$i"); i=$((i + 1)); done
    for addr in "$@"; do
        "$BIN/tether-cli" sub "$addr" "${channels[@]}" --count $((PUBS * $#)) --timeout-s 120 \
            >/dev/null 2>>"$WORK/$name.sub.err" &
        subs+=($!)
        PIDS+=($!)
    done
    sleep 1
    r0=$(cpu_ticks "$REDIS_PID")
    start=$(date +%s.%N)
    i=0
    for addr in "$@"; do
        "$BIN/tether-cli" pub "$addr" "${channels[$i]}" --count "$PUBS" \
            >/dev/null 2>>"$WORK/$name.pub.err" &
        pubs_pids+=($!)
        i=$((i + 1))
    done
    for p in "${pubs_pids[@]}"; do wait "$p" || echo "a publisher failed ($name): $(tail -c 200 "$WORK/$name.pub.err")" >&2; done
    end=$(date +%s.%N)
    r1=$(cpu_ticks "$REDIS_PID")
    for p in "${subs[@]}"; do wait "$p" || echo "a subscriber did not get every publication ($name)" >&2; done
    python3 -c "
n = $PUBS * $#; t = $end - $start; ticks = $r1 - $r0
print(f'$name {n} {t:.3f} {n / t:.0f} {ticks * 10 / n * 1000:.2f}')"
}
echo "== 2. acknowledged publications per second, $PUBS per publisher" >&2
{
    pubs memory3 "$MEM_ADDR" "$MEM_ADDR" "$MEM_ADDR"
    pubs redis3 "$A_ADDR" "$B_ADDR" "$C_ADDR"
} >"$WORK/throughput.txt"
python3 - "$WORK/throughput.txt" <<'EOF'
import sys
rows = {r[0]: r[1:] for r in (l.split() for l in open(sys.argv[1]))}
base = float(rows["memory3"][2])
for name, (n, t, rate, cpu) in rows.items():
    what = "3 publishers, one in-memory node" if name == "memory3" else "3 nodes, one Redis"
    extra = "" if name == "memory3" else f"   Redis CPU {float(cpu):.1f} us/publication"
    print(f"  {what:<33} {float(rate):8.0f} publications/s ({float(rate)/base:4.2f}x){extra}")
EOF

# 3. Failover time.
echo "== 3. $SUBS subscribers of a killed node back and recovered" >&2
"$BIN/tether-cli" pub "$B_ADDR" failover --count 100000 --rate "$RATE" >/dev/null 2>"$WORK/failover.pub.err" &
PUB_PID=$!
PIDS+=("$PUB_PID")
timeout 180 "$BIN/examples/failover_time" --addrs "$A_ADDR,$B_ADDR,$C_ADDR" --kill-pid "$A_PID" \
    --subscribers "$SUBS" --channel failover | sed 's/^/  /'
kill -TERM "$PUB_PID" 2>/dev/null || true
