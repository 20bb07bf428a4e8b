#!/bin/sh
# SPDX-License-Identifier: MIT
# Smoke run of the benchmark (contrib/bench): the tiny corpus through S1-S7, one round,
# tandem to a Maildir and IMAP-IMAP, and mbsync where it is installed, against a private
# Dovecot. Fails when a sync fails or a target differs from the server after a sync; the
# times are printed and never judged.
#
#   tests/bench/smoke.sh BUILD/src/tandem
set -eu
tandem=${1:?usage: smoke.sh PATH/TO/tandem}
case $tandem in /*) ;; *) tandem=$(pwd)/$tandem ;; esac
[ -x "$tandem" ] || { echo "smoke.sh: $tandem is not executable" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
bench=$here/../../contrib/bench

var=$(mktemp -d "${TMPDIR:-/tmp}/tandem-bench-smoke.XXXXXX")
trap 'rm -rf "$var"' EXIT INT TERM
chmod 755 "$var"

tools=tandem-maildir,tandem-imap
if command -v mbsync >/dev/null 2>&1; then
    tools=$tools,mbsync-maildir,mbsync-imap
fi
# --gap 0: a client may change the Maildir in the same second as the sync before; that
# must not be missed.
BENCH_VAR=$var python3 "$bench/run.py" bench --corpus tiny --rounds 1 --gap 0 \
    --tools "$tools" --require-all --tandem "$tandem" --timeout 30 --out "$var/smoke.jsonl"
