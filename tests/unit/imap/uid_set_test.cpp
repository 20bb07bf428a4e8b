// SPDX-License-Identifier: MIT
#include "tandem/imap/uid_set.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <set>

namespace tandem::imap {
namespace {

uid_set parsed(std::string_view s, std::optional<mail::uid> largest = std::nullopt) {
    auto r = uid_set::parse(s, largest);
    EXPECT_TRUE(r) << s;
    return r ? *r : uid_set{};
}

TEST(uid_set, parses_and_formats_compactly) {
    EXPECT_EQ(parsed("1:5,7,9:12").to_string(), "1:5,7,9:12");
    EXPECT_EQ(parsed("7,1:5,12,9:11").to_string(), "1:5,7,9:12");
    EXPECT_EQ(parsed("1,2,3,4").to_string(), "1:4");   // adjacent singles merge
    EXPECT_EQ(parsed("3:6,1:4").to_string(), "1:6");   // overlapping ranges merge
    EXPECT_EQ(parsed("4294967295").to_string(), "*");  // the largest UID prints as the marker
    EXPECT_EQ(parsed("1").size(), 1u);
}

TEST(uid_set, reversed_range_equals_forward_range) {
    EXPECT_EQ(parsed("5:1"), parsed("1:5"));
    EXPECT_EQ(parsed("12:10").to_string(), "10:12");  // RFC 4315 3 example
}

TEST(uid_set, star_is_a_marker_or_the_given_largest) {
    auto marker = parsed("9:*");
    EXPECT_TRUE(marker.has_star());
    EXPECT_EQ(marker.to_string(), "9:*");
    EXPECT_TRUE(marker.contains(uid_set::star));
    auto resolved = parsed("9:*", 12);
    EXPECT_FALSE(resolved.has_star());
    EXPECT_EQ(resolved.to_string(), "9:12");
    // "559:*" includes the last UID even when 559 is larger (RFC 3501 6.4.8).
    EXPECT_EQ(parsed("559:*", 100).to_string(), "100:559");
    EXPECT_EQ(parsed("*", 7).to_string(), "7");
}

TEST(uid_set, refuses_bad_syntax) {
    for (std::string_view bad :
         {"", "0", "0:5", "1:0", ",", "1,", ",1", "1,,2", "1:", ":1", "a", "1 2", "-1", "+1",
          "1:2:3", "4294967296", "99999999999", "1;2", "01"}) {
        auto r = uid_set::parse(bad);
        EXPECT_FALSE(r) << "accepted \"" << bad << "\"";
        if (!r) {
            EXPECT_EQ(r.error(), make_error_code(errc::protocol_error));
        }
    }
}

TEST(uid_set, membership_size_and_iteration) {
    auto s = parsed("1:3,10,20:22");
    EXPECT_EQ(s.size(), 7u);
    EXPECT_TRUE(s.contains(1));
    EXPECT_TRUE(s.contains(3));
    EXPECT_FALSE(s.contains(4));
    EXPECT_TRUE(s.contains(10));
    EXPECT_FALSE(s.contains(19));
    EXPECT_TRUE(s.contains(22));
    EXPECT_FALSE(s.contains(23));
    EXPECT_FALSE(s.contains(0));
    std::vector<mail::uid> all(s.begin(), s.end());
    EXPECT_EQ(all, (std::vector<mail::uid>{1, 2, 3, 10, 20, 21, 22}));
    EXPECT_EQ(s.min(), 1u);
    EXPECT_EQ(s.max(), 22u);
    uid_set empty;
    EXPECT_TRUE(empty.empty());
    EXPECT_EQ(empty.begin(), empty.end());
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_EQ(empty.to_string(), "");
}

TEST(uid_set, iteration_reaches_the_largest_uid_without_wrapping) {
    uid_set s{{4294967293u, 4294967295u}};
    std::vector<mail::uid> all(s.begin(), s.end());
    EXPECT_EQ(all, (std::vector<mail::uid>{4294967293u, 4294967294u, 4294967295u}));
}

TEST(uid_set, insert_erase_union_difference_intersection) {
    uid_set s;
    s.insert(5);
    s.insert(7);
    EXPECT_EQ(s.to_string(), "5,7");
    s.insert(6);
    EXPECT_EQ(s.to_string(), "5:7");
    s.insert(10, 8);
    EXPECT_EQ(s.to_string(), "5:10");
    s.erase(7);
    EXPECT_EQ(s.to_string(), "5:6,8:10");
    s.erase(1, 5);
    EXPECT_EQ(s.to_string(), "6,8:10");
    s.erase(20);
    EXPECT_EQ(s.to_string(), "6,8:10");

    auto a = parsed("1:10,20:30");
    auto b = parsed("5:25,40");
    EXPECT_EQ((a | b).to_string(), "1:30,40");
    EXPECT_EQ((a - b).to_string(), "1:4,26:30");
    EXPECT_EQ((b - a).to_string(), "11:19,40");
    EXPECT_EQ((a & b).to_string(), "5:10,20:25");
    EXPECT_TRUE((a - a).empty());
}

// Against a std::set model, with random operations.
TEST(uid_set, agrees_with_a_plain_set) {
    std::mt19937 rng(42);
    for (int round = 0; round < 200; ++round) {
        uid_set s;
        std::set<mail::uid> model;
        for (int op = 0; op < 30; ++op) {
            auto a = static_cast<mail::uid>(rng() % 60 + 1);
            auto b = static_cast<mail::uid>(rng() % 60 + 1);
            if (rng() % 3 == 0) {
                s.erase(a, b);
                for (auto u = std::min(a, b); u <= std::max(a, b); ++u) model.erase(u);
            } else {
                s.insert(a, b);
                for (auto u = std::min(a, b); u <= std::max(a, b); ++u) model.insert(u);
            }
        }
        std::vector<mail::uid> got(s.begin(), s.end());
        ASSERT_EQ(got, std::vector<mail::uid>(model.begin(), model.end()));
        ASSERT_EQ(s.size(), model.size());
        for (mail::uid u = 0; u < 62; ++u) ASSERT_EQ(s.contains(u), model.count(u) == 1);
        // Ranges stay sorted, disjoint and non-adjacent: the printed form is canonical.
        for (std::size_t i = 1; i < s.ranges().size(); ++i)
            ASSERT_GT(s.ranges()[i].first, s.ranges()[i - 1].last + 1);
        if (!s.empty()) {
            ASSERT_EQ(parsed(s.to_string()), s);  // round trip
        }
    }
}

TEST(uid_set, split_keeps_every_piece_under_the_limit_and_covers_the_set) {
    uid_set s;
    for (mail::uid u = 1; u < 20000; u += 3) s.insert(u);  // no ranges: long
    auto whole = s.to_string();
    ASSERT_GT(whole.size(), 8000u);
    auto pieces = s.split(8000);
    ASSERT_GT(pieces.size(), 1u);
    uid_set back;
    for (const auto& p : pieces) {
        EXPECT_LE(p.size(), 8000u);
        EXPECT_FALSE(p.empty());
        EXPECT_NE(p.back(), ',');
        auto part = parsed(p);
        EXPECT_TRUE((back & part).empty());  // no UID in two pieces
        back |= part;
    }
    EXPECT_EQ(back, s);
    // Pieces come in ascending order.
    for (std::size_t i = 1; i < pieces.size(); ++i)
        EXPECT_LT(parsed(pieces[i - 1]).max(), parsed(pieces[i]).min());
}

TEST(uid_set, split_edge_cases) {
    EXPECT_TRUE(uid_set{}.split(100).empty());
    auto one = parsed("1:5");
    EXPECT_EQ(one.split(100), std::vector<std::string>{"1:5"});
    // A limit below one range is raised to the longest possible range.
    auto big = parsed("4294967290:4294967294,1");
    for (const auto& p : big.split(3)) EXPECT_LE(p.size(), 21u);
    EXPECT_EQ(big.split(3).size(), 2u);
    auto exact = parsed("1,3,5");  // "1,3,5" is 5 bytes
    EXPECT_EQ(exact.split(21), std::vector<std::string>{"1,3,5"});
}

TEST(uid_set, pieces_come_one_at_a_time_with_the_number_of_uids_each_holds) {
    uid_set set{{1, 3}, {10, 10}, {12, 20}, {100, 100}};
    std::vector<std::pair<std::string, std::uint64_t>> got;
    auto collect = [&](std::string_view s, std::uint64_t n) { got.emplace_back(s, n); };
    // "1:3,10" is 6 bytes; ",12:20" would make 12. A limit below 21 is raised to 21.
    set.for_each_piece(21, collect);
    EXPECT_EQ(got, (std::vector<std::pair<std::string, std::uint64_t>>{{"1:3,10,12:20,100", 14}}));
    uid_set longer{{1, 3}, {1000000, 1000000}, {1000002, 1000020}, {3000000, 3000000}};
    got.clear();
    longer.for_each_piece(21, collect);
    // "1:3,1000000" is 11 bytes; ",1000002:1000020" would make 27, ",3000000" 23.
    EXPECT_EQ(got, (std::vector<std::pair<std::string, std::uint64_t>>{
                       {"1:3,1000000", 4}, {"1000002:1000020", 19}, {"3000000", 1}}));
    got.clear();
    uid_set{}.for_each_piece(21, collect);
    EXPECT_TRUE(got.empty());
    // The same pieces as split() gives.
    std::vector<std::string> texts;
    longer.for_each_piece(21, [&](std::string_view s, std::uint64_t) { texts.emplace_back(s); });
    EXPECT_EQ(texts, longer.split(21));
}

}  // namespace
}  // namespace tandem::imap
