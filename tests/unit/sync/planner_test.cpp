// SPDX-License-Identifier: MIT
// The sync rules as a table: journal state, what each side reported, the rules, and the
// exact plan expected (after isync's run-tests.pl @x01/@X01 tables). Case names carry the
// scenario ids of shared/research/scenarios.md.
#include "planner_support.hpp"

#include <gtest/gtest.h>

#include <functional>

namespace tandem::sync::test {
namespace {

struct plan_case {
    std::string name;
    std::vector<mailbox_input> in;
    std::vector<std::string> actions;
    std::vector<std::string> notices = {};
    std::vector<std::string> guarded = {};
    std::function<void(channel_rules&)> tweak = nullptr;
};

std::ostream& operator<<(std::ostream& o, const plan_case& c) {
    return o << c.name;
}

channel_rules no_expunge_on(side s) {
    channel_rules r;
    r.may_expunge[s] = false;
    return r;
}

std::vector<plan_case> cases() {
    std::vector<plan_case> c;

    // ---- 3. new mail
    c.push_back({"S01_new_on_a_copied_to_b",
                 {mbox("INBOX", {}, changes({msg(1, "\\Seen", "k1", "A1", 10)}), changes())},
                 {"copy INBOX a:1 [\\Seen] s=10 | new 1/0 [\\Seen] k1 ia=A1 s=10"}});
    c.push_back({"S01_new_on_b_copied_to_a",
                 {mbox("INBOX", {}, changes(), changes({msg(101, "$Forwarded", "k1", "B1")}))},
                 {"copy INBOX b:101 [$Forwarded] | new 0/101 [$Forwarded] k1 ib=B1"}});
    c.push_back(
        {"S01_new_on_both_sides",
         {mbox("INBOX", {}, changes({msg(1, "\\Flagged", "k1")}), changes({msg(101, "", "k2")}))},
         {"copy INBOX a:1 [\\Flagged] | new 1/0 [\\Flagged] k1",
          "copy INBOX b:101 [] | new 0/101 [] k2"}});
    c.push_back({"S02_new_with_deleted_is_copied_with_it",
                 {mbox("INBOX", {}, changes({msg(1, "\\Deleted", "k1")}), changes())},
                 {"copy INBOX a:1 [\\Deleted] | new 1/0 [\\Deleted] k1"}});
    c.push_back({"S05_same_mail_new_on_both_sides_is_paired_not_copied",
                 {mbox("INBOX", {}, full({msg(1, "\\Seen", "k1", "A1")}),
                       full({msg(101, "", "k1", "B1")}), false)},
                 {"flags INBOX b:101 +[\\Seen] -[] | - => 1/101 [\\Seen] k1 ia=A1 ib=B1"}});
    c.push_back({"S05_same_flags_pair_in_the_journal_only",
                 {mbox("INBOX", {}, full({msg(1, "\\Seen", "k1")}),
                       full({msg(101, "\\Seen", "k1")}), false)},
                 {"journal INBOX | - => 1/101 [\\Seen] k1"}});
    c.push_back({"S06_flags_union_on_both_sides",
                 {mbox("INBOX", {}, full({msg(1, "\\Seen $A", "k1")}),
                       full({msg(101, "\\Flagged", "k1")}), false)},
                 {"flags INBOX a:1 +[\\Flagged] -[]",
                  "flags INBOX b:101 +[\\Seen $A] -[] | - => 1/101 [\\Seen \\Flagged $A] k1"}});
    c.push_back({"S06_duplicates_by_key_pair_in_uid_order_surplus_is_new",
                 {mbox("INBOX", {}, full({msg(2, "", "k1"), msg(1, "", "k1"), msg(3, "", "k2")}),
                       full({msg(101, "\\Flagged", "k1"), msg(102, "", "k3")}), false)},
                 {"flags INBOX a:1 +[\\Flagged] -[] | - => 1/101 [\\Flagged] k1",
                  "copy INBOX a:2 [] | new 2/0 [] k1", "copy INBOX a:3 [] | new 3/0 [] k2",
                  "copy INBOX b:102 [] | new 0/102 [] k3"}});
    c.push_back({"S05_no_content_key_is_never_paired",
                 {mbox("INBOX", {}, full({msg(1)}), full({msg(101)}), false)},
                 {"copy INBOX a:1 [] | new 1/0 []", "copy INBOX b:101 [] | new 0/101 []"}});

    // ---- 4. flags
    c.push_back({"S09_flag_added_on_a",
                 {mbox("INBOX", {rec(1, 101)}, changes({msg(1, "\\Seen")}), changes())},
                 {"flags INBOX b:101 +[\\Seen] -[] | 1/101 [] => 1/101 [\\Seen]"}});
    c.push_back(
        {"S09_flag_removed_on_b",
         {mbox("INBOX", {rec(1, 101, "\\Seen \\Flagged")}, changes(),
               changes({msg(101, "\\Seen")}))},
         {"flags INBOX a:1 +[] -[\\Flagged] | 1/101 [\\Seen \\Flagged] => 1/101 [\\Seen]"}});
    c.push_back({"S09_listed_without_change_is_a_noop",
                 {mbox("INBOX", {rec(1, 101, "\\Seen")}, full({msg(1, "\\Seen")}),
                       full({msg(101, "\\Seen")}))},
                 {}});
    c.push_back({"S10_disjoint_changes_merge_three_way",
                 {mbox("INBOX", {rec(1, 101, "\\Flagged")}, changes({msg(1, "\\Seen \\Flagged")}),
                       changes({msg(101, "")}))},
                 {"flags INBOX a:1 +[] -[\\Flagged]",
                  "flags INBOX b:101 +[\\Seen] -[] | 1/101 [\\Flagged] => 1/101 [\\Seen]"}});
    c.push_back({"S11_no_redundant_store",
                 {mbox("INBOX", {rec(1, 101)}, changes({msg(1, "\\Seen \\Flagged")}),
                       changes({msg(101, "\\Flagged")}))},
                 {"flags INBOX b:101 +[\\Seen] -[] | 1/101 [] => 1/101 [\\Seen \\Flagged]"}});
    c.push_back({"S11_same_change_on_both_sides_is_journal_only",
                 {mbox("INBOX", {rec(1, 101)}, changes({msg(1, "\\Flagged")}),
                       changes({msg(101, "\\Flagged")}))},
                 {"journal INBOX | 1/101 [] => 1/101 [\\Flagged]"}});
    c.push_back(
        {"S11_equal_changes_sort_together_for_one_store",
         {mbox("INBOX", {rec(1, 101), rec(2, 102), rec(3, 103)},
               changes({msg(1, "\\Seen"), msg(2, "\\Flagged"), msg(3, "\\Seen")}), changes())},
         {"flags INBOX b:102 +[\\Flagged] -[] | 2/102 [] => 2/102 [\\Flagged]",
          "flags INBOX b:101 +[\\Seen] -[] | 1/101 [] => 1/101 [\\Seen]",
          "flags INBOX b:103 +[\\Seen] -[] | 3/103 [] => 3/103 [\\Seen]"}});
    c.push_back(
        {"S13_deleted_is_a_flag",
         {mbox("INBOX", {rec(1, 101), rec(2, 102)}, changes({msg(1, "\\Deleted")}),
               changes({msg(102, "\\Flagged \\Deleted")}))},
         {"flags INBOX a:2 +[\\Flagged \\Deleted] -[] | 2/102 [] => 2/102 [\\Flagged \\Deleted]",
          "flags INBOX b:101 +[\\Deleted] -[] | 1/101 [] => 1/101 [\\Deleted]"}});
    c.push_back({"S14_undelete_propagates",
                 {mbox("INBOX", {rec(1, 101, "\\Deleted")}, changes(), changes({msg(101, "")}))},
                 {"flags INBOX a:1 +[] -[\\Deleted] | 1/101 [\\Deleted] => 1/101 []"}});
    c.push_back(
        {"S15_keywords_propagate",
         {mbox("INBOX", {rec(1, 101)}, changes({msg(1, "NotJunk $Label1 $Forwarded")}), changes())},
         {"flags INBOX b:101 +[$Forwarded $Label1 NotJunk] -[] | 1/101 [] => 1/101 [$Forwarded "
          "$Label1 NotJunk]"}});
    c.push_back(
        {"S15_keywords_merge_three_way",
         {mbox("INBOX", {rec(1, 101, "$Forwarded NotJunk")},
               changes({msg(1, "$Forwarded NotJunk $New")}), changes({msg(101, "$Forwarded")}))},
         {"flags INBOX a:1 +[] -[NotJunk]",
          "flags INBOX b:101 +[$New] -[] | 1/101 [$Forwarded NotJunk] => 1/101 [$Forwarded "
          "$New]"}});

    // ---- 5. expunge
    c.push_back({"S19_expunged_on_a_is_expunged_on_b",
                 {mbox("INBOX", {rec(1, 101), rec(2, 102, "\\Seen")}, changes({}, {1}), changes())},
                 {"expunge INBOX b:101 | 1/101 [] => -"}});
    c.push_back(
        {"S19_expunged_on_b_complete_listing",
         {mbox("INBOX", {rec(1, 101), rec(2, 102)}, full({msg(1), msg(2)}), full({msg(102)}))},
         {"expunge INBOX a:1 | 1/101 [] => -"}});
    c.push_back({"S19_expunge_none_marks_deleted_and_keeps_one_side",
                 {mbox("INBOX", {rec(1, 101)}, changes({}, {1}), changes())},
                 {"flags INBOX b:101 +[\\Deleted] -[] | 1/101 [] => 0/101 [\\Deleted]"},
                 {},
                 {},
                 [](channel_rules& r) { r = no_expunge_on(side::b); }});
    c.push_back({"S19_sync2_kept_copy_is_not_uploaded_again",
                 {mbox("INBOX", {rec(0, 101, "\\Deleted")}, full(), full({msg(101, "\\Deleted")}))},
                 {},
                 {},
                 {},
                 [](channel_rules& r) { r = no_expunge_on(side::b); }});
    c.push_back({"S19_kept_copy_gone_too_is_forgotten",
                 {mbox("INBOX", {rec(0, 101, "\\Deleted")}, changes(), changes({}, {101}))},
                 {"journal INBOX | 0/101 [\\Deleted] => -"}});
    c.push_back({"S20_expunged_on_both_sides_is_forgotten",
                 {mbox("INBOX", {rec(1, 101), rec(2, 102, "\\Deleted")}, changes({}, {1, 2}),
                       changes({}, {101}))},
                 {"journal INBOX | 1/101 [] => -",
                  "journal INBOX | 2/102 [\\Deleted] => 0/102 [\\Deleted]"},
                 {},
                 {},
                 [](channel_rules& r) { r = no_expunge_on(side::b); }});
    c.push_back({"S22_expunge_wins_over_flag_change",
                 {mbox("INBOX", {rec(1, 101)}, changes({msg(1, "\\Flagged")}), changes({}, {101}))},
                 {"expunge INBOX a:1 | 1/101 [] => -"},
                 {"conflict INBOX a:1"}});
    c.push_back({"S22_expunge_none_keeps_the_flag_and_marks_deleted",
                 {mbox("INBOX", {rec(1, 101)}, changes({msg(1, "\\Flagged")}), changes({}, {101}))},
                 {"flags INBOX a:1 +[\\Deleted] -[] | 1/101 [] => 1/0 [\\Flagged \\Deleted]"},
                 {"conflict INBOX a:1"},
                 {},
                 [](channel_rules& r) { r = no_expunge_on(side::a); }});

    // ---- 6. moves
    c.push_back(
        {"S26_move_on_a_is_a_move_on_b",
         {mbox("INBOX", {rec(1, 101, "\\Seen", "k1", "A1", "B1")}, changes({}, {1}), changes()),
          mbox("Archive", {}, changes({msg(7, "\\Seen", "k1", "A1")}), changes())},
         {"move b:101 INBOX -> Archive +[] -[] | 1/101 [\\Seen] k1 ia=A1 ib=B1 => 7/0 [\\Seen] k1 "
          "ia=A1 ib=B1"}});
    c.push_back({"S26_move_found_by_content_key_without_identity",
                 {mbox("INBOX", {rec(1, 101, "", "k1")}, changes({}, {1}), changes()),
                  mbox("Archive", {}, changes({msg(7, "", "k1")}), changes())},
                 {"move b:101 INBOX -> Archive +[] -[] | 1/101 [] k1 => 7/0 [] k1"}});
    c.push_back(
        {"S26_move_found_by_content_key_when_the_copy_has_no_recorded_identity",
         {mbox("INBOX", {rec(1, 101, "", "k1", "", "B1")}, changes({}, {1}), changes()),
          mbox("Archive", {}, changes({msg(7, "", "k1", "A9")}), changes())},
         {"move b:101 INBOX -> Archive +[] -[] | 1/101 [] k1 ib=B1 => 7/0 [] k1 ia=A9 ib=B1"}});
    c.push_back({"S26_move_on_b_is_a_move_on_a",
                 {mbox("INBOX", {rec(1, 101, "", "k1", "A1", "B1")}, changes(), changes({}, {101})),
                  mbox("Archive", {}, changes(), changes({msg(150, "", "k1", "B1")}))},
                 {"move a:1 INBOX -> Archive +[] -[] | 1/101 [] k1 ia=A1 ib=B1 => 0/150 [] k1 "
                  "ia=A1 ib=B1"}});
    c.push_back(
        {"S29_moved_on_a_flagged_on_b_flags_follow_the_move",
         {mbox("INBOX", {rec(1, 101, "", "k1", "A1", "B1")}, changes({}, {1}),
               changes({msg(101, "\\Flagged", "k1", "B1")})),
          mbox("Archive", {}, changes({msg(7, "\\Seen", "k1", "A1")}), changes())},
         {"flags Archive a:7 +[\\Flagged] -[]",
          "move b:101 INBOX -> Archive +[\\Seen] -[] | 1/101 [] k1 ia=A1 ib=B1 => 7/0 [\\Seen "
          "\\Flagged] k1 ia=A1 ib=B1"}});
    c.push_back(
        {"S26_moved_while_the_other_copy_was_expunged_is_new",
         {mbox("INBOX", {rec(1, 101, "", "k1", "A1")}, changes({}, {1}), changes({}, {101})),
          mbox("Archive", {}, changes({msg(7, "", "k1", "A1")}), changes())},
         {"copy Archive a:7 [] | new 7/0 [] k1 ia=A1", "journal INBOX | 1/101 [] k1 ia=A1 => -"}});
    c.push_back({"S26_move_into_a_new_mailbox_creates_it_first",
                 {mbox("INBOX", {rec(1, 101, "", "k1", "A1")}, changes({}, {1}), changes()),
                  mbox("Lists", {}, full({msg(3, "", "k1", "A1")}), missing(), false)},
                 {"create Lists on b",
                  "move b:101 INBOX -> Lists +[] -[] | 1/101 [] k1 ia=A1 => 3/0 [] k1 ia=A1"}});
    c.push_back({"S26_one_way_channel_does_not_move_against_its_direction",
                 {mbox("INBOX", {rec(1, 101, "", "k1", "A1")}, changes({}, {1}), changes()),
                  mbox("Archive", {}, changes({msg(7, "", "k1", "A1")}), changes())},
                 {"journal Archive | - => 7/0 [] k1 ia=A1",
                  "journal INBOX | 1/101 [] k1 ia=A1 => 0/101 [] k1"},
                 {},
                 {},
                 [](channel_rules& r) { r.dir = direction::b_to_a; }});
    c.push_back({"S28_reappended_in_the_same_mailbox_is_repaired",
                 {mbox("INBOX", {rec(1, 101, "\\Seen", "k1", "A1")},
                       full({msg(9, "\\Seen", "k1", "A1")}), full({msg(101, "\\Seen", "k1")}))},
                 {"journal INBOX | 1/101 [\\Seen] k1 ia=A1 => 9/101 [\\Seen] k1 ia=A1"}});
    c.push_back({"S31_copy_into_a_second_folder_is_not_a_move",
                 {mbox("INBOX", {rec(1, 101, "", "k1", "A1")}, changes(), changes()),
                  mbox("Archive", {}, changes({msg(7, "", "k1", "A1")}), changes())},
                 {"copy Archive a:7 [] | new 7/0 [] k1 ia=A1"}});
    c.push_back(
        {"S26_two_equal_messages_moved_pair_in_uid_order",
         {mbox("INBOX", {rec(1, 101, "", "k1"), rec(2, 102, "\\Seen", "k1")}, changes({}, {1, 2}),
               changes()),
          mbox("Archive", {}, changes({msg(8, "\\Seen", "k1"), msg(7, "", "k1")}), changes())},
         {"move b:101 INBOX -> Archive +[] -[] | 1/101 [] k1 => 7/0 [] k1",
          "move b:102 INBOX -> Archive +[] -[] | 2/102 [\\Seen] k1 => 8/0 [\\Seen] k1"}});

    // ---- 8. UIDVALIDITY
    c.push_back({"S43_uidvalidity_changed_all_found_again_by_key",
                 {mbox("INBOX", {rec(1, 101, "\\Seen", "k1"), rec(2, 102, "", "k2")},
                       revalidated({msg(1, "", "k2"), msg(2, "\\Seen", "k1")}), changes())},
                 {"journal INBOX | 1/101 [\\Seen] k1 => -", "journal INBOX | 2/102 [] k2 => -",
                  "journal INBOX | - => 1/102 [] k2", "journal INBOX | - => 2/101 [\\Seen] k1"}});
    c.push_back(
        {"S43_uidvalidity_changed_unmatched_is_kept_one_sided_and_new_is_copied",
         {mbox("INBOX", {rec(1, 101, "", "k1"), rec(2, 102, "", "k2"), rec(3, 103, "\\Seen", "k3")},
               revalidated({msg(5, "", "k1"), msg(6, "", "k9"), msg(7, "\\Flagged", "k3")}),
               changes())},
         {"journal INBOX | 1/101 [] k1 => -", "journal INBOX | 2/102 [] k2 => -",
          "journal INBOX | 3/103 [\\Seen] k3 => -", "journal INBOX | - => 0/102 [] k2",
          "journal INBOX | - => 5/101 [] k1", "journal INBOX | - => 7/103 [\\Seen] k3",
          "flags INBOX b:103 +[\\Flagged] -[\\Seen] | 7/103 [\\Seen] k3 => 7/103 [\\Flagged] k3",
          "copy INBOX a:6 [] | new 6/0 [] k9"}});
    c.push_back({"S45_no_key_and_no_identity_of_that_side_matches_nothing_and_deletes_nothing",
                 {mbox("INBOX", {rec(1, 101, "", "", "A1")}, changes(),
                       revalidated({msg(300, "", "", "A1")}))},
                 {"journal INBOX | 1/101 [] ia=A1 => -", "journal INBOX | - => 1/0 [] ia=A1",
                  "copy INBOX b:300 [] | new 0/300 [] ib=A1"}});
    c.push_back({"S43_uidvalidity_identity_of_the_changed_side",
                 {mbox("INBOX", {rec(1, 101, "", "", "", "B1")}, changes(),
                       revalidated({msg(300, "", "", "B1")}))},
                 {"journal INBOX | 1/101 [] ib=B1 => -", "journal INBOX | - => 1/300 [] ib=B1"}});
    c.push_back({"S44_baseless_uidvalidity_change_changes_nothing",
                 {mbox("INBOX", {rec(1, 101, "", "k1"), rec(2, 102, "\\Seen", "k2")},
                       revalidated({msg(1, "", "k1"), msg(2, "\\Seen", "k2")}), changes())},
                 {}});
    c.push_back({"S46_uidvalidity_changed_on_both_sides",
                 {mbox("INBOX", {rec(1, 101, "\\Seen", "k1"), rec(2, 102, "", "k2")},
                       revalidated({msg(11, "\\Seen", "k1"), msg(12, "", "k2")}),
                       revalidated({msg(201, "\\Seen", "k1")}))},
                 {"journal INBOX | 1/101 [\\Seen] k1 => -", "journal INBOX | 2/102 [] k2 => -",
                  "journal INBOX | - => 11/201 [\\Seen] k1", "journal INBOX | - => 12/0 [] k2"}});
    c.push_back({"S46_both_changed_nothing_matches",
                 {mbox("INBOX", {rec(1, 101, "", "k1")}, revalidated({msg(11, "", "k8")}),
                       revalidated({msg(201, "", "k9")}))},
                 {"journal INBOX | 1/101 [] k1 => -", "copy INBOX a:11 [] | new 11/0 [] k8",
                  "copy INBOX b:201 [] | new 0/201 [] k9"}});
    c.push_back({"S47_uidvalidity_change_of_an_empty_mailbox",
                 {mbox("INBOX", {}, revalidated(), changes())},
                 {}});

    // ---- direction
    auto one_way = [] {
        return mbox("INBOX", {rec(1, 101), rec(2, 102), rec(3, 103)},
                    changes({msg(1, "\\Seen"), msg(4, "", "k5")}),
                    changes({msg(102, "\\Flagged"), msg(104, "", "k4")}, {103}));
    };
    c.push_back({"direction_a_to_b_applies_only_a_changes",
                 {one_way()},
                 {"journal INBOX | - => 0/104 [] k4", "journal INBOX | 3/103 [] => 3/0 []",
                  "flags INBOX b:101 +[\\Seen] -[] | 1/101 [] => 1/101 [\\Seen]",
                  "copy INBOX a:4 [] | new 4/0 [] k5"},
                 {},
                 {},
                 [](channel_rules& r) { r.dir = direction::a_to_b; }});
    c.push_back({"direction_b_to_a_applies_only_b_changes",
                 {one_way()},
                 {"journal INBOX | - => 4/0 [] k5",
                  "flags INBOX a:2 +[\\Flagged] -[] | 2/102 [] => 2/102 [\\Flagged]",
                  "expunge INBOX a:3 | 3/103 [] => -", "copy INBOX b:104 [] | new 0/104 [] k4"},
                 {},
                 {},
                 [](channel_rules& r) { r.dir = direction::b_to_a; }});
    c.push_back({"direction_both_applies_all",
                 {one_way()},
                 {"flags INBOX a:2 +[\\Flagged] -[] | 2/102 [] => 2/102 [\\Flagged]",
                  "flags INBOX b:101 +[\\Seen] -[] | 1/101 [] => 1/101 [\\Seen]",
                  "expunge INBOX a:3 | 3/103 [] => -", "copy INBOX a:4 [] | new 4/0 [] k5",
                  "copy INBOX b:104 [] | new 0/104 [] k4"}});
    c.push_back(
        {"direction_a_to_b_keeps_b_own_flag_change_on_b",
         {mbox("INBOX", {rec(1, 101, "\\Seen")}, changes({msg(1, "\\Seen \\Flagged")}),
               changes({msg(101, "")}))},
         {"flags INBOX b:101 +[\\Flagged] -[] | 1/101 [\\Seen] => 1/101 [\\Seen \\Flagged]"},
         {},
         {},
         [](channel_rules& r) { r.dir = direction::a_to_b; }});

    // ---- limits
    c.push_back(
        {"S56_too_large_is_recorded_one_sided_and_reported",
         {mbox("INBOX", {}, changes({msg(1, "", "k1", "", 5000), msg(2, "", "k2", "", 10)}),
               changes())},
         {"journal INBOX | - => 1/0 [] k1 s=5000", "copy INBOX a:2 [] s=10 | new 2/0 [] k2 s=10"},
         {"too_large INBOX a:1"},
         {},
         [](channel_rules& r) { r.max_size = 1000; }});

    // ---- 7. folders
    c.push_back(
        {"S32_new_mailbox_is_created_then_filled",
         {mbox("Work", {}, full({msg(1, "", "k1"), msg(2, "\\Seen", "k2")}), missing(), false)},
         {"create Work on b", "copy Work a:1 [] | new 1/0 [] k1",
          "copy Work a:2 [\\Seen] | new 2/0 [\\Seen] k2"}});
    c.push_back({"S32_new_mailbox_on_b_is_created_on_a",
                 {mbox("Work", {}, missing(), full(), false)},
                 {"create Work on a"}});
    c.push_back({"S32_create_not_allowed_writes_nothing",
                 {mbox("Work", {}, full({msg(1, "", "k1")}), missing(), false)},
                 {},
                 {"not_created Work b:0"},
                 {},
                 [](channel_rules& r) { r.may_create.b = false; }});
    c.push_back({"S32_one_way_channel_does_not_create_against_its_direction",
                 {mbox("Work", {}, full({msg(1, "", "k1")}), missing(), false)},
                 {},
                 {},
                 {},
                 [](channel_rules& r) { r.dir = direction::b_to_a; }});
    c.push_back({"S35_removed_on_b_removed_on_a_when_allowed_and_synced",
                 {mbox("Old", {rec(1, 101), rec(2, 102)}, full({msg(1)}), missing())},
                 {"remove Old on a"},
                 {},
                 {},
                 [](channel_rules& r) { r.may_remove.a = true; }});
    c.push_back({"S35_removal_not_allowed_is_reported_and_nothing_is_expunged",
                 {mbox("Old", {rec(1, 101), rec(2, 102)}, full({msg(1), msg(2)}), missing())},
                 {},
                 {"mailbox_gone Old b:0"}});
    c.push_back({"S34_new_mail_on_the_remaining_side_blocks_removal",
                 {mbox("Lists", {rec(1, 101)}, full({msg(1), msg(2, "", "k2")}), missing())},
                 {},
                 {"mailbox_gone Lists b:0"},
                 {},
                 [](channel_rules& r) { r.may_remove.a = true; }});
    c.push_back({"S34_one_sided_message_blocks_removal",
                 {mbox("Lists", {rec(1, 0, "", "k1")}, full({msg(1, "", "k1")}), missing())},
                 {},
                 {"mailbox_gone Lists b:0"},
                 {},
                 [](channel_rules& r) { r.may_remove.a = true; }});
    c.push_back({"S34_removed_on_a_kept_on_b",
                 {mbox("Lists", {rec(1, 101)}, missing(), full({msg(101), msg(102)}))},
                 {},
                 {"mailbox_gone Lists a:0"},
                 {},
                 [](channel_rules& r) { r.may_remove.b = true; }});
    {
        std::vector<pair_record> recs;
        std::vector<message_info> on_a;
        for (mail::uid u = 1; u <= 10; ++u) {
            recs.push_back(rec(u, 100 + u));
            on_a.push_back(msg(u));
        }
        c.push_back({"S25_missing_folder_never_becomes_a_mass_expunge",
                     {mbox("Work", recs, full(on_a), missing())},
                     {},
                     {"mailbox_gone Work b:0"}});
    }
    c.push_back({"S36_removed_on_both_sides_is_forgotten",
                 {mbox("X", {rec(1, 101), rec(2, 102)}, missing(), missing())},
                 {"journal X | 1/101 [] => -", "journal X | 2/102 [] => -"}});

    // ---- S25 second variant: the mass-removal guard
    auto five = [](std::vector<mail::uid> vanished, std::vector<message_info> listed = {}) {
        std::vector<pair_record> recs;
        for (mail::uid u = 1; u <= 5; ++u)
            recs.push_back(rec(u, 100 + u, "", "k" + std::to_string(u)));
        return mbox("INBOX", recs, changes(std::move(listed), std::move(vanished)), changes());
    };
    auto work_flag = [] {
        return mbox("Work", {rec(1, 101)}, changes({msg(1, "\\Seen")}), changes());
    };
    c.push_back({"S25_guard_trips_and_leaves_the_mailbox_alone",
                 {five({1, 2, 3, 4}), work_flag()},
                 {"flags Work b:101 +[\\Seen] -[] | 1/101 [] => 1/101 [\\Seen]"},
                 {"guard INBOX b:0"},
                 {"INBOX"}});
    c.push_back({"S25_guard_counts_deleted_marks",
                 {five({1, 2, 3, 4})},
                 {},
                 {"guard INBOX b:0"},
                 {"INBOX"},
                 [](channel_rules& r) { r = no_expunge_on(side::b); }});
    c.push_back(
        {"S25_guard_below_its_minimum_does_not_trip",
         {five({1, 2})},
         {"expunge INBOX b:101 | 1/101 [] k1 => -", "expunge INBOX b:102 | 2/102 [] k2 => -"},
         {},
         {},
         [](channel_rules& r) { r.max_delete_share = 0.1; }});
    c.push_back(
        {"S25_guard_at_its_share_does_not_trip",
         {five({1, 2, 3})},
         {"expunge INBOX b:101 | 1/101 [] k1 => -", "expunge INBOX b:102 | 2/102 [] k2 => -",
          "expunge INBOX b:103 | 3/103 [] k3 => -"},
         {},
         {},
         [](channel_rules& r) { r.max_delete_share = 0.6; }});
    c.push_back(
        {"S25_force_passes_the_guard",
         {five({1, 2, 3, 4})},
         {"expunge INBOX b:101 | 1/101 [] k1 => -", "expunge INBOX b:102 | 2/102 [] k2 => -",
          "expunge INBOX b:103 | 3/103 [] k3 => -", "expunge INBOX b:104 | 4/104 [] k4 => -"},
         {},
         {},
         [](channel_rules& r) { r.force = true; }});
    c.push_back({"S25_guard_absolute_count_trips_above_it",
                 {five({1, 2})},
                 {},
                 {"guard INBOX b:0"},
                 {"INBOX"},
                 [](channel_rules& r) { r.max_delete_count = 1; }});
    c.push_back(
        {"S25_guard_absolute_count_replaces_the_share",
         {five({1, 2, 3, 4})},
         {"expunge INBOX b:101 | 1/101 [] k1 => -", "expunge INBOX b:102 | 2/102 [] k2 => -",
          "expunge INBOX b:103 | 3/103 [] k3 => -", "expunge INBOX b:104 | 4/104 [] k4 => -"},
         {},
         {},
         [](channel_rules& r) { r.max_delete_count = 4; }});
    c.push_back({"S13_guard_ignores_deleted_set_by_the_user",
                 {five({}, {msg(1, "\\Deleted"), msg(2, "\\Deleted"), msg(3, "\\Deleted"),
                            msg(4, "\\Deleted")})},
                 {"flags INBOX b:101 +[\\Deleted] -[] | 1/101 [] k1 => 1/101 [\\Deleted] k1",
                  "flags INBOX b:102 +[\\Deleted] -[] | 2/102 [] k2 => 2/102 [\\Deleted] k2",
                  "flags INBOX b:103 +[\\Deleted] -[] | 3/103 [] k3 => 3/103 [\\Deleted] k3",
                  "flags INBOX b:104 +[\\Deleted] -[] | 4/104 [] k4 => 4/104 [\\Deleted] k4"}});
    c.push_back({"S26_guard_ignores_moves",
                 {five({1, 2, 3, 4}), mbox("Archive", {},
                                           changes({msg(11, "", "k1"), msg(12, "", "k2"),
                                                    msg(13, "", "k3"), msg(14, "", "k4")}),
                                           changes())},
                 {"move b:101 INBOX -> Archive +[] -[] | 1/101 [] k1 => 11/0 [] k1",
                  "move b:102 INBOX -> Archive +[] -[] | 2/102 [] k2 => 12/0 [] k2",
                  "move b:103 INBOX -> Archive +[] -[] | 3/103 [] k3 => 13/0 [] k3",
                  "move b:104 INBOX -> Archive +[] -[] | 4/104 [] k4 => 14/0 [] k4"}});
    c.push_back({"S25_guard_drops_moves_into_a_guarded_mailbox_and_does_not_expunge_their_source",
                 {five({1, 2, 3, 4}, {msg(11, "", "k9")}),
                  mbox("Trash", {rec(20, 120, "", "k9")}, changes({}, {20}), changes())},
                 {},
                 {"guard INBOX b:0"},
                 {"INBOX"}});

    // ---- the order of a plan
    c.push_back(
        {"order_create_then_per_mailbox_then_moves_then_removals",
         {mbox("Old", {rec(1, 101)}, full({msg(1)}), missing()),
          mbox("INBOX",
               {rec(1, 101, "", "k1"), rec(2, 102, "", "k2"), rec(3, 103, "", "k3"),
                rec(4, 104, "", "k4"), rec(5, 105, "", "k5"), rec(6, 106, "", "k6")},
               changes({msg(1, "\\Seen", "k1"), msg(9, "", "k9")}, {2, 3}), changes({}, {106})),
          mbox("Archive", {}, changes({msg(30, "", "k3")}), changes()),
          mbox("A-new", {}, missing(), full({msg(500, "", "k50")}), false)},
         {"create A-new on a", "copy A-new b:500 [] | new 0/500 [] k50",
          "flags INBOX b:101 +[\\Seen] -[] | 1/101 [] k1 => 1/101 [\\Seen] k1",
          "expunge INBOX a:6 | 6/106 [] k6 => -", "expunge INBOX b:102 | 2/102 [] k2 => -",
          "copy INBOX a:9 [] | new 9/0 [] k9",
          "move b:103 INBOX -> Archive +[] -[] | 3/103 [] k3 => 30/0 [] k3", "remove Old on a"},
         {},
         {},
         [](channel_rules& r) {
             r.may_remove.a = true;
             r.may_expunge.a = true;
         }});
    return c;
}

class planner_table : public ::testing::TestWithParam<plan_case> {};

TEST_P(planner_table, plans_exactly_this) {
    const plan_case& pc = GetParam();
    channel_rules rules;
    if (pc.tweak) pc.tweak(rules);
    const plan p = make_plan(pc.in, rules);
    EXPECT_EQ(show_actions(p), pc.actions);
    EXPECT_EQ(show_notices(p), pc.notices);
    EXPECT_EQ(p.guarded_mailboxes, pc.guarded);
}

INSTANTIATE_TEST_SUITE_P(rules, planner_table, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(planner, guard_notice_gives_the_numbers) {
    std::vector<pair_record> recs;
    for (mail::uid u = 1; u <= 10; ++u) recs.push_back(rec(u, 100 + u));
    const std::vector<mailbox_input> in{
        mbox("INBOX", recs, changes({}, {1, 2, 3, 4, 5, 6, 7}), changes())};
    const plan p = make_plan(in, {});
    ASSERT_EQ(p.notices.size(), 1u);
    EXPECT_EQ(p.notices[0].what, notice::kind::guard_tripped);
    EXPECT_EQ(p.notices[0].on, side::b);
    EXPECT_NE(p.notices[0].text.find("7 of 10"), std::string::npos) << p.notices[0].text;
    EXPECT_NE(p.notices[0].text.find("50%"), std::string::npos) << p.notices[0].text;
    EXPECT_TRUE(p.actions.empty());
}

TEST(planner, empty_input_gives_an_empty_plan) {
    const std::vector<mailbox_input> none;
    const plan p = make_plan(none, {});
    EXPECT_TRUE(p.actions.empty());
    EXPECT_TRUE(p.notices.empty());
    EXPECT_TRUE(p.guarded_mailboxes.empty());
}

TEST(planner, input_order_of_mailboxes_does_not_matter) {
    std::vector<mailbox_input> in{
        mbox("Work", {rec(1, 101)}, changes({msg(1, "\\Seen")}), changes()),
        mbox("INBOX", {rec(1, 101, "", "k1")}, changes({}, {1}), changes()),
        mbox("Archive", {}, changes({msg(5, "", "k1")}), changes()),
    };
    const auto forward = show_actions(make_plan(in, {}));
    std::reverse(in.begin(), in.end());
    EXPECT_EQ(show_actions(make_plan(in, {})), forward);
    EXPECT_EQ(forward.size(), 2u);
}

// A first sync plans one copy per message (200,000 in one folder): the actions stay small,
// the large ones behind a pointer, a copy referring to its listing entry.
TEST(planner, an_action_stays_small_since_a_first_sync_plans_one_per_message) {
    EXPECT_LE(sizeof(action), 64u);
    EXPECT_LE(sizeof(copy_message), 48u);
    mail::message_info m;
    m.uid = 7;
    m.size = 123;
    m.identity = "X1";
    m.content_key = "<k>/123";
    m.flags.add_imap("\\Seen");
    const copy_message c{"INBOX", side::b, 7, &m};
    const pair_record r = c.new_record();
    EXPECT_EQ(r.uid.a, 0u);
    EXPECT_EQ(r.uid.b, 7u);
    EXPECT_EQ(r.identity.b, "X1");
    EXPECT_TRUE(r.identity.a.empty());
    EXPECT_EQ(r.content_key, "<k>/123");
    EXPECT_EQ(r.size, 123u);
    EXPECT_EQ(r.flags, m.flags);
}

}  // namespace
}  // namespace tandem::sync::test
