#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A long run of the randomized convergence test (tests/dovecot/convergence): runs of
# ROUNDS rounds each, seeds SEED, SEED+1, ..., both modes in turn, until MINUTES have
# passed; then the totals. Every failure is kept with its report (seed, operations, the
# shortest sequence found) in the log directory.
#
#   contrib/soak.sh [--minutes 30] [--rounds 100] [--seed 1] [--build build]
#                   [--log-dir soak-logs] [--mode both|imap-maildir|imap-imap]
#                   [--shrink-seconds 300]
#
# Exit status: 0 when every run passed, 1 when some failed, 2 on a usage error.
set -u

minutes=30
rounds=100
seed=1
build=build
log_dir=soak-logs
mode=both
shrink=300
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --log-dir) log_dir=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --shrink-seconds) shrink=$2; shift 2 ;;
        -h|--help) sed -n '3,12p' "$0"; exit 0 ;;
        *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build=$here/$build ;; esac
bin=$build/tests/dovecot_convergence
if [ ! -x "$bin" ]; then
    echo "soak.sh: $bin is missing: cmake --build $build --target dovecot_convergence" >&2
    exit 2
fi
mkdir -p "$log_dir"
summary=$log_dir/summary.txt
: > "$summary"

case "$mode" in
    both) modes=(imap-maildir imap-imap) ;;
    imap-maildir|imap-imap) modes=("$mode") ;;
    *) echo "soak.sh: --mode both, imap-maildir or imap-imap" >&2; exit 2 ;;
esac

end=$(( $(date +%s) + minutes * 60 ))
runs=0 failed=0 total_rounds=0 total_ops=0 total_syncs=0 total_kills=0 total_cuts=0
total_mid=0 total_checks=0
failures=""
started=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
    for m in "${modes[@]}"; do
        log=$log_dir/run-$m-$seed.log
        "$bin" --mode "$m" --seed "$seed" --rounds "$rounds" --shrink-seconds "$shrink" \
            > "$log" 2>&1
        status=$?
        line=$(grep '^convergence: ' "$log" | tail -n 1)
        echo "${line:-convergence: mode=$m seed=$seed result=CRASH (exit $status)}" | tee -a "$summary"
        runs=$((runs + 1))
        get() {
            local v
            v=$(echo "$line" | sed -n "s/.* $1=\([0-9]*\).*/\1/p")
            echo "${v:-0}"
        }
        total_rounds=$((total_rounds + $(get rounds)))
        total_ops=$((total_ops + $(get ops)))
        total_syncs=$((total_syncs + $(get syncs)))
        total_kills=$((total_kills + $(get kills)))
        total_cuts=$((total_cuts + $(get cuts)))
        total_mid=$((total_mid + $(get cuts_mid_session)))
        total_checks=$((total_checks + $(get checks)))
        if [ $status -ne 0 ] || ! echo "$line" | grep -q 'result=ok'; then
            failed=$((failed + 1))
            failures="$failures $m:$seed"
        else
            rm -f "$log"
        fi
        [ "$(date +%s)" -lt "$end" ] || break
    done
    seed=$((seed + 1))
done
elapsed=$(( $(date +%s) - started ))
{
    echo
    echo "soak: $runs runs in $((elapsed / 60)) min $((elapsed % 60)) s; rounds=$total_rounds" \
         "operations=$total_ops syncs=$total_syncs kills=$total_kills" \
         "cuts=$total_cuts (mid-session $total_mid) checks=$total_checks failed=$failed"
    # Operations by kind, over every run.
    sed -n 's/.* kinds=\([^ ]*\).*/\1/p' "$summary" | tr ',' '\n' | awk -F: \
        'NF == 2 { n[$1] += $2 } END { printf "operations by kind:"; for (k in n) printf " %s=%d", k, n[k]; print "" }'
    [ -n "$failures" ] && echo "failed runs (mode:seed), reports in $log_dir:$failures"
} | tee -a "$summary"
[ "$failed" -eq 0 ]
