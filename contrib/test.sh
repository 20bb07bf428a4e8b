#!/bin/bash
# Installs the dependencies, builds tandem with -Werror and runs every test
# (unit tests, tests against a real Dovecot, the fuzz targets over their corpora).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON
cmake --build build -j2
cd build
ctest --output-on-failure -j2 --timeout 600
(cd .. && contrib/fuzz.sh)  # the fuzz targets over their corpora, then briefly fuzzed
