#!/bin/bash
# Builds every libFuzzer target tests/fuzz/fuzz_<name>.cpp with clang++ (ASan + UBSan) into
# build-fuzz/, runs it over its seed corpus tests/fuzz/corpus/<name>/ (an empty one if that
# directory is missing), then fuzzes it for FUZZ_TIME seconds (default 20), JOBS targets at a time. Fails on the first
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
JOBS=${JOBS:-$(nproc)}     # compilers, and targets fuzzed, at a time
parallel=$JOBS
[ -n "$FUZZ_JOBS" ] && parallel=1  # -fork already uses the cores
CXX=${FUZZ_CXX:-clang++}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CXXFLAGS="-std=c++20 -g -O1 $SAN -Iinclude -DBOOST_ALLOW_DEPRECATED_HEADERS"
LIBS="-lboost_program_options -lboost_json -pthread"
mkdir -p "$OUT/obj" "$OUT/artifacts"

# Newest header anywhere: an object older than it is rebuilt (no dependency tracking here).
newest_header=$(find include src -name '*.hpp' -printf '%T@\n' | sort -n | tail -1)

# object SRC: the object file for a source.
object() { echo "$OUT/obj/$(echo "${1%.cpp}" | tr '/' '_').o"; }

# compile SRC: rebuilds its object when stale.
compile() {
    local src=$1 obj stamp=0
    obj=$(object "$src")
    [ -f "$obj" ] && stamp=$(stat -c %Y "$obj")
    if [ ! -f "$obj" ] || [ "$(stat -c %Y "$src")" -ge "$stamp" ] ||
        [ "${newest_header%.*}" -ge "$stamp" ]; then
        echo "  CXX $src" >&2
        # shellcheck disable=SC2086
        "$CXX" $CXXFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
}
export -f compile object
export OUT CXX CXXFLAGS newest_header

if [ $# -gt 0 ]; then
    targets=()
    for name in "$@"; do targets+=("tests/fuzz/fuzz_$name.cpp"); done
else
    targets=(tests/fuzz/fuzz_*.cpp)
fi

# The pure layers every target may use; a target named after a layer gets that layer too
# (fuzz_config.cpp -> src/config/*.cpp).
common=()
for src in src/imap/*.cpp src/mail/*.cpp src/util/*.cpp; do [ -f "$src" ] && common+=("$src"); done
layer_sources() {
    local name=$1
    if [ -d "src/$name" ] && [[ ! " imap mail util " =~ " $name " ]]; then
        ls src/"$name"/*.cpp
    fi
}
all=("${common[@]}")
for target in "${targets[@]}"; do
    [ -f "$target" ] || { echo "no such target: $target" >&2; exit 1; }
    name=$(basename "$target" .cpp)
    name=${name#fuzz_}
    mapfile -t more < <(layer_sources "$name")
    all+=("${more[@]}")
done
# Every object once, JOBS compilers at a time.
printf '%s\n' "${all[@]}" | sort -u | xargs -P "$JOBS" -I{} bash -c 'compile "$1"' _ {}

# fuzz_one NAME: links the target, runs it over its seed corpus, then fuzzes it.
fuzz_one() {
    local name=$1 target=tests/fuzz/fuzz_$1.cpp objs=() src
    for src in "${common[@]}" $(layer_sources "$name"); do objs+=("$(object "$src")"); done
    echo "== fuzz_$name: build" >&2
    # shellcheck disable=SC2086
    "$CXX" $CXXFLAGS -fsanitize=fuzzer "$target" "${objs[@]}" $LIBS -o "$OUT/fuzz_$name"

    local corpus=$ROOT/tests/fuzz/corpus/$name work seeds=()
    work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-fuzz-$name.XXXXXX")
    if [ -d "$corpus" ]; then
        seeds=("$corpus")
    else
        echo "== fuzz_$name: no corpus at tests/fuzz/corpus/$name, starting empty" >&2
    fi
    local opts=(-artifact_prefix="$OUT/artifacts/$name-" -timeout=10 -rss_limit_mb=2048
                -print_final_stats=0)
    if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ]; then
        echo "== fuzz_$name: seed corpus" >&2
        "$OUT/fuzz_$name" "${opts[@]}" -runs=0 "$corpus" || { rm -rf "$work"; return 1; }
    fi
    echo "== fuzz_$name: ${FUZZ_TIME}s of fuzzing" >&2
    # New inputs go to the temporary directory, never into the checked-in corpus.
    local fork=()
    [ -n "$FUZZ_JOBS" ] && fork=(-fork="$FUZZ_JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    touch "$OUT/.start-$name"
    "$OUT/fuzz_$name" "${opts[@]}" "${fork[@]}" -max_total_time="$FUZZ_TIME" "$work" "${seeds[@]}" ||
        { rm -rf "$work"; return 1; }
    rm -rf "$work"
    # With FUZZ_JOBS the run carries on past a crash: fail at the end if it found any.
    local found
    found=$(find "$OUT/artifacts" -name "$name-*" -newer "$OUT/.start-$name")
    if [ -n "$found" ]; then
        echo "== fuzz_$name: reproducers:" >&2
        echo "$found" >&2
        return 1
    fi
}

# The targets JOBS at a time (each libFuzzer process uses one core unless FUZZ_JOBS is set);
# each one's output is printed when it ends.
failed=0
pids=() names=()
finish() {  # waits for the oldest running target
    local pid=${pids[0]} name=${names[0]}
    pids=("${pids[@]:1}") names=("${names[@]:1}")
    if ! wait "$pid"; then
        failed=1
        echo "== fuzz_$name: FAILED" >&2
    fi
    cat "$OUT/fuzz_$name.log" >&2
}
for target in "${targets[@]}"; do
    name=$(basename "$target" .cpp)
    name=${name#fuzz_}
    [ "${#pids[@]}" -ge "$parallel" ] && finish
    fuzz_one "$name" > "$OUT/fuzz_$name.log" 2>&1 &
    pids+=($!) names+=("$name")
done
while [ "${#pids[@]}" -gt 0 ]; do finish; done
[ "$failed" = 0 ] || { echo "== fuzz: a target failed (reproducers in $OUT/artifacts/)" >&2; exit 1; }
echo "== fuzz: all targets passed" >&2
