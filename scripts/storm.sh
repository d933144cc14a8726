#!/usr/bin/env bash
# Issue 13's storm test: 1,000 clients PING every 100 ms (round trip timed);
# after 2 s of steady state 10,000 more connect at once from 127.0.0.1-4
# (`tether-load storm`, its defaults). Printed: the established clients'
# round trip p50/p99/p99.9/max before, during and after the storm, the storm
# clients' connect->WELCOME times, how many were accepted, refused
# (SERVER_FULL) or failed, and the server's CPU over the storm. The target:
# p99.9 under 20 ms during the storm, with the server's default settings.
#
#   scripts/storm.sh [--tls] [tether-load flags...]
#
# --tls runs the same storm a second time against a TLS-only server (a
# throwaway certificate). Extra flags go to tether-load (e.g. --storm 5000,
# --duration 20); STORM_SERVER_FLAGS go to the server (e.g.
# "--max-accept-rate 2000"). The storm's connects run in a child
# tether-load (`--storm-in-child`), so the loop timing the established
# clients is not stalled by 10,000 connects in its own turns (the child runs
# at nice 10: a real storm's clients are on other machines, and its own TLS
# handshakes would otherwise take the server's CPU); STORM_IN_CHILD=0
# runs them in the same loop as before. The release binaries are built first; the
# server is stopped with SIGTERM and must exit 0. STORM_KEEP=1 keeps the
# work directory.
#
# The server side is printed too, from its /metrics scraped every second
# (the last scrape, taken after the storm): how its loop turns and the
# delay from a socket's readiness to its handling were spread, the
# refusals and the accept waits. A long round trip the server's turns do
# not explain was spent in the generator or waiting for a CPU.
set -euo pipefail

TLS=0
if [[ "${1:-}" == --tls ]]; then
    TLS=1
    shift
fi
EXTRA=("$@")
if [[ "${STORM_IN_CHILD:-1}" == 1 ]]; then
    EXTRA=(--storm-in-child "${EXTRA[@]}")
fi

BENCH_NAME=storm
BENCH_KEEP_VAR=STORM_KEEP
# shellcheck source=scripts/lib/bench.sh
source "$(dirname "$0")/lib/bench.sh"

# scrape_metrics LOG: copies the server's /metrics to LOG.metrics every
# second until the server is gone (the last copy is from after the storm).
scrape_metrics() {
    local log=$1 addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' "$log.err" 2>/dev/null | head -1)
        [[ -n "$addr" ]] && break
        sleep 0.05
    done
    [[ -n "$addr" ]] || return 0
    while python3 - "$addr" "$log.metrics" <<'PY'
import sys, urllib.request
try:
    body = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=2).read()
except OSError:
    sys.exit(1)
open(sys.argv[2] + ".new", "wb").write(body)
PY
    do
        mv "$log.metrics.new" "$log.metrics"
        sleep 1
    done
}

# run NAME SERVER_FLAGS LOAD_FLAGS...: one storm against a fresh server.
run() {
    local name=$1 server_flags="$2 --metrics 127.0.0.1:0 ${STORM_SERVER_FLAGS:-}" log=$WORK/$1
    shift 2
    # shellcheck disable=SC2086 # the server flags are words
    start_listening "tether $name" "$log" "$BIN/tether" $server_flags
    scrape_metrics "$log" &
    local scraper=$!
    echo "== storm $name (load average $(cut -d' ' -f1-3 /proc/loadavg)): tether $server_flags; tether-load storm $* ${EXTRA[*]}" >&2
    load_and_stop "$log" 1 storm "$@" "${EXTRA[@]}"
    wait "$scraper" 2>/dev/null || true
    printf '%s\t%s\n' "$name" "$log.json" >>"$RESULTS"
}

: >"$RESULTS"
run plain "--listen 127.0.0.1:0"
if [[ "$TLS" == 1 ]]; then
    # shellcheck source=scripts/lib/test_cert.sh
    source "$(dirname "$0")/lib/test_cert.sh"
    make_test_cert "$WORK"
    # --sources: the TLS listener is 127.0.0.1 too, so the defaults hold.
    run tls "--listen none --tls-listen 127.0.0.1:0 --tls-cert $WORK/cert.pem --tls-key $WORK/key.pem" \
        --tls --tls-ca "$WORK/ca.pem"
fi

python3 - "$RESULTS" <<'PY' || FAILED=1
import json, sys

f = lambda x: "-" if x is None else f"{x / 1000:.2f}"
bad = False


def server_side(path):
    """The server's own view, from its last /metrics scrape."""
    try:
        text = open(path).read()
    except OSError:
        print("  server metrics: none scraped")
        return
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    for family, label in (("tether_loop_turn_seconds", "turns"),
                          ("tether_loop_ready_delay_seconds", "ready->handled")):
        total = values.get(f"{family}_count", 0)
        buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v) for k, v in values.items()
                         if k.startswith(f"{family}_bucket") and "+Inf" not in k)
        over = []
        for le, cum in buckets:
            if le >= 0.001:
                over.append(f">{le * 1000:g}ms {int(total - cum)}")
        print(f"  server {label}: {int(total)}; " + ", ".join(over))
    pick = lambda k, r: int(values.get(k + '{reason="' + r + '"}', 0))
    refused = "tether_connections_refused_total"
    waits = "tether_accept_waits_total"
    print(f"  server: slow turns {int(values.get('tether_loop_slow_turns_total', 0))}, "
          f"refused full {pick(refused, 'full')} per-ip {pick(refused, 'per_ip')}, "
          f"accept waits rate {pick(waits, 'rate')} handshakes {pick(waits, 'handshakes')}")

for line in open(sys.argv[1]):
    name, path = line.rstrip("\n").split("\t")
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        print(f"{name}: no report")
        bad = True
        continue
    s = d.get("storm") or {}
    print(f"{name}: {d['connections']['target']} established, {s.get('clients')} storm clients")
    print(f"  {'window':<7} {'secs':>6} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}")
    for w, v in (s.get("windows") or {}).items():
        r = v.get("rtt_us") or {}
        print(f"  {w:<7} {v['secs']:>6.2f} {r.get('count', 0):>7} {f(r.get('p50')):>8} "
              f"{f(r.get('p99')):>8} {f(r.get('p99_9')):>9} {f(r.get('max')):>8}")
    c = s.get("connect_us") or {}
    print(f"  storm connect->WELCOME ms: p50 {f(c.get('p50'))}  p99 {f(c.get('p99'))}  max {f(c.get('max'))}")
    failed = {k: n for k, n in (s.get("failed") or {}).items() if n}
    print(f"  accepted {s.get('accepted')}, refused (SERVER_FULL) {s.get('refused')}, "
          f"other GOAWAY {s.get('goaway_other')}, failed {s.get('failed_total')} {failed or ''}, "
          f"unresolved {s.get('unresolved')}{'' if s.get('complete') else ' (storm not over)'}")
    cpu = s.get("server_cpu_s")
    during = (s.get("windows") or {}).get("during", {}).get("secs") or 0
    pct = f" ({100 * cpu / during:.0f}% of a core)" if cpu is not None and during else ""
    print(f"  server cpu during the storm {cpu} s{pct}; result {'ok' if d['ok'] else 'FAILED: ' + str(d.get('failure'))}")
    bad |= not d["ok"]
    server_side(path[: -len(".json")] + ".metrics")
sys.exit(1 if bad else 0)
PY
exit "$FAILED"
