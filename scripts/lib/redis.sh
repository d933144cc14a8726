# Real redis-server processes for the cluster scripts (scripts/cluster.sh,
# scripts/cluster_bench.sh): installed with apt-get when missing (root
# only, as scripts/test.sh does), started on free loopback ports. Source it,
# then set WORK (logs and data go there) before start_redis; the servers it
# starts are in REDIS_PIDS, for the caller's cleanup.

REDIS_PIDS=()

# ensure_redis_server WHO: installs redis-server (with redis-cli) when
# missing; WHO names the script in messages. Exits 1 when it cannot.
ensure_redis_server() {
    local who=$1
    command -v redis-server >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "$who: redis-server is missing; install it (apt-get install redis-server) or run as root" >&2
        exit 1
    fi
    echo "$who: installing redis-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    command -v redis-server >/dev/null 2>&1 || {
        echo "$who: redis-server still missing after apt-get install redis-server" >&2
        exit 1
    }
}

# A loopback port nothing listens on now (redis-server cannot pick its own),
# with its cluster bus port (+10000) free too.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 35000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
            ! (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free loopback port found" >&2
    return 1
}

# start_redis NAME [FLAGS...]: a redis-server on a free port, logging to
# $WORK/NAME.log, its data in $WORK/NAME; three tries, in case another
# process takes the port first. Sets REDIS_PORT.
start_redis() {
    local name=$1 port pid
    shift
    mkdir -p "$WORK/$name"
    REDIS_PORT=""
    for _ in 1 2 3; do
        port=$(free_port)
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --protected-mode no --dir "$WORK/$name" --logfile "$WORK/$name.log" "$@" &
        pid=$!
        for _ in $(seq 100); do
            if [[ "$(redis-cli -p "$port" ping 2>/dev/null || true)" == PONG ]]; then
                REDIS_PORT=$port
                REDIS_PIDS+=("$pid")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "redis-server did not start: $(tail -c 300 "$WORK/$name.log" 2>/dev/null)" >&2
    exit 1
}

