#!/usr/bin/env bash
# Load-tests the tether server with tether-load, one fresh server per scenario.
#
#   scripts/loadtest.sh [quick|full]
#
# quick (default) finishes within about a minute once built; full is larger
# (19,000 idle connections, longer runs). pingpong and churn each have a TLS
# twin (`-tls`: TLS-only server, a throwaway certificate) run right after them.
# For each scenario the server is
# started with flags that suit it, tether-load runs with --json and
# --server-pid (so it samples the server's CPU and RSS exactly over the
# measured window), and this script also samples the server's CPU seconds
# (/proc/PID/stat utime+stime over CLK_TCK) and RSS (/proc/PID/status VmRSS)
# around the whole scenario. The server is then stopped with SIGTERM and must
# exit 0. One table at the end:
#
#   msgs/s, p50/p99 (us)   from tether-load, over the measured window
#   cpu us/msg             server CPU in the window / messages in the window
#   rss B/conn             (server RSS at the window's end - RSS before any
#                          connection) / connections open
#   cpu s (run)            server CPU over the whole scenario (ramp and close too)
#
# One report directory for the whole run, REPORT_DIR (default
# $CARGO_TARGET_DIR/loadtest-report-<UTC date and time>, target/ by default):
# each scenario's `tether-load --report` directory (table, JSON, SVG charts
# over time, index.html) under its name, and a top-level index.html with the
# table below and a link to each scenario's page; summary.txt is the table.
#
# Environment: CARGO_TARGET_DIR is honoured; REPORT_DIR as above;
# LOADTEST_KEEP=1 keeps the work directory (JSON and server logs). Exit
# status is non-zero when a scenario failed or the server did not exit 0.
set -euo pipefail

PROFILE=${1:-quick}
case "$PROFILE" in
quick | full) ;;
*)
    echo "usage: $0 [quick|full]" >&2
    exit 2
    ;;
esac

BENCH_NAME=loadtest
BENCH_KEEP_VAR=LOADTEST_KEEP
# shellcheck source=scripts/lib/bench.sh
source "$(dirname "$0")/lib/bench.sh"
CLK_TCK=$(getconf CLK_TCK)
REPORT_DIR=${REPORT_DIR:-$TARGET/loadtest-report-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$REPORT_DIR"

# cpu_seconds PID: utime + stime of PID, in seconds.
cpu_seconds() {
    awk -v tck="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / tck }' "/proc/$1/stat"
}

# rss_bytes PID: resident set size in bytes.
rss_bytes() {
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

# start_server NAME FLAGS...: starts a server on a free port; sets SPID and SADDR.
start_server() {
    local name=$1
    shift
    "$BIN/tether" --listen 127.0.0.1:0 "$@" >"$WORK/$name.server.out" 2>"$WORK/$name.server.err" &
    SPID=$!
    SADDR=""
    for _ in $(seq 100); do
        SADDR=$(awk '/^listening on/ { print $3; exit }' "$WORK/$name.server.out" 2>/dev/null)
        [[ -n "$SADDR" ]] && return 0
        if ! kill -0 "$SPID" 2>/dev/null; then
            wait "$SPID" 2>/dev/null || true
            SPID=""
            return 1
        fi
        sleep 0.05
    done
    echo "server for $name did not print its address" >&2
    return 1
}

# The TLS scenarios: a throwaway certificate, the server's TLS-only flags and
# the load generator's, so a plain scenario and its TLS twin run back to back.
# shellcheck source=scripts/lib/test_cert.sh
source "$(dirname "$0")/lib/test_cert.sh"
make_test_cert "$WORK"
TLS_SERVER="--listen none --tls-listen 127.0.0.1:0 --tls-cert $WORK/cert.pem --tls-key $WORK/key.pem"
TLS_LOAD=(--tls --tls-ca "$WORK/ca.pem")

# scenario NAME "SERVER FLAGS" LOAD ARGS...
scenario() {
    local name=$1 server_flags=$2
    shift 2
    echo "== $name: tether $server_flags | tether-load $*" >&2
    # shellcheck disable=SC2086 # server_flags is a word list on purpose
    if ! start_server "$name" $server_flags; then
        echo "   skipped: the server refused these flags: $(head -c 300 "$WORK/$name.server.err")" >&2
        printf '%s\tskipped\t-\t-\t-\t-\n' "$name" >>"$RESULTS"
        return 0
    fi
    local cpu0 rss0 cpu1 rss1 load_rc=0
    cpu0=$(cpu_seconds "$SPID")
    rss0=$(rss_bytes "$SPID")
    timeout 300 "$BIN/tether-load" "$@" --addr "$SADDR" --server-pid "$SPID" --json \
        --report "$REPORT_DIR/$name" >"$WORK/$name.json" 2>"$WORK/$name.load.err" || load_rc=$?
    cpu1=$(cpu_seconds "$SPID")
    rss1=$(rss_bytes "$SPID")
    stop_server
    if [[ "$load_rc" != 0 ]]; then
        echo "   tether-load exited $load_rc: $(tail -c 300 "$WORK/$name.load.err")" >&2
        FAILED=1
    fi
    if [[ "$SERVER_RC" != 0 ]]; then
        echo "   server exited $SERVER_RC after SIGTERM (expected 0)" >&2
        FAILED=1
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$WORK/$name.json" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')" "$rss0" "$rss1" "$SERVER_RC" >>"$RESULTS"
}

# fanout needs the pub/sub app; skip it with a note when the server refuses.
fanout() {
    local name=$1
    shift
    scenario "$name" "--app pubsub" fanout "$@"
}

: >"$RESULTS"
if [[ "$PROFILE" == quick ]]; then
    scenario pingpong "--app echo" pingpong --connections 1000 --depth 1 --payload 16 --duration 5
    scenario pingpong-tls "--app echo $TLS_SERVER" pingpong --connections 1000 --depth 1 --payload 16 --duration 5 "${TLS_LOAD[@]}"
    scenario echo "--app echo" echo --connections 200 --depth 2 --size 256 --duration 5
    scenario idle "--app echo --max-heartbeat-ms 600000" idle --connections 10000 --heartbeat-ms 2000 --duration 5
    scenario churn "--app echo" churn --rate 500 --duration 5
    scenario churn-tls "--app echo $TLS_SERVER" churn --rate 500 --duration 5 "${TLS_LOAD[@]}"
    fanout fanout --connections 500 --rate 50 --size 64 --duration 5
else
    scenario pingpong "--app echo" pingpong --connections 1000 --depth 1 --payload 16 --duration 20 --warmup 2
    scenario pingpong-tls "--app echo $TLS_SERVER" pingpong --connections 1000 --depth 1 --payload 16 --duration 20 --warmup 2 "${TLS_LOAD[@]}"
    scenario pingpong-5k-d4 "--app echo" pingpong --connections 5000 --depth 4 --payload 16 --duration 20 --warmup 2
    scenario echo "--app echo" echo --connections 1000 --depth 2 --size 1024 --duration 20 --warmup 2
    scenario echo-64k "--app echo" echo --connections 100 --depth 1 --size 65536 --duration 20 --warmup 2
    scenario idle "--app echo --max-heartbeat-ms 600000" idle --connections 19000 --heartbeat-ms 10000 --duration 30
    scenario churn "--app echo" churn --rate 1000 --duration 20 --sources 127.0.0.2-127.0.0.40
    scenario churn-tls "--app echo $TLS_SERVER" churn --rate 1000 --duration 20 --sources 127.0.0.2-127.0.0.40 "${TLS_LOAD[@]}"
    scenario idle-tls "--app echo --max-heartbeat-ms 600000 $TLS_SERVER" idle --connections 10000 --heartbeat-ms 10000 --duration 30 "${TLS_LOAD[@]}"
    fanout fanout --connections 5000 --rate 10 --size 64 --duration 20 --warmup 2
fi

python3 - "$RESULTS" "$REPORT_DIR" "$PROFILE" <<'EOF' || FAILED=1
import html, json, os, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
head = ["scenario", "conns", "msgs/s", "p50 us", "p99 us", "cpu us/msg", "rss B/conn",
        "cpu s (run)", "errors", "goaways", "srv exit", "result"]
table = []
bad = False
for name, path, run_cpu, rss0, rss1, server_rc in rows:
    if path == "skipped":
        table.append([name] + ["-"] * 10 + ["skipped: server refused (no pub/sub?)"])
        continue
    try:
        d = json.load(open(path))
    except (OSError, ValueError) as e:
        table.append([name] + ["-"] * 10 + [f"no report ({e.__class__.__name__})"])
        bad = True
        continue
    lat = d.get("latency_us") or {}
    srv = d.get("server") or {}
    fmt = lambda x, spec: "-" if x is None else format(x, spec)
    errors = ", ".join(f"{k} {v}" for k, v in d["errors"].items() if v) or "0"
    goaways = ", ".join(f"{k} {v}" for k, v in d["goaways"].items()) or "0"
    result = "ok" if d["ok"] else "FAILED: " + (d.get("failure") or "?")
    bad |= not d["ok"] or server_rc != "0"
    table.append([
        name,
        str(d["connections"]["open_at_end"] or d["connections"]["handshakes"]),
        fmt(d["msgs_per_sec"], ".0f"),
        fmt(lat.get("p50"), ".1f"),
        fmt(lat.get("p99"), ".1f"),
        fmt(srv.get("cpu_us_per_msg"), ".2f"),
        fmt(srv.get("rss_bytes_per_conn"), ".0f"),
        run_cpu,
        errors,
        goaways,
        server_rc,
        result,
    ])
widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
lines = ["  ".join(c.ljust(w) if i in (0, 8, 9, 11) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
         for r in [head] + table]
print("\n".join(lines))

# The run's report directory: the table, and a page linking each scenario's report.
report_dir, profile = sys.argv[2], sys.argv[3]
with open(os.path.join(report_dir, "summary.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in r)
body = []
for r in table:
    name = r[0]
    if os.path.exists(os.path.join(report_dir, name, "index.html")):
        link = f'<a href="{html.escape(name)}/index.html">{html.escape(name)}</a>'
    else:
        link = html.escape(name)
    body.append(f"<tr><td>{link}</td>{cells(r[1:], 'td')}</tr>")
page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tether load test ({html.escape(profile)})</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: 0.2em 1em 0.2em 0; }}
</style>
</head>
<body>
<h1>tether load test ({html.escape(profile)})</h1>
<p>One fresh server per scenario; each scenario's name links to its report (parameters, summary, charts over time).</p>
<table>
<tr>{cells(head, 'th')}</tr>
{chr(10).join(body)}
</table>
</body>
</html>
"""
with open(os.path.join(report_dir, "index.html"), "w") as f:
    f.write(page)
print(f"report: {os.path.join(report_dir, 'index.html')}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
exit "$FAILED"
