#!/bin/bash
# Installs the dependencies, builds tandem with -Werror and runs every test: the fuzz
# targets over their corpora (then briefly fuzzed), the unit tests, the tests against real
# Dovecot instances they start themselves, the packaging checks and the benchmark's smoke
# run; then builds everything again with AddressSanitizer and UndefinedBehaviorSanitizer
# (build-asan/) and runs the unit and Dovecot tests there.
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/setup-debian.sh
# Line tables only (-g1): full debug info made a quarter of the compile time.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    -DTANDEM_WERROR=ON
cmake --build build -j2
# Each target over its whole corpus, then 10 s of fuzzing (FUZZ_TIME=3600 for a long run).
FUZZ_TIME=${FUZZ_TIME:-10} contrib/fuzz.sh
# The longest tests first, so that the test slots end together (a fresh build directory
# has no timings of its own yet).
seed_test_costs() {
    mkdir -p "$1/Testing/Temporary"
    [ -f "$1/Testing/Temporary/CTestCostData.txt" ] ||
        cp tests/ctest-cost-data.txt "$1/Testing/Temporary/CTestCostData.txt"
}
seed_test_costs build
# Four tests at a time on two cores: the tests mostly wait on Dovecot, on the processes they
# start and on fsync (at -j2 the CPUs were 42% idle; the main build's tests took 129 s at
# -j2 and 95 s at -j4, the sanitized ones 271 s and 187 s).
export TEST_JOBS=${TEST_JOBS:-4}
(cd build && ctest --output-on-failure -j"$TEST_JOBS" --timeout 600)
contrib/sanitize.sh
