#!/usr/bin/env bash
# Fuzzes every target for N seconds each (default 60), seeded from the
# committed corpus in fuzz/corpus/<target>/, which is only read: new inputs,
# logs and crash files go to a work directory ($FUZZ_WORK, default a fresh
# /tmp/tether-fuzz.*), so a run never dirties the repository.
#
#   scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="conn_machine hello" scripts/fuzz.sh 300
#
# Prints a table (target, seconds, executions, corpus size, crashes) and exits
# non-zero if any target crashed, printing each crash file. Only the stable
# toolchain is needed: RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz
# uses. AddressSanitizer is used when it builds, else no sanitizer
# (FUZZ_SANITIZER=none forces that). Replay a crash with
# `cargo fuzz run <target> <crash file>` from fuzz/ (with RUSTC_BOOTSTRAP=1).
set -uo pipefail

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FUZZ_WORK:-$(mktemp -d /tmp/tether-fuzz.XXXXXX)}
mkdir -p "$work" || exit 2
export RUSTC_BOOTSTRAP=1
cd "$root/fuzz" || exit 2

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 2
fi

sanitizer=${FUZZ_SANITIZER:-address}
if ! cargo fuzz build --sanitizer "$sanitizer" >"$work/build.log" 2>&1; then
    if [ "$sanitizer" = none ]; then
        cat "$work/build.log" >&2
        exit 2
    fi
    echo "build with --sanitizer $sanitizer failed; retrying without a sanitizer" >&2
    sanitizer=none
    cargo fuzz build --sanitizer none >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 2; }
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
rows=()
crashed=()
for t in $targets; do
    dir="$work/$t"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    [ -d "corpus/$t" ] || { echo "no committed corpus for $t" >&2; exit 2; }
    echo "fuzzing $t for ${secs}s (sanitizer $sanitizer, log $dir/log)" >&2
    start=$(date +%s)
    # The first corpus dir receives new inputs; the committed one is only read.
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$dir/corpus" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" >"$dir/log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$' | tail -1)
    corp=$(grep -o 'corp: [0-9]*' "$dir/log" | tail -1 | grep -o '[0-9]*$')
    crashes=$(find "$dir/artifacts" -type f | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="err($rc)"
    fi
    rows+=("$t $elapsed ${execs:-?} ${corp:-?} $crashes")
    if [ "$rc" -ne 0 ] || [ "$crashes" != 0 ]; then
        crashed+=("$t")
        grep -E 'panicked|ERROR|SUMMARY' "$dir/log" | head -5 >&2
        find "$dir/artifacts" -type f -exec echo "crash file: {}" \; >&2
    fi
done

printf '\n%-14s %8s %12s %8s %8s\n' target seconds executions corpus crashes
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-14s %8s %12s %8s %8s\n' $row
done
echo "work dir: $work"
if [ "${#crashed[@]}" -ne 0 ]; then
    echo "CRASHED: ${crashed[*]}" >&2
    exit 1
fi
