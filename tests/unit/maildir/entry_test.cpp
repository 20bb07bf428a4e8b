// SPDX-License-Identifier: MIT
#include "tandem/maildir/entry.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace tandem::maildir;

namespace {

// What parse_name() says of a name, as an entry would say it.
void expect_as_parse_name(const std::string& name, char separator = default_separator) {
    SCOPED_TRACE(name);
    entry e(name, subdir::cur, separator);
    auto n = parse_name(name, separator);
    EXPECT_EQ(e.file_name(), name);
    EXPECT_EQ(e.base(), n.base);
    EXPECT_EQ(e.system(), n.flags_info ? n.system : std::string());
    EXPECT_EQ(e.keywords(), n.flags_info ? n.keywords : std::string());
}

}  // namespace

TEST(maildir_entry, splits_a_name_as_parse_name_does) {
    entry e("1491941793.M41850P8566.mx1,S=1355,W=1394:2,FRSab", subdir::new_);
    EXPECT_EQ(e.base(), "1491941793.M41850P8566.mx1,S=1355,W=1394");
    EXPECT_EQ(e.subdir, subdir::new_);
    EXPECT_EQ(e.system(), "FRS");
    EXPECT_EQ(e.keywords(), "ab");
    EXPECT_EQ(e.keyword_bits(), 0b11u);
    EXPECT_EQ(e.size, 0u);
    EXPECT_EQ(e.mtime, 0);

    for (const char* s : {"123.M1P2.host",
                          "123.M1P2.host:2,",
                          "123.M1P2.host:2,S",
                          "x,S=5:2,DFPRST",
                          "x:2,Sabz",
                          "x:2,FS,extra",
                          "x:2,FS,extra:ab",
                          "x:1,experimental",
                          "x:1,S",
                          "x:2",
                          "x:",
                          ":2,S",
                          "",
                          "x:2,TSbaRSa",
                          "x:2,SXYZ",
                          "x:2,QSa",
                          "x:2,S9a",
                          "x:2,S.Ta",
                          "x:2,\xc3\xa9S",
                          "x:2,{S}~a",
                          "x:2,,S",
                          "x:2,S:F"}) {
        expect_as_parse_name(s);
    }
}

TEST(maildir_entry, a_name_without_info_in_new_has_no_flags) {
    entry e("1700000000.M1P2Q3.host,S=42", subdir::new_);
    EXPECT_EQ(e.base(), "1700000000.M1P2Q3.host,S=42");
    EXPECT_EQ(e.system(), "");
    EXPECT_EQ(e.keywords(), "");
    EXPECT_EQ(e.keyword_bits(), 0u);
    EXPECT_EQ(size_hint(e.base()), 42u);
}

TEST(maildir_entry, unknown_upper_case_letters_are_kept) {
    entry e("x:2,ZFaQS", subdir::cur);
    EXPECT_EQ(e.system(), "FQSZ");
    EXPECT_EQ(e.keywords(), "a");
    // Not letters at all: kept too, in ASCII order, as parse_name() has them.
    entry odd("x:2,S#1b", subdir::cur);
    EXPECT_EQ(odd.system(), "#1S");
    EXPECT_EQ(odd.keywords(), "b");
}

TEST(maildir_entry, every_keyword_letter_round_trips) {
    std::string all;
    for (char c = 'a'; c <= 'z'; ++c) all += c;
    entry e("x:2,DFPRST" + all, subdir::cur);
    EXPECT_EQ(e.system(), "DFPRST");
    EXPECT_EQ(e.keywords(), all);
    EXPECT_EQ(e.keyword_bits(), (1u << 26) - 1);
    EXPECT_EQ(cur_name(e.base(), e.system(), e.keywords()), e.file_name());
}

TEST(maildir_entry, other_separators) {
    expect_as_parse_name("x!2,FSa", '!');
    expect_as_parse_name("x:y!2,S", '!');
    expect_as_parse_name("x;2,RT;", ';');
    entry e("a:b!2,S", subdir::cur, '!');
    EXPECT_EQ(e.base(), "a:b");
    EXPECT_EQ(e.system(), "S");
}

TEST(maildir_entry_list, finds_entries_by_base_name) {
    entry_list l;
    EXPECT_TRUE(l.empty());
    EXPECT_EQ(l.find("x"), entry_list::npos);
    EXPECT_EQ(l.push_back(entry("a:2,S", subdir::cur)), 0u);
    EXPECT_EQ(l.push_back(entry("b", subdir::new_)), 1u);
    EXPECT_EQ(l.find("a"), 0u);
    EXPECT_EQ(l.find("b"), 1u);
    EXPECT_EQ(l.find("a:2,S"), entry_list::npos);
    EXPECT_EQ(l.find(""), entry_list::npos);
    EXPECT_EQ(l.size(), 2u);
}

TEST(maildir_entry_list, a_second_entry_of_a_base_name_is_kept_but_not_found) {
    entry_list l;
    l.push_back(entry("a:2,S", subdir::cur));
    EXPECT_EQ(l.push_back(entry("a:2,FS", subdir::cur)), 1u);
    EXPECT_EQ(l.size(), 2u);
    EXPECT_EQ(l.find("a"), 0u);
    EXPECT_FALSE(l.insert(entry("a:2,", subdir::cur)));
    EXPECT_EQ(l.size(), 2u);
    l.drop_duplicates();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].file_name(), "a:2,S");

    l.assign(entry("a:2,T", subdir::new_));
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].file_name(), "a:2,T");
    EXPECT_EQ(l[0].subdir, subdir::new_);
    l.assign(entry("b:2,T", subdir::cur));
    EXPECT_EQ(l.size(), 2u);
    EXPECT_EQ(l.find("b"), 1u);
}

TEST(maildir_entry_list, erase_keeps_every_other_entry_findable) {
    // Many names against a small index: long probe chains that wrap around, erased from in
    // random order, against a std::map as the model.
    std::mt19937 rng(7);
    entry_list l;
    std::map<std::string, std::string> model;  // base -> file name
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 3000; ++i) {
            auto base = std::to_string(rng() % 5000) + ".M" + std::to_string(round);
            auto name = base + ":2," + (rng() % 2 ? "S" : "F");
            if (rng() % 3 == 0) {
                l.assign(entry(name, subdir::cur));
                model[base] = name;
            } else if (model.emplace(base, name).second) {
                EXPECT_TRUE(l.insert(entry(name, subdir::cur)));
            } else {
                EXPECT_FALSE(l.insert(entry(name, subdir::cur)));
            }
        }
        std::vector<std::string> bases;
        for (const auto& [b, n] : model) bases.push_back(b);
        std::shuffle(bases.begin(), bases.end(), rng);
        bases.resize(bases.size() / 2);
        for (const auto& b : bases) {
            EXPECT_TRUE(l.erase(b));
            EXPECT_FALSE(l.erase(b));
            model.erase(b);
        }
        ASSERT_EQ(l.size(), model.size());
        for (const auto& [b, n] : model) {
            auto pos = l.find(b);
            ASSERT_NE(pos, entry_list::npos) << b;
            EXPECT_EQ(l[pos].file_name(), n);
        }
        for (const auto& b : bases) EXPECT_EQ(l.find(b), entry_list::npos);
    }
    std::set<std::string> listed;
    for (const auto& e : l) listed.insert(std::string(e.base()));
    EXPECT_EQ(listed.size(), model.size());
}

TEST(maildir_entry_list, reserve_and_clear) {
    entry_list l;
    l.reserve(1000);
    for (int i = 0; i < 1000; ++i) l.push_back(entry(std::to_string(i) + ":2,S", subdir::cur));
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(l.find(std::to_string(i)), std::size_t(i));
    auto copy = l;
    l.clear();
    EXPECT_TRUE(l.empty());
    EXPECT_EQ(l.find("1"), entry_list::npos);
    l.push_back(entry("1", subdir::new_));
    EXPECT_EQ(l.find("1"), 0u);
    EXPECT_EQ(copy.find("999"), 999u);
}
