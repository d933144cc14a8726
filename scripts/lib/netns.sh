# shellcheck shell=bash
# A three-namespace test network for scripts/faults.sh, sourced, never run.
#
#   tcl (client) 10.77.1.2 ──veth── 10.77.1.1 trt (router) 10.77.2.1 ──veth── 10.77.2.2 tsv (server)
#
# The addresses exist only inside these namespaces; none of them has a link
# to the host's namespace, so no packet can leave them. The router forwards
# (net.ipv4.ip_forward=1 inside trt only) and is where faults are injected
# with iptables, inside trt only.

# Named per run (the script's PID), so two runs on one machine (two
# checkouts' tests at once) never delete or enter each other's namespaces.
NS_CL=tcl$$
NS_RT=trt$$
NS_SV=tsv$$
CL_IP=10.77.1.2
RT_CL_IP=10.77.1.1
RT_SV_IP=10.77.2.1
SV_IP=10.77.2.2

# PIDs of the processes we started (killed by id in netns_cleanup).
NETNS_PIDS=()

in_cl() { ip netns exec "$NS_CL" "$@"; }
in_rt() { ip netns exec "$NS_RT" "$@"; }
in_sv() { ip netns exec "$NS_SV" "$@"; }

# Starts "$@" in the background inside namespace $1; its pid goes into
# NETNS_PIDS and into the variable named by $2. `ip netns exec` execs the
# command in place, so the pid is the program's own.
#   spawn_in NS VAR OUTFILE ERRFILE cmd args...
spawn_in() {
    local ns=$1 var=$2 out=$3 err=$4
    shift 4
    ip netns exec "$ns" "$@" >"$out" 2>"$err" &
    local pid=$!
    NETNS_PIDS+=("$pid")
    printf -v "$var" '%s' "$pid"
}

# Kills (SIGKILL) one process we started, if it is still there, and reaps it.
kill_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Waits up to $2 seconds for pid $1 to exit; returns its status (124 on timeout).
wait_pid() {
    local pid=$1 limit=$2 i
    for ((i = 0; i < limit * 20; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            return $?
        fi
        sleep 0.05
    done
    return 124
}

netns_delete() {
    local ns
    for ns in "$NS_CL" "$NS_RT" "$NS_SV"; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            # Anything still inside was started by this script: kill by id.
            local p
            for p in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$p" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

netns_cleanup() {
    local pid
    for pid in "${NETNS_PIDS[@]}"; do
        kill_pid "$pid"
    done
    NETNS_PIDS=()
    netns_delete
}

# Builds the three namespaces from scratch (removing leftovers of an earlier
# run that had this PID).
netns_setup() {
    netns_delete
    ip netns add "$NS_CL"
    ip netns add "$NS_RT"
    ip netns add "$NS_SV"
    ip link add cl0 netns "$NS_CL" type veth peer name rt1 netns "$NS_RT"
    ip link add sv0 netns "$NS_SV" type veth peer name rt2 netns "$NS_RT"
    in_cl ip addr add "$CL_IP/24" dev cl0
    in_rt ip addr add "$RT_CL_IP/24" dev rt1
    in_rt ip addr add "$RT_SV_IP/24" dev rt2
    in_sv ip addr add "$SV_IP/24" dev sv0
    local ns
    for ns in "$NS_CL" "$NS_RT" "$NS_SV"; do
        ip netns exec "$ns" ip link set lo up
    done
    in_cl ip link set cl0 up
    in_rt ip link set rt1 up
    in_rt ip link set rt2 up
    in_sv ip link set sv0 up
    in_cl ip route add default via "$RT_CL_IP"
    in_sv ip route add default via "$RT_SV_IP"
    in_rt sysctl -qw net.ipv4.ip_forward=1
    # 1,000+ connections from one client address.
    in_cl sysctl -qw net.ipv4.ip_local_port_range="10000 60999"
}

# The iptables binary that works inside a namespace (set by ensure_iptables).
IPT=iptables

# iptables inside the router namespace.
ipt() { in_rt "$IPT" "$@"; }

# Empties every iptables table inside the router.
router_flush() {
    ipt -F
    ipt -t nat -F
    ipt -P FORWARD ACCEPT
}

# Picks the iptables binary that can do everything the cases need inside a
# fresh namespace (random loss, conntrack states, MASQUERADE): `iptables`
# (whichever backend the system's alternative points to), then iptables-nft,
# then iptables-legacy. Installing it is scripts/test.sh's job; here a missing
# or unusable iptables is an error naming what failed.
ensure_iptables() {
    if ! command -v iptables >/dev/null 2>&1; then
        echo "iptables is not installed (scripts/test.sh installs it: apt-get install iptables)" >&2
        return 1
    fi
    local cand err rc tried=()
    for cand in iptables iptables-nft iptables-legacy; do
        command -v "$cand" >/dev/null 2>&1 || continue
        ip netns add "tprobe$$" 2>/dev/null || true
        err=$({
            ip netns exec "tprobe$$" "$cand" -A FORWARD -m statistic --mode random --probability 0.5 -j DROP &&
                ip netns exec "tprobe$$" "$cand" -A FORWARD -m conntrack --ctstate INVALID -j DROP &&
                ip netns exec "tprobe$$" "$cand" -t nat -A POSTROUTING -o lo -j MASQUERADE
        } 2>&1)
        rc=$?
        ip netns del "tprobe$$" 2>/dev/null || true
        if [ $rc -eq 0 ]; then
            IPT=$cand
            return 0
        fi
        tried+=("$cand: ${err:-exit $rc}")
    done
    printf 'no iptables works inside a network namespace:\n' >&2
    printf '  %s\n' "${tried[@]}" >&2
    return 1
}
