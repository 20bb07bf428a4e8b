#!/usr/bin/env python3
"""Writes cmake/hot-symbols.txt: the functions of tandem that the benchmark's runs call.

The build links them first and together (cmake/tandem.cmake, tandem_hot_functions_first),
so that a short run maps little of tandem's code. This runs the benchmark once, every
tandem run under callgrind, and lists the functions of tandem's binary that ran (see
order() for the order).

    contrib/bench/hot_symbols.py --tandem build/src/tandem

Reads the build's link map (build/src/tandem.map, written beside the binary when it is
linked with lld). Needs valgrind and what the benchmark needs (Dovecot; run.py's corpus is made on first
use). Run it again when the code a sync runs has changed much: a function missing from
the list is only placed among those that do not run."""
import argparse
import bisect
import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

WRAPPER = """#!/bin/sh
exec valgrind -q --tool=callgrind --demangle=no --compress-strings=no --dump-instr=no \\
    --callgrind-out-file="$TANDEM_PROFILE_DIR/callgrind.$$.%p" "$TANDEM_PROFILED" "$@"
"""


def read_run(path, binary, name_at):
    """A callgrind output: the command line, and the mangled names of the functions of
    `binary` that ran, in the order they first did. Callgrind names a function that the
    symbol table gives no size (crtbegin's, _start) by its address: `name_at` names it."""
    names, seen, obj, cmd = [], set(), None, ""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("cmd:"):
                cmd = line[4:].strip()
            elif line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("fn=") and obj == binary:
                name = re.sub(r"'\d+$", "", line[3:].strip())  # 'N: a recursion's depth
                if name.startswith("0x"):
                    name = name_at.get(int(name, 16))
                if name and name not in seen:
                    seen.add(name)
                    names.append(name)
    return cmd, names


def text_symbols(binary):
    """The address of each function of `binary` by mangled name (nm), and the names by
    address."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True)
    address_of, name_at = {}, {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            address = int(parts[0], 16)
            address_of.setdefault(parts[2], address)
            name_at.setdefault(address, parts[2])
    return address_of, name_at


def input_sections(link_map):
    """The input sections of the binary's .text, as (address, size), from lld's link map:
    lld moves a section whole, and an archive built without -ffunction-sections (LMDB,
    Boost.ProgramOptions) has many functions in one."""
    sections, output = [], None
    line_format = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (.*)$")
    with open(link_map) as f:
        for line in f:
            m = line_format.match(line)
            if not m:
                continue
            rest = m.group(3)
            indent = len(rest) - len(rest.lstrip())
            if indent == 0:
                output = rest.strip()
            elif indent == 8 and output == ".text":
                sections.append((int(m.group(1), 16), int(m.group(2), 16)))
    return sorted(sections)


BLOCK = 65536  # the kernel's fault-around: a fault maps the cached pages of its 64 KB


def blocks_touched(groups):
    """The number of 64 KB blocks that each run touches when `groups` ((runs, bytes, units))
    lie one after the other, summed over the runs; and by run."""
    touched, at = {}, 0
    for members, size, _ in groups:
        if size:
            span = range(at // BLOCK, (at + size - 1) // BLOCK + 1)
            for run in members:
                touched.setdefault(run, set()).update(span)
        at += size
    return sum(len(t) for t in touched.values()), {r: len(t) for r, t in touched.items()}


def improve(groups):
    """Moves one group at a time to where the sum of blocks drops most, until none does."""
    best = blocks_touched(groups)[0]
    improved = True
    while improved:
        improved = False
        for i in range(len(groups)):
            group = groups.pop(i)
            where = i
            for j in range(len(groups) + 1):
                if j != i:
                    groups.insert(j, group)
                    cost = blocks_touched(groups)[0]
                    groups.pop(j)
                    if cost < best:
                        best, where, improved = cost, j, True
            groups.insert(where, group)
    return groups, best


def order(runs, address_of, sections):
    """The functions of `runs` ((command line, names) in the order they ran), for one list
    that keeps together what a short run calls.

    The runs of one configuration are its scenarios in order, the first sync (S1) first.
    A run maps the 64 KB around each page of code that it runs, so what counts is how many
    64 KB blocks each run touches. lld places input sections, not functions: each section
    that a run calls into goes whole. The sections go in groups called by the same runs
    (first syncs left out: they map far more than their code anyway), ordered so that the
    short runs touch few blocks: a Gray-code order of which runs call a group (then the
    groups of each of the first runs in that order lie together), improved by moving one
    group at a time while the sum over the runs drops; from several orders of the runs,
    the best. A section's functions keep the order they first ran in; the sections that
    only a first sync calls come last, by when they first ran."""
    first_seen, callers, first_syncs, step_of, steps = {}, {}, set(), {}, []
    for index, (cmd, names) in enumerate(runs):
        step = step_of[cmd] = step_of.get(cmd, -1) + 1
        steps.append(step)
        if step == 0:
            first_syncs.add(index)
        for name in names:
            first_seen.setdefault(name, len(first_seen))
            callers.setdefault(name, set()).add(index)
    starts = [start for start, _ in sections]
    unit_callers, unit_first, unit_names, unplaced = {}, {}, {}, []
    for name in sorted(first_seen, key=first_seen.get):
        address = address_of.get(name)
        i = bisect.bisect_right(starts, address) - 1 if address is not None else -1
        if i < 0 or address >= starts[i] + max(sections[i][1], 1):
            unplaced.append(name)  # not in this binary's .text
            continue
        unit_callers.setdefault(i, set()).update(callers[name])
        unit_first.setdefault(i, first_seen[name])
        unit_names.setdefault(i, []).append(name)
    short = [r for r in range(len(runs)) if r not in first_syncs]
    hot = [u for u in unit_callers if unit_callers[u] - first_syncs]

    def gray_groups(run_order):
        def rank(unit):  # the position of its callers' vector in a reflected Gray code
            value = bit = 0
            for run in run_order:
                bit ^= run in unit_callers[unit]
                value = value * 2 + bit
            return -value
        groups, index = [], {}
        for unit in sorted(hot, key=lambda u: (rank(u), unit_first[u])):
            members = frozenset(unit_callers[unit] - first_syncs)
            if members not in index:
                index[members] = len(groups)
                groups.append((members, [0], []))
            group = groups[index[members]]
            group[1][0] += (sections[unit][1] + 15) & ~15  # sections are 16-byte aligned
            group[2].append(unit)
        return [(members, size[0], units) for members, size, units in groups]

    run_orders = [sorted(short, key=lambda r: (steps[r], r)),
                  sorted(short, key=lambda r: (steps[r] != 1, -steps[r], r)),
                  sorted(short, key=lambda r: (len(runs[r][1]), r))]
    shuffled = random.Random(1)
    for _ in range(12):
        run_order = short[:]
        shuffled.shuffle(run_order)
        run_orders.append(sorted(run_order, key=lambda r: steps[r] != 1))  # S2 runs first
    best = None
    for run_order in run_orders:
        groups, cost = improve(gray_groups(run_order))
        if best is None or cost < best[1]:
            best = (groups, cost)
    groups, cost = best
    by_run = blocks_touched(groups)[1]
    print("%d groups of %d sections; 64 KB blocks each short run touches: %s (sum %d)"
          % (len(groups), len(hot), " ".join(str(by_run[r]) for r in short), cost))
    listed = [name for _, _, units in groups for unit in units for name in unit_names[unit]]
    cold = sorted((u for u in unit_callers if u not in hot), key=unit_first.get)
    listed += [name for unit in cold for name in unit_names[unit]]
    return listed + unplaced


def profile(args, binary, name_at):
    """Runs the benchmark once with every tandem run under callgrind: its runs, in order."""
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
            cmd, names = read_run(p, binary, name_at)
            run = os.path.basename(p).split(".")[1]
            if run not in run_of:
                run_of[run] = len(runs)
                runs.append((cmd, []))
            known = runs[run_of[run]][1]
            known.extend(n for n in names if n not in known)
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tandem", required=True, help="the tandem binary to profile")
    ap.add_argument("--corpus", default="c5000")
    ap.add_argument("--scenarios", default="S1,S2,S3,S4,S5,S6,S7")
    ap.add_argument("--tools", default="tandem-imap,tandem-maildir,tandem-maildir-tls")
    ap.add_argument("--out", default=os.path.join(REPO, "cmake", "hot-symbols.txt"))
    ap.add_argument("--save-runs", help="also write each run's functions here (JSON)")
    ap.add_argument("--map", help="lld's link map of the binary (default: the binary's name "
                                  "and .map, which the build writes)")
    ap.add_argument("--runs", help="order the runs that --save-runs wrote, without profiling "
                                   "(--tandem then only gives the functions' sizes)")
    args = ap.parse_args()
    binary = os.path.realpath(args.tandem)
    link_map = args.map or binary + ".map"
    if not os.path.exists(link_map):  # before the profiling's 7 minutes
        raise SystemExit("%s: no link map; the build writes it beside the binary when it links "
                         "with lld (cmake/tandem.cmake), or give one with --map" % link_map)
    address_of, name_at = text_symbols(binary)
    if args.runs:
        with open(args.runs) as f:
            runs = json.load(f)
    else:
        runs = profile(args, binary, name_at)
    runs = [(cmd, names) for cmd, names in runs if names and " sync " in cmd]
    if not runs:
        raise SystemExit("no callgrind output names a function of %s" % binary)
    if args.save_runs:
        with open(args.save_runs, "w") as f:
            json.dump(runs, f)
    names = order(runs, address_of, input_sections(link_map))
    with open(args.out, "w") as f:
        f.write("# tandem's functions that the benchmark's runs call, those of short runs first\n")
        f.write("# Written by contrib/bench/hot_symbols.py (%d runs: %s on %s, %s).\n" % (
            len(runs), args.scenarios, args.corpus, args.tools))
        for name in names:
            f.write(name + "\n")
    print("%s: %d functions from %d runs" % (args.out, len(names), len(runs)))


if __name__ == "__main__":
    main()
