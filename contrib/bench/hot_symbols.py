#!/usr/bin/env python3
"""Writes cmake/hot-symbols.txt: the functions of tandem that the benchmark's runs call.

The build links them first and together (cmake/tandem.cmake, tandem_hot_functions_first),
so that a short run maps little of tandem's code. This runs the benchmark once, every
tandem run under callgrind, and lists the functions of tandem's binary that ran (see
order() for the order).

    contrib/bench/hot_symbols.py --tandem build/src/tandem

Needs valgrind and what the benchmark needs (Dovecot; run.py's corpus is made on first
use). Run it again when the code a sync runs has changed much: a function missing from
the list is only placed among those that do not run."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

WRAPPER = """#!/bin/sh
exec valgrind -q --tool=callgrind --demangle=no --compress-strings=no --dump-instr=no \\
    --callgrind-out-file="$TANDEM_PROFILE_DIR/callgrind.$$.%p" "$TANDEM_PROFILED" "$@"
"""


def read_run(path, binary):
    """A callgrind output: the command line, and the mangled names of the functions of
    `binary` that ran, in the order they first did."""
    names, seen, obj, cmd = [], set(), None, ""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("cmd:"):
                cmd = line[4:].strip()
            elif line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("fn=") and obj == binary:
                name = line[3:].strip()
                if not name.startswith("0x") and name not in seen:
                    seen.add(name)
                    names.append(name)
    return cmd, names


def order(runs):
    """The functions of `runs` ((command line, names) in the order they ran), for one list
    that keeps together what a short run calls.

    The runs of one configuration are its scenarios in order, the first sync (S1) first.
    A function goes with the earliest scenario after S1 that calls it (S2 first: the run
    that changes nothing, the most frequent); within one, those that more configurations
    call then first, grouped by those configurations: a run touches a few dense stretches.
    Functions that only a first sync calls come last."""
    first_seen, earliest, total = {}, {}, {}
    step_of = {}
    for cmd, names in runs:
        step = step_of[cmd] = step_of.get(cmd, -1) + 1
        for name in names:
            first_seen.setdefault(name, len(first_seen))
            total[name] = total.get(name, 0) + 1
            if step == 0:
                continue
            at = earliest.setdefault(name, (step, set()))
            if step < at[0]:
                earliest[name] = at = (step, set())
            if step == at[0]:
                at[1].add(cmd)

    def key(name):
        if name not in earliest:
            return (1, 0, 0, (), -total[name], first_seen[name])
        step, configs = earliest[name]
        return (0, step, -len(configs), tuple(sorted(configs)), 0, first_seen[name])

    return sorted(first_seen, key=key)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tandem", required=True, help="the tandem binary to profile")
    ap.add_argument("--corpus", default="c5000")
    ap.add_argument("--scenarios", default="S1,S2,S3,S4,S5,S6,S7")
    ap.add_argument("--tools", default="tandem-imap,tandem-maildir,tandem-maildir-tls")
    ap.add_argument("--out", default=os.path.join(REPO, "cmake", "hot-symbols.txt"))
    ap.add_argument("--save-runs", help="also write each run's functions here (JSON)")
    args = ap.parse_args()
    binary = os.path.realpath(args.tandem)
    with tempfile.TemporaryDirectory(prefix="tandem-hot-") as tmp:
        wrapper = os.path.join(tmp, "tandem")
        with open(wrapper, "w") as f:
            f.write(WRAPPER)
        os.chmod(wrapper, 0o755)
        env = dict(os.environ, TANDEM_PROFILE_DIR=tmp, TANDEM_PROFILED=binary)
        subprocess.run([sys.executable, os.path.join(HERE, "run.py"), "bench", "--corpus",
                        args.corpus, "--rounds", "1", "--scenarios", args.scenarios,
                        "--tools", args.tools, "--tandem", wrapper, "--require-all",
                        "--out", os.path.join(tmp, "records.jsonl")], env=env, check=True)
        # Each callgrind output is written as its run ends, and the runs come one by one.
        # A run on several threads may leave more than one output, each with the whole
        # run's counts, under another pid (seen with valgrind 3.19): the wrapper's pid ($$,
        # the run's) groups them, else the extra ones would count as the next scenarios.
        outputs = sorted((os.path.join(tmp, p) for p in os.listdir(tmp)
                          if p.startswith("callgrind.")), key=os.path.getmtime)
        runs, run_of = [], {}
        for p in outputs:
            cmd, names = read_run(p, binary)
            run = os.path.basename(p).split(".")[1]
            if run not in run_of:
                run_of[run] = len(runs)
                runs.append((cmd, []))
            known = runs[run_of[run]][1]
            known.extend(n for n in names if n not in known)
    runs = [(cmd, names) for cmd, names in runs if names and " sync " in cmd]
    if not runs:
        raise SystemExit("no callgrind output names a function of %s" % binary)
    if args.save_runs:
        with open(args.save_runs, "w") as f:
            json.dump(runs, f)
    names = order(runs)
    with open(args.out, "w") as f:
        f.write("# tandem's functions that the benchmark's runs call, those of short runs first\n")
        f.write("# Written by contrib/bench/hot_symbols.py (%d runs: %s on %s, %s).\n" % (
            len(runs), args.scenarios, args.corpus, args.tools))
        for name in names:
            f.write(name + "\n")
    print("%s: %d functions from %d runs" % (args.out, len(names), len(runs)))


if __name__ == "__main__":
    main()
