#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""contrib/bench/run.py make_room: the trash is emptied between rounds only when the file
system may run out of inodes, and the bench stops with a clear message when even an empty
trash leaves too few."""
import os
import sys
import types
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "contrib", "bench"))
import run  # noqa: E402


class make_room(unittest.TestCase):
    def setUp(self):
        self.free = []  # f_favail before and after emptying
        self.emptied = 0
        self.saved = (run.os.statvfs, run.empty_trash)
        run.os.statvfs = lambda path: types.SimpleNamespace(
            f_files=self.files, f_favail=self.free[min(self.emptied, len(self.free) - 1)])
        run.empty_trash = self.empty
        self.files = 3_000_000

    def tearDown(self):
        run.os.statvfs, run.empty_trash = self.saved

    def empty(self):
        self.emptied += 1

    def test_enough_inodes_leave_the_trash_alone(self):
        self.free = [700_000]
        run.make_room(200_000)
        self.assertEqual(self.emptied, 0)

    def test_few_inodes_empty_the_trash_first(self):
        self.free = [400_000, 2_400_000]
        run.make_room(200_000)
        self.assertEqual(self.emptied, 1)

    def test_too_few_even_then_stop_with_the_numbers(self):
        self.free = [400_000, 500_000]
        with self.assertRaises(SystemExit) as e:
            run.make_room(200_000)
        self.assertIn("500000 free inodes", str(e.exception.code))
        self.assertIn("nr_inodes=", str(e.exception.code))

    def test_a_file_system_without_an_inode_limit_is_not_asked_again(self):
        self.files = 0
        self.free = [0]
        run.make_room(200_000)
        self.assertEqual(self.emptied, 0)


if __name__ == "__main__":
    unittest.main()
