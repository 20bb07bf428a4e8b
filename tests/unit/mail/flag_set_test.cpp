// SPDX-License-Identifier: MIT
#include "tandem/mail/types.hpp"

#include <gtest/gtest.h>

using tandem::mail::flag_set;
using tandem::mail::system_flag;

TEST(flag_set, parses_imap_atoms_case_insensitively_and_drops_recent) {
    flag_set f;
    for (auto a : {"\\SEEN", "\\flagged", "\\Recent", "$Forwarded", "NotJunk", "\\*"}) f.add_imap(a);
    EXPECT_TRUE(f.has(system_flag::seen));
    EXPECT_TRUE(f.has(system_flag::flagged));
    EXPECT_FALSE(f.has(system_flag::answered));
    EXPECT_EQ(f.to_imap(), "\\Seen \\Flagged $Forwarded NotJunk");
}

TEST(flag_set, keywords_stay_sorted_and_unique) {
    flag_set f;
    f.add_keyword("b");
    f.add_keyword("a");
    f.add_keyword("b");
    ASSERT_EQ(f.keywords().size(), 2u);
    EXPECT_EQ(f.keywords()[0], "a");
    f.remove_keyword("a");
    EXPECT_FALSE(f.has_keyword("a"));
    EXPECT_TRUE(f.has_keyword("b"));
}

TEST(flag_set, minus_and_union) {
    flag_set a, b;
    a.add_imap("\\Seen");
    a.add_imap("k1");
    b.add_imap("\\Seen");
    b.add_imap("\\Draft");
    b.add_imap("k2");
    auto d = a.minus(b);
    EXPECT_EQ(d.to_imap(), "k1");
    EXPECT_EQ(a.united(b).to_imap(), "\\Seen \\Draft k1 k2");
}
