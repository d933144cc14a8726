#!/usr/bin/env bash
# A local tether cluster (docs/cluster.md): one redis-server on a free port
# and three tether nodes (--app pubsub --engine redis://...) on loopback,
# each with its metrics and /healthz on another loopback port; with
# --redis-cluster, a three-master Redis Cluster instead (redis-cli --cluster
# create) and the nodes on --engine redis-cluster://...
#
#   scripts/cluster.sh [start] [--redis-cluster]   start, print, wait for Ctrl-C
#   scripts/cluster.sh --help
#
# Everything it started is stopped on Ctrl-C, SIGTERM or any exit (tether
# with SIGTERM, redis-server with SIGKILL: it keeps nothing on disk). The
# binaries come from `cargo build --release` (TETHER_BIN_DIR to use others,
# e.g. target/debug). redis-server is installed with apt-get when missing
# (root only), as scripts/test.sh does. Logs go to a temporary directory,
# removed at exit unless CLUSTER_KEEP=1. Extra tether flags for every node:
# TETHER_FLAGS, e.g. TETHER_FLAGS="--history-size 10000".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODES=3

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

REDIS_CLUSTER=0
for arg in "${@:-start}"; do
    case "$arg" in
    start) ;;
    --redis-cluster) REDIS_CLUSTER=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "cluster.sh: unknown argument '$arg' (start, --redis-cluster, --help)" >&2
        exit 2
        ;;
    esac
done

# shellcheck source=scripts/lib/redis.sh
source "$ROOT/scripts/lib/redis.sh"
ensure_redis_server cluster.sh

if [[ -n "${TETHER_BIN_DIR:-}" ]]; then
    BIN=$TETHER_BIN_DIR
else
    echo "cluster.sh: building release binaries..." >&2
    (cd "$ROOT" && cargo build --release --quiet --bin tether --bin tether-cli)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
for b in tether tether-cli; do
    [[ -x "$BIN/$b" ]] || {
        echo "cluster.sh: $BIN/$b not found" >&2
        exit 1
    }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-cluster.XXXXXX")
PIDS=()

cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${REDIS_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${CLUSTER_KEEP:-0}" == 1 ]]; then
        echo "cluster.sh: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    echo "cluster.sh: stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "$REDIS_CLUSTER" == 1 ]]; then
    # Three masters, every slot assigned, no replicas.
    SEEDS=()
    for i in 1 2 3; do
        start_redis "redis$i" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 5000
        SEEDS+=("127.0.0.1:$REDIS_PORT")
    done
    redis-cli --cluster create "${SEEDS[@]}" --cluster-replicas 0 --cluster-yes \
        >"$WORK/cluster-create.log" 2>&1 || {
        echo "cluster.sh: redis-cli --cluster create failed: $(tail -c 500 "$WORK/cluster-create.log")" >&2
        exit 1
    }
    for seed in "${SEEDS[@]}"; do
        ok=""
        for _ in $(seq 200); do
            if redis-cli -h 127.0.0.1 -p "${seed##*:}" cluster info 2>/dev/null | grep -q cluster_state:ok; then
                ok=1
                break
            fi
            sleep 0.05
        done
        [[ -n "$ok" ]] || {
            echo "cluster.sh: the Redis Cluster is not ok on $seed" >&2
            exit 1
        }
    done
    ENGINE="redis-cluster://$(
        IFS=,
        echo "${SEEDS[*]}"
    )"
    REDIS_LOGS="$WORK/redis1.log $WORK/redis2.log $WORK/redis3.log"
else
    start_redis redis
    ENGINE="redis://127.0.0.1:$REDIS_PORT"
    REDIS_LOGS="$WORK/redis.log"
fi

# Each node listens on a port of its own choosing and says which (its first
# stdout line, `listening on IP:PORT`; the metrics address in its log).
ADDRS=()
METRICS=()
for i in $(seq 1 "$NODES"); do
    log=$WORK/node$i
    # shellcheck disable=SC2086 # TETHER_FLAGS is split into flags on purpose
    RUST_LOG=${RUST_LOG:-info} "$BIN/tether" --listen 127.0.0.1:0 --app pubsub \
        --engine "$ENGINE" --metrics 127.0.0.1:0 ${TETHER_FLAGS:-} \
        >"$log.out" 2>"$log.err" &
    PIDS+=($!)
    addr="" metrics=""
    for _ in $(seq 200); do
        addr=$(awk '/^listening on/ { print $3; exit }' "$log.out" 2>/dev/null || true)
        metrics=$(grep -o 'http://[0-9.]*:[0-9]*' "$log.err" 2>/dev/null | head -1 || true)
        [[ -n "$addr" && -n "$metrics" ]] && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n "$addr" && -n "$metrics" ]] || {
        echo "cluster.sh: node $i did not start: $(head -c 500 "$log.err")" >&2
        exit 1
    }
    ADDRS+=("$addr")
    METRICS+=("$metrics")
done

# Each node is up once its engine is connected (bounded wait).
for i in "${!ADDRS[@]}"; do
    connected=""
    for _ in $(seq 100); do
        connected=$(curl -fsS "${METRICS[$i]}/metrics" 2>/dev/null |
            awk '$1 == "tether_engine_connected" { print $2 }' || true)
        [[ "$connected" == 1 ]] && break
        sleep 0.05
    done
    [[ "$connected" == 1 ]] || echo "cluster.sh: node $((i + 1)) has not reached Redis yet (tether_engine_connected=$connected)" >&2
done

LIST=$(
    IFS=,
    echo "${ADDRS[*]}"
)
echo "redis:   $ENGINE (logs $REDIS_LOGS)"
for i in "${!ADDRS[@]}"; do
    echo "node $((i + 1)):  ${ADDRS[$i]}  metrics ${METRICS[$i]}/metrics  health ${METRICS[$i]}/healthz  (pid ${PIDS[$i]}, log $WORK/node$((i + 1)).err)"
done
echo
echo "try, in two terminals:"
echo "  $BIN/tether-cli sub $LIST news --json"
echo "  $BIN/tether-cli pub ${ADDRS[1]} news --count 1000 --rate 100"
echo "and kill -9 ${PIDS[0]} (node 1) meanwhile: the subscriber moves to node 2 and misses nothing."
echo
echo "Ctrl-C stops everything."
# Wait until interrupted (a node killed on purpose leaves the rest running).
while true; do
    sleep 1 &
    wait $! || true
done
