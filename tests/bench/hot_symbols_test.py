#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""contrib/bench/hot_symbols.py: the link map's input sections, and an order of the hot list
that keeps each section's functions together, puts the first syncs' own last, and touches
the fewest 64 KB blocks in the short runs."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "contrib", "bench"))
import hot_symbols  # noqa: E402

KB = 1024

# lld's map: output sections unindented, input sections by 8 spaces, symbols by 16.
LINK_MAP = """\
             VMA              LMA     Size Align Out     In      Symbol
             2a8              2a8       1c     1 .interp
             2a8              2a8       1c     1         <internal>:(.interp)
            2000             2000     3000    16 .text
            2000             2000     1000    16         main.cpp.o:(.text._Z1fv)
            2000             2000     1000     1                 f()
            3000             3000     2000    16         liblmdb.a(mdb.o):(.text)
            3000             3000      100     1                 mdb_a
            3100             3100      100     1                 mdb_b::(anonymous namespace):(x)
            5000             5000       10    16 .init
            5000             5000       10     4         crti.o:(.init)
"""


def placed(listing, address_of, sections):
    """Where each section lands when the sections are linked in the order of their first
    listed function (as lld does), as section index -> offset."""
    starts = [s for s, _ in sections]
    at, where = 0, {}
    for name in listing:
        i = max(j for j, s in enumerate(starts) if s <= address_of[name])
        if i not in where:
            where[i] = at
            at += sections[i][1]
    return where


def blocks(run_names, address_of, sections, where):
    starts = [s for s, _ in sections]
    touched = set()
    for name in run_names:
        i = max(j for j, s in enumerate(starts) if s <= address_of[name])
        begin, size = where[i], sections[i][1]
        touched.update(range(begin // hot_symbols.BLOCK, (begin + size - 1) // hot_symbols.BLOCK + 1))
    return len(touched)


class input_sections(unittest.TestCase):
    def test_the_text_sections_and_nothing_else(self):
        with tempfile.NamedTemporaryFile("w", suffix=".map") as f:
            f.write(LINK_MAP)
            f.flush()
            self.assertEqual(hot_symbols.input_sections(f.name), [(0x2000, 0x1000), (0x3000, 0x2000)])


class order(unittest.TestCase):
    # Sections of 40 KB: a, b and c each alone, m1 and m2 sharing one (as LMDB's do), and
    # d, which only the first sync calls.
    sections = [(0x100000, 40 * KB), (0x200000, 40 * KB), (0x300000, 40 * KB),
                (0x400000, 40 * KB), (0x500000, 40 * KB)]
    address_of = {"a": 0x100000, "b": 0x200000, "c": 0x300000, "m1": 0x400000,
                  "m2": 0x400100, "d": 0x500000}
    cmd = "tandem sync -c x.conf"
    # The first sync calls all, in the order a b c; S2 calls a and c, S3 b and m1, S4 m2.
    runs = [(cmd, ["a", "b", "c", "m1", "m2", "d"]), (cmd, ["a", "c"]), (cmd, ["b", "m1"]),
            (cmd, ["m2"])]

    def listing(self):
        return hot_symbols.order(self.runs, self.address_of, self.sections)

    def test_every_function_once_and_the_first_syncs_own_last(self):
        listing = self.listing()
        self.assertEqual(sorted(listing), sorted(self.address_of))
        self.assertEqual(listing[-1], "d")

    def test_a_sections_functions_stay_together(self):
        listing = self.listing()
        self.assertEqual(abs(listing.index("m1") - listing.index("m2")), 1)

    def test_fewer_blocks_than_in_the_order_they_first_ran(self):
        # In the first sync's order, a b c: S2's a and c lie 80 KB apart, on blocks 0 and 1,
        # and b straddles both. With a and c side by side, S2 and S3 touch fewer blocks.
        first_ran = placed(["a", "b", "c", "m1", "m2", "d"], self.address_of, self.sections)
        now = placed(self.listing(), self.address_of, self.sections)
        short = [names for _, names in self.runs[1:]]
        before = sum(blocks(n, self.address_of, self.sections, first_ran) for n in short)
        after = sum(blocks(n, self.address_of, self.sections, now) for n in short)
        self.assertLess(after, before)
        self.assertEqual(blocks(["a", "c"], self.address_of, self.sections, now), 2)
        self.assertEqual(abs(self.listing().index("a") - self.listing().index("c")), 1)

    def test_functions_not_in_the_binary_come_last(self):
        runs = [(self.cmd, ["a", "gone"]), (self.cmd, ["a", "gone"])]
        self.assertEqual(hot_symbols.order(runs, self.address_of, self.sections), ["a", "gone"])


if __name__ == "__main__":
    unittest.main()
