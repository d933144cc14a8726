# shellcheck shell=bash
# Helpers shared by scripts/faults.sh and scripts/soak.sh, sourced, never run.

now() { date +%s.%N; }

# Floating-point arithmetic and comparisons through awk: calc EXPR, fcmp A OP B.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
fcmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

# A metric's value from a Prometheus text page on stdin: metric_from NAME.
# NAME includes labels exactly as exposed, e.g. tether_goaway_sent_total{code="IDLE_TIMEOUT"}.
metric_from() { awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "" }'; }

# The pass/fail table.
RESULT_CASE=()
RESULT_EXPECT=()
RESULT_OBSERVED=()
RESULT_VERDICT=()

# record CASE EXPECTATION OBSERVED PASS|FAIL|SKIP
record() {
    RESULT_CASE+=("$1")
    RESULT_EXPECT+=("$2")
    RESULT_OBSERVED+=("$3")
    RESULT_VERDICT+=("$4")
    printf '[%s] %s: %s — %s\n' "$4" "$1" "$2" "$3" >&2
}

# verdict CONDITION-EXIT-STATUS → PASS or FAIL: `verdict $?`.
verdict() { if [ "$1" -eq 0 ]; then echo PASS; else echo FAIL; fi; }

# pad STRING WIDTH: left-aligned in WIDTH characters (printf pads bytes, and
# the table holds multi-byte characters such as ≤ and ×).
pad() { printf '%s%*s' "$1" $(($2 - ${#1})) ''; }

print_table() {
    local i w1=4 w2=11
    for i in "${!RESULT_CASE[@]}"; do
        ((${#RESULT_CASE[$i]} > w1)) && w1=${#RESULT_CASE[$i]}
        ((${#RESULT_EXPECT[$i]} > w2)) && w2=${#RESULT_EXPECT[$i]}
    done
    printf '%s | %s | %-6s | %s\n' "$(pad case "$w1")" "$(pad expectation "$w2")" result observed
    printf '%s\n' "$(printf '%*s' $((w1 + w2 + 30)) '' | tr ' ' -)"
    for i in "${!RESULT_CASE[@]}"; do
        printf '%s | %s | %-6s | %s\n' "$(pad "${RESULT_CASE[$i]}" "$w1")" \
            "$(pad "${RESULT_EXPECT[$i]}" "$w2")" "${RESULT_VERDICT[$i]}" "${RESULT_OBSERVED[$i]}"
    done
}

# Exit status for the table: 1 if any FAIL.
table_status() {
    local v
    for v in "${RESULT_VERDICT[@]}"; do
        [ "$v" = FAIL ] && return 1
    done
    return 0
}

# Waits up to $2 seconds for a line matching the extended regex $3 in file $1.
wait_for_line() {
    local file=$1 limit=$2 re=$3 i
    for ((i = 0; i < limit * 20; i++)); do
        grep -Eq -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
