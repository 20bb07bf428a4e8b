#!/usr/bin/env python3
"""Checks that the tandem binary was linked with its hot functions first and together
(cmake/tandem.cmake, tandem_hot_functions_first): the functions that cmake/hot-symbols.txt
lists lie in its order, packed at the start of the code.

    tests/packaging/link_order.py TANDEM_BINARY cmake/hot-symbols.txt"""
import re
import subprocess
import sys


def main():
    binary, listing = sys.argv[1], sys.argv[2]
    symbols = {}
    nm = subprocess.run(["nm", "-S", binary], capture_output=True, text=True, check=True)
    for line in nm.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            symbols.setdefault(parts[3], (int(parts[0], 16), int(parts[1], 16)))
    with open(listing) as f:
        names = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    found = [symbols[n] for n in names if n in symbols]
    failures = []
    if len(found) < len(names) * 9 // 10:
        failures.append("only %d of the %d listed functions are in the binary: "
                        "cmake/hot-symbols.txt is stale (contrib/bench/hot_symbols.py)"
                        % (len(found), len(names)))
    # lld orders sections: the functions of an archive built without -ffunction-sections
    # (LMDB, parts of Boost) move with the first of their object file that is listed (5%).
    out_of_order = sum(1 for a, b in zip(found, found[1:]) if b[0] < a[0])
    if out_of_order > len(found) // 10:
        failures.append("%d of %d listed functions come before the one listed ahead of them"
                        % (out_of_order, len(found)))
    addresses = sorted(set(found))
    size = sum(s for _, s in addresses)
    span = addresses[-1][0] + addresses[-1][1] - addresses[0][0] if addresses else 0
    if span > size * 5 // 4 + 65536:
        failures.append("the listed functions (%d bytes) are spread over %d bytes" % (size, span))
    # lld 16 packs the relative relocations (cmake/tandem.cmake): 1 KB instead of 123 KB
    # read at every start.
    comment = subprocess.run(["readelf", "-p", ".comment", binary], capture_output=True,
                             text=True).stdout
    lld = re.search(r"LLD (\d+)", comment)
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                              check=True).stdout
    if lld and int(lld.group(1)) >= 16 and ".relr.dyn" not in sections:
        failures.append("linked with lld %s but its relative relocations are not packed "
                        "(-z pack-relative-relocs)" % lld.group(1))
    for f in failures:
        print("FAIL  " + f)
    if failures:
        print("      (linked without lld? install lld, or configure with -DTANDEM_HOT_ORDER=OFF)")
        return 1
    print("ok    %d listed functions, %d bytes, in order within %d bytes" % (len(found), size, span))
    return 0


if __name__ == "__main__":
    sys.exit(main())
