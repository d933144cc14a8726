#!/usr/bin/env bash
# The one command that runs every test of tether (the README's, and CI's):
#
#   scripts/test.sh [cargo test arguments...]
#
# 1. Needs root: the fault cases of tests/faults.rs build network namespaces
#    and set iptables rules (scripts/faults.sh), and missing packages are
#    installed with apt-get. Not root: it stops here with an error, so no test
#    is silently skipped.
# 2. Installs the system packages the tests need, only those whose tool is
#    absent (`command -v`), with apt-get. This list is the one home of the
#    project's system dependencies: .ci/run relies on it (valgrind, python3 for
#    scripts/valgrind.sh, which CI runs after the tests), and so do the
#    measurement scripts (python3, openssl).
# 3. Runs `cargo test` with the arguments given, e.g.
#    `scripts/test.sh --test faults -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: must run as root: tests/faults.rs needs network namespaces and iptables," >&2
    echo "         and missing system packages are installed with apt-get (try: sudo -E $0 $*)" >&2
    exit 2
fi

# tool → Debian package that provides it.
packages=(
    ip:iproute2           # network namespaces and veth pairs (scripts/faults.sh)
    iptables:iptables     # the router's faults: DROP, random loss, NAT (scripts/faults.sh)
    sysctl:procps         # per-namespace TCP and conntrack settings (scripts/faults.sh)
    jq:jq                 # reads the clients' JSON output (scripts/faults.sh)
    curl:curl             # /metrics (tests/metrics.rs, scripts/faults.sh)
    cc:gcc                # compiles examples/c/echo_upper.c (tests/c_example.rs, scripts/valgrind.sh)
    openssl:openssl       # TLS keys and certificates by hand (scripts/rss_per_conn.sh --tls)
    python3:python3       # scripted clients (scripts/valgrind.sh, rss_per_conn.sh, loadtest.sh)
    valgrind:valgrind     # scripts/valgrind.sh (the C example under memcheck)
    redis-server:redis-server  # the Redis engine's tests start real Redis (tests/common/redis.rs; redis-cli comes with it)
)
missing=()
for entry in "${packages[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    for entry in "${packages[@]}"; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || {
            echo "test.sh: ${entry%%:*} is still missing after apt-get install ${entry#*:}" >&2
            exit 1
        }
    done
fi

echo "== cargo test $*" >&2
exec cargo test "$@"
