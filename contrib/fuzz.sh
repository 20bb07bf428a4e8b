#!/bin/bash
# Builds every libFuzzer target tests/fuzz/fuzz_<name>.cpp with clang++ (ASan + UBSan) into
# build-fuzz/, runs it over its seed corpus tests/fuzz/corpus/<name>/ (an empty one if that
# directory is missing), then fuzzes it for FUZZ_TIME seconds (default 20). Fails on the first
# crash, leak, timeout or sanitizer report; the reproducer lands in build-fuzz/artifacts/.
#
#   contrib/fuzz.sh                 # all targets
#   contrib/fuzz.sh parser utf7     # some of them
#   FUZZ_TIME=300 contrib/fuzz.sh parser
#   FUZZ_TIME=3600 FUZZ_JOBS=2 contrib/fuzz.sh parser maildir   # a long run on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build-fuzz
FUZZ_TIME=${FUZZ_TIME:-20}
FUZZ_JOBS=${FUZZ_JOBS:-}  # libFuzzer -fork=N: N workers, carrying on past crashes
CXX=${FUZZ_CXX:-clang++}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CXXFLAGS="-std=c++20 -g -O1 $SAN -Iinclude -DBOOST_ALLOW_DEPRECATED_HEADERS"
LIBS="-lboost_program_options -lboost_json -pthread"
mkdir -p "$OUT/obj" "$OUT/artifacts"

# Newest header anywhere: an object older than it is rebuilt (no dependency tracking here).
newest_header=$(find include src -name '*.hpp' -printf '%T@\n' | sort -n | tail -1)

# compile SRC: prints the object file, rebuilt when stale.
compile() {
    local src=$1 obj
    obj=$OUT/obj/$(echo "${src%.cpp}" | tr '/' '_').o
    local stamp=0
    [ -f "$obj" ] && stamp=$(stat -c %Y "$obj")
    if [ ! -f "$obj" ] || [ "$(stat -c %Y "$src")" -ge "$stamp" ] ||
        [ "${newest_header%.*}" -ge "$stamp" ]; then
        echo "  CXX $src" >&2
        # shellcheck disable=SC2086
        "$CXX" $CXXFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    echo "$obj"
}

# The pure layers every target may use; a target named after a layer gets that layer too
# (fuzz_config.cpp -> src/config/*.cpp).
common=()
for src in src/imap/*.cpp src/mail/*.cpp src/util/*.cpp; do
    [ -f "$src" ] && common+=("$(compile "$src")")
done

if [ $# -gt 0 ]; then
    targets=()
    for name in "$@"; do targets+=("tests/fuzz/fuzz_$name.cpp"); done
else
    targets=(tests/fuzz/fuzz_*.cpp)
fi

for target in "${targets[@]}"; do
    [ -f "$target" ] || { echo "no such target: $target" >&2; exit 1; }
    name=$(basename "$target" .cpp)
    name=${name#fuzz_}
    objs=("${common[@]}")
    if [ -d "src/$name" ] && [[ ! " imap mail util " =~ " $name " ]]; then
        for src in src/"$name"/*.cpp; do objs+=("$(compile "$src")"); done
    fi
    echo "== fuzz_$name: build" >&2
    # shellcheck disable=SC2086
    "$CXX" $CXXFLAGS -fsanitize=fuzzer "$target" "${objs[@]}" $LIBS -o "$OUT/fuzz_$name"

    corpus=$ROOT/tests/fuzz/corpus/$name
    work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-fuzz-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    seeds=()
    if [ -d "$corpus" ]; then
        seeds=("$corpus")
    else
        echo "== fuzz_$name: no corpus at tests/fuzz/corpus/$name, starting empty" >&2
    fi
    opts=(-artifact_prefix="$OUT/artifacts/$name-" -timeout=10 -rss_limit_mb=2048
          -print_final_stats=0)
    if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ]; then
        echo "== fuzz_$name: seed corpus" >&2
        "$OUT/fuzz_$name" "${opts[@]}" -runs=0 "$corpus"
    fi
    echo "== fuzz_$name: ${FUZZ_TIME}s of fuzzing" >&2
    # New inputs go to the temporary directory, never into the checked-in corpus.
    fork=()
    [ -n "$FUZZ_JOBS" ] && fork=(-fork="$FUZZ_JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    touch "$OUT/.start-$name"
    "$OUT/fuzz_$name" "${opts[@]}" "${fork[@]}" -max_total_time="$FUZZ_TIME" "$work" "${seeds[@]}"
    # With FUZZ_JOBS the run carries on past a crash: fail at the end if it found any.
    found=$(find "$OUT/artifacts" -name "$name-*" -newer "$OUT/.start-$name")
    if [ -n "$found" ]; then
        echo "== fuzz_$name: reproducers:" >&2
        echo "$found" >&2
        exit 1
    fi
    rm -rf "$work"
    trap - EXIT
done
echo "== fuzz: all targets passed" >&2
