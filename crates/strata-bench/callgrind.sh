#!/usr/bin/env bash
# Instructions per operation of every single-thread (`fixed`) path, counted by callgrind.
#
# For each `workload impl` line of `strata-bench --list-fixed` (optionally only those
# containing FILTER), runs `strata-bench --callgrind WORKLOAD IMPL ITERS` under
# `valgrind --tool=callgrind` at two iteration counts; the difference of the instruction
# totals divided by the difference of the iteration counts is the cost of one operation
# (start-up and set-up cancel out). Prints a table and writes
# <workspace>/target/strata-report/callgrind.csv (or $OUT/callgrind.csv).
#
# usage: crates/strata-bench/callgrind.sh [FILTER]
# env:   LOW=10000 HIGH=110000 (iteration counts), OUT=<dir>, CARGO_TARGET_DIR,
#        FEATURES (cargo features of strata-bench, e.g. FEATURES=lockdep; recorded in
#        the CSV header)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
filter=${1:-}
low=${LOW:-10000}
high=${HIGH:-110000}
out_dir=${OUT:-$root/target/strata-report}

if ! command -v valgrind >/dev/null 2>&1; then
    echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi
if ! [[ $low =~ ^[0-9]+$ && $high =~ ^[0-9]+$ ]] || ((high <= low)); then
    echo "callgrind.sh: LOW and HIGH must be whole numbers with HIGH > LOW" >&2
    exit 2
fi

features=${FEATURES:-}
(cd "$root" && cargo build --release --quiet -p strata-bench ${features:+--features "$features"})
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
bin=$target_dir/release/strata-bench

# The instruction total of one run: callgrind prints "==PID== Collected : N" on stderr.
instructions() {
    local log
    if ! log=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" --callgrind "$1" "$2" "$3" 2>&1 >/dev/null); then
        echo "$log" >&2
        return 1
    fi
    local n
    n=$(sed -n 's/^==[0-9]*== Collected : \([0-9][0-9]*\)$/\1/p' <<<"$log" | tail -n 1)
    if [[ -z $n ]]; then
        echo "callgrind.sh: no 'Collected :' line in callgrind's output:" >&2
        echo "$log" >&2
        return 1
    fi
    echo "$n"
}

mapfile -t pairs < <("$bin" --list-fixed)
mkdir -p "$out_dir"
csv=$out_dir/callgrind.csv
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$root" status --porcelain 2>/dev/null) ]]; then
    commit=$commit-dirty
fi
{
    echo "# strata-bench callgrind report"
    echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# commit: $commit"
    echo "# features: ${features:-none}"
    echo "# rustc: $(rustc --version 2>/dev/null || echo unknown)"
    echo "# valgrind: $(valgrind --version)"
    echo "# cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "workload,impl,iters_low,iters_high,instructions_low,instructions_high,instructions_per_op"
} >"$csv"

printf '%-40s %-24s %16s\n' workload impl instructions/op
failed=0
done_any=0
for pair in "${pairs[@]}"; do
    [[ -z $filter || $pair == *"$filter"* ]] || continue
    read -r workload impl <<<"$pair"
    done_any=1
    if a=$(instructions "$workload" "$impl" "$low") && b=$(instructions "$workload" "$impl" "$high"); then
        per_op=$(awk -v a="$a" -v b="$b" -v l="$low" -v h="$high" 'BEGIN { printf "%.2f", (b - a) / (h - l) }')
        printf '%-40s %-24s %16s\n' "$workload" "$impl" "$per_op"
        echo "$workload,$impl,$low,$high,$a,$b,$per_op" >>"$csv"
    else
        printf '%-40s %-24s %16s\n' "$workload" "$impl" FAILED
        failed=1
    fi
done
if ((done_any == 0)); then
    echo "callgrind.sh: no fixed path matches '${filter}' (see strata-bench --list-fixed)" >&2
    exit 2
fi
echo "wrote $csv"
exit "$failed"
