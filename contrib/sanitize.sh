#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds tandem and every test with AddressSanitizer and UndefinedBehaviorSanitizer in a
# second build directory (build-asan/, -DTANDEM_SANITIZE=ON), then runs the unit tests and
# the tests against real Dovecot there. Any sanitizer report fails the run: the test
# programs abort on it, and the tandem binary that the Dovecot tests drive exits non-zero,
# which the tests check.
#
#   contrib/sanitize.sh               # everything
#   contrib/sanitize.sh -L unit       # only the unit tests (any ctest selection works)
#   BUILD=/tmp/asan JOBS=4 TEST_JOBS=8 contrib/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-asan}
jobs=${JOBS:-2}             # compilers at a time
test_jobs=${TEST_JOBS:-4}   # tests at a time: they mostly wait (see contrib/test.sh)

# Warnings are the -Werror build's business: with the sanitizers' instrumentation GCC 12
# reports false "may be used uninitialized" in <regex> and <functional>. -O1 with line
# tables only: the usual sanitizer setting (stack traces with lines), and a shorter build.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1 -g1" -DTANDEM_WERROR=OFF \
    -DTANDEM_SANITIZE=ON
cmake --build "$build" -j"$jobs"

# Leaks count as errors; a report stops the process at once with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The longest tests first (timings from an earlier run; see contrib/test.sh).
mkdir -p "$build/Testing/Temporary"
[ -f "$build/Testing/Temporary/CTestCostData.txt" ] ||
    cp tests/ctest-cost-data.txt "$build/Testing/Temporary/CTestCostData.txt"
cd "$build"
if [ $# -gt 0 ]; then
    ctest --output-on-failure -j"$test_jobs" --timeout 1200 "$@"
else
    # The benchmark's smoke run checks the benchmark, not tandem's memory: left to the
    # main build.
    ctest --output-on-failure -j"$test_jobs" --timeout 1200 -L 'unit|dovecot' -E '^bench_smoke$'
fi
