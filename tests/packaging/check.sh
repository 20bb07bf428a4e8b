#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks what tandem ships besides the binary: the systemd user units, the man pages, the
# shell completions, and that the man page documents every configuration key.
#
#   tests/packaging/check.sh [TANDEM_BINARY]
#
# With a built tandem binary (ctest passes $<TARGET_FILE:tandem>), it also runs
# `tandem check-config` on the examples of tandem.conf(5) and on contrib/tandem.conf.example.
# Needs systemd (systemd-analyze), groff-base and man-db; zsh is checked when installed
# (contrib/setup-debian.sh installs all four). Prints one line per check and exits 1 if
# any failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
binary=${1:-${TANDEM_BINARY:-}}

failures=0
pass() { printf 'ok    %s\n' "$1"; }
fail() {
    printf 'FAIL  %s\n' "$1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/      /'
    failures=$((failures + 1))
}
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    fail "$1 is not installed (run contrib/setup-debian.sh)"
    return 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-packaging.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

units="tandem.service tandem.timer tandem@.service tandem@.timer tandem-watch.service tandem-watch@.service"
man1="$src/doc/tandem.1"
man5="$src/doc/tandem.conf.5"

# --- Man pages: groff with every warning enabled; any diagnostic fails ---------------------
if need groff; then
    for page in "$man1" "$man5"; do
        name=${page#"$src"/}
        if [ ! -f "$page" ]; then
            fail "$name is missing"
            continue
        fi
        out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1)
        if [ $? -ne 0 ] || [ -n "$out" ]; then
            fail "groff -ww $name" "$out"
        else
            pass "groff -ww $name: no warning"
        fi
    done
fi
# man(1) itself (man-db's preprocessors and its own checks), as a user would read them.
if need man; then
    for page in "$man1" "$man5"; do
        name=${page#"$src"/}
        out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        if [ $? -ne 0 ] || [ -n "$out" ]; then
            fail "man -l $name" "$out"
        else
            pass "man --warnings -l $name: no warning"
        fi
    done
fi

# --- systemd units --------------------------------------------------------------------------
# The units say ExecStart=@bindir@/tandem; CMake replaces @bindir@ when it installs them.
# systemd-analyze verify insists that ExecStart names an executable that exists *now*, so
# verify runs on copies in which @bindir@ is a scratch directory holding `tandem`: the
# built binary when one is given, else a link to /bin/true (verify never runs it; it only
# checks that the path is executable). Documentation=man:... is checked too: MANPATH points
# to a scratch tree with our two pages, so a missing or misnamed page fails.
# --user: these are user units (systemctl --user); a user manager needs XDG_RUNTIME_DIR,
# so it gets a scratch one. No running systemd is needed.
# verify exits 0 on a value it cannot parse (it only warns and ignores the line), so any
# output at all counts as a failure.
if need systemd-analyze && need man; then
    mkdir -p "$work/bin" "$work/units" "$work/run" "$work/man/man1" "$work/man/man5"
    chmod 700 "$work/run"
    if [ -n "$binary" ]; then
        ln -s "$binary" "$work/bin/tandem"
    else
        ln -s /bin/true "$work/bin/tandem"
    fi
    cp "$man1" "$work/man/man1/tandem.1"
    cp "$man5" "$work/man/man5/tandem.conf.5"
    missing=
    for u in $units; do
        if [ -f "$src/systemd/$u" ]; then
            sed "s|@bindir@|$work/bin|g" "$src/systemd/$u" >"$work/units/$u"
        else
            missing="$missing $u"
        fi
    done
    if [ -n "$missing" ]; then
        fail "unit files missing:$missing"
    fi
    left=$(grep -n '@[A-Za-z_]*@' "$work"/units/* | grep -v '^[^:]*:[0-9]*:#')
    if [ -n "$left" ]; then
        fail "unsubstituted placeholders in the units" "$left"
    fi
    # A template cannot be verified alone in every version; verify instances as well, with a
    # channel name containing "-" (passed verbatim by %i).
    (
        cd "$work/units" &&
            ln -s tandem@.service tandem@work-mail.service &&
            ln -s tandem@.timer tandem@work-mail.timer &&
            ln -s tandem-watch@.service tandem-watch@work-mail.service
    )
    for u in $units tandem@work-mail.service tandem@work-mail.timer tandem-watch@work-mail.service; do
        [ -f "$work/units/$u" ] || continue
        out=$(cd "$work/units" && XDG_RUNTIME_DIR="$work/run" MANPATH="$work/man" \
            SYSTEMD_LOG_LEVEL=notice systemd-analyze --user verify "./$u" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] || [ -n "$out" ]; then
            fail "systemd-analyze --user verify $u (exit $rc)" "$out"
        else
            pass "systemd-analyze --user verify $u"
        fi
    done
    # The instance reaches the command line verbatim.
    line=$(grep '^ExecStart=' "$src/systemd/tandem@.service")
    case $line in
        *"/tandem sync %i") pass "tandem@.service passes the channel as %i" ;;
        *) fail "tandem@.service: ExecStart= should end in 'tandem sync %i'" "$line" ;;
    esac
    # Exit status 4 (the guard) must not count as success, and watch must not restart on
    # 2 (configuration) or 4 (guard).
    if grep -q '^SuccessExitStatus=.*\b4\b' "$src"/systemd/*.service; then
        fail "a unit treats exit status 4 (guard) as success"
    else
        pass "no unit treats exit status 4 (guard) as success"
    fi
    for u in tandem-watch.service tandem-watch@.service; do
        if grep -q '^RestartPreventExitStatus=2 4$' "$src/systemd/$u" &&
            grep -q '^Restart=on-failure$' "$src/systemd/$u"; then
            pass "$u restarts on failure, not after exit 2 or 4"
        else
            fail "$u: expected Restart=on-failure and RestartPreventExitStatus=2 4"
        fi
    done
fi

# --- Shell completions ------------------------------------------------------------------------
bash_completion="$src/contrib/completion/tandem.bash"
zsh_completion="$src/contrib/completion/_tandem"
mkdir -p "$work/home/.config/tandem"
cat >"$work/home/.config/tandem/tandem.conf" <<'EOF'
[general]
[store.work]
 [ store.local ]   ; a comment
[channel.backup]
[channel.my-mail+x]
;[channel.commented-out]
EOF
cat >"$work/other.conf" <<'EOF'
[store.alpha]
[channel.beta]
EOF

if out=$(bash -n "$bash_completion" 2>&1); then
    pass "bash -n contrib/completion/tandem.bash"
    # What the completion offers, for some command lines; HOME is a scratch home.
    got=$(HOME="$work/home" XDG_CONFIG_HOME= bash -c '
        . "$1"; shift
        complete_line() {
            COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
            _tandem; printf "%s|" "${COMPREPLY[@]}"; printf "\n"
        }
        complete_line tandem ""
        complete_line tandem sync ""
        complete_line tandem list ""
        complete_line tandem sync --d
        complete_line tandem status --j
        complete_line tandem check-config --c
        complete_line tandem sync -c "$1" ""
        complete_line tandem list --config=$1 ""
        complete_line tandem watch --config = "$1" b
    ' sh "$bash_completion" "$work/other.conf" 2>&1)
    want='sync|list|status|watch|check-config|
backup|my-mail+x|
work|local|
--dry-run|
--json|
--config|--connect|
beta|
alpha|
beta|'
    if [ "$got" = "$want" ]; then
        pass "bash completion: commands, options, channel and store names from -c or the default file"
    else
        fail "bash completion offers the wrong words" "$(printf 'want:\n%s\ngot:\n%s' "$want" "$got")"
    fi
else
    fail "bash -n contrib/completion/tandem.bash" "$out"
fi

if command -v zsh >/dev/null 2>&1; then
    if out=$(zsh -n "$zsh_completion" 2>&1); then
        pass "zsh -n contrib/completion/_tandem"
        # The name readers, with compsys's _describe and _arguments stubbed out.
        got=$(HOME="$work/home" XDG_CONFIG_HOME= zsh -f -c '
            _arguments() { return 1 }
            _describe() { print -r -- "$3:${(j:|:)${(P)4}}" }
            source "$1"
            words=(sync ""); CURRENT=2; _tandem_channels
            words=(list ""); CURRENT=2; _tandem_stores
            words=(sync -c "$2" ""); CURRENT=4; _tandem_channels
            words=(list --config=$2 ""); CURRENT=3; _tandem_stores
        ' zsh "$zsh_completion" "$work/other.conf" 2>&1)
        want='channel:backup|my-mail+x
store:work|local
channel:beta
store:alpha'
        if [ "$got" = "$want" ]; then
            pass "zsh completion: channel and store names from -c or the default file"
        else
            fail "zsh completion reads the wrong names" "$(printf 'want:\n%s\ngot:\n%s' "$want" "$got")"
        fi
    else
        fail "zsh -n contrib/completion/_tandem" "$out"
    fi
else
    printf 'skip  zsh -n contrib/completion/_tandem: zsh is not installed\n'
fi

# --- Every configuration key is documented in tandem.conf(5) ----------------------------------
# The keys: those of the annotated example (also commented-out ones such as ";auth = plain"),
# and those the reader declares in src/config/config.cpp. Each must have its own entry in the
# rendered page: a line "KEY = ..." at the start of a tagged paragraph.
if command -v groff >/dev/null 2>&1; then
    keys=$(
        {
            sed -n 's/^[;#]*[[:space:]]*\([a-z][a-z-]*\)[[:space:]]*=.*/\1/p' "$src/contrib/tandem.conf.example"
            [ -f "$src/src/config/config.cpp" ] &&
                sed -n 's/^[[:space:]]*("\([a-z][a-z-]*\)", po::value.*/\1/p' "$src/src/config/config.cpp"
        } | sort -u
    )
    rendered=$(LC_ALL=C groff -man -Tascii -P-c -P-b -P-o -P-u "$man5" 2>/dev/null)
    undocumented=
    count=0
    for k in $keys; do
        count=$((count + 1))
        printf '%s\n' "$rendered" | grep -q "^       $k = " || undocumented="$undocumented $k"
    done
    if [ "$count" -lt 20 ]; then
        fail "found only $count configuration keys in contrib/tandem.conf.example and src/config/config.cpp"
    elif [ -n "$undocumented" ]; then
        fail "keys without an entry in doc/tandem.conf.5:$undocumented"
    else
        pass "all $count configuration keys have an entry in doc/tandem.conf.5"
    fi
    for section in '\[general\]' 'store\.' 'channel\.'; do
        grep -q "$section" "$man5" || fail "doc/tandem.conf.5 does not describe $section"
    done
fi

# --- With a built binary: the examples of the docs are valid configurations -------------------
if [ -n "$binary" ]; then
    extract_examples() {
        # The .EX/.EE blocks of the EXAMPLES section, one file each, roff escapes undone.
        awk -v dir="$work" '
            /^\.SH EXAMPLES/ { in_examples = 1; next }
            /^\.SH / { in_examples = 0 }
            in_examples && /^\.EX/ { n++; file = dir "/example" n ".conf"; next }
            in_examples && /^\.EE/ { file = ""; next }
            file != "" {
                gsub(/\\-/, "-"); gsub(/\\\(dq/, "\""); gsub(/\\\(aq/, "\047")
                print > file
            }' "$man5"
    }
    extract_examples
    for conf in "$work"/example*.conf "$src/contrib/tandem.conf.example"; do
        [ -f "$conf" ] || continue
        name=$(basename "$conf")
        out=$(HOME="$work/home" XDG_STATE_HOME="$work/state" "$binary" check-config -c "$conf" 2>&1)
        rc=$?
        if [ $rc -eq 0 ]; then
            pass "tandem check-config accepts $name"
        else
            fail "tandem check-config -c $name exits $rc" "$out"
        fi
    done
    [ -f "$work/example3.conf" ] || fail "expected three examples in doc/tandem.conf.5"
fi

if [ "$failures" -ne 0 ]; then
    printf '%d check(s) failed\n' "$failures"
    exit 1
fi
printf 'all packaging checks passed\n'
