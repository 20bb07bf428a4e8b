// SPDX-License-Identifier: MIT
// input_filter: the engine hands the planner only the records that some side names, and
// the plan must be the one that every record would give.
#include "planner_support.hpp"

#include <gtest/gtest.h>

namespace tandem::sync::test {
namespace {

// Streams `in`'s records through an input_filter, as the engine streams the journal's.
mailbox_input filtered(mailbox_input in, bool everything = false,
                       input_filter::keeps_fn keeps = {}) {
    std::vector<pair_record> all = std::move(in.records);
    in.records.clear();
    per_side<std::size_t> counts{0, 0};
    for (const auto& r : all)
        for (side s : mail::both_sides) counts[s] += r.uid[s] != 0 ? 1 : 0;
    input_filter f(in, everything, std::move(keeps));
    for (auto& r : all) f.offer(r);
    f.finish(counts);
    return in;
}

std::vector<pair_record> records(mail::uid n) {
    std::vector<pair_record> out;
    for (mail::uid u = 1; u <= n; ++u) out.push_back(rec(u, 100 + u, "\\Seen"));
    return out;
}

std::vector<message_info> listing(mail::uid n, std::vector<mail::uid> without = {}) {
    std::vector<message_info> out;
    for (mail::uid u = 1; u <= n; ++u)
        if (std::find(without.begin(), without.end(), u) == without.end())
            out.push_back(msg(u, "\\Seen"));
    return out;
}

TEST(input_filter, identical_listing_entries_plan_nothing_and_are_left_out) {
    auto in = filtered(mbox("INBOX", records(5), full(listing(5)), changes()));
    EXPECT_TRUE(in.records.empty());
    EXPECT_TRUE(in.sides.a.messages.empty());
    ASSERT_TRUE(in.record_counts);
    EXPECT_EQ(in.record_counts->a, 5u);
    const std::vector<mailbox_input> inputs{in};
    const plan p = make_plan(inputs, channel_rules{});
    EXPECT_EQ(show_actions(p), std::vector<std::string>{});
    EXPECT_TRUE(p.notices.empty());
}

TEST(input_filter, an_echo_with_the_records_flags_on_a_side_that_reports_changes_is_left_out) {
    auto in = filtered(mbox("INBOX", records(5), changes({msg(2, "\\Seen")}), changes()));
    EXPECT_TRUE(in.records.empty());
    EXPECT_TRUE(in.sides.a.messages.empty());
    EXPECT_EQ(actions_of({in}, channel_rules{}), std::vector<std::string>{});
}

TEST(input_filter, a_record_that_a_complete_listing_lacks_is_still_seen_as_deleted) {
    const auto whole = mbox("INBOX", records(5), full(listing(5, {3})), changes());
    auto in = filtered(whole);
    ASSERT_EQ(in.records.size(), 1u);
    EXPECT_EQ(in.records[0].uid.a, 3u);
    EXPECT_TRUE(in.sides.a.messages.empty());
    const std::vector<mailbox_input> inputs{in};
    const plan p = make_plan(inputs, channel_rules{});
    EXPECT_EQ(show_actions(p),
              (std::vector<std::string>{"expunge INBOX b:103 | 3/103 [\\Seen] => -"}));
    EXPECT_EQ(show_actions(p), actions_of({whole}, channel_rules{}));
}

TEST(input_filter, a_vanished_uid_names_its_record) {
    auto in = filtered(mbox("INBOX", records(5), changes(), changes({}, {104})));
    ASSERT_EQ(in.records.size(), 1u);
    EXPECT_EQ(actions_of({in}, channel_rules{}),
              (std::vector<std::string>{"expunge INBOX a:4 | 4/104 [\\Seen] => -"}));
}

TEST(input_filter, a_record_one_side_names_keeps_its_entry_on_the_other_sides_complete_listing) {
    // Side b changed message 2; side a lists everything, 2 with the record's flags. Left out,
    // that entry would make the record look expunged on side a.
    const auto whole =
        mbox("INBOX", records(5), full(listing(5)), changes({msg(102, "\\Seen \\Flagged")}));
    auto in = filtered(whole);
    ASSERT_EQ(in.records.size(), 1u);
    ASSERT_EQ(in.sides.a.messages.size(), 1u);
    EXPECT_EQ(in.sides.a.messages[0].uid, 2u);
    const std::vector<mailbox_input> inputs{in};
    const plan p = make_plan(inputs, channel_rules{});
    EXPECT_EQ(show_actions(p), (std::vector<std::string>{
                                   "flags INBOX a:2 +[\\Flagged] -[] | 2/102 [\\Seen] => 2/102 "
                                   "[\\Seen \\Flagged]"}));
    EXPECT_EQ(show_actions(p), actions_of({whole}, channel_rules{}));
}

TEST(input_filter, new_messages_stay) {
    auto in = filtered(
        mbox("INBOX", records(3),
             full({msg(1, "\\Seen"), msg(2, "\\Seen"), msg(3, "\\Seen"), msg(9, "", "<k9>")}),
             changes()));
    EXPECT_TRUE(in.records.empty());
    ASSERT_EQ(in.sides.a.messages.size(), 1u);
    EXPECT_EQ(actions_of({in}, channel_rules{}),
              (std::vector<std::string>{"copy INBOX a:9 [] | new 9/0 [] <k9>"}));
}

TEST(input_filter, the_guard_measures_against_the_journal_not_the_records_handed_over) {
    channel_rules rules;  // half at most
    // 4 of 10 gone: under half of the journal, although all of the records handed over.
    auto some = filtered(mbox("INBOX", records(10), full(listing(10, {1, 2, 3, 4})), changes()));
    EXPECT_EQ(some.records.size(), 4u);
    const std::vector<mailbox_input> some_in{some};
    const plan p4 = make_plan(some_in, rules);
    EXPECT_TRUE(p4.guarded_mailboxes.empty());
    EXPECT_EQ(p4.actions.size(), 4u);
    // 8 of 10 gone: the guard still trips.
    auto most = filtered(
        mbox("INBOX", records(10), full(listing(10, {1, 2, 3, 4, 5, 6, 7, 8})), changes()));
    const std::vector<mailbox_input> most_in{most};
    const plan p8 = make_plan(most_in, rules);
    EXPECT_EQ(p8.guarded_mailboxes, std::vector<std::string>{"INBOX"});
    EXPECT_TRUE(p8.actions.empty());
    ASSERT_EQ(p8.notices.size(), 1u);
    EXPECT_NE(p8.notices[0].text.find("8 of 10"), std::string::npos) << p8.notices[0].text;
}

TEST(input_filter, a_keyword_the_side_cannot_carry_is_put_back_and_not_a_change) {
    std::vector<pair_record> recs{rec(1, 101, "\\Seen $label27")};
    auto keeps = [](side s, std::string_view k) { return !(s == side::b && k == "$label27"); };
    auto in = filtered(mbox("INBOX", recs, changes(), full({msg(101, "\\Seen")})), false, keeps);
    EXPECT_TRUE(in.records.empty());
    EXPECT_EQ(actions_of({in}, channel_rules{}), std::vector<std::string>{});
    // A keyword the side can carry and lacks was removed there.
    auto removed = filtered(mbox("INBOX", recs, changes(), full({msg(101, "\\Seen")})), false,
                            [](side, std::string_view) { return true; });
    EXPECT_EQ(removed.records.size(), 1u);
    EXPECT_EQ(actions_of({removed}, channel_rules{}),
              (std::vector<std::string>{
                  "flags INBOX a:1 +[] -[$label27] | 1/101 [\\Seen $label27] => 1/101 [\\Seen]"}));
}

TEST(input_filter, everything_keeps_every_record_and_sorts_the_listing) {
    auto in = filtered(
        mbox("INBOX", records(3),
             full({msg(3, "\\Seen"), msg(1, "\\Seen"), msg(1, ""), msg(2, "\\Seen")}), changes()),
        true);
    EXPECT_EQ(in.records.size(), 3u);
    EXPECT_FALSE(in.record_counts);
    ASSERT_EQ(in.sides.a.messages.size(), 3u);  // each uid once, the first
    EXPECT_EQ(in.sides.a.messages[0].uid, 1u);
    EXPECT_EQ(in.sides.a.messages[0].flags, fl("\\Seen"));
    EXPECT_EQ(in.sides.a.messages[2].uid, 3u);
}

}  // namespace
}  // namespace tandem::sync::test
